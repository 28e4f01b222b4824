/* The real flock(2) lock the daemon holds on a file for the holders of its
 * file leases: one open file description per file, owned by the daemon.
 * No event loop here: retries are scheduled by files.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "htable.h"
#include "list.h"

/* A file's identity as a lock table key: a NUL byte (never in a named key,
 * which is JSON text without U+0000), then st_dev and st_ino. */
#define OSLOCK_KEY_LEN (1 + 2 * sizeof(uint64_t))

/* Another file of the same lock (adopt.h): a file that replaced the lock's
 * file by rename while it was held. Its flock follows the lock's. */
#define OSLOCK_ALIASES 8

struct oslock_alias {
	struct hnode node;      /* in the daemon's table of aliases, by key */
	struct list link;       /* in oslock.aliases, oldest first */
	struct oslock *o;
	void *payer;            /* whom its descriptor is charged to */
	int fd;                 /* a description of the daemon's own */
	char key[OSLOCK_KEY_LEN];
};

struct oslock {
	int fd;
	int held;               /* 0, LOCK_SH or LOCK_EX */
	uint64_t dev, ino;
	struct list retry_link; /* in a retry list of files.c while an outsider holds it */
	uint64_t retry_at_us;   /* in a ramp list: when */
	uint64_t backoff_us;
	uint32_t retry_queue;   /* in a paced queue: its index + 1, else 0 */
	void *res;              /* the lock table resource it is attached to */
	void *payer;            /* the caller's: whom its descriptor is charged to */
	struct list aliases;    /* oslock_alias.link, at most OSLOCK_ALIASES */
	unsigned naliases;
	char path[];            /* for display: where the daemon's descriptor points */
};

/* st_dev/st_ino of fd's file as a key (key must hold OSLOCK_KEY_LEN bytes).
 * Returns 0, -EINVAL when it is neither a regular file nor a directory,
 * or -errno. */
int oslock_identify(int fd, char *key);
/* What a client's descriptor proves it could open the file for, as the
 * flags to reopen it with: O_RDONLY if it may read, else O_WRONLY if it may
 * write; -EACCES for O_PATH or a descriptor open for neither; -errno. */
int oslock_access(int fd);
/* Opens path as the client library would: creating it (0666 minus umask)
 * if missing, never blocking on a FIFO. Returns the descriptor or -errno. */
int oslock_open_path(const char *path);
/* A lock object with a description of its own: fd is reopened through
 * /proc/self/fd with access (from oslock_access(fd): no more than fd has);
 * fd itself is left to the caller. NULL with errno set. */
struct oslock *oslock_new(int fd, int access, const char *fallback_path);
/* Frees o and its aliases (out of any table first: the caller's). */
void oslock_free(struct oslock *o);

/* Another file for o: fd (left to the caller; its access as from
 * oslock_access()) is reopened as a description of the daemon's own, and
 * locked as o is now. NULL with errno set: EWOULDBLOCK when another holds
 * that file's flock. The alias goes on o's list; the caller indexes it. */
struct oslock_alias *oslock_alias_new(struct oslock *o, int fd, int access, const char *key);
/* Whether fd's open file description holds a flock (/proc/self/fdinfo). */
bool oslock_fd_holds(int fd);
/* The birth time of fd's file in ns (statx), or 0 where the file system
 * does not keep it: with st_dev and st_ino, it tells a file from a later
 * one that reuses its inode number. */
uint64_t oslock_btime(int fd);
/* Whether st is o's file or one of its aliases. */
bool oslock_is(const struct oslock *o, const struct stat *st);
/* Unlocks and closes an alias, off o's list (out of any table first). */
void oslock_alias_free(struct oslock_alias *a);

/* Takes the flock in this mode without blocking, on the file and on every
 * alias: true when held on all (else on none). */
bool oslock_try(struct oslock *o, bool shared);
/* Takes the flock in this mode without blocking on another description, a
 * client's (the fd form: fdlocks.h): true when held. unheld: the resource
 * has no holders, so the daemon's own flock, if it is still there, goes
 * first (it would stand in the way of an exclusive one). */
bool oslock_place(struct oslock *o, int fd, bool shared, bool unheld);
void oslock_unlock(struct oslock *o);
/* Converts the flock the daemon holds on the file and its aliases to this
 * mode, never letting go of it (see oslock.c): a downgrade always
 * succeeds; an upgrade only when no other description (a process outside
 * hasp) holds a flock on any of them, else false and the lock is as it was. */
bool oslock_convert(struct oslock *o, bool shared);
