#include "fencefile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"

/* The ceiling in decimal, zero-padded to a fixed width and a newline: each
 * store overwrites the whole of it in one small write. */
#define FENCEFILE_WIDTH 20
#define FENCEFILE_LEN (FENCEFILE_WIDTH + 1)

static int fencefile_parse(const char *buf, size_t len, uint64_t *ret)
{
	char text[FENCEFILE_LEN + 1], *end;
	unsigned long long v;

	if (len == 0)
		return -ENODATA;
	if (len != FENCEFILE_LEN || buf[FENCEFILE_WIDTH] != '\n')
		return -EBADMSG;
	memcpy(text, buf, FENCEFILE_WIDTH);
	text[FENCEFILE_WIDTH] = '\0';
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || text[0] < '0' || text[0] > '9' || v >= FENCEFILE_MAX)
		return -EBADMSG;
	*ret = v;
	return 0;
}

/* Only haspd's own user may set the floor of its fences. */
static int fencefile_check(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return -EPERM;
	return 0;
}

/* Takes fd's file for this daemon and reads its ceiling. */
static int fencefile_take(int fd, uint64_t *ret)
{
	char buf[FENCEFILE_LEN + 1];
	ssize_t n;
	int r = fencefile_check(fd);

	if (r == 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (r < 0)
		return r;
	n = pread(fd, buf, sizeof(buf), 0);
	return n < 0 ? -errno : fencefile_parse(buf, (size_t)n, ret);
}

/* A new file at path, holding ceiling 0 and taken (flock) before its name
 * appears: nobody ever sees it empty or unlocked. Returns the descriptor,
 * -EEXIST when another was there first, or -errno. */
static int fencefile_create(const char *path)
{
	char tmp[4096], buf[FENCEFILE_LEN + 1];
	int fd, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(buf, sizeof(buf), "%0*d\n", FENCEFILE_WIDTH, 0);
	errno = 0;
	if (fchmod(fd, 0600) < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0 ||
	    write(fd, buf, FENCEFILE_LEN) != FENCEFILE_LEN || fdatasync(fd) < 0 ||
	    link(tmp, path) < 0)
		r = errno ? -errno : -EIO;
	unlink(tmp);
	if (r == 0)
		r = durable_sync_dir(path);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int fencefile_open(struct fencefile *f, const char *path, bool create, uint64_t *ret_ceiling)
{
	uint64_t ceiling = 0;
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW), r;

	if (fd < 0 && errno == ENOENT && create) {
		fd = fencefile_create(path);
		if (fd >= 0) { /* ours, taken, holding 0 */
			f->fd = fd;
			*ret_ceiling = 0;
			return 0;
		}
		if (fd != -EEXIST)
			return fd;
		/* Another daemon made it meanwhile: take turns for it. */
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0)
		return -errno;
	r = fencefile_take(fd, &ceiling);
	if (r < 0) {
		close(fd);
		return r;
	}
	f->fd = fd;
	*ret_ceiling = ceiling;
	return 0;
}

pid_t fencefile_holder(const char *path)
{
	char line[256];
	struct stat st;
	pid_t pid = -ESRCH;
	FILE *locks;

	if (stat(path, &st) < 0)
		return -errno;
	locks = fopen("/proc/locks", "re");
	if (!locks)
		return -errno;
	/* "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF". By inode alone:
	 * the device shown is the superblock's, not always st_dev (btrfs), and
	 * this is only for a message. */
	while (fgets(line, sizeof(line), locks)) {
		unsigned long long ino;
		char type[16];
		int p;

		if (sscanf(line, "%*d: %15s %*s %*s %d %*x:%*x:%llu", type, &p, &ino) == 3 &&
		    strcmp(type, "FLOCK") == 0 && ino == (unsigned long long)st.st_ino && p > 0) {
			pid = p;
			break;
		}
	}
	fclose(locks);
	return pid;
}

int fencefile_store(struct fencefile *f, uint64_t ceiling)
{
	char buf[FENCEFILE_LEN + 1];

	snprintf(buf, sizeof(buf), "%0*" PRIu64 "\n", FENCEFILE_WIDTH, ceiling);
	errno = 0;
	if (pwrite(f->fd, buf, FENCEFILE_LEN, 0) != FENCEFILE_LEN)
		return errno ? -errno : -EIO;
	if (fdatasync(f->fd) < 0)
		return -errno;
	return 0;
}

void fencefile_close(struct fencefile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}
