#include "haspd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "adopt.h"
#include "changes.h"
#include "checkouts.h"
#include "clock.h"
#include "cluster/cluster.h"
#include "connection.h"
#include "dispatch.h"
#include "fdlimit.h"
#include "fences.h"
#include "files.h"
#include "idle.h"
#include "log.h"
#include "proto-daemon.h"
#include "server.h"
#include "session.h"
#include "tries.h"
#include "users.h"

/* Descriptors opened after haspd_init() for the daemon itself: the
 * listener, its spare, the fence file, libevent's signal pair, a journal. */
#define HASPD_FDS_LATER 8

void haspd_tick(struct haspd *d)
{
	locktable_set_now(&d->lt, clock_us(CLOCK_MONOTONIC), clock_us(CLOCK_REALTIME));
}

/* The earlier of two deadlines, -1 meaning none. */
static int64_t earliest(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	return b < 0 || a < b ? a : b;
}

static void haspd_arm_timer(struct haspd *d)
{
	int64_t next = earliest(locktable_next_deadline(&d->lt), files_next_retry(d));
	struct timeval tv;
	uint64_t wait;

	if (next == d->timer_at)
		return;
	d->timer_at = next;
	if (next < 0) {
		loop_event_del(d->timer);
		return;
	}
	wait = (uint64_t)next > d->lt.now_us ? (uint64_t)next - d->lt.now_us : 0;
	tv.tv_sec = (time_t)(wait / 1000000u);
	tv.tv_usec = (suseconds_t)(wait % 1000000u);
	if (loop_event_add(d->timer, &tv) < 0) {
		log_err("cannot arm the timer: deadlines wait for the next event");
		d->timer_at = -1; /* tried again at the next haspd_sync() */
	}
}

void haspd_sync(struct haspd *d)
{
	bool freed = false;

	checkouts_sync(d); /* before any answer that depends on it goes */
	connection_flush_all(&d->flushing);
	while (!list_empty(&d->graveyard)) {
		struct session *s = list_entry(d->graveyard.next, struct session, link);

		list_del(&s->link);
		session_free(s);
		freed = true;
	}
	if (freed)
		server_resume(d->server); /* a descriptor is free again */
	fences_plan(d);
	haspd_arm_timer(d);
	idle_plan(d);
}

/* The bracket of every callback (loop.h). */
static void haspd_before(void *arg)
{
	haspd_tick(arg);
}

static void haspd_after(void *arg)
{
	haspd_sync(arg);
}

void haspd_accepted(void *arg, int fd, bool out_of_fds)
{
	struct haspd *d = arg;
	size_t before = d->nsessions;
	struct session *s = session_new(d, fd);
	char why[160];

	if (!s)
		return;
	if (out_of_fds) {
		dispatch_refuse(s, "it is out of file descriptors (RLIMIT_NOFILE)");
		return;
	}
	if (users_admit_session(&d->users, s->user, &d->cfg, before, why, sizeof(why)))
		return;
	/* The descriptor limit known may be old (prlimit(1)): read it again. */
	users_set_fd_limit(&d->users, fdlimit_now());
	if (!users_admit_session(&d->users, s->user, &d->cfg, before, why, sizeof(why)))
		dispatch_refuse(s, why);
}

static void on_timer(void *arg)
{
	struct haspd *d = arg;

	d->timer_at = -1;
	locktable_expire(&d->lt);
	changes_apply(d, NULL);
	files_retry_due(d);
}

void haspd_vlog_for(struct haspd *d, uid_t uid, enum log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	uint64_t suppressed = 0;

	if (level > log_threshold || !ratelimit_take(&d->log_budget, uid, d->lt.now_us, &suppressed))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (suppressed)
		log_msg(level, "%s (and %" PRIu64 " lines about uid %u's sessions before it, "
			"unlogged: too many)", line, suppressed, (unsigned)uid);
	else
		log_msg(level, "%s", line);
}

void haspd_log_for(struct haspd *d, uid_t uid, enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	haspd_vlog_for(d, uid, level, fmt, ap);
	va_end(ap);
}

/* libevent's own complaints (out of memory, mostly), in the daemon's log. */
static void haspd_libevent_log(int severity, const char *msg)
{
	enum log_level level = severity >= EVENT_LOG_ERR ? LOG_ERR :
			       severity == EVENT_LOG_WARN ? LOG_WARN :
			       severity == EVENT_LOG_MSG ? LOG_INFO : LOG_DEBUG;

	log_msg(level, "libevent: %s", msg);
}

int haspd_init(struct haspd *d)
{
	const struct lt_callbacks cb = {
		.admit = files_admit,
		.convert = files_convert,
		.arg = d,
	};
	const struct timeval hour = { 3600, 0 };

	memset(d, 0, sizeof(*d));
	list_init(&d->sessions);
	list_init(&d->flushing);
	list_init(&d->graveyard);
	list_init(&d->watchers);
	d->audit.fd = -1;
	files_retry_init(&d->retrying);
	d->timer_at = -1;
	d->fences.fd = -1;
	d->journal.fd = -1;
	lt_owner_init(&d->checkouts_failed, 0, 0, 0, 0);
	proto_track_memory();
	event_set_log_callback(haspd_libevent_log);
	/* Not EVENT_BASE_FLAG_PRECISE_TIMER: it costs a timerfd_settime per
	 * loop. epoll_wait's millisecond timeout is rounded up, so a deadline
	 * fires at most 1 ms late and never early. */
	d->base = event_base_new();
	if (!d->base || locktable_init(&d->lt, &cb) < 0 || users_init(&d->users) < 0 ||
	    adopt_init(&d->aliases) < 0)
		return -1;
	/* Without a fence file too, no fence passes the last one. */
	locktable_set_fence_ceiling(&d->lt, FENCEFILE_MAX);
	d->loop = (struct loop){ d->base, haspd_before, haspd_after, d };
	d->timer = loop_event_new(&d->loop, -1, 0, on_timer, d);
	/* libevent allocates its heap of timers at the first one added, and
	 * keeps it: added once here, the daemon's few timers never need
	 * memory again. */
	if (!d->timer || loop_event_add(d->timer, &hour) < 0)
		return -1;
	loop_event_del(d->timer);
	if (tries_init(d) < 0)
		return -1;
	haspd_tick(d);
	d->started_us = d->lt.now_us;
	users_set_fd_budget(&d->users, fdlimit_now(), fdlimit_open() + HASPD_FDS_LATER);
	return 0;
}

void haspd_done(struct haspd *d)
{
	checkouts_stop(d);
	while (!list_empty(&d->sessions))
		session_lost(list_entry(d->sessions.next, struct session, link), "daemon stopping");
	haspd_sync(d);
	d->server = server_free(d->server);
	/* Its locks go at once, not after their TTL; the last of them gives
	 * its uid's charge back. */
	cluster_stop(d);
	checkouts_done(d);
	users_done(&d->users);
	d->timer = loop_event_free(d->timer);
	d->idle_timer = loop_event_free(d->idle_timer);
	tries_done(d);
	locktable_done(&d->lt);
	adopt_done(&d->aliases);
	d->fence_timer = loop_event_free(d->fence_timer);
	fencefile_close(&d->fences);
	audit_done(&d->audit);
	if (d->base)
		event_base_free(d->base);
}
