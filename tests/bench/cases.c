/* hasp's figures: uncontended, hand-off, throughput, scale, fairness. */
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "hasp.h"

static int iterations(const struct bench_opts *o, int full)
{
	return o->quick ? full / 20 : full;
}

static hasp_client *client(const struct bench_opts *o)
{
	hasp_client *c;

	if (hasp_connect(o->socket, &c) < 0) {
		fprintf(stderr, "hasp-bench: cannot connect to %s\n", o->socket);
		exit(1);
	}
	return c;
}

static int p1_take_key(hasp_client *c, hasp_lease **ret)
{
	return hasp_lock(c, "p1", NULL, ret);
}

/* One lease over 8 keys (a multi-key acquire). */
static int p1_take_keys(hasp_client *c, hasp_lease **ret)
{
	static const struct hasp_key keys[] = {
		{ "mk0", HASP_EXCLUSIVE }, { "mk1", HASP_EXCLUSIVE }, { "mk2", HASP_EXCLUSIVE },
		{ "mk3", HASP_EXCLUSIVE }, { "mk4", HASP_SHARED }, { "mk5", HASP_SHARED },
		{ "mk6", HASP_SHARED }, { "mk7", HASP_SHARED },
	};

	return hasp_lock_keys(c, keys, sizeof(keys) / sizeof(keys[0]), NULL, ret);
}

/* Acquires (take) + releases through libhasp, sequential. Returns the median. */
static double p1_loop(const struct bench_opts *o, const char *name, const char *base,
		      double base_us, int (*take)(hasp_client *c, hasp_lease **ret))
{
	hasp_client *c = client(o);
	struct samples s = { 0 };
	double median;
	int n = iterations(o, 20000);

	for (int i = 0; i < n + n / 10; i++) {
		uint64_t t = now_ns();
		hasp_lease *l;

		if (take(c, &l) < 0 || hasp_unlock(c, l) < 0)
			exit(1);
		if (i >= n / 10) /* after a warm-up */
			samples_add(&s, elapsed_us(t));
	}
	hasp_close(c);
	median = samples_pct(&s, 50);
	result_latency(name, &s, base, base_us);
	return median;
}

/* P1: acquire + release of a named key through libhasp, sequential.
 * Returns the median. */
static double p1_named(const struct bench_opts *o, const char *name, const char *base,
		       double base_us)
{
	return p1_loop(o, name, base, base_us, p1_take_key);
}

/* P1 on the raw protocol: an acquire, its answer, a release, its answer:
 * two round trips, as a client that waits for every answer makes them. */
static void p1_raw(const struct bench_opts *o, double rt)
{
	static const char acquire[] = "{\"id\":1,\"op\":\"acquire\",\"key\":\"p1raw\"}\n";
	struct samples s = { 0 };
	struct conn c;
	char release[96];
	int n = iterations(o, 20000);

	if (conn_open(&c, o->socket) < 0)
		exit(1);
	for (int i = 0; i < n + n / 10; i++) {
		uint64_t t = now_ns();
		const char *lease;
		char *l;
		int len;

		conn_send(&c, acquire, sizeof(acquire) - 1);
		l = conn_line(&c);
		lease = l ? strstr(l, "\"lease\":") : NULL;
		if (!lease)
			exit(1);
		len = snprintf(release, sizeof(release), "{\"id\":2,\"op\":\"release\",\"lease\":%lld}\n",
			       strtoll(lease + 8, NULL, 10));
		conn_send(&c, release, (size_t)len);
		if (!conn_line(&c))
			exit(1);
		if (i >= n / 10)
			samples_add(&s, elapsed_us(t));
	}
	close(c.fd);
	result_latency("P1 raw protocol, answer awaited", &s, "2 x (a)", 2 * rt);
}

static double p1_median;

/* An upgrade of a shared lease with no other holder (one round trip,
 * granted at once, a new fence), as a ratio to P1; each is undone by an
 * untimed downgrade. */
static void p1_upgrade(const struct bench_opts *o)
{
	struct hasp_lock_options opts = HASP_LOCK_OPTIONS_INIT;
	hasp_client *c = client(o);
	struct samples s = { 0 };
	int n = iterations(o, 20000);
	struct result *r;
	double median;
	hasp_lease *l;

	opts.mode = HASP_SHARED;
	if (hasp_lock(c, "p1upgrade", &opts, &l) < 0)
		exit(1);
	for (int i = 0; i < n + n / 10; i++) {
		uint64_t t = now_ns();

		if (hasp_convert(c, l, HASP_EXCLUSIVE, 0) < 0)
			exit(1);
		if (i >= n / 10)
			samples_add(&s, elapsed_us(t));
		if (hasp_convert(c, l, HASP_SHARED, 0) < 0)
			exit(1);
	}
	hasp_unlock(c, l);
	hasp_close(c);
	median = samples_pct(&s, 50);
	result_latency("P1 upgrade, no other holder", &s, NULL, 0);
	r = result_add("P1 upgrade, against P1");
	r->ratio = median / (p1_median > 0 ? p1_median : 1);
	snprintf(r->baseline, sizeof(r->baseline), "P1");
	snprintf(r->note, sizeof(r->note), "upgrade median / named P1 median");
}

void bench_uncontended(const struct bench_opts *o, double rt, double flk)
{
	hasp_client *c = client(o);
	struct samples s = { 0 };
	char path[512];
	int n = iterations(o, 10000);
	struct result *r;

	p1_median = p1_named(o, "P1 named acquire+release", "(a)", rt);
	p1_raw(o, rt);
	p1_upgrade(o);
	p1_loop(o, "P1 multi-key acquire of 8 keys", "P1 named", p1_median, p1_take_keys);
	snprintf(path, sizeof(path), "%s/p1.lock", o->dir);
	for (int i = 0; i < n + n / 10; i++) {
		uint64_t t = now_ns();
		hasp_lease *l;

		if (hasp_lock_file(c, path, NULL, &l) < 0 || hasp_unlock(c, l) < 0)
			exit(1);
		if (i >= n / 10)
			samples_add(&s, elapsed_us(t));
	}
	hasp_close(c);
	result_latency("P1 file acquire+release", &s, "2 x (a)", 2 * rt); /* awaited */
	r = result_add("P1 file, against flock(2)");
	r->ratio = (p1_median > 0 ? p1_median : 1) / flk;
	snprintf(r->baseline, sizeof(r->baseline), "(b)");
	snprintf(r->note, sizeof(r->note), "named P1 median / flock pair: the price of a daemon");
}

/* ---- P2: hand-off ---- */

struct waiter {
	const struct bench_opts *o;
	const char *mode;
	const char *limit;          /* the acquire's "limit" member, or "" */
	int go, queued, done;       /* pipes: parent -> waiter, waiter -> parent */
	volatile uint64_t *granted; /* per waiter */
	int n;
};

/* A raw client: queue an acquire, confirm it is queued (a ping answered
 * after it), say so, then take the grant's time. */
static void waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct conn c;
	char line[160], b;
	int len;

	if (conn_open(&c, w->o->socket) < 0)
		exit(1);
	for (int i = 0; i < w->n; i++) {
		char *l;

		if (read(w->go, &b, 1) != 1)
			exit(1);
		len = snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"key\":\"p2\",\"mode\":\"%s\"%s}\n"
			       "{\"id\":2,\"op\":\"ping\"}\n", w->mode, w->limit);
		conn_send(&c, line, (size_t)len);
		l = conn_line(&c);
		if (!l || !strstr(l, "\"id\":2"))
			exit(2);
		if (write(w->queued, "q", 1) != 1)
			exit(1);
		l = conn_line(&c);
		*w->granted = now_ns();
		if (!l || !strstr(l, "\"lease\":"))
			exit(3);
		len = snprintf(line, sizeof(line), "{\"id\":3,\"op\":\"release\",\"lease\":%s\n",
			       strstr(l, "\"lease\":") + 8);
		/* the grant's lease field ends with ',': cut the rest */
		*strchr(line + strlen("{\"id\":3,\"op\":\"release\",\"lease\":"), ',') = '\0';
		strcat(line, "}\n");
		conn_send(&c, line, strlen(line));
		if (!conn_line(&c) || write(w->done, "d", 1) != 1)
			exit(1);
	}
	close(c.fd);
}

/* A hand-off: the holder (this process, libhasp) releases; nwaiters wait
 * in waiter_mode. With a limit, the key is a semaphore whose other places
 * another client of this process holds throughout, so that the holder's
 * release is what frees a place. */
struct handoff_case {
	const char *name;
	enum hasp_mode holder_mode;
	const char *waiter_mode;
	int nwaiters;
	uint32_t limit;             /* 0: an ordinary key */
};

/* The other places of a semaphore, taken by a client of their own; NULL
 * for an ordinary key. */
static hasp_client *handoff_fill(const struct bench_opts *o, const struct handoff_case *k)
{
	struct hasp_acquire_options opts = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_client *c = k->limit ? client(o) : NULL;
	hasp_lease *l;

	opts.limit = k->limit;
	for (uint32_t i = 1; c && i < k->limit; i++) {
		if (hasp_acquire(c, "p2", &opts, &l) < 0)
			exit(1);
		hasp_lease_free(l); /* held until c is closed */
	}
	return c;
}

/* Measures k; returns its median (µs), reported against base. */
static double handoff(const struct bench_opts *o, const struct handoff_case *k, const char *base,
		      double base_us)
{
	int n = iterations(o, 2000), go[2], queued[2], done[2];
	volatile uint64_t *granted = shared_page();
	struct samples s = { 0 };
	struct hasp_acquire_options opts = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_client *c = client(o), *others = handoff_fill(o, k);
	char limit[32] = "";
	pid_t pids[16];
	double median;
	char b;

	if (pipe(go) < 0 || pipe(queued) < 0 || pipe(done) < 0)
		exit(1);
	opts.mode = k->holder_mode;
	opts.limit = k->limit;
	if (k->limit)
		snprintf(limit, sizeof(limit), ",\"limit\":%u", (unsigned)k->limit);
	for (int w = 0; w < k->nwaiters; w++) {
		struct waiter wa = { o, k->waiter_mode, limit, go[0], queued[1], done[1], &granted[w], n };

		run_in_child(waiter_main, &wa, &pids[w]);
	}
	for (int i = 0; i < n; i++) {
		hasp_lease *l;
		uint64_t t0, last = 0;

		if (hasp_acquire(c, "p2", &opts, &l) < 0)
			exit(1);
		for (int w = 0; w < k->nwaiters; w++)
			if (write(go[1], "g", 1) != 1)
				exit(1);
		for (int w = 0; w < k->nwaiters; w++)
			if (read(queued[0], &b, 1) != 1)
				exit(1);
		t0 = now_ns();
		if (hasp_unlock(c, l) < 0)
			exit(1);
		for (int w = 0; w < k->nwaiters; w++)
			if (read(done[0], &b, 1) != 1)
				exit(1);
		for (int w = 0; w < k->nwaiters; w++)
			if (granted[w] > last)
				last = granted[w];
		samples_add(&s, (double)(last - t0) / 1000.0);
	}
	wait_all(pids, (size_t)k->nwaiters);
	hasp_close(c);
	if (others)
		hasp_close(others);
	median = samples_pct(&s, 50);
	result_latency(k->name, &s, base, base_us);
	return median;
}

void bench_handoff(const struct bench_opts *o, double rt)
{
	static const struct handoff_case cases[] = {
		{ "P2 hand-off exclusive->exclusive", HASP_EXCLUSIVE, "exclusive", 1, 0 },
		{ "P2 hand-off shared->exclusive", HASP_SHARED, "exclusive", 1, 0 },
		{ "P2 hand-off exclusive->4 readers", HASP_EXCLUSIVE, "shared", 4, 0 },
		/* limit 2, both places held, one waiter: one holder releases */
		{ "P2 hand-off semaphore (limit 2)", HASP_EXCLUSIVE, "exclusive", 1, 2 },
	};
	double exclusive = handoff(o, &cases[0], "(a)", rt);

	handoff(o, &cases[1], "(a)", rt);
	handoff(o, &cases[2], "(a)", rt);
	handoff(o, &cases[3], "P2 excl->excl", exclusive);
}

/* ---- P4 through libhasp's non-blocking core ---- */

/* What a batch of async acquires and releases has come to. */
struct batch {
	hasp_lease **leases;
	int granted, released, failed;
};

static void batch_granted(hasp_client *c, hasp_request *req, int r, hasp_lease *l, void *u)
{
	struct batch *b = u;

	(void)c, (void)req;
	if (r < 0)
		b->failed++;
	else
		b->leases[b->granted++] = l;
}

static void batch_released(hasp_client *c, int r, void *u)
{
	struct batch *b = u;

	(void)c;
	if (r < 0)
		b->failed++;
	b->released++;
}

/* Runs c until *count reaches want (or a request failed). */
static void run_until(hasp_client *c, const int *count, int want, const struct batch *b)
{
	while (*count < want && !b->failed) {
		struct pollfd p = { hasp_client_get_fd(c), (short)hasp_client_get_events(c), 0 };

		if (poll(&p, 1, hasp_client_get_timeout(c)) < 0 || hasp_client_process(c) < 0)
			exit(1);
	}
	if (b->failed)
		exit(1);
}

/* load_pipelined()'s batches, through libhasp: batch acquires in flight,
 * then batch releases. Pairs per second. */
static double libhasp_pipelined(const struct bench_opts *o, int batch, double seconds)
{
	struct hasp_acquire_options opts = HASP_ACQUIRE_OPTIONS_INIT;
	hasp_client *c = client(o);
	struct batch b = { calloc((size_t)batch, sizeof(hasp_lease *)), 0, 0, 0 };
	uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9), pairs = 0;
	char key[32];

	opts.timeout_ms = 0;
	while (now_ns() < end) {
		b.granted = b.released = 0;
		for (int i = 0; i < batch; i++) {
			snprintf(key, sizeof(key), "L-%d", i);
			if (hasp_lock_async(c, key, &opts, batch_granted, &b, NULL) < 0)
				exit(1);
		}
		run_until(c, &b.granted, batch, &b);
		for (int i = 0; i < batch; i++)
			if (hasp_unlock_async(c, b.leases[i], batch_released, &b) < 0)
				exit(1);
		run_until(c, &b.released, batch, &b);
		pairs += (uint64_t)batch;
	}
	hasp_close(c);
	free(b.leases);
	return (double)pairs / ((double)(now_ns() - start) / 1e9);
}

/* ---- P4: throughput ---- */

/* The bare libevent echo server, listening and in its loop. */
static pid_t echo_start(const struct bench_opts *o, char *path, size_t size)
{
	pid_t pid = base_echo_start(o, path, size);

	usleep(100000); /* the echo server's listen() is done; its loop starts */
	return pid;
}

static void echo_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

void bench_throughput(const struct bench_opts *o)
{
	static const int clients[] = { 1, 8, 64, 512 };
	double seconds = o->quick ? 0.2 : 2.0;
	char echo[256], name[64];
	pid_t echo_pid = echo_start(o, echo, sizeof(echo));
	struct result *r;

	for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
		double base, hasp;

		if (o->quick && clients[i] > 64)
			break;
		base = load_pairs(echo, clients[i], seconds);
		hasp = load_pairs(o->socket, clients[i], seconds);
		snprintf(name, sizeof(name), "(d) echo server, %d clients", clients[i]);
		r = result_add(name);
		r->ops = base;
		snprintf(name, sizeof(name), "P4 throughput, %d clients", clients[i]);
		r = result_add(name);
		r->ops = hasp;
		r->ratio = hasp / base;
		snprintf(r->baseline, sizeof(r->baseline), "(d) %d clients", clients[i]);
		snprintf(r->note, sizeof(r->note), "acquire+release pairs/s, distinct keys");
	}
	echo_stop(echo_pid);
}

void bench_pipelined(const struct bench_opts *o)
{
	double seconds = o->quick ? 0.2 : 2.0;
	char echo[256];
	pid_t echo_pid = echo_start(o, echo, sizeof(echo));
	struct result *r;

	{
		double base = load_pipelined(echo, 64, seconds), hasp = load_pipelined(o->socket, 64, seconds);
		double lib = libhasp_pipelined(o, 64, seconds);

		r = result_add("(d) echo server, pipelined x64");
		r->ops = base;
		r = result_add("P4 pipelined batches of 64");
		r->ops = hasp;
		r->ratio = hasp / base;
		snprintf(r->baseline, sizeof(r->baseline), "(d) pipelined");
		snprintf(r->note, sizeof(r->note), "pairs/s on one connection");
		r = result_add("P4 libhasp async, 64 in flight");
		r->ops = lib;
		r->ratio = lib / hasp;
		snprintf(r->baseline, sizeof(r->baseline), "P4 pipelined x64");
		snprintf(r->note, sizeof(r->note), "hasp_lock_async + hasp_unlock_async pairs/s");
	}
	echo_stop(echo_pid);
}

/* ---- P5: scale ---- */

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Leases held by a few pipelining connections, kept open, a batch each in
 * turn; held[j] is a key number that c[j] holds (-1: none yet). */
static void hold_leases(const struct bench_opts *o, struct conn *c, int nconn, int from, int to,
			int *held)
{
	enum { BATCH = 1000 };
	char *buf = malloc(BATCH * 80);

	for (int k = from; k < to;) {
		int end = k + BATCH < to ? k + BATCH : to, j = k / BATCH % nconn;
		struct conn *cc = &c[j];
		char *p = buf;

		if (held[j] < 0)
			held[j] = k;
		for (int i = k; i < end; i++)
			p += sprintf(p, "{\"id\":%d,\"op\":\"acquire\",\"key\":\"held-%d\",\"timeout_ms\":0}\n",
				     i, i);
		conn_send(cc, buf, (size_t)(p - buf));
		for (int i = k; i < end; i++)
			if (!conn_line(cc))
				exit(1);
		k = end;
	}
	free(buf);
	(void)o;
}

void bench_scale(const struct bench_opts *o)
{
	static const int held[] = { 10000, 100000, 1000000 };
	struct conn *c = calloc(4, sizeof(*c));
	long rss0 = o->daemon_pid ? rss_kib(o->daemon_pid) : -1;
	int have = 0, by[4] = { -1, -1, -1, -1 };
	double base = p1_median;

	for (int i = 0; i < 4; i++)
		if (conn_open(&c[i], o->socket) < 0)
			exit(1);
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
		char name[64];

		if (o->quick && held[i] > 10000)
			break;
		hold_leases(o, c, 4, have, held[i], by);
		have = held[i];
		snprintf(name, sizeof(name), "P5 P1 with %d leases held", have);
		p1_named(o, name, "P1 named", base);
	}
	if (rss0 > 0) {
		struct result *r = result_add("P5 daemon memory per held lease");

		r->value = (double)(rss_kib(o->daemon_pid) - rss0) * 1024.0 / have;
		r->unit = "bytes";
		snprintf(r->note, sizeof(r->note), "RSS growth over %d leases", have);
	}
	for (int i = 0; i < 4; i++)
		close(c[i].fd);
	free(c);
	/* Ending those sessions releases every lease before anything else is
	 * served: wait for it, so the next measurement does not include it. A
	 * reply on another connection would not tell (haspd serves sockets in
	 * no set order); a key each of them held, granted, does. */
	{
		struct hasp_lock_options wait = HASP_LOCK_OPTIONS_INIT;
		uint64_t t = now_ns();
		hasp_client *w = client(o);
		struct result *r;

		wait.timeout_ms = 60000;
		for (int i = 0; i < 4; i++) {
			char key[32];
			hasp_lease *l;

			if (by[i] < 0)
				continue;
			snprintf(key, sizeof(key), "held-%d", by[i]);
			if (hasp_lock(w, key, &wait, &l) < 0) {
				fprintf(stderr, "hasp-bench: %s: %s\n", key, hasp_client_errmsg(w));
				exit(1);
			}
			hasp_lease_free(l);
		}
		hasp_close(w);
		r = result_add("P5 release of every held lease");
		r->value = elapsed_us(t) / 1000.0;
		r->unit = "ms";
		snprintf(r->note, sizeof(r->note), "%d leases, by ending their sessions", have);
	}
}

/* Many sessions connected at once, each answered. */
void bench_sessions(const struct bench_opts *o)
{
	int n = o->quick ? 1000 : 10000, served = 0;
	struct conn *c = calloc((size_t)n, sizeof(*c));
	uint64_t t = now_ns();
	struct result *r;
	char name[64];

	for (int i = 0; i < n; i++)
		if (conn_open(&c[i], o->socket) < 0)
			break;
		else
			conn_send(&c[i], "{\"id\":1,\"op\":\"ping\"}\n", 21);
	for (int i = 0; i < n; i++) {
		char *l = c[i].fd > 0 ? conn_line(&c[i]) : NULL;

		served += l && strstr(l, "\"ok\":true") != NULL;
	}
	snprintf(name, sizeof(name), "P5 %d sessions at once", n);
	r = result_add(name);
	r->value = served;
	r->unit = "served";
	snprintf(r->note, sizeof(r->note), "all connected and pinged in %.0f ms",
		 elapsed_us(t) / 1000.0);
	for (int i = 0; i < n; i++)
		if (c[i].fd > 0)
			close(c[i].fd);
	free(c);
}

/* ---- fairness ---- */

struct hammer {
	const struct bench_opts *o;
	enum hasp_mode mode;
	uint64_t until_ns, hold_ns;
	int fd;                     /* samples out */
};

static void hammer_main(void *arg)
{
	struct hammer *h = arg;
	struct hasp_lock_options opts = HASP_LOCK_OPTIONS_INIT;
	hasp_client *c = client(h->o);

	opts.mode = h->mode;
	while (now_ns() < h->until_ns) {
		uint64_t t = now_ns(), granted;
		hasp_lease *l;
		float w[2];             /* the wait, then the hold, µs */

		if (hasp_lock(c, "fair", &opts, &l) < 0)
			exit(1);
		granted = now_ns();
		w[0] = (float)((double)(granted - t) / 1000.0);
		/* Hold by sleeping: 20 busy holders on 2 cores would measure the
		 * scheduler, not the queue. */
		nanosleep(&(struct timespec){ 0, (long)h->hold_ns }, NULL);
		if (hasp_unlock(c, l) < 0)
			exit(1);
		w[1] = (float)elapsed_us(granted);
		if (write(h->fd, w, sizeof(w)) != sizeof(w))
			exit(1);
	}
	hasp_close(c);
}

void bench_fairness(const struct bench_opts *o)
{
	int readers = o->quick ? 4 : 16, writers = o->quick ? 1 : 4, p[2][2];
	double seconds = o->quick ? 0.3 : 3.0, hold_us = 50;
	struct samples s[2] = { { 0 }, { 0 } };
	double max_hold = 0;
	pid_t pids[32];
	struct result *r;
	float w[2];

	if (pipe(p[0]) < 0 || pipe(p[1]) < 0)
		exit(1);
	for (int i = 0; i < readers + writers; i++) {
		bool writer = i >= readers;
		struct hammer h = { o, writer ? HASP_EXCLUSIVE : HASP_SHARED,
				    now_ns() + (uint64_t)(seconds * 1e9), (uint64_t)(hold_us * 1000),
				    p[writer][1] };

		run_in_child(hammer_main, &h, &pids[i]);
	}
	close(p[0][1]);
	close(p[1][1]);
	for (int k = 0; k < 2; k++)
		while (read(p[k][0], w, sizeof(w)) == sizeof(w)) {
			samples_add(&s[k], w[0]);
			if (w[1] > max_hold)
				max_hold = w[1];
		}
	wait_all(pids, (size_t)(readers + writers));
	for (int k = 0; k < 2; k++) {
		/* FIFO: at most everyone else is ahead, each holding at most the
		 * longest hold seen (release round trip included). */
		double bound = (readers + writers - 1) * max_hold;

		r = result_add(k ? "fairness: writer wait" : "fairness: reader wait");
		r->p99_us = samples_pct(&s[k], 99);
		r->median_us = samples_pct(&s[k], 50);
		r->value = s[k].n ? s[k].v[s[k].n - 1] : 0;
		snprintf(r->note, sizeof(r->note), "max %.0f µs over %zu waits; %d longest holds: %.0f µs%s",
			 r->value, s[k].n, readers + writers - 1, bound,
			 k && r->value > bound ? " EXCEEDED" : "");
		samples_free(&s[k]);
	}
}
