/* vow status and vow wait. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include <time.h>

#include "json.h"

/* A moment as the time of day when it is today, else with its date. */
static void format_when(char* buf, size_t size, double t) {
  time_t when = (time_t)t, now = time(NULL);
  struct tm tw, tn;
  if (t <= 0) {
    snprintf(buf, size, "-");
    return;
  }
  localtime_r(&when, &tw);
  localtime_r(&now, &tn);
  if (tw.tm_year == tn.tm_year && tw.tm_yday == tn.tm_yday)
    strftime(buf, size, "%H:%M:%S", &tw);
  else
    strftime(buf, size, "%b %d %H:%M", &tw);
}

static void format_span(char* buf, size_t size, double s) {
  long long secs = (long long)s;
  if (s < 0)
    snprintf(buf, size, "-");
  else if (s < 10)
    snprintf(buf, size, "%.1fs", s);
  else if (secs < 60)
    snprintf(buf, size, "%llds", secs);
  else if (secs < 3600)
    snprintf(buf, size, "%lldm%02llds", secs / 60, secs % 60);
  else
    snprintf(buf, size, "%lldh%02lldm", secs / 3600, secs % 3600 / 60);
}

static void print_job_line(const msgpack_object* j) {
  int64_t id = 0, status = -1;
  double started = 0, ended = 0;
  char* state = qw_get_str(j, "state");
  char* name = qw_get_str(j, "name");
  char* group = qw_get_str(j, "group");
  char* cmd = qw_get_str(j, "command");
  char* err = qw_get_str(j, "error");
  const msgpack_object* waiting = qw_get(j, "waiting_on");
  char when[32], span[32];
  bool running = state && strcmp(state, "running") == 0;
  qw_get_int(j, "id", &id);
  qw_get_int(j, "status", &status);
  qw_get_double(j, "started", &started);
  qw_get_double(j, "ended", &ended);
  format_when(when, sizeof(when),
              state && strcmp(state, "queued") == 0 ? 0 : started);
  format_span(span, sizeof(span),
              started <= 0 || (state && strcmp(state, "queued") == 0) ? -1
              : running         ? vow_cli_now() - started
              : ended > started ? ended - started
                                : -1);
  printf("%-6lld %-11s ", (long long)id, state ? state : "?");
  if (status >= 0)
    printf("%-4lld ", (long long)status);
  else
    printf("%-4s ", "-");
  printf("%-12s %-10s %-14s %-8s %s", name ? name : "-",
         group ? group : "default", when, span, cmd ? cmd : "");
  if (waiting != NULL && waiting->type == MSGPACK_OBJECT_ARRAY &&
      waiting->via.array.size > 0) {
    uint32_t k;
    printf("   (waiting on ");
    for (k = 0; k < waiting->via.array.size; k++)
      printf("%s%lld", k ? ", " : "",
             (long long)waiting->via.array.ptr[k].via.i64);
    putchar(')');
  } else if (err && state && strcmp(state, "done") != 0 &&
             strcmp(state, "queued") != 0) {
    printf("   (%s)", err);
  }
  putchar('\n');
  free(state);
  free(name);
  free(group);
  free(cmd);
  free(err);
}

/* A line for each group when there is more than one, or one is paused. */
static void print_groups(FILE* f, const msgpack_object* r) {
  const msgpack_object* groups = qw_get(r, "groups");
  uint32_t i;
  bool any = false;
  if (groups == NULL || groups->type != MSGPACK_OBJECT_ARRAY)
    return;
  for (i = 0; i < groups->via.array.size; i++)
    any |= qw_get_bool(&groups->via.array.ptr[i], "paused");
  if (groups->via.array.size < 2 && !any)
    return;
  for (i = 0; i < groups->via.array.size; i++) {
    const msgpack_object* g = &groups->via.array.ptr[i];
    char* name = qw_get_str(g, "name");
    int64_t slots = 0, running = 0, ready = 0;
    qw_get_int(g, "slots", &slots);
    qw_get_int(g, "running", &running);
    qw_get_int(g, "ready", &ready);
    fprintf(f, "group %s: %lld slot%s, %lld running, %lld ready%s\n",
            name ? name : "?", (long long)slots, slots == 1 ? "" : "s",
            (long long)running, (long long)ready,
            qw_get_bool(g, "paused") ? " (paused)" : "");
    free(name);
  }
}

/* A msgpack object as JSON, to stdout. */
static void put_json(const msgpack_object* o) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  vbuf text = {0};
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_object(&pk, *o);
  if (vow_msgpack_write_json(&text, sb.data, sb.size, 0) == 0)
    fwrite(text.data, 1, text.len, stdout);
  vbuf_free(&text);
  msgpack_sbuffer_destroy(&sb);
}

typedef struct status_print {
  bool json;
  const char* group; /* --group: only its jobs */
  size_t printed;
  char* tail; /* what follows the jobs: the groups, the pause */
  size_t tail_len;
} status_print;

/* The reply's own fields (the first page's): as JSON, everything but the
 * jobs, which follow page by page; else the lines printed after them. */
static void status_head(const msgpack_object* r, void* data) {
  status_print* sp = data;
  uint32_t i;
  if (sp->json) {
    putchar('{');
    for (i = 0; i < r->via.map.size; i++) {
      const msgpack_object* k = &r->via.map.ptr[i].key;
      if (k->type == MSGPACK_OBJECT_STR &&
          ((k->via.str.size == 4 && memcmp(k->via.str.ptr, "jobs", 4) == 0) ||
           (k->via.str.size == 4 && memcmp(k->via.str.ptr, "more", 4) == 0)))
        continue;
      put_json(k);
      putchar(':');
      put_json(&r->via.map.ptr[i].val);
      putchar(',');
    }
    fputs("\"jobs\":[", stdout);
    return;
  }
  {
    FILE* m = open_memstream(&sp->tail, &sp->tail_len);
    if (m == NULL)
      return;
    print_groups(m, r);
    if (qw_get_bool(r, "paused"))
      fprintf(m, "(the queue is paused: vow resume starts it again)\n");
    fclose(m);
  }
  printf("%-6s %-11s %-4s %-12s %-10s %-14s %-8s %s\n", "ID", "STATE", "EXIT",
         "NAME", "GROUP", "STARTED", "TIME", "COMMAND");
}

static void status_job(const msgpack_object* j, void* data) {
  status_print* sp = data;
  char* group;
  if (sp->json) {
    if (sp->printed++ > 0)
      putchar(',');
    put_json(j);
    return;
  }
  group = qw_get_str(j, "group");
  if (sp->group == NULL || (group && strcmp(group, sp->group) == 0))
    print_job_line(j);
  free(group);
}

int cmd_status(conn* c, int argc, char** argv) {
  static const char* const flags[3] = {"--json", NULL, NULL};
  msgpack_sbuffer sb;
  msgpack_packer pk;
  id_args a;
  status_print sp;
  int rc;
  if (qc_collect_ids(argc, argv, &a, flags, true) != 0) {
    free(a.ids);
    return VOW_EXIT_ERROR;
  }
  if (c->fd < 0) {
    /* No daemon: nothing runs, and none is started to say so. */
    if (a.flag[0])
      printf(
          "{\"ok\":true,\"daemon\":false,\"paused\":false,"
          "\"running\":0,\"queued\":0,\"groups\":[],\"jobs\":[]}\n");
    else
      fprintf(stderr,
              "vow: no daemon runs at %s, so nothing is queued or running "
              "(vow submit starts one; jobs it kept show once it runs)\n",
              c->paths.sock);
    free(a.ids);
    return 0;
  }
  qc_begin(&sb, &pk, "status", a.n > 0);
  if (a.n > 0)
    qc_pack_ids(&pk, a.ids, a.n);
  free(a.ids);
  if (qc_send(c, &sb) != 0)
    return VOW_EXIT_ERROR;
  memset(&sp, 0, sizeof(sp));
  sp.json = a.flag[0];
  sp.group = a.group;
  /* Printed as the pages come: any number of jobs in bounded memory. */
  rc = qc_jobs(c, status_head, status_job, &sp);
  if (rc == 0 && sp.json)
    fputs("]}\n", stdout);
  if (rc == 0 && sp.tail != NULL)
    fwrite(sp.tail, 1, sp.tail_len, stdout);
  free(sp.tail);
  if (rc != 0)
    return VOW_EXIT_ERROR;
  if (fflush(stdout) != 0) {
    vow_cli_error("writing standard output: %s", strerror(errno));
    return VOW_EXIT_ERROR;
  }
  return 0;
}

typedef struct wait_result {
  bool any;
  bool decided;
  int status;
} wait_result;

static void wait_job(const msgpack_object* j, void* data) {
  wait_result* w = data;
  int64_t s = -1;
  qw_get_int(j, "status", &s);
  if (w->decided)
    return;
  if (w->any) {
    /* The first that ended: its status. */
    if (s >= 0) {
      w->status = (int)s;
      w->decided = true;
    }
    return;
  }
  if (s != 0 && w->status == 0)
    w->status = (int)s;
}

/* Sends a wait for ids and reads the reply: the exit status to give. */
static int wait_for(conn* c, const int64_t* ids, size_t n, bool any) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  wait_result w = {any, false, 0};
  qc_begin(&sb, &pk, "wait", 2);
  qc_pack_ids(&pk, ids, n);
  qw_pack_str(&pk, "any");
  if (any)
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  if (qc_send(c, &sb) != 0 || qc_jobs(c, NULL, wait_job, &w) != 0)
    return VOW_EXIT_ERROR;
  return w.status;
}

int cmd_wait(conn* c, int argc, char** argv) {
  static const char* const flags[3] = {"--any", NULL, NULL};
  id_args a;
  int rc;
  if (qc_collect_ids(argc, argv, &a, flags, false) != 0 || a.n == 0) {
    if (a.n == 0 && a.ids != NULL)
      vow_cli_error("usage: vow wait ID... [--any]");
    free(a.ids);
    return VOW_EXIT_ERROR;
  }
  rc = wait_for(c, a.ids, a.n, a.flag[0]);
  free(a.ids);
  return rc;
}
