/* The measurements every peer shares: hasp-bench's P1 and P2, for a lock
 * of another server (peer.h). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "peer.h"

#define WAIT_NS 10000000000ull /* for a waiter to be seen waiting */

static void *connect_or_exit(const struct peer *p, const char *target)
{
	void *conn = p->connect(target);

	if (!conn)
		exit(1);
	return conn;
}

static void print_result(const char *what, struct samples *s)
{
	size_t n = s->n;
	double median = samples_pct(s, 50), p99 = samples_pct(s, 99);

	printf("result %s %.1f %.1f %zu\n", what, median, p99, n);
	fflush(stdout);
	samples_free(s);
}

/* P1: lock + unlock, uncontended, after a tenth as many to warm up. */
static void pairs(const struct peer *p, const char *target, int n)
{
	void *conn = connect_or_exit(p, target);
	struct samples s = { 0 };

	for (int i = 0; i < n + n / 10; i++) {
		uint64_t t = now_ns();

		if (p->lock(conn, "p1") < 0 || p->unlock(conn, "p1") < 0)
			exit(1);
		if (i >= n / 10)
			samples_add(&s, elapsed_us(t));
	}
	p->disconnect(conn);
	print_result("pair", &s);
}

struct waiter {
	const struct peer *p;
	const char *target;
	int *go, *done, n;          /* pipes: holder -> waiter, waiter -> holder */
	volatile uint64_t *granted; /* t1 */
};

/* Told to go, waits in lock, takes the time it returns, gives the key back. */
static void waiter_main(void *arg)
{
	struct waiter *w = arg;
	void *conn;
	char b;

	close(w->go[1]); /* so that a holder gone is EOF */
	close(w->done[0]);
	conn = connect_or_exit(w->p, w->target);
	for (int i = 0; i < w->n; i++) {
		if (read(w->go[0], &b, 1) != 1 || w->p->lock(conn, "p2") < 0)
			exit(1);
		*w->granted = now_ns();
		if (w->p->unlock(conn, "p2") < 0 || write(w->done[1], "d", 1) != 1)
			exit(1);
	}
	w->p->disconnect(conn);
}

/* Until the server shows the waiter waiting (a bounded poll: the server
 * gives no other signal). */
static void await_waiter(const struct peer *p, void *conn)
{
	uint64_t deadline = now_ns() + WAIT_NS;
	int r;

	while ((r = p->waiting(conn, "p2")) == 0 && now_ns() < deadline)
		;
	if (r <= 0) {
		if (r == 0)
			fprintf(stderr, "%s-peer: the waiter was not seen waiting in 10 s\n", p->name);
		exit(1);
	}
}

/* P2: the holder unlocks at t0, the waiter's lock returns at t1; settle_ms
 * after the waiter is seen waiting. */
static void handoff(const struct peer *p, const char *target, int n, int settle_ms)
{
	int go[2], done[2];
	volatile uint64_t *granted = shared_page();
	struct samples s = { 0 };
	void *conn;
	pid_t pid;
	char b;

	if (pipe(go) < 0 || pipe(done) < 0) {
		perror("pipe");
		exit(1);
	}
	run_in_child(waiter_main, &(struct waiter){ p, target, go, done, n, granted }, &pid);
	close(go[0]);
	close(done[1]);
	conn = connect_or_exit(p, target);
	for (int i = 0; i < n; i++) {
		uint64_t t0;

		if (p->lock(conn, "p2") < 0 || write(go[1], "g", 1) != 1)
			exit(1);
		await_waiter(p, conn);
		if (settle_ms > 0) /* part of the scenario, not a wait for readiness */
			usleep((useconds_t)settle_ms * 1000);
		t0 = now_ns();
		if (p->unlock(conn, "p2") < 0 || read(done[0], &b, 1) != 1)
			exit(1);
		samples_add(&s, (double)(*granted - t0) / 1000.0);
	}
	p->disconnect(conn);
	wait_all(&pid, 1);
	print_result("handoff", &s);
}

int peer_main(const struct peer *p, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pairs", required_argument, NULL, 'p' },
		{ "handoffs", required_argument, NULL, 'o' },
		{ "settle-ms", required_argument, NULL, 's' },
		{ "probe", no_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	int c, npairs = 5000, nhandoffs = 500, settle_ms = 0;
	bool probe = false;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': npairs = atoi(optarg); break;
		case 'o': nhandoffs = atoi(optarg); break;
		case 's': settle_ms = atoi(optarg); break;
		case 'P': probe = true; break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || npairs < 0 || nhandoffs < 0 || settle_ms < 0)
		goto usage;
	signal(SIGPIPE, SIG_IGN);
	if (probe) {
		void *conn = p->connect(argv[optind]);
		int r = conn && p->lock(conn, "probe") == 0 && p->unlock(conn, "probe") == 0;

		if (conn)
			p->disconnect(conn);
		return r ? 0 : 1;
	}
	if (npairs > 0)
		pairs(p, argv[optind], npairs);
	if (nhandoffs > 0 && p->waiting)
		handoff(p, argv[optind], nhandoffs, settle_ms);
	return 0;
usage:
	fprintf(stderr, "Usage: %s-peer [--pairs N] [--handoffs N] [--settle-ms N] TARGET\n"
		"       %s-peer --probe TARGET\n", p->name, p->name);
	return 64;
}
