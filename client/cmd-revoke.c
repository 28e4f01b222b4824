/* hasp revoke: end someone's lease (administrative). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static const char usage[] =
	"Usage: hasp revoke [--socket PATH] LEASE\n"
	"       hasp revoke [--socket PATH] --key KEY\n"
	"Ends a lease whoever holds it, or every lease on a named lock; the holder is\n"
	"told, and the next waiters are granted. Lease ids are shown by 'hasp ls'.\n"
	"Allowed to root, to the daemon's own user and to the holder's user.\n"
	"  -k, --key KEY   revoke every lease on KEY (its waiters stay queued)\n"
	"Exit status: 0 when something was revoked, 1 otherwise.\n";

static int parse_lease(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0 || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

int cmd_revoke(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *key = NULL;
	uint64_t lease = 0;
	hasp_client *c;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "+k:S:h", longopts, NULL)) != -1) {
		if (opt == 'k') {
			key = optarg;
		} else if (opt == 'S') {
			cli->socket = optarg;
		} else if (opt == 'h') {
			fputs(usage, stdout);
			return 0;
		} else {
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (key ? optind != argc : optind + 1 != argc || parse_lease(argv[optind], &lease) < 0) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	r = key ? hasp_revoke_key(c, key) : hasp_revoke(c, lease);
	if (r < 0) {
		r = cli_error(c, "revoke", r);
		hasp_close(c);
		return r;
	}
	if (key) {
		printf("revoked %d lease%s on '", r, r == 1 ? "" : "s");
		cli_put_escaped(stdout, key);
		puts("'");
	} else
		printf("revoked lease %llu\n", (unsigned long long)lease);
	hasp_close(c);
	return r > 0 || !key ? 0 : 1;
}
