/* hasp-soak: a crash-and-chaos soak of haspd, and its checker.
 *
 *   hasp-soak [--duration S] [--workers N] [--daemon-restarts on|off]
 *             [--seed N] [--keep-log PATH] [--haspd PATH]
 *   hasp-soak --check LOGFILE
 *   hasp-soak --self-test
 *
 * The quick run (meson test soak-quick) is --duration 10 with 16 workers;
 * the long run is e.g. --duration 600 --workers 64 --keep-log soak.log.
 * See README.md for what is run and what is proven. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "soak.h"

static const char usage[] =
	"Usage: hasp-soak [--duration SECONDS] [--workers N] [--daemon-restarts on|off]\n"
	"                 [--seed N] [--keep-log PATH] [--haspd PATH]\n"
	"       hasp-soak --check LOGFILE\n"
	"       hasp-soak --self-test\n"
	"Runs haspd under workers that take and drop leases while workers, and the\n"
	"daemon itself, are SIGKILLed at random; then proves from the log that no\n"
	"incompatible leases overlapped, fences only grew, every waiter was answered\n"
	"and the daemon returned to its baseline. Exit 0 when all holds.\n"
	"  --duration S          seconds of load (default 10)\n"
	"  --workers N           worker processes (default 16)\n"
	"  --daemon-restarts B   kill and restart haspd in the first 40%% (default on)\n"
	"  --seed N              replay a run (printed at the start)\n"
	"  --keep-log PATH       write the log there and keep it\n"
	"  --haspd PATH          the daemon (default $HASPD, else build/daemon/haspd)\n";

static int main_check(const char *path)
{
	struct check_result r;
	int rc = check_file(path, &r);

	if (rc < 0) {
		fprintf(stderr, "hasp-soak: cannot read %s\n", path);
		return 2;
	}
	check_print(&r);
	printf("hasp-soak: %s\n", rc == 0 ? "OK" : "VIOLATIONS (see above)");
	return rc == 0 ? 0 : 1;
}

static bool main_onoff(const char *s)
{
	return strcmp(s, "on") == 0 || strcmp(s, "1") == 0 || strcmp(s, "yes") == 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "duration", required_argument, NULL, 'd' },
		{ "workers", required_argument, NULL, 'w' },
		{ "daemon-restarts", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 's' },
		{ "keep-log", required_argument, NULL, 'k' },
		{ "haspd", required_argument, NULL, 'H' },
		{ "check", required_argument, NULL, 'c' },
		{ "self-test", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct soak_opts o = {
		.duration = 10, .workers = 16, .daemon_restarts = true,
		.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32),
		.haspd = getenv("HASPD") ? getenv("HASPD") : "build/daemon/haspd",
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o.duration = atof(optarg); break;
		case 'w': o.workers = atoi(optarg); break;
		case 'r': o.daemon_restarts = main_onoff(optarg); break;
		case 's': o.seed = strtoull(optarg, NULL, 0); break;
		case 'k': o.keep_log = optarg; break;
		case 'H': o.haspd = optarg; break;
		case 'c': return main_check(optarg);
		case 't': return selftest_run();
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 64;
		}
	}
	if (optind != argc || o.duration <= 0 || o.workers < 1 || o.workers > 1000) {
		fputs(usage, stderr);
		return 64;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	return chaos_run(&o);
}
