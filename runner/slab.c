/* Fixed-size object pools (slabs) behind promises, chain nodes and pool
 * tasks. */
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"

struct vow__slab {
  vow__slab* next;
  size_t count;
  max_align_t align[]; /* objects follow */
};

void vow__pool_init(vow__pool* pool, size_t obj_size, size_t per_slab) {
  pool->free = NULL;
  pool->bump = pool->bump_end = NULL;
  pool->slabs = NULL;
  pool->obj_size = obj_size < sizeof(void*) ? sizeof(void*) : obj_size;
  pool->per_slab = per_slab;
  pool->live = 0;
  pool->reserved = 0;
}

static int pool_grow(vow__pool* pool) {
  size_t n = pool->per_slab;
  size_t bytes = sizeof(vow__slab) + n * pool->obj_size;
  vow__slab* slab = vow__malloc(bytes);
  if (slab == NULL)
    return UV_ENOMEM;
  slab->next = pool->slabs;
  slab->count = n;
  pool->slabs = slab;
  pool->reserved += bytes;
  /* A new slab is handed out by bumping a pointer, so its pages are
   * touched only as objects are used, not all at once here. */
  pool->bump = (char*)slab->align;
  pool->bump_end = pool->bump + n * pool->obj_size;
  /* Later slabs are bigger, up to 64 Ki objects, so a million promises
   * cost few mallocs but a small program reserves little. */
  if (pool->per_slab < 65536)
    pool->per_slab *= 2;
  return 0;
}

void* vow__pool_get(vow__pool* pool) {
  void* obj = pool->free;
  if (obj != NULL) {
    pool->free = *(void**)obj;
  } else {
    if (pool->bump == pool->bump_end && pool_grow(pool) != 0)
      return NULL;
    obj = pool->bump;
    pool->bump += pool->obj_size;
  }
  pool->live++;
  return obj;
}

void vow__pool_put(vow__pool* pool, void* obj) {
  *(void**)obj = pool->free;
  pool->free = obj;
  pool->live--;
}

/* The end of what slab has handed out: the newest slab was handed out
 * only up to the bump pointer. */
static char* handed_out_end(const vow__pool* pool, vow__slab* slab) {
  if (slab == pool->slabs)
    return pool->bump;
  return (char*)slab->align + slab->count * pool->obj_size;
}

void vow__pool_each(vow__pool* pool, void (*fn)(void* obj, void* arg),
                    void* arg) {
  vow__slab* slab;
  for (slab = pool->slabs; slab != NULL; slab = slab->next) {
    char* obj = (char*)slab->align;
    char* end = handed_out_end(pool, slab);
    for (; obj < end; obj += pool->obj_size)
      fn(obj, arg);
  }
}

void vow__pool_destroy(vow__pool* pool) {
  vow__pool_destroy_keeping(pool, NULL, NULL);
}

/* Slabs kept for objects that outlived their owner; see
 * vow__pool_destroy_keeping. Reachable to the end, never freed. */
static vow__slab* kept_slabs;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static bool slab_has_kept(const vow__pool* pool, vow__slab* slab,
                          bool (*keep)(void*, void*), void* arg) {
  char* obj = (char*)slab->align;
  char* end = handed_out_end(pool, slab);
  for (; obj < end; obj += pool->obj_size)
    if (keep(obj, arg))
      return true;
  return false;
}

void vow__pool_destroy_keeping(vow__pool* pool, bool (*keep)(void*, void*),
                               void* arg) {
  vow__slab* slab = pool->slabs;
  while (slab != NULL) {
    vow__slab* next = slab->next;
    if (keep != NULL && slab_has_kept(pool, slab, keep, arg)) {
      pthread_mutex_lock(&kept_lock);
      slab->next = kept_slabs;
      kept_slabs = slab;
      pthread_mutex_unlock(&kept_lock);
    } else {
      vow__free(slab);
    }
    slab = next;
  }
  pool->slabs = NULL;
  pool->free = NULL;
  pool->bump = pool->bump_end = NULL;
  pool->reserved = 0;
}
