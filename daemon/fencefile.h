/* Fences that outlive the daemon. A small file holds a ceiling: every fence
 * issued stays below it, and a new ceiling is written and synced before a
 * fence reaches the old one. A restarted daemon starts above the stored
 * ceiling, so its fences are above every fence of the runs before it,
 * whatever the wall clock says (a clock stepped back, a restored snapshot). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A stored ceiling is below this: fences stay exact in a double. The
 * daemon never stores more, nor gives a fence above what it stored, so
 * FENCEFILE_MAX - 1 is the last fence there is. */
#define FENCEFILE_MAX ((1ull << 53) - (1ull << 40))

struct fencefile {
	int fd;                 /* -1: not open; else flock'ed, so one daemon's */
};

/* Opens the file at path, takes it for this daemon (its flock is the
 * daemon's instance lock), and reads the stored ceiling into *ret_ceiling.
 * A missing file is created when create is set (mode 0600, holding 0,
 * already taken when its name appears), else -ENOENT. Returns 0, -errno,
 * -ENODATA when the file is empty (haspd writes a ceiling into every file it
 * creates: an empty one lost it), -EBADMSG when it holds something else,
 * -EPERM when it is not a regular file of this user writable by it alone,
 * -EBUSY when another daemon has it. */
int fencefile_open(struct fencefile *f, const char *path, bool create, uint64_t *ret_ceiling);
/* The pid that holds the file's flock (another daemon), from /proc/locks;
 * -ESRCH when none is seen, or -errno. */
pid_t fencefile_holder(const char *path);
/* Stores ceiling and waits until it is on disk. Returns 0 or -errno. */
int fencefile_store(struct fencefile *f, uint64_t ceiling);
void fencefile_close(struct fencefile *f);
