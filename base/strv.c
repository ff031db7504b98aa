/* NULL-terminated string vectors. */
#include "strv.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"

size_t vow__strv_len(const char* const* v) {
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

void vow__strv_free(char** v) {
  size_t i;
  for (i = 0; v && v[i]; i++)
    vow__free(v[i]);
  vow__free(v);
}

char** vow__strv_copy(const char* const* v, size_t extra) {
  size_t n = vow__strv_len(v), i;
  char** out = vow__calloc(n + extra + 1, sizeof(char*));
  if (out == NULL)
    return NULL;
  for (i = 0; i < n; i++)
    if ((out[i] = vow__strdup(v[i])) == NULL) {
      vow__strv_free(out);
      return NULL;
    }
  return out;
}

int vow__strv_push(char** v, const char* s) {
  size_t n = vow__strv_len((const char* const*)v);
  v[n] = vow__strdup(s);
  return v[n] == NULL ? -1 : 0;
}

int vow__strv_push_env(char** v, const char* name, const char* value) {
  size_t n = vow__strv_len((const char* const*)v);
  size_t len = strlen(name) + strlen(value) + 2;
  v[n] = vow__malloc(len);
  if (v[n] == NULL)
    return -1;
  snprintf(v[n], len, "%s=%s", name, value);
  return 0;
}
