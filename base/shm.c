/* Shared-memory segments and their side socket (see shm.h). */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"

#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

int vow__shm_create(size_t size, int* fd, unsigned char** map) {
  int f, rc;
  void* m;
  *fd = -1;
  if (map != NULL)
    *map = NULL;
  if (size == 0)
    return EINVAL;
  f = memfd_create("vow", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (f < 0)
    return errno;
  /* Reserved now: a memory that cannot hold it says so here, where the
   * value can still go another way. */
  if ((rc = posix_fallocate(f, 0, (off_t)size)) != 0) {
    close(f);
    return rc;
  }
  *fd = f;
  if (map == NULL)
    return 0;
  m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, f, 0);
  if (m == MAP_FAILED) {
    rc = errno;
    close(f);
    *fd = -1;
    return rc;
  }
  *map = m;
  return 0;
}

int vow__shm_write(int fd, const void* bytes, size_t len) {
  return vow__shm_write_at(fd, 0, bytes, len);
}

int vow__shm_write_at(int fd, size_t off, const void* bytes, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n =
        pwrite(fd, (const char*)bytes + done, len - done, (off_t)(off + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? errno : EIO;
    done += (size_t)n;
  }
  return 0;
}

int vow__shm_seal(int fd, unsigned char* map, size_t size) {
  /* F_SEAL_WRITE is refused while a writable shared mapping exists. */
  if (map != NULL && munmap(map, size) != 0)
    return errno;
  if (fcntl(fd, F_ADD_SEALS, SEALS | F_SEAL_SEAL) != 0)
    return errno;
  return 0;
}

__attribute__((format(printf, 3, 4))) static int refuse(char* why,
                                                        size_t why_len,
                                                        const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, why_len, fmt, ap);
  va_end(ap);
  return -1;
}

/* Reads the bytes where they cannot be mapped: the same bytes. */
static int read_instead(int fd, uint64_t off, uint64_t len, vow__shm_view* v,
                        char* why, size_t why_len) {
  unsigned char* buf = vow__malloc(len ? len : 1);
  size_t got = 0;
  if (buf == NULL)
    return refuse(why, why_len,
                  "no memory to map or read a shared-memory value of %llu "
                  "bytes",
                  (unsigned long long)len);
  while (got < len) {
    ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      vow__free(buf);
      return refuse(why, why_len,
                    "cannot read a shared-memory value at byte %llu of %llu",
                    (unsigned long long)got, (unsigned long long)len);
    }
    got += (size_t)n;
  }
  v->data = buf;
  v->len = (size_t)len;
  v->base = buf;
  v->map_len = 0;
  return 0;
}

int vow__shm_view_open(int fd, uint64_t off, uint64_t len, int how,
                       vow__shm_view* v, char* why, size_t why_len) {
  struct stat st;
  int seals;
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), start, span;
  void* m;
  memset(v, 0, sizeof(*v));
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return refuse(why, why_len,
                  "a shared-memory reference came with a descriptor that is "
                  "not a segment");
  seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & SEALS) != SEALS)
    return refuse(why, why_len,
                  "a shared-memory segment was not sealed against changes "
                  "(seals %#x)",
                  (unsigned)(seals < 0 ? 0 : seals));
  if (len == 0 || off > (uint64_t)st.st_size ||
      len > (uint64_t)st.st_size - off)
    return refuse(why, why_len,
                  "a shared-memory reference names %llu bytes past the end "
                  "of its segment of %llu",
                  (unsigned long long)(off + len),
                  (unsigned long long)st.st_size);
  start = off - off % page;
  span = off + len - start;
  /* Populated: the pages exist already, and one call maps them all
   * where a fault per page costs far more (a 1 GiB value: 262,144). */
  m = how == VOW__SHM_READ
          ? MAP_FAILED
          : mmap(NULL, span, PROT_READ,
                 MAP_SHARED | (how == VOW__SHM_MAP_ALL ? MAP_POPULATE : 0), fd,
                 (off_t)start);
  if (m == MAP_FAILED)
    return read_instead(fd, off, len, v, why, why_len);
  v->base = m;
  v->map_len = span;
  v->data = (const unsigned char*)m + (off - start);
  v->len = (size_t)len;
  return 0;
}

void vow__shm_view_close(vow__shm_view* v) {
  if (v->base == NULL)
    return;
  if (v->map_len > 0)
    munmap(v->base, v->map_len);
  else
    vow__free(v->base);
  v->base = NULL;
  v->data = NULL;
}

int vow__shm_send(int sock, uint64_t id, int fd) {
  struct msghdr mh;
  struct iovec iov = {&id, sizeof(id)};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } c;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (fd >= 0) {
    struct cmsghdr* h;
    memset(&c, 0, sizeof(c));
    mh.msg_control = c.buf;
    mh.msg_controllen = sizeof(c.buf);
    h = CMSG_FIRSTHDR(&mh);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof(int));
  }
  for (;;) {
    if (sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof(id))
      return 0;
    if (errno != EINTR)
      return errno;
  }
}

/* One packet: 1 with *id and *fd (-1 when none came), 0 when none is
 * waiting, -1 when the socket failed or sent something malformed. */
static int recv_one(int sock, uint64_t* id, int* fd) {
  struct msghdr mh;
  struct iovec iov = {id, sizeof(*id)};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(4 * sizeof(int))];
  } c;
  struct cmsghdr* h;
  ssize_t n;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = c.buf;
  mh.msg_controllen = sizeof(c.buf);
  *fd = -1;
  do
    n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  for (h = CMSG_FIRSTHDR(&mh); h != NULL; h = CMSG_NXTHDR(&mh, h)) {
    size_t k, nfd;
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
      continue;
    nfd = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (k = 0; k < nfd; k++) {
      int got;
      memcpy(&got, CMSG_DATA(h) + k * sizeof(int), sizeof(int));
      if (*fd < 0)
        *fd = got;
      else
        close(got); /* one descriptor a packet: the rest are not ours */
    }
  }
  if (n == (ssize_t)sizeof(*id) && *fd < 0 && (mh.msg_flags & MSG_CTRUNC) &&
      !(mh.msg_flags & MSG_TRUNC)) {
    /* The id came, and the kernel could not give us its descriptor: this
     * process has as many open as it may (EMFILE). The packet is gone. */
    *fd = VOW__SHM_LOST;
    return 1;
  }
  if (n != (ssize_t)sizeof(*id) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    if (*fd >= 0)
      close(*fd);
    *fd = -1;
    return -1;
  }
  return 1;
}

bool vow__shm_heard_hello(int sock) {
  for (;;) {
    uint64_t id;
    int fd, rc = recv_one(sock, &id, &fd);
    if (rc <= 0)
      return false;
    if (fd >= 0)
      close(fd); /* nothing is sent before the word */
    else if (fd == -1 && id == VOW__SHM_ID_HELLO)
      return true;
  }
}

static bool keep(vow__shm_inbox* in, uint64_t id, int fd) {
  if (in->n == in->cap) {
    size_t cap = in->cap ? in->cap * 2 : 8;
    uint64_t* ids = vow__realloc(in->ids, cap * sizeof(*ids));
    int* fds;
    if (ids == NULL)
      return false;
    in->ids = ids;
    fds = vow__realloc(in->fds, cap * sizeof(*fds));
    if (fds == NULL)
      return false;
    in->fds = fds;
    in->cap = cap;
  }
  in->ids[in->n] = id;
  in->fds[in->n] = fd;
  in->n++;
  return true;
}

int vow__shm_take(vow__shm_inbox* in, int sock, uint64_t id) {
  size_t i;
  for (i = 0; i < in->n; i++)
    if (in->ids[i] == id) {
      int fd = in->fds[i];
      in->n--;
      in->ids[i] = in->ids[in->n];
      in->fds[i] = in->fds[in->n];
      return fd;
    }
  for (;;) {
    uint64_t got;
    int fd, rc = recv_one(sock, &got, &fd);
    if (rc <= 0)
      return -1;
    if (fd == -1)
      continue; /* a packet without a descriptor names nothing */
    if (got == id)
      return fd;
    if (!keep(in, got, fd)) {
      if (fd >= 0)
        close(fd);
      return -1;
    }
  }
}

void vow__shm_inbox_clear(vow__shm_inbox* in) {
  size_t i;
  for (i = 0; i < in->n; i++)
    if (in->fds[i] >= 0)
      close(in->fds[i]);
  vow__free(in->ids);
  vow__free(in->fds);
  memset(in, 0, sizeof(*in));
}
