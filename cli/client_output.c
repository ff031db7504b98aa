/* vow output: a job's stdout and stderr, whole or followed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "fdio.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>

/* Copies what is new in from to to: 0, or -errno of a write that
 * failed (a full disk, a closed pipe). */
static int copy_new(int from, int to) {
  char buf[65536];
  ssize_t n;
  while ((n = read(from, buf, sizeof(buf))) > 0) {
    int rc = vowp_write_all(to, buf, (size_t)n);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* Copies, and on the first write error says so and gives the status to
 * exit with. */
static int copy_or_fail(int from, int to, int* rc) {
  int e;
  if (from < 0 || *rc == VOW_EXIT_ERROR || (e = copy_new(from, to)) == 0)
    return 0;
  if (e != -EPIPE)
    vow_cli_error("writing standard %s: %s", to == 1 ? "output" : "error",
                  strerror(-e));
  *rc = VOW_EXIT_ERROR;
  return -1;
}

int cmd_output(conn* c, int argc, char** argv) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  const msgpack_object* r;
  int64_t id = 0;
  bool follow = false;
  char *out = NULL, *err = NULL, *state = NULL, *result = NULL;
  char* lost = NULL;
  int i, fo = -1, fe = -1, rc = 0;
  for (i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0)
      follow = true;
    else if (!qc_parse_id(argv[i], &id))
      return VOW_EXIT_ERROR;
  }
  if (id == 0) {
    vow_cli_error("usage: vow output ID [--follow]");
    return VOW_EXIT_ERROR;
  }
  qc_begin(&sb, &pk, "output", 1);
  qc_pack_ids(&pk, &id, 1);
  if (qc_send(c, &sb) != 0 || (r = qc_reply(c)) == NULL)
    return VOW_EXIT_ERROR;
  state = qw_get_str(r, "state");
  result = qw_get_str(r, "result");
  out = qw_get_str(r, "out");
  err = qw_get_str(r, "err");
  lost = qw_get_str(r, "output_error");
  if (out == NULL) {
    /* A task function's job: its result (or failure), as JSON. */
    if (result != NULL && (printf("%s\n", result) < 0 || fflush(stdout) != 0)) {
      vow_cli_error("writing standard output: %s", strerror(errno));
      rc = VOW_EXIT_ERROR;
    }
    goto done;
  }
  fo = open(out, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  fe = open(err, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (copy_or_fail(fo, 1, &rc) != 0 || copy_or_fail(fe, 2, &rc) != 0)
    goto done;
  if (follow && state != NULL &&
      (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0)) {
    /* New bytes by inotify, the end by a wait on the daemon: nothing is
     * polled on a timer. */
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    msgpack_sbuffer wsb;
    msgpack_packer wpk;
    struct pollfd pf[2];
    if (in >= 0) {
      inotify_add_watch(in, out, IN_MODIFY);
      inotify_add_watch(in, err, IN_MODIFY);
      inotify_add_watch(in, c->paths.out, IN_CREATE);
    }
    qc_begin(&wsb, &wpk, "wait", 1);
    qc_pack_ids(&wpk, &id, 1);
    if (qc_send(c, &wsb) != 0) {
      rc = VOW_EXIT_ERROR;
      goto done;
    }
    pf[0].fd = c->fd;
    pf[0].events = POLLIN;
    pf[1].fd = in;
    pf[1].events = POLLIN;
    for (;;) {
      char evbuf[4096];
      if (poll(pf, in >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
        break;
      if (in >= 0 && (pf[1].revents & POLLIN))
        while (read(in, evbuf, sizeof(evbuf)) > 0) {
        }
      if (fo < 0)
        fo = open(out, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fe < 0)
        fe = open(err, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (copy_or_fail(fo, 1, &rc) != 0 || copy_or_fail(fe, 2, &rc) != 0 ||
          (pf[0].revents & (POLLIN | POLLHUP)))
        break;
    }
    if (in >= 0)
      close(in);
    if (rc == VOW_EXIT_ERROR)
      goto done;
    r = qc_reply(c);
    if (copy_or_fail(fo, 1, &rc) != 0 || copy_or_fail(fe, 2, &rc) != 0)
      goto done;
    if (r != NULL) {
      const msgpack_object* jobs = qw_get(r, "jobs");
      int64_t s = 0;
      if (jobs && jobs->type == MSGPACK_OBJECT_ARRAY &&
          jobs->via.array.size == 1) {
        qw_get_int(&jobs->via.array.ptr[0], "status", &s);
        free(lost);
        lost = qw_get_str(&jobs->via.array.ptr[0], "output_error");
      }
      rc = (int)s;
    } else {
      rc = VOW_EXIT_ERROR;
    }
  }
done:
  if (lost != NULL) {
    /* What is printed is not all the job wrote: never silently. */
    vow_cli_error("job %lld's output is incomplete: %s", (long long)id, lost);
    if (rc == 0)
      rc = 1;
  }
  free(lost);
  if (fo >= 0)
    close(fo);
  if (fe >= 0)
    close(fe);
  free(out);
  free(err);
  free(state);
  free(result);
  return rc;
}
