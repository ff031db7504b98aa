/* vow run's options, as GNU parallel spells them; one vow does not know
 * is refused by name, never taken as input. */
#include <stdlib.h>
#include <dirent.h>
#include <sys/resource.h>
#include <string.h>

#include "run_state.h"

static void usage(FILE* f) {
  fputs(
      "usage: vow run [options] COMMAND [ARG...] [::: ARGS...] [:::: FILE...]\n"
      "Runs COMMAND once per input, in parallel, like GNU parallel -q.\n"
      "\n"
      "inputs:\n"
      "  ::: A B C         a list of arguments; several lists combine as\n"
      "                    every combination, first list slowest\n"
      "  :::: FILE         one argument a line from FILE (- for stdin)\n"
      "  -a FILE, --arg-file FILE  as :::: FILE, before the sources after\n"
      "                    the command\n"
      "  (none of these)   one argument a line from stdin\n"
      "  ::: A :::+ B      pair B with the source before it (shorter wraps)\n"
      "  -0, --null        inputs are NUL-separated\n"
      "  -d DELIM          inputs end with DELIM (\\n \\t \\0 \\xHH escapes)\n"
      "  --link            pair every source instead (shorter ones wrap)\n"
      "  --colsep RE       split each input into columns {1} {2} ...\n"
      "  --header :        the first input (or line) names the columns: "
      "{name}\n"
      "  --trim n|l|r|lr   strip white space from the inputs' ends\n"
      "  -N N, -n N, -L N  N inputs a job: {1}..{N}, {} all of them\n"
      "  -X                as many inputs a job as a command line holds, the\n"
      "                    word with {} repeated for each\n"
      "  -m, --xargs       ... {} made of all of them (-X and -m spread the\n"
      "                    last ones over the job slots)\n"
      "  --shuf            run the jobs in random order\n"
      "  --retry-failed    rerun the commands the joblog shows as failed\n"
      "replacement strings in COMMAND (none: the arguments are appended):\n"
      "  {} {.} {/} {//} {/.}  the argument, without extension, basename,\n"
      "                    dirname, basename without extension\n"
      "  {#} {%} {1}..{n}  job number, slot number, n-th value ({-1} last)\n"
      "  {}  with several values: one argument each, as parallel -q\n"
      "options:\n"
      "  -j N, -P N        jobs at once (default: CPUs; 0: all; N%, +N, -N)\n"
      "  -k, --keep-order  print in input order, not completion order\n"
      "  --line-buffer     pass whole lines through as they come\n"
      "  -u, --ungroup     jobs write straight to vow's stdout and stderr\n"
      "  --results DIR     each job's stdout, stderr and seq in files under\n"
      "                    DIR/1/VALUE/..., as GNU parallel lays them out\n"
      "  --tag             prefix each output line with the arguments\n"
      "  --tagstring STR   ... with STR and its replacement strings instead\n"
      "  --workdir DIR, --wd DIR  run jobs in DIR (made if missing)\n"
      "  --nice N          run jobs at niceness N (through nice -n N)\n"
      "  --delay S         start jobs at least S seconds apart\n"
      "  --load N[%]       start jobs only while fewer than N processes run\n"
      "  --memfree SIZE    start jobs only while SIZE (k/M/G) is free; kill\n"
      "                    the youngest, to rerun later, below half of it\n"
      "  --shell           run COMMAND through the shell vow runs under\n"
      "                    ($PARALLEL_SHELL, else the nearest shell among\n"
      "                    its parents, else $SHELL, else /bin/sh; sh-like\n"
      "                    ones only); each value quoted for where it\n"
      "                    stands in the text (in '...', \"...\", $(...)):\n"
      "                    never run as a command, unless in the first\n"
      "                    word (or no COMMAND: the values are commands)\n"
      "  --timeout S|N%    kill a job (TERM, then KILL) after S seconds, or\n"
      "                    N% of the median runtime\n"
      "  --shard K/N       run only jobs J with (J-1) % N == K-1 (numbered\n"
      "                    and logged as J), or \"slurm\": this Slurm\n"
      "                    array task's share; vow merge --joblog joins\n"
      "  --joblog FILE     a line per finished job, GNU parallel's columns\n"
      "  --resume          skip jobs the joblog shows as run\n"
      "  --resume-failed   rerun the ones the joblog shows as failed\n"
      "  --retries N       run a failing job up to N times\n"
      "  --halt now|soon,fail|success|done=N[%]  stop at failures, successes\n"
      "                    or finished jobs (also 0, 1, 2, -1, -2, N%)\n"
      "  --dry-run         print the commands, run nothing\n"
      "  --bar             a progress bar with percent and ETA on stderr\n"
      "  --eta, --progress  ETA, or jobs running and done, on stderr\n"
      "                    (drawn only on a terminal; the percentage and\n"
      "                    ETA once the end of the input is known)\n"
      "  -q, --quote, --will-cite  accepted: vow never needs a shell's "
      "quoting\n"
      "                    and asks for no citation\n"
      "single-letter options bundle: -kj2 is -k -j 2.\n"
      "each job sees $PARALLEL_SEQ (its number) and $PARALLEL_JOBSLOT (its\n"
      "slot).\n"
      "exit status: 0 all succeeded; 1-100 failed jobs; 101 more than 100;\n"
      "255 bad usage or input; 128+N killed by signal N.\n",
      f);
}

/* --halt WHEN,WHY=N[%], and GNU parallel's older forms: 0 (never), 1
 * (soon,fail=1), 2 (now,fail=1), -1 (soon,success=1), -2 (now,success=1)
 * and N% (soon,fail=N%). */
static int parse_halt(const char* spec) {
  char how[8];
  const char* comma = strchr(spec, ',');
  const char* eq;
  const char* why;
  char* end;
  if (strcmp(spec, "never") == 0 || strcmp(spec, "0") == 0)
    return 0;
  if (strcmp(spec, "1") == 0 || strcmp(spec, "2") == 0 ||
      strcmp(spec, "-1") == 0 || strcmp(spec, "-2") == 0) {
    the_run.halt_when = spec[strlen(spec) - 1] == '2' ? 2 : 1;
    the_run.halt_why = spec[0] == '-' ? HALT_SUCCESS : HALT_FAIL;
    the_run.halt_count = 1;
    return 0;
  }
  if (comma == NULL) {
    /* N%: soon,fail=N% */
    the_run.halt_count = strtod(spec, &end);
    if (end == spec || strcmp(end, "%") != 0 || the_run.halt_count <= 0 ||
        the_run.halt_count >= 100)
      return -1;
    the_run.halt_when = 1;
    the_run.halt_why = HALT_FAIL;
    the_run.halt_pct = true;
    the_run.halt_count /= 100.0;
    return 0;
  }
  if ((size_t)(comma - spec) >= sizeof(how))
    return -1;
  memcpy(how, spec, (size_t)(comma - spec));
  how[comma - spec] = '\0';
  if (strcmp(how, "now") == 0)
    the_run.halt_when = 2;
  else if (strcmp(how, "soon") == 0)
    the_run.halt_when = 1;
  else
    return -1;
  eq = strchr(comma, '=');
  why = comma + 1;
  if (eq == NULL)
    return -1;
  if (eq - why == 4 && strncmp(why, "fail", 4) == 0)
    the_run.halt_why = HALT_FAIL;
  else if (eq - why == 7 && strncmp(why, "success", 7) == 0)
    the_run.halt_why = HALT_SUCCESS;
  else if (eq - why == 4 && strncmp(why, "done", 4) == 0)
    the_run.halt_why = HALT_DONE;
  else
    return -1;
  the_run.halt_count = strtod(eq + 1, &end);
  if (end == eq + 1 || the_run.halt_count <= 0)
    return -1;
  if (*end == '%') {
    the_run.halt_pct = true;
    the_run.halt_count /= 100.0;
    end++;
  }
  return *end == '\0' ? 0 : -1;
}

static int set_delim(const char* spec) {
  if (run_inputs_delim(&the_run.in, spec) != 0) {
    vow_cli_error(
        "-d wants a delimiter (with \\n \\t \\0 \\xHH escapes), not "
        "\"%s\"",
        spec);
    return -1;
  }
  return 0;
}

/* A count with GNU parallel's prefixes: k, m, g, t powers of 1000; K, M,
 * G, T (and Ki, ki...) powers of 1024. -1 when spec is not one. */
static double parse_count(const char* spec) {
  static const char* decimal = "kmgt";
  static const char* binary = "KMGT";
  char* end;
  double n = strtod(spec, &end);
  const char* u;
  int power;
  if (end == spec || n < 0)
    return -1;
  if (*end == '\0')
    return n;
  if ((u = strchr(binary, end[0])) != NULL ||
      (end[1] == 'i' && (u = strchr(binary, end[0] & ~0x20)) != NULL)) {
    if (end[1] != '\0' && !(end[1] == 'i' && end[2] == '\0'))
      return -1;
    for (power = (int)(u - binary) + 1; power > 0; power--)
      n *= 1024;
    return n;
  }
  if ((u = strchr(decimal, end[0])) == NULL || end[1] != '\0')
    return -1;
  for (power = (int)(u - decimal) + 1; power > 0; power--)
    n *= 1000;
  return n;
}

/* Seconds with GNU parallel's units: 1.5, 0.1s, 0.01m, 1h30m, 2d; -1 when
 * spec is not that. */
static double parse_time(const char* spec) {
  double total = 0;
  const char* p = spec;
  if (*p == '\0')
    return -1;
  while (*p) {
    char* end;
    double n = strtod(p, &end);
    if (end == p || n < 0)
      return -1;
    switch (*end | 0x20) {
      case 's':
        end++;
        break;
      case 'm':
        n *= 60, end++;
        break;
      case 'h':
        n *= 3600, end++;
        break;
      case 'd':
        n *= 86400, end++;
        break;
      default:
        if (*end != '\0')
          return -1;
    }
    total += n;
    p = end;
  }
  return total;
}

/* -N N, -n N, -L N: N inputs a job; -N 0 reads one and inserts none. */
static int set_max_args(char opt, const char* spec) {
  double count = parse_count(spec);
  long n = (long)count;
  if (count < 0 || count != (double)n || n > 1000000) {
    vow_cli_error("-%c wants a count, not \"%s\"", opt, spec);
    return -1;
  }
  the_run.in.max_args = (size_t)n;
  the_run.in.arg_opt = opt;
  the_run.in.zero_args = n == 0;
  if (n == 0)
    the_run.in.max_args = 1;
  return 0;
}

/* SIZE with k, M, G or T (powers of 1024, as GNU parallel reads them). */
static double parse_size(const char* spec) {
  char* end;
  double n = strtod(spec, &end);
  const char* units = "kmgt";
  const char* u;
  if (end == spec || n < 0)
    return -1;
  if (*end == '\0')
    return n;
  u = strchr(units, end[0] | 0x20);
  if (u == NULL || end[1] != '\0')
    return -1;
  for (; u >= units; u--)
    n *= 1024;
  return n;
}

/* Single-letter options, bundled as GNU parallel's Getopt::Long takes
 * them: -kj2 is -k -j 2, -j2 and -P2 are -j 2, and a letter that takes a
 * value takes the rest of the word or the next one. */
static int parse_short(const char* a, int* i, int argc, char** argv,
                       const char** jobs) {
  size_t k;
  for (k = 1; a[k] != '\0'; k++) {
    switch (a[k]) {
      case 'k':
        the_run.keep_order = true;
        break;
      case '0':
        the_run.in.delim[0] = '\0', the_run.in.delim_len = 1;
        break;
      case 'q':
        break; /* -q: no shell, every argument one word, vow's default */
      case 'u':
        the_run.ungroup = true;
        break;
      case 'X':
        the_run.in.multi = 'X';
        break;
      case 'm':
        the_run.in.multi = 'm';
        break;
      case 'h':
        usage(stdout);
        exit(0);
      case 'j':
      case 'P':
      case 'd':
      case 'N':
      case 'n':
      case 'L':
      case 'C':
      case 'a': {
        const char* value;
        if (a[k + 1] != '\0') {
          value = a + k + 1;
        } else if (*i + 1 < argc) {
          value = argv[++*i];
        } else {
          vow_cli_error("-%c needs %s", a[k],
                        a[k] == 'a'                  ? "a file"
                        : a[k] == 'd'                ? "a delimiter"
                        : a[k] == 'j' || a[k] == 'P' ? "a number of jobs"
                                                     : "a number");
          return -1;
        }
        if (a[k] == 'a') {
          the_run.arg_files[the_run.narg_files++] = value;
        } else if (a[k] == 'C') {
          if (*value == '\0') {
            vow_cli_error("--colsep wants a separator");
            return -1;
          }
          run_inputs_colsep(&the_run.in, value);
        } else if (a[k] == 'd')
          return set_delim(value);
        else if (a[k] == 'j' || a[k] == 'P')
          *jobs = value;
        else
          return set_max_args(a[k], value);
        return 0;
      }
      default:
        if (k == 1)
          vow_cli_error("unknown option %s (see vow run --help)", a);
        else
          vow_cli_error("unknown option -%c in %s (see vow run --help)", a[k],
                        a);
        return -1;
    }
  }
  return 0;
}

/* \t \n \r \NNN and \N as printf reads them, as GNU parallel reads
 * --tagstring. */
static char* unescape_printf(const char* s) {
  char* out = strdup(s);
  char* o = out;
  if (out == NULL)
    return (char*)s;
  while (*s) {
    if (s[0] != '\\' || s[1] == '\0') {
      *o++ = *s++;
      continue;
    }
    if (s[1] == 't' || s[1] == 'n' || s[1] == 'r') {
      *o++ = s[1] == 't' ? '\t' : s[1] == 'n' ? '\n' : '\r';
      s += 2;
    } else if (s[1] >= '0' && s[1] <= '7') {
      int v = 0, k = 1;
      while (k <= 3 && s[k] >= '0' && s[k] <= '7')
        v = v * 8 + (s[k++] - '0');
      *o++ = (char)v;
      s += k;
    } else {
      *o++ = *s++;
    }
  }
  *o = '\0';
  return out;
}

/* A job holds about three of our file handles while it runs (its stdout
 * and stderr pipes, and with -k a file its output may spill to), more for
 * a moment as it starts: more jobs at once than the open-file limit
 * allows would fail with "too many open files". As GNU parallel does,
 * run fewer, and say so. */
static void cap_jobs_by_file_handles(void) {
  struct rlimit rl;
  unsigned in_use = 0, room;
  DIR* d;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return;
  if ((d = opendir("/proc/self/fd")) != NULL) {
    while (readdir(d) != NULL)
      in_use++;
    closedir(d);
  }
  if (in_use < 8)
    in_use = 8;
  room =
      rl.rlim_cur > in_use + 16 ? (unsigned)(rl.rlim_cur - in_use - 16) / 3 : 1;
  if (room < 1)
    room = 1;
  if (the_run.jobs <= room)
    return;
  fprintf(stderr,
          "vow: warning: only enough file handles to run %u jobs at once "
          "(raise ulimit -n, now %llu, for more)\n",
          room, (unsigned long long)rl.rlim_cur);
  the_run.jobs = room;
}

int run_parse_options(int argc, char** argv) {
  int i;
  const char* jobs = NULL;
  the_run.arg_files = calloc((size_t)argc + 1, sizeof(char*));
  if (the_run.arg_files == NULL) {
    vow_cli_error("out of memory");
    return -1;
  }
  for (i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* val = NULL;
#define TAKES(name)                                                        \
  (strcmp(a, name) == 0                                                    \
       ? (i + 1 < argc ? (val = argv[++i], 1)                              \
                       : (vow_cli_error("%s needs a value", name),         \
                          exit(VOW_EXIT_ERROR), 0))                        \
   : strncmp(a, name "=", sizeof(name)) == 0 ? (val = a + sizeof(name), 1) \
                                             : 0)
    if (a[0] != '-' || strcmp(a, "-") == 0)
      break;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[1] != '-') {
      if (parse_short(a, &i, argc, argv, &jobs) != 0)
        return -1;
    } else if (strcmp(a, "--help") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(a, "--keep-order") == 0) {
      the_run.keep_order = true;
    } else if (strcmp(a, "--line-buffer") == 0 ||
               strcmp(a, "--linebuffer") == 0 || strcmp(a, "--lb") == 0) {
      the_run.line_buffer = true;
    } else if (strcmp(a, "--tag") == 0) {
      the_run.tag = true;
    } else if (strcmp(a, "--shell") == 0) {
      the_run.shell = true;
    } else if (strcmp(a, "--dry-run") == 0 || strcmp(a, "--dryrun") == 0) {
      the_run.dry_run = true;
    } else if (strcmp(a, "--null") == 0) {
      the_run.in.delim[0] = '\0', the_run.in.delim_len = 1;
    } else if (strcmp(a, "--quote") == 0 || strcmp(a, "--will-cite") == 0 ||
               strcmp(a, "--no-notice") == 0) {
      /* accepted as GNU parallel users type them: --quote is vow's
       * default, and vow asks for no citation */
    } else if (strcmp(a, "--link") == 0 || strcmp(a, "--xapply") == 0) {
      the_run.in.link = true;
    } else if (strcmp(a, "--ungroup") == 0) {
      the_run.ungroup = true;
    } else if (strcmp(a, "--xargs") == 0) {
      the_run.in.multi = 'x';
    } else if (strcmp(a, "--shuf") == 0) {
      the_run.shuf = true;
    } else if (strcmp(a, "--retry-failed") == 0) {
      the_run.resume = 3;
    } else if (strcmp(a, "--bar") == 0) {
      the_run.progress_style = 'b';
    } else if (strcmp(a, "--eta") == 0) {
      the_run.progress_style = 'e';
    } else if (strcmp(a, "--progress") == 0) {
      the_run.progress_style = 'p';
    } else if (TAKES("--delimiter")) {
      if (set_delim(val) != 0)
        return -1;
    } else if (TAKES("--max-args")) {
      if (set_max_args('n', val) != 0)
        return -1;
    } else if (TAKES("--max-replace-args")) {
      if (set_max_args('N', val) != 0)
        return -1;
    } else if (TAKES("--max-lines")) {
      if (set_max_args('L', val) != 0)
        return -1;
    } else if (TAKES("--colsep")) {
      if (*val == '\0') {
        vow_cli_error("--colsep wants a separator");
        return -1;
      }
      run_inputs_colsep(&the_run.in, val);
    } else if (TAKES("--header")) {
      the_run.in.header = true;
    } else if (TAKES("--trim")) {
      the_run.in.trim_set = true;
      if (strcmp(val, "n") == 0)
        the_run.in.trim = 0;
      else if (strcmp(val, "l") == 0)
        the_run.in.trim = 1;
      else if (strcmp(val, "r") == 0)
        the_run.in.trim = 2;
      else if (strcmp(val, "lr") == 0 || strcmp(val, "rl") == 0)
        the_run.in.trim = 3;
      else {
        vow_cli_error("--trim wants n, l, r, lr or rl, not \"%s\"", val);
        return -1;
      }
    } else if (TAKES("--results") || TAKES("--res")) {
      if (*val == '\0') {
        vow_cli_error("--results wants a directory");
        return -1;
      }
      the_run.results = val;
    } else if (TAKES("--load")) {
      char* end;
      the_run.load_max = strtod(val, &end);
      if (end == val || the_run.load_max <= 0 ||
          (*end != '\0' && strcmp(end, "%") != 0)) {
        vow_cli_error("--load wants N or N%%, not \"%s\"", val);
        return -1;
      }
      if (*end == '%')
        the_run.load_max = the_run.load_max * vow_cli_cpus() / 100.0;
    } else if (TAKES("--memfree")) {
      the_run.memfree = parse_size(val);
      if (the_run.memfree <= 0) {
        vow_cli_error("--memfree wants a size (as 500M or 2G), not \"%s\"",
                      val);
        return -1;
      }
    } else if (strcmp(a, "--resume") == 0) {
      the_run.resume = 1;
    } else if (strcmp(a, "--resume-failed") == 0) {
      the_run.resume = 2;
    } else if (TAKES("--jobs") || TAKES("--max-procs")) {
      jobs = val;
    } else if (TAKES("--delay")) {
      the_run.delay_s = parse_time(val);
      if (the_run.delay_s < 0) {
        vow_cli_error("--delay wants seconds (units s, m, h, d), not \"%s\"",
                      val);
        return -1;
      }
    } else if (TAKES("--nice")) {
      char* end;
      long n = strtol(val, &end, 10);
      if (end == val || *end != '\0' || n < -20 || n > 19) {
        vow_cli_error("--nice wants a niceness from -20 to 19, not \"%s\"",
                      val);
        return -1;
      }
      the_run.nice = val;
    } else if (TAKES("--workdir") || TAKES("--wd")) {
      the_run.workdir = val;
    } else if (TAKES("--tagstring")) {
      the_run.tagstring = unescape_printf(val);
      the_run.tag = true;
    } else if (TAKES("--arg-file")) {
      the_run.arg_files[the_run.narg_files++] = val;
    } else if (TAKES("--timeout")) {
      char* end;
      double t = strtod(val, &end);
      if (end != val && strcmp(end, "%") == 0 && t > 0) {
        the_run.timeout_pct = t;
      } else if ((t = parse_time(val)) > 0) {
        the_run.timeout_s = t;
      } else {
        vow_cli_error(
            "--timeout wants seconds (units s, m, h, d) or N%%, not \"%s\"",
            val);
        return -1;
      }
    } else if (TAKES("--shard")) {
      if (vow_cli_parse_shard(val, &the_run.shard_k, &the_run.shard_n) != 0)
        return -1;
    } else if (TAKES("--joblog") || TAKES("--jl")) {
      the_run.joblog = val;
    } else if (TAKES("--retries")) {
      char* end;
      long n = strtol(val, &end, 10);
      if (strchr(val, '{') != NULL) {
        the_run.retries_spec = val; /* per job: {} and the others */
      } else if (*end != '\0' || n < 0) {
        vow_cli_error("--retries wants a count, not \"%s\"", val);
        return -1;
      }
      the_run.retries = (unsigned)(n > 0 ? n : 0);
    } else if (TAKES("--halt") || TAKES("--halt-on-error")) {
      if (parse_halt(val) != 0) {
        vow_cli_error(
            "--halt wants now|soon,fail|success|done=N[%%], not \"%s\"", val);
        return -1;
      }
    } else {
      vow_cli_error("unknown option %s (see vow run --help)", a);
      return -1;
    }
#undef TAKES
  }
  if (jobs != NULL) {
    the_run.jobs = vow_cli_jobs(jobs, 1024);
    if (the_run.jobs == 0) {
      vow_cli_error("-j wants N, N%%, +N, -N or 0, not \"%s\"", jobs);
      return -1;
    }
  } else {
    the_run.jobs = vow_cli_cpus();
  }
  cap_jobs_by_file_handles();
  /* --colsep trims blanks around the columns unless --trim says
   * otherwise, as GNU parallel does. */
  if (the_run.in.colsep_on && !the_run.in.trim_set)
    the_run.in.trim = 3;
  /* GNU parallel's context replace: -X, -N, and -L unless -m or --xargs
   * (run_expand.c). */
  the_run.in.context = the_run.in.multi == 'X' || the_run.in.arg_opt == 'N' ||
                       (the_run.in.arg_opt == 'L' && the_run.in.multi != 'm' &&
                        the_run.in.multi != 'x');
  if (the_run.resume && the_run.joblog == NULL) {
    vow_cli_error("%s needs --joblog FILE",
                  the_run.resume == 3   ? "--retry-failed"
                  : the_run.resume == 2 ? "--resume-failed"
                                        : "--resume");
    return -1;
  }
  return i;
}
