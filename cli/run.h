/* cli/run.h — vow run's inputs and expansion; private to cli/. */
#ifndef VOW_CLI_RUN_H
#define VOW_CLI_RUN_H

#include <stdio.h>

#include "cli.h"

typedef struct input_list {
  char** items;
  size_t n, cap;
} input_list;

typedef struct run_inputs {
  input_list* lists;
  size_t nlists;
  bool link;
} run_inputs;

void run_list_add(input_list* l, const char* s);
/* One item a line (or NUL-separated). Returns 0, or -1 after an error
 * message. */
int run_list_read(input_list* l, FILE* f, const char* name, bool nul);
/* Jobs the inputs make: the product of the lists' sizes, or with --link
 * the longest list's (shorter ones wrap around). */
size_t run_job_count(const run_inputs* in);
/* The value from each list for job `index` (0-based). */
void run_job_args(const run_inputs* in, size_t index, const char** out);
/* True when word holds a replacement string. */
bool run_has_replacement(const char* word);
/* Appends word with its replacement strings made; values are
 * shell-quoted when quote is set. */
void run_expand(vbuf* b, const char* word, const run_inputs* in,
                const char** args, size_t seq, unsigned slot, bool quote);

#endif
