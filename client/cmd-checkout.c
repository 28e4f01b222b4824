/* hasp checkout: take a lease that outlives the command, and print its
 * token. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkout.h"
#include "utf8.h"

static const char usage[] =
	"Usage: hasp checkout [OPTIONS] FILE|DIRECTORY\n"
	"       hasp checkout [OPTIONS] -k KEY\n"
	"Checks out FILE or the named lock KEY: takes a lease that belongs to no\n"
	"process and no connection, and prints its token. The checkout lasts until\n"
	"'hasp checkin' (by anyone with the token, or by you on FILE or KEY), a\n"
	"revoke, or its TTL; it survives restarts of haspd. A FILE (created if\n"
	"missing) is locked with a real flock(2) lock held by haspd, so flock(1) and\n"
	"other flock users respect it. Requests are granted in the order they came.\n"
	"\n"
	"  -k, --key KEY          a named lock instead of a file (1 to 1024 bytes)\n"
	"  -x, -e, --exclusive    an exclusive checkout (the default)\n"
	"  -s, --shared           a shared checkout: shared holders coexist\n"
	"  -n, --nonblock, --nb   fail at once if it cannot be had\n"
	"  -w, --timeout, --wait SECONDS\n"
	"                         fail if not granted within SECONDS (decimals allowed)\n"
	"      --ttl SECONDS      the checkout ends SECONDS after its grant or its last\n"
	"                         'hasp renew' (default: no end but a checkin)\n"
	"      --owner NAME       who holds it, shown by 'hasp ls' and to whoever finds\n"
	"                         it checked out (default: your user name)\n"
	"      --message TEXT     why, shown with the owner\n"
	"  -j, --json             print the grant as one JSON object (lease, fence, mode,\n"
	"                         token, expires_ms with a TTL, key or path) instead\n"
	"  -E, --conflict-exit-code CODE\n"
	"                         exit with CODE when it was busy or timed out (default 1)\n"
	"      --verbose          say whom it waits for after a second, as on a terminal\n"
	"  -S, --socket PATH      haspd's socket\n"
	"  -h, --help             print this help\n"
	"\n"
	"The token (32 hex digits) goes to stdout, followed by a newline: keep it to\n"
	"check in or renew from anywhere ('hasp checkin --token TOKEN'). When the lock\n"
	"is busy, hasp checkout says who holds it, since when and why; while it waits\n"
	"on a terminal (or with --verbose), after a second, whom it waits for.\n"
	"Exit status: 0 when checked out; 1 or CODE when it was busy or timed out,\n"
	"and only then; 64 for a usage error (also an empty, over-long or non-UTF-8\n"
	"key, owner or message); 66 when FILE cannot be opened or locked; 69 when\n"
	"haspd cannot be reached or will not serve (a limit such as\n"
	"max_user_checkouts, or no journal to keep checkouts in), or its socket is not\n"
	"to be trusted; 71 for a system error; 73 when FILE cannot be created.\n";

struct checkout_args {
	struct checkout_target t;
	struct hasp_acquire_options opts;
	bool json;
	bool verbose;
	int conflict_code;
};

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "%s: %s '%s'\nTry 'hasp checkout --help'.\n", CLI_NAME, what, arg);
	return EXIT_USAGE;
}

static int parse_exit_code(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < 0 || v > 255)
		return usage_error("invalid exit code (0 to 255)", s);
	*out = (int)v;
	return -1;
}

enum { OPT_TTL = 256, OPT_OWNER, OPT_MESSAGE, OPT_VERBOSE };

/* One option; -1 to go on, else the exit status. */
static int parse_option(struct cli *cli, int opt, struct checkout_args *a)
{
	switch (opt) {
	case 'k':
		if (a->t.key)
			return usage_error("checkout takes one -k KEY; a second one:", optarg);
		a->t.key = optarg;
		return -1;
	case 'x': case 'e': a->opts.mode = HASP_EXCLUSIVE; return -1;
	case 's': a->opts.mode = HASP_SHARED; return -1;
	case 'n': a->opts.timeout_ms = 0; return -1;
	case 'w':
		return cli_seconds(optarg, &a->opts.timeout_ms) ? -1
		       : usage_error("invalid number of seconds (>= 0)", optarg);
	case OPT_TTL:
		return cli_seconds(optarg, &a->opts.ttl_ms) && a->opts.ttl_ms > 0 ? -1
		       : usage_error("invalid TTL (seconds > 0)", optarg);
	case OPT_OWNER: a->opts.owner = optarg; return -1;
	case OPT_MESSAGE: a->opts.message = optarg; return -1;
	case 'j': a->json = true; return -1;
	case OPT_VERBOSE: a->verbose = true; return -1;
	case 'E': return parse_exit_code(optarg, &a->conflict_code);
	case 'S': cli->socket = optarg; return -1;
	case 'h': fputs(usage, stdout); return 0;
	default: fputs("Try 'hasp checkout --help'.\n", stderr); return EXIT_USAGE;
	}
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(struct cli *cli, int argc, char **argv, struct checkout_args *a)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "exclusive", no_argument, NULL, 'x' },
		{ "shared", no_argument, NULL, 's' },
		{ "nonblock", no_argument, NULL, 'n' },
		{ "nb", no_argument, NULL, 'n' },
		{ "nonblocking", no_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 'w' },
		{ "wait", required_argument, NULL, 'w' },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "owner", required_argument, NULL, OPT_OWNER },
		{ "message", required_argument, NULL, OPT_MESSAGE },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, OPT_VERBOSE },
		{ "conflict-exit-code", required_argument, NULL, 'E' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "k:xesnw:jE:S:h", longopts, NULL)) != -1)
		if ((r = parse_option(cli, opt, a)) >= 0)
			return r;
	r = checkout_target_finish(&a->t, argc, argv, false, "checkout");
	if (r >= 0)
		return r;
	return cli_texts_valid("checkout", NULL, a->opts.owner, a->opts.message) ? -1
											 : EXIT_USAGE;
}

/* The grant as a JSON object: what the daemon's reply said of it, and what
 * it is on (a path as the daemon shows it: U+FFFD for what is not UTF-8).
 * NULL when out of memory. */
static json_t *grant_json(const hasp_lease *l, bool on_key)
{
	const char *name = hasp_lease_key(l);
	size_t n = strlen(name);
	char *shown = malloc(3 * n + 1);
	json_t *o = shown ? json_pack("{s:I,s:I,s:s,s:s,s:s%}", "lease",
				      (json_int_t)hasp_lease_id(l), "fence",
				      (json_int_t)hasp_lease_fence(l), "mode",
				      hasp_lease_mode(l) == HASP_SHARED ? "shared" : "exclusive",
				      "token", hasp_lease_token(l), on_key ? "key" : "path", shown,
				      utf8_shown(name, n, shown))
			  : NULL;

	free(shown);
	if (o && hasp_lease_ttl_ms(l) > 0 &&
	    json_object_set_new(o, "expires_ms", json_integer(hasp_lease_ttl_ms(l))) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The token, or with --json the grant in ASCII, on stdout. */
static int print_grant(const hasp_lease *l, const struct checkout_args *a)
{
	json_t *o = a->json ? grant_json(l, a->t.key) : NULL;
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII)
		       : NULL;

	json_decref(o);
	if (a->json && !text) {
		fprintf(stderr, "%s: out of memory; the checkout stands: its token is %s\n",
			CLI_NAME, hasp_lease_token(l));
		return EXIT_OSERR;
	}
	puts(a->json ? text : hasp_lease_token(l));
	free(text);
	return 0;
}

int cmd_checkout(struct cli *cli, int argc, char **argv)
{
	struct checkout_args a = { .opts = HASP_ACQUIRE_OPTIONS_INIT, .conflict_code = 1 };
	struct cli_waiting w = { cli, NULL, NULL };
	hasp_client *c;
	hasp_lease *l;
	int r = parse_args(cli, argc, argv, &a);

	if (r >= 0)
		return r;
	if (!a.opts.owner)
		a.opts.owner = cli_user_name();
	if (a.opts.timeout_ms != 0 && (a.verbose || isatty(STDERR_FILENO))) {
		w.key = a.t.key;
		w.file = a.t.file;
		a.opts.waiting = cli_notify_waiting;
		a.opts.waiting_after_ms = 1000;
		a.opts.userdata = &w;
	}
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	r = a.t.key ? hasp_checkout(c, a.t.key, &a.opts, &l)
		    : hasp_checkout_file(c, a.t.file, &a.opts, &l);
	if (r < 0) {
		cli_report(c, r);
		hasp_close(c);
		return cli_lease_status(r, a.t.key, a.t.file, a.conflict_code);
	}
	r = print_grant(l, &a);
	hasp_lease_free(l);
	hasp_close(c);
	return r;
}
