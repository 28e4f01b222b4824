/* What names a checkout for hasp checkout, checkin and renew: FILE, -k KEY
 * or --token T, one of them. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "checkout.h"

/* A usage error of cmd: what (if not NULL), and where help is. */
static int usage_error(const char *cmd, const char *what)
{
	if (what)
		fprintf(stderr, "%s: %s %s\n", CLI_NAME, cmd, what);
	fprintf(stderr, "Try 'hasp %s --help'.\n", cmd);
	return EXIT_USAGE;
}

int checkout_target_finish(struct checkout_target *t, int argc, char **argv, bool tokens,
			   const char *cmd)
{
	int given;

	if (optind < argc)
		t->file = argv[optind++];
	given = !!t->key + !!t->file + !!t->token;
	if (optind < argc || given != 1)
		return usage_error(cmd, optind < argc ? "takes one FILE"
					: tokens ? "takes one of FILE, -k KEY or --token TOKEN"
					: "takes a FILE or a -k KEY");
	if (t->file && !*t->file)
		return usage_error(cmd, "takes a FILE, not an empty name");
	if (t->token && strlen(t->token) != 32)
		return usage_error(cmd, "takes a --token of the 32 hex digits 'hasp checkout' "
				   "printed");
	return cli_texts_valid(cmd, t->key, NULL, NULL) ? -1 : EXIT_USAGE;
}

enum { OPT_TTL = 256 };

/* One option of cmd; -1 to go on, else the exit status. */
static int parse_option(struct cli *cli, const char *cmd, int opt, const char *usage,
			struct checkout_target *t, int64_t *ttl_ms, bool *json)
{
	switch (opt) {
	case OPT_TTL:
		if (!ttl_ms)
			return usage_error(cmd, "has no --ttl");
		if (!cli_seconds(optarg, ttl_ms) || *ttl_ms == 0)
			return usage_error(cmd, "takes a TTL of seconds > 0");
		return -1;
	case 'j':
		if (!json)
			return usage_error(cmd, "has no --json");
		*json = true;
		return -1;
	case 't':
		if (t->token)
			return usage_error(cmd, "takes one --token TOKEN");
		t->token = optarg;
		return -1;
	case 'k':
		if (t->key)
			return usage_error(cmd, "takes one -k KEY");
		t->key = optarg;
		return -1;
	case 'S':
		cli->socket = optarg;
		return -1;
	case 'h':
		fputs(usage, stdout);
		return 0;
	default:
		return usage_error(cmd, NULL); /* getopt said why */
	}
}

int checkout_target_args(struct cli *cli, int argc, char **argv, const char *usage,
			 struct checkout_target *t, int64_t *ttl_ms, bool *json)
{
	static const struct option longopts[] = {
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "token", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "t:k:jS:h", longopts, NULL)) != -1)
		if ((r = parse_option(cli, argv[0], opt, usage, t, ttl_ms, json)) >= 0)
			return r;
	return checkout_target_finish(t, argc, argv, true, argv[0]);
}

int checkout_target_failed(hasp_client *c, int err, const struct checkout_target *t)
{
	cli_report(c, err);
	if (err == -HASP_E_UNKNOWN_LEASE || err == -HASP_E_PERMISSION_DENIED)
		return 1;
	return cli_lease_status(err, t->key || t->token, t->file, 1);
}
