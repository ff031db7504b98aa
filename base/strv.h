/* base/strv.h — NULL-terminated string vectors (argv, environments) on
 * the library's allocator. Private to libvow. */
#ifndef VOW_BASE_STRV_H
#define VOW_BASE_STRV_H

#include <stddef.h>

/* Entries before the NULL (0 for a NULL vector). */
size_t vow__strv_len(const char* const* v);
/* A copy of v with room for `extra` more entries, or NULL: a copy that
 * lost an entry to a failed allocation would start workers with a
 * truncated environment. */
char** vow__strv_copy(const char* const* v, size_t extra);
/* Copies s into v's first free entry, which the caller made room for.
 * Returns 0, or -1 when memory ran out. */
int vow__strv_push(char** v, const char* s);
/* Pushes "name=value". */
int vow__strv_push_env(char** v, const char* name, const char* value);
/* Frees every entry and v itself; NULL is fine. */
void vow__strv_free(char** v);

#endif
