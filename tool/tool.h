/* tool/tool.h — what the vow executable's parts (the commands in cli/, the
 * daemon in daemon/) share: exit statuses, error lines, a byte buffer,
 * the clock, CPU counts, shell quoting, where vow-worker is. */
#ifndef VOW_TOOL_TOOL_H
#define VOW_TOOL_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses, as GNU parallel's: 1..100 failed jobs, 101 more. */
#define VOW_EXIT_MANY 101
#define VOW_EXIT_ERROR 255

/* Prints "vow: " and the message to stderr. */
void vow_cli_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/* vow-worker: $VOW_WORKER, else beside this vow binary, else on PATH.
 * malloc'd. */
char* vow_cli_find_worker(void);

/* The time of day in seconds. */
double vow_cli_now(void);

/* Online CPUs, at least 1. */
unsigned vow_cli_cpus(void);
/* -j N, N%, +N, -N, 0 as GNU parallel reads them; 0 on a bad value. */
unsigned vow_cli_jobs(const char* spec, unsigned max_useful);

/* A growing byte buffer. */
typedef struct vbuf {
  char* data;
  size_t len, cap;
} vbuf;
void vbuf_add(vbuf* b, const void* p, size_t n);
void vbuf_str(vbuf* b, const char* s);
void vbuf_free(vbuf* b);

/* Shell-quotes s onto b: as is when it is made of safe characters, else
 * in single quotes. */
void vow_cli_quote(vbuf* b, const char* s);

#endif
