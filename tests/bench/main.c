/* hasp-bench: measures hasp against the physical limits, in one run. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static const char usage[] =
	"Usage: hasp-bench [--quick] [--json] [--socket PATH] [--haspd PATH]\n"
	"Measures hasp (latency median and p99, operations per second) and reports\n"
	"every figure as a ratio to a baseline measured in the same run: a bare Unix\n"
	"socket round trip, flock(2), the kernel's flock hand-off, and a bare\n"
	"libevent server answering the same lines.\n"
	"  --quick        a few seconds, smaller sizes (the figures are not meaningful)\n"
	"  --json         machine-readable output\n"
	"  --socket PATH  measure a running haspd instead of starting one\n"
	"  --haspd PATH   the haspd to start (default: $HASPD, else build/daemon/haspd)\n";

static int parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 'S' },
		{ "haspd", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->haspd = getenv("HASPD") ? getenv("HASPD") : "build/daemon/haspd";
	while ((c = getopt_long(argc, argv, "qjS:H:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q': o->quick = true; break;
		case 'j': o->json = true; break;
		case 'S': o->socket = optarg; break;
		case 'H': o->haspd = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 64;
		}
	}
	return -1;
}

static bool connectable(const char *path)
{
	struct conn c;

	if (conn_open(&c, path) < 0)
		return false;
	close(c.fd);
	return true;
}

/* Our own haspd, with room for every connection the benchmark makes. */
static pid_t start_daemon(struct bench_opts *o, char *socket, size_t size)
{
	pid_t pid;

	snprintf(socket, size, "%s/haspd.sock", o->dir);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execl(o->haspd, "haspd", "--socket", socket, "--log-level", "warning", (char *)NULL);
		perror(o->haspd);
		_exit(127);
	}
	for (int i = 0; i < 5000 && !connectable(socket); i++)
		usleep(1000); /* polling the socket: the daemon has no other signal */
	if (!connectable(socket)) {
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
	char dir[] = "/tmp/hasp-bench-XXXXXX", socket[256], cmd[300];
	pid_t daemon = 0;
	double rt, flk;
	int r = parse(argc, argv, &o);

	if (r >= 0)
		return r;
	if (!mkdtemp(dir)) {
		perror("hasp-bench: mkdtemp");
		return 1;
	}
	o.dir = dir;
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);
	if (!o.socket)
		daemon = start_daemon(&o, socket, sizeof(socket));
	rt = base_roundtrip(&o);
	flk = base_flock(&o);
	base_flock_handoff(&o);
	bench_uncontended(&o, rt, flk);
	bench_handoff(&o, rt);
	bench_throughput(&o);
	bench_scale(&o);
	bench_sessions(&o);
	bench_fairness(&o);
	results_print(o.json);
	if (daemon) {
		kill(daemon, SIGTERM);
		waitpid(daemon, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
