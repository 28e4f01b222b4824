/* hasp lock's command line: flock(1)'s options and spellings, with hasp's
 * own beside them. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "utf8.h"

static const char usage[] =
	"Usage: hasp lock [OPTIONS] FILE|DIRECTORY [OPTIONS] [--] COMMAND [ARGS...]\n"
	"       hasp lock [OPTIONS] FILE|DIRECTORY [OPTIONS] -c 'SHELL COMMAND'\n"
	"       hasp lock [OPTIONS] -k KEY [-k KEY...] [--] COMMAND [ARGS...]\n"
	"       hasp lock [OPTIONS] FD   (the fd form: ( hasp lock -n 9 || exit 1; ... ) 9>FILE)\n"
	"       hasp lock [OPTIONS] --fd FD [--] COMMAND [ARGS...]   (or -c STRING)\n"
	"       hasp lock -u FD\n"
	"Runs COMMAND while holding a lease on FILE or on the named lock KEY, and\n"
	"exits with its status. A FILE (created if missing) is locked with a real\n"
	"flock(2) lock held by haspd, so flock(1) and other flock users respect it.\n"
	"The lease lasts as long as COMMAND (or anything it passes the connection\n"
	"to) runs, even if hasp itself is killed. Options may follow FILE, up to\n"
	"COMMAND. Requests are granted in the order they came (FIFO).\n"
	"In the fd form, the lock goes on descriptor FD's open file description, as\n"
	"flock(1)'s does, and lasts until every copy of FD is closed or 'hasp lock -u\n"
	"FD' (or 'flock -u FD'): hasp queues the request fairly, then haspd places the\n"
	"flock on the caller's description and holds nothing itself.\n"
	"\n"
	"  -k, --key KEY          a named lock instead of a file (1 to 1024 bytes); up to\n"
	"                         64 -k KEY: one lease over all the keys, in one mode,\n"
	"                         granted on all at once (never some), FIFO on each;\n"
	"                         COMMAND's HASP_KEY is then the keys, one a line\n"
	"  -x, -e, --exclusive    an exclusive lease (the default)\n"
	"  -s, --shared           a shared lease: shared holders coexist\n"
	"  -n, --nonblock, --nb, --nonblocking\n"
	"                         fail at once if the lease cannot be had\n"
	"  -w, --timeout, --wait SECONDS\n"
	"                         fail if not granted within SECONDS (decimals allowed;\n"
	"                         0 is -n)\n"
	"  -E, --conflict-exit-code CODE\n"
	"                         exit with CODE when the lease was not granted (default 1)\n"
	"  -o, --close            do not pass the connection to COMMAND: the lease ends\n"
	"                         when hasp exits, even if COMMAND's children live on\n"
	"  -F, --no-fork          run COMMAND in hasp's place (exec): it holds the lease\n"
	"                         itself, and nothing watches for the lease's loss\n"
	"  -u, --unlock           (fd form) unlock FD\n"
	"      --fd FD            the fd form around COMMAND: lock FD, then run COMMAND,\n"
	"                         which inherits FD (with -o, FD is closed for COMMAND)\n"
	"  -c, --command STRING   run STRING with /bin/sh -c\n"
	"      --on-lost ACTION   when the lease is lost while COMMAND runs (revoked,\n"
	"                         expired, lost in etcd, or haspd gone): term (the\n"
	"                         default: SIGTERM, then SIGKILL after --kill-after),\n"
	"                         kill (SIGKILL) or ignore (a warning; COMMAND runs on)\n"
	"      --kill-after SECONDS\n"
	"                         how long after SIGTERM COMMAND is killed (default 10)\n"
	"      --ttl SECONDS      the lease expires SECONDS after its grant or last\n"
	"                         renewal: hasp renews it every third of that while\n"
	"                         COMMAND runs, so it is lost if hasp hangs, is stopped\n"
	"                         or is killed (COMMAND keeps the session, not the\n"
	"                         lease); not with the fd form or -F\n"
	"      --limit N          with -k: KEY is a semaphore of up to N exclusive\n"
	"                         holders at once, granted in order (1 to 10000); every\n"
	"                         lock on KEY meanwhile must give the same N\n"
	"      --owner NAME       who holds it, shown by 'hasp ls' (default: user name)\n"
	"      --message TEXT     why, shown by 'hasp ls' (default: the command line)\n"
	"      --verbose          say how long getting the lock took, what runs, and\n"
	"                         why a lease was not granted\n"
	"  -S, --socket PATH      haspd's socket\n"
	"  -h, --help             print this help\n";

/* The rest of the help: what a usage string may be is limited. */
static const char usage_status[] =
	"\n"
	"Like flock(1), hasp lock is silent when the lease is busy or timed out,\n"
	"unless --verbose or stderr is a terminal (then it names the holder).\n"
	"Exit status: COMMAND's (128+N if killed by signal N); 1 or CODE when the\n"
	"lease was busy, timed out or refused as a deadlock (the message is always\n"
	"printed), and only then; 64 for a usage error (also an\n"
	"empty, over-long or non-UTF-8 key, owner or message); 65 when FD is not\n"
	"open; 66 when FILE cannot be opened or locked (missing directory, no\n"
	"permission, a FIFO or device); 69 when haspd cannot be reached or will not\n"
	"serve (a limit), or its socket is not to be trusted (see 'hasp --help');\n"
	"71 for a system error (out of memory or descriptors); 73 when FILE cannot\n"
	"be created (read-only file system, no space); 75 when the lease was lost\n"
	"(revoked, expired, lost in etcd, haspd gone) while COMMAND ran and COMMAND\n"
	"was stopped;\n"
	"126/127 when COMMAND cannot be run.\n"
	"COMMAND finds its lease in its environment: HASP_LEASE (the lease id),\n"
	"HASP_FENCE (its fencing token), and HASP_KEY or HASP_PATH.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", CLI_NAME);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'hasp lock --help'.\n", stderr);
	return EXIT_USAGE;
}

static int parse_seconds(const char *s, int64_t *ms)
{
	return cli_seconds(s, ms) ? -1 : usage_error("invalid number of seconds '%s' (>= 0)", s);
}

/* An integer from min to max, what the option takes; -1 to go on, else
 * the exit status. */
static int parse_in_range(const char *s, const char *what, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return usage_error("invalid %s '%s' (%ld to %ld)", what, s, min, max);
	*out = v;
	return -1;
}

static int parse_on_lost(const char *s, struct lock_args *a)
{
	static const char *const names[] = { "term", "kill", "ignore" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			a->on_lost = (enum lock_on_lost)i;
			a->on_lost_given = true;
			return -1;
		}
	}
	return usage_error("--on-lost takes term, kill or ignore, not '%s'", s);
}

/* A descriptor number, as flock(1) reads one; -1 if s is not one. */
static int parse_fd(const char *s)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	return errno || *end || v > 1000000000 ? -1 : (int)v;
}

enum {
	OPT_OWNER = 256, OPT_MESSAGE, OPT_VERBOSE, OPT_ON_LOST, OPT_KILL_AFTER, OPT_FD, OPT_TTL,
	OPT_LIMIT
};

static const struct option longopts[] = {
	{ "key", required_argument, NULL, 'k' },
	{ "exclusive", no_argument, NULL, 'x' },
	{ "shared", no_argument, NULL, 's' },
	{ "unlock", no_argument, NULL, 'u' },
	{ "nonblock", no_argument, NULL, 'n' },
	{ "nb", no_argument, NULL, 'n' },
	{ "nonblocking", no_argument, NULL, 'n' },
	{ "timeout", required_argument, NULL, 'w' },
	{ "wait", required_argument, NULL, 'w' },
	{ "conflict-exit-code", required_argument, NULL, 'E' },
	{ "close", no_argument, NULL, 'o' },
	{ "no-fork", no_argument, NULL, 'F' },
	{ "command", required_argument, NULL, 'c' },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "fd", required_argument, NULL, OPT_FD },
	{ "on-lost", required_argument, NULL, OPT_ON_LOST },
	{ "kill-after", required_argument, NULL, OPT_KILL_AFTER },
	{ "ttl", required_argument, NULL, OPT_TTL },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "owner", required_argument, NULL, OPT_OWNER },
	{ "message", required_argument, NULL, OPT_MESSAGE },
	{ "socket", required_argument, NULL, 'S' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Another -k KEY: -1 to go on, else the exit status. */
static int add_key(struct lock_args *a, const char *key)
{
	if (a->nkeys == LOCK_KEYS_MAX)
		return usage_error("lock takes at most %d -k KEY", LOCK_KEYS_MAX);
	for (size_t i = 0; i < a->nkeys; i++)
		if (strcmp(a->keys[i], key) == 0)
			return usage_error("-k %s is given twice", key);
	a->keys[a->nkeys++] = key;
	a->key = a->keys[0];
	return -1;
}

/* One option; -1 to go on, else the exit status. */
static int parse_option(struct cli *cli, int c, struct lock_args *a)
{
	long v;
	int r;

	switch (c) {
	case 'k':
		return add_key(a, optarg);
	case 'x': case 'e': a->opts.mode = HASP_EXCLUSIVE; return -1;
	case 's': a->opts.mode = HASP_SHARED; return -1;
	case 'u': a->unlock = true; return -1;
	case 'n': a->opts.timeout_ms = 0; return -1;
	case 'w': return parse_seconds(optarg, &a->opts.timeout_ms);
	case 'E':
		if ((r = parse_in_range(optarg, "exit code", 0, 255, &v)) < 0)
			a->conflict_code = (int)v;
		return r;
	case 'o': a->close_fd = true; return -1;
	case 'F': a->no_fork = true; return -1;
	case 'c':
		if (a->shell_command)
			return usage_error("lock takes one -c STRING");
		a->shell_command = optarg;
		return -1;
	case OPT_VERBOSE: a->verbose = true; return -1;
	case OPT_FD:
		a->fd = parse_fd(optarg);
		a->fd_command = true;
		return a->fd < 0 ? usage_error("invalid descriptor number '%s'", optarg) : -1;
	case OPT_ON_LOST: return parse_on_lost(optarg, a);
	case OPT_KILL_AFTER: return parse_seconds(optarg, &a->kill_after_ms);
	case OPT_TTL:
		if (!cli_seconds(optarg, &a->ttl_ms) || a->ttl_ms == 0)
			return usage_error("invalid TTL '%s' (seconds > 0)", optarg);
		return -1;
	case OPT_LIMIT:
		if ((r = parse_in_range(optarg, "limit", 1, 10000, &v)) < 0)
			a->limit = (uint32_t)v;
		return r;
	case OPT_OWNER: a->opts.owner = optarg; return -1;
	case OPT_MESSAGE: a->opts.message = optarg; return -1;
	case 'S': cli->socket = optarg; return -1;
	case 'h': fputs(usage, stdout); fputs(usage_status, stdout); return 0;
	default: fputs("Try 'hasp lock --help'.\n", stderr); return EXIT_USAGE;
	}
}

/* Options from argv[1] up to the first argument that is not one (or past
 * "--"). Returns -1 to go on, else the exit status; *next is the index of
 * that argument. */
static int parse_options(struct cli *cli, int argc, char **argv, struct lock_args *a, int *next)
{
	int c, r;

	optind = 0; /* glibc: start afresh on this argv */
	while ((c = getopt_long(argc, argv, "+k:xesunw:E:oFc:S:h", longopts, NULL)) != -1)
		if ((r = parse_option(cli, c, a)) >= 0)
			return r;
	*next = optind;
	return -1;
}

/* The combinations flock(1) refuses, and hasp's own. */
static int check_combinations(const struct lock_args *a)
{
	bool has_command = a->shell_command || *a->command;

	if (a->key && a->file)
		return usage_error("lock takes a FILE or a -k KEY, not both");
	if (a->fd_command && (a->key || a->file))
		return usage_error("--fd locks a descriptor: no FILE or -k KEY with it");
	if (!a->key && !a->file && !a->fd_command)
		return usage_error("lock needs a FILE, a -k KEY or a descriptor number");
	if (!has_command && (a->fd < 0 || a->fd_command))
		return usage_error("lock needs a command: [--] COMMAND [ARGS...] or -c STRING "
				   "(or, alone, a descriptor number)");
	if (a->shell_command && *a->command)
		return usage_error("-c takes exactly one command string; '%s' is one too many",
				   *a->command);
	if (a->unlock && a->fd < 0)
		return usage_error("-u unlocks a descriptor: hasp lock -u FD");
	if (a->no_fork && a->close_fd)
		return usage_error("the --no-fork and --close options are incompatible");
	if (a->no_fork && a->on_lost_given)
		return usage_error("--on-lost needs hasp to watch the command: not with --no-fork");
	if (a->ttl_ms && a->no_fork)
		return usage_error("--ttl needs hasp to renew the lease: not with --no-fork");
	if (a->ttl_ms && a->fd >= 0)
		return usage_error("--ttl is for a lease haspd holds: not with the fd form");
	if (a->limit && !a->key)
		return usage_error("--limit makes KEY a semaphore: only with -k KEY");
	if (a->limit && a->opts.mode == HASP_SHARED)
		return usage_error("a semaphore's holders are exclusive: --limit is not for -s");
	if (a->nkeys > 1 && (a->limit || a->ttl_ms))
		return usage_error("a lease over several keys (-k KEY -k KEY) has no --limit or --ttl");
	if (!cli_texts_valid("lock", a->key, a->opts.owner, a->opts.message))
		return EXIT_USAGE;
	return -1;
}

int lock_parse_args(struct cli *cli, int argc, char **argv, struct lock_args *a)
{
	int next, r = parse_options(cli, argc, argv, a, &next);

	if (r >= 0)
		return r;
	if (!a->key && !a->fd_command && next < argc) {
		/* FILE (or FD), then options again up to COMMAND, as flock(1)
		 * reads FILE -c COMMAND; FILE stands as their argv[0]. */
		int first = next;

		a->file = argv[first];
		r = parse_options(cli, argc - first, argv + first, a, &next);
		if (r >= 0)
			return r;
		next += first;
	}
	a->command = argv + next;
	if (a->file && !a->shell_command && !*a->command)
		a->fd = parse_fd(a->file);
	return check_combinations(a);
}

char **lock_argv(const struct lock_args *a, char **sh)
{
	if (!a->shell_command)
		return a->command;
	sh[0] = "/bin/sh";
	sh[1] = "-c";
	sh[2] = (char *)a->shell_command;
	sh[3] = NULL;
	return sh;
}
