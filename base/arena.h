/* base/arena.h — fixed-size object arenas (slabs). Private to libvow. */
#ifndef VOW_BASE_ARENA_H
#define VOW_BASE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

/* Fixed-size object arenas: slabs of `per_slab` objects, threaded through a
 * free list. Nothing is returned to malloc before the arena is destroyed,
 * which is what makes a promise cost a few dozen bytes and no malloc call
 * in steady state. */
typedef struct vow__slab vow__slab;
typedef struct vow__arena {
  void* free;       /* first free object; its first word links the next */
  char* bump;       /* next never-used object of the newest slab */
  char* bump_end;   /* end of the newest slab */
  vow__slab* slabs; /* every slab, for walking and destroying */
  size_t obj_size;  /* bytes per object, at least sizeof(void*) */
  size_t per_slab;  /* objects in each new slab */
  size_t live;      /* objects handed out and not yet returned */
  size_t reserved;  /* bytes held in slabs */
} vow__arena;

void vow__arena_init(vow__arena* arena, size_t obj_size, size_t per_slab);
/* Advises fresh memory about to be written through: huge pages where
 * whole 2 MiB pages fit, else its pages touched in one call. */
void vow__prepare_pages(void* at, size_t bytes);
/* NULL on out of memory. */
void* vow__arena_get(vow__arena* arena);
void vow__arena_put(vow__arena* arena, void* obj);
/* Calls fn on every slot ever handed out, free or not; the caller tells
 * them apart by their contents. */
void vow__arena_each(vow__arena* arena, void (*fn)(void* obj, void* arg),
                     void* arg);
void vow__arena_destroy(vow__arena* arena);
/* vow__arena_destroy, except that a slab holding an object for which keep
 * returns true is never freed: it moves to a process-wide list, so that
 * object stays readable for the life of the process. keep may be NULL:
 * nothing is kept. */
void vow__arena_destroy_keeping(vow__arena* arena,
                                bool (*keep)(void* obj, void* arg), void* arg);

#endif
