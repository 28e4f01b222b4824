/* The hasp command line tool: a table of subcommands, one file each. */
#pragma once

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "hasp.h"

/* Exit codes beyond a command's own: as sysexits.h, and as flock(1) uses
 * them. */
#define EXIT_USAGE 64           /* a command line that makes no sense */
#define EXIT_DATAERR 65         /* the fd form: the descriptor is not open */
#define EXIT_NOINPUT 66         /* the file cannot be opened or locked */
#define EXIT_UNAVAILABLE 69     /* haspd cannot be reached or will not serve */
#define EXIT_OSERR 71           /* out of memory or descriptors, a system error */
#define EXIT_CANTCREAT 73       /* the file cannot be created (EROFS, ENOSPC) */
#define EXIT_LEASE_LOST 75      /* (EX_TEMPFAIL) the lease was lost while the
				 * command ran, and it was stopped */

/* The name messages start with: hasp, or flock when installed as flock(1)
 * (a symbolic link: hasp.c). */
#define CLI_NAME program_invocation_short_name

/* How long a command waits for an answer to a request that does not wait
 * for a lock (hasp(1): a daemon that stops answering). */
#define CLI_CALL_TIMEOUT_MS 30000

struct cli {
	const char *socket;     /* --socket, or NULL for the default */
	const char *name;       /* what haspd lists the client as, with its pid; NULL: hasp */
};

struct cli_command {
	const char *name;
	const char *summary;
	int (*run)(struct cli *cli, int argc, char **argv);
};

int cmd_lock(struct cli *cli, int argc, char **argv);
int cmd_ls(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_top(struct cli *cli, int argc, char **argv);
int cmd_watch(struct cli *cli, int argc, char **argv);
int cmd_ping(struct cli *cli, int argc, char **argv);
int cmd_revoke(struct cli *cli, int argc, char **argv);
int cmd_checkout(struct cli *cli, int argc, char **argv);
int cmd_checkin(struct cli *cli, int argc, char **argv);
int cmd_renew(struct cli *cli, int argc, char **argv);

/* A waiting callback's userdata (hasp_lock_options, hasp_acquire_options):
 * what is waited for, a key or a file (NULL for the fd form). */
struct cli_waiting {
	const struct cli *cli;
	const char *key;
	const char *file;
};

/* The waiting callback: says on stderr whom the request waits for, e.g.
 * "hasp: waiting for 'db', held by pid 42 (alice, exclusive, for 3.2s)". */
void cli_notify_waiting(void *userdata);

/* Connects, or prints why not and returns NULL. */
hasp_client *cli_connect(const struct cli *cli);
/* The exit status for a libhasp error: EXIT_UNAVAILABLE when haspd went
 * away or will not serve for a limit, or its socket is not to be trusted,
 * else 1. */
int cli_status(int err);
/* The exit status for a lease not had (hasp lock, hasp checkout), as
 * flock(1) gives it for the same failure: conflict_code only for busy or
 * timed out; 64 for what the command line gave (a key); 66 for FILE that
 * cannot be opened (opened_file: the error may be the file's); 69 when
 * haspd cannot be reached or will not serve; 71, 73, 65 (see hasp(1)). */
int cli_lease_status(int err, bool on_key, bool opened_file, int conflict_code);
/* Prints "hasp: " and the message of err (escaped) on stderr. */
void cli_report(hasp_client *c, int err);
/* Prints "hasp: WHAT: reason" for a libhasp error; returns cli_status(err). */
int cli_error(hasp_client *c, const char *what, int err);
/* s, as it may meet a terminal (escape.c): control characters (C0, DEL,
 * C1) as \n, \r, \t, \e or \xNN, a byte that is not UTF-8 as \xNN, and
 * a backslash as \\. Malloc'ed; NULL when out of memory. */
char *cli_escape(const char *s);
/* Writes cli_escape(s) to f. */
void cli_put_escaped(FILE *f, const char *s);
/* A string member of a JSON object from the daemon, or dflt. */
const char *cli_str(json_t *o, const char *name, const char *dflt);
/* Seconds (decimals allowed, >= 0) as ms; a wait however short is at
 * least 1 ms. false when s is not such a number. */
bool cli_seconds(const char *s, int64_t *ms);
/* Whether the key, owner and message (each may be NULL) can be sent: else
 * says which cannot, pointing to 'hasp CMD --help'. */
bool cli_texts_valid(const char *cmd, const char *key, const char *owner, const char *message);
/* The caller's user name, for a default owner; NULL if it has none. */
const char *cli_user_name(void);
/* "3.2s", "4m05s", "2h13m" for an age in ms. */
void cli_format_age(char *buf, unsigned size, long long ms);
/* --socket and --help, and --format NAME and --json (--format json) for
 * commands that have formats, for commands that take no other arguments:
 * formats are the names --format takes (NULL-terminated; NULL: no --format
 * and no --json), *format becomes the index of the one given. Returns -1 to
 * go on, else the exit code. */
int cli_simple_args(struct cli *cli, int argc, char **argv, const char *usage,
		    const char *const *formats, int *format);
/* The same, with one optional argument (left as it is when none). */
int cli_simple_args_one(struct cli *cli, int argc, char **argv, const char *usage,
			const char *const *formats, int *format, const char **ret_arg);
/* The signals a command waits for (cli-signals.c): blocked, except while
 * it sleeps in ppoll(2) with wait_mask. */
struct cli_signals {
	sigset_t wait_mask;     /* for ppoll(): the caller's mask, sigs unblocked */
	sigset_t saved_mask;    /* the mask before */
};

/* Catches the n signals sigs: 0, or -errno. */
int cli_signals_catch(struct cli_signals *s, const int *sigs, size_t n);
/* Whether sig came since the last call (then forgotten), or not. */
bool cli_signal_caught(int sig);
/* Whether it came, left noted. */
bool cli_signal_pending(int sig);
/* Puts the mask back (the handlers stay, noting only). */
void cli_signals_restore(const struct cli_signals *s);
/* Writes j as one line of JSON text with ASCII only (JSON_ENSURE_ASCII;
 * DEL, which jansson leaves raw, as \u007f), without the newline. Returns
 * 0, or -1 out of memory. */
int cli_print_json(json_t *j);
/* After getopt: -1 when no argument is left (from optind), else says which
 * is unexpected and returns EXIT_USAGE. */
int cli_no_more_args(int argc, char **argv, const char *usage);
