/* Fences that outlive the daemon. A small file holds a ceiling: every fence
 * issued stays below it, and a new ceiling is written and synced before a
 * fence reaches the old one. A restarted daemon starts above the stored
 * ceiling, so its fences are above every fence of the runs before it,
 * whatever the wall clock says (a clock stepped back, a restored snapshot). */
#pragma once

#include <stdint.h>

/* A stored ceiling is below this: fences stay exact in a double. */
#define FENCEFILE_MAX ((1ull << 53) - (1ull << 40))

struct fencefile {
	int fd;                 /* -1: not open; else flock'ed, so one daemon's */
};

/* Opens (creating it, mode 0600) the file at path, takes it for this
 * daemon, and reads the stored ceiling into *ret_ceiling (0 for a new
 * file). Returns 0, -errno, -EBADMSG when the file holds something else,
 * -EPERM when it is not a regular file of this user writable by it alone,
 * -EBUSY when another daemon has it. */
int fencefile_open(struct fencefile *f, const char *path, uint64_t *ret_ceiling);
/* Stores ceiling and waits until it is on disk. Returns 0 or -errno. */
int fencefile_store(struct fencefile *f, uint64_t ceiling);
void fencefile_close(struct fencefile *f);
