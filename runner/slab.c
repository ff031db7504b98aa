/* Fixed-size object arenas (slabs) behind promises, chain nodes and pool
 * tasks. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

struct vow__slab {
  vow__slab* next;
  size_t count;
  max_align_t align[]; /* objects follow */
};

void vow__arena_init(vow__arena* arena, size_t obj_size, size_t per_slab) {
  arena->free = NULL;
  arena->bump = arena->bump_end = NULL;
  arena->slabs = NULL;
  arena->obj_size = obj_size < sizeof(void*) ? sizeof(void*) : obj_size;
  arena->per_slab = per_slab;
  arena->live = 0;
  arena->reserved = 0;
}

#define HUGE_PAGE ((uintptr_t)2 << 20)

/* A new slab's pages are all touched once in one call, and its whole
 * 2 MiB pages may be huge pages: a fresh promise's first use then costs
 * no page fault of its own, which on a virtual machine is most of what a
 * million fresh promises cost (a slab is at most twice what is in use,
 * so resident memory stays within that). Only advice: where the kernel
 * has neither, nothing changes. */
static void prepare_pages(void* at, size_t bytes) {
  uintptr_t lo = ((uintptr_t)at + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t hi = ((uintptr_t)at + bytes) & ~(HUGE_PAGE - 1);
  if (hi > lo) {
    madvise((void*)lo, hi - lo, MADV_HUGEPAGE);
    return; /* a fault each 2 MiB: populating would only add compaction */
  }
#ifdef MADV_POPULATE_WRITE
  {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = ((uintptr_t)at + page - 1) & ~(page - 1);
    uintptr_t last = ((uintptr_t)at + bytes) & ~(page - 1);
    if (last > first)
      madvise((void*)first, last - first, MADV_POPULATE_WRITE);
  }
#endif
}

static int arena_grow(vow__arena* arena) {
  size_t n = arena->per_slab;
  size_t bytes = sizeof(vow__slab) + n * arena->obj_size;
  vow__slab* slab = vow__malloc(bytes);
  if (slab == NULL)
    return UV_ENOMEM;
  slab->next = arena->slabs;
  slab->count = n;
  arena->slabs = slab;
  arena->reserved += bytes;
  /* A new slab is handed out by bumping a pointer. */
  arena->bump = (char*)slab->align;
  arena->bump_end = arena->bump + n * arena->obj_size;
  prepare_pages(slab, bytes);
  /* Later slabs are bigger, up to 8 MiB, so a million promises cost few
   * mallocs (and whole huge pages) but a small program reserves little. */
  if (arena->per_slab * arena->obj_size < ((size_t)8 << 20))
    arena->per_slab *= 2;
  return 0;
}

void* vow__arena_get(vow__arena* arena) {
  void* obj = arena->free;
  if (obj != NULL) {
    arena->free = *(void**)obj;
  } else {
    if (arena->bump == arena->bump_end && arena_grow(arena) != 0)
      return NULL;
    obj = arena->bump;
    arena->bump += arena->obj_size;
  }
  arena->live++;
  return obj;
}

void vow__arena_put(vow__arena* arena, void* obj) {
  *(void**)obj = arena->free;
  arena->free = obj;
  arena->live--;
}

/* The end of what slab has handed out: the newest slab was handed out
 * only up to the bump pointer. */
static char* handed_out_end(const vow__arena* arena, vow__slab* slab) {
  if (slab == arena->slabs)
    return arena->bump;
  return (char*)slab->align + slab->count * arena->obj_size;
}

void vow__arena_each(vow__arena* arena, void (*fn)(void* obj, void* arg),
                     void* arg) {
  vow__slab* slab;
  for (slab = arena->slabs; slab != NULL; slab = slab->next) {
    char* obj = (char*)slab->align;
    char* end = handed_out_end(arena, slab);
    for (; obj < end; obj += arena->obj_size)
      fn(obj, arg);
  }
}

void vow__arena_destroy(vow__arena* arena) {
  vow__arena_destroy_keeping(arena, NULL, NULL);
}

/* Slabs kept for objects that outlived their owner; see
 * vow__arena_destroy_keeping. Reachable to the end, never freed. */
static vow__slab* kept_slabs;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static bool slab_has_kept(const vow__arena* arena, vow__slab* slab,
                          bool (*keep)(void*, void*), void* arg) {
  char* obj = (char*)slab->align;
  char* end = handed_out_end(arena, slab);
  for (; obj < end; obj += arena->obj_size)
    if (keep(obj, arg))
      return true;
  return false;
}

void vow__arena_destroy_keeping(vow__arena* arena, bool (*keep)(void*, void*),
                                void* arg) {
  vow__slab* slab = arena->slabs;
  while (slab != NULL) {
    vow__slab* next = slab->next;
    if (keep != NULL && slab_has_kept(arena, slab, keep, arg)) {
      pthread_mutex_lock(&kept_lock);
      slab->next = kept_slabs;
      kept_slabs = slab;
      pthread_mutex_unlock(&kept_lock);
    } else {
      vow__free(slab);
    }
    slab = next;
  }
  arena->slabs = NULL;
  arena->free = NULL;
  arena->bump = arena->bump_end = NULL;
  arena->reserved = 0;
}
