#include "fencefile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The ceiling in decimal, zero-padded to a fixed width and a newline: each
 * store overwrites the whole of it in one small write. */
#define FENCEFILE_WIDTH 20
#define FENCEFILE_LEN (FENCEFILE_WIDTH + 1)

static int fencefile_parse(const char *buf, size_t len, uint64_t *ret)
{
	char text[FENCEFILE_LEN + 1], *end;
	unsigned long long v;

	if (len == 0) {
		*ret = 0;
		return 0;
	}
	if (len != FENCEFILE_LEN || buf[FENCEFILE_WIDTH] != '\n')
		return -EBADMSG;
	memcpy(text, buf, FENCEFILE_WIDTH);
	text[FENCEFILE_WIDTH] = '\0';
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || text[0] == '-' || text[0] == '+' || text[0] == ' ')
		return -EBADMSG;
	*ret = v;
	return 0;
}

int fencefile_open(struct fencefile *f, const char *path, uint64_t *ret_ceiling)
{
	char buf[FENCEFILE_LEN + 1];
	uint64_t ceiling = 0;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	n = pread(fd, buf, sizeof(buf), 0);
	r = n < 0 ? -errno : fencefile_parse(buf, (size_t)n, &ceiling);
	if (r < 0) {
		close(fd);
		return r;
	}
	f->fd = fd;
	*ret_ceiling = ceiling;
	return 0;
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
