/* base/alloc.h — the allocator behind every allocation vow makes itself
 * (every folder of libvow), replaceable with vow_replace_allocator.
 * Private to libvow. */
#ifndef VOW_BASE_ALLOC_H
#define VOW_BASE_ALLOC_H

#include <stddef.h>

void* vow__malloc(size_t size);
void* vow__calloc(size_t count, size_t size);
void* vow__realloc(void* ptr, size_t size);
void vow__free(void* ptr);
char* vow__strdup(const char* s);
char* vow__strndup(const char* s, size_t n);

#endif
