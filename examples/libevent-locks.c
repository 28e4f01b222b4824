/* libevent-locks: libhasp's non-blocking core in a libevent program.
 *
 * libhasp never blocks here: libevent watches hasp_client_get_fd() (for
 * reading always, and for writing while hasp_client_get_events() says
 * POLLOUT) and keeps a timer for hasp_client_get_timeout(); whenever
 * either fires, hasp_client_process() does the work and runs our
 * callbacks, and we re-arm both from what libhasp wants next.
 *
 * What it does, against the haspd at $HASP_SOCKET (or the default
 * socket): 100 lock requests in flight on one connection (another client
 * holds the keys, so they wait), 50 of them cancelled (their callbacks
 * never run), the other 50 granted when the holder goes, and one of those
 * revoked by another client, which the event handler hears. It prints a
 * summary and exits 0 only if all of that happened.
 *
 *   cc libevent-locks.c $(pkg-config --cflags --libs hasp libevent) -o libevent-locks
 */
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <hasp.h>

#define NKEYS 100

struct slot {
	char key[32];
	hasp_request *req;      /* until its callback runs or it is cancelled */
	hasp_lease *lease;      /* once granted */
	bool cancelled;
	int callbacks;
};

struct app {
	hasp_client *c;
	struct event_base *base;
	struct event *io;       /* the client's descriptor */
	short io_events;        /* what io is armed for */
	struct event *timer;    /* libhasp's next deadline */
	bool (*done)(struct app *);     /* when to leave the loop */
	struct slot slots[NKEYS];
	int granted, failed;
	uint64_t revoked_id;
};

static void on_lock(hasp_client *c, hasp_request *req, int r, hasp_lease *lease, void *userdata)
{
	struct slot *s = userdata;

	(void)req;
	s->callbacks++;
	s->req = NULL;
	if (r < 0) {
		fprintf(stderr, "%s: %s (%s)\n", s->key, hasp_strerror(r), hasp_client_errmsg(c));
		return;
	}
	s->lease = lease;
}

static void on_event(hasp_client *c, enum hasp_event event, uint64_t lease_id, void *userdata)
{
	struct app *a = userdata;

	(void)c;
	if (event == HASP_EVENT_REVOKED)
		a->revoked_id = lease_id;
}

static void on_io(evutil_socket_t fd, short what, void *arg);

/* Arms the descriptor's event and the timer for what libhasp wants now.
 * Call it after anything that may queue a request (hasp_lock_async(),
 * hasp_request_cancel(), hasp_client_process()). */
static void rearm(struct app *a)
{
	int want = hasp_client_get_events(a->c);
	short events = EV_READ | EV_PERSIST | (want & POLLOUT ? EV_WRITE : 0);
	int ms = hasp_client_get_timeout(a->c);

	if (events != a->io_events) {
		event_del(a->io);
		event_assign(a->io, a->base, hasp_client_get_fd(a->c), events, on_io, a);
		event_add(a->io, NULL);
		a->io_events = events;
	}
	if (ms >= 0) {
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		evtimer_add(a->timer, &tv);
	} else {
		evtimer_del(a->timer);
	}
}

/* Readable, writable or a deadline: libhasp does what it can. */
static void process(struct app *a)
{
	if (hasp_client_process(a->c) < 0) {
		fprintf(stderr, "haspd: %s\n", hasp_client_errmsg(a->c));
		event_base_loopbreak(a->base);
		return;
	}
	rearm(a);
	if (a->done(a))
		event_base_loopbreak(a->base);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	process(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	process(arg);
}

static bool half_granted(struct app *a)
{
	int n = 0;

	for (int i = 0; i < NKEYS; i++)
		n += a->slots[i].lease != NULL;
	a->granted = n;
	return n == NKEYS / 2;
}

static bool revoke_seen(struct app *a)
{
	return a->revoked_id != 0;
}

/* Runs the loop until a->done, or 30 s (so that a test never hangs). */
static bool run_until(struct app *a, bool (*done)(struct app *))
{
	struct timeval give_up = { 30, 0 };

	a->done = done;
	if (done(a))
		return true;
	rearm(a);
	event_base_loopexit(a->base, &give_up);
	event_base_dispatch(a->base);
	return done(a);
}

int main(void)
{
	static struct app a;
	hasp_client *holder, *admin;
	int cancelled_called = 0;
	uint64_t victim;

	/* Another client takes every key first, so that our requests wait. */
	if (hasp_connect(NULL, &holder) < 0) {
		fprintf(stderr, "cannot connect to haspd\n");
		return 1;
	}
	for (int i = 0; i < NKEYS; i++) {
		hasp_lease *l;

		snprintf(a.slots[i].key, sizeof(a.slots[i].key), "example/libevent/%d", i);
		if (hasp_lock(holder, a.slots[i].key, NULL, &l) < 0)
			return 1;
		hasp_lease_free(l); /* the handle only: the holder's session keeps the lease */
	}

	if (hasp_connect(NULL, &a.c) < 0)
		return 1;
	hasp_client_set_event_handler(a.c, on_event, &a);
	a.base = event_base_new();
	a.io = event_new(a.base, hasp_client_get_fd(a.c), EV_READ | EV_PERSIST, on_io, &a);
	a.io_events = EV_READ | EV_PERSIST;
	a.timer = evtimer_new(a.base, on_timer, &a);
	if (!a.base || !a.io || !a.timer || event_add(a.io, NULL) < 0)
		return 1;

	/* 100 requests in flight. */
	for (int i = 0; i < NKEYS; i++)
		if (hasp_lock_async(a.c, a.slots[i].key, NULL, on_lock, &a.slots[i],
				    &a.slots[i].req) < 0)
			return 1;
	printf("%d requests outstanding\n", NKEYS);

	/* Cancel every other one: its callback will never be called. */
	for (int i = 0; i < NKEYS; i += 2) {
		hasp_request_cancel(a.slots[i].req);
		a.slots[i].req = NULL;
		a.slots[i].cancelled = true;
	}

	/* The holder goes, and its leases with it: the other 50 are granted. */
	hasp_close(holder);
	if (!run_until(&a, half_granted)) {
		fprintf(stderr, "only %d granted\n", a.granted);
		return 1;
	}

	/* Another client revokes one of our leases; the handler hears it. */
	victim = hasp_lease_id(a.slots[1].lease);
	if (hasp_connect(NULL, &admin) < 0 || hasp_revoke(admin, victim) < 0)
		return 1;
	hasp_close(admin);
	if (!run_until(&a, revoke_seen)) {
		fprintf(stderr, "no revoke seen\n");
		return 1;
	}

	for (int i = 0; i < NKEYS; i++) {
		if (a.slots[i].cancelled)
			cancelled_called += a.slots[i].callbacks;
		else if (a.slots[i].callbacks != 1)
			return 1;
		hasp_lease_free(a.slots[i].lease); /* hasp_close() releases them */
	}
	event_free(a.io);
	event_free(a.timer);
	event_base_free(a.base);
	hasp_close(a.c);

	printf("granted %d, cancelled %d (callbacks called: %d), revoked lease %" PRIu64
	       " (expected %" PRIu64 ")\n", a.granted, NKEYS / 2, cancelled_called, a.revoked_id,
	       victim);
	return a.granted == NKEYS / 2 && cancelled_called == 0 && a.revoked_id == victim ? 0 : 1;
}
