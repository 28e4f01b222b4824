/* poll-locks: libhasp's non-blocking core driven by a plain poll(2) loop.
 *
 * What it shows, against the haspd at $HASP_SOCKET (or the default
 * socket):
 *   1. 100 lock requests in flight at once on one connection, each with
 *      its own callback (another client holds the 100 keys, so they wait);
 *   2. 50 of them cancelled: their callbacks are never called;
 *   3. the other 50 granted when the holder lets go;
 *   4. one granted lease revoked by another client, which this client
 *      learns through its event handler.
 * It prints a summary and exits 0 only if all of that happened.
 *
 *   cc poll-locks.c $(pkg-config --cflags --libs hasp) -o poll-locks
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hasp.h>

#define NKEYS 100

/* One lock request and what became of it. */
struct slot {
	char key[32];
	hasp_request *req;      /* until its callback runs or it is cancelled */
	hasp_lease *lease;      /* once granted */
	bool cancelled;
	int callbacks;          /* how many times its callback ran */
};

static struct slot slots[NKEYS];
static int granted, failed;
static uint64_t revoked_id;     /* from the event handler */

/* Called once per request that was not cancelled: r is 0 and lease ours,
 * or r is the error. */
static void on_lock(hasp_client *c, hasp_request *req, int r, hasp_lease *lease, void *userdata)
{
	struct slot *s = userdata;

	(void)req;
	s->callbacks++;
	s->req = NULL; /* the handle is freed when we return */
	if (r < 0) {
		fprintf(stderr, "%s: %s (%s)\n", s->key, hasp_strerror(r), hasp_client_errmsg(c));
		failed++;
		return;
	}
	s->lease = lease;
	granted++;
}

/* Revocations, expiries and the end of the connection. */
static void on_event(hasp_client *c, enum hasp_event event, uint64_t lease_id, void *userdata)
{
	(void)c, (void)userdata;
	if (event == HASP_EVENT_REVOKED)
		revoked_id = lease_id;
	else if (event == HASP_EVENT_DISCONNECTED)
		fprintf(stderr, "the connection to haspd ended\n");
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool half_granted(void)
{
	return granted + failed == NKEYS / 2;
}

static bool revoke_seen(void)
{
	return revoked_id != 0;
}

/* The event loop: wait for what libhasp asks (its descriptor, for the
 * events it names, and at most its timeout), then let it process. It runs
 * until done() or, so that a test never hangs, 30 s have passed. */
static int run_until(hasp_client *c, bool (*done)(void))
{
	int64_t give_up = now_ms() + 30000;

	while (!done()) {
		struct pollfd p = { .fd = hasp_client_get_fd(c),
				    .events = (short)hasp_client_get_events(c) };
		int timeout = hasp_client_get_timeout(c); /* -1: no deadline of libhasp's */
		int64_t left = give_up - now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		if (timeout < 0 || timeout > left)
			timeout = (int)left;
		if (poll(&p, 1, timeout) < 0 && errno != EINTR)
			return -errno;
		r = hasp_client_process(c); /* runs our callbacks */
		if (r < 0)
			return r;
	}
	return 0;
}

int main(void)
{
	hasp_client *c, *holder, *admin;
	int cancelled_called = 0, r;
	uint64_t victim;

	/* Another client takes every key first, so that our requests wait. */
	r = hasp_connect(NULL, &holder);
	if (r < 0) {
		fprintf(stderr, "cannot connect to haspd: %s\n", hasp_strerror(r));
		return 1;
	}
	for (int i = 0; i < NKEYS; i++) {
		hasp_lease *l;

		snprintf(slots[i].key, sizeof(slots[i].key), "example/poll/%d", i);
		if (hasp_lock(holder, slots[i].key, NULL, &l) < 0)
			return 1;
		hasp_lease_free(l); /* the handle only: the holder's session keeps the lease */
	}

	/* Our client: 100 requests in flight, none of them blocking. */
	if (hasp_connect(NULL, &c) < 0)
		return 1;
	hasp_client_set_event_handler(c, on_event, NULL);
	for (int i = 0; i < NKEYS; i++) {
		r = hasp_lock_async(c, slots[i].key, NULL, on_lock, &slots[i], &slots[i].req);
		if (r < 0) {
			fprintf(stderr, "%s: %s\n", slots[i].key, hasp_strerror(r));
			return 1;
		}
	}
	printf("%d requests outstanding\n", NKEYS);

	/* Cancel every other one: its callback will never be called, and a
	 * grant that crossed the cancel would be released by libhasp. */
	for (int i = 0; i < NKEYS; i += 2) {
		hasp_request_cancel(slots[i].req);
		slots[i].req = NULL;
		slots[i].cancelled = true;
	}

	/* The holder goes, and its leases with it: the other 50 are granted. */
	hasp_close(holder);
	r = run_until(c, half_granted);
	if (r < 0 || failed > 0) {
		fprintf(stderr, "waiting for the grants: %s\n", hasp_strerror(r));
		return 1;
	}

	/* Someone (an administrator, say) revokes one of our leases; we hear
	 * of it through the event handler. */
	victim = hasp_lease_id(slots[1].lease);
	if (hasp_connect(NULL, &admin) < 0 || hasp_revoke(admin, victim) < 0)
		return 1;
	hasp_close(admin);
	r = run_until(c, revoke_seen);
	if (r < 0) {
		fprintf(stderr, "waiting for the revoke: %s\n", hasp_strerror(r));
		return 1;
	}

	for (int i = 0; i < NKEYS; i++) {
		if (slots[i].cancelled)
			cancelled_called += slots[i].callbacks;
		else if (slots[i].callbacks != 1)
			return 1;
		hasp_lease_free(slots[i].lease); /* hasp_close() releases them */
	}
	hasp_close(c);

	printf("granted %d, cancelled %d (callbacks called: %d), revoked lease %" PRIu64
	       " (expected %" PRIu64 ")\n", granted, NKEYS / 2, cancelled_called, revoked_id, victim);
	return granted == NKEYS / 2 && cancelled_called == 0 && revoked_id == victim ? 0 : 1;
}
