/* cli/map.h — vow map's state, shared by map.c (options, the run) and
 * map_stream.c (lines in, results out); private to cli/. */
#ifndef VOW_CLI_MAP_H
#define VOW_CLI_MAP_H

#include <stdio.h>
#include <uv.h>

#include "cli.h"
#include "json.h"
#include "vow/vow.h"

/* Lines read and not yet written: memory holds this window, not the
 * input. It is many groups deep, so every worker stays busy. */
#define MAP_WINDOW (1u << 16)
/* Lines a vow_pool_map call takes at most (the pool cuts them into
 * chunks); a group with a failing line is run again line by line. */
#define MAP_GROUP 4096

typedef struct map_line {
  vbuf arg;   /* the line's msgpack, kept for a rerun alone */
  char* text; /* the output line, once settled */
  bool settled, error, skipped;
} map_line;

typedef struct map_state {
  vow_ctx_t* ctx;
  vow_pool_t* pool;
  const char* fn;
  /* options */
  bool unordered, numbers, errors_to_stderr, traceback;
  int bytes_mode;
  FILE* joblog;
  const char* joblog_path;
  vbuf joblog_due; /* lines for results not yet flushed out of stdout */
  bool output_failed, broken_pipe;
  double start;
  char* skip; /* --resume: by line - 1, done in an earlier run */
  size_t nskip;
  vow_progress progress;
  /* lines: line i lives in ring[i % MAP_WINDOW] until written */
  map_line* ring;
  size_t nread; /* lines read (of this shard's) */
  /* --shard K/N: this run takes input line L when (L - 1) % N == K - 1,
   * and every number it writes or seeds with is L; 0 and 0 without. */
  size_t shard_k, shard_n;
  size_t nseen;    /* lines of the whole input seen */
  size_t next_out; /* the oldest line still held */
  size_t done, failed;
  /* stdin */
  int fd;
  bool pollable, polling, readable, fd_eof, input_ended;
  uv_poll_t poll;
  vbuf buf;
  size_t pos;
  off_t size, consumed; /* a regular file's size, and bytes cut into lines */
  int read_errno;
  /* the group being filled */
  unsigned workers;
  size_t group_first, group_valid, group_target; /* lines [first, +valid) */
  vbuf group_items;
} map_state;

extern map_state the_map;

/* Input line L (from 1) of what this run holds as line i (from 0). */
static inline size_t map_lineno(size_t i) {
  return the_map.shard_n ? i * the_map.shard_n + the_map.shard_k : i + 1;
}

/* Starts reading stdin on loop; lines go to the pool as they come. */
int map_stream_start(uv_loop_t* loop);
/* Every line read, run and written, and the input ended. */
bool map_stream_finished(void);
void map_stream_close(void);
/* Flushes stdout, then writes the joblog lines of the results it held: a
 * joblog line never precedes its result. A write error is said once and
 * ends the run (map_stream_finished), with status 255. */
void map_flush(void);
void map_progress(bool final);

#endif
