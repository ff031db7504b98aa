/* vow run's replacement strings: {} {.} {/} {//} {/.} {#} {%} {n}
 * {-n} and --header's {name}, made into argv words, a /bin/sh command
 * with the values quoted, or a plain string. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

/* ---- words ------------------------------------------------------------ */

void run_words_end(run_words* w) {
  if (w->mode != WORDS_ARGV)
    return;
  if (w->n + 2 > w->cap) {
    w->cap = w->cap ? w->cap * 2 : 16;
    w->w = realloc(w->w, w->cap * sizeof(char*));
    if (w->w == NULL) {
      vow_cli_error("out of memory");
      exit(VOW_EXIT_ERROR);
    }
  }
  w->w[w->n++] = strndup(w->cur.data ? w->cur.data : "", w->cur.len);
  w->w[w->n] = NULL;
  w->cur.len = 0;
}

char** run_words_take(run_words* w) {
  char** out;
  if (w->mode != WORDS_ARGV) {
    w->mode = WORDS_ARGV;
    run_words_end(w);
  }
  if (w->w == NULL) {
    w->w = calloc(1, sizeof(char*));
    if (w->w == NULL)
      exit(VOW_EXIT_ERROR);
  }
  out = w->w;
  w->w = NULL;
  w->n = w->cap = 0;
  vbuf_free(&w->cur);
  return out;
}

void run_words_free(run_words* w) {
  size_t i;
  for (i = 0; i < w->n; i++)
    free(w->w[i]);
  free(w->w);
  vbuf_free(&w->cur);
  memset(w, 0, sizeof(*w));
}

/* ---- replacement strings ---------------------------------------------- */

/* The command's own text, which with --shell the lexer reads as sh will. */
static void put_text(run_words* out, const char* p, size_t n) {
  size_t i;
  vbuf_add(&out->cur, p, n);
  if (out->mode == WORDS_SHELL)
    for (i = 0; i < n; i++)
      sh_lex_feed(&out->sh, p[i]);
}

static const char* base_of(const char* s) {
  const char* slash = strrchr(s, '/');
  return slash ? slash + 1 : s;
}

void run_transform(vbuf* t, const char* v, const char* how) {
  if (strcmp(how, "") == 0) {
    vbuf_str(t, v);
  } else if (strcmp(how, ".") == 0 || strcmp(how, "/.") == 0) {
    const char* from = how[0] == '/' ? base_of(v) : v;
    const char* dot = strrchr(from, '.');
    const char* slash = strrchr(from, '/');
    if (dot != NULL && (slash == NULL || dot > slash) && dot != from &&
        dot[-1] != '/')
      vbuf_add(t, from, (size_t)(dot - from));
    else
      vbuf_str(t, from);
  } else if (strcmp(how, "/") == 0) {
    vbuf_str(t, base_of(v));
  } else if (strcmp(how, "//") == 0) {
    const char* slash = strrchr(v, '/');
    if (slash == NULL)
      vbuf_str(t, ".");
    else if (slash == v)
      vbuf_str(t, "/");
    else
      vbuf_add(t, v, (size_t)(slash - v));
  }
}

/* Appends the value after the named transformation, quoted for the shell
 * when the words are a shell command. */
static void put_value(run_words* out, const char* v, const char* how) {
  vbuf t = {0};
  run_transform(&t, v, how);
  if (out->mode != WORDS_SHELL) {
    if (t.len)
      vbuf_add(&out->cur, t.data, t.len);
  } else if (out->raw) {
    put_text(out, t.data ? t.data : "", t.len);
  } else if (!sh_quote(&out->sh, &out->cur, t.data ? t.data : "") &&
             out->refused == NULL) {
    vbuf why = {0};
    vbuf_str(&why, "--shell: the value ");
    vow_cli_quote(&why, t.data ? t.data : "");
    vbuf_str(&why,
             " stands inside $((...)), where sh evaluates it: only "
             "numbers, names and operators may");
    vbuf_add(&why, "", 1);
    out->refused = why.data;
  }
  vbuf_free(&t);
}

static bool transformation(const char* q, size_t len) {
  return len == 0 || (len == 1 && (q[0] == '.' || q[0] == '/')) ||
         (len == 2 && q[0] == '/' && (q[1] == '/' || q[1] == '.'));
}

size_t run_parse_token(const char* p, const run_inputs* in, run_token* t) {
  const char* q = p + 1;
  const char* close;
  size_t len, i;
  bool neg = false;
  long n = 0;
  if (*p != '{' || (close = strchr(q, '}')) == NULL)
    return 0;
  len = (size_t)(close - q);
  t->pos = 0;
  t->kind = 'v';
  if (len == 1 && (q[0] == '#' || q[0] == '%')) {
    t->kind = q[0];
    return 3;
  }
  for (i = 0; i < in->nnames; i++) {
    /* --header's names: {name} is that column, {name/} and the other
     * transformations too. */
    size_t nlen = in->names[i] != NULL ? strlen(in->names[i]) : 0;
    if (nlen > 0 && nlen <= len && strncmp(in->names[i], q, nlen) == 0 &&
        transformation(q + nlen, len - nlen)) {
      t->pos = (long)i + 1;
      memcpy(t->how, q + nlen, len - nlen);
      t->how[len - nlen] = '\0';
      return len + 2;
    }
  }
  if (*q == '-' && q[1] >= '0' && q[1] <= '9')
    neg = true, q++;
  if (*q >= '0' && *q <= '9') {
    while (*q >= '0' && *q <= '9' && n < 1000000)
      n = n * 10 + (*q++ - '0');
    if (n == 0)
      return 0;
  }
  len = (size_t)(close - q);
  if (n > 0 && len > 0 && strspn(q, " \t\n") == len)
    len = 0; /* {1 }: white space after a position, as parallel takes it */
  if (!transformation(q, len))
    return 0;
  memcpy(t->how, q, len);
  t->how[len] = '\0';
  t->pos = neg ? -n : n;
  return (size_t)(close + 1 - p);
}

bool run_has_replacement(const char* word, const run_inputs* in) {
  const char* p;
  run_token t;
  for (p = word; (p = strchr(p, '{')) != NULL; p++)
    if (run_parse_token(p, in, &t) > 0)
      return true;
  return false;
}

/* Between two values of one {}: a new argv word (as parallel -q makes
 * it), or a space. */
static void separate(run_words* out) {
  if (out->mode == WORDS_ARGV)
    run_words_end(out);
  else
    put_text(out, " ", 1);
}

static bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\n';
}

/* Expands the replacement strings in [p, end): {} (and its
 * transformations) is the values v[from..to), one word each (none: no
 * word at all, not even an empty quoted one, as with -N0); {n} is the
 * job's n-th value, nothing past them, as in GNU parallel. */
static void expand_span(run_words* out, const char* p, const char* end,
                        const run_inputs* in, const run_args* a, size_t from,
                        size_t to, size_t seq, unsigned slot) {
  while (p < end) {
    run_token t;
    size_t len = run_parse_token(p, in, &t);
    if (len == 0 || p + len > end) {
      put_text(out, p, 1);
      p++;
      continue;
    }
    if (t.kind != 'v') {
      char num[32];
      int k =
          snprintf(num, sizeof(num), "%zu", t.kind == '#' ? seq : (size_t)slot);
      put_text(out, num, (size_t)k);
    } else if (t.pos == 0) {
      size_t i;
      for (i = from; i < to; i++) {
        if (i > from)
          separate(out);
        put_value(out, a->v[i], t.how);
      }
    } else {
      size_t k = (size_t)(t.pos < 0 ? -t.pos : t.pos);
      if (k <= a->n)
        put_value(out, a->v[t.pos > 0 ? k - 1 : a->n - k], t.how);
    }
    p += len;
  }
}

/* Expands word with every value of the job. */
static void expand_word(run_words* out, const char* word, const run_inputs* in,
                        const run_args* a, size_t seq, unsigned slot) {
  expand_span(out, word, word + strlen(word), in, a, 0, a->n, seq, slot);
}

/* GNU parallel's context replace (with -X, -N, and -L without -m or
 * --xargs): a group of a word (the word, or a part of it between blanks)
 * that holds {} or a transformation of it stands once for each of the
 * job's values, {} being that value in each copy and {n} the job's n-th
 * value throughout; a group of {n}s alone stands once. So seq 19 | vow
 * run -N10 echo a{}b gives a1b a2b ... a10b. */
static void expand_context(run_words* out, const char* word,
                           const run_inputs* in, const run_args* a, size_t seq,
                           unsigned slot) {
  const char* p = word;
  while (*p) {
    const char* end = p;
    const char* q;
    bool values = false, every = false;
    size_t i, copies;
    if (blank(*p)) {
      put_text(out, p, 1);
      p++;
      continue;
    }
    while (*end && !blank(*end))
      end++;
    for (q = p; q < end; q++) {
      run_token t;
      size_t len = run_parse_token(q, in, &t);
      if (len > 0 && q + len <= end && t.kind == 'v') {
        values = true;
        every |= t.pos == 0;
        q += len - 1;
      }
    }
    copies = every && a->n > 1 ? a->n : 1;
    for (i = 0; i < copies; i++) {
      if (i > 0)
        separate(out);
      size_t cur = values ? i : 0;
      expand_span(out, p, end, in, a, cur, cur < a->n ? cur + 1 : cur, seq,
                  slot);
    }
    p = end;
  }
}

void run_expand_command(run_words* out, char** cmd, size_t n,
                        const run_inputs* in, const run_args* a, size_t seq,
                        unsigned slot) {
  bool any = false;
  size_t i;
  out->raw = in->raw_values;
  if (out->mode == WORDS_SHELL)
    sh_lex_init(&out->sh);
  for (i = 0; i < n; i++)
    any |= run_has_replacement(cmd[i], in);
  for (i = 0; i < n; i++) {
    if (out->mode != WORDS_ARGV && i > 0)
      put_text(out, " ", 1);
    if (in->context)
      expand_context(out, cmd[i], in, a, seq, slot);
    else
      expand_word(out, cmd[i], in, a, seq, slot);
    run_words_end(out);
  }
  for (i = 0; !any && i < a->n; i++) {
    /* No replacement string: the values go at the end. */
    if (out->mode != WORDS_ARGV)
      put_text(out, " ", 1);
    put_value(out, a->v[i], "");
    run_words_end(out);
  }
}

const char* run_shell_check(char** cmd, size_t n, const run_inputs* in,
                            char* why, size_t whylen) {
  sh_lexer l;
  bool any = false;
  size_t i;
  sh_lex_init(&l);
  for (i = 0; i < n; i++) {
    const char* p = cmd[i];
    if (i > 0)
      sh_lex_feed(&l, ' ');
    while (*p) {
      run_token t;
      size_t len = run_parse_token(p, in, &t);
      const char* bad;
      if (len == 0) {
        sh_lex_feed(&l, *p++);
        continue;
      }
      any = true;
      if (t.kind == 'v' && (bad = sh_lex_unquotable(&l)) != NULL) {
        snprintf(why, whylen,
                 "--shell: %.*s is %s, where vow cannot quote a value so "
                 "that it stays text",
                 (int)len, p, bad);
        return why;
      }
      sh_lex_feed(&l, '0'); /* what stands there: a word */
      p += len;
    }
  }
  if (!any && (sh_lex_feed(&l, ' '), sh_lex_unquotable(&l)) != NULL) {
    snprintf(why, whylen,
             "--shell: the values would go after the command, %s, where vow "
             "cannot quote them so that they stay text",
             sh_lex_unquotable(&l));
    return why;
  }
  return NULL;
}

void run_expand_plain(vbuf* b, const char* word, const run_inputs* in,
                      const run_args* a, size_t seq, unsigned slot) {
  run_words w = {0};
  w.mode = WORDS_PLAIN;
  w.cur = *b;
  expand_word(&w, word, in, a, seq, slot);
  *b = w.cur;
}
