/* The job queue's wire: frames on blocking descriptors for the clients,
 * msgpack map helpers for both sides, and where the daemon lives. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"
#include "queue.h"
#include "fdio.h"

int queue_paths_init(queue_paths* p, const char* socket_opt) {
  const char* s = socket_opt ? socket_opt : getenv("VOW_SOCKET");
  char dir[96];
  memset(p, 0, sizeof(*p));
  if (s == NULL || *s == '\0') {
    const char* xdg = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (xdg != NULL && *xdg == '/' && strlen(xdg) < 64)
      snprintf(dir, sizeof(dir), "%s/vow", xdg);
    else
      snprintf(dir, sizeof(dir), "/tmp/vow-%u", (unsigned)getuid());
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
      vow_cli_error("cannot make %s: %s", dir, strerror(errno));
      return -1;
    }
    /* A directory someone else made for us would let them in. */
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 077) != 0) {
      vow_cli_error(
          "%s is not a private directory of ours (mode 0700, "
          "owned by uid %u): remove it or give --socket",
          dir, (unsigned)getuid());
      return -1;
    }
    snprintf(p->sock, sizeof(p->sock), "%s/queue.sock", dir);
  } else {
    if (strlen(s) >= sizeof(p->sock)) {
      vow_cli_error("socket path %s is too long (at most %zu bytes)", s,
                    sizeof(p->sock) - 1);
      return -1;
    }
    snprintf(p->sock, sizeof(p->sock), "%s", s);
  }
  snprintf(p->db, sizeof(p->db), "%s.db", p->sock);
  snprintf(p->lock, sizeof(p->lock), "%s.lock", p->sock);
  snprintf(p->log, sizeof(p->log), "%s.log", p->sock);
  snprintf(p->out, sizeof(p->out), "%s.out", p->sock);
  return 0;
}

int qw_write_frame(int fd, const void* data, size_t len) {
  unsigned char h[4];
  int rc;
  vowp_write_be32(h, (uint32_t)len);
  if ((rc = vowp_write_all(fd, h, 4)) != 0)
    return rc;
  return vowp_write_all(fd, data, len);
}

int qw_read_frame(int fd, vbuf* out, char* err, size_t errlen) {
  unsigned char h[4];
  size_t len;
  int rc = vowp_read_full(fd, (char*)h, 4);
  vowp_limits lim = {VOW_QUEUE_MAX_FRAME, 0, 0};
  vowp_error e;
  if (rc <= 0) {
    if (rc < 0)
      snprintf(err, errlen, "reading from the daemon: %s", strerror(-rc));
    return rc == 0 ? 0 : -1;
  }
  len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
  if (len == 0 || len > VOW_QUEUE_MAX_FRAME) {
    snprintf(err, errlen, "the daemon sent a frame of %zu bytes", len);
    return -1;
  }
  out->len = 0;
  if (out->cap < len) {
    char* grown = realloc(out->data, len);
    if (grown == NULL) {
      snprintf(err, errlen, "no memory for a reply of %zu bytes", len);
      return -1;
    }
    out->data = grown;
    out->cap = len;
  }
  rc = vowp_read_full(fd, out->data, len);
  if (rc <= 0) {
    snprintf(err, errlen, "the daemon closed the connection mid-reply");
    return -1;
  }
  out->len = len;
  lim.max_objects = 1 << 20;
  lim.max_depth = VOWP_MAX_DEPTH;
  if (vowp_prescan(out->data, len, &lim, 0, &e) != VOWP_OK) {
    snprintf(err, errlen, "the daemon sent bad msgpack: %s", e.text);
    return -1;
  }
  return 1;
}

const msgpack_object* qw_get(const msgpack_object* map, const char* key) {
  uint32_t i;
  size_t klen = strlen(key);
  if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
    return NULL;
  for (i = 0; i < map->via.map.size; i++) {
    const msgpack_object* k = &map->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
        memcmp(k->via.str.ptr, key, klen) == 0)
      return &map->via.map.ptr[i].val;
  }
  return NULL;
}

bool qw_get_int(const msgpack_object* map, const char* key, int64_t* out) {
  const msgpack_object* v = qw_get(map, key);
  if (v == NULL)
    return false;
  if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
    *out = (int64_t)v->via.u64;
  else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
    *out = v->via.i64;
  else
    return false;
  return true;
}

bool qw_get_double(const msgpack_object* map, const char* key, double* out) {
  const msgpack_object* v = qw_get(map, key);
  int64_t i;
  if (v != NULL && (v->type == MSGPACK_OBJECT_FLOAT64 ||
                    v->type == MSGPACK_OBJECT_FLOAT32)) {
    *out = v->via.f64;
    return true;
  }
  if (qw_get_int(map, key, &i)) {
    *out = (double)i;
    return true;
  }
  return false;
}

bool qw_get_bool(const msgpack_object* map, const char* key) {
  const msgpack_object* v = qw_get(map, key);
  return v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

char* qw_get_str(const msgpack_object* map, const char* key) {
  const msgpack_object* v = qw_get(map, key);
  char* s;
  if (v == NULL || v->type != MSGPACK_OBJECT_STR)
    return NULL;
  s = malloc(v->via.str.size + 1);
  if (s == NULL)
    return NULL;
  memcpy(s, v->via.str.ptr, v->via.str.size);
  s[v->via.str.size] = '\0';
  return s;
}

void qw_pack_str(msgpack_packer* pk, const char* s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

void qw_pack_kv_str(msgpack_packer* pk, const char* key, const char* value) {
  qw_pack_str(pk, key);
  if (value)
    qw_pack_str(pk, value);
  else
    msgpack_pack_nil(pk);
}

void qw_pack_kv_int(msgpack_packer* pk, const char* key, int64_t value) {
  qw_pack_str(pk, key);
  msgpack_pack_int64(pk, value);
}
