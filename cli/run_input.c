/* vow run's inputs: the ::: and :::: sources, stdin, records cut by -d,
 * --trim, --colsep, --header, the groups (:::+, --link) and their
 * combinations, and the tuples a job takes (-N, -X, -m, --xargs). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run.h"

#define READ_CHUNK 65536

static void* xrealloc(void* p, size_t n) {
  void* q = realloc(p, n ? n : 1);
  if (q == NULL) {
    vow_cli_error("out of memory");
    exit(VOW_EXIT_ERROR);
  }
  return q;
}

/* ---- sources ---------------------------------------------------------- */

int run_inputs_parse(run_inputs* in, int argc, char** argv, int first,
                     const char** arg_files, size_t narg_files) {
  int i = first;
  size_t k;
  in->src =
      xrealloc(NULL, ((size_t)argc + narg_files + 1) * sizeof(run_source));
  memset(in->src, 0, ((size_t)argc + narg_files + 1) * sizeof(run_source));
  /* -a FILE: sources of their own, before the ones after the command, as
   * GNU parallel orders them. */
  for (k = 0; k < narg_files; k++) {
    run_source* s = &in->src[in->nsrc++];
    s->path = arg_files[k];
    s->fd = -1;
  }
  while (i < argc) {
    const char* a = argv[i];
    bool files = strcmp(a, "::::") == 0 || strcmp(a, "::::+") == 0;
    bool linked = a[strlen(a) - 1] == '+';
    if (!files && strcmp(a, ":::") != 0 && strcmp(a, ":::+") != 0) {
      i++;
      continue;
    }
    i++;
    if (files) {
      for (; i < argc && strncmp(argv[i], "::::", 4) != 0 &&
             strcmp(argv[i], ":::") != 0 && strcmp(argv[i], ":::+") != 0;
           i++) {
        /* Each file after :::: is a source of its own; after ::::+ each
         * is linked to the one before (the first of all to none), as
         * GNU parallel links them. */
        run_source* s = &in->src[in->nsrc++];
        s->path = argv[i];
        s->fd = -1;
        s->linked = linked && in->nsrc > 1;
      }
    } else {
      run_source* s = &in->src[in->nsrc++];
      s->args = argv + i;
      s->linked = linked && in->nsrc > 1;
      while (i < argc && strcmp(argv[i], ":::") != 0 &&
             strcmp(argv[i], ":::+") != 0 && strncmp(argv[i], "::::", 4) != 0)
        i++;
      s->nargs = (size_t)(argv + i - s->args);
    }
  }
  if (in->nsrc == 0) {
    /* None given: one argument a line from stdin. */
    in->src[0].path = "-";
    in->src[0].fd = -1;
    in->nsrc = 1;
  }
  if (in->delim_len == 0) {
    in->delim[0] = '\n';
    in->delim_len = 1;
  }
  return 0;
}

int run_inputs_delim(run_inputs* in, const char* spec) {
  size_t n = 0;
  const char* p = spec;
  while (*p) {
    int c = (unsigned char)*p++;
    if (c == '\\' && *p) {
      char* end;
      switch (*p) {
        case 'n':
          c = '\n', p++;
          break;
        case 't':
          c = '\t', p++;
          break;
        case 'r':
          c = '\r', p++;
          break;
        case '\\':
          c = '\\', p++;
          break;
        case 'x':
          c = (int)strtol(p + 1, &end, 16);
          if (end == p + 1 || end > p + 3)
            return -1;
          p = end;
          break;
        default:
          if (*p < '0' || *p > '7')
            return -1;
          c = (int)strtol(p, &end, 8);
          if (end > p + 3 || c > 255)
            return -1;
          p = end;
      }
    }
    if (n + 1 >= sizeof(in->delim))
      return -1;
    in->delim[n++] = (char)c;
  }
  if (n == 0)
    return -1;
  in->delim_len = n;
  in->delim_set = true;
  return 0;
}

/* What Perl's escapes that POSIX extended expressions lack stand for;
 * NULL for any other character. */
static const char* perl_escape(char c) {
  static const struct {
    char c;
    const char* ere;
  } escapes[] = {{'t', "\t"},           {'n', "\n"},    {'s', "[[:space:]]"},
                 {'S', "[^[:space:]]"}, {'d', "[0-9]"}, {'w', "[[:alnum:]_]"}};
  size_t i;
  for (i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++)
    if (escapes[i].c == c)
      return escapes[i].ere;
  return NULL;
}

void run_inputs_colsep(run_inputs* in, const char* re) {
  vbuf ere = {0};
  const char* p;
  in->colsep_on = true;
  snprintf(in->colsep_text, sizeof(in->colsep_text), "%s", re);
  if (strlen(re) == 1 || (strlen(re) == 2 && re[0] == '\\' && re[1] == 't')) {
    in->colsep_literal = true;
    if (re[0] == '\\')
      snprintf(in->colsep_text, sizeof(in->colsep_text), "\t");
    return;
  }
  for (p = re; *p; p++) {
    const char* perl = p[0] == '\\' ? perl_escape(p[1]) : NULL;
    if (perl != NULL) {
      vbuf_str(&ere, perl);
      p++;
    } else if (p[0] == '\\' && p[1] != '\0') {
      vbuf_add(&ere, p, 2); /* an escape POSIX knows: \. \| */
      p++;
    } else {
      vbuf_add(&ere, p, 1);
    }
  }
  if (regcomp(&in->colsep, ere.data, REG_EXTENDED) != 0)
    in->colsep_literal = true;
  vbuf_free(&ere);
}

/* ---- records ---------------------------------------------------------- */

/* Splits one record into its columns (--colsep), trims them, and makes a
 * row of them. */
static run_row make_row(run_inputs* in, const char* rec, size_t len) {
  vbuf cols = {0}; /* the columns, each NUL-terminated */
  size_t ncols = 0, i, off;
  run_row row;
  size_t nuls = 0, k;
  char* text;
  const char* p;
  for (k = 0; k < len; k++)
    nuls += rec[k] == '\0';
  if (!in->delim_set && in->cr_lines < 3 && in->nl_lines < 3) {
    /* As GNU parallel warns: input from Windows keeps its CRs. */
    if (len > 0 && rec[len - 1] == '\r')
      in->cr_lines++;
    else
      in->nl_lines++;
    if (in->cr_lines == 3 && in->nl_lines == 0)
      fprintf(stderr,
              "vow: warning: the first three values end in CR-LF; consider "
              "-d '\\r\\n'\n");
  }
  text = xrealloc(NULL, len + nuls + 1);
  p = text;
  if (nuls == 0) {
    memcpy(text, rec, len);
  } else {
    /* As GNU parallel does: a NUL cannot be passed in an argument, so
     * it becomes the two characters \0, and that is said once. */
    char* at = text;
    if (!in->warned_nul)
      fprintf(stderr,
              "vow: warning: a NUL character in the input was replaced with "
              "\\0 (NUL cannot be passed in an argument; did you mean "
              "-0?)\n");
    in->warned_nul = true;
    for (k = 0; k < len; k++) {
      if (rec[k] != '\0') {
        *at++ = rec[k];
      } else {
        *at++ = '\\';
        *at++ = '0';
      }
    }
    len += nuls;
  }
  text[len] = '\0';
  for (;;) {
    const char* cut = NULL;
    size_t cut_len = 0;
    if (in->colsep_on && in->colsep_literal) {
      cut = strstr(p, in->colsep_text);
      cut_len = strlen(in->colsep_text);
    } else if (in->colsep_on) {
      regmatch_t m;
      if (regexec(&in->colsep, p, 1, &m, p == text ? 0 : REG_NOTBOL) == 0 &&
          m.rm_eo > m.rm_so) {
        cut = p + m.rm_so;
        cut_len = (size_t)(m.rm_eo - m.rm_so);
      }
    }
    {
      size_t n = cut ? (size_t)(cut - p) : strlen(p);
      const char* s = p;
      if (in->trim & 1)
        while (n > 0 && isspace((unsigned char)*s))
          s++, n--;
      if (in->trim & 2)
        while (n > 0 && isspace((unsigned char)s[n - 1]))
          n--;
      vbuf_add(&cols, s, n);
      vbuf_add(&cols, "", 1);
      ncols++;
    }
    if (cut == NULL)
      break;
    p = cut + cut_len;
  }
  free(text);
  row.n = ncols;
  row.v = xrealloc(NULL, ncols * sizeof(char*) + cols.len);
  memcpy((char*)(row.v + ncols), cols.data, cols.len);
  for (i = 0, off = 0; i < ncols; i++) {
    row.v[i] = (char*)(row.v + ncols) + off;
    off += strlen(row.v[i]) + 1;
  }
  vbuf_free(&cols);
  return row;
}

/* Reads once from the source's file: >0 bytes, 0 at its end, -1 after an
 * error message. */
static int read_some(run_source* s) {
  char chunk[READ_CHUNK];
  ssize_t k;
  do {
    k = read(s->fd, chunk, sizeof(chunk));
  } while (k < 0 && errno == EINTR);
  if (k < 0) {
    vow_cli_error("cannot read %s: %s",
                  strcmp(s->path, "-") == 0 ? "stdin" : s->path,
                  strerror(errno));
    return -1;
  }
  if (k == 0) {
    s->eof = true;
    return 0;
  }
  if (s->pos > 0 && s->pos * 2 >= s->buf.len) {
    memmove(s->buf.data, s->buf.data + s->pos, s->buf.len - s->pos);
    s->buf.len -= s->pos;
    s->pos = 0;
  }
  vbuf_add(&s->buf, chunk, (size_t)k);
  return 1;
}

/* The next whole record of a file source (the last may lack its
 * delimiter); false when none is in the buffer yet. */
static bool next_record(run_inputs* in, run_source* s, const char** rec,
                        size_t* len) {
  /* NULL + 0 is undefined: an empty buffer may have no storage yet. */
  const char* base = s->buf.data == NULL ? NULL : s->buf.data + s->pos;
  size_t avail = s->buf.len - s->pos;
  const char* d =
      base == NULL ? NULL : memmem(base, avail, in->delim, in->delim_len);
  if (d != NULL) {
    *rec = base;
    *len = (size_t)(d - base);
    s->pos += *len + in->delim_len;
    return true;
  }
  if (s->eof && avail > 0) {
    *rec = base;
    *len = avail;
    s->pos = s->buf.len;
    return true;
  }
  return false;
}

/* No whole record is buffered: -1 at the source's end, 0 when not to
 * wait (block unset), -2 after a read error, 1 once more was read. */
static int read_more(run_source* s, bool block) {
  if (s->eof)
    return -1;
  if (!block)
    return 0;
  return read_some(s) < 0 ? -2 : 1;
}

/* -L: a file source's next row, a line that ends in white space going
 * on to the next, the two one value, as xargs and GNU parallel read
 * lines. Returns as source_row does. */
static int continued_row(run_inputs* in, run_source* s, bool block,
                         run_row* row) {
  for (;;) {
    size_t start = s->pos, len;
    const char* rec;
    vbuf line = {0};
    bool got = false, whole = false;
    int r;
    while (next_record(in, s, &rec, &len)) {
      got = true;
      vbuf_add(&line, rec, len);
      if (len == 0 || !isspace((unsigned char)rec[len - 1])) {
        whole = true;
        break;
      }
    }
    if (whole || (got && s->eof)) {
      *row = make_row(in, line.data ? line.data : "", line.len);
      vbuf_free(&line);
      return 1;
    }
    vbuf_free(&line);
    s->pos = start; /* the line goes on in what is not read yet */
    if ((r = read_more(s, block)) != 1)
      return r;
  }
}

/* A source's next row: 1, 0 none yet (with block unset), -1 at its end,
 * -2 after a read error. */
static int source_row(run_inputs* in, run_source* s, bool block, run_row* row) {
  const char* rec;
  size_t len;
  if (s->path == NULL) {
    const char* cut;
    if (s->pos >= s->nargs)
      return -1;
    rec = s->args[s->pos] + s->sub;
    len = strlen(rec);
    /* With -d, a ::: value is records too, as in GNU parallel: -d , :::
     * a,b gives a and b. */
    cut = in->delim_set ? memmem(rec, len, in->delim, in->delim_len) : NULL;
    if (cut != NULL && cut + in->delim_len < rec + len) {
      len = (size_t)(cut - rec);
      s->sub += len + in->delim_len;
    } else {
      if (cut != NULL)
        len = (size_t)(cut - rec);
      s->pos++;
      s->sub = 0;
    }
    *row = make_row(in, rec, len);
    return 1;
  }
  if (in->arg_opt == 'L')
    return continued_row(in, s, block, row);
  while (!next_record(in, s, &rec, &len)) {
    int r = read_more(s, block);
    if (r != 1)
      return r;
  }
  *row = make_row(in, rec, len);
  return 1;
}

/* --header: a source's first row names its columns. */
static int read_header(run_inputs* in, run_source* s, size_t* pos) {
  run_row row;
  size_t i;
  int r = source_row(in, s, true, &row);
  if (r == -2)
    return -1;
  s->header_read = true;
  if (r < 0)
    return 0;
  in->names = xrealloc(in->names, (*pos + row.n) * sizeof(char*));
  for (i = in->nnames; i < *pos; i++)
    in->names[i] = NULL;
  for (i = 0; i < row.n; i++) {
    char* name = strdup(row.v[i]);
    size_t n = strlen(name);
    if (i + 1 == row.n && n > 0 && name[n - 1] == '\r')
      name[n - 1] = '\0'; /* a CR-LF line names its columns too */
    in->names[*pos + i] = name;
  }
  in->nnames = *pos + row.n;
  *pos += row.n;
  free(row.v);
  return 0;
}

/* ---- groups ----------------------------------------------------------- */

static void group_push(run_group* g, run_row row) {
  if (g->n == g->cap) {
    if (g->head > 0 && g->head * 2 >= g->n) {
      size_t i;
      for (i = 0; i < g->head; i++)
        free(g->rows[i].v);
      memmove(g->rows, g->rows + g->head, (g->n - g->head) * sizeof(run_row));
      g->n -= g->head;
      g->head = 0;
    } else {
      g->cap = g->cap ? g->cap * 2 : 64;
      g->rows = xrealloc(g->rows, g->cap * sizeof(run_row));
    }
  }
  g->rows[g->n++] = row;
}

/* Reads a group whole: its sources' rows paired; with --link the shorter
 * wrap to the longest, with :::+ the longer are cut to the shortest, as
 * GNU parallel pairs them. */
static int read_group(run_inputs* in, run_group* g) {
  run_row** cols = xrealloc(NULL, g->nsrc * sizeof(run_row*));
  size_t* ncols = xrealloc(NULL, g->nsrc * sizeof(size_t));
  size_t i, r, longest = 0;
  int rc = 0;
  for (i = 0; i < g->nsrc; i++) {
    run_source* s = &in->src[g->first + i];
    size_t cap = 0;
    run_row row;
    int got;
    cols[i] = NULL;
    ncols[i] = 0;
    while ((got = source_row(in, s, true, &row)) == 1) {
      if (ncols[i] == cap) {
        cap = cap ? cap * 2 : 16;
        cols[i] = xrealloc(cols[i], cap * sizeof(run_row));
      }
      cols[i][ncols[i]++] = row;
    }
    if (got == -2)
      rc = -1;
    if (ncols[i] > longest)
      longest = ncols[i];
  }
  for (i = 0; i < g->nsrc; i++)
    if (ncols[i] < longest && !in->link)
      longest = ncols[i];
  for (i = 0; i < g->nsrc; i++)
    if (ncols[i] == 0)
      longest = 0; /* an empty source makes no jobs */
  for (r = 0; r < longest && rc == 0; r++) {
    size_t n = 0, bytes = 0, off = 0, c;
    run_row row;
    char* strings;
    if (g->nsrc == 1) {
      group_push(g, cols[0][r]);
      cols[0][r].v = NULL;
      continue;
    }
    for (i = 0; i < g->nsrc; i++) {
      run_row* from = &cols[i][r % ncols[i]];
      n += from->n;
      for (c = 0; c < from->n; c++)
        bytes += strlen(from->v[c]) + 1;
    }
    row.n = n;
    row.v = xrealloc(NULL, n * sizeof(char*) + bytes);
    strings = (char*)(row.v + n);
    n = 0;
    for (i = 0; i < g->nsrc; i++) {
      run_row* from = &cols[i][r % ncols[i]];
      for (c = 0; c < from->n; c++) {
        size_t len = strlen(from->v[c]) + 1;
        memcpy(strings + off, from->v[c], len);
        row.v[n++] = strings + off;
        off += len;
      }
    }
    group_push(g, row);
  }
  for (i = 0; i < g->nsrc; i++) {
    for (r = 0; r < ncols[i]; r++)
      free(cols[i][r].v);
    free(cols[i]);
  }
  free(cols);
  free(ncols);
  g->eof = true;
  return rc;
}

static size_t group_rows(const run_group* g) {
  return g->n - g->head;
}

static void on_readable(uv_poll_t* p, int status, int events);

int run_inputs_open(run_inputs* in, uv_loop_t* loop, bool all) {
  size_t i, pos = 0;
  bool used_stdin = false;
  for (i = 0; i < in->nsrc; i++) {
    run_source* s = &in->src[i];
    if (s->path == NULL)
      continue;
    if (strcmp(s->path, "-") == 0) {
      if (used_stdin) {
        vow_cli_error("stdin is given as more than one input source");
        return -1;
      }
      used_stdin = true;
      s->fd = 0;
    } else {
      s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
      if (s->fd < 0) {
        vow_cli_error("cannot read input file %s: %s", s->path,
                      strerror(errno));
        return -1;
      }
    }
  }
  /* Groups: a source starts one unless it is linked to the one before. */
  in->groups = xrealloc(NULL, in->nsrc * sizeof(run_group));
  memset(in->groups, 0, in->nsrc * sizeof(run_group));
  for (i = 0; i < in->nsrc; i++) {
    if (i > 0 && (in->link || in->src[i].linked)) {
      in->groups[in->ngroups - 1].nsrc++;
      continue;
    }
    in->groups[in->ngroups].first = i;
    in->groups[in->ngroups].nsrc = 1;
    in->ngroups++;
  }
  /* --header without --colsep splits at tabs, as GNU parallel does. */
  if (in->header && !in->colsep_on)
    run_inputs_colsep(in, "\t");
  if (in->header)
    for (i = 0; i < in->nsrc; i++)
      if (read_header(in, &in->src[i], &pos) != 0)
        return -1;
  in->stream = !all && in->groups[0].nsrc == 1 && in->src[0].path != NULL;
  if (in->stream) {
    struct stat st;
    in->pollable = fstat(in->src[0].fd, &st) == 0 && !S_ISREG(st.st_mode) &&
                   loop != NULL &&
                   uv_poll_init(loop, &in->poll, in->src[0].fd) == 0;
    if (in->pollable) {
      in->poll_init = true;
      in->poll.data = in;
    }
  }
  in->rest = 1;
  for (i = in->stream ? 1 : 0; i < in->ngroups; i++) {
    if (read_group(in, &in->groups[i]) != 0)
      return -1;
    if (i > 0)
      in->rest *= group_rows(&in->groups[i]);
  }
  return 0;
}

/* ---- tuples ----------------------------------------------------------- */

/* Tuples available from here on without reading more. */
static size_t available(const run_inputs* in) {
  size_t rows = group_rows(&in->groups[0]);
  if (in->rest == 0 || rows == 0)
    return 0;
  return rows * in->rest - in->k;
}

size_t run_inputs_left(const run_inputs* in) {
  if (!in->groups[0].eof)
    return SIZE_MAX;
  return available(in);
}

/* Calls fn for each value of the tuple j ahead. */
static void tuple_values(const run_inputs* in, size_t j,
                         void (*fn)(void*, const char*), void* arg) {
  size_t at = in->k + j, g, c;
  size_t* idx = xrealloc(NULL, in->ngroups * sizeof(size_t));
  idx[0] = in->groups[0].head + at / in->rest;
  at %= in->rest;
  /* An odometer: the last group turns fastest. */
  for (g = in->ngroups; g-- > 1;) {
    size_t n = group_rows(&in->groups[g]);
    idx[g] = in->groups[g].head + at % n;
    at /= n;
  }
  for (g = 0; g < in->ngroups; g++) {
    const run_row* row = &in->groups[g].rows[idx[g]];
    for (c = 0; c < row->n; c++)
      fn(arg, row->v[c]);
  }
  free(idx);
}

/* A tuple's values, gathered to be measured: on the stack for the usual
 * few, on the heap past that. */
typedef struct measure {
  char* few[64];
  char** v;
  size_t n, cap;
} measure;

static void add_measured(void* arg, const char* v) {
  measure* m = arg;
  if (m->n == m->cap) {
    char** grown =
        xrealloc(m->v == m->few ? NULL : m->v, 2 * m->cap * sizeof(char*));
    if (m->v == m->few)
      memcpy(grown, m->few, sizeof(m->few));
    m->v = grown;
    m->cap *= 2;
  }
  m->v[m->n++] = (char*)v;
}

/* -X/-m/--xargs: adds tuple j to the job's measure. */
static void measure_tuple(const run_inputs* in, size_t j,
                          run_linelen_job* job) {
  measure m;
  m.v = m.few;
  m.n = 0;
  m.cap = sizeof(m.few) / sizeof(m.few[0]);
  tuple_values(in, j, add_measured, &m);
  run_linelen_add(in, job, m.v, m.n);
  if (m.v != m.few)
    free(m.v);
}

/* How many tuples the next job takes of the n available; 0 when it
 * cannot be told before more is read. -X/-m/--xargs fill a line as GNU
 * parallel does: a tuple that brings the line to its budget goes to the
 * next job (unless it is the first). */
static size_t job_tuples(run_inputs* in, size_t n) {
  run_linelen_job job;
  size_t j;
  bool ended = in->groups[0].eof;
  if (in->multi == 0) {
    size_t want = in->max_args ? in->max_args : 1;
    return n >= want ? want : ended ? n : 0;
  }
  if (ended && in->multi != 'x' && in->cap_tuples == 0) {
    /* -X/-m: once the rest fits one command line, it is spread evenly
     * over the job slots, as GNU parallel spreads it. */
    memset(&job, 0, sizeof(job));
    for (j = 0; j < n; j++) {
      measure_tuple(in, j, &job);
      if (run_linelen_of(in, &job) >= in->linelen.max && j > 0)
        break;
      if (in->max_args && j + 1 == in->max_args)
        break;
    }
    if (j == n)
      in->cap_tuples = (n + in->jobs - 1) / in->jobs;
  }
  memset(&job, 0, sizeof(job));
  for (j = 0; j < n; j++) {
    measure_tuple(in, j, &job);
    if (j > 0 && run_linelen_of(in, &job) >= in->linelen.max)
      return j;
    if (in->cap_tuples && j + 1 == in->cap_tuples)
      return j + 1;
    if (in->max_args && j + 1 == in->max_args)
      return j + 1;
  }
  return ended ? n : 0;
}

typedef struct collect {
  vbuf strings;
  size_t n;
} collect;

static void add_value(void* arg, const char* v) {
  collect* c = arg;
  vbuf_add(&c->strings, v, strlen(v) + 1);
  c->n++;
}

static void take_tuples(run_inputs* in, size_t take, run_args* out) {
  collect c = {{0}, 0};
  size_t j, i, off;
  run_group* g0 = &in->groups[0];
  memset(out, 0, sizeof(*out));
  out->tup = xrealloc(NULL, (take + 1) * sizeof(size_t));
  for (j = 0; j < take; j++) {
    out->tup[j] = c.n;
    tuple_values(in, j, add_value, &c);
  }
  out->tup[take] = c.n;
  out->ntup = take;
  if (in->zero_args) {
    out->ntup = 0;
    c.n = 0;
    out->tup[0] = 0;
  }
  out->n = c.n;
  out->block = c.strings.data;
  out->v = xrealloc(NULL, (c.n + 1) * sizeof(char*));
  for (i = 0, off = 0; i < c.n; i++) {
    out->v[i] = out->block + off;
    off += strlen(out->v[i]) + 1;
  }
  out->v[c.n] = NULL;
  /* Used up: whole head rows are freed as the tuples pass them. */
  in->k += take;
  while (in->k >= in->rest && g0->head < g0->n) {
    free(g0->rows[g0->head].v);
    g0->rows[g0->head].v = NULL;
    g0->head++;
    in->k -= in->rest;
  }
}

/* Reads what the streamed group has without waiting: false after an
 * error. */
static bool pull_rows(run_inputs* in, bool block) {
  run_group* g0 = &in->groups[0];
  run_source* s = &in->src[0];
  for (;;) {
    run_row row;
    int r = source_row(in, s, block, &row);
    if (r == 1) {
      group_push(g0, row);
      if (block)
        return true;
      continue;
    }
    if (r == -1)
      g0->eof = true;
    return r != -2;
  }
}

static void watch(run_inputs* in, bool on) {
  if (!in->pollable || on == in->poll_on)
    return;
  in->poll_on = on;
  if (on)
    uv_poll_start(&in->poll, UV_READABLE, on_readable);
  else
    uv_poll_stop(&in->poll);
}

static void on_readable(uv_poll_t* p, int status, int events) {
  run_inputs* in = p->data;
  (void)events;
  /* One read() cannot block: poll said there is something, or the end. */
  if (status < 0 || read_some(&in->src[0]) <= 0)
    in->src[0].eof = true;
  if (!pull_rows(in, false))
    in->src[0].eof = true;
  watch(in, false);
  in->ready();
}

int run_inputs_next(run_inputs* in, run_args* out, bool block) {
  size_t take;
  if (in->rest == 0)
    return -1;
  for (;;) {
    size_t n = available(in);
    if (in->stream && !in->groups[0].eof) {
      if (!pull_rows(in, false))
        in->groups[0].eof = true;
      n = available(in);
    }
    take = n > 0 ? job_tuples(in, n) : 0;
    if (take > 0)
      break;
    if (in->groups[0].eof)
      return -1;
    if (block || !in->pollable) {
      /* A regular file never makes us wait long: read it here. */
      if (read_some(&in->src[0]) < 0 || !pull_rows(in, false))
        in->groups[0].eof = true;
      continue;
    }
    watch(in, true);
    return 0;
  }
  take_tuples(in, take, out);
  /* Read ahead of the jobs a little, so a free slot rarely waits. */
  if (in->stream && !in->groups[0].eof && !block &&
      available(in) < (size_t)in->jobs * 2 + 16)
    watch(in, true);
  return 1;
}

void run_inputs_pause(run_inputs* in) {
  watch(in, false);
}

void run_args_free(run_args* a) {
  free(a->v);
  free(a->tup);
  free(a->block);
  memset(a, 0, sizeof(*a));
}

void run_inputs_close(run_inputs* in) {
  size_t i, r;
  if (in->poll_init) {
    uv_poll_stop(&in->poll);
    uv_close((uv_handle_t*)&in->poll, NULL);
    in->poll_init = false;
  }
  for (i = 0; i < in->ngroups; i++) {
    for (r = in->groups[i].head; r < in->groups[i].n; r++)
      free(in->groups[i].rows[r].v);
    free(in->groups[i].rows);
  }
  for (i = 0; i < in->nsrc; i++) {
    if (in->src[i].fd > 0)
      close(in->src[i].fd);
    vbuf_free(&in->src[i].buf);
  }
  for (i = 0; i < in->nnames; i++)
    free(in->names[i]);
  free(in->names);
  free(in->groups);
  free(in->src);
  if (in->colsep_on && !in->colsep_literal)
    regfree(&in->colsep);
}
