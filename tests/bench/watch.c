/* What watching costs the locks (issue 18), over the raw protocol: an
 * acquire+release pair on one connection with no watcher, with a watcher
 * that never reads (stalled: every event for it dropped and counted), and
 * with one that reads every event in another process. Rounds alternate,
 * each with a fresh watcher, so that drift of the machine falls on both
 * sides alike. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define ROUNDS 3

static const char pair_line[] = "{\"id\":1,\"op\":\"acquire\",\"key\":\"watched\"}\n"
				"{\"id\":2,\"op\":\"release\",\"key\":\"watched\"}\n";

static void conn_must_open(struct conn *c, const char *socket)
{
	if (conn_open(c, socket) < 0)
		exit(1);
}

/* One pair, both answers read: its µs. */
static double pair(struct conn *c)
{
	uint64_t t = now_ns();
	const char *l;

	conn_send(c, pair_line, sizeof(pair_line) - 1);
	do {
		l = conn_line(c);
		if (!l) {
			fprintf(stderr, "hasp-bench: haspd hung up\n");
			exit(1);
		}
	} while (!strstr(l, "\"id\":2,"));
	return elapsed_us(t);
}

static void pairs(struct conn *c, int n, struct samples *s)
{
	for (int i = 0; i < n; i++) {
		double us = pair(c);

		if (s)
			samples_add(s, us);
	}
}

/* A watcher of every name, answered, with the smallest receive buffer. */
static void watch_open(struct conn *w, const char *socket)
{
	static const char line[] = "{\"id\":1,\"op\":\"watch\"}\n";
	int small = 1;

	conn_must_open(w, socket);
	setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	conn_send(w, line, sizeof(line) - 1);
	if (!conn_line(w))
		exit(1);
}

struct reader {
	const char *socket;
	int ready[2];           /* a byte once it watches */
};

/* The child: reads every event until haspd or the parent ends it. */
static void reader(void *arg)
{
	struct reader *rd = arg;
	struct conn w;

	watch_open(&w, rd->socket);
	if (write(rd->ready[1], "", 1) != 1)
		exit(1);
	while (conn_line(&w))
		;
}

/* A reading watcher in another process, watching when this returns. */
static pid_t reader_start(const char *socket)
{
	struct reader rd = { .socket = socket };
	pid_t pid;
	char byte;

	if (pipe(rd.ready) < 0)
		exit(1);
	run_in_child(reader, &rd, &pid);
	close(rd.ready[1]);
	if (read(rd.ready[0], &byte, 1) != 1)
		exit(1);
	close(rd.ready[0]);
	return pid;
}

void bench_watch(const struct bench_opts *o)
{
	struct samples none = { 0 }, stalled = { 0 }, reading = { 0 };
	int n = o->quick ? 500 : 10000;
	struct conn c, w;
	pid_t pid;
	double base;

	conn_must_open(&c, o->socket);
	pairs(&c, n / 10, NULL);
	for (int r = 0; r < ROUNDS; r++) {
		pairs(&c, n, &none);
		watch_open(&w, o->socket);
		/* Past its buffers and the 256 KiB haspd keeps: dropping. */
		pairs(&c, 3000, NULL);
		pairs(&c, n, &stalled);
		close(w.fd);
		pid = reader_start(o->socket);
		pairs(&c, n, &reading);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	close(c.fd);
	base = result_latency("W1 lock pair, no watcher", &none, NULL, 0)->median_us;
	result_latency("W1 lock pair, a stalled watcher", &stalled, "W1 no watcher", base);
	result_latency("W1 lock pair, a reading watcher", &reading, "W1 no watcher", base);
}
