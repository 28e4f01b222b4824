/* hasp lock, in three files: lock-args.c reads flock(1)'s command line,
 * lock-run.c runs the command and watches for the lease's loss, and
 * cmd-lock.c takes the lease. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"

/* What hasp lock does to COMMAND when its lease is lost (--on-lost). */
enum lock_on_lost {
	LOCK_LOST_TERM,         /* SIGTERM, then SIGKILL after kill_after_ms */
	LOCK_LOST_KILL,         /* SIGKILL at once */
	LOCK_LOST_IGNORE,       /* a warning only */
};

/* The most -k KEY a lock takes (one lease over all of them). */
#define LOCK_KEYS_MAX 64

struct lock_args {
	const char *key;        /* -k KEY (the first of keys), or */
	const char *keys[LOCK_KEYS_MAX]; /* every -k KEY: 2 or more, one lease over them */
	size_t nkeys;
	const char *file;       /* FILE, or */
	int fd;                 /* the fd form (flock's `flock 9`), else -1 */
	bool fd_command;        /* --fd FD COMMAND: the fd form, with a command */
	bool unlock;            /* -u: unlock fd */
	const char *shell_command; /* -c STRING, or */
	char **command;         /* COMMAND [ARGS...] (NULL-terminated, maybe empty) */
	struct hasp_lock_options opts;
	int64_t ttl_ms;         /* --ttl: renewed every third of it; 0: none */
	uint32_t limit;         /* --limit: a semaphore's; 0: none */
	int conflict_code;      /* -E */
	bool close_fd;          /* -o */
	bool no_fork;           /* -F */
	bool verbose;
	enum lock_on_lost on_lost;
	bool on_lost_given;
	int64_t kill_after_ms;
	char message[1025];     /* the default message: the command line */
};

/* Reads hasp lock's arguments (argv[0] is "lock") into a. Returns -1 to go
 * on, else the exit status (0 after --help, EXIT_USAGE). */
int lock_parse_args(struct cli *cli, int argc, char **argv, struct lock_args *a);
/* Runs the command while c holds l, renewing l every third of its TTL if
 * it has one, and stops it if l is lost (a->on_lost): revoked, expired, or
 * its connection gone.
 * Returns hasp lock's exit status: the command's (128+N if killed by
 * signal N), or EXIT_LEASE_LOST when the lease was lost and the command
 * stopped. */
int lock_run(hasp_client *c, const hasp_lease *l, const struct lock_args *a);
/* The command's argv: COMMAND, or sh -c STRING (sh is a caller's array of
 * 4). */
char **lock_argv(const struct lock_args *a, char **sh);
