/* One client's session: its connection (connection.h), its view in the lock
 * table (an lt_owner), its uid's accounting, and its end. A lost session's
 * leases end at once; it is freed later by haspd_sync(), outside the
 * callback that noticed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connection.h"
#include "list.h"
#include "locktable.h"
#include "log.h"
#include "watch.h"

struct haspd;

struct session {
	struct lt_owner owner;      /* the lock table's view of this session, with
				     * its pid, uid and gid at connect (SO_PEERCRED):
				     * for accounting and logs, never for authority */
	struct connection conn;
	struct haspd *d;
	struct user *user;          /* this uid's sessions and locks */
	struct list link;           /* in d->sessions, then d->graveyard */
	uint64_t id;
	struct lt_cred sender;      /* the sender of the line being dispatched, whose
				     * authority every request has (SCM_CREDENTIALS) */
	struct list fdlocks;        /* fdlock.link: descriptors of fd-form requests (fdlocks.h) */
	struct list try_link;       /* in d->tries while a try is put off (tries.h) */
	bool try_final;             /* the try handed up again: answer it now */
	struct watcher watch;        /* its watch of lock events (watch.h) */
	struct list cluster_locks;  /* cl_lock.slink: its requests on cluster keys */
	struct list cluster_queries; /* cl_query.link: its lists and revokes in flight */
	size_t ncluster;            /* in cluster_locks */
	unsigned ncluster_queries;  /* in cluster_queries */
	unsigned protocol_errors;
	bool ended;                 /* its leases and waits are gone */
	bool lost;                  /* in the graveyard */
};

/* Takes ownership of fd. NULL on ENOMEM (fd is closed). */
struct session *session_new(struct haspd *d, int fd);
/* Queues a reply line (newline included); past the hard limit of unread
 * output, the session is ended at the next flush instead. */
void session_write(struct session *s, const char *line, size_t len);
/* Its output not yet written (connection.h). */
size_t session_unsent(const struct session *s);
/* Ends the session at the next flush, outside the callback that noticed
 * (its replies could not be queued). */
void session_break(struct session *s);
/* Ends the session's leases now, and the session once its output is
 * written (after an error it must still read). */
void session_close_after_flush(struct session *s);
/* The descriptor that came with the line being dispatched, or -1; the
 * caller owns it (connection.h). */
int session_take_fd(struct session *s);
/* Whether descriptors that came with the line being dispatched were closed
 * for want of room (the connection's, or the uid's share: users.h). */
bool session_fds_refused(const struct session *s);
/* Whether the client has closed its end of the connection, which the
 * daemon has not read yet (a system call: for rare paths). */
bool session_peer_gone(const struct session *s);
/* Whether the line being dispatched came from two processes. */
bool session_line_mixed(const struct session *s);
/* Ends the session now: its leases are released, its waits removed. */
void session_lost(struct session *s, const char *why);
/* Its connection's pause and resume (connection.h), for tries.h. */
void session_pause(struct session *s);
void session_resume(struct session *s);
void session_free(struct session *s);
/* Logs a line about s, within its uid's share of the log (ratelimit.h). */
void session_log(struct session *s, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline struct session *session_of(struct lt_owner *o)
{
	return container_of(o, struct session, owner);
}
