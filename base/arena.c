/* Fixed-size object arenas (slabs) behind promises, chain nodes and pool
 * tasks. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "alloc.h"
#include "arena.h"
#include "os.h"

struct vow__slab {
  vow__slab* next;
  size_t count;
  char* objects;       /* in align[], at a 2 MiB boundary in a big slab */
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

/* How far past a 2 MiB boundary memory may start and still count as
 * starting there: an allocator's header. Linux (since 6.7) maps anonymous
 * memory of 2 MiB or more at a 2 MiB boundary, so a big malloc lands just
 * past one. */
#define HEAD_ROOM ((uintptr_t)4096)

static bool near_boundary(const void* at) {
  return ((uintptr_t)at & (HUGE_PAGE - 1)) < HEAD_ROOM;
}

/* On a virtual machine a page fault is most of what a fresh promise
 * costs. The whole 2 MiB pages of a big block are advised as huge pages,
 * a fault each 2 MiB (the one a block starts just past counts: advice on
 * an allocator's header is harmless); a smaller block has its pages
 * touched at once in one call (a slab is at most twice what is in use, so
 * resident memory stays within that). Only advice: where the kernel has
 * neither, nothing changes. */
void vow__prepare_pages(void* at, size_t bytes) {
  uintptr_t lo = (uintptr_t)at & ~(HUGE_PAGE - 1);
  uintptr_t hi = ((uintptr_t)at + bytes) & ~(HUGE_PAGE - 1);
  if (!near_boundary(at))
    lo += HUGE_PAGE;
  if (hi > lo) {
    vow__os_advise_huge_pages((void*)lo, hi - lo);
    return; /* a fault each 2 MiB: populating would only add compaction */
  }
  {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = ((uintptr_t)at + page - 1) & ~(page - 1);
    uintptr_t last = ((uintptr_t)at + bytes) & ~(page - 1);
    if (last > first)
      vow__os_populate_pages((void*)first, last - first);
  }
}

static int arena_grow(vow__arena* arena) {
  size_t n = arena->per_slab;
  size_t span = n * arena->obj_size;
  size_t pad = 0;
  size_t bytes = sizeof(vow__slab) + span;
  vow__slab* slab = vow__malloc(bytes);
  if (slab == NULL)
    return UV_ENOMEM;
  /* A slab of whole huge pages that did not land at a 2 MiB boundary is
   * allocated again with room to start its objects at one, so all of
   * them are on huge pages; the pages skipped are never touched, so they
   * cost address space only. */
  if (span >= 2 * HUGE_PAGE && !near_boundary(slab)) {
    vow__free(slab);
    pad = HUGE_PAGE;
    if ((slab = vow__malloc(bytes + pad)) == NULL)
      return UV_ENOMEM;
  }
  slab->next = arena->slabs;
  slab->count = n;
  slab->objects = (char*)slab->align;
  if (pad > 0)
    slab->objects =
        (char*)(((uintptr_t)slab->align + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
  arena->slabs = slab;
  arena->reserved += bytes; /* the pad is address space only */
  /* A new slab is handed out by bumping a pointer. */
  arena->bump = slab->objects;
  arena->bump_end = arena->bump + span;
  vow__prepare_pages(pad > 0 ? (void*)slab->objects : (void*)slab,
                     span + (size_t)(slab->objects - (char*)slab));
  /* Later slabs are bigger, up to 32 MiB, so a million promises cost few
   * mallocs (and whole huge pages) but a small program reserves little. */
  if (arena->per_slab * arena->obj_size < ((size_t)32 << 20))
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
  return slab->objects + slab->count * arena->obj_size;
}

void vow__arena_each(vow__arena* arena, void (*fn)(void* obj, void* arg),
                     void* arg) {
  vow__slab* slab;
  for (slab = arena->slabs; slab != NULL; slab = slab->next) {
    char* obj = slab->objects;
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
  char* obj = slab->objects;
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
