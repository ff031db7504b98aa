/* -X, -m and --xargs: how many inputs a job's command line holds, measured
 * as GNU parallel measures it (its CommandLine::len), so that the same
 * input is cut into the same lines.
 *
 * The budget is GNU parallel's on Linux: the longest argument the kernel
 * takes (it probes 130329 bytes), less 3000 for its wrapping, halved. A
 * line's length counts the command's text once, each replacement string's
 * values (shell-quoted as GNU parallel quotes them when a shell runs the
 * command), a space between values, and with context replace (-X) the
 * text around a replacement string once per value. Without a shell (GNU
 * parallel's -q, vow's default) the total is tripled, as GNU parallel
 * counts the worst case of its quoting. */
#include <stdlib.h>
#include <string.h>

#include "run.h"

#define PROBED_MAX 130329
#define BUDGET ((PROBED_MAX - 3000) / 2)

/* GNU parallel's shell quoting (shell_quote_scalar_default): a value of
 * only -_.+ letters, digits and / as it is, else in '...', each ' as
 * '"'"'; the empty string as ''. Only its length matters here. */
static size_t quoted_len(const char* v, size_t n) {
  size_t i, quotes = 0, len;
  bool plain = true;
  if (n == 0)
    return 2;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || (c != '\0' && strchr("-_.+/", c))))
      plain = false;
    if (c == '\'')
      quotes++;
  }
  if (plain)
    return n;
  len = n + 2 + 4 * quotes; /* ' -> '"'"' */
  /* '' left at either end is dropped */
  if (v[0] == '\'')
    len -= 2;
  if (n > 0 && v[n - 1] == '\'')
    len -= 2;
  return len;
}

/* Where the command's replacement strings are: which kinds, how often, and
 * the lengths of the text around them. */
void run_linelen_init(run_inputs* in, char** cmd, size_t n, bool shell) {
  run_linelen* L = &in->linelen;
  size_t i;
  memset(L, 0, sizeof(*L));
  L->max = BUDGET;
  L->shell = shell;
  L->quote = shell && !in->raw_values;
  L->words = n;
  for (i = 0; i < n; i++) {
    const char* p = cmd[i];
    const char* group = NULL; /* start of the run of non-blanks */
    bool group_has = false;
    size_t group_text = 0;
    for (;;) {
      run_token t;
      size_t len = *p ? run_parse_token(p, in, &t) : 0;
      bool blank = *p == '\0' || *p == ' ' || *p == '\t' || *p == '\n';
      if (blank) {
        /* A group holding a replacement string is context: its text is
         * counted apart from the rest. */
        if (group != NULL && group_has) {
          L->context_len += group_text;
          L->context_groups++;
        } else if (group != NULL) {
          L->noncontext_len += group_text;
        }
        group = NULL, group_has = false, group_text = 0;
        if (*p == '\0')
          break;
        L->noncontext_len++;
        p++;
        continue;
      }
      if (group == NULL)
        group = p;
      if (len > 0 && t.kind == 'v') {
        size_t k;
        group_has = true;
        for (k = 0; k < L->nkinds; k++)
          if (L->kinds[k].pos == t.pos && strcmp(L->kinds[k].how, t.how) == 0)
            break;
        if (k == L->nkinds && k < RUN_MAX_KINDS)
          L->kinds[L->nkinds++] = t;
        if (k < RUN_MAX_KINDS)
          L->counts[k]++;
        p += len;
        continue;
      }
      if (len > 0) { /* {#} and {%} stand for text of their own */
        group_text += len;
        p += len;
        continue;
      }
      group_text++;
      p++;
    }
  }
  if (L->nkinds == 0) {
    /* No replacement string: the values are appended, as a {} */
    run_token all = {'v', 0, ""};
    L->kinds[0] = all;
    L->counts[0] = 1;
    L->nkinds = 1;
    L->context_groups++;
    L->words++;
  }
}

static size_t value_len(const run_linelen* L, const char* v,
                        const run_token* t) {
  vbuf b = {0};
  size_t len;
  run_transform(&b, v, t->how);
  len = L->quote ? quoted_len(b.data ? b.data : "", b.len) : b.len;
  vbuf_free(&b);
  return len;
}

void run_linelen_add(const run_inputs* in, run_linelen_job* job, char** v,
                     size_t nv) {
  const run_linelen* L = &in->linelen;
  size_t k, i;
  for (k = 0; k < L->nkinds; k++) {
    const run_token* t = &L->kinds[k];
    if (t->pos == 0) {
      for (i = 0; i < nv; i++)
        job->sums[k] += value_len(L, v[i], t);
    } else {
      /* a positional one counts the record's own column, as parallel
       * does when it adds a record */
      long col = t->pos > 0 ? t->pos - 1 : (long)nv + t->pos;
      if (col >= 0 && (size_t)col < nv)
        job->sums[k] += value_len(L, v[col], t);
    }
  }
  job->records++;
  job->width = nv;
}

size_t run_linelen_of(const run_inputs* in, const run_linelen_job* job) {
  const run_linelen* L = &in->linelen;
  size_t len = L->noncontext_len + (L->words ? L->words - 1 : 0), k;
  size_t recargs = job->records * job->width;
  if (in->context) {
    len += recargs * L->context_len;
    for (k = 0; k < L->nkinds; k++)
      len += job->sums[k] * L->counts[k];
    if (recargs > 0)
      len += (recargs - 1) * L->context_groups;
  } else {
    len += L->context_len;
    for (k = 0; k < L->nkinds; k++)
      len += (recargs - (recargs > 0) + job->sums[k]) * L->counts[k];
  }
  return L->shell ? len : 3 * len;
}
