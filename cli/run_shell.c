/* vow run --shell: values quoted for where they land in the command.
 *
 * The command's own text decides what a value inserted into it means to
 * /bin/sh: unquoted, inside '...' (where '$(touch X)' is text), inside
 * "..." (where it would run), in a comment, inside $(...). A value quoted
 * for the wrong one escapes it: 'x' pasted into printf '%s' '{}' closes
 * the command's quote and runs what follows. So the command's text is
 * read as sh reads it, and each value is quoted for the context at its
 * replacement string. Where the exact quoting depends on more than this
 * reader follows (inside backquotes, ${...}, or a here-document), the
 * command is refused before anything runs. */
#include <string.h>

#include "run.h"

enum {
  SH_PLAIN,   /* unquoted */
  SH_SINGLE,  /* '...' */
  SH_DOUBLE,  /* "..." */
  SH_SUBST,   /* $( ... ): unquoted again, up to its ')' */
  SH_ARITH,   /* $(( ... )) */
  SH_BRACE,   /* ${ ... } */
  SH_BACKTICK /* `...` */
};

void sh_lex_init(sh_lexer* l) {
  memset(l, 0, sizeof(*l));
  l->ctx[0] = SH_PLAIN;
  l->prev = ' ';
}

static int top(const sh_lexer* l) {
  return l->ctx[l->depth];
}

static void push(sh_lexer* l, int ctx) {
  if (l->depth + 1 >= (int)sizeof(l->ctx)) {
    l->too_deep = true;
    return;
  }
  l->ctx[++l->depth] = (unsigned char)ctx;
  l->parens[l->depth] = 0;
}

static void pop(sh_lexer* l) {
  if (l->depth > 0)
    l->depth--;
}

void sh_lex_feed(sh_lexer* l, char c) {
  int ctx = top(l);
  char prev = l->prev;
  bool after_dollar = l->after_dollar, opened = l->subst_opened;
  l->prev = c;
  l->after_dollar = l->subst_opened = false;
  if (l->comment) {
    l->comment = c != '\n';
    return;
  }
  if (c == '\n' && l->heredoc_pending)
    l->in_heredoc = true; /* its body starts on this line's end */
  if (ctx == SH_SINGLE) {
    if (c == '\'')
      pop(l);
    return;
  }
  if (l->escaped) {
    l->escaped = false;
    return;
  }
  if (opened && c == '(') {
    l->ctx[l->depth] = SH_ARITH; /* $(( */
    return;
  }
  if (after_dollar && c == '(') {
    push(l, SH_SUBST);
    l->subst_opened = true;
    return;
  }
  if (after_dollar && c == '{') {
    push(l, SH_BRACE);
    return;
  }
  if (c == '\\') {
    l->escaped = true;
    return;
  }
  if (c == '$') {
    l->after_dollar = true;
    return;
  }
  if (c == '`') {
    if (ctx == SH_BACKTICK)
      pop(l);
    else
      push(l, SH_BACKTICK);
    return;
  }
  if (ctx == SH_DOUBLE) {
    if (c == '"')
      pop(l);
    return;
  }
  if (ctx == SH_BRACE) {
    if (c == '{')
      l->parens[l->depth]++;
    else if (c == '}' && l->parens[l->depth]-- == 0)
      pop(l);
    return;
  }
  if (ctx == SH_BACKTICK)
    return; /* a replacement string here is refused: nothing to follow */
  /* Unquoted: sh's own. */
  if (c == '\'') {
    push(l, SH_SINGLE);
  } else if (c == '"') {
    push(l, SH_DOUBLE);
  } else if (c == '#' && strchr(" \t\n;&|()", prev) != NULL) {
    l->comment = true;
  } else if (c == '<' && prev == '<' && ctx != SH_ARITH) {
    l->heredoc_pending = true;
  } else if (c == '(' && ctx != SH_PLAIN) {
    l->parens[l->depth]++;
  } else if (c == ')' && ctx == SH_SUBST) {
    if (l->parens[l->depth]-- == 0)
      pop(l);
  } else if (c == ')' && ctx == SH_ARITH) {
    /* The first of the two that close $(( ... )). */
    if (l->parens[l->depth]-- == 0) {
      l->parens[l->depth] = 0;
      l->ctx[l->depth] = SH_SUBST;
    }
  }
}

const char* sh_lex_unquotable(const sh_lexer* l) {
  int i;
  if (l->too_deep)
    return "nested too deep for vow to follow";
  if (l->in_heredoc)
    return "in a here-document";
  for (i = 0; i <= l->depth; i++) {
    if (l->ctx[i] == SH_BACKTICK)
      return "inside backquotes (use $(...) instead)";
    if (l->ctx[i] == SH_BRACE)
      return "inside ${...}";
  }
  return NULL;
}

bool sh_quote(sh_lexer* l, vbuf* b, const char* v) {
  int ctx = top(l);
  const char* p;
  if (ctx == SH_ARITH &&
      v[strspn(v,
               "0123456789abcdefghijklmnopqrstuvwxyz"
               "ABCDEFGHIJKLMNOPQRSTUVWXYZ_.+-*/% \t")] != '\0') {
    /* In $((...)) sh evaluates the text, and bash expands an array's
     * subscript there (a[$(cmd)]): no quoting makes that only text, so
     * only numbers, names and operators are let through. */
    l->prev = 'x';
    return false;
  }
  if (l->comment) {
    /* Ignored by sh, as long as no newline ends the comment early. */
    for (p = v; *p; p++)
      vbuf_add(b, *p == '\n' ? " " : p, 1);
    l->prev = 'x';
    return true;
  }
  if (ctx != SH_SINGLE) {
    /* The command's own \ right before: it then continues the line
     * instead of escaping the value's first character. */
    if (l->escaped)
      vbuf_add(b, "\n", 1);
    /* The command's own $ right before: written \$, it stays a $ and
     * makes no $(...), ${...} or $name of the value (nor, in bash, a
     * $'...' or $"..."). Right after the command's own $(: "" keeps the
     * value from making $((...)) of it. */
    if (l->after_dollar && b->len > 0 && b->data[b->len - 1] == '$') {
      b->data[b->len - 1] = '\\';
      vbuf_add(b, "$", 1);
    } else if (l->after_dollar || l->subst_opened) {
      vbuf_add(b, "\"\"", 2);
    }
  }
  if (ctx == SH_SINGLE) {
    /* Nothing is special in '...' but its end: each ' of the value ends
     * it, stands escaped, and starts it again. */
    for (p = v; *p; p++)
      vbuf_add(b, *p == '\'' ? "'\\''" : p, *p == '\'' ? 4 : 1);
  } else if (ctx == SH_DOUBLE || ctx == SH_ARITH) {
    for (p = v; *p; p++) {
      if (strchr("$`\"\\", *p) != NULL)
        vbuf_add(b, "\\", 1);
      vbuf_add(b, p, 1);
    }
  } else {
    /* Unquoted, or in $(...). */
    vow_cli_quote(b, v);
  }
  l->escaped = l->after_dollar = l->subst_opened = false;
  l->prev = 'x';
  return true;
}
