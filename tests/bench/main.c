/* hasp-bench: measures hasp against the physical limits, in one run. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static const char usage[] =
	"Usage: hasp-bench [--quick] [--json] [--only GROUPS] [--socket PATH] [--haspd PATH]\n"
	"Measures hasp (latency median and p99, operations per second) and reports\n"
	"every figure as a ratio to a baseline measured in the same run: a bare Unix\n"
	"socket round trip, flock(2), the kernel's flock hand-off, and a bare\n"
	"libevent server answering the same lines.\n"
	"  --quick        a few seconds, smaller sizes (the figures are not meaningful)\n"
	"  --json         machine-readable output\n"
	"  --only GROUPS  only these groups, a comma list of baselines, uncontended,\n"
	"                 handoff, throughput, pipelined, scale, sessions, fairness,\n"
	"                 deadlock, watch, cluster (default: all); a group that reports a\n"
	"                 ratio to a baseline measures that baseline too, and scale\n"
	"                 measures uncontended\n"
	"  --socket PATH  measure a running haspd instead of starting one\n"
	"  --haspd PATH   the haspd to start (default: $HASPD, else build/daemon/haspd)\n"
	"cluster starts an etcd found in $PATH and two more haspd of --haspd in\n"
	"cluster mode; without etcd it reports itself skipped.\n"
	"Scratch files go in a new directory in $TMPDIR (default /tmp).\n";

/* The groups of measurements, in the order they run. */
enum group {
	G_BASELINES = 1 << 0,
	G_UNCONTENDED = 1 << 1,
	G_HANDOFF = 1 << 2,
	G_THROUGHPUT = 1 << 3,
	G_PIPELINED = 1 << 4,
	G_SCALE = 1 << 5,
	G_SESSIONS = 1 << 6,
	G_FAIRNESS = 1 << 7,
	G_DEADLOCK = 1 << 8,
	G_WATCH = 1 << 9,
	G_CLUSTER = 1 << 10,
	G_ALL = (1 << 11) - 1,
};

static const char *const group_names[] = {
	"baselines", "uncontended", "handoff", "throughput", "pipelined", "scale", "sessions",
	"fairness", "deadlock", "watch", "cluster",
};

/* A comma list of group names: their bits, or -1 after naming an unknown one. */
static int parse_groups(const char *list)
{
	char *copy = strdup(list), *save = NULL;
	int groups = 0;

	if (!copy)
		return -1;
	for (char *g = strtok_r(copy, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
		size_t i = 0;

		while (i < sizeof(group_names) / sizeof(group_names[0]) && strcmp(g, group_names[i]) != 0)
			i++;
		if (i == sizeof(group_names) / sizeof(group_names[0])) {
			fprintf(stderr, "hasp-bench: no group '%s'\n", g);
			free(copy);
			return -1;
		}
		groups |= 1 << i;
	}
	free(copy);
	return groups ? groups : -1;
}

static int parse(int argc, char **argv, struct bench_opts *o, int *groups)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "only", required_argument, NULL, 'o' },
		{ "socket", required_argument, NULL, 'S' },
		{ "haspd", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->haspd = getenv("HASPD") ? getenv("HASPD") : "build/daemon/haspd";
	*groups = G_ALL;
	while ((c = getopt_long(argc, argv, "qjo:S:H:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q': o->quick = true; break;
		case 'j': o->json = true; break;
		case 'o':
			*groups = parse_groups(optarg);
			if (*groups < 0) {
				fputs(usage, stderr);
				return 64;
			}
			break;
		case 'S': o->socket = optarg; break;
		case 'H': o->haspd = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 64;
		}
	}
	return -1;
}

/* Our own haspd, with room for every connection the benchmark makes. */
static pid_t start_daemon(struct bench_opts *o, char *socket, size_t size)
{
	pid_t pid;

	snprintf(socket, size, "%s/haspd.sock", o->dir);
	pid = spawn_haspd(o->haspd, socket, NULL);
	if (pid < 0) {
		fprintf(stderr, "hasp-bench: %s did not start\n", o->haspd);
		exit(1);
	}
	o->socket = socket;
	o->daemon_pid = pid;
	return pid;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct bench_opts o = { 0 };
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char dir[256], socket[300], cmd[300];
	pid_t daemon = 0;
	double rt = 0, flk = 0;
	int groups, r = parse(argc, argv, &o, &groups);

	if (r >= 0)
		return r;
	snprintf(dir, sizeof(dir), "%s/hasp-bench-XXXXXX", tmp);
	if (!mkdtemp(dir)) {
		perror("hasp-bench: mkdtemp");
		return 1;
	}
	o.dir = dir;
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);
	if (!o.socket)
		daemon = start_daemon(&o, socket, sizeof(socket));
	if (groups & G_SCALE) /* its ratios are to P1 */
		groups |= G_UNCONTENDED;
	if (groups & (G_BASELINES | G_UNCONTENDED | G_HANDOFF | G_DEADLOCK))
		rt = base_roundtrip(&o);
	if (groups & (G_BASELINES | G_UNCONTENDED))
		flk = base_flock(&o);
	if (groups & G_BASELINES)
		base_flock_handoff(&o);
	if (groups & G_UNCONTENDED)
		bench_uncontended(&o, rt, flk);
	if (groups & G_HANDOFF)
		bench_handoff(&o, rt);
	if (groups & G_THROUGHPUT)
		bench_throughput(&o);
	if (groups & G_PIPELINED)
		bench_pipelined(&o);
	if (groups & G_SCALE)
		bench_scale(&o);
	if (groups & G_SESSIONS)
		bench_sessions(&o);
	if (groups & G_FAIRNESS)
		bench_fairness(&o);
	if (groups & G_DEADLOCK)
		bench_deadlock(&o, rt);
	if (groups & G_WATCH)
		bench_watch(&o);
	if (groups & G_CLUSTER)
		bench_cluster(&o);
	results_print(o.json);
	spawn_stop(daemon);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
