/* vow map: a task function over JSON lines, on the worker pool.
 *
 *   vow map LIB.so FUNCTION [options] < in.jsonl > out.jsonl
 *
 * Each input line is one task's argument; each output line its result as
 * JSON, in input order (or as completed with --unordered). A line that is
 * not JSON, or a task that fails, gives {"line":N,"error":"..."} and the
 * run goes on; the exit status counts the failures, as vow run's does.
 * Lines stream through map_stream.c; this file reads the options and
 * runs the pool. */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "map.h"

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
      "  --traceback       also print each failure's detail (a Python\n"
      "                    worker's traceback) to stderr; error lines\n"
      "                    always carry it as \"detail\"\n"
      "  --joblog FILE     a line per input line, GNU parallel's columns\n"
      "  --resume, --resume-failed  skip the lines the joblog shows as\n"
      "                    done (or as succeeded)\n"
      "  --bar, --eta, --progress  a progress line on stderr (on a\n"
      "                    terminal only); the total is known at the end\n"
      "                    of the input, estimated before for a file\n"
      "  --worker CMD      run CMD (split at spaces) as the worker instead\n"
      "                    of vow-worker LIB.so: any program that speaks\n"
      "                    vow's protocol\n"
      "  --launcher [N/]CMD  start N workers through CMD (split at spaces),\n"
      "                    e.g. \"4/ssh -T hostA\" or \"8/srun -N1 -n1\";\n"
      "                    repeat for more hosts; -j is then their sum. The\n"
      "                    worker command must exist at the same path there\n"
      "  --shard K/N       run only input lines L with (L-1) % N == K-1\n"
      "                    (numbered, seeded and logged as L), or\n"
      "                    \"slurm\": this Slurm array task's share;\n"
      "                    vow merge puts the shards' outputs together\n"
      "  --liveness S      a worker under a launcher silent S seconds while\n"
      "                    it holds tasks is lost: its tasks run elsewhere,\n"
      "                    its slot starts again (default 20)\n"
      "Lines are read as they arrive and run in groups; memory holds a\n"
      "window of lines, not the input.\n"
      "exit status: 0 all lines succeeded; 1-100 failed lines; 101 more;\n"
      "255 bad usage or unreadable input.\n",
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

static void on_tick(uv_timer_t* t) {
  (void)t;
  map_progress(false);
}

/* Splits a --worker command at spaces into argv (malloc'd; argv[0] is
 * the words' storage). */
static char** split_words(const char* cmd) {
  char* save = NULL;
  char* word;
  char* copy = strdup(cmd);
  char** v = calloc(strlen(cmd) + 2, sizeof(char*));
  size_t n = 0;
  if (copy == NULL || v == NULL) {
    vow_cli_error("out of memory");
    exit(VOW_EXIT_ERROR);
  }
  for (word = strtok_r(copy, " ", &save); word;
       word = strtok_r(NULL, " ", &save))
    v[n++] = word;
  if (n == 0)
    free(copy);
  return v;
}

/* What the options made: the worker's argv, the launchers'. */
static void free_args(char* worker_bin, bool own_words, char** wargv,
                      vow_launcher_t* launchers, char** launcher_text,
                      size_t nlaunchers) {
  size_t i;
  free(the_map.skip);
  the_map.skip = NULL;
  free(worker_bin);
  if (own_words && wargv != NULL)
    free(wargv[0]);
  if (!own_words && wargv != NULL)
    free(wargv[1]); /* the plugin's absolute path */
  free(wargv);
  for (i = 0; i < nlaunchers; i++) {
    free((void*)launchers[i].argv);
    free(launcher_text[i]);
  }
}

int vow_cli_map(int argc, char** argv) {
  vow_pool_options_t o;
  char* worker_cmd = NULL;
  const char* lib = NULL;
  const char* fn = NULL;
  char** wargv = NULL;
  char* worker_bin = NULL;
  size_t i;
  int k, err = 0, resume = 0, style = 0;
  const char* joblog = NULL;
  vow_promise_t* done;
  vow_launcher_t launchers[64];
  char* launcher_text[64];
  size_t nlaunchers = 0;
  uv_timer_t tick;
  uv_loop_t* loop;
  memset(&the_map, 0, sizeof(the_map));
  vow_pool_options_init(&o);
  for (k = 1; k < argc; k++) {
    const char* a = argv[k];
    const char* val = k + 1 < argc ? argv[k + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--unordered") == 0) {
      the_map.unordered = true;
    } else if (strcmp(a, "--line-numbers") == 0) {
      the_map.numbers = true;
    } else if (strcmp(a, "--errors-to-stderr") == 0) {
      the_map.errors_to_stderr = true;
    } else if (strcmp(a, "--traceback") == 0) {
      the_map.traceback = true;
    } else if (strcmp(a, "--resume") == 0) {
      resume = 1;
    } else if (strcmp(a, "--resume-failed") == 0) {
      resume = 2;
    } else if (strcmp(a, "--bar") == 0) {
      style = 'b';
    } else if (strcmp(a, "--eta") == 0) {
      style = 'e';
    } else if (strcmp(a, "--progress") == 0) {
      style = 'p';
    } else if (a[0] == '-' && a[1] != '\0' && val == NULL) {
      vow_cli_error("%s needs a value (see vow map --help)", a);
      goto fail;
    } else if (strcmp(a, "-j") == 0) {
      o.workers = vow_cli_jobs(val, vow_cli_cpus());
      if (o.workers == 0) {
        vow_cli_error("-j wants N, N%%, +N, -N or 0, not \"%s\"", val);
        goto fail;
      }
      k++;
    } else if (strcmp(a, "--timeout") == 0) {
      char* end;
      double t = strtod(val, &end);
      if (end == val || *end != '\0' || t <= 0) {
        vow_cli_error("--timeout wants seconds, not \"%s\"", val);
        goto fail;
      }
      o.timeout_ms = (uint64_t)(t * 1000.0);
      k++;
    } else if (strcmp(a, "--shard") == 0) {
      if (vow_cli_parse_shard(val, &the_map.shard_k, &the_map.shard_n) != 0)
        goto fail;
      k++;
    } else if (strcmp(a, "--liveness") == 0) {
      char* end;
      double t = strtod(val, &end);
      if (end == val || *end != '\0' || t < 0.4) {
        vow_cli_error("--liveness wants seconds (0.4 or more), not \"%s\"",
                      val);
        goto fail;
      }
      o.liveness_ms = (uint64_t)(t * 1000.0);
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
        goto fail;
      }
      o.retries = (unsigned)n;
      k++;
    } else if (strcmp(a, "--seed") == 0) {
      o.seed = strtoull(val, NULL, 10);
      k++;
    } else if (strcmp(a, "--bytes") == 0) {
      if (strcmp(val, "array") != 0 && strcmp(val, "base64") != 0) {
        vow_cli_error("--bytes wants base64 or array, not \"%s\"", val);
        goto fail;
      }
      the_map.bytes_mode =
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
        goto fail;
      }
      nlaunchers++;
      k++;
    } else if (a[0] == '-') {
      vow_cli_error("unknown option %s (see vow map --help)", a);
      goto fail;
    } else if (lib == NULL && worker_cmd == NULL) {
      lib = a;
    } else if (fn == NULL) {
      fn = a;
    } else {
      vow_cli_error("unexpected argument \"%s\" (see vow map --help)", a);
      goto fail;
    }
  }
  if (fn == NULL && lib != NULL && worker_cmd != NULL)
    fn = lib, lib = NULL;
  if (fn == NULL || (lib == NULL && worker_cmd == NULL)) {
    usage(stderr);
    goto fail;
  }
  if (lib != NULL && access(lib, R_OK) != 0) {
    vow_cli_error("cannot read the plugin %s: %s", lib, strerror(errno));
    goto fail;
  }
  if (worker_cmd != NULL) {
    wargv = split_words(worker_cmd);
    if (wargv[0] == NULL) {
      vow_cli_error("--worker wants a command");
      goto fail;
    }
  } else {
    worker_bin = vow_cli_find_worker();
    wargv = calloc(3, sizeof(char*));
    wargv[0] = worker_bin;
    /* Absolute: a worker under a launcher starts in another directory
     * (ssh's is the home directory), where build/x.so is not there. */
    wargv[1] = realpath(lib, NULL);
    if (wargv[1] == NULL)
      wargv[1] = strdup(lib);
  }
  if (resume && joblog == NULL) {
    vow_cli_error("--resume needs --joblog FILE");
    goto fail;
  }
  if (joblog != NULL) {
    if (resume &&
        vow_cli_joblog_read(joblog, &the_map.skip, &the_map.nskip, resume) != 0)
      goto fail;
    the_map.joblog = vow_cli_joblog_open(joblog, resume != 0);
    the_map.joblog_path = joblog;
    if (the_map.joblog == NULL)
      goto fail;
    the_map.start = vow_cli_now();
  }
  the_map.fn = fn;

  the_map.ctx = vow_ctx_new(NULL, NULL);
  loop = vow_ctx_loop(the_map.ctx);
  o.worker_argv = (const char* const*)wargv;
  o.start_attempts = 2;
  o.launchers = launchers;
  o.nlaunchers = nlaunchers;
  the_map.pool = vow_pool_new(the_map.ctx, &o, &err);
  if (the_map.pool == NULL) {
    vow_cli_error("cannot start workers: %s", vow_strerror(err));
    goto fail;
  }
  the_map.workers = o.workers ? o.workers : vow_cli_cpus();
  if (nlaunchers > 0)
    for (the_map.workers = 0, i = 0; i < nlaunchers; i++)
      the_map.workers += launchers[i].workers;
  vow_progress_init(&the_map.progress, style);
  uv_timer_init(loop, &tick);
  if (the_map.progress.on) {
    uv_timer_start(&tick, on_tick, 200, 200);
    uv_unref((uv_handle_t*)&tick);
  }
  if (map_stream_start(loop) != 0) {
    uv_close((uv_handle_t*)&tick, NULL);
    goto fail;
  }
  while (!map_stream_finished()) {
    uv_run(loop, UV_RUN_ONCE);
    map_flush(); /* what is written is seen before the loop waits */
  }
  map_progress(true);
  map_flush();
  uv_close((uv_handle_t*)&tick, NULL);
  /* Output that cannot be written: what still runs is not waited for,
   * and the lines' callbacks run as it is cancelled, before the lines
   * are freed. */
  done = vow_pool_shutdown(the_map.pool, !the_map.output_failed);
  vow_ctx_wait(the_map.ctx, done);
  vow_promise_release(done);
  map_stream_close();
  vow_pool_free(the_map.pool);
  vow_ctx_close(the_map.ctx);
  if (the_map.joblog && fclose(the_map.joblog) != 0 && !the_map.output_failed) {
    vow_cli_error("output is incomplete: writing %s: %s", joblog,
                  strerror(errno));
    the_map.output_failed = true;
  }
  free_args(worker_bin, worker_cmd != NULL, wargv, launchers, launcher_text,
            nlaunchers);
  if (the_map.broken_pipe) {
    signal(SIGPIPE, SIG_DFL);
    raise(SIGPIPE);
    return 128 + SIGPIPE;
  }
  if (the_map.read_errno != 0 || the_map.output_failed)
    return VOW_EXIT_ERROR;
  return the_map.failed > 100 ? VOW_EXIT_MANY : (int)the_map.failed;
fail:
  /* Before any line ran: what was set up so far goes, and no more. */
  if (the_map.pool != NULL) {
    done = vow_pool_shutdown(the_map.pool, false);
    vow_ctx_wait(the_map.ctx, done);
    vow_promise_release(done);
    vow_pool_free(the_map.pool);
  }
  if (the_map.ctx != NULL)
    vow_ctx_close(the_map.ctx);
  if (the_map.joblog != NULL)
    fclose(the_map.joblog);
  free_args(worker_bin, worker_cmd != NULL, wargv, launchers, launcher_text,
            nlaunchers);
  return VOW_EXIT_ERROR;
}
