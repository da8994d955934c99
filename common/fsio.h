/* fsio: the durable-file primitives the server's spool and the client's queue both build on. */
#ifndef FSG_COMMON_FSIO_H
#define FSG_COMMON_FSIO_H

#include <stddef.h>

/* fsync(2) and fdatasync(2), restarted after EINTR. 0 or -1 (errno). */
int fsio_fsync(int fd);
int fsio_fdatasync(int fd);

/* Closes fd (ignored when negative) keeping errno; Linux closes even when close fails. */
void fsio_close(int fd);

/* Writes all len bytes, restarting after EINTR and short writes. 0 or -1 (errno). */
int fsio_write_all(int fd, const void *buf, size_t len);

/* Opens directory at/name read-only, not following a symlink (O_NOFOLLOW). fd or -1 (errno). */
int fsio_dir_open(int at, const char *name);

#endif
