#include "haspd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "changes.h"
#include "connection.h"
#include "dispatch.h"
#include "fdlimit.h"
#include "files.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "session.h"
#include "users.h"

/* Descriptors opened after haspd_init() for the daemon itself: the
 * listener, its spare, the fence file, libevent's signal pair, a journal. */
#define HASPD_FDS_LATER 8

static uint64_t clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

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

	connection_flush_all(&d->flushing);
	while (!list_empty(&d->graveyard)) {
		struct session *s = list_entry(d->graveyard.next, struct session, link);

		list_del(&s->link);
		session_free(s);
		freed = true;
	}
	if (freed)
		server_resume(d->server); /* a descriptor is free again */
	haspd_arm_timer(d);
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
	if (out_of_fds)
		dispatch_refuse(s, "it is out of file descriptors (RLIMIT_NOFILE)");
	else if (!users_admit_session(&d->users, s->user, &d->cfg, before, why, sizeof(why)))
		dispatch_refuse(s, why);
}

/* How far ahead of the fences issued a ceiling is stored: fences follow
 * the wall clock in µs, so about one store every 10 s under load. */
#define FENCE_RESERVE_US 10000000u
/* The last fence there is: the highest ceiling the file may hold. */
#define FENCE_LAST (FENCEFILE_MAX - 1)

/* The ceiling to store for fences from base (at most FENCE_LAST): base +
 * FENCE_RESERVE_US, but never more than the file may hold. Near the end it
 * reserves half of what is left, so that each run can still give fences
 * and the ceiling it stores is one the next run accepts; the first time
 * that bites, the log says that fences are running out. */
static uint64_t haspd_next_ceiling(struct haspd *d, uint64_t base)
{
	if (base + FENCE_RESERVE_US <= FENCE_LAST)
		return base + FENCE_RESERVE_US;
	if (!d->fences_ending)
		log_err("fences are running out: %" PRIu64 " left up to %" PRIu64 ", the most the "
			"fence file holds; haspd stops when they are gone (see haspd(8))",
			(uint64_t)(FENCE_LAST - base), (uint64_t)FENCE_LAST);
	d->fences_ending = true;
	return base + (FENCE_LAST - base + 1) / 2;
}

/* No fence is left that a later run could be kept above: grant nothing
 * more. The lock table cannot refuse a grant (a release grants the next
 * waiter), so the daemon stops before this fence reaches anyone; its
 * clients see it end as if it had died, and a restart refuses to start. */
static void haspd_fences_exhausted(uint64_t fence)
{
	log_err("fences are exhausted: the next one, %" PRIu64 ", would be above %" PRIu64
		", the most the fence file holds; stopping now so that no fence goes backwards "
		"(see haspd(8))", fence, (uint64_t)FENCE_LAST);
	exit(1);
}

/* Stores a ceiling above fence and returns it. If it cannot be stored,
 * granting on beats wedging every client: this run's fences still
 * increase, a grant a second later tries again (fence + 1 is the ceiling
 * meanwhile), and the log says that a restart meanwhile could fall back on
 * the clock. */
static uint64_t haspd_reserve_fences(uint64_t fence, void *arg)
{
	struct haspd *d = arg;
	uint64_t ceiling, now = d->lt.now_us;
	int r;

	if (fence > FENCE_LAST)
		haspd_fences_exhausted(fence);
	ceiling = haspd_next_ceiling(d, fence > d->lt.wall_us ? fence : d->lt.wall_us);
	/* A failing disk may be slow to fail: not at every grant. */
	if (d->fences_failing && now - d->fences_tried_us < 1000000u)
		return fence + 1;
	d->fences_tried_us = now;
	r = fencefile_store(&d->fences, ceiling);

	if (r < 0 && !d->fences_failing)
		log_err("cannot store the fence ceiling: %s; granting on and trying again each "
			"second, but until it works a restart after the clock was set back could "
			"give lower fences", strerror(-r));
	else if (r >= 0 && d->fences_failing)
		log_info("the fence ceiling is stored again");
	d->fences_failing = r < 0;
	/* At the last fence, the next grant asks again, and stops the daemon. */
	return r < 0 || ceiling == fence ? fence + 1 : ceiling;
}

/* How to recover from a lost ceiling, for the log. */
#define FENCE_RECOVERY "write a ceiling above every fence the earlier haspd gave into %s: 20 decimal " \
	"digits and a newline, e.g. an hour ahead of the clock (enough if fences followed the " \
	"clock): echo $(printf %%020d $(( $(date +%%s%%N) / 1000 + 3600000000 ))) > %s"

static int haspd_fence_error(int r, const char *path, const char *stale_socket)
{
	pid_t pid;

	switch (r) {
	case -ENOENT:
		log_err("the fence file %s is missing, but a socket left by an earlier haspd is at %s: "
			"fences could go backwards; not starting. To recover, " FENCE_RECOVERY
			"; or, if the clock was never set back, remove %s", path, stale_socket, path,
			path, stale_socket);
		break;
	case -ENODATA:
		log_err("the fence file %s is empty: an earlier haspd's ceiling is lost, and fences "
			"could go backwards; not starting. To recover, " FENCE_RECOVERY "; or, if the "
			"clock was never set back, remove it and any stale socket", path, path, path);
		break;
	case -EBADMSG:
		log_err("the fence file %s does not hold a fence ceiling (20 digits and a newline): "
			"fences could go backwards; not starting. To recover, " FENCE_RECOVERY, path,
			path, path);
		break;
	case -EPERM:
		log_err("the fence file %s is not a regular file of haspd's user, writable by it "
			"alone; not starting (whoever can write it can set fences back)", path);
		break;
	case -EBUSY:
		pid = fencefile_holder(path);
		if (pid > 0)
			log_err("another haspd is running (pid %d): it holds the fence file %s; not "
				"starting", (int)pid, path);
		else
			log_err("another haspd is running: it holds the fence file %s; not starting", path);
		break;
	default:
		log_err("cannot use the fence file %s: %s; not starting", path, strerror(-r));
	}
	return -1;
}

int haspd_keep_fences(struct haspd *d, const char *path, const char *stale_socket)
{
	uint64_t stored, ceiling;
	int r = fencefile_open(&d->fences, path, false, &stored);

	if (r == -ENOENT && !stale_socket) {
		log_info("no fence file at %s: a first start; creating it", path);
		r = fencefile_open(&d->fences, path, true, &stored);
	}
	if (r < 0)
		return haspd_fence_error(r, path, stale_socket);
	if (stored >= FENCE_LAST || d->lt.wall_us > FENCE_LAST) {
		log_err("fences are exhausted: the fence file %s holds %" PRIu64 " and the clock reads "
			"%" PRIu64 " µs, and no fence is left up to %" PRIu64 "; not starting (see "
			"haspd(8))", path, stored, d->lt.wall_us, (uint64_t)FENCE_LAST);
		fencefile_close(&d->fences);
		return -1;
	}
	locktable_set_fence_floor(&d->lt, stored);
	/* Not stored + 10 s: a string of quick restarts that grant nothing
	 * must not push the fences ever further ahead of the clock. */
	ceiling = stored;
	if (stored < d->lt.wall_us + FENCE_RESERVE_US) {
		ceiling = haspd_next_ceiling(d, d->lt.wall_us);
		if (ceiling < stored)
			ceiling = stored;
	}
	r = fencefile_store(&d->fences, ceiling);
	if (r < 0) {
		log_err("cannot write the fence file %s: %s; not starting", path, strerror(-r));
		fencefile_close(&d->fences);
		return -1;
	}
	locktable_set_fence_ceiling(&d->lt, ceiling);
	log_debug("fences above %" PRIu64 ", kept in %s", stored, path);
	return 0;
}

static void on_timer(void *arg)
{
	struct haspd *d = arg;

	d->timer_at = -1;
	locktable_expire(&d->lt);
	changes_apply(d, NULL);
	files_retry_due(d);
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
		.reserve_fences = haspd_reserve_fences,
		.arg = d,
	};
	const struct timeval hour = { 3600, 0 };

	memset(d, 0, sizeof(*d));
	list_init(&d->sessions);
	list_init(&d->flushing);
	list_init(&d->graveyard);
	files_retry_init(&d->retrying);
	d->timer_at = -1;
	d->fences.fd = -1;
	proto_track_memory();
	event_set_log_callback(haspd_libevent_log);
	/* Not EVENT_BASE_FLAG_PRECISE_TIMER: it costs a timerfd_settime per
	 * loop. epoll_wait's millisecond timeout is rounded up, so a deadline
	 * fires at most 1 ms late and never early. */
	d->base = event_base_new();
	if (!d->base || locktable_init(&d->lt, &cb) < 0 || users_init(&d->users) < 0)
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
	haspd_tick(d);
	d->started_us = d->lt.now_us;
	users_set_fd_budget(&d->users, fdlimit_now(), fdlimit_open() + HASPD_FDS_LATER);
	return 0;
}

void haspd_done(struct haspd *d)
{
	while (!list_empty(&d->sessions))
		session_lost(list_entry(d->sessions.next, struct session, link), "daemon stopping");
	haspd_sync(d);
	users_done(&d->users);
	d->server = server_free(d->server);
	d->timer = loop_event_free(d->timer);
	locktable_done(&d->lt);
	fencefile_close(&d->fences);
	if (d->base)
		event_base_free(d->base);
}
