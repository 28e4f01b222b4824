/* etcd's JSON gateway itself, the parts of a cluster hand-off: a range
 * (what a waiter reads when its predecessor goes), a delete (a release),
 * and how long after a delete's reply a watch of that key hears of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "etcd.h"

#define WATCHED "bench/watched"

static struct etcd *connect_or_exit(const char *endpoint)
{
	struct etcd *e = etcd_connect(endpoint);

	if (!e)
		exit(1);
	return e;
}

static void noted(struct result *r, const char *note)
{
	snprintf(r->note, sizeof(r->note), "%s", note);
}

void gateway_range(const char *endpoint, int n)
{
	struct etcd *e = connect_or_exit(endpoint);
	struct samples s = { 0 };

	for (int i = 0; i < n + n / 10; i++) {
		uint64_t t = now_ns();

		if (etcd_waiting(e, "cluster/bench") < 0)
			exit(1);
		if (i >= n / 10)
			samples_add(&s, elapsed_us(t));
	}
	etcd_disconnect(e);
	noted(result_latency("(e) etcd gateway range round trip", &s, NULL, 0),
	      "POST /v3/kv/range, linearizable, kept alive");
}

void gateway_watch(const char *endpoint, int n)
{
	struct etcd *kv = connect_or_exit(endpoint), *w = connect_or_exit(endpoint);
	struct samples del = { 0 }, event = { 0 };

	if (etcd_watch(w, WATCHED) < 0)
		exit(1);
	for (int i = 0; i < n; i++) {
		uint64_t t0, t1;

		if (etcd_put(kv, WATCHED, "x") < 0 || etcd_watch_next(w) < 0)
			exit(1);
		t0 = now_ns();
		if (etcd_delete(kv, WATCHED) < 0)
			exit(1);
		t1 = now_ns();
		if (etcd_watch_next(w) < 0)
			exit(1);
		samples_add(&event, elapsed_us(t1));
		samples_add(&del, (double)(t1 - t0) / 1000.0);
	}
	etcd_disconnect(w);
	etcd_disconnect(kv);
	noted(result_latency("(h) etcd gateway delete round trip", &del, NULL, 0),
	      "POST /v3/kv/deleterange of one key (a raft commit)");
	noted(result_latency("(i) etcd gateway watch event lag", &event, NULL, 0),
	      "from the delete's reply to a watch's event (0: before)");
}
