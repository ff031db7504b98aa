/* cli/run.h — vow run's inputs and expansion; private to cli/. */
#ifndef VOW_CLI_RUN_H
#define VOW_CLI_RUN_H

#include <regex.h>
#include <stdio.h>
#include <uv.h>

#include "cli.h"

/* ---- inputs (run_input.c) ---------------------------------------------

 * Inputs come from sources: a ::: list, or a :::: file (stdin is "-").
 * Sources joined by :::+ / ::::+ (or all of them with --link) form a group
 * whose rows pair their values, the shorter ones wrapping; the groups
 * combine as every combination, the first slowest. The first group, when
 * it is one file, is read as jobs need it, so the first job starts as the
 * first line arrives and memory holds a window, not the whole input. */

typedef struct run_row {
  char** v; /* one malloc'd block: the pointers, then the strings */
  size_t n;
} run_row;

typedef struct run_source {
  char** args; /* a ::: list: argv's words */
  size_t nargs;
  const char* path; /* a :::: file; NULL for a ::: list */
  int fd;
  vbuf buf; /* read, not yet cut into records */
  size_t pos;
  size_t sub; /* a ::: value cut by -d: where its next record starts */
  bool eof, linked, header_read;
} run_source;

typedef struct run_group {
  size_t first, nsrc; /* its sources */
  run_row* rows;
  size_t head, n, cap; /* rows[head..n) not yet used up */
  bool eof;
} run_group;

/* A replacement string: kind 'v' (values), '#' (job number) or '%'
 * (slot); pos 0 every value, n the n-th, -n the n-th from the end; how
 * the transformation ("", ".", "/", "//", "/."). */
typedef struct run_token {
  char kind;
  long pos;
  char how[4];
} run_token;

#define RUN_MAX_KINDS 16

/* -X/-m/--xargs: the command's shape, measured once (run_linelen.c). */
typedef struct run_linelen {
  size_t max;            /* a line's budget */
  size_t noncontext_len; /* the command's text outside context groups */
  size_t context_len;    /* ... inside them (around replacement strings) */
  size_t context_groups; /* words (or parts between blanks) holding one */
  size_t words;
  run_token kinds[RUN_MAX_KINDS]; /* the distinct replacement strings */
  unsigned counts[RUN_MAX_KINDS]; /* how often each stands */
  size_t nkinds;
  bool shell; /* a shell runs it; else the total counts three times */
  bool quote; /* values counted shell-quoted */
} run_linelen;

/* What one job's values add to its line so far. */
typedef struct run_linelen_job {
  size_t sums[RUN_MAX_KINDS];
  size_t records, width;
} run_linelen_job;

typedef struct run_inputs {
  run_source* src;
  size_t nsrc;
  run_group* groups;
  size_t ngroups;
  bool link;      /* --link */
  char delim[16]; /* -d / -0; "\n" by default */
  size_t delim_len;
  bool delim_set; /* -d given: it splits ::: values too */
  int trim;       /* --trim: 1 left, 2 right, 3 both */
  bool trim_set;  /* --trim given (else --colsep trims both ends) */
  bool colsep_on, colsep_literal;
  regex_t colsep;
  char colsep_text[64];
  bool header;                 /* --header */
  bool warned_nul;             /* a NUL in a record was replaced, and said so */
  unsigned cr_lines, nl_lines; /* CR-LF or not: the first values' ends */
  char** names;                /* --header's column names, by position */
  size_t nnames;
  size_t max_args;     /* -N/-n/-L N: tuples a job; 0 one */
  bool zero_args;      /* -N 0: a job per tuple, inserting none */
  char arg_opt;        /* which of -N, -n, -L set max_args */
  char multi;          /* 'X' -X, 'm' -m, 'x' --xargs, 0 none */
  bool context;        /* context replace (-X, -N, -L): see run_expand.c */
  bool raw_values;     /* --shell, {} in the first word: values unquoted */
  run_linelen linelen; /* -X/-m/--xargs: a line's measure */
  size_t cap_tuples;   /* -X/-m: tuples a job once the end is read */
  unsigned jobs;
  bool stream;   /* the first group is read as jobs need it */
  bool pollable; /* ... and its file is a pipe, FIFO or tty */
  size_t k;      /* the next tuple within the head row */
  size_t rest;   /* tuples a first-group row makes */
  uv_poll_t poll;
  bool poll_on, poll_init;
  void (*ready)(void); /* more input came */
} run_inputs;

/* One job's values: tuples of positional values, flattened. */
typedef struct run_args {
  char** v;
  size_t n;
  size_t* tup; /* tuple i is v[tup[i]..tup[i+1]) */
  size_t ntup;
  char* block; /* owns the strings */
} run_args;

/* Splits argv[first..argc) after the command into sources. Returns 0, or
 * -1 after an error message. */
int run_inputs_parse(run_inputs* in, int argc, char** argv, int first,
                     const char** arg_files, size_t narg_files);
/* Sets -d DELIM (C escapes: \n \t \0 \\ \xHH \NNN); -1 on a bad one. */
int run_inputs_delim(run_inputs* in, const char* spec);
/* Sets --colsep RE (POSIX extended, with Perl's \t \s \S \d \w); a single
 * character, or a pattern that does not compile, is taken literally. */
void run_inputs_colsep(run_inputs* in, const char* re);
/* Opens the files, reads the headers, reads whole every group that is
 * not streamed (all of them when all is set). Returns 0, or -1 after an
 * error message. */
int run_inputs_open(run_inputs* in, uv_loop_t* loop, bool all);
/* The next job's values: 1 made, 0 waiting for input (ready() is called
 * when it comes; only with a loop), -1 no more. With block set, waits in
 * read() instead. */
int run_inputs_next(run_inputs* in, run_args* out, bool block);
/* Tuples still to come, when the end of input is known; SIZE_MAX when it
 * is not yet. */
size_t run_inputs_left(const run_inputs* in);
/* Stops waiting for input: the run ends early. */
void run_inputs_pause(run_inputs* in);
void run_inputs_close(run_inputs* in);
void run_args_free(run_args* a);

/* ---- quoting for sh (run_shell.c) -------------------------------------- */

/* Reads a command's text as /bin/sh would, a character at a time, to know
 * what a value inserted at the current place would be inside. */
typedef struct sh_lexer {
  unsigned char ctx[32]; /* nested contexts: quotes, $(...), `...` */
  int parens[32];        /* open ( or { within each */
  int depth;
  char prev;
  bool escaped, after_dollar, subst_opened, comment;
  bool heredoc_pending, in_heredoc, too_deep;
} sh_lexer;

void sh_lex_init(sh_lexer* l);
void sh_lex_feed(sh_lexer* l, char c);
/* Why a value cannot be quoted exactly where the lexer stands (inside
 * backquotes, ${...} or a here-document), or NULL. */
const char* sh_lex_unquotable(const sh_lexer* l);
/* Appends v to b, quoted so that sh reads it, where the lexer stands, as
 * exactly those bytes and nothing else. False (nothing appended) where
 * that cannot be done for this value: inside $((...)), a value that is
 * not made of digits, letters, _, . and arithmetic operators. */
bool sh_quote(sh_lexer* l, vbuf* b, const char* v);

/* ---- expansion (run_expand.c) ----------------------------------------- */

typedef enum { WORDS_ARGV, WORDS_SHELL, WORDS_PLAIN } words_mode;

/* What a command expands to: argv words, or one string for /bin/sh -c
 * with the values quoted, or one plain string (--tagstring, --results). */
typedef struct run_words {
  words_mode mode;
  vbuf cur;
  char** w;
  size_t n, cap;
  bool open;
  sh_lexer sh;   /* WORDS_SHELL: where the command's text stands */
  bool raw;      /* WORDS_SHELL: values as they are (run_inputs.raw_values) */
  char* refused; /* a value sh_quote could not quote: the job must not run */
} run_words;

void run_words_end(run_words* w);    /* ends the current word */
char** run_words_take(run_words* w); /* NULL-terminated; w is emptied */
void run_words_free(run_words* w);

/* Reads a replacement string at p ("{...}"); returns its length, 0 when
 * p starts none. */
size_t run_parse_token(const char* p, const run_inputs* in, run_token* t);
/* Appends v after the transformation how ("", ".", "/", "//", "/."). */
void run_transform(vbuf* b, const char* v, const char* how);
/* -X/-m/--xargs: measures the command (words cmd[0..n)) once. */
void run_linelen_init(run_inputs* in, char** cmd, size_t n, bool shell);
/* Adds a record (a tuple of nv values) to a job's measure. */
void run_linelen_add(const run_inputs* in, run_linelen_job* job, char** v,
                     size_t nv);
/* The job's command line length by GNU parallel's measure. */
size_t run_linelen_of(const run_inputs* in, const run_linelen_job* job);

/* The shell that runs --shell commands (run_pick_shell.c); -1 after an
 * error message when $PARALLEL_SHELL names none that can run them. */
int run_pick_shell(char* out, size_t outlen);

/* True when word holds a replacement string. */
bool run_has_replacement(const char* word, const run_inputs* in);
/* With --shell: NULL when every replacement string in the command (words
 * cmd[0..n)) stands where a value can be quoted exactly; else why not
 * (into why). */
const char* run_shell_check(char** cmd, size_t n, const run_inputs* in,
                            char* why, size_t whylen);
/* Expands the command (words cmd[0..n)) for a job. */
void run_expand_command(run_words* out, char** cmd, size_t n,
                        const run_inputs* in, const run_args* a, size_t seq,
                        unsigned slot);
/* Expands one word with every value, into one plain string. */
void run_expand_plain(vbuf* b, const char* word, const run_inputs* in,
                      const run_args* a, size_t seq, unsigned slot);

#endif
