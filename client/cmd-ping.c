#include <stdio.h>
#include <time.h>

#include "cli.h"

static const char usage[] =
	"Usage: hasp ping [--socket PATH]\n"
	"Checks that haspd answers and prints which socket answered, and the round\n"
	"trip time.\n"
	"Exits 0 when it answers, 69 when it cannot be reached.\n";

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int cmd_ping(struct cli *cli, int argc, char **argv)
{
	int r = cli_simple_args(cli, argc, argv, usage, NULL, NULL);
	hasp_client *c;
	double t0;

	if (r >= 0)
		return r;
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	t0 = now_us();
	r = hasp_ping(c);
	if (r < 0) {
		cli_error(c, "ping", r);
		hasp_close(c);
		return EXIT_UNAVAILABLE; /* any failure: the daemon does not answer */
	}
	fputs("haspd at ", stdout);
	cli_put_escaped(stdout, hasp_client_socket(c));
	printf(" answered in %.0f µs\n", now_us() - t0);
	hasp_close(c);
	return 0;
}
