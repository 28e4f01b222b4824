/* hasp revoke: end someone's lease (administrative). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"Usage: hasp revoke [--socket PATH] LEASE\n"
	"       hasp revoke [--socket PATH] --key KEY\n"
	"       hasp revoke [--socket PATH] [--file] FILE\n"
	"Ends a lease whoever holds it, every lease on a named lock, or every lease on\n"
	"a file; the holder is told, and the next waiters are granted. Lease ids are\n"
	"shown by 'hasp ls'. Allowed to root, to the daemon's own user and to the\n"
	"holder's user.\n"
	"  -k, --key KEY    revoke every lease on KEY (its waiters stay queued)\n"
	"  -f, --file FILE  revoke every lease on FILE (its waiters stay queued)\n"
	"An argument that is a number is a lease id; any other is a FILE. The file is\n"
	"opened (never created) to name it, as a file's lock is its inode: a file\n"
	"deleted or renamed away since it was locked (marked so by 'hasp ls') is\n"
	"revoked by its lease id.\n"
	"Exit status: 0 when something was revoked, 1 otherwise.\n";

/* What to revoke: one of them. */
struct revoke {
	uint64_t lease;
	const char *key;
	const char *file;
};

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

/* Returns -1 to go on, else the exit status. */
static int parse_revoke_args(struct cli *cli, int argc, char **argv, struct revoke *rv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "file", required_argument, NULL, 'f' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "+k:f:S:h", longopts, NULL)) != -1) {
		if (opt == 'k' && !rv->key && !rv->file) {
			rv->key = optarg;
		} else if (opt == 'f' && !rv->key && !rv->file) {
			rv->file = optarg;
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
	if (!rv->key && !rv->file && optind + 1 == argc) {
		const char *arg = argv[optind++];

		if (arg[strspn(arg, "0123456789")] != '\0')
			rv->file = arg;
		else if (parse_lease(arg, &rv->lease) < 0)
			optind--; /* 0, or past 2^64: no lease */
	}
	if (optind != argc || (!rv->key && !rv->file && !rv->lease) || (rv->file && !*rv->file)) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	return -1;
}

static void print_revoked(const struct revoke *rv, int n)
{
	if (!rv->key && !rv->file) {
		printf("revoked lease %llu\n", (unsigned long long)rv->lease);
		return;
	}
	printf("revoked %d lease%s on %s'", n, n == 1 ? "" : "s", rv->file ? "file " : "");
	cli_put_escaped(stdout, rv->key ? rv->key : rv->file);
	puts("'");
}

int cmd_revoke(struct cli *cli, int argc, char **argv)
{
	struct revoke rv = { 0, NULL, NULL };
	int r = parse_revoke_args(cli, argc, argv, &rv);
	hasp_client *c;

	if (r >= 0)
		return r;
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	r = rv.key ? hasp_revoke_key(c, rv.key) : rv.file ? hasp_revoke_file(c, rv.file) :
	    hasp_revoke(c, rv.lease);
	if (r < 0) {
		r = cli_error(c, "revoke", r);
		hasp_close(c);
		return r;
	}
	print_revoked(&rv, r);
	hasp_close(c);
	return r > 0 || (!rv.key && !rv.file) ? 0 : 1;
}
