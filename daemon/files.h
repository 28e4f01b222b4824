/* File leases: from a request's path and descriptor to a lock table
 * resource with an oslock attached, keeping the real flock in step with
 * the holders (the lock table's admit question, its unlocked and freed
 * records), and the backoff retries while a process outside hasp holds the
 * flock. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "locktable.h"

struct haspd;
struct session;

/* Retries while a process outside hasp holds a file's flock. A file's
 * first retries come after 1, 2 and 4 ms (FILES_BACKOFF_MIN_US doubling),
 * so that a short outside hold costs a few ms; then it is retried at most
 * every FILES_BACKOFF_MAX_US, in a round-robin queue of the uid of its
 * first waiter. Each queue is paced: FILES_RETRY_UID_RATE attempts a second
 * at most, or an equal share of FILES_RETRY_RATE when more uids have
 * contested files. So one file is handed over within 8 ms of its release,
 * N files of one uid are retried every N / 1000 s each, and one uid's
 * thousands of files neither burn the daemon's CPU nor slow another uid's
 * hand-off. Uids share FILES_RETRY_QUEUES queues by a hash: two that
 * collide share one budget. */
#define FILES_BACKOFF_MIN_US 1000
#define FILES_BACKOFF_MAX_US 8000
#define FILES_RETRY_UID_RATE 1000
#define FILES_RETRY_RATE 4000
#define FILES_RETRY_QUEUES 64
#define FILES_RAMP_STEPS 3      /* 1, 2 and 4 ms */
#define FILES_RETRY_TICK_US 4000 /* the shortest wait between two wake-ups of a queue */

/* A round-robin queue of contested files, paced. */
struct files_queue {
	struct list files;      /* oslock.retry_link */
	uint64_t next_us;       /* when its head is retried (monotonic µs) */
	uint32_t n;
};

/* Every file an outsider holds, while something waits for it. */
struct files_retry {
	struct list ramp[FILES_RAMP_STEPS]; /* oslock.retry_link, each in due order */
	struct files_queue queues[FILES_RETRY_QUEUES];
	uint64_t active;        /* bit i: queues[i] is not empty */
};

void files_retry_init(struct files_retry *fr);
/* Whether any file waits for a retry. */
bool files_retrying(const struct files_retry *fr);

/* The descriptor a request with "fd": true brought. Returns it, or -1
 * with *code and msg set: none came, or it was closed on arrival (too
 * many in flight). */
int files_take_fd(struct session *s, int *code, char *msg, size_t msg_size);

/* The resource of the file a request names: with fd (the client's
 * descriptor, always consumed), or by path alone for a peer with the
 * daemon's own uid. Returns the resource, or NULL with *code and msg set. */
struct lt_resource *files_resource(struct session *s, const char *path, int fd, int *code,
				   char *msg, size_t msg_size);

/* The resource of the file that fd (always consumed; any descriptor, even
 * O_PATH: it only names the file) or, for a peer with the daemon's own
 * uid, path names, if any lease or waiter is on it. Returns 0 and *ret
 * (NULL when none is), or -1 with *code and msg set. */
int files_find(struct session *s, const char *path, int fd, struct lt_resource **ret, int *code,
	       char *msg, size_t msg_size);

/* A file checkout of an earlier run, at start: the file at its path, if it
 * is still the one it was (device, inode and birth time), as a resource
 * charged to usr with its flock taken in its mode (the caller then
 * restores the lease). NULL with *why set. */
struct user;
struct journal_checkout;
struct lt_resource *files_restore(struct haspd *d, struct user *usr,
				  const struct journal_checkout *c, const char **why);

/* The resource of a file's key (oslock.h): its own, or the one it was
 * adopted into (adopt.h); NULL if none. */
struct lt_resource *files_lookup(const struct haspd *d, const char *key);

/* Whether s's uid may have one more file open, reading the descriptor limit
 * again only when the one known says no (prlimit(1) may have raised it);
 * if not, msg says why. */
bool files_may_open(struct session *s, char *msg, size_t n);

/* The lock table's question: may e be granted on r's file now? The flock
 * taken on the daemon's description, the table holds it; placed on the
 * client's (the fd form, fdlocks.h), it is handed over. If neither, a
 * retry is scheduled. */
enum lt_admit files_admit(struct lt_resource *r, const struct lt_entry *e, void *arg);
/* The lock table's question for a convert: may lease e on r's file change
 * to mode now? Its flock converted (oslock_convert()); if not, a process
 * outside hasp holds the flock, and a retry is scheduled. */
bool files_convert(struct lt_resource *r, const struct lt_entry *e, enum lt_mode mode, void *arg);
/* Change records: r's file has no holders (its flock goes), or r is gone
 * (its file is closed, and its uid's charge refunded). */
void files_unlocked(struct lt_resource *r);
void files_freed(struct haspd *d, struct lt_resource *r);

/* The earliest retry (monotonic µs), or -1. */
int64_t files_next_retry(const struct haspd *d);
/* Retries every file whose time has come. */
void files_retry_due(struct haspd *d);
