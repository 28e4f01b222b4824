/* Fences that outlive the daemon. A small file holds a ceiling: every fence
 * issued stays below it, and a new ceiling is written and synced before a
 * fence reaches the old one. A restarted daemon starts above the stored
 * ceiling, so its fences are above every fence of the runs before it,
 * whatever the wall clock says (a clock stepped back, a restored snapshot). */
#pragma once

#include <stdint.h>

struct fencefile {
	int fd;                 /* -1: not open */
};

/* Opens (creating it, mode 0600) the file at path and reads the stored
 * ceiling into *ret_ceiling (0 for a new or empty file). Returns 0, -errno,
 * or -EBADMSG when the file holds something else. */
int fencefile_open(struct fencefile *f, const char *path, uint64_t *ret_ceiling);
/* Stores ceiling and waits until it is on disk. Returns 0 or -errno. */
int fencefile_store(struct fencefile *f, uint64_t ceiling);
void fencefile_close(struct fencefile *f);
