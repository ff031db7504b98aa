/* Task functions for test_shm: big values, what a worker holds of
 * shared memory, and workers that lie about segments. */
#include "shm_functions.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "shm.h"

/* Adds ino to the n distinct ones in seen. */
static int note(unsigned long* seen, int n, unsigned long ino) {
  int i;
  for (i = 0; i < n; i++)
    if (seen[i] == ino)
      return n;
  if (n < 256)
    seen[n++] = ino;
  return n;
}

int shm_segments_held(int pid) {
  char path[64], line[512], link[256];
  unsigned long seen[256];
  FILE* f;
  DIR* d;
  struct dirent* e;
  int n = 0;
  snprintf(path, sizeof(path), "/proc/%d/maps", pid);
  if ((f = fopen(path, "r")) != NULL) {
    while (fgets(line, sizeof(line), f)) {
      unsigned long ino;
      if (strstr(line, "/memfd:vow") != NULL &&
          sscanf(line, "%*s %*s %*s %*s %lu", &ino) == 1)
        n = note(seen, n, ino);
    }
    fclose(f);
  }
  snprintf(path, sizeof(path), "/proc/%d/fd", pid);
  if ((d = opendir(path)) != NULL) {
    while ((e = readdir(d)) != NULL) {
      char fd_path[400];
      struct stat st;
      ssize_t len;
      snprintf(fd_path, sizeof(fd_path), "%s/%s", path, e->d_name);
      len = readlink(fd_path, link, sizeof(link) - 1);
      if (len <= 0)
        continue;
      link[len] = '\0';
      if (strncmp(link, "/memfd:vow", 10) == 0 && stat(fd_path, &st) == 0)
        n = note(seen, n, (unsigned long)st.st_ino);
    }
    closedir(d);
  }
  return n;
}

static const msgpack_object* bin_arg(const msgpack_object* a) {
  if (a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size > 0)
    a = &a->via.array.ptr[0];
  return a->type == MSGPACK_OBJECT_BIN ? a : NULL;
}

/* bin, or [bin, ...] -> [its length, the sum of its bytes, the segments
 * this worker holds while it runs]. */
static int fn_bin_info(vow_task_ctx_t* t, const msgpack_object* a,
                       msgpack_packer* r) {
  const msgpack_object* b = bin_arg(a);
  uint64_t sum = 0;
  uint32_t i;
  if (b == NULL)
    return vow_task_fail(t, "bin_info takes a bin");
  for (i = 0; i < b->via.bin.size; i++)
    sum += (unsigned char)b->via.bin.ptr[i];
  msgpack_pack_array(r, 3);
  msgpack_pack_uint64(r, b->via.bin.size);
  msgpack_pack_uint64(r, sum);
  return msgpack_pack_int(r, shm_segments_held(getpid()));
}

/* [bin, ms]: says its pid (PROGRESS), holds the bin ms, returns its
 * length. */
static int fn_bin_hold(vow_task_ctx_t* t, const msgpack_object* a,
                       msgpack_packer* r) {
  const msgpack_object* b = bin_arg(a);
  char pid[32];
  int64_t ms = 0;
  struct timespec ts;
  if (b == NULL || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size < 2)
    return vow_task_fail(t, "bin_hold takes [bin, ms]");
  ms = (int64_t)a->via.array.ptr[1].via.u64;
  snprintf(pid, sizeof(pid), "%d", (int)getpid());
  vow_task_progress(t, 0.0, pid);
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000;
  while (nanosleep(&ts, &ts) != 0) {
  }
  return msgpack_pack_uint64(r, b->via.bin.size);
}

/* [bin, ms]: reads the channel for ms (so the tasks sent after it are
 * queued, their arguments mapped), then says how many mappings of
 * segments this worker has. */
static int fn_maps_while_queued(vow_task_ctx_t* t, const msgpack_object* a,
                                msgpack_packer* r) {
  char line[512];
  int64_t ms = (int64_t)a->via.array.ptr[1].via.u64, waited;
  struct timespec ten = {0, 10 * 1000000};
  FILE* f;
  int n = 0;
  for (waited = 0; waited < ms; waited += 10) {
    vow_task_cancelled(t);
    nanosleep(&ten, NULL);
  }
  if ((f = fopen("/proc/self/maps", "r")) != NULL) {
    while (fgets(line, sizeof(line), f))
      n += strstr(line, "/memfd:vow") != NULL;
    fclose(f);
  }
  return msgpack_pack_int(r, n);
}

/* The segments this worker holds now. */
static int fn_segments(vow_task_ctx_t* t, const msgpack_object* a,
                       msgpack_packer* r) {
  (void)t;
  (void)a;
  return msgpack_pack_int(r, shm_segments_held(getpid()));
}

/* [n]: a bin of n bytes 0, 1, 2, ... 255, 0, ... */
static int fn_ramp(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  uint64_t n = a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size > 0
                   ? a->via.array.ptr[0].via.u64
                   : a->via.u64;
  char* buf = malloc(n ? n : 1);
  uint64_t i;
  if (buf == NULL)
    return vow_task_fail(t, "no memory for %llu bytes", (unsigned long long)n);
  for (i = 0; i < n; i++)
    buf[i] = (char)(i & 0xff);
  msgpack_pack_bin(r, n);
  msgpack_pack_bin_body(r, buf, n);
  free(buf);
  return 0;
}

/* [n]: the same bin as ramp, written in place (vow_task_result_bin);
 * packed the usual way where there is no such place (a map's item). */
static int fn_ramp_in_place(vow_task_ctx_t* t, const msgpack_object* a,
                            msgpack_packer* r) {
  uint64_t n = a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size > 0
                   ? a->via.array.ptr[0].via.u64
                   : a->via.u64;
  unsigned char* b = vow_task_result_bin(t, n);
  uint64_t i;
  if (b == NULL)
    return fn_ramp(t, a, r);
  for (i = 0; i < n; i++)
    b[i] = (unsigned char)(i & 0xff);
  return 0;
}

/* [] -> this worker may open no more descriptors (its soft limit set to
 * the lowest free one); returns the limit it had. [n] -> sets it back to
 * n; returns the pid. */
static int fn_nofile(vow_task_ctx_t* t, const msgpack_object* a,
                     msgpack_packer* r) {
  struct rlimit l;
  int lowest;
  if (getrlimit(RLIMIT_NOFILE, &l) != 0)
    return vow_task_fail(t, "getrlimit failed");
  if (a->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    l.rlim_cur = (rlim_t)a->via.u64;
    setrlimit(RLIMIT_NOFILE, &l);
    return msgpack_pack_int(r, getpid());
  }
  lowest = dup(0);
  close(lowest);
  msgpack_pack_uint64(r, (uint64_t)l.rlim_cur);
  l.rlim_cur = (rlim_t)lowest;
  setrlimit(RLIMIT_NOFILE, &l);
  return 0;
}

/* ---- workers that lie about segments --------------------------------- */

/* Sends fd with id on the side socket, fd 4, as a worker does. */
static void side_send(uint64_t id, int fd) {
  if (vow__shm_send(4, id, fd) != 0)
    _exit(9);
}

/* RESULTS [[task, reference to segment id: off, len]] on the channel, then
 * a wait to be killed. */
static int lie(vow_task_ctx_t* t, uint64_t id, uint64_t off, uint64_t len) {
  unsigned char frame[4 + 13 + VOWP_SHM_REF_LEN] = {0,    0,    0,    40,  0x92,
                                                    0x03, 0x91, 0x92, 0xcf};
  vowp_write_be64(frame + 9, vow_task_id(t));
  vowp_shm_ref_write(frame + 17, id, off, len);
  if (write(3, frame, sizeof(frame)) != (ssize_t)sizeof(frame))
    _exit(9);
  for (;;)
    pause();
  return 0;
}

/* A segment of `size` bytes holding a msgpack nil; sealed when asked. */
static int segment(size_t size, int seal) {
  int fd = memfd_create("vow", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0 || ftruncate(fd, (off_t)size) != 0 ||
      pwrite(fd, "\xc0", 1, 0) != 1)
    _exit(9);
  if (seal &&
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0)
    _exit(9);
  return fd;
}

#define LIE_ID 1000000u

static int fn_shm_unsent(vow_task_ctx_t* t, const msgpack_object* a,
                         msgpack_packer* r) {
  (void)a;
  (void)r;
  return lie(t, LIE_ID, 0, 1);
}

static int fn_shm_unsealed(vow_task_ctx_t* t, const msgpack_object* a,
                           msgpack_packer* r) {
  (void)a;
  (void)r;
  side_send(LIE_ID, segment(4096, 0));
  return lie(t, LIE_ID, 0, 1);
}

static int fn_shm_short(vow_task_ctx_t* t, const msgpack_object* a,
                        msgpack_packer* r) {
  (void)a;
  (void)r;
  side_send(LIE_ID, segment(4096, 1));
  return lie(t, LIE_ID, 0, 1 << 20);
}

static int fn_shm_pipe(vow_task_ctx_t* t, const msgpack_object* a,
                       msgpack_packer* r) {
  int p[2];
  (void)a;
  (void)r;
  if (pipe(p) != 0)
    _exit(9);
  side_send(LIE_ID, p[0]);
  return lie(t, LIE_ID, 0, 1);
}

/* A sealed segment whose bytes are not one msgpack value. */
static int fn_shm_garbage(vow_task_ctx_t* t, const msgpack_object* a,
                          msgpack_packer* r) {
  int fd = memfd_create("vow", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  (void)a;
  (void)r;
  if (fd < 0 || pwrite(fd, "\xc1\xc1", 2, 0) != 2 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0)
    _exit(9);
  side_send(LIE_ID, fd);
  return lie(t, LIE_ID, 0, 2);
}

static int fn_echo(vow_task_ctx_t* t, const msgpack_object* a,
                   msgpack_packer* r) {
  (void)t;
  return msgpack_pack_object(r, *a);
}

const vow_function_t shm_test_functions[] = {
    {"echo", fn_echo},
    {"bin_info", fn_bin_info},
    {"bin_hold", fn_bin_hold},
    {"segments", fn_segments},
    {"maps_while_queued", fn_maps_while_queued},
    {"ramp", fn_ramp},
    {"ramp_in_place", fn_ramp_in_place},
    {"nofile", fn_nofile},
    {"shm_unsent", fn_shm_unsent},
    {"shm_unsealed", fn_shm_unsealed},
    {"shm_short", fn_shm_short},
    {"shm_pipe", fn_shm_pipe},
    {"shm_garbage", fn_shm_garbage},
};
const size_t shm_test_nfunctions =
    sizeof(shm_test_functions) / sizeof(shm_test_functions[0]);
