/* The checkout journal: where detached leases outlive the daemon. An
 * append-only file of JSON lines, one record each (a checkout, a renew, an
 * end), written as the request it records is handled, and synced before
 * the answer is sent (once for all the records of a callback:
 * checkouts_sync() in haspd_sync()), and rewritten whole (to a temporary
 * file, synced, renamed over it) at start and whenever it holds many more
 * records than checkouts. A crash leaves at most its last line cut short
 * or garbled, never acknowledged: reading skips it.
 * Any other line that cannot be read makes the whole journal unreadable,
 * since forgetting a checkout would let two holders in. No event loop, no
 * lock table here: the caller says what to write. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JOURNAL_TOKEN_LEN 16

/* A checkout as the journal keeps it; strings are the reader's or the
 * writer's, valid for the call. */
struct journal_checkout {
	uint64_t lease, fence;
	bool shared;
	const char *key;            /* a named lock (UTF-8), or NULL for */
	size_t key_len;
	const char *path;           /* a file (any bytes, NUL-terminated), that */
	uint64_t dev, ino;          /* was this one when it was checked out, */
	uint64_t btime_ns;          /* born then (0: unknown) */
	pid_t pid;                  /* who checked it out */
	uid_t uid;
	gid_t gid;
	const char *owner;          /* or NULL */
	const char *message;        /* or NULL */
	uint64_t granted_wall_us;
	uint8_t token[JOURNAL_TOKEN_LEN];
	uint64_t ttl_ms;            /* 0: none */
	uint64_t expires_wall_us;   /* with a TTL: when it expires (wall clock, µs) */
};

struct journal {
	int fd;                     /* -1: none */
	off_t size;                 /* what is written (and synced) */
	size_t records;             /* lines in the file */
	bool unsynced;              /* records written since the last sync */
};

/* What reading a journal found besides its checkouts. */
struct journal_found {
	uint64_t last_lease;        /* the highest lease id it ever held (ids
				     * never repeat across restarts) */
	bool torn;                  /* a last line cut short was skipped */
};

/* Reads the journal at path and calls each() for every checkout it holds
 * (checked out, not ended), the holders of each resource in their order, with
 * renews applied. Returns 0 (a missing file holds none), -ENOMEM, or
 * -EBADMSG / -errno with "PATH:LINE: what" in err. */
int journal_read(const char *path, void (*each)(const struct journal_checkout *c, void *arg),
		 void *arg, struct journal_found *ret, char *err, size_t n);

/* Replaces the journal at path (j: the one open, or fd -1) with a new one
 * that starts with last_lease (the highest lease id given so far) and
 * holds what fill() adds to next with journal_checkout(): written to a
 * temporary file, synced, renamed over path, and the directory synced.
 * Returns 0, with j the new journal, or -errno (from fill too), with j as
 * it was. */
int journal_rewrite(struct journal *j, const char *path, uint64_t last_lease,
		    int (*fill)(struct journal *next, void *arg), void *arg);
/* (A rewrite whose rename was done but whose directory could not be synced
 * returns that -errno with j the new journal.) */
void journal_close(struct journal *j);

/* Appends a record: 0, or -errno with nothing of it left in the file. */
int journal_checkout(struct journal *j, const struct journal_checkout *c);
int journal_renew(struct journal *j, uint64_t lease, uint64_t ttl_ms, uint64_t expires_wall_us);
int journal_end(struct journal *j, uint64_t lease);
/* Syncs what was appended since the last sync: 0 or -errno. */
int journal_sync(struct journal *j);
