/* Cluster mode (issue 19): the hand-off of a cluster key between a client
 * of one haspd and a client of another, both haspd in cluster mode on one
 * etcd, against etcd's own lock recipe (/v3/lock/lock and /v3/lock/unlock
 * through the same JSON gateway) measured in the same run on the same etcd.
 * Each is measured with a new waiter (the holder unlocks as soon as it sees
 * the other side waiting) and with one that has waited 150 ms: etcd's lock
 * watches its predecessor from the revision it last read, which etcd
 * serves on a 100 ms loop, so how long a waiter has waited matters there.
 * A bare gateway round trip, measured first, gives the unit; what a
 * delete and its watch event take through the gateway, measured last,
 * are parts of hasp's hand-off (gateway.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "etcd.h"
#include "hasp.h"
#include "pingpong.h"

#define KEY "cluster/bench"
#define SETTLE_MS 150

/* ---- a client of one haspd as a struct peer ---- */

struct hasp_side {
	hasp_client *c;
	hasp_lease *held;
};

static void *hasp_side_connect(const char *socket)
{
	struct hasp_side *h = calloc(1, sizeof(*h));

	if (h && hasp_connect(socket, &h->c) == 0)
		return h;
	fprintf(stderr, "hasp-bench: cannot connect to %s\n", socket);
	free(h);
	return NULL;
}

static void hasp_side_disconnect(void *conn)
{
	struct hasp_side *h = conn;

	hasp_close(h->c);
	free(h);
}

static int hasp_side_lock(void *conn, const char *key)
{
	struct hasp_side *h = conn;
	int r = hasp_lock(h->c, key, NULL, &h->held);

	if (r < 0)
		fprintf(stderr, "hasp-bench: lock %s: %s\n", key, hasp_strerror(r));
	return r < 0 ? -1 : 0;
}

static int hasp_side_unlock(void *conn, const char *key)
{
	struct hasp_side *h = conn;
	int r = hasp_unlock(h->c, h->held);

	h->held = NULL;
	if (r < 0)
		fprintf(stderr, "hasp-bench: unlock %s: %s\n", key, hasp_strerror(r));
	return r < 0 ? -1 : 0;
}

/* Whether haspd lists a waiter for key (on any host). */
static int hasp_side_waiting(void *conn, const char *key)
{
	struct hasp_list_options opts = HASP_LIST_OPTIONS_INIT;
	struct hasp_side *h = conn;
	char *json, *next = NULL;
	int r;

	opts.prefix = key;
	opts.limit = 1;
	r = hasp_list_page_json(h->c, &opts, &json, &next);
	if (r < 0) {
		fprintf(stderr, "hasp-bench: list %s: %s\n", key, hasp_strerror(r));
		return -1;
	}
	r = strstr(json, "\"waiters\":[{") != NULL;
	free(json);
	free(next);
	return r;
}

static const struct peer hasp_side = {
	"hasp cluster", hasp_side_connect, hasp_side_disconnect, hasp_side_lock,
	hasp_side_unlock, hasp_side_waiting,
};

/* ---- the servers ---- */

struct cluster {
	pid_t etcd, haspd[2];
	char endpoint[64];      /* etcd's, HOST:PORT */
	char socket[2][300];
};

/* haspd "host" i (hA, hB) in cluster mode on the cluster's etcd. */
static pid_t cluster_haspd(const struct bench_opts *o, struct cluster *cl, int i)
{
	char url[80], host[] = { 'h', (char)('A' + i), '\0' };
	const char *flags[] = { "--cluster-endpoints", url, "--cluster-prefix", "cluster/",
				"--cluster-ttl", "10", "--cluster-host", host, NULL };

	snprintf(url, sizeof(url), "http://%s", cl->endpoint);
	snprintf(cl->socket[i], sizeof(cl->socket[i]), "%s/haspd-%s.sock", o->dir, host);
	return spawn_haspd(o->haspd, cl->socket[i], flags);
}

static void cluster_stop(struct cluster *cl)
{
	spawn_stop(cl->haspd[0]);
	spawn_stop(cl->haspd[1]);
	spawn_stop(cl->etcd);
}

static void skipped(const char *name, const char *why)
{
	struct result *r = result_add(name);

	snprintf(r->note, sizeof(r->note), "skipped: %s", why);
}

/* ---- the figures ---- */

/* How many of s[from, to) waited for etcd's 100 ms catch-up loop: those
 * over 50 ms. */
static size_t slow_ones(const struct samples *s, size_t from, size_t to)
{
	size_t n = 0;

	for (size_t i = from; i < to; i++)
		n += s->v[i] > 50000;
	return n;
}

static double handoff(const struct peer *p, const char *a, const char *b, int rounds,
		      int settle_ms, const char *name, const char *base, double base_us)
{
	struct samples s = { 0 };
	struct result *r;
	size_t to_a, to_b;

	pingpong(p, a, b, KEY, rounds, settle_ms, &s);
	to_a = slow_ones(&s, 0, (size_t)rounds); /* pingpong() gives A's grants first */
	to_b = slow_ones(&s, (size_t)rounds, s.n);
	r = result_latency(name, &s, base, base_us);
	snprintf(r->note, sizeof(r->note), "%d hand-offs, over 50 ms: %zu to A, %zu to B",
		 2 * rounds, to_a, to_b);
	if (base) /* the ratio may be small: its inverse too */
		snprintf(r->note + strlen(r->note), sizeof(r->note) - strlen(r->note),
			 "; %s/this %.3gx", base, 1 / r->ratio);
	return r->median_us;
}

void bench_cluster(const struct bench_opts *o)
{
	struct cluster cl = { 0 };
	int fresh = o->quick ? 5 : 50, hasp_fresh = o->quick ? 10 : 250;
	char etcd[256];
	double e_fresh, e_settled;

	if (!spawn_find("etcd", etcd, sizeof(etcd))) {
		skipped("C cluster hand-off", "no etcd in $PATH (apt-get install etcd-server)");
		return;
	}
	cl.etcd = spawn_etcd(etcd, o->dir, cl.endpoint, sizeof(cl.endpoint));
	if (cl.etcd < 0) {
		skipped("C cluster hand-off", "etcd did not start");
		return;
	}
	gateway_range(cl.endpoint, o->quick ? 100 : 2000);
	e_fresh = handoff(&etcd_peer, cl.endpoint, cl.endpoint, fresh, 0,
			  "(f) etcd lock hand-off, new waiter", NULL, 0);
	e_settled = handoff(&etcd_peer, cl.endpoint, cl.endpoint, fresh, SETTLE_MS,
			    "(g) etcd lock hand-off, waited 150ms", NULL, 0);
	cl.haspd[0] = cluster_haspd(o, &cl, 0);
	cl.haspd[1] = cl.haspd[0] > 0 ? cluster_haspd(o, &cl, 1) : -1;
	if (cl.haspd[1] < 0) {
		skipped("C cluster hand-off", "haspd did not start in cluster mode");
	} else {
		handoff(&hasp_side, cl.socket[0], cl.socket[1], hasp_fresh, 0,
			"C1 cluster hand-off, new waiter", "(f)", e_fresh);
		handoff(&hasp_side, cl.socket[0], cl.socket[1], fresh, SETTLE_MS,
			"C2 cluster hand-off, waited 150ms", "(g)", e_settled);
	}
	gateway_watch(cl.endpoint, o->quick ? 20 : 200);
	cluster_stop(&cl);
}
