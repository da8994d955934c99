/* Unit tests for common/fsio: the durable-file primitives. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsio.h"
#include "tests/lib/proc.h"

Test(fsio, write_all_sync_and_close_keep_errno)
{
	char *dir = proc_tempdir("fsio"), path[4200], *text;
	static char big[1 << 20];
	int fd;

	cr_assert(dir);
	snprintf(path, sizeof(path), "%s/f", dir);
	memset(big, 'x', sizeof(big));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_neq(fd, -1);
	cr_assert_eq(fsio_write_all(fd, big, sizeof(big)), 0);
	cr_assert_eq(fsio_write_all(fd, "end", 3), 0);
	cr_assert_eq(fsio_fsync(fd), 0);
	cr_assert_eq(fsio_fdatasync(fd), 0);
	errno = EXDEV;
	fsio_close(fd);
	cr_expect_eq(errno, EXDEV, "close keeps errno");
	fsio_close(-1);
	text = proc_read_file(path);
	cr_assert_eq(strlen(text), sizeof(big) + 3);
	cr_expect_str_eq(text + sizeof(big), "end");
	free(text);
	cr_expect_eq(fsio_write_all(-1, "a", 1), -1);
	cr_expect_eq(errno, EBADF);
	cr_expect_eq(fsio_fsync(-1), -1);
	proc_rmtree(dir);
	free(dir);
}

Test(fsio, dir_open_refuses_files_and_symlinks)
{
	char *dir = proc_tempdir("fsio"), path[4200];
	int root, fd;

	cr_assert(dir);
	root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_neq(root, -1);
	cr_assert_eq(mkdirat(root, "sub", 0700), 0);
	cr_assert_eq(symlinkat("sub", root, "link"), 0);
	cr_assert_eq(proc_write_file(dir, "file", "x"), 0);
	fd = fsio_dir_open(root, "sub");
	cr_expect_neq(fd, -1);
	fsio_close(fd);
	cr_expect_eq(fsio_dir_open(root, "link"), -1, "a symlink is not followed");
	cr_expect_eq(fsio_dir_open(root, "file"), -1);
	cr_expect_eq(errno, ENOTDIR);
	cr_expect_eq(fsio_dir_open(root, "missing"), -1);
	cr_expect_eq(errno, ENOENT);
	snprintf(path, sizeof(path), "%s/sub", dir);
	fd = fsio_dir_open(AT_FDCWD, path);
	cr_expect_neq(fd, -1);
	fsio_close(fd);
	close(root);
	proc_rmtree(dir);
	free(dir);
}
