/* The cost of deadlock detection, over the raw protocol so that only
 * haspd's work differs: a wait on a key with CHAIN waiters ahead (the
 * search follows each of them) against the same wait with none, and how
 * soon a deadlock is refused, in cycles of two and of CHAIN sessions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define CHAIN 100

static int iterations(const struct bench_opts *o, int full)
{
	return o->quick ? full / 20 : full;
}

static void conn_must_open(struct conn *c, const char *socket)
{
	if (conn_open(c, socket) < 0)
		exit(1);
}

/* Sends line (may be "") on c and reads up to the reply that holds want. */
static void ask(struct conn *c, const char *line, const char *want)
{
	const char *l;

	conn_send(c, line, strlen(line));
	do {
		l = conn_line(c);
		if (!l) {
			fprintf(stderr, "hasp-bench: haspd hung up\n");
			exit(1);
		}
	} while (!strstr(l, want));
}

static void take(struct conn *c, const char *key)
{
	char line[128];

	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"key\":\"%s\"}\n", key);
	ask(c, line, "\"id\":1,");
}

/* An acquire of key on c that waits: queued once a ping after it is answered. */
static void queue(struct conn *c, const char *key)
{
	char line[160];

	snprintf(line, sizeof(line),
		 "{\"id\":2,\"op\":\"acquire\",\"key\":\"%s\"}\n{\"id\":3,\"op\":\"ping\"}\n", key);
	ask(c, line, "\"id\":3,");
}

/* key held by one session, with waiters sessions queued on it: n + 1
 * connections in c, closed by drop(). */
static void crowd(struct conn *c, int waiters, const char *socket, const char *key)
{
	for (int i = 0; i <= waiters; i++) {
		conn_must_open(&c[i], socket);
		if (i == 0)
			take(&c[i], key);
		else
			queue(&c[i], key);
	}
}

static void drop(struct conn *c, int n)
{
	for (int i = 0; i < n; i++)
		close(c[i].fd);
}

/* An acquire of key that waits (and so searches), then its cancel: the
 * median of the pair, both answers read. */
static double wait_and_cancel(const struct bench_opts *o, const char *name, const char *key,
			      const char *base, double base_us)
{
	static const char pair[] = "{\"id\":4,\"op\":\"acquire\",\"key\":\"%s\"}\n"
				   "{\"id\":5,\"op\":\"cancel\",\"request\":4}\n";
	struct samples s = { 0 };
	struct conn c;
	char line[192];
	int n = iterations(o, 20000);

	conn_must_open(&c, o->socket);
	snprintf(line, sizeof(line), pair, key);
	for (int i = 0; i < n + n / 10; i++) {
		uint64_t t = now_ns();

		ask(&c, line, "\"id\":4,");
		ask(&c, "", "\"id\":5,");
		if (i >= n / 10)
			samples_add(&s, elapsed_us(t));
	}
	close(c.fd);
	return result_latency(name, &s, base, base_us)->median_us;
}

/* Asks on c, over and over, for key, which closes a cycle: the latency of
 * the refusal. */
static void refusals(const struct bench_opts *o, struct conn *c, const char *key,
		     const char *name, double rt)
{
	struct samples s = { 0 };
	char line[128];
	int n = iterations(o, 20000);

	snprintf(line, sizeof(line), "{\"id\":6,\"op\":\"acquire\",\"key\":\"%s\"}\n", key);
	for (int i = 0; i < n + n / 10; i++) {
		uint64_t t = now_ns();

		ask(c, line, "\"code\":\"deadlock\"");
		if (i >= n / 10)
			samples_add(&s, elapsed_us(t));
	}
	result_latency(name, &s, "(a)", rt);
}

/* A ring of n sessions: session i holds ring-i and waits for ring-(i+1),
 * the last holds ring-(n-1); its request for ring-0 closes the cycle. */
static void ring(const struct bench_opts *o, int n, const char *name, double rt)
{
	struct conn *c = calloc((size_t)n, sizeof(*c));
	char key[32];

	if (!c)
		exit(1);
	for (int i = 0; i < n; i++) {
		conn_must_open(&c[i], o->socket);
		snprintf(key, sizeof(key), "ring-%d", i);
		take(&c[i], key);
	}
	for (int i = 0; i + 1 < n; i++) {
		snprintf(key, sizeof(key), "ring-%d", i + 1);
		queue(&c[i], key);
	}
	refusals(o, &c[n - 1], "ring-0", name, rt);
	drop(c, n);
	free(c);
}

void bench_deadlock(const struct bench_opts *o, double rt)
{
	struct conn *c = calloc(CHAIN + 1, sizeof(*c));
	double none;

	if (!c)
		exit(1);
	crowd(c, 0, o->socket, "dl-0");
	none = wait_and_cancel(o, "D1 wait+cancel, key held, none ahead", "dl-0", "(a)", rt);
	drop(c, 1);
	crowd(c, CHAIN, o->socket, "dl-100");
	wait_and_cancel(o, "D1 wait+cancel, 100 waiters ahead", "dl-100", "D1 none ahead", none);
	drop(c, CHAIN + 1);
	free(c);
	ring(o, 2, "D2 deadlock refused, 2 sessions", rt);
	ring(o, CHAIN, "D2 deadlock refused, 100 sessions", rt);
}
