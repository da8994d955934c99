/* fsio: the durable-file primitives the server's spool and the client's queue both build on. */
#include "common/fsio.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int fsio_fsync(int fd)
{
	int r;

	do
		r = fsync(fd);
	while (r == -1 && errno == EINTR);
	return r;
}

int fsio_fdatasync(int fd)
{
	int r;

	do
		r = fdatasync(fd);
	while (r == -1 && errno == EINTR);
	return r;
}

void fsio_close(int fd)
{
	int saved = errno;

	if (fd >= 0)
		close(fd);
	errno = saved;
}

int fsio_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fsio_dir_open(int at, const char *name)
{
	int fd;

	do
		fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	while (fd == -1 && errno == EINTR);
	return fd;
}
