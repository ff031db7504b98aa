/* Job arrays: one input split over N runs (--shard K/N, or a Slurm array
 * task's place), and `vow merge`, which puts the shards' outputs and
 * joblogs back in input order.
 *
 * Line L of the whole input (from 1) belongs to shard ((L - 1) % N) + 1:
 * dealt round, so that lines whose cost follows their place (a sweep from
 * cheap to dear) spread over the shards, and so that a stream can be
 * split without its length. A shard numbers, seeds and logs each line as
 * L, so what a line gets never depends on how the input was split. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int parse_count(const char* s, size_t* out) {
  char* end;
  unsigned long long v;
  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v == 0 || v > 1000000000ull)
    return -1;
  *out = (size_t)v;
  return 0;
}

/* A Slurm array task's place among its array's: SLURM_ARRAY_TASK_ID runs
 * from SLURM_ARRAY_TASK_MIN by SLURM_ARRAY_TASK_STEP (--array=0-9,
 * --array=1-20:2); SLURM_ARRAY_TASK_COUNT counts them. An array that
 * starts past 1 is refused: it is most often part of a bigger one sent
 * again (sbatch --array=2 to rerun task 2 of 1-3 gives task 2 of 1), and
 * taken as a whole it would run the wrong lines, silently. */
static int slurm_shard(size_t* k, size_t* n) {
  const char* id = getenv("SLURM_ARRAY_TASK_ID");
  const char* min = getenv("SLURM_ARRAY_TASK_MIN");
  const char* step = getenv("SLURM_ARRAY_TASK_STEP");
  const char* count = getenv("SLURM_ARRAY_TASK_COUNT");
  long long i, lo, by = 1;
  if (id == NULL || min == NULL || count == NULL) {
    vow_cli_error(
        "--shard slurm: this is not a Slurm array task "
        "(SLURM_ARRAY_TASK_ID, _MIN and _COUNT are not all set)");
    return -1;
  }
  i = atoll(id);
  lo = atoll(min);
  if (step != NULL && atoll(step) > 0)
    by = atoll(step);
  if (lo > 1) {
    vow_cli_error(
        "--shard slurm: this array starts at task %s; if it runs part of "
        "a bigger array again, slurm cannot tell how big: give --shard "
        "K/N (e.g. --shard \"$SLURM_ARRAY_TASK_ID/N\")",
        min);
    return -1;
  }
  if (parse_count(count, n) != 0 || i < lo || (i - lo) % by != 0 ||
      (size_t)((i - lo) / by) >= *n) {
    vow_cli_error(
        "--shard slurm: array task %s of %s from %s by %lld: the array "
        "is not one vow can split by (a list such as --array=1,5,7 is "
        "not; give --shard K/N)",
        id, count, min, by);
    return -1;
  }
  *k = (size_t)((i - lo) / by) + 1;
  return 0;
}

int vow_cli_parse_shard(const char* spec, size_t* k, size_t* n) {
  char text[64];
  char* slash;
  if (strcmp(spec, "slurm") == 0)
    return slurm_shard(k, n);
  snprintf(text, sizeof(text), "%s", spec);
  slash = strchr(text, '/');
  if (slash != NULL)
    *slash = '\0';
  if (slash == NULL || parse_count(text, k) != 0 ||
      parse_count(slash + 1, n) != 0 || *k > *n) {
    vow_cli_error(
        "--shard \"%s\": give K/N with 1 <= K <= N (shard K of N), or "
        "slurm (a Slurm array task's place in its array)",
        spec);
    return -1;
  }
  return 0;
}

/* ---- vow merge ------------------------------------------------------- */

static void merge_usage(FILE* f) {
  fputs(
      "usage: vow merge OUT.1 ... OUT.N > out.jsonl\n"
      "       vow merge --joblog LOG.1 ... LOG.N > joblog\n"
      "Puts the outputs of vow map --shard K/N (K = 1..N, in that order)\n"
      "back in input order: line L of the whole input was the\n"
      "((L - 1) / N + 1)th line of shard ((L - 1) % N) + 1. A shard that\n"
      "stopped early is refused, naming the first line it lacks.\n"
      "--joblog: the joblogs of vow map or vow run shards (their Seq is\n"
      "the line's or job's number in the whole input), one header, lines\n"
      "by Seq.\n",
      f);
}

typedef struct shard_file {
  FILE* f;
  const char* path;
  char* line;
  size_t cap;
  ssize_t len;
} shard_file;

static ssize_t next_of(shard_file* s) {
  s->len = getline(&s->line, &s->cap, s->f);
  return s->len;
}

static int merge_outputs(int n, char** paths) {
  shard_file* s = calloc((size_t)n, sizeof(*s));
  int k, status = 0, ended = -1;
  size_t line = 0;
  if (s == NULL)
    return VOW_EXIT_ERROR;
  for (k = 0; k < n; k++) {
    s[k].path = paths[k];
    if ((s[k].f = fopen(paths[k], "r")) == NULL) {
      vow_cli_error("cannot read %s: %s", paths[k], strerror(errno));
      status = VOW_EXIT_ERROR;
      goto out;
    }
  }
  /* Round by round; the first shard to run out ends the input there: no
   * shard may have a line after that one (a complete split of T lines
   * gives shard k ceil((T - k + 1) / N) of them). */
  for (;;) {
    for (k = 0; k < n && ended < 0; k++) {
      line++;
      if (next_of(&s[k]) < 0) {
        ended = k;
        break;
      }
      if (fwrite(s[k].line, 1, (size_t)s[k].len, stdout) != (size_t)s[k].len)
        break;
      if (s[k].line[s[k].len - 1] != '\n')
        fputc('\n', stdout);
    }
    if (ended >= 0)
      break;
  }
  for (k = 0; k < n; k++)
    if (k != ended && next_of(&s[k]) >= 0) {
      vow_cli_error(
          "%s ends before input line %zu, but %s goes on: a shard stopped "
          "early; run it again (with --joblog FILE --resume it runs only "
          "what it lacks) and merge then",
          s[ended].path, line, s[k].path);
      status = VOW_EXIT_ERROR;
      goto out;
    }
  if (fflush(stdout) != 0) {
    vow_cli_error("writing standard output: %s", strerror(errno));
    status = VOW_EXIT_ERROR;
  }
out:
  for (k = 0; k < n; k++) {
    if (s[k].f != NULL)
      fclose(s[k].f);
    free(s[k].line);
  }
  free(s);
  return status;
}

typedef struct log_line {
  size_t seq;
  char* text;
} log_line;

static int by_seq(const void* a, const void* b) {
  const log_line* x = a;
  const log_line* y = b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int merge_joblogs(int n, char** paths) {
  log_line* all = NULL;
  size_t count = 0, cap = 0, i;
  char* header = NULL;
  int k, status = 0;
  for (k = 0; k < n && status == 0; k++) {
    FILE* f = fopen(paths[k], "r");
    char* line = NULL;
    size_t lcap = 0;
    ssize_t len;
    bool first = true;
    if (f == NULL) {
      vow_cli_error("cannot read %s: %s", paths[k], strerror(errno));
      return VOW_EXIT_ERROR;
    }
    while ((len = getline(&line, &lcap, f)) >= 0) {
      char* end;
      size_t seq;
      if (first && strncmp(line, "Seq\t", 4) == 0) {
        if (header == NULL)
          header = strdup(line);
        first = false;
        continue;
      }
      first = false;
      seq = strtoull(line, &end, 10);
      if (end == line || *end != '\t') {
        vow_cli_error("%s: \"%.40s\" is not a joblog line", paths[k], line);
        status = VOW_EXIT_ERROR;
        break;
      }
      if (count == cap) {
        log_line* grown;
        cap = cap ? cap * 2 : 256;
        grown = realloc(all, cap * sizeof(*all));
        if (grown == NULL) {
          status = VOW_EXIT_ERROR;
          break;
        }
        all = grown;
      }
      all[count].seq = seq;
      all[count].text = strdup(line);
      count++;
    }
    free(line);
    fclose(f);
  }
  if (status == 0) {
    qsort(all, count, sizeof(*all), by_seq);
    if (header != NULL)
      fputs(header, stdout);
    for (i = 0; i < count; i++)
      fputs(all[i].text, stdout);
    if (fflush(stdout) != 0) {
      vow_cli_error("writing standard output: %s", strerror(errno));
      status = VOW_EXIT_ERROR;
    }
  }
  for (i = 0; i < count; i++)
    free(all[i].text);
  free(all);
  free(header);
  return status;
}

int vow_cli_merge(int argc, char** argv) {
  bool joblogs = false;
  int first = 1;
  if (argc > 1 &&
      (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    merge_usage(stdout);
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "--joblog") == 0) {
    joblogs = true;
    first = 2;
  }
  if (first >= argc) {
    merge_usage(stderr);
    return VOW_EXIT_ERROR;
  }
  return joblogs ? merge_joblogs(argc - first, argv + first)
                 : merge_outputs(argc - first, argv + first);
}
