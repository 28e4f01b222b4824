#include "oslock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void key_of(const struct stat *st, char *key)
{
	uint64_t dev = st->st_dev, ino = st->st_ino;

	key[0] = '\0';
	memcpy(key + 1, &dev, sizeof(dev));
	memcpy(key + 1 + sizeof(dev), &ino, sizeof(ino));
}

int oslock_identify(int fd, char *key)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return -EINVAL;
	key_of(&st, key);
	return 0;
}

/* Read access if the caller has it, else write access: flock needs either. */
static int open_either(const char *path, int flags)
{
	int fd = open(path, O_RDONLY | flags, 0666);

	if (fd < 0 && errno == EACCES)
		fd = open(path, O_WRONLY | flags, 0666);
	return fd < 0 ? -errno : fd;
}

int oslock_access(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	if (fl & O_PATH)
		return -EACCES;
	switch (fl & O_ACCMODE) {
	case O_RDONLY:
	case O_RDWR:
		return O_RDONLY;
	case O_WRONLY:
		return O_WRONLY;
	default:
		return -EACCES; /* 3: neither (ioctl only) */
	}
}

int oslock_open_path(const char *path)
{
	return open_either(path, O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
}

struct oslock *oslock_new(int fd, int access, const char *fallback_path)
{
	char proc[64], path[PATH_MAX];
	struct stat st;
	struct oslock *o;
	ssize_t n;
	int own;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	own = open(proc, access | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (own < 0)
		return NULL;
	if (fstat(own, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
		close(own);
		errno = EINVAL;
		return NULL;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", own);
	n = readlink(proc, path, sizeof(path) - 1);
	if (n <= 0)
		n = snprintf(path, sizeof(path), "%s", fallback_path ? fallback_path : "?");
	path[n] = '\0';
	o = calloc(1, sizeof(*o) + (size_t)n + 1);
	if (!o) {
		close(own);
		errno = ENOMEM;
		return NULL;
	}
	o->fd = own;
	list_init(&o->aliases);
	o->dev = st.st_dev;
	o->ino = st.st_ino;
	list_init(&o->retry_link);
	memcpy(o->path, path, (size_t)n + 1);
	return o;
}

void oslock_free(struct oslock *o)
{
	if (!o)
		return;
	while (!list_empty(&o->aliases))
		oslock_alias_free(container_of(o->aliases.next, struct oslock_alias, link));
	close(o->fd); /* also drops the flock */
	free(o);
}

struct oslock_alias *oslock_alias_new(struct oslock *o, int fd, int access, const char *key)
{
	struct oslock_alias *a = calloc(1, sizeof(*a));
	char proc[64];

	if (!a)
		return NULL;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	a->fd = open(proc, access | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (a->fd < 0 || (o->held && flock(a->fd, o->held | LOCK_NB) < 0)) {
		int e = errno;

		if (a->fd >= 0)
			close(a->fd);
		free(a);
		errno = e;
		return NULL;
	}
	a->o = o;
	memcpy(a->key, key, OSLOCK_KEY_LEN);
	list_add_tail(&o->aliases, &a->link);
	o->naliases++;
	return a;
}

bool oslock_fd_holds(int fd)
{
	char path[64], line[256];
	bool holds = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!holds && fgets(line, sizeof(line), f))
		holds = strncmp(line, "lock:", 5) == 0 && strstr(line, " FLOCK ");
	fclose(f);
	return holds;
}

bool oslock_is(const struct oslock *o, const struct stat *st)
{
	const struct list *pos;
	char key[OSLOCK_KEY_LEN];

	if ((uint64_t)st->st_dev == o->dev && (uint64_t)st->st_ino == o->ino)
		return true;
	key_of(st, key);
	list_foreach(pos, &o->aliases)
		if (memcmp(container_of(pos, struct oslock_alias, link)->key, key, sizeof(key)) == 0)
			return true;
	return false;
}

void oslock_alias_free(struct oslock_alias *a)
{
	list_del(&a->link);
	a->o->naliases--;
	close(a->fd); /* also drops its flock */
	free(a);
}

/* Each alias in this mode (LOCK_UN too); false when one is held elsewhere
 * (the others are left as they are: the caller lets go of all). */
static bool aliases_lock(struct oslock *o, int how)
{
	struct list *pos;

	list_foreach(pos, &o->aliases)
		if (flock(container_of(pos, struct oslock_alias, link)->fd, how | LOCK_NB) < 0 &&
		    how != LOCK_UN)
			return false;
	return true;
}

/* Nothing held on the file or any alias: after a failed try, where Linux
 * has let go of the old lock of a description whose conversion failed,
 * and kept the others'. */
static void unlock_all(struct oslock *o)
{
	flock(o->fd, LOCK_UN);
	aliases_lock(o, LOCK_UN);
	o->held = 0;
}

uint64_t oslock_btime(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &stx) < 0 || !(stx.stx_mask & STATX_BTIME))
		return 0;
	return (uint64_t)stx.stx_btime.tv_sec * 1000000000u + stx.stx_btime.tv_nsec;
}

bool oslock_try(struct oslock *o, bool shared)
{
	int want = shared ? LOCK_SH : LOCK_EX;

	if (o->held == want)
		return true;
	if (flock(o->fd, want | LOCK_NB) < 0 || !aliases_lock(o, want)) {
		if (o->held || !list_empty(&o->aliases))
			unlock_all(o);
		return false;
	}
	o->held = want;
	return true;
}

bool oslock_place(struct oslock *o, int fd, bool shared, bool unheld)
{
	if (unheld)
		oslock_unlock(o); /* what its last holders had */
	return flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0;
}

void oslock_unlock(struct oslock *o)
{
	if (o->held)
		unlock_all(o);
}

/* ---- conversion (issue 17) ----
 *
 * What Linux does (fs/locks.c, flock_lock_inode(), read in 6.x): under one
 * hold of the inode's flc_lock spinlock it deletes the lock of the same
 * open file description, if it has another type, then looks for a
 * conflict; with one and LOCK_NB it returns EWOULDBLOCK, the old lock
 * already deleted, else it inserts the new lock. So a conversion that
 * succeeds never leaves the file unlocked (delete and insert are under one
 * spinlock hold: no other locker runs between them), and one that fails
 * has let go of the old lock: flock(2)'s "not atomic".
 *
 * A downgrade (EX -> SH) cannot fail: while the daemon held LOCK_EX no
 * other description held any flock on the file, and a newcomer waits or
 * failed. So it is one flock(LOCK_SH | LOCK_NB) per description.
 *
 * An upgrade (SH -> EX) fails when another description holds a flock: a
 * process outside hasp (hasp's own holders share the daemon's one
 * description). A second description of the daemon's cannot guard the
 * attempt: its SH conflicts with the EX wanted, so the attempt would
 * always fail. So the daemon attempts it only when /proc/locks shows no
 * flock on the file but its own; else the upgrade keeps waiting, its SH
 * held, as a request waits for an outside holder ("outside_flock"), and
 * is retried with the same back-off. One race is left, which no use of
 * flock(2) closes: an outsider's LOCK_SH that lands between that check
 * and the conversion makes it fail. The daemon then takes LOCK_SH again at
 * once, which that outsider's own SH guarantees (no LOCK_EX can be granted
 * while it holds it, unless it lets go, and another process takes LOCK_EX,
 * in the few microseconds between two system calls of the daemon). */

/* How many flocks (granted, not waiting) /proc/locks shows on inode ino,
 * of any device (a file system may show another device number than
 * stat(2): counting more is the safe side); -1 if it cannot be read. */
static int flocks_on(uint64_t ino)
{
	char line[256], kind[16];
	unsigned long long n;
	unsigned maj, min;
	FILE *f = fopen("/proc/locks", "re");
	int count = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*d: %15s %*s %*s %*d %x:%x:%llu", kind, &maj, &min, &n) == 4 &&
		    strcmp(kind, "FLOCK") == 0 && n == ino)
			count++;
	fclose(f);
	return count;
}

/* Whether a description other than the daemon's holds a flock on fd's file. */
static bool others_hold(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 || flocks_on((uint64_t)st.st_ino) != 1;
}

/* The flock of fd to how; on a failed upgrade, back to LOCK_SH at once. */
static bool convert_one(int fd, int how)
{
	if (flock(fd, how | LOCK_NB) == 0)
		return true;
	flock(fd, LOCK_SH | LOCK_NB);
	return false;
}

/* Each alias to how; on a failure, every alias back to LOCK_SH. */
static bool aliases_convert(struct oslock *o, int how)
{
	struct list *pos;

	list_foreach(pos, &o->aliases) {
		int fd = container_of(pos, struct oslock_alias, link)->fd;

		if (how == LOCK_EX && others_hold(fd))
			break;
		if (!convert_one(fd, how))
			break;
	}
	if (pos == &o->aliases)
		return true;
	list_foreach(pos, &o->aliases)
		flock(container_of(pos, struct oslock_alias, link)->fd, LOCK_SH | LOCK_NB);
	return false;
}

bool oslock_convert(struct oslock *o, bool shared)
{
	int how = shared ? LOCK_SH : LOCK_EX;

	if (o->held == how)
		return true;
	if (!shared && others_hold(o->fd))
		return false;
	if (!convert_one(o->fd, how))
		return false;
	if (!aliases_convert(o, how)) {
		flock(o->fd, LOCK_SH | LOCK_NB); /* cannot fail: the daemon holds LOCK_EX */
		return false;
	}
	o->held = how;
	return true;
}
