#include "session.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "changes.h"
#include "cluster/cluster.h"
#include "dispatch.h"
#include "events.h"
#include "fdlimit.h"
#include "fdlocks.h"
#include "haspd.h"
#include "tries.h"
#include "users.h"

static void session_line(void *ctx, const char *line, size_t len)
{
	struct session *s = ctx;

	s->sender = s->conn.sender;
	dispatch_line(s, line, len);
}

static void session_too_large(void *ctx)
{
	dispatch_too_large(ctx);
}

static void session_end_leases(struct session *s)
{
	if (s->ended)
		return;
	s->ended = true;
	watch_stop(s);
	if (s->d->cluster)
		cluster_session_ends(s);
	events_owner_ends(s->d, &s->owner);
	locktable_owner_done(&s->d->lt, &s->owner);
	fdlocks_drop_all(s);
	changes_apply(s->d, NULL);
}

static void session_closing(void *ctx)
{
	session_end_leases(ctx);
}

static void session_conn_lost(void *ctx, enum connection_end why, const char *detail)
{
	struct session *s = ctx;
	struct haspd *d = s->d;

	if (why == CONNECTION_OVERFLOW)
		session_log(s, LOG_WARN, "session %" PRIu64 " (pid %d): over %u bytes of replies "
			    "unread, or no memory for them; ending it", s->id, (int)s->owner.pid,
			    CONNECTION_OUT_HARD);
	log_debug("session %" PRIu64 " (pid %d) ended: %s", s->id, (int)s->owner.pid, detail);
	session_end_leases(s);
	tries_forget(s);
	s->lost = true;
	list_del(&s->link);
	list_add_tail(&d->graveyard, &s->link);
	d->nsessions--;
}

static bool session_hold_fd(void *ctx)
{
	struct session *s = ctx;

	if (!users_may_hold_fd(&s->d->users, s->user)) {
		/* The limit known may be old (prlimit(1)): read it again. */
		users_set_fd_limit(&s->d->users, fdlimit_now());
		if (!users_may_hold_fd(&s->d->users, s->user))
			return false;
	}
	users_hold_fd(&s->d->users, s->user);
	return true;
}

static void session_fds_gone(void *ctx, size_t n)
{
	struct session *s = ctx;

	users_drop_fds(&s->d->users, s->user, n);
}

static const struct connection_ops session_ops = {
	.line = session_line,
	.too_large = session_too_large,
	.closing = session_closing,
	.lost = session_conn_lost,
	.hold_fd = session_hold_fd,
	.fds_gone = session_fds_gone,
};

struct session *session_new(struct haspd *d, int fd)
{
	struct session *s = calloc(1, sizeof(*s));
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t cl = sizeof(cred);

	if (!s) {
		close(fd);
		return NULL;
	}
	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl);
	s->d = d;
	s->user = users_get(&d->users, cred.uid);
	if (!s->user) {
		close(fd);
		free(s);
		return NULL;
	}
	if (connection_init(&s->conn, &d->loop, fd, &d->cfg.max_line_bytes, &d->flushing,
			    &session_ops, s) < 0) {
		users_put(&d->users, s->user);
		free(s);
		return NULL;
	}
	list_init(&s->fdlocks);
	list_init(&s->cluster_locks);
	list_init(&s->cluster_queries);
	list_init(&s->try_link);
	s->id = ++d->sessions_total;
	lt_owner_init(&s->owner, s->id, cred.pid, cred.uid, cred.gid);
	s->owner.group = &s->user->group;
	list_add_tail(&d->sessions, &s->link);
	d->nsessions++;
	log_debug("session %" PRIu64 " connected: pid %d uid %u", s->id, (int)cred.pid,
		  (unsigned)cred.uid);
	return s;
}

void session_free(struct session *s)
{
	fdlocks_drop_all(s);
	connection_done(&s->conn);
	users_put(&s->d->users, s->user);
	free(s);
}

void session_write(struct session *s, const char *line, size_t len)
{
	connection_write(&s->conn, line, len);
}

size_t session_unsent(const struct session *s)
{
	return connection_unsent(&s->conn);
}

void session_break(struct session *s)
{
	connection_break(&s->conn);
}

void session_close_after_flush(struct session *s)
{
	connection_close_after_flush(&s->conn);
}

int session_take_fd(struct session *s)
{
	return connection_take_fd(&s->conn);
}

bool session_fds_refused(const struct session *s)
{
	return connection_fds_refused(&s->conn);
}

bool session_peer_gone(const struct session *s)
{
	return connection_peer_gone(&s->conn);
}

bool session_line_mixed(const struct session *s)
{
	return s->conn.line_mixed;
}

void session_lost(struct session *s, const char *why)
{
	connection_lose(&s->conn, CONNECTION_CLOSED, why);
}

void session_pause(struct session *s)
{
	connection_pause(&s->conn);
}

void session_resume(struct session *s)
{
	connection_resume(&s->conn);
}

void session_log(struct session *s, enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	haspd_vlog_for(s->d, s->owner.uid, level, fmt, ap);
	va_end(ap);
}
