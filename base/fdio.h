/* base/fdio.h — whole reads and writes on blocking descriptors. */
#ifndef VOW_BASE_FDIO_H
#define VOW_BASE_FDIO_H

#include <stddef.h>

/* Writes all len bytes, through short writes and EINTR. Returns 0, or a
 * negative errno (-EIO for a write of 0). */
int vowp_write_all(int fd, const void* data, size_t len);
/* Reads exactly len bytes. Returns 1, 0 at EOF before any byte, -EPIPE at
 * EOF in the middle, or a negative errno. */
int vowp_read_full(int fd, void* data, size_t len);

#endif
