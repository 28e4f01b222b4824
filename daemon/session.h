/* One client connection: buffers, framing, backpressure, peer credentials,
 * teardown. A lost session is marked dead, its leases end at once, and it
 * is freed later by haspd_sync(), outside the callback that noticed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "locktable.h"
#include "log.h"

/* Descriptors a session may have in flight before requests claim them. */
#define SESSION_FDS_MAX 16
/* The rights of a read that came without its sender's credentials (never,
 * from Linux): the overflow uid's, nobody's. */
#define SESSION_NOBODY 65534

struct haspd;
struct event;
struct evbuffer;

struct session {
	struct lt_owner owner;      /* the lock table's view of this session, with
				     * its pid, uid and gid at connect (SO_PEERCRED):
				     * for accounting and logs, never for authority */
	struct haspd *d;
	struct user *user;          /* this uid's sessions and locks */
	struct list link;           /* in d->sessions, then d->graveyard */
	struct list flush_link;     /* in d->flushing while output waits */
	int fd;
	struct event *rev, *wev;
	struct evbuffer *in, *out;
	uint64_t id;
	struct session_fd {
		int fd;
		uint64_t end;       /* input offset just past the read that brought it */
	} fds[SESSION_FDS_MAX];     /* received, in order, not yet claimed */
	size_t nfds;
	uint64_t fds_refused_end;   /* like session_fd.end, for descriptors closed
				     * at once: over a limit (0: none) */
	uint64_t in_offset;         /* input offset of the first byte in s->in */
	uint64_t line_start, line_end; /* the line being dispatched: [start, end) */
	struct lt_cred sender;      /* SCM_CREDENTIALS of the latest read: the sender
				     * of the line being dispatched, whose authority
				     * every request has */
	bool part_mixed;            /* the unfinished line came from two senders */
	bool line_mixed;            /* ... and so did the line being dispatched */
	unsigned protocol_errors;
	bool closing;               /* write what is queued, then close */
	bool throttled;             /* not reading: too much output queued */
	bool overflow;              /* output past the hard limit: to be ended */
	bool dead;
};

/* Takes ownership of fd. NULL on ENOMEM (fd is closed). */
struct session *session_new(struct haspd *d, int fd);
/* Marks the session to be ended at the next flush, outside the callback
 * that noticed (its replies could not be queued). */
void session_break(struct session *s);
/* Queues a reply line (newline included); past the hard limit of unread
 * output, breaks the session instead. */
void session_write(struct session *s, const char *line, size_t len);
/* Sends an error, then ends the session once it is written. */
void session_close_after_flush(struct session *s);
/* The descriptor that came with the line being dispatched, or -1; the caller
 * owns it. A descriptor belongs to the line that holds the last byte of the
 * read that brought it, which is the line sent with it in one sendmsg(2). */
int session_take_fd(struct session *s);
/* Whether descriptors that came with the line being dispatched were closed
 * for want of room (SESSION_FDS_MAX, or the uid's share: users.h). */
bool session_fds_refused(const struct session *s);
/* Writes what is queued; called by haspd_sync(). */
void session_flush(struct session *s);
/* Ends the session now: its leases are released, its waits removed. */
void session_lost(struct session *s, const char *why);
void session_free(struct session *s);
/* Logs a line about s, within its uid's share of the log (ratelimit.h). */
void session_log(struct session *s, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline struct session *session_of(struct lt_owner *o)
{
	return container_of(o, struct session, owner);
}
