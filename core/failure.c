/* Failures: kind, code, message, origin and causes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define IMMORTAL UINT32_MAX

struct vow_failure {
  uint32_t refs; /* IMMORTAL for the shared out-of-memory failure */
  int kind;
  int code;
  bool reported;
  char* message;
  vow_origin_t origin; /* strings owned */
  char* detail;
  vow_failure_t** causes;
  size_t ncauses;
};

static vow_failure_t nomem = {IMMORTAL,
                              VOW_FAIL_NOMEM,
                              UV_ENOMEM,
                              false,
                              (char*)"out of memory",
                              {0, NULL, NULL, 0, -1, -1},
                              NULL,
                              NULL,
                              0};

vow_failure_t* vow__failure_nomem(void) {
  return &nomem;
}

static vow_failure_t closed = {IMMORTAL,
                               VOW_FAIL_CANCELLED,
                               VOW_ECLOSED,
                               true, /* never reported */
                               (char*)"its context was closed",
                               {0, NULL, NULL, 0, -1, -1},
                               NULL,
                               NULL,
                               0};

vow_failure_t* vow__failure_closed(void) {
  return &closed;
}

vow_failure_t* vow__failure_newv(int kind, int code, const char* fmt,
                                 va_list ap) {
  vow_failure_t* f = vow__malloc(sizeof(*f));
  va_list again;
  int len;
  if (f == NULL)
    return &nomem;
  memset(f, 0, sizeof(*f));
  f->refs = 1;
  f->kind = kind;
  f->code = code;
  f->origin.exit_status = -1;
  f->origin.term_signal = -1;
  if (fmt == NULL) {
    f->message = vow__strdup("");
  } else {
    va_copy(again, ap);
    len = vsnprintf(NULL, 0, fmt, ap);
    if (len < 0)
      len = 0;
    f->message = vow__malloc((size_t)len + 1);
    if (f->message != NULL)
      vsnprintf(f->message, (size_t)len + 1, fmt, again);
    va_end(again);
  }
  if (f->message == NULL) {
    vow__free(f);
    return &nomem;
  }
  return f;
}

vow_failure_t* vow_failure_new(int kind, int code, const char* fmt, ...) {
  va_list ap;
  vow_failure_t* f;
  va_start(ap, fmt);
  f = vow__failure_newv(kind, code, fmt, ap);
  va_end(ap);
  return f;
}

static int dup_str(const char** dst, const char* src) {
  char* copy;
  vow__free((char*)*dst);
  *dst = NULL;
  if (src == NULL)
    return 0;
  copy = vow__strdup(src);
  if (copy == NULL)
    return UV_ENOMEM;
  *dst = copy;
  return 0;
}

int vow_failure_set_origin(vow_failure_t* f, const vow_origin_t* o) {
  VOW__NOT_NULL(f, "the failure");
  VOW__NOT_NULL(o, "the origin");
  if (f->refs == IMMORTAL)
    return UV_EINVAL;
  f->origin.task_id = o->task_id;
  f->origin.pid = o->pid;
  f->origin.exit_status = o->exit_status;
  f->origin.term_signal = o->term_signal;
  if (dup_str(&f->origin.function, o->function) != 0)
    return UV_ENOMEM;
  if (dup_str(&f->origin.path, o->path) != 0)
    return UV_ENOMEM;
  return 0;
}

int vow_failure_set_detail(vow_failure_t* f, const char* detail) {
  VOW__NOT_NULL(f, "the failure");
  char* copy;
  if (f->refs == IMMORTAL)
    return UV_EINVAL;
  copy = detail ? vow__strdup(detail) : NULL;
  if (detail && copy == NULL)
    return UV_ENOMEM;
  vow__free(f->detail);
  f->detail = copy;
  return 0;
}

const char* vow_failure_detail(const vow_failure_t* f) {
  VOW__NOT_NULL(f, "the failure");
  return f->detail;
}

int vow_failure_add_cause(vow_failure_t* f, vow_failure_t* cause) {
  VOW__NOT_NULL(f, "the failure");
  VOW__NOT_NULL(cause, "the cause");
  vow_failure_t** grown;
  if (f->refs == IMMORTAL) {
    vow_failure_release(cause);
    return UV_EINVAL;
  }
  grown = vow__realloc(f->causes, (f->ncauses + 1) * sizeof(*grown));
  if (grown == NULL) {
    vow_failure_release(cause);
    return UV_ENOMEM;
  }
  f->causes = grown;
  f->causes[f->ncauses++] = cause;
  return 0;
}

vow_failure_t* vow_failure_ref(vow_failure_t* f) {
  VOW__NOT_NULL(f, "the failure");
  if (f->refs != IMMORTAL)
    f->refs++;
  return f;
}

void vow_failure_release(vow_failure_t* f) {
  size_t i;
  if (f == NULL || f->refs == IMMORTAL)
    return;
  VOW__REQUIRE(f->refs > 0,
               "the failure was released once more than it was referenced "
               "(released twice?)");
  if (--f->refs > 0)
    return;
  for (i = 0; i < f->ncauses; i++)
    vow_failure_release(f->causes[i]);
  vow__free(f->causes);
  vow__free((char*)f->origin.function);
  vow__free((char*)f->origin.path);
  vow__free(f->detail);
  vow__free(f->message);
  vow__free(f);
}

int vow_failure_kind(const vow_failure_t* f) {
  VOW__NOT_NULL(f, "the failure");
  return f->kind;
}
int vow_failure_code(const vow_failure_t* f) {
  VOW__NOT_NULL(f, "the failure");
  return f->code;
}
const char* vow_failure_message(const vow_failure_t* f) {
  VOW__NOT_NULL(f, "the failure");
  return f->message;
}
const vow_origin_t* vow_failure_origin(const vow_failure_t* f) {
  VOW__NOT_NULL(f, "the failure");
  return &f->origin;
}
size_t vow_failure_cause_count(const vow_failure_t* f) {
  VOW__NOT_NULL(f, "the failure");
  return f->ncauses;
}
vow_failure_t* vow_failure_cause(const vow_failure_t* f, size_t i) {
  VOW__NOT_NULL(f, "the failure");
  return i < f->ncauses ? f->causes[i] : NULL;
}

bool vow_failure_check(const vow_failure_t* f, int kind) {
  return f != NULL && f->kind == kind;
}

const char* vow_failure_kind_name(int kind) {
  switch (kind) {
#define XX(name, text)  \
  case VOW_FAIL_##name: \
    return text;
    VOW_FAILURE_KIND_MAP(XX)
#undef XX
    default:
      return "unknown";
  }
}

bool vow__failure_claim_report(vow_failure_t* f) {
  if (f->reported)
    return false;
  if (f->refs != IMMORTAL)
    f->reported = true;
  return true;
}

size_t vow_failure_describe(const vow_failure_t* f, char* buf, size_t size) {
  VOW__NOT_NULL(f, "the failure");
  const vow_origin_t* o = &f->origin;
  char extra[256] = "";
  size_t used = 0;
  int n;
  /* Origin details in brackets, only those that are known. */
#define ADD(...)                                                   \
  do {                                                             \
    n = snprintf(extra + used, sizeof(extra) - used, __VA_ARGS__); \
    if (n > 0)                                                     \
      used = used + (size_t)n < sizeof(extra) ? used + (size_t)n   \
                                              : sizeof(extra) - 1; \
  } while (0)
  if (o->task_id)
    ADD("%stask %llu", used ? ", " : "", (unsigned long long)o->task_id);
  if (o->function)
    ADD("%s%s", used ? ", " : "", o->function);
  if (o->path)
    ADD("%s%s", used ? ", " : "", o->path);
  if (o->pid)
    ADD("%spid %d", used ? ", " : "", o->pid);
  if (o->exit_status >= 0)
    ADD("%sexit %d", used ? ", " : "", o->exit_status);
  if (o->term_signal > 0)
    ADD("%ssignal %d", used ? ", " : "", o->term_signal);
  if (f->code)
    ADD("%s%s", used ? ", " : "", vow_err_name(f->code));
#undef ADD
  n = snprintf(buf, size, "%s: %s%s%s%s", vow_failure_kind_name(f->kind),
               f->message, used ? " [" : "", extra, used ? "]" : "");
  return n < 0 ? 0 : (size_t)n;
}
