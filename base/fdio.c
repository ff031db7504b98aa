/* Whole writes and reads on a blocking descriptor, for the sides that
 * speak the protocol without an event loop (workers, the queue's
 * clients) and for anything else that must not lose a short write. */
#include <errno.h>
#include <unistd.h>

#include "fdio.h"

int vowp_write_all(int fd, const void* data, size_t len) {
  const char* p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? -errno : -EIO;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int vowp_read_full(int fd, void* data, size_t len) {
  char* p = data;
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, p + got, len - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return got == 0 ? 0 : -EPIPE;
    got += (size_t)n;
  }
  return 1;
}
