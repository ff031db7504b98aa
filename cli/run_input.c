/* vow run's inputs and commands: the ::: and :::: lists, stdin, the
 * Cartesian product or --link, and the replacement strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

static void add_item(input_list* l, const char* s, size_t n) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->items = realloc(l->items, l->cap * sizeof(char*));
    if (l->items == NULL) {
      vow_cli_error("out of memory");
      exit(VOW_EXIT_ERROR);
    }
  }
  l->items[l->n] = malloc(n + 1);
  if (l->items[l->n] == NULL)
    exit(VOW_EXIT_ERROR);
  memcpy(l->items[l->n], s, n);
  l->items[l->n][n] = '\0';
  l->n++;
}

void run_list_add(input_list* l, const char* s) {
  add_item(l, s, strlen(s));
}

int run_list_read(input_list* l, FILE* f, const char* name, bool nul) {
  vbuf line = {0};
  int c;
  char sep = nul ? '\0' : '\n';
  while ((c = fgetc(f)) != EOF) {
    if ((char)c == sep) {
      add_item(l, line.data ? line.data : "", line.len);
      line.len = 0;
      continue;
    }
    vbuf_add(&line, &(char){(char)c}, 1);
  }
  if (line.len > 0)
    add_item(l, line.data, line.len);
  vbuf_free(&line);
  if (ferror(f)) {
    vow_cli_error("cannot read %s", name);
    return -1;
  }
  return 0;
}

size_t run_job_count(const run_inputs* in) {
  size_t n = 1, i;
  if (in->nlists == 0)
    return 0;
  for (i = 0; i < in->nlists; i++) {
    if (in->lists[i].n == 0)
      return 0;
    if (in->link) {
      if (i == 0 || in->lists[i].n > n)
        n = in->lists[i].n;
    } else {
      n *= in->lists[i].n;
    }
  }
  return n;
}

void run_job_args(const run_inputs* in, size_t index, const char** out) {
  size_t i;
  if (in->link) {
    for (i = 0; i < in->nlists; i++)
      out[i] = in->lists[i].items[index % in->lists[i].n];
    return;
  }
  /* An odometer: the last list turns fastest, the first slowest. */
  for (i = in->nlists; i-- > 0;) {
    out[i] = in->lists[i].items[index % in->lists[i].n];
    index /= in->lists[i].n;
  }
}

/* ---- replacement strings -------------------------------------------- */

static const char* base_of(const char* s) {
  const char* slash = strrchr(s, '/');
  return slash ? slash + 1 : s;
}

/* Appends the value after the named transformation. */
static void transform(vbuf* b, const char* v, const char* how, bool quote) {
  vbuf t = {0};
  if (strcmp(how, "") == 0) {
    vbuf_str(&t, v);
  } else if (strcmp(how, ".") == 0 || strcmp(how, "/.") == 0) {
    const char* from = how[0] == '/' ? base_of(v) : v;
    const char* dot = strrchr(from, '.');
    const char* slash = strrchr(from, '/');
    if (dot != NULL && (slash == NULL || dot > slash) && dot != from &&
        dot[-1] != '/')
      vbuf_add(&t, from, (size_t)(dot - from));
    else
      vbuf_str(&t, from);
  } else if (strcmp(how, "/") == 0) {
    vbuf_str(&t, base_of(v));
  } else if (strcmp(how, "//") == 0) {
    const char* slash = strrchr(v, '/');
    if (slash == NULL)
      vbuf_str(&t, ".");
    else if (slash == v)
      vbuf_str(&t, "/");
    else
      vbuf_add(&t, v, (size_t)(slash - v));
  }
  if (quote)
    vow_cli_quote(b, t.data ? t.data : "");
  else if (t.len)
    vbuf_add(b, t.data, t.len);
  vbuf_free(&t);
}

/* Reads a replacement string at p ("{...}"). Returns its length and fills
 * kind: 'v' a value (*list: 0 for all joined, else 1-based; *how the
 * transformation), '#' job number, '%' slot; 0 when p is no replacement
 * string. */
static size_t parse_token(const char* p, char* kind, size_t* list,
                          char how[4]) {
  const char* q = p + 1;
  size_t n = 0, len;
  if (*p != '{')
    return 0;
  *list = 0;
  if (q[0] == '#' && q[1] == '}')
    return *kind = '#', 3;
  if (q[0] == '%' && q[1] == '}')
    return *kind = '%', 3;
  while (*q >= '0' && *q <= '9')
    n = n * 10 + (size_t)(*q++ - '0');
  if (q > p + 1 && n == 0)
    return 0;
  *list = n;
  len = strcspn(q, "}");
  if (q[len] != '}' || len > 3)
    return 0;
  if (!(len == 0 || (len == 1 && (q[0] == '.' || q[0] == '/')) ||
        (len == 2 && q[0] == '/' && (q[1] == '/' || q[1] == '.'))))
    return 0;
  memcpy(how, q, len);
  how[len] = '\0';
  *kind = 'v';
  return (size_t)(q + len + 1 - p);
}

bool run_has_replacement(const char* word) {
  const char* p;
  for (p = word; (p = strchr(p, '{')) != NULL; p++) {
    char kind, how[4];
    size_t list;
    if (parse_token(p, &kind, &list, how) > 0)
      return true;
  }
  return false;
}

void run_expand(vbuf* b, const char* word, const run_inputs* in,
                const char** args, size_t seq, unsigned slot, bool quote) {
  const char* p = word;
  while (*p) {
    char kind, how[4];
    size_t list, len = parse_token(p, &kind, &list, how);
    if (len == 0) {
      vbuf_add(b, p, 1);
      p++;
      continue;
    }
    if (kind == '#' || kind == '%') {
      char num[32];
      snprintf(num, sizeof(num), "%zu", kind == '#' ? seq : (size_t)slot);
      vbuf_str(b, num);
    } else if (list == 0) {
      size_t i;
      for (i = 0; i < in->nlists; i++) {
        if (i)
          vbuf_add(b, " ", 1);
        transform(b, args[i], how, quote);
      }
    } else if (list <= in->nlists) {
      transform(b, args[list - 1], how, quote);
    }
    /* {n} past the number of lists is replaced by nothing, as in GNU
     * parallel. */
    p += len;
  }
}
