/* The allocator behind vow's own allocations: the C library's until
 * vow_replace_allocator says otherwise (libuv's uv_replace_allocator has
 * the same shape). Reads are not locked: the functions are set once,
 * before vow allocates anything. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "vow/common.h"

static struct {
  vow_malloc_func malloc;
  vow_realloc_func realloc;
  vow_calloc_func calloc;
  vow_free_func free;
} alloc = {malloc, realloc, calloc, free};

int vow_replace_allocator(vow_malloc_func malloc_fn,
                          vow_realloc_func realloc_fn,
                          vow_calloc_func calloc_fn, vow_free_func free_fn) {
  if (malloc_fn == NULL || realloc_fn == NULL || calloc_fn == NULL ||
      free_fn == NULL)
    return -EINVAL; /* UV_EINVAL */
  alloc.malloc = malloc_fn;
  alloc.realloc = realloc_fn;
  alloc.calloc = calloc_fn;
  alloc.free = free_fn;
  return 0;
}

void* vow__malloc(size_t size) {
  return alloc.malloc(size);
}

void* vow__calloc(size_t count, size_t size) {
  return alloc.calloc(count, size);
}

void* vow__realloc(void* ptr, size_t size) {
  return alloc.realloc(ptr, size);
}

void vow__free(void* ptr) {
  if (ptr != NULL)
    alloc.free(ptr);
}

char* vow__strdup(const char* s) {
  return vow__strndup(s, strlen(s));
}

char* vow__strndup(const char* s, size_t n) {
  size_t len = strnlen(s, n);
  char* copy = vow__malloc(len + 1);
  if (copy == NULL)
    return NULL;
  memcpy(copy, s, len);
  copy[len] = '\0';
  return copy;
}
