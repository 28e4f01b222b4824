/* libhasp's non-blocking core against a real haspd (issue 15): many
 * requests in flight completing in the daemon's order, each callback once
 * with its own lease; cancel of a waiting request (FIFO moves on) and of
 * one whose grant is already in the socket (the callback never runs, the
 * crossed grant is released); the connection lost under requests in
 * flight; revoke and expiry through the event handler; client-side
 * deadlines against a SIGSTOPped haspd, and its late grant released; a
 * blocking wait interrupted by a signal, or not; the holders of a
 * conflict; the hello's name and the server's. Every wait is on an event,
 * with a bound; only the deadline tests measure time, and they assert
 * never early, late only by a generous margin. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "hasp.h"

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

/* What a request's callback saw. */
struct outcome {
	int calls;
	int r;
	hasp_lease *lease;
	int order;              /* 1 for the first to complete, ... */
};

static int completions;

static void record(hasp_client *c, hasp_request *req, int r, hasp_lease *lease, void *u)
{
	struct outcome *o = u;

	(void)c, (void)req;
	o->calls++;
	o->r = r;
	o->lease = lease;
	o->order = ++completions;
}

/* What the event handler saw. */
struct events {
	int revoked, expired, disconnected;
	uint64_t last_lease;
};

static void on_event(hasp_client *c, enum hasp_event ev, uint64_t lease, void *u)
{
	struct events *e = u;

	(void)c;
	if (ev == HASP_EVENT_REVOKED)
		e->revoked++;
	else if (ev == HASP_EVENT_EXPIRED)
		e->expired++;
	else if (ev == HASP_EVENT_DISCONNECTED)
		e->disconnected++;
	e->last_lease = lease;
}

/* Runs c's loop as a program would (poll on get_fd for get_events, at most
 * get_timeout) until *count reaches want or ms pass; true if it did. */
static bool run_until(hasp_client *c, const int *count, int want, int ms)
{
	int64_t end = now_ms() + test_ms(ms);

	while (*count < want) {
		int64_t left = end - now_ms();
		int t = hasp_client_get_timeout(c);
		struct pollfd p = { .fd = hasp_client_get_fd(c),
				    .events = (short)hasp_client_get_events(c) };

		if (left <= 0)
			return false;
		if (t < 0 || t > left)
			t = (int)left;
		poll(&p, 1, t);
		hasp_client_process(c);
	}
	return true;
}

static hasp_lease *lock_key(hasp_client *c, const char *key, int64_t timeout_ms)
{
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;
	int r;

	o.timeout_ms = timeout_ms;
	r = hasp_lock(c, key, &o, &l);
	ck_assert_msg(r == 0, "lock %s: %d %s", key, r, hasp_client_errmsg(c));
	return l;
}

/* Another session takes key within a bound (it was free, or freed). */
static void another_gets(const char *key)
{
	hasp_client *o = client_connect(daemon_.socket);

	ck_assert_int_eq(hasp_unlock(o, lock_key(o, key, test_ms(5000))), 0);
	hasp_close(o);
}

/* c runs, reading what haspd sends it late (a grant it gave up on, which
 * it gives back), until another session gets key, within a bound. A ping
 * would not do: haspd can grant after it answers a later ping (its fence
 * ceiling had to be stored again, the clock having passed it while haspd
 * was stopped). */
static void another_gets_while(hasp_client *c, const char *key)
{
	hasp_client *o = client_connect(daemon_.socket);
	struct outcome got = { 0 };
	int64_t end = now_ms() + test_ms(5000);

	ck_assert_int_eq(hasp_lock_async(o, key, NULL, record, &got, NULL), 0);
	while (!got.calls && now_ms() < end) {
		struct pollfd p[2] = {
			{ .fd = hasp_client_get_fd(c), .events = (short)hasp_client_get_events(c) },
			{ .fd = hasp_client_get_fd(o), .events = (short)hasp_client_get_events(o) },
		};

		poll(p, 2, 100);
		hasp_client_process(c);
		hasp_client_process(o);
	}
	ck_assert_msg(got.calls == 1 && got.r == 0, "%s: %d calls, %d", key, got.calls, got.r);
	ck_assert_int_eq(hasp_unlock(o, got.lease), 0);
	hasp_close(o);
}

static void start(hasp_client *c, const char *key, int64_t timeout_ms, struct outcome *out,
		  hasp_request **ret_req)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	int r;

	o.timeout_ms = timeout_ms;
	r = hasp_lock_async(c, key, &o, record, out, ret_req);
	ck_assert_msg(r == 0, "lock_async %s: %d %s", key, r, hasp_client_errmsg(c));
}

#define NKEYS 40
#define NHELD 10

/* Held keys complete as the holder releases them (in reverse), after the
 * free ones sent later; each callback once, with its own key's lease. */
START_TEST(requests_complete_in_the_daemons_order)
{
	hasp_client *c = client_connect(daemon_.socket), *h = client_connect(daemon_.socket);
	struct outcome out[NKEYS] = { { 0 } };
	hasp_lease *held[NHELD];
	char key[NKEYS][16];

	completions = 0;
	for (int i = 0; i < NKEYS; i++) {
		snprintf(key[i], sizeof(key[i]), "order-%d", i);
		if (i < NHELD)
			held[i] = lock_key(h, key[i], 0);
	}
	for (int i = 0; i < NKEYS; i++)
		start(c, key[i], HASP_WAIT_FOREVER, &out[i], NULL);
	ck_assert(run_until(c, &completions, NKEYS - NHELD, 5000));
	ck_assert_int_eq(hasp_ping(c), 0); /* the held ones wait: nothing more */
	ck_assert_int_eq(completions, NKEYS - NHELD);
	for (int i = NHELD - 1; i >= 0; i--)
		ck_assert_int_eq(hasp_unlock(h, held[i]), 0);
	ck_assert(run_until(c, &completions, NKEYS, 5000));
	ck_assert_int_eq(hasp_ping(c), 0);
	for (int i = 0; i < NKEYS; i++) {
		ck_assert_int_eq(out[i].calls, 1);
		ck_assert_int_eq(out[i].r, 0);
		ck_assert_ptr_nonnull(out[i].lease);
		ck_assert_str_eq(hasp_lease_key(out[i].lease), key[i]);
		for (int j = 0; j < i; j++)
			ck_assert_uint_ne(hasp_lease_id(out[i].lease), hasp_lease_id(out[j].lease));
		/* The free ones first; the held ones in the order released. */
		if (i < NHELD)
			ck_assert_int_eq(out[i].order, NKEYS - i);
		else
			ck_assert_int_le(out[i].order, NKEYS - NHELD);
	}
	for (int i = 0; i < NKEYS; i++)
		ck_assert_int_eq(hasp_unlock(c, out[i].lease), 0);
	hasp_close(h);
	hasp_close(c);
}
END_TEST

/* The grant is in c's socket when c cancels: the callback never runs, and
 * c releases the crossed grant, so another session gets the key. */
START_TEST(cancel_racing_a_grant_releases_it)
{
	hasp_client *c = client_connect(daemon_.socket), *h = client_connect(daemon_.socket);
	struct outcome out = { 0 };
	hasp_request *req;
	hasp_lease *l = lock_key(h, "race", 0);

	start(c, "race", HASP_WAIT_FOREVER, &out, &req);
	ck_assert_int_eq(hasp_ping(c), 0); /* queued behind h */
	ck_assert_int_eq(out.calls, 0);
	ck_assert_int_eq(hasp_unlock(h, l), 0);
	/* The grant is on the wire to c, unread. */
	ck_assert(wait_readable(hasp_client_fd(c), 5000));
	ck_assert_int_eq(hasp_request_cancel(req), 0);
	ck_assert_int_eq(hasp_ping(c), 0); /* reads the grant, sends its release */
	another_gets("race");
	ck_assert_int_eq(hasp_ping(c), 0);
	ck_assert_int_eq(out.calls, 0);
	hasp_close(h);
	hasp_close(c);
}
END_TEST

/* A waiting request cancelled: the session behind it gets the key at the
 * holder's release; the cancelled one's callback never runs. */
START_TEST(cancel_of_a_waiting_request_moves_the_queue_on)
{
	hasp_client *c = client_connect(daemon_.socket), *d = client_connect(daemon_.socket);
	hasp_client *h = client_connect(daemon_.socket);
	struct outcome oc = { 0 }, od = { 0 };
	hasp_request *req;
	hasp_lease *l = lock_key(h, "fifo", 0);

	start(c, "fifo", HASP_WAIT_FOREVER, &oc, &req);
	ck_assert_int_eq(hasp_ping(c), 0); /* c queued first */
	start(d, "fifo", HASP_WAIT_FOREVER, &od, NULL);
	ck_assert_int_eq(hasp_ping(d), 0); /* d behind it */
	ck_assert_int_eq(hasp_request_cancel(req), 0);
	ck_assert_int_eq(hasp_ping(c), 0); /* the cancel is done */
	ck_assert_int_eq(hasp_unlock(h, l), 0);
	ck_assert(run_until(d, &od.calls, 1, 5000));
	ck_assert_int_eq(od.r, 0);
	ck_assert_int_eq(hasp_ping(c), 0);
	ck_assert_int_eq(oc.calls, 0);
	ck_assert_int_eq(hasp_unlock(d, od.lease), 0);
	hasp_close(h);
	hasp_close(d);
	hasp_close(c);
}
END_TEST

/* A request cancelled from another request's callback, and a callback
 * cancelling its own request (a no-op), are safe. */
static hasp_request *to_cancel;

static void cancel_other(hasp_client *c, hasp_request *req, int r, hasp_lease *lease, void *u)
{
	record(c, req, r, lease, u);
	ck_assert_int_eq(hasp_request_cancel(req), 0);
	if (to_cancel)
		ck_assert_int_eq(hasp_request_cancel(to_cancel), 0);
	to_cancel = NULL;
}

START_TEST(cancel_from_a_callback)
{
	hasp_client *c = client_connect(daemon_.socket), *h = client_connect(daemon_.socket);
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;
	struct outcome first = { 0 }, second = { 0 };
	hasp_lease *l = lock_key(h, "cb-held", 0);

	completions = 0;
	start(c, "cb-held", HASP_WAIT_FOREVER, &second, &to_cancel);
	ck_assert_int_eq(hasp_lock_async(c, "cb-free", &o, cancel_other, &first, NULL), 0);
	ck_assert(run_until(c, &first.calls, 1, 5000));
	ck_assert_int_eq(first.r, 0);
	ck_assert_int_eq(hasp_unlock(h, l), 0);
	another_gets("cb-held");
	ck_assert_int_eq(hasp_ping(c), 0);
	ck_assert_int_eq(second.calls, 0);
	ck_assert_int_eq(hasp_unlock(c, first.lease), 0);
	hasp_close(h);
	hasp_close(c);
}
END_TEST

#define NLOST 20

/* haspd killed under requests in flight: every callback gets -ECONNRESET
 * once, the handler hears of the end once, and later calls say so. */
START_TEST(connection_loss_fails_every_request_once)
{
	hasp_client *c = client_connect(daemon_.socket), *h = client_connect(daemon_.socket);
	struct outcome out[NLOST] = { { 0 } }, late = { 0 };
	struct events ev = { 0 };
	hasp_lease *held[NLOST];
	char key[32];

	completions = 0;
	hasp_client_set_event_handler(c, on_event, &ev);
	for (int i = 0; i < NLOST; i++) {
		snprintf(key, sizeof(key), "lost-%d", i);
		held[i] = lock_key(h, key, 0);
		start(c, key, HASP_WAIT_FOREVER, &out[i], NULL);
	}
	ck_assert_int_eq(hasp_ping(c), 0);
	ck_assert_int_eq(completions, 0);
	kill(daemon_.pid, SIGKILL);
	wait_child(daemon_.pid, 5000);
	ck_assert(run_until(c, &ev.disconnected, 1, 5000));
	for (int i = 0; i < NLOST; i++) {
		ck_assert_int_eq(out[i].calls, 1);
		ck_assert_int_eq(out[i].r, -ECONNRESET);
		ck_assert_ptr_null(out[i].lease);
	}
	ck_assert_int_eq(hasp_client_process(c), -ECONNRESET);
	ck_assert_int_eq(hasp_client_get_events(c), 0);
	ck_assert_int_eq(hasp_lock_async(c, "after", NULL, record, &late, NULL), -ECONNRESET);
	ck_assert_int_eq(hasp_ping(c), -ECONNRESET);
	ck_assert_int_eq(completions, NLOST);
	ck_assert_int_eq(late.calls, 0);
	ck_assert_int_eq(ev.disconnected, 1);
	ck_assert_uint_eq(ev.last_lease, 0);
	for (int i = 0; i < NLOST; i++)
		hasp_lease_free(held[i]);
	hasp_close(h);
	hasp_close(c);
	daemon_.pid = daemon_spawn(daemon_.socket, -1); /* for teardown */
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
}
END_TEST

/* The daemon dies while c has a request in flight that c has not yet
 * seen fail; c then starts another, which is queued (requests are
 * written by the next process), and learns of the end as it writes: both
 * fail once, with -ECONNRESET, and nothing is used after it is freed (the
 * ASan build). */
START_TEST(a_request_started_on_a_dead_connection)
{
	hasp_client *c = client_connect(daemon_.socket), *h = client_connect(daemon_.socket);
	struct outcome first = { 0 }, second = { 0 };
	struct events ev = { 0 };
	hasp_lease *held;
	int r;

	hasp_client_set_event_handler(c, on_event, &ev);
	held = lock_key(h, "dead-1", 0);
	start(c, "dead-1", HASP_WAIT_FOREVER, &first, NULL);
	ck_assert_int_eq(hasp_ping(c), 0);
	kill(daemon_.pid, SIGKILL);
	wait_child(daemon_.pid, 5000);
	r = hasp_lock_async(c, "dead-2", NULL, record, &second, NULL);
	ck_assert_msg(r == 0, "%d", r);
	ck_assert(run_until(c, &ev.disconnected, 1, 5000));
	ck_assert_int_eq(hasp_client_process(c), -ECONNRESET);
	ck_assert_int_eq(first.calls, 1);
	ck_assert_int_eq(first.r, -ECONNRESET);
	ck_assert_int_eq(second.calls, 1);
	ck_assert_int_eq(second.r, -ECONNRESET);
	/* Once the end is known, a new request is refused at once, and its
	 * callback never runs. */
	ck_assert_int_eq(hasp_lock_async(c, "dead-3", NULL, record, &second, NULL), -ECONNRESET);
	ck_assert_int_eq(second.calls, 1);
	ck_assert_int_eq(ev.disconnected, 1);
	hasp_lease_free(held);
	hasp_close(h);
	hasp_close(c);
	daemon_.pid = daemon_spawn(daemon_.socket, -1); /* for teardown */
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
}
END_TEST

/* A cancel sent when the connection has just died: the callback of the
 * cancelled request must not run, even as the end fails every call. */
START_TEST(cancel_on_a_connection_that_just_died)
{
	hasp_client *c = client_connect(daemon_.socket), *h = client_connect(daemon_.socket);
	struct outcome out = { 0 };
	struct events ev = { 0 };
	hasp_request *req;
	hasp_lease *held;

	hasp_client_set_event_handler(c, on_event, &ev);
	held = lock_key(h, "dying", 0);
	start(c, "dying", HASP_WAIT_FOREVER, &out, &req);
	ck_assert_int_eq(hasp_ping(c), 0);
	kill(daemon_.pid, SIGKILL);
	wait_child(daemon_.pid, 5000);
	ck_assert_int_eq(hasp_request_cancel(req), 0);
	ck_assert(run_until(c, &ev.disconnected, 1, 5000));
	ck_assert_int_eq(out.calls, 0);
	hasp_lease_free(held);
	hasp_close(h);
	hasp_close(c);
	daemon_.pid = daemon_spawn(daemon_.socket, -1); /* for teardown */
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
}
END_TEST

START_TEST(revoke_and_expiry_reach_the_event_handler)
{
	hasp_client *c = client_connect(daemon_.socket), *o = client_connect(daemon_.socket);
	struct hasp_acquire_options a = HASP_ACQUIRE_OPTIONS_INIT;
	struct events ev = { 0 };
	hasp_lease *l = lock_key(c, "revoked", 0), *t;

	hasp_client_set_event_handler(c, on_event, &ev);
	ck_assert_int_eq(hasp_revoke(o, hasp_lease_id(l)), 0);
	ck_assert(run_until(c, &ev.revoked, 1, 5000));
	ck_assert_uint_eq(ev.last_lease, hasp_lease_id(l));
	ck_assert_int_eq(hasp_lease_revoked(c, l), 1);

	a.ttl_ms = 100;
	ck_assert_int_eq(hasp_acquire(c, "expiring", &a, &t), 0);
	ck_assert(run_until(c, &ev.expired, 1, 5000));
	ck_assert_uint_eq(ev.last_lease, hasp_lease_id(t));
	ck_assert_int_eq(hasp_lease_revoked(c, t), 2);
	ck_assert_int_eq(ev.revoked, 1);
	ck_assert_int_eq(ev.disconnected, 0);
	another_gets("revoked");
	another_gets("expiring");
	hasp_lease_free(l);
	hasp_lease_free(t);
	hasp_close(o);
	hasp_close(c);
}
END_TEST

/* How late a client-side deadline may be on a loaded machine. */
#define LATE_MS 1500

/* libhasp's grace after an acquire's timeout: 500 ms, or $HASP_GRACE_MS
 * (the valgrind setup's). */
static int64_t grace_ms(void)
{
	const char *env = getenv("HASP_GRACE_MS");

	return env && *env ? atoll(env) : 500;
}

/* haspd stopped: a lock with a timeout and a ping under a call timeout
 * return in time, never early; once haspd runs again, the grant it makes
 * late is released by the client. */
START_TEST(deadlines_against_a_stopped_daemon)
{
	hasp_client *c = client_connect(daemon_.socket);
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	struct outcome out = { 0 };
	hasp_lease *l = NULL;
	int64_t t0, dt;

	ck_assert_int_eq(hasp_ping(c), 0);
	ck_assert_int_eq(kill(daemon_.pid, SIGSTOP), 0);

	o.timeout_ms = 100;
	t0 = now_ms();
	ck_assert_int_eq(hasp_lock(c, "late", &o, &l), -HASP_E_TIMEOUT);
	dt = now_ms() - t0;
	ck_assert_ptr_null(l);
	ck_assert_msg(dt >= 100 && dt <= 100 + grace_ms() + test_ms(LATE_MS), "lock took %lld ms",
		      (long long)dt);

	ck_assert_int_eq(hasp_client_set_call_timeout(c, 200), 0);
	t0 = now_ms();
	ck_assert_int_eq(hasp_ping(c), -ETIMEDOUT);
	dt = now_ms() - t0;
	ck_assert_msg(dt >= 200 && dt <= 200 + test_ms(LATE_MS), "ping took %lld ms",
		      (long long)dt);

	/* The async form too: its callback has -HASP_E_TIMEOUT in time. */
	t0 = now_ms();
	start(c, "late-async", 100, &out, NULL);
	ck_assert(run_until(c, &out.calls, 1, 100 + grace_ms() + test_ms(LATE_MS)));
	dt = now_ms() - t0;
	ck_assert_int_eq(out.r, -HASP_E_TIMEOUT);
	ck_assert_msg(dt >= 100, "async lock failed after %lld ms", (long long)dt);

	ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
	ck_assert_int_eq(hasp_client_set_call_timeout(c, 0), 0);
	another_gets_while(c, "late");
	another_gets_while(c, "late-async");
	ck_assert_int_eq(out.calls, 1);
	hasp_close(c);
}
END_TEST

static volatile sig_atomic_t signals;

static void on_alarm(int sig)
{
	(void)sig;
	signals++;
}

/* SIGALRM to this thread after ms, handled by on_alarm with flags. */
static void alarm_in(int ms, int flags)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = flags };
	struct itimerval it = { .it_value = { ms / 1000, (ms % 1000) * 1000 } };

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	signals = 0;
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

/* Interruptible: a forever wait returns -EINTR at a signal (with
 * SA_RESTART or without), and leaves no lease behind. */
START_TEST(a_signal_interrupts_an_interruptible_wait)
{
	int flags[] = { 0, SA_RESTART };

	for (size_t i = 0; i < 2; i++) {
		hasp_client *c = client_connect(daemon_.socket), *h = client_connect(daemon_.socket);
		hasp_lease *held = lock_key(h, "intr", 0), *l = NULL;

		hasp_client_set_interruptible(c, true);
		alarm_in(100, flags[i]);
		ck_assert_int_eq(hasp_lock(c, "intr", NULL, &l), -EINTR);
		ck_assert_int_eq(signals, 1);
		ck_assert_ptr_null(l);
		ck_assert_int_eq(hasp_ping(c), 0); /* its cancel is done */
		ck_assert_int_eq(hasp_unlock(h, held), 0);
		another_gets("intr");
		hasp_close(h);
		hasp_close(c);
	}
	signal(SIGALRM, SIG_DFL);
}
END_TEST

/* Not interruptible (the default): the wait goes on through the signal,
 * until the holder's lease expires and the lock is granted. */
START_TEST(a_signal_does_not_interrupt_by_default)
{
	hasp_client *c = client_connect(daemon_.socket), *h = client_connect(daemon_.socket);
	struct hasp_acquire_options a = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_lease *held, *l = NULL;

	a.ttl_ms = 400;
	ck_assert_int_eq(hasp_acquire(h, "no-intr", &a, &held), 0);
	alarm_in(100, 0);
	ck_assert_int_eq(hasp_lock(c, "no-intr", NULL, &l), 0);
	ck_assert_int_eq(signals, 1);
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	signal(SIGALRM, SIG_DFL);
	hasp_lease_free(held);
	hasp_close(h);
	hasp_close(c);
}
END_TEST

struct busy_seen {
	int calls;
	size_t holders;
};

static void busy_inside(hasp_client *c, hasp_request *req, int r, hasp_lease *lease, void *u)
{
	struct busy_seen *seen = u;

	(void)req, (void)lease;
	ck_assert_int_eq(r, -HASP_E_BUSY);
	seen->calls++;
	seen->holders = hasp_client_conflict_count(c);
}

/* A busy or timeout names the holder: pid, uid, owner, message, lease. */
START_TEST(a_conflict_names_its_holders)
{
	hasp_client *c = client_connect(daemon_.socket), *h = client_connect(daemon_.socket);
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	struct hasp_acquire_options a = HASP_ACQUIRE_OPTIONS_INIT;
	struct hasp_holder who = HASP_HOLDER_INIT, small = HASP_HOLDER_INIT;
	hasp_lease *held, *l = NULL;
	struct busy_seen seen = { 0 };

	o.owner = "alice";
	o.message = "v42";
	o.timeout_ms = 0;
	ck_assert_int_eq(hasp_lock(h, "conflict", &o, &held), 0);

	o.owner = o.message = NULL;
	ck_assert_int_eq(hasp_lock(c, "conflict", &o, &l), -HASP_E_BUSY);
	ck_assert_uint_eq(hasp_client_conflict_count(c), 1);
	ck_assert_int_eq(hasp_client_conflict(c, 0, &who), 0);
	ck_assert_int_eq(who.pid, getpid());
	ck_assert_int_eq(who.uid, getuid());
	ck_assert_int_eq(who.gid, getgid());
	ck_assert_str_eq(who.owner, "alice");
	ck_assert_str_eq(who.message, "v42");
	ck_assert_uint_eq(who.lease, hasp_lease_id(held));
	ck_assert_uint_eq(who.fence, hasp_lease_fence(held));
	ck_assert_int_eq(who.mode, HASP_EXCLUSIVE);
	ck_assert(!who.checkout);
	ck_assert_int_eq(hasp_client_conflict(c, 1, &who), -ENOENT);
	small.size = sizeof(size_t);
	ck_assert_int_eq(hasp_client_conflict(c, 0, &small), -EINVAL);

	/* A timeout names them too; any other result clears them. */
	o.timeout_ms = 50;
	ck_assert_int_eq(hasp_lock(c, "conflict", &o, &l), -HASP_E_TIMEOUT);
	ck_assert_uint_eq(hasp_client_conflict_count(c), 1);
	ck_assert_int_eq(hasp_ping(c), 0);
	ck_assert_uint_eq(hasp_client_conflict_count(c), 0);

	/* In an async request's callback. */
	a.timeout_ms = 0;
	ck_assert_int_eq(hasp_lock_async(c, "conflict", &a, busy_inside, &seen, NULL), 0);
	ck_assert(run_until(c, &seen.calls, 1, 5000));
	ck_assert_uint_eq(seen.holders, 1);

	ck_assert_int_eq(hasp_unlock(h, held), 0);
	hasp_close(h);
	hasp_close(c);
}
END_TEST

/* A deadlock's cycle through libhasp: the refused lock names each wait,
 * the other wait goes on and is granted once the refused side lets go. */
START_TEST(a_deadlock_names_its_cycle)
{
	hasp_client *a = client_connect(daemon_.socket), *b = client_connect(daemon_.socket);
	hasp_lease *ax = client_lock(a, "dl-x", HASP_EXCLUSIVE), *by = client_lock(b, "dl-y", HASP_EXCLUSIVE);
	hasp_lease *l = NULL;
	struct hasp_wait w0 = HASP_WAIT_INIT, w1 = HASP_WAIT_INIT, small = HASP_WAIT_INIT;
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	struct outcome ay = { 0 };

	ck_assert_int_eq(hasp_lock_async(a, "dl-y", NULL, record, &ay, NULL), 0);
	ck_assert_int_eq(hasp_ping(a), 0); /* the wait is queued */
	o.owner = "bob";
	ck_assert_int_eq(hasp_lock(b, "dl-x", &o, &l), -HASP_E_DEADLOCK);
	ck_assert_ptr_null(l);
	ck_assert_msg(strstr(hasp_client_errmsg(b), "waits for exclusive on 'dl-y', held by"),
		      "%s", hasp_client_errmsg(b));
	ck_assert_uint_eq(hasp_client_cycle_count(b), 2);
	ck_assert_int_eq(hasp_client_cycle(b, 0, &w0), 0);
	ck_assert_int_eq(hasp_client_cycle(b, 1, &w1), 0);
	ck_assert_int_eq(hasp_client_cycle(b, 2, &w1), -ENOENT);
	small.size = sizeof(size_t);
	ck_assert_int_eq(hasp_client_cycle(b, 0, &small), -EINVAL);
	ck_assert_str_eq(w0.key, "dl-x");
	ck_assert_ptr_null(w0.path);
	ck_assert_str_eq(w0.owner, "bob");
	ck_assert_int_eq(w0.pid, getpid());
	ck_assert_uint_eq(w0.for_lease, hasp_lease_id(ax));
	ck_assert_uint_eq(w0.for_session, w1.session);
	ck_assert_str_eq(w1.key, "dl-y");
	ck_assert_uint_eq(w1.for_lease, hasp_lease_id(by));
	ck_assert_uint_eq(w1.for_session, w0.session);
	ck_assert_uint_eq(hasp_client_conflict_count(b), 0);
	/* b gives up y: a's wait, which went on, is granted. */
	ck_assert_int_eq(hasp_unlock(b, by), 0);
	ck_assert(run_until(a, &ay.calls, 1, 5000));
	ck_assert_int_eq(ay.r, 0);
	ck_assert_int_eq(hasp_ping(b), 0);
	ck_assert_uint_eq(hasp_client_cycle_count(b), 0);
	ck_assert_int_eq(hasp_unlock(a, ay.lease), 0);
	ck_assert_int_eq(hasp_unlock(a, ax), 0);
	hasp_close(a);
	hasp_close(b);
}
END_TEST

/* The hello: the name set before connecting is the holder's "client" in
 * the list; the server's name is known after a round trip. */
START_TEST(hello_names_the_client_and_the_server)
{
	hasp_client *c, *o = client_connect(daemon_.socket);
	hasp_lease *l;
	char *text = NULL;
	json_t *list, *holder;
	const char *client;

	ck_assert_int_eq(hasp_client_new(&c), 0);
	ck_assert_int_eq(hasp_client_set_name(c, "async-test ünïcode"), 0);
	ck_assert_int_eq(hasp_client_set_name(c, "\xff"), -EINVAL);
	ck_assert_ptr_null(hasp_client_server(c));
	ck_assert_ptr_null(hasp_client_socket(c));
	ck_assert_int_eq(hasp_client_connect(c, daemon_.socket), 0);
	ck_assert_str_eq(hasp_client_socket(c), daemon_.socket);
	ck_assert_int_eq(hasp_ping(c), 0);
	ck_assert_ptr_nonnull(hasp_client_server(c));
	ck_assert_msg(strncmp(hasp_client_server(c), "haspd", 5) == 0, "server %s",
		      hasp_client_server(c));
	l = lock_key(c, "named", 0);
	ck_assert_int_eq(hasp_list_json(o, &text), 0);
	list = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(list);
	holder = json_array_get(json_object_get(json_array_get(list, 0), "holders"), 0);
	client = json_string_value(json_object_get(holder, "client"));
	ck_assert_msg(client && strstr(client, "async-test ünïcode"), "client: %s", text);
	json_decref(list);
	free(text);
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	hasp_close(o);
	hasp_close(c);
}
END_TEST

/* ---- regressions from the review of the non-blocking core ---- */

/* Another session's try (timeout 0) at key: 0 if it was free (and is
 * given back), or the error, e.g. -HASP_E_BUSY while c holds it. */
static int another_tries(const char *key)
{
	hasp_client *o = client_connect(daemon_.socket);
	struct hasp_lock_options opts = HASP_LOCK_OPTIONS_INIT;
	hasp_lease *l = NULL;
	int r;

	opts.timeout_ms = 0;
	r = hasp_lock(o, key, &opts, &l);
	if (r == 0)
		ck_assert_int_eq(hasp_unlock(o, l), 0);
	hasp_close(o);
	return r;
}

/* A renew interrupted by a signal while haspd is stopped: its reply comes
 * late and names the lease, which stays held (it was released). */
START_TEST(an_interrupted_renew_keeps_the_lease)
{
	hasp_client *c = client_connect(daemon_.socket);
	struct hasp_acquire_options a = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_lease *l;

	a.ttl_ms = 600000;
	ck_assert_int_eq(hasp_acquire(c, "renewed", &a, &l), 0);
	hasp_client_set_interruptible(c, true);
	ck_assert_int_eq(kill(daemon_.pid, SIGSTOP), 0);
	alarm_in(100, 0);
	ck_assert_int_eq(hasp_renew(c, l, 0, NULL), -EINTR);
	signal(SIGALRM, SIG_DFL);
	ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
	ck_assert_int_eq(hasp_ping(c), 0); /* reads the renew's late reply */
	ck_assert_int_eq(hasp_ping(c), 0); /* and haspd anything it caused */
	ck_assert_int_eq(another_tries("renewed"), -HASP_E_BUSY);
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	hasp_close(c);
}
END_TEST

/* A request's timeout callback that lets haspd run again and makes a
 * blocking call, which reads the late grant: it is given back. */
static void ping_at_timeout(hasp_client *c, hasp_request *req, int r, hasp_lease *lease, void *u)
{
	record(c, req, r, lease, u);
	ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
	ck_assert_int_eq(hasp_ping(c), 0);
}

START_TEST(a_late_grant_read_in_the_timeout_callback_is_given_back)
{
	hasp_client *c = client_connect(daemon_.socket);
	struct hasp_acquire_options a = HASP_ACQUIRE_OPTIONS_INIT;
	struct outcome out = { 0 };

	ck_assert_int_eq(kill(daemon_.pid, SIGSTOP), 0);
	a.timeout_ms = 100;
	ck_assert_int_eq(hasp_lock_async(c, "late-cb", &a, ping_at_timeout, &out, NULL), 0);
	ck_assert(run_until(c, &out.calls, 1, 100 + grace_ms() + LATE_MS));
	ck_assert_int_eq(out.r, -HASP_E_TIMEOUT);
	another_gets_while(c, "late-cb");
	hasp_close(c);
}
END_TEST

/* hasp_close() right after hasp_unlock_async() of a checkout, which
 * outlives the session: the release reaches haspd. */
START_TEST(close_after_unlock_async_ends_the_checkout)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l;

	ck_assert_int_eq(hasp_checkout(c, "co-close", NULL, &l), 0);
	ck_assert_int_eq(hasp_unlock_async(c, l, NULL, NULL), 0);
	hasp_close(c);
	ck_assert_int_eq(another_tries("co-close"), 0);
}
END_TEST

/* The same with a callback: it never runs, and its context is not leaked
 * (LeakSanitizer, in the ASan build). */
static void unlock_seen(hasp_client *c, int r, void *u)
{
	(void)c, (void)r;
	++*(int *)u;
}

START_TEST(close_lets_go_of_an_unfinished_unlock)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l = lock_key(c, "plain", 0), *co;
	int calls = 0;

	ck_assert_int_eq(hasp_checkout(c, "co-cb", NULL, &co), 0);
	ck_assert_int_eq(hasp_unlock_async(c, co, unlock_seen, &calls), 0);
	ck_assert_int_eq(hasp_unlock_async(c, l, unlock_seen, &calls), 0);
	hasp_close(c);
	ck_assert_int_eq(calls, 0);
	ck_assert_int_eq(another_tries("co-cb"), 0);
}
END_TEST

/* Once the connection has ended, there is no descriptor to watch (the
 * dead one polls ready for ever). */
START_TEST(an_ended_connection_has_no_fd)
{
	hasp_client *c = client_connect(daemon_.socket);
	struct events ev = { 0 };

	hasp_client_set_event_handler(c, on_event, &ev);
	ck_assert_int_ge(hasp_client_get_fd(c), 0);
	kill(daemon_.pid, SIGKILL);
	wait_child(daemon_.pid, 5000);
	ck_assert(run_until(c, &ev.disconnected, 1, 5000));
	ck_assert_int_eq(hasp_client_get_fd(c), -1);
	ck_assert_int_eq(hasp_client_get_events(c), 0);
	hasp_close(c);
	daemon_.pid = daemon_spawn(daemon_.socket, -1); /* for teardown */
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
}
END_TEST

/* flock(1)'s fd form timed out against a stopped haspd: the grant that
 * comes late put the flock on the caller's own descriptor, and is taken
 * off it (haspd keeps no lease to release). */
START_TEST(a_late_fd_grant_is_unlocked)
{
	hasp_client *c = client_connect(daemon_.socket);
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	char path[sizeof(daemon_.dir) + 16];
	hasp_lease *l = NULL;
	int fd, other;

	snprintf(path, sizeof(path), "%s/fd-late", daemon_.dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	other = open(path, O_RDWR | O_CLOEXEC);
	ck_assert(fd >= 0 && other >= 0);
	ck_assert_int_eq(kill(daemon_.pid, SIGSTOP), 0);
	o.timeout_ms = 100;
	ck_assert_int_eq(hasp_lock_fd(c, fd, &o, &l), -HASP_E_TIMEOUT);
	ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
	/* c's first news from haspd now is the acquire's answer (a grant,
	 * perhaps after haspd stored a new fence ceiling, which a ping would
	 * overtake). */
	ck_assert(wait_readable(hasp_client_fd(c), test_ms(5000)));
	hasp_client_process(c);
	ck_assert_int_eq(flock(other, LOCK_EX | LOCK_NB), 0);
	close(other);
	close(fd);
	unlink(path);
	hasp_close(c);
}
END_TEST

/* A timeout found by the client (haspd stopped) names no holders, even
 * when an earlier conflict on c did. */
static void holders_at_timeout(hasp_client *c, hasp_request *req, int r, hasp_lease *lease,
			       void *u)
{
	struct busy_seen *seen = u;

	(void)req, (void)lease;
	ck_assert_int_eq(r, -HASP_E_TIMEOUT);
	ck_assert_str_eq(hasp_client_errmsg(c), "haspd did not answer within the timeout");
	seen->calls++;
	seen->holders = hasp_client_conflict_count(c);
}

START_TEST(a_client_side_timeout_names_no_holders)
{
	hasp_client *c = client_connect(daemon_.socket), *h = client_connect(daemon_.socket);
	struct hasp_acquire_options a = HASP_ACQUIRE_OPTIONS_INIT;
	struct hasp_lock_options o = HASP_LOCK_OPTIONS_INIT;
	struct busy_seen seen = { 0 };
	hasp_lease *held = lock_key(h, "held-9", 0), *other = lock_key(h, "held-9b", 0), *l = NULL;

	/* Its timeout is haspd's only if haspd runs that long: it is
	 * stopped well before. */
	a.timeout_ms = test_ms(2000);
	ck_assert_int_eq(hasp_lock_async(c, "held-9", &a, holders_at_timeout, &seen, NULL), 0);
	o.timeout_ms = 0;
	ck_assert_int_eq(hasp_lock(c, "held-9b", &o, &l), -HASP_E_BUSY);
	ck_assert_uint_eq(hasp_client_conflict_count(c), 1);
	ck_assert_int_eq(kill(daemon_.pid, SIGSTOP), 0);
	ck_assert(run_until(c, &seen.calls, 1, test_ms(2000) + 250 + LATE_MS));
	ck_assert_uint_eq(seen.holders, 0);
	ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
	ck_assert_int_eq(hasp_unlock(h, held), 0);
	ck_assert_int_eq(hasp_unlock(h, other), 0);
	hasp_close(h);
	hasp_close(c);
}
END_TEST

/* ---- a release is written, not waited for (issue 16) ---- */

/* hasp_unlock() writes the release and returns: it does not wait for a
 * stopped haspd, which ends the lease when it runs again; the release's
 * answer is read, and dropped, on the way to the next call's. */
START_TEST(unlock_does_not_wait_for_the_daemon)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l = lock_key(c, "unwaited", 0);
	int64_t start;

	ck_assert_int_eq(kill(daemon_.pid, SIGSTOP), 0);
	start = now_ms();
	ck_assert_int_eq(hasp_unlock(c, l), 0);
	ck_assert_int_lt(now_ms() - start, test_ms(100));
	ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
	another_gets("unwaited");
	ck_assert_int_eq(hasp_unlock(c, lock_key(c, "unwaited", test_ms(5000))), 0);
	ck_assert_int_eq(hasp_ping(c), 0);
	hasp_close(c);
}
END_TEST

/* haspd ends a lease before it reads the next request of its session: a
 * try (timeout 0) at the key just unlocked never finds it busy. */
START_TEST(a_try_after_unlock_is_never_busy)
{
	hasp_client *c = client_connect(daemon_.socket);

	for (int i = 0; i < 2000; i++)
		ck_assert_int_eq(hasp_unlock(c, lock_key(c, "again", 0)), 0);
	hasp_close(c);
}
END_TEST

/* With the socket full (haspd stopped under a pile of requests), an
 * unlock waits until its release is written, within the call timeout. */
START_TEST(an_unlock_into_a_full_socket_keeps_the_call_timeout)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l = lock_key(c, "full", 0);
	struct outcome piled = { 0 };
	char key[1001];
	int64_t start;
	int n = 0;

	ck_assert_int_eq(kill(daemon_.pid, SIGSTOP), 0);
	while (!(hasp_client_get_events(c) & POLLOUT) && n < 100000) {
		snprintf(key, sizeof(key), "%0990d", n++);
		ck_assert_int_eq(hasp_lock_async(c, key, NULL, record, &piled, NULL), 0);
		ck_assert_int_eq(hasp_client_process(c), 0);
	}
	ck_assert(hasp_client_get_events(c) & POLLOUT);
	hasp_client_set_call_timeout(c, 200);
	start = now_ms();
	ck_assert_int_eq(hasp_unlock(c, l), -ETIMEDOUT);
	ck_assert_int_ge(now_ms() - start, 190);
	ck_assert_int_lt(now_ms() - start, test_ms(2000));
	ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
	hasp_close(c);
	another_gets("full"); /* the session's end released it */
}
END_TEST

/* A revoke that haspd sent before the unlock (its event is in c's socket,
 * unread) is the unlock's answer, as hasp_lease_revoked() would have told
 * at that moment: the section the lease guarded was not protected to its
 * end, and the caller must hear of it. */
START_TEST(an_unlock_after_a_revoke_already_sent_says_so)
{
	hasp_client *c = client_connect(daemon_.socket), *admin = client_connect(daemon_.socket);
	hasp_lease *l = lock_key(c, "revoked-then-unlocked", 0);

	ck_assert_int_eq(hasp_revoke(admin, hasp_lease_id(l)), 0);
	ck_assert(wait_readable(hasp_client_get_fd(c), 5000)); /* the event is there */
	ck_assert_int_eq(hasp_unlock(c, l), -HASP_E_UNKNOWN_LEASE);
	ck_assert_int_eq(hasp_ping(c), 0);
	hasp_close(admin);
	hasp_close(c);
}
END_TEST

/* An unlock on a connection known to have ended says so, with a reason,
 * as every other call does. */
START_TEST(an_unlock_on_an_ended_connection_says_why)
{
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *l = lock_key(c, "ended-then-unlocked", 0);

	kill(daemon_.pid, SIGKILL);
	wait_child(daemon_.pid, 5000);
	ck_assert_int_eq(hasp_ping(c), -ECONNRESET);
	ck_assert_int_eq(hasp_unlock(c, l), -ECONNRESET);
	ck_assert_msg(strstr(hasp_client_errmsg(c), "connection") != NULL,
		      "no reason given: \"%s\"", hasp_client_errmsg(c));
	hasp_close(c);
	daemon_.pid = daemon_spawn(daemon_.socket, -1); /* for teardown */
	ck_assert(wait_socket(daemon_.socket, DAEMON_START_MS));
}
END_TEST

/* An unlock through another client than the one that took the lease is
 * refused, as haspd refuses it (a session releases only its own leases),
 * not reported done while the lease stays held by its own session. */
START_TEST(an_unlock_through_another_client_is_refused)
{
	hasp_client *a = client_connect(daemon_.socket), *b = client_connect(daemon_.socket);
	hasp_lease *l = lock_key(a, "not-yours", 0);

	ck_assert_int_eq(hasp_unlock(b, l), -HASP_E_UNKNOWN_LEASE);
	hasp_close(b);
	hasp_close(a);
	another_gets("not-yours");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("async");
	TCase *tc = tcase_create("async");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, requests_complete_in_the_daemons_order);
	tcase_add_test(tc, cancel_racing_a_grant_releases_it);
	tcase_add_test(tc, cancel_of_a_waiting_request_moves_the_queue_on);
	tcase_add_test(tc, cancel_from_a_callback);
	tcase_add_test(tc, connection_loss_fails_every_request_once);
	tcase_add_test(tc, a_request_started_on_a_dead_connection);
	tcase_add_test(tc, cancel_on_a_connection_that_just_died);
	tcase_add_test(tc, revoke_and_expiry_reach_the_event_handler);
	tcase_add_test(tc, deadlines_against_a_stopped_daemon);
	tcase_add_test(tc, a_signal_interrupts_an_interruptible_wait);
	tcase_add_test(tc, a_signal_does_not_interrupt_by_default);
	tcase_add_test(tc, a_conflict_names_its_holders);
	tcase_add_test(tc, a_deadlock_names_its_cycle);
	tcase_add_test(tc, hello_names_the_client_and_the_server);
	tcase_add_test(tc, an_interrupted_renew_keeps_the_lease);
	tcase_add_test(tc, a_late_grant_read_in_the_timeout_callback_is_given_back);
	tcase_add_test(tc, close_after_unlock_async_ends_the_checkout);
	tcase_add_test(tc, close_lets_go_of_an_unfinished_unlock);
	tcase_add_test(tc, an_ended_connection_has_no_fd);
	tcase_add_test(tc, a_late_fd_grant_is_unlocked);
	tcase_add_test(tc, a_client_side_timeout_names_no_holders);
	tcase_add_test(tc, unlock_does_not_wait_for_the_daemon);
	tcase_add_test(tc, a_try_after_unlock_is_never_busy);
	tcase_add_test(tc, an_unlock_into_a_full_socket_keeps_the_call_timeout);
	tcase_add_test(tc, an_unlock_after_a_revoke_already_sent_says_so);
	tcase_add_test(tc, an_unlock_on_an_ended_connection_says_why);
	tcase_add_test(tc, an_unlock_through_another_client_is_refused);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
