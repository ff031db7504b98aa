/* Chaos: many tiny tasks while a killer sends SIGKILL to a random worker
 * every few milliseconds. It only picks workers that have said HELLO and
 * finished a task since their last kill, so the pool always makes
 * progress. Every promise must settle exactly once, with the right result
 * or (retries off) as worker-died; with retries, every task must succeed.
 * This binary is its own worker. VOW_QUICK=1 scales it down. */
#include <dirent.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "pool_functions.h"
#include "pool_internal.h"

typedef struct chaos {
  vow_pool_t* pool;
  uint64_t done_at_kill[64]; /* per slot: completed count at its last kill */
  int pid_at_kill[64];
  unsigned kills;
  uv_timer_t killer;
  uint32_t rng;
} chaos;

/* Some checks and sizes differ under AddressSanitizer (gcc says so with a
 * macro, clang with a feature). */
#if defined(__SANITIZE_ADDRESS__)
#define VOW_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VOW_ASAN 1
#endif
#endif

typedef struct tally {
  int64_t want;
  int settled; /* must end at exactly 1 */
  int died;    /* settled as a failure */
} tally;

static void kill_one(uv_timer_t* t) {
  chaos* c = t->data;
  vow_pool_t* pool = c->pool;
  unsigned i, pick, n = pool->nworkers;
  c->rng = c->rng * 1103515245u + 12345u;
  pick = (c->rng >> 8) % n;
  for (i = 0; i < n; i++) {
    pworker* w = pool->workers[(pick + i) % n];
    unsigned slot = (pick + i) % n;
    /* Never one whose exit has been seen: its pid may already belong to
     * another process (pid_max can be 32768, and a chaos run spawns
     * thousands). */
    if (w == NULL || w->state != PW_READY || !w->said_hello || w->exited)
      continue;
    /* Only one that has finished a task since its last kill, so the pool
     * makes progress; and not one running a suspect alone: the killer
     * stands for random deaths, and six in a row aimed at one task make a
     * poison task by definition (test_pool checks that path). */
    if (w->pid == c->pid_at_kill[slot] || w->completed == 0 ||
        w->completed == c->done_at_kill[slot] ||
        (w->inflight.head != NULL && (w->inflight.head->flags & PT_SUSPECT)))
      continue;
    c->pid_at_kill[slot] = w->pid;
    c->done_at_kill[slot] = w->completed;
    /* SIGKILL through the pool's own path with no reason given, which the
     * pool then handles as a worker that died by itself. The difference
     * from kill(2) alone: the pool sends it nothing more in the moment
     * before the death is seen. Under ASan that moment is long enough for
     * the next lone suspect to be sent to the doomed worker, again and
     * again, until that innocent task is called poison. */
    vow__worker_kill(w, PK_NONE);
    c->kills++;
    return;
  }
}

static vow_outcome_t count_done(vow_value_t* v, vow_failure_t* f, void* data) {
  (*(size_t*)data)++;
  if (f)
    vow_failure_release(f);
  vow_value_release(v);
  return vow_ok(NULL);
}

static vow_outcome_t on_done(vow_value_t* v, vow_failure_t* f, void* data) {
  tally* t = data;
  t->settled++;
  if (f != NULL) {
    if (vow_failure_kind(f) != VOW_FAIL_WORKER_DIED) {
      t->settled += 100;
      /* Say which: the tally only counts. */
      fprintf(stderr, "unexpected failure (%s): %s\n",
              vow_failure_kind_name(vow_failure_kind(f)),
              vow_failure_message(f));
    }
    t->died++;
    vow_failure_release(f);
  } else {
    if (int_of(v) != t->want)
      t->settled += 1000; /* a wrong result */
    vow_value_release(v);
  }
  return vow_ok(NULL);
}

/* Arguments [i, 7, us], with big (when not NULL) after them: a part, its
 * segment sent with every task; and every tenth task a big value of its
 * own, its own segment. */
static vow_value_t* chaos_args(size_t i, int64_t us, vow_value_t* big) {
  vow_value_t* items[4];
  vow_value_t* v;
  unsigned k, n = 3;
  items[0] = vow_value_new_int((int64_t)i);
  items[1] = vow_value_new_int(7);
  items[2] = vow_value_new_int(us);
  if (big != NULL) {
    const void* bytes;
    size_t len;
    assert_int_equal(vow_value_get_bin(big, &bytes, &len), 0);
    items[3] = i % 10 == 0 ? vow_value_new_bin(bytes, len) : vow_value_ref(big);
    n = 4;
  }
  v = vow_value_new_args(items, n, NULL);
  for (k = 0; k < n; k++)
    vow_value_release(items[k]);
  assert_non_null(v);
  return v;
}

static void run_chaos_with(unsigned workers, unsigned retries, size_t n,
                           vow_value_t* big, unsigned* kills, size_t* died) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  vow_pool_options_t o;
  chaos c;
  tally* tallies = calloc(n, sizeof(*tallies));
  size_t i, settled = 0;
  vow_pool_options_init(&o);
  memset(&c, 0, sizeof(c));
  o.workers = workers;
  o.functions = test_functions;
  o.nfunctions = test_nfunctions;
  o.retries = retries;
  o.stderr_mode = VOW_STDERR_DISCARD;
  o.start_attempts = 1000; /* killed workers are not start failures */
  c.pool = vow_pool_new(ctx, &o, NULL);
  c.rng = 12345u + workers;
  assert_non_null(c.pool);
  for (i = 0; i < n; i++) {
    /* A quick run has too few tasks to outlast the killer's first shot:
     * its tasks take 500 us each. */
    int64_t us = scaled(100) == 100 && big == NULL ? 0 : 500;
    tallies[i].want = (int64_t)i + 7;
    vow_promise_release(vow_add_both(
        vow_pool_submit(c.pool, "add_after", chaos_args(i, us, big)), on_done,
        &tallies[i]));
  }
  uv_timer_init(vow_ctx_loop(ctx), &c.killer);
  c.killer.data = &c;
  uv_timer_start(&c.killer, kill_one, 3, 3);
  for (;;) {
    vow_pool_stats_t st;
    vow_pool_stats(c.pool, &st);
    if (st.completed + st.failed >= n)
      break;
    uv_run(vow_ctx_loop(ctx), UV_RUN_ONCE);
  }
  uv_timer_stop(&c.killer);
  uv_close((uv_handle_t*)&c.killer, NULL);
  vow_ctx_drain(ctx);
  *died = 0;
  for (i = 0; i < n; i++) {
    if (tallies[i].settled != 1)
      fail_msg(
          "task %zu settled %d times (>= 100: wrong failure kind, "
          ">= 1000: wrong result)",
          i, tallies[i].settled);
    settled++;
    *died += (size_t)tallies[i].died;
  }
  assert_int_equal(settled, n);
  *kills = c.kills;
  {
    vow_promise_t* done = vow_pool_shutdown(c.pool, true);
    vow_ctx_wait(ctx, done);
    vow_promise_release(done);
  }
  vow_pool_free(c.pool);
  vow_ctx_close(ctx);
  free(tallies);
}

static void run_chaos(unsigned workers, unsigned retries, size_t n,
                      unsigned* kills, size_t* died) {
  run_chaos_with(workers, retries, n, NULL, kills, died);
}

/* Entries of a directory whose names begin with prefix (other
 * processes' entries are not ours to judge). */
static int entries_named(const char* path, const char* prefix) {
  DIR* d = opendir(path);
  struct dirent* e;
  int n = 0;
  if (d == NULL)
    return 0;
  while ((e = readdir(d)) != NULL)
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return n;
}

/* Shared-memory segments that process pid has mapped or open. */
static int segments_held(int pid) {
  char path[64], line[512];
  FILE* f;
  int n = 0, fd;
  snprintf(path, sizeof(path), "/proc/%d/maps", pid);
  if ((f = fopen(path, "r")) != NULL) {
    while (fgets(line, sizeof(line), f))
      n += strstr(line, "/memfd:vow") != NULL;
    fclose(f);
  }
  for (fd = 0; fd < 4096; fd++) {
    char link[256];
    ssize_t len;
    snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
    len = readlink(path, link, sizeof(link) - 1);
    if (len > 0) {
      link[len] = '\0';
      n += strncmp(link, "/memfd:vow", 10) == 0;
    }
  }
  return n;
}

/* Chaos with big values: every task's arguments hold a 2 MiB part (one
 * segment for all), every tenth a big value of its own; workers die
 * holding them. Every task settles once, and once the values go no
 * segment is left in this process. */
static void chaos_with_big_values(void** state) {
  unsigned kills;
  size_t died, n = scaled(4000);
  void* data;
  vow_value_t* big = vow_value_new_shared_bin(2 << 20, &data, NULL);
  (void)state;
  assert_non_null(big);
  memset(data, 7, 2 << 20);
  run_chaos_with(2, 5, n, big, &kills, &died);
  printf(
      "# 2 workers, retries 5, 2 MiB parts: %zu tasks, %u kills, "
      "%zu failed\n",
      n, kills, died);
  assert_int_equal(died, 0);
  assert_true(kills > 0);
  assert_true(segments_held(getpid()) > 0); /* big's, still held */
  vow_value_release(big);
  assert_int_equal(segments_held(getpid()), 0);
  /* Segments have no name: nothing of ours is left in /dev/shm. */
  assert_int_equal(entries_named("/dev/shm", "vow"), 0);
}

static void chaos_without_retries(void** state) {
  unsigned kills;
  size_t died, n = scaled(200000);
  (void)state;
#ifdef VOW_ASAN
  /* Every kill sends its batch's other tasks to run alone, and under ASan
   * each of those round trips and each restart costs ten times as much: a
   * tenth of the tasks still meets a thousand kills. */
  n /= 10;
#endif
  run_chaos(2, 0, n, &kills, &died);
  printf("# 2 workers, no retries: %zu tasks, %u kills, %zu worker-died\n", n,
         kills, died);
  assert_true(kills > 0);
}

static void chaos_with_retries(void** state) {
  unsigned kills, workers;
  size_t died, n = scaled(50000);
  (void)state;
#ifdef VOW_ASAN
  /* As above: a quarter of the tasks still meets over five hundred kills
   * per pool size, each with its retries and restart. */
  n /= 4;
#endif
  for (workers = 2; workers <= 8; workers *= 2) {
    run_chaos(workers, 5, n, &kills, &died);
    printf("# %u workers, retries 5: %zu tasks, %u kills, %zu failed\n",
           workers, n, kills, died);
    assert_int_equal(died, 0);
    assert_true(kills > 0);
  }
}

/* ---- resource hygiene ------------------------------------------------ */

static int count_fds(void) {
  char path[64];
  int n = 0, fd;
  for (fd = 0; fd < 4096; fd++) {
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (access(path, F_OK) == 0)
      n++;
  }
  return n;
}

/* Under AddressSanitizer malloc is ASan's and mallinfo2 reads 0: ask
 * its allocator instead, so the check means the same in both builds. */
#ifdef VOW_ASAN
/* From <sanitizer/allocator_interface.h>, which not every compiler ships. */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void) {
  return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_in_use(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}
#endif

typedef struct zombies {
  int pid[256];
  uint64_t since[256]; /* when first seen as a zombie, 0: not one */
  unsigned seen[256];  /* in how many samples in a row */
  uint64_t worst_ns;
  unsigned worst_seen;
  unsigned samples;
} zombies;

/* Samples our children from /proc: how long any of them stays a zombie,
 * in time (reported) and in samples (judged). Each sample is a turn of
 * the loop, and a turn is all the pool needs to reap a child whose
 * SIGCHLD has come: on a busy host the time grows, the turns do not. */
static void sample_zombies(uv_timer_t* t) {
  zombies* z = t->data;
  char path[64], buf[8192];
  FILE* f;
  size_t len;
  char* p;
  uint64_t now = uv_hrtime();
  int zpids[256];
  unsigned i, nseen = 0;
  z->samples++;
  snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
  f = fopen(path, "r");
  if (f == NULL)
    return;
  len = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[len] = '\0';
  for (p = strtok(buf, " \n"); p != NULL && nseen < 256;
       p = strtok(NULL, " \n")) {
    int pid = atoi(p);
    char st = '?';
    FILE* s;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    s = fopen(path, "r");
    if (s == NULL)
      continue;
    if (fscanf(s, "%*d %*s %c", &st) != 1)
      st = '?';
    fclose(s);
    if (st != 'Z')
      continue;
    zpids[nseen++] = pid;
  }
  /* Zombies still there keep their first-zpids time; others are dropped. */
  for (i = 0; i < 256; i++) {
    unsigned k;
    bool still = false;
    if (z->pid[i] == 0)
      continue;
    for (k = 0; k < nseen; k++)
      still |= zpids[k] == z->pid[i];
    if (!still) {
      z->pid[i] = 0;
      continue;
    }
    z->seen[i]++;
    if (now - z->since[i] > z->worst_ns)
      z->worst_ns = now - z->since[i];
    if (z->seen[i] > z->worst_seen)
      z->worst_seen = z->seen[i];
  }
  for (i = 0; i < nseen; i++) {
    unsigned k, free_slot = 256;
    bool known = false;
    for (k = 0; k < 256; k++) {
      if (z->pid[k] == zpids[i])
        known = true;
      if (z->pid[k] == 0 && free_slot == 256)
        free_slot = k;
    }
    if (!known && free_slot < 256) {
      z->pid[free_slot] = zpids[i];
      z->since[free_slot] = now;
      z->seen[free_slot] = 1;
      if (z->worst_seen == 0)
        z->worst_seen = 1;
    }
  }
}

/* Runs n tasks on a pool that replaces its worker after every task. */
static void respawn_many(vow_ctx_t* ctx, size_t n, zombies* z) {
  vow_pool_options_t o;
  vow_pool_t* pool;
  uv_timer_t sampler;
  size_t i, done = 0;
  vow_pool_options_init(&o);
  o.workers = 2;
  o.functions = test_functions;
  o.nfunctions = test_nfunctions;
  o.recycle_after = 1;
  o.stderr_mode = VOW_STDERR_DISCARD;
  pool = vow_pool_new(ctx, &o, NULL);
  assert_non_null(pool);
  uv_timer_init(vow_ctx_loop(ctx), &sampler);
  sampler.data = z;
  if (z)
    uv_timer_start(&sampler, sample_zombies, 10, 10);
  for (i = 0; i < n; i++) {
    vow_promise_t* p = vow_pool_submit(pool, "noop", NULL);
    vow_promise_release(vow_add_both(p, count_done, &done));
  }
  while (done < n)
    uv_run(vow_ctx_loop(ctx), UV_RUN_ONCE);
  {
    vow_promise_t* end = vow_pool_shutdown(pool, true);
    vow_ctx_wait(ctx, end);
    vow_promise_release(end);
  }
  vow_pool_free(pool);
  uv_close((uv_handle_t*)&sampler, NULL);
  vow_ctx_run(ctx); /* close what the pool and the sampler left */
}

static void thousand_respawns_leave_nothing(void** state) {
  vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
  zombies z;
  size_t n = scaled(1000), heap0, heap1;
  int fds0, fds1;
  (void)state;
#ifdef VOW_ASAN
  n /= 4; /* a restart costs ten times as much; any leak still shows */
#endif
  memset(&z, 0, sizeof(z));
  /* Warm-up with the same work: libuv's signal pipe, and the context's
   * promise slabs grown to their high-water mark (they are reused, not
   * returned, by design). */
  respawn_many(ctx, n, NULL);
  fds0 = count_fds();
  heap0 = heap_in_use();
  respawn_many(ctx, n, &z);
  fds1 = count_fds();
  heap1 = heap_in_use();
  printf(
      "# %zu respawns: fds %d -> %d, heap %zu -> %zu bytes, worst zombie "
      "%.1f ms, seen in %u samples in a row, over %u samples\n",
      n, fds0, fds1, heap0, heap1, (double)z.worst_ns / 1e6, z.worst_seen,
      z.samples);
  assert_int_equal(fds1, fds0);
  assert_true(heap1 <= heap0 + 64 * 1024);
  /* Seen by the sample of the turn it appeared in and, at worst, by the
   * next one if its SIGCHLD came while that sample was being taken. */
  assert_true(z.worst_seen <= 3);
  assert_true(z.samples > 0);
  vow_ctx_close(ctx);
}

/* ---- parent death ---------------------------------------------------- */

typedef struct busy_report {
  int pids[8];
  uint64_t completed;
  uint64_t queued;
} busy_report;

typedef struct busy_parent {
  vow_pool_t* pool;
  int fd;
} busy_parent;

/* Tells the test which workers run and how far the run has gone, once
 * every worker is up and tasks have completed (looked at every 20 ms,
 * however long a busy host takes to get there), then lets the run go on
 * until the test kills us. */
static void report_busy(uv_timer_t* t) {
  busy_parent* b = t->data;
  busy_report r;
  vow_pool_stats_t st;
  unsigned i;
  memset(&r, 0, sizeof(r));
  vow_pool_stats(b->pool, &st);
  for (i = 0; i < b->pool->nworkers && i < 8; i++) {
    pworker* w = b->pool->workers[i];
    if (w == NULL || w->state != PW_READY)
      return;
    r.pids[i] = w->pid;
  }
  if (st.completed == 0)
    return;
  r.completed = st.completed;
  r.queued = st.queued;
  uv_timer_stop(t);
  if (write(b->fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
    _exit(1);
  close(b->fd);
}

static bool gone_or_zombie(int pid) {
  char path[64], st = '?';
  FILE* f;
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  f = fopen(path, "r");
  if (f == NULL)
    return true;
  if (fscanf(f, "%*d %*s %c", &st) != 1)
    st = '?';
  fclose(f);
  return st == 'Z' || st == 'X';
}

/* The parent is SIGKILLed in the middle of a busy run (4 workers, tens
 * of thousands of 1 ms tasks queued and flowing): every worker is gone
 * within one second, by the kernel's parent-death signal. */
static void parent_killed_mid_run(void** state) {
  enum { WORKERS = 4 };
  int fds[2], status;
  pid_t parent;
  busy_report r;
  ssize_t got;
  unsigned i, workers_alive = 0;
  uint64_t t0, worst = 0;
  (void)state;
  assert_int_equal(pipe(fds), 0);
  parent = fork();
  assert_true(parent >= 0);
  if (parent == 0) {
    vow_ctx_t* ctx = vow_ctx_new(NULL, NULL);
    vow_pool_options_t o;
    busy_parent b;
    uv_timer_t reporter;
    size_t k;
    close(fds[0]);
    vow_pool_options_init(&o);
    o.workers = WORKERS;
    o.functions = test_functions;
    o.nfunctions = test_nfunctions;
    o.stderr_mode = VOW_STDERR_DISCARD;
    b.pool = vow_pool_new(ctx, &o, NULL);
    b.fd = fds[1];
    if (b.pool == NULL)
      _exit(1);
    for (k = 0; k < 50000; k++)
      vow_promise_release(
          vow_pool_submit(b.pool, "sleep", vow_value_new_int(1)));
    uv_timer_init(vow_ctx_loop(ctx), &reporter);
    reporter.data = &b;
    uv_timer_start(&reporter, report_busy, 20, 20);
    vow_ctx_run(ctx);
    _exit(2); /* the run cannot end before the test kills us */
  }
  close(fds[1]);
  got = read(fds[0], &r, sizeof(r));
  close(fds[0]);
  for (i = 0; i < WORKERS; i++)
    workers_alive +=
        got == (ssize_t)sizeof(r) && r.pids[i] > 0 && kill(r.pids[i], 0) == 0;
  /* Killed before any check can fail: a parent left running would hold
   * the test's output open, and its workers, forever. */
  kill(parent, SIGKILL);
  assert_int_equal(waitpid(parent, &status, 0), parent);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(got, (ssize_t)sizeof(r));
  assert_true(r.completed > 0); /* it was running */
  assert_true(r.queued > 0);    /* and had work left */
  assert_int_equal(workers_alive, WORKERS);
  t0 = uv_hrtime();
  for (i = 0; i < WORKERS; i++) {
    while (!gone_or_zombie(r.pids[i])) {
      if (uv_hrtime() - t0 > 1000000000ull)
        fail_msg("worker %d still runs 1 s after its parent's SIGKILL",
                 r.pids[i]);
      usleep(2000);
    }
    if (uv_hrtime() - t0 > worst)
      worst = uv_hrtime() - t0;
  }
  printf(
      "# parent SIGKILLed after %llu tasks (%llu queued): %d workers gone "
      "within %.1f ms\n",
      (unsigned long long)r.completed, (unsigned long long)r.queued, WORKERS,
      (double)worst / 1e6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(chaos_without_retries),
      cmocka_unit_test(chaos_with_retries),
      cmocka_unit_test(chaos_with_big_values),
      cmocka_unit_test(thousand_respawns_leave_nothing),
      cmocka_unit_test(parent_killed_mid_run),
  };
  vow_worker_main(test_functions, test_nfunctions);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
