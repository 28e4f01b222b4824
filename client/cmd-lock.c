/* hasp lock: run a command while holding a lease, flock(1)-style; or the
 * fd form, which locks a descriptor of the caller's. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lock.h"
#include "utf8.h"

static void default_message(struct lock_args *a, char **argv)
{
	size_t used = 0;

	for (; *argv && used < sizeof(a->message) - 1; argv++) {
		int n = snprintf(a->message + used, sizeof(a->message) - used, "%s%s",
				 used ? " " : "", *argv);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	if (used >= sizeof(a->message)) {
		used = sizeof(a->message) - 1;
		/* Not in the middle of a character. */
		while (used > 0 && ((unsigned char)a->message[used] & 0xc0) == 0x80)
			used--;
	}
	a->message[used] = '\0';
	if (!utf8_valid(a->message, used))
		return; /* a command line that is not UTF-8: no message */
	a->opts.message = a->message;
}

/* What COMMAND learns of its lease: its id, its fence, and what it is on. */
static int export_lease(const hasp_lease *l, const struct lock_args *a)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)hasp_lease_id(l));
	if (setenv("HASP_LEASE", num, 1) < 0)
		return -1;
	snprintf(num, sizeof(num), "%llu", (unsigned long long)hasp_lease_fence(l));
	if (setenv("HASP_FENCE", num, 1) < 0)
		return -1;
	unsetenv(a->key ? "HASP_PATH" : "HASP_KEY");
	return setenv(a->key ? "HASP_KEY" : "HASP_PATH", hasp_lease_key(l), 1);
}

static bool conflict(int r)
{
	return r == -HASP_E_BUSY || r == -HASP_E_TIMEOUT;
}

/* --ttl or --limit: the lock options, and the TTL and limit, as acquire
 * options. */
static int take_lease_acquire(hasp_client *c, const struct lock_args *a, hasp_lease **ret)
{
	struct hasp_acquire_options o = HASP_ACQUIRE_OPTIONS_INIT;

	o.mode = a->opts.mode;
	o.timeout_ms = a->opts.timeout_ms;
	o.ttl_ms = a->ttl_ms;
	o.limit = a->limit;
	o.owner = a->opts.owner;
	o.message = a->opts.message;
	o.waiting = a->opts.waiting;
	o.waiting_after_ms = a->opts.waiting_after_ms;
	o.userdata = a->opts.userdata;
	return a->file ? hasp_acquire_file(c, a->file, &o, ret) : hasp_acquire(c, a->key, &o, ret);
}

/* Several -k KEY: one lease over all of them, in the one mode. */
static int take_lease_keys(hasp_client *c, const struct lock_args *a, hasp_lease **ret)
{
	struct hasp_key keys[LOCK_KEYS_MAX];

	for (size_t i = 0; i < a->nkeys; i++)
		keys[i] = (struct hasp_key){ a->keys[i], a->opts.mode };
	return hasp_lock_keys(c, keys, a->nkeys, &a->opts, ret);
}

static int take_lease(hasp_client *c, const struct lock_args *a, hasp_lease **ret)
{
	if (a->nkeys > 1)
		return take_lease_keys(c, a, ret);
	if (a->fd >= 0)
		return hasp_lock_fd(c, a->fd, &a->opts, ret);
	if (a->ttl_ms || a->limit)
		return take_lease_acquire(c, a, ret);
	if (a->file)
		return hasp_lock_file(c, a->file, &a->opts, ret);
	return hasp_lock(c, a->key, &a->opts, ret);
}

/* flock(1)'s --verbose line, on stdout as there. */
static void say_time_taken(struct timespec start)
{
	struct timespec end;
	long long ns;

	clock_gettime(CLOCK_MONOTONIC, &end);
	ns = (long long)(end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
	printf("%s: getting lock took %lld.%06lld seconds\n", CLI_NAME,
	       ns / 1000000000LL, ns % 1000000000LL / 1000);
}

/* Like flock(1), silent on a conflict unless --verbose or on a terminal,
 * where naming the holder is worth the most. */
static int report_failure(hasp_client *c, const struct lock_args *a, int r)
{
	if (!conflict(r) || a->verbose || isatty(STDERR_FILENO))
		cli_report(c, r);
	return cli_lease_status(r, a->key, a->file && a->fd < 0, a->conflict_code);
}

/* -u: the fd form's unlock, done here: the flock is the caller's. */
static int unlock_fd(int fd)
{
	if (flock(fd, LOCK_UN) == 0)
		return 0;
	fprintf(stderr, "%s: %d: %s\n", CLI_NAME, fd, strerror(errno));
	return errno == EBADF ? EXIT_DATAERR : EXIT_OSERR;
}

/* -F: COMMAND in hasp's place, holding the session itself. */
static int exec_command(hasp_client *c, const struct lock_args *a)
{
	char *sh[4], **argv = lock_argv(a, sh);

	fflush(NULL);
	fcntl(hasp_client_fd(c), F_SETFD, 0);
	execvp(argv[0], argv);
	fprintf(stderr, "%s: cannot run %s: %s\n", CLI_NAME, argv[0], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}

/* With the lease held: COMMAND, or nothing more for the fd form. */
static int use_lease(hasp_client *c, const hasp_lease *l, const struct lock_args *a)
{
	char *sh[4];

	if (a->fd >= 0 && !a->fd_command)
		return 0;
	if (export_lease(l, a) < 0) {
		fprintf(stderr, "%s: cannot set the lease's environment: %s\n", CLI_NAME,
			strerror(errno));
		return EXIT_OSERR;
	}
	if (a->verbose)
		printf("%s: executing %s\n", CLI_NAME, lock_argv(a, sh)[0]);
	if (a->no_fork)
		return exec_command(c, a);
	return lock_run(c, l, a);
}

int cmd_lock(struct cli *cli, int argc, char **argv)
{
	struct lock_args a = { .fd = -1, .opts = HASP_LOCK_OPTIONS_INIT, .conflict_code = 1,
			       .kill_after_ms = 10000 };
	struct cli_waiting w = { cli, NULL, NULL };
	struct timespec start;
	hasp_client *c;
	hasp_lease *lease;
	int r = lock_parse_args(cli, argc, argv, &a);

	if (r >= 0)
		return r;
	if (a.unlock)
		return unlock_fd(a.fd);
	if (a.fd >= 0 && fcntl(a.fd, F_GETFD) < 0) {
		fprintf(stderr, "%s: %d: %s\n", CLI_NAME, a.fd, strerror(errno));
		return EXIT_DATAERR; /* as flock(1) */
	}
	if (!a.opts.owner)
		a.opts.owner = cli_user_name();
	if (!a.opts.message && a.fd >= 0 && !a.fd_command) {
		/* The fd form: whose descriptor waits (the shell's, as a rule). */
		snprintf(a.message, sizeof(a.message), "descriptor %d of pid %d", a.fd,
			 (int)getppid());
		a.opts.message = a.message;
	} else if (!a.opts.message) {
		default_message(&a, a.shell_command ? (char *[]){ (char *)a.shell_command, NULL }
						    : a.command);
	}
	if (a.opts.timeout_ms != 0 && (a.verbose || isatty(STDERR_FILENO))) {
		w.key = a.key;
		w.file = a.fd < 0 ? a.file : NULL;
		a.opts.waiting = cli_notify_waiting;
		a.opts.waiting_after_ms = 1000;
		a.opts.userdata = &w;
	}
	cli->name = "hasp lock";
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	clock_gettime(CLOCK_MONOTONIC, &start);
	r = take_lease(c, &a, &lease);
	if (r < 0) {
		r = report_failure(c, &a, r);
		hasp_close(c);
		return r;
	}
	if (a.verbose)
		say_time_taken(start);
	r = use_lease(c, lease, &a);
	hasp_lease_free(lease);
	hasp_close(c);
	return r;
}
