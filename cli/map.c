/* vow map: a task function over JSON lines, on the worker pool.
 *
 *   vow map LIB.so FUNCTION [options] < in.jsonl > out.jsonl
 *
 * Each input line is one task's argument; each output line its result as
 * JSON, in input order (or as completed with --unordered). A line that is
 * not JSON, or a task that fails, gives {"line":N,"error":"..."} and the
 * run goes on; the exit status counts the failures, as vow run's does. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "json.h"
#include "vow/vow.h"

typedef struct line_out {
  char* text; /* the output line, once known */
  bool error;
  bool skipped; /* done in an earlier run, per the joblog */
} line_out;

typedef struct map_state {
  vow_ctx_t* ctx;
  vow_pool_t* pool;
  const char* fn;
  vbuf* args; /* each line's msgpack, kept for a rerun line by line */
  line_out* out;
  size_t n, next_print, done, failed;
  bool unordered, numbers, errors_to_stderr, bar;
  int bytes_mode;
  FILE* joblog;
  double start;
} map_state;

static map_state M;

typedef struct slot_ref {
  size_t index;
} slot_ref;

static void emit(size_t i) {
  line_out* o = &M.out[i];
  if (o->skipped)
    return;
  FILE* f = o->error && M.errors_to_stderr ? stderr : stdout;
  if (M.numbers && !o->error)
    fprintf(f, "{\"line\":%zu,\"result\":", i + 1);
  fputs(o->text, f);
  if (M.numbers && !o->error)
    fputc('}', f);
  fputc('\n', f);
  free(o->text);
  o->text = NULL;
}

static void settle_line(size_t i, char* text, bool error) {
  M.out[i].text = text;
  M.out[i].error = error;
  M.done++;
  if (error)
    M.failed++;
  if (M.joblog) {
    char cmd[300];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(cmd, sizeof(cmd), "%s line %zu", M.fn, i + 1);
    vow_cli_joblog_write(M.joblog, i + 1, M.start,
                         (double)tv.tv_sec + (double)tv.tv_usec / 1e6 - M.start,
                         strlen(text), error ? 1 : 0, 0, cmd);
  }
  if (M.bar && M.done % 4096 == 0 && isatty(2))
    fprintf(stderr, "\rvow: %zu/%zu lines, %zu failed ", M.done, M.n, M.failed);
  if (M.unordered) {
    emit(i);
    return;
  }
  while (M.next_print < M.n &&
         (M.out[M.next_print].text != NULL || M.out[M.next_print].skipped))
    emit(M.next_print++);
}

static vow_outcome_t on_result(vow_value_t* v, vow_failure_t* f, void* data) {
  slot_ref* r = data;
  if (f != NULL) {
    char line[1024];
    vow_failure_describe(f, line, sizeof(line));
    settle_line(r->index, vow_json_error_line(r->index + 1, line), true);
    vow_failure_release(f);
  } else {
    size_t len;
    const void* b = vow_value_bytes(v, &len);
    char* text = b ? vow_msgpack_to_json(b, len, M.bytes_mode) : NULL;
    if (text == NULL)
      settle_line(r->index,
                  vow_json_error_line(r->index + 1,
                                      "the result cannot be written as JSON"),
                  true);
    else
      settle_line(r->index, text, false);
    vow_value_release(v);
  }
  return vow_ok(NULL);
}

/* Lines mapped together; a failure sends the group line by line. A group
 * is about one of the pool's chunks, so each chunk's results are written
 * (and logged in the joblog) as they arrive: a job that is killed or that
 * MPI aborts leaves a joblog to --resume from. */
#define GROUP_MAX 4096

static size_t group_size(size_t n, unsigned workers) {
  size_t g = n / ((size_t)(workers ? workers : 1) * 64);
  return g < 1 ? 1 : g > GROUP_MAX ? GROUP_MAX : g;
}

typedef struct group {
  size_t first, end; /* the lines [first, end) */
  slot_ref* refs;
  char** errs; /* per line: non-NULL when the line was not JSON */
} group;

static vow_outcome_t on_group(vow_value_t* v, vow_failure_t* f, void* data) {
  group* g = data;
  size_t k;
  if (f == NULL) {
    msgpack_unpacked un;
    uint32_t at = 0, have = 0;
    msgpack_unpacked_init(&un);
    if (vow_value_unpack(v, &un) == 0 && un.data.type == MSGPACK_OBJECT_ARRAY)
      have = un.data.via.array.size;
    for (k = g->first; k < g->end; k++) {
      vbuf text = {0};
      msgpack_sbuffer sb;
      msgpack_packer pk;
      if (g->errs[k] != NULL)
        continue;
      if (at >= have) {
        /* Never trusted to line up: a line without its result fails. */
        settle_line(k,
                    vow_json_error_line(k + 1,
                                        "the worker returned no result "
                                        "for this line"),
                    true);
        continue;
      }
      msgpack_sbuffer_init(&sb);
      msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
      msgpack_pack_object(&pk, un.data.via.array.ptr[at++]);
      if (vow_msgpack_write_json(&text, sb.data, sb.size, M.bytes_mode) == 0)
        settle_line(k, text.data ? text.data : strdup(""), false);
      else
        settle_line(k,
                    vow_json_error_line(k + 1,
                                        "the result cannot be "
                                        "written as JSON"),
                    true);
      msgpack_sbuffer_destroy(&sb);
    }
    msgpack_unpacked_destroy(&un);
    vow_value_release(v);
  } else {
    vow_failure_release(f);
    for (k = g->first; k < g->end; k++) {
      vow_promise_t* p;
      if (g->errs[k] != NULL)
        continue;
      p = vow_pool_submit(
          M.pool, M.fn,
          vow_value_new_msgpack(M.args[k].data, M.args[k].len, NULL));
      vow_promise_release(vow_add_both(p, on_result, &g->refs[k]));
    }
  }
  free(g);
  return vow_ok(NULL);
}

static void usage(FILE* f) {
  fputs(
      "usage: vow map LIB.so FUNCTION [options] < in.jsonl > out.jsonl\n"
      "Runs FUNCTION from the plugin LIB.so once per input line (a JSON\n"
      "value) on worker processes; writes one JSON result a line.\n"
      "\n"
      "  -j N              workers (default: CPUs)\n"
      "  --unordered       write results as they complete\n"
      "  --line-numbers    write {\"line\":N,\"result\":R}\n"
      "  --errors-to-stderr  error lines go to stderr, not stdout\n"
      "  --timeout S       fail a task running longer than S seconds\n"
      "  --retries N       rerun a task whose worker died, N times\n"
      "  --seed N          the run's seed, for reproducible task seeds\n"
      "  --bytes base64|array  how msgpack bytes are written (base64)\n"
      "  --worker CMD      run CMD (split at spaces) as the worker instead\n"
      "                    of vow-worker LIB.so: any program that speaks\n"
      "                    vow's protocol\n"
      "  --launcher [N/]CMD  start N workers through CMD (split at spaces),\n"
      "                    e.g. \"4/ssh -T hostA\" or \"8/srun -N1 -n1\";\n"
      "                    repeat for more hosts; -j is then their sum. The\n"
      "                    worker command must exist at the same path there\n"
      "exit status: 0 all lines succeeded; 1-100 failed lines; 101 more;\n"
      "255 bad usage.\n",
      f);
}

/* "[N/]COMMAND WORDS": N slots started through COMMAND (split at
 * spaces), as GNU parallel's --sshlogin counts them. */
static int parse_launcher(const char* spec, vow_launcher_t* out, char** text) {
  char* copy;
  char* save = NULL;
  char* word;
  char** v;
  size_t n = 0;
  const char* slash = strchr(spec, '/');
  char* end;
  unsigned long count = 1;
  if (slash != NULL && slash > spec) {
    count = strtoul(spec, &end, 10);
    if (end == slash && count > 0 && count <= 4096)
      spec = slash + 1;
    else
      count = 1;
  }
  copy = strdup(spec);
  v = calloc(strlen(spec) + 2, sizeof(char*));
  if (copy == NULL || v == NULL) {
    free(copy);
    free(v);
    return -1;
  }
  for (word = strtok_r(copy, " ", &save); word;
       word = strtok_r(NULL, " ", &save))
    v[n++] = word;
  if (n == 0) {
    free(copy);
    free(v);
    return -1;
  }
  out->workers = (unsigned)count;
  out->argv = (const char* const*)v;
  *text = copy; /* the words' storage, freed with argv */
  return 0;
}

int vow_cli_map(int argc, char** argv) {
  vow_pool_options_t o;
  vow_pool_t* pool;
  char* worker_cmd = NULL;
  const char* lib = NULL;
  const char* fn = NULL;
  char** wargv = NULL;
  char* worker_bin = NULL;
  slot_ref* refs;
  size_t cap = 0, i, group_lines;
  int k, err = 0, resume = 0;
  const char* joblog = NULL;
  char* skip = NULL;
  vow_promise_t* done;
  vow_launcher_t launchers[64];
  char* launcher_text[64];
  size_t nlaunchers = 0;
  char** lines_errs = NULL;
  vbuf* args = NULL;
  memset(&M, 0, sizeof(M));
  memset(&o, 0, sizeof(o));
  for (k = 1; k < argc; k++) {
    const char* a = argv[k];
    const char* val = k + 1 < argc ? argv[k + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--unordered") == 0) {
      M.unordered = true;
    } else if (strcmp(a, "--line-numbers") == 0) {
      M.numbers = true;
    } else if (strcmp(a, "--errors-to-stderr") == 0) {
      M.errors_to_stderr = true;
    } else if (strcmp(a, "--resume") == 0) {
      resume = 1;
    } else if (strcmp(a, "--resume-failed") == 0) {
      resume = 2;
    } else if (strcmp(a, "--bar") == 0 || strcmp(a, "--progress") == 0 ||
               strcmp(a, "--eta") == 0) {
      M.bar = true;
    } else if (a[0] == '-' && a[1] != '\0' && val == NULL) {
      vow_cli_error("%s needs a value (see vow map --help)", a);
      return VOW_EXIT_ERROR;
    } else if (strcmp(a, "-j") == 0) {
      o.workers = vow_cli_jobs(val, vow_cli_cpus());
      k++;
    } else if (strcmp(a, "--timeout") == 0) {
      o.timeout_ms = (uint64_t)(strtod(val, NULL) * 1000.0);
      k++;
    } else if (strcmp(a, "--retries") == 0) {
      char* end;
      unsigned long n;
      errno = 0;
      n = strtoul(val, &end, 10);
      if (errno != 0 || end == val || *end != '\0' || val[0] == '-' ||
          n > VOW_POOL_MAX_RETRIES) {
        vow_cli_error("--retries %s: give a count from 0 to %d", val,
                      VOW_POOL_MAX_RETRIES);
        return VOW_EXIT_ERROR;
      }
      o.retries = (unsigned)n;
      k++;
    } else if (strcmp(a, "--seed") == 0) {
      o.seed = strtoull(val, NULL, 10);
      k++;
    } else if (strcmp(a, "--bytes") == 0) {
      M.bytes_mode =
          strcmp(val, "array") == 0 ? VOW_BYTES_ARRAY : VOW_BYTES_BASE64;
      k++;
    } else if (strcmp(a, "--joblog") == 0) {
      joblog = val;
      k++;
    } else if (strcmp(a, "--worker") == 0) {
      worker_cmd = (char*)val;
      k++;
    } else if (strcmp(a, "--launcher") == 0) {
      if (nlaunchers == sizeof(launchers) / sizeof(launchers[0]) ||
          parse_launcher(val, &launchers[nlaunchers],
                         &launcher_text[nlaunchers]) != 0) {
        vow_cli_error(
            "--launcher \"%s\": give [N/]COMMAND, e.g. "
            "\"4/ssh -T hostA\" (at most 64)",
            val);
        return VOW_EXIT_ERROR;
      }
      nlaunchers++;
      k++;
    } else if (a[0] == '-') {
      vow_cli_error("unknown option %s (see vow map --help)", a);
      return VOW_EXIT_ERROR;
    } else if (lib == NULL && worker_cmd == NULL) {
      lib = a;
    } else if (fn == NULL) {
      fn = a;
    } else {
      vow_cli_error("unexpected argument \"%s\" (see vow map --help)", a);
      return VOW_EXIT_ERROR;
    }
  }
  if (fn == NULL && lib != NULL && worker_cmd != NULL)
    fn = lib, lib = NULL;
  if (fn == NULL || (lib == NULL && worker_cmd == NULL)) {
    usage(stderr);
    return VOW_EXIT_ERROR;
  }
  if (lib != NULL && access(lib, R_OK) != 0) {
    vow_cli_error("cannot read the plugin %s: %s", lib, strerror(errno));
    return VOW_EXIT_ERROR;
  }
  if (worker_cmd != NULL) {
    size_t n = 0;
    char* save = NULL;
    char* word;
    char* copy = strdup(worker_cmd);
    wargv = calloc(strlen(worker_cmd) + 2, sizeof(char*));
    for (word = strtok_r(copy, " ", &save); word;
         word = strtok_r(NULL, " ", &save))
      wargv[n++] = word;
  } else {
    worker_bin = vow_cli_find_worker();
    wargv = calloc(3, sizeof(char*));
    wargv[0] = worker_bin;
    wargv[1] = (char*)lib;
  }

  /* Read every line first: its JSON is checked before anything runs. */
  {
    char* buf = NULL;
    size_t bufcap = 0;
    ssize_t got;
    while ((got = getline(&buf, &bufcap, stdin)) >= 0) {
      size_t len = (size_t)got;
      char msg[256];
      if (len > 0 && buf[len - 1] == '\n')
        len--;
      if (M.n == cap) {
        cap = cap ? cap * 2 : 1024;
        args = realloc(args, cap * sizeof(vbuf));
        lines_errs = realloc(lines_errs, cap * sizeof(char*));
        if (args == NULL || lines_errs == NULL) {
          vow_cli_error("out of memory reading the input");
          return VOW_EXIT_ERROR;
        }
      }
      memset(&args[M.n], 0, sizeof(vbuf));
      lines_errs[M.n] = NULL;
      if (vow_json_to_msgpack(buf, len, &args[M.n], msg, sizeof(msg)) != 0)
        lines_errs[M.n] = vow_json_error_line(M.n + 1, msg);
      M.n++;
    }
    free(buf);
  }

  skip = calloc(M.n ? M.n : 1, 1);
  if (resume && joblog == NULL) {
    vow_cli_error("--resume needs --joblog FILE");
    return VOW_EXIT_ERROR;
  }
  if (joblog != NULL) {
    struct timeval tv;
    char* logged = NULL;
    size_t nlogged = 0;
    if (resume && vow_cli_joblog_read(joblog, &logged, &nlogged, resume) != 0)
      return VOW_EXIT_ERROR;
    memcpy(skip, logged ? logged : "", nlogged < M.n ? nlogged : M.n);
    free(logged);
    M.joblog = vow_cli_joblog_open(joblog, resume != 0);
    if (M.joblog == NULL)
      return VOW_EXIT_ERROR;
    gettimeofday(&tv, NULL);
    M.start = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
  }
  M.fn = fn;

  M.ctx = vow_ctx_new(NULL);
  o.worker_argv = (const char* const*)wargv;
  o.start_attempts = 2;
  o.launchers = launchers;
  o.nlaunchers = nlaunchers;
  pool = vow_pool_new(M.ctx, &o, &err);
  if (pool == NULL) {
    vow_cli_error("cannot start workers: %s", vow_strerror(err));
    return VOW_EXIT_ERROR;
  }
  M.out = calloc(M.n ? M.n : 1, sizeof(line_out));
  refs = calloc(M.n ? M.n : 1, sizeof(slot_ref));
  M.pool = pool;
  M.fn = fn;
  M.args = args;
  /* Lines go in groups through vow_pool_map, which runs them in chunks:
   * a few hundred messages for a million lines. A group with a failing
   * line is run again line by line, so each failure lands on its own
   * line and the rest still succeed. */
  group_lines = group_size(M.n, o.workers ? o.workers : vow_cli_cpus());
  for (i = 0; i < M.n; i += group_lines) {
    size_t end = i + group_lines < M.n ? i + group_lines : M.n, ln, valid = 0;
    vbuf items = {0};
    group* g = calloc(1, sizeof(*g));
    for (ln = i; ln < end; ln++) {
      refs[ln].index = ln;
      if (skip[ln]) {
        /* Done in an earlier run: no output, nothing to run. */
        free(lines_errs[ln]);
        lines_errs[ln] = strdup("");
        M.out[ln].skipped = true;
        M.done++;
      } else if (lines_errs[ln] != NULL) {
        settle_line(ln, lines_errs[ln], true);
      } else {
        valid++;
      }
    }
    g->first = i;
    g->end = end;
    g->refs = refs;
    g->errs = lines_errs;
    if (valid == 0) {
      free(g);
      continue;
    }
    {
      unsigned char h[5] = {0xdd, (unsigned char)(valid >> 24),
                            (unsigned char)(valid >> 16),
                            (unsigned char)(valid >> 8), (unsigned char)valid};
      vbuf_add(&items, h, 5);
    }
    for (ln = i; ln < end; ln++)
      if (lines_errs[ln] == NULL)
        vbuf_add(&items, args[ln].data, args[ln].len);
    vow_promise_release(vow_add_both(
        vow_pool_map(pool, fn,
                     vow_value_new_msgpack(items.data, items.len, NULL)),
        on_group, g));
    vbuf_free(&items);
  }
  while (M.done < M.n)
    uv_run(vow_ctx_loop(M.ctx), UV_RUN_ONCE);
  fflush(stdout);
  done = vow_pool_shutdown(pool, true);
  vow_ctx_wait(M.ctx, done);
  vow_promise_release(done);
  vow_pool_free(pool);
  vow_ctx_close(M.ctx);
  for (i = 0; i < M.n; i++) {
    vbuf_free(&args[i]);
    if (M.out[i].skipped)
      free(lines_errs[i]);
  }
  if (M.bar && isatty(2))
    fputc('\n', stderr);
  if (M.joblog)
    fclose(M.joblog);
  free(skip);
  free(refs);
  free(M.out);
  free(args);
  free(lines_errs);
  free(worker_bin);
  if (worker_cmd)
    free(wargv[0]);
  free(wargv);
  for (i = 0; i < nlaunchers; i++) {
    free((void*)launchers[i].argv);
    free(launcher_text[i]);
  }
  return M.failed > 100 ? VOW_EXIT_MANY : (int)M.failed;
}
