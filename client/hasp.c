/* hasp: the command line client of haspd. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_command commands[] = {
	{ "lock", "run a command while holding a lease on a key", cmd_lock },
	{ "ls", "list leases and waiters by key or path (--prefix)", cmd_ls },
	{ "stats", "show the daemon's counters", cmd_stats },
	{ "watch", "follow lock events as they happen (a PREFIX, --json)", cmd_watch },
	{ "top", "a live view of locks, waits and rates (--once: a snapshot)", cmd_top },
	{ "ping", "check that haspd answers, and how fast", cmd_ping },
	{ "revoke", "end someone's lease (administrative)", cmd_revoke },
	{ "checkout", "take a lease that outlives the command; print its token", cmd_checkout },
	{ "checkin", "end a checkout, by its token, FILE or KEY", cmd_checkin },
	{ "renew", "push back the end of a checkout with a TTL", cmd_renew },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fputs("Usage: hasp [--socket PATH] COMMAND [ARGS...]\n"
	      "The client of haspd, the hasp lock service.\n\nCommands:\n", f);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fputs("\nOptions:\n"
	      "  -S, --socket PATH  haspd's socket (default: $HASP_SOCKET, else the system\n"
	      "                     daemon's /run/hasp/haspd.sock if it answers, else your\n"
	      "                     own: $XDG_RUNTIME_DIR/hasp/haspd.sock, else\n"
	      "                     /tmp/hasp-$UID/haspd.sock, started on demand unless\n"
	      "                     HASP_NO_AUTOSTART=1; see hasp(1)); trusted only\n"
	      "                     in a directory that is root's, yours or haspd's, that\n"
	      "                     nobody else can write (/tmp/hasp-$UID: yours, 0700)\n"
	      "  -V, --version      print the version and exit\n"
	      "  -h, --help         print this help and exit\n"
	      "\n'hasp COMMAND --help' describes a command.\n", f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli cli = { NULL };
	int c;

	/* Installed as flock (a symbolic link): flock(1)'s drop-in, hasp lock. */
	if (strcmp(CLI_NAME, "flock") == 0)
		return cmd_lock(&cli, argc, argv);
	while ((c = getopt_long(argc, argv, "+S:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			cli.socket = optarg;
			break;
		case 'V':
			printf("hasp %s\n", hasp_version());
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			return commands[i].run(&cli, argc - optind, argv + optind);
	fprintf(stderr, "hasp: unknown command '%s'\nTry 'hasp --help'.\n", argv[optind]);
	return EXIT_USAGE;
}
