/* hasp checkout, checkin and renew (cmd-checkout.c, cmd-checkin.c,
 * cmd-renew.c): what names a checkout on their command lines, read and
 * judged in checkout-target.c. */
#pragma once

#include <stdbool.h>

#include "cli.h"

struct checkout_target {
	const char *key;        /* -k KEY, or */
	const char *file;       /* FILE, or */
	const char *token;      /* --token T (checkin and renew) */
};

/* Takes FILE from what getopt left of argv, and checks that exactly one of
 * FILE, -k KEY or (with tokens) --token T is given, and what it is.
 * Returns -1 to go on, else EXIT_USAGE, having said why. */
int checkout_target_finish(struct checkout_target *t, int argc, char **argv, bool tokens,
			   const char *cmd);
/* The command line of hasp checkin and renew (argv[0] names which):
 * --token, -k, FILE, --socket, --help, and where ttl_ms and json are not
 * NULL --ttl and --json. Returns -1 to go on, else the exit status. */
int checkout_target_args(struct cli *cli, int argc, char **argv, const char *usage,
			 struct checkout_target *t, int64_t *ttl_ms, bool *json);
/* The exit status of a checkin or renew that failed, having said why: 1
 * when there is no such checkout or lease, or it is not the caller's (a
 * wrong token), as a conflict is 1 for hasp lock; else as hasp lock's. */
int checkout_target_failed(hasp_client *c, int err, const struct checkout_target *t);
