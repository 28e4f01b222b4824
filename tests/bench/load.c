/* The load generator shared by hasp and the echo baseline: raw protocol
 * lines, formatted by hand, so that the client is never the bottleneck. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define MAX_PROCS 8

struct load {
	const char *socket;
	int first, nconn, proc;
	uint64_t deadline_ns;
	volatile uint64_t *count;
};

static uint64_t lease_of(const char *line)
{
	const char *p = line ? strstr(line, "\"lease\":") : NULL;

	if (!p) {
		fprintf(stderr, "hasp-bench: not a grant: %s\n", line ? line : "(EOF)");
		exit(1);
	}
	return strtoull(p + 8, NULL, 10);
}

/* One round over every connection: acquire all, then release all. */
static void load_round(struct conn *c, int n, int proc, uint64_t *leases)
{
	char line[128];

	for (int i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line),
				   "{\"id\":1,\"op\":\"acquire\",\"key\":\"L%d-%d\",\"timeout_ms\":0}\n",
				   proc, i);
		conn_send(&c[i], line, (size_t)len);
	}
	for (int i = 0; i < n; i++)
		leases[i] = lease_of(conn_line(&c[i]));
	for (int i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line), "{\"id\":2,\"op\":\"release\",\"lease\":%llu}\n",
				   (unsigned long long)leases[i]);
		conn_send(&c[i], line, (size_t)len);
	}
	for (int i = 0; i < n; i++)
		if (!conn_line(&c[i]))
			exit(1);
}

static void load_worker(void *arg)
{
	struct load *l = arg;
	struct conn *c = calloc((size_t)l->nconn, sizeof(*c));
	uint64_t *leases = calloc((size_t)l->nconn, sizeof(*leases)), pairs = 0;

	for (int i = 0; i < l->nconn; i++)
		if (conn_open(&c[i], l->socket) < 0)
			exit(1);
	while (now_ns() < l->deadline_ns) {
		load_round(c, l->nconn, l->proc, leases);
		pairs += (uint64_t)l->nconn;
	}
	l->count[l->proc] = pairs;
	for (int i = 0; i < l->nconn; i++)
		close(c[i].fd);
}

double load_pairs(const char *socket, int clients, double seconds)
{
	int procs = clients < MAX_PROCS ? clients : MAX_PROCS;
	volatile uint64_t *count = shared_page();
	pid_t pids[MAX_PROCS];
	uint64_t total = 0, start = now_ns();
	struct load l = { socket, 0, 0, 0, start + (uint64_t)(seconds * 1e9), count };

	for (int p = 0; p < procs; p++) {
		l.proc = p;
		l.nconn = clients / procs + (p < clients % procs);
		count[p] = 0;
		run_in_child(load_worker, &l, &pids[p]);
	}
	wait_all(pids, (size_t)procs);
	for (int p = 0; p < procs; p++)
		total += count[p];
	return (double)total / ((double)(now_ns() - start) / 1e9);
}

double load_pipelined(const char *socket, int batch, double seconds)
{
	struct conn *c = malloc(sizeof(*c));
	uint64_t *leases = calloc((size_t)batch, sizeof(*leases)), pairs = 0;
	uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
	char *buf = malloc((size_t)batch * 96), *p;

	if (conn_open(c, socket) < 0)
		exit(1);
	while (now_ns() < end) {
		p = buf;
		for (int i = 0; i < batch; i++)
			p += sprintf(p, "{\"id\":%d,\"op\":\"acquire\",\"key\":\"P-%d\",\"timeout_ms\":0}\n",
				     i, i);
		conn_send(c, buf, (size_t)(p - buf));
		for (int i = 0; i < batch; i++)
			leases[i] = lease_of(conn_line(c));
		p = buf;
		for (int i = 0; i < batch; i++)
			p += sprintf(p, "{\"id\":%d,\"op\":\"release\",\"lease\":%llu}\n", i,
				     (unsigned long long)leases[i]);
		conn_send(c, buf, (size_t)(p - buf));
		for (int i = 0; i < batch; i++)
			if (!conn_line(c))
				exit(1);
		pairs += (uint64_t)batch;
	}
	close(c->fd);
	free(c);
	free(buf);
	free(leases);
	return (double)pairs / ((double)(now_ns() - start) / 1e9);
}
