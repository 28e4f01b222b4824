/* hasp lock: run a command while holding a lease, flock(1)-style. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "utf8.h"

static const char usage[] =
	"Usage: hasp lock [OPTIONS] FILE [--] COMMAND [ARGS...]\n"
	"       hasp lock [OPTIONS] -k KEY [--] COMMAND [ARGS...]\n"
	"       hasp lock [OPTIONS] FILE|-k KEY -c 'SHELL COMMAND'\n"
	"Runs COMMAND while holding a lease on FILE or on the named lock KEY, and\n"
	"exits with its status. A FILE (created if missing) is locked with a real\n"
	"flock(2) lock held by haspd, so flock(1) and other flock users respect it.\n"
	"The lease lasts as long as COMMAND (or anything it passes the connection\n"
	"to) runs, even if hasp itself is killed. Options go before FILE.\n"
	"\n"
	"  -k, --key KEY          a named lock instead of a file (1 to 1024 bytes)\n"
	"  -x, -e, --exclusive    an exclusive lease (the default)\n"
	"  -s, --shared           a shared lease: shared holders coexist\n"
	"  -n, --nonblock, --nb, --nonblocking\n"
	"                         fail at once if the lease cannot be had\n"
	"  -w, --timeout, --wait SECONDS\n"
	"                         fail if not granted within SECONDS (decimals allowed)\n"
	"  -E, --conflict-exit-code CODE\n"
	"                         exit with CODE when the lease was not granted (default 1)\n"
	"  -o, --close            do not pass the connection to COMMAND: the lease ends\n"
	"                         when hasp exits, even if COMMAND's children live on\n"
	"      --owner NAME       who holds it, shown by 'hasp ls' (default: user name)\n"
	"      --message TEXT     why, shown by 'hasp ls' (default: the command line)\n"
	"  -c, --command STRING   run STRING with /bin/sh -c\n"
	"  -S, --socket PATH      haspd's socket\n"
	"  -h, --help             print this help\n"
	"\n"
	"Exit status: COMMAND's (128+N if killed by signal N); 1 or CODE when the\n"
	"lease was busy or timed out; 64 for a usage error; 69 when haspd cannot be\n"
	"reached or will not serve (a limit), or its socket is not to be trusted\n"
	"(see 'hasp --help'); 126/127 when COMMAND cannot be run.\n"
	"A lease that ended while COMMAND ran (revoked, or haspd gone) is reported\n"
	"with a warning.\n"
	"COMMAND finds its lease in its environment: HASP_LEASE (the lease id),\n"
	"HASP_FENCE (its fencing token), and HASP_KEY or HASP_PATH.\n";

struct lock_args {
	const struct cli *cli;
	const char *key;
	const char *file;
	const char *shell_command;
	struct hasp_lock_options opts;
	int conflict_code;
	bool close_fd;
	char **command;
	char message[1025];
};

static int parse_seconds(const char *s, int64_t *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0) || v > 1e9) {
		fprintf(stderr, "hasp: invalid timeout '%s' (seconds, >= 0)\n", s);
		return -1;
	}
	*ms = (int64_t)(v * 1000.0 + 0.5);
	return 0;
}

static int parse_int(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 255) {
		fprintf(stderr, "hasp: invalid exit code '%s' (0 to 255)\n", s);
		return -1;
	}
	*out = (int)v;
	return 0;
}

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

static int parse_lock_args(struct cli *cli, int argc, char **argv, struct lock_args *a)
{
	enum { OPT_OWNER = 256, OPT_MESSAGE };
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "exclusive", no_argument, NULL, 'x' },
		{ "shared", no_argument, NULL, 's' },
		{ "nonblock", no_argument, NULL, 'n' },
		{ "nb", no_argument, NULL, 'n' },
		{ "nonblocking", no_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 'w' },
		{ "wait", required_argument, NULL, 'w' },
		{ "conflict-exit-code", required_argument, NULL, 'E' },
		{ "close", no_argument, NULL, 'o' },
		{ "owner", required_argument, NULL, OPT_OWNER },
		{ "message", required_argument, NULL, OPT_MESSAGE },
		{ "command", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "+k:xesnw:E:oc:S:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if (a->key) {
				fputs("hasp: lock takes one -k KEY\nTry 'hasp lock --help'.\n", stderr);
				return EXIT_USAGE;
			}
			a->key = optarg;
			break;
		case 'x': case 'e': a->opts.mode = HASP_EXCLUSIVE; break;
		case 's': a->opts.mode = HASP_SHARED; break;
		case 'n': a->opts.timeout_ms = 0; break;
		case 'w':
			if (parse_seconds(optarg, &a->opts.timeout_ms) < 0)
				return EXIT_USAGE;
			break;
		case 'E':
			if (parse_int(optarg, &a->conflict_code) < 0)
				return EXIT_USAGE;
			break;
		case 'o': a->close_fd = true; break;
		case OPT_OWNER: a->opts.owner = optarg; break;
		case OPT_MESSAGE: a->opts.message = optarg; break;
		case 'c': a->shell_command = optarg; break;
		case 'S': cli->socket = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs("Try 'hasp lock --help'.\n", stderr); return EXIT_USAGE;
		}
	}
	if (!a->key && optind < argc) {
		a->file = argv[optind++];
		if (optind < argc && strcmp(argv[optind], "--") == 0)
			optind++;
		/* flock(1)'s FILE -c COMMAND: the option after FILE. */
		else if (!a->shell_command && optind + 1 < argc &&
			 (strcmp(argv[optind], "-c") == 0 || strcmp(argv[optind], "--command") == 0)) {
			a->shell_command = argv[optind + 1];
			optind += 2;
		}
	}
	a->command = argv + optind;
	if (!a->key && !a->file) {
		fputs("hasp: lock needs a FILE or -k KEY\nTry 'hasp lock --help'.\n", stderr);
		return EXIT_USAGE;
	}
	if (!a->shell_command == !*a->command) {
		fputs("hasp: lock needs a command: -- COMMAND [ARGS...] or -c STRING\n"
		      "Try 'hasp lock --help'.\n", stderr);
		return EXIT_USAGE;
	}
	return -1;
}

static void default_owner(struct lock_args *a)
{
	struct passwd *pw;

	if (a->opts.owner)
		return;
	pw = getpwuid(getuid());
	a->opts.owner = pw ? pw->pw_name : getenv("USER");
}

/* The list's entry for name (a key, or a path as the daemon shows it):
 * the first page of names that start with it, in whose order name itself
 * comes first. A new reference, or NULL. */
static json_t *find_resource(hasp_client *c, const char *field, const char *name)
{
	struct hasp_list_options o = HASP_LIST_OPTIONS_INIT;
	json_t *resources, *r, *found = NULL;
	char *text = NULL, *next = NULL;
	size_t i;

	o.prefix = name;
	o.limit = 16;
	if (hasp_list_page_json(c, &o, &text, &next) < 0)
		return NULL;
	resources = json_loads(text, 0, NULL);
	json_array_foreach(resources, i, r)
		if (!found && strcmp(cli_str(r, field, ""), name) == 0)
			found = json_incref(r);
	json_decref(resources);
	free(text);
	free(next);
	return found;
}

/* A file's path as the daemon shows it: U+FFFD for what is not UTF-8. */
static bool shown_path(const char *file, char *buf, size_t size)
{
	char path[PATH_MAX];
	size_t n;

	if (!realpath(file, path) || (n = strlen(path)) * 3 >= size)
		return false;
	buf[utf8_shown(path, n, buf)] = '\0';
	return true;
}

/* After a second of waiting on a terminal: say whom we wait for, through a
 * second connection (the first one is busy waiting). */
static void notify_waiting(void *userdata)
{
	const struct lock_args *a = userdata;
	hasp_client *c = NULL;
	json_t *resource = NULL, *holders, *h;
	char age[32], path[3 * PATH_MAX];
	size_t i;

	if (hasp_connect(a->cli->socket, &c) < 0)
		goto out;
	if (a->key)
		resource = find_resource(c, "key", a->key);
	else if (shown_path(a->file, path, sizeof(path)))
		resource = find_resource(c, "path", path);
	else
		goto out;
	holders = json_object_get(resource, "holders");
	fputs("hasp: waiting for '", stderr);
	cli_put_escaped(stderr, a->key ? a->key : a->file);
	fputs("', held by", stderr);
	json_array_foreach(holders, i, h) {
		cli_format_age(age, sizeof(age), (long long)json_integer_value(json_object_get(h, "held_ms")));
		fprintf(stderr, "%s pid %lld (", i ? "," : "",
			(long long)json_integer_value(json_object_get(h, "pid")));
		cli_put_escaped(stderr, cli_str(h, "owner", "no owner"));
		fputs(", ", stderr);
		cli_put_escaped(stderr, cli_str(h, "mode", "?"));
		fprintf(stderr, ", for %s)", age);
	}
	fputs(json_array_size(holders) ? "\n"
	      : a->key ? " nobody: queued behind other waiters\n"
	      : " a process outside hasp (flock), or queued behind other waiters\n", stderr);
out:
	json_decref(resource);
	hasp_close(c);
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
	return setenv(a->key ? "HASP_KEY" : "HASP_PATH", a->key ? a->key : a->file, 1);
}

static int run_command(hasp_client *c, struct lock_args *a)
{
	char *sh[] = { "/bin/sh", "-c", (char *)a->shell_command, NULL };
	char **argv = a->shell_command ? sh : a->command;
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
	int fd = hasp_client_fd(c), status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "hasp: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		if (a->close_fd)
			close(fd);
		else
			fcntl(fd, F_SETFD, 0); /* COMMAND inherits the session */
		execvp(argv[0], argv);
		fprintf(stderr, "hasp: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	/* Like system(3): the terminal's ^C and ^\ are for COMMAND, whose
	 * status is the one to report. */
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 1;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* The lease may have ended while COMMAND ran: an administrator revoked it,
 * or haspd stopped. COMMAND's status stands; the user is told. */
static void warn_if_lost(hasp_client *c, const hasp_lease *l, const struct lock_args *a)
{
	char *name = cli_escape(a->key ? a->key : a->file);
	int r = hasp_lease_revoked(c, l);

	if (r == 1)
		fprintf(stderr, "hasp: warning: the lease on '%s' was revoked while the command "
			"ran\n", name ? name : "?");
	else if (r == -ECONNRESET)
		fprintf(stderr, "hasp: warning: the lease on '%s' was lost while the command ran: "
			"haspd went away (it stopped, crashed or restarted)\n", name ? name : "?");
	else if (r < 0) {
		fprintf(stderr, "hasp: warning: cannot tell whether the lease on '%s' lasted while "
			"the command ran: ", name ? name : "?");
		cli_put_escaped(stderr, hasp_client_errmsg(c));
		fputc('\n', stderr);
	}
	free(name);
}

int cmd_lock(struct cli *cli, int argc, char **argv)
{
	struct lock_args a = { .cli = cli, .opts = HASP_LOCK_OPTIONS_INIT, .conflict_code = 1 };
	hasp_client *c;
	hasp_lease *lease;
	int r = parse_lock_args(cli, argc, argv, &a);

	if (r >= 0)
		return r;
	default_owner(&a);
	if (!a.opts.message)
		default_message(&a, a.shell_command ? (char *[]){ (char *)a.shell_command, NULL }
						    : a.command);
	if (a.opts.timeout_ms != 0 && isatty(STDERR_FILENO)) {
		a.opts.waiting = notify_waiting;
		a.opts.waiting_after_ms = 1000;
		a.opts.userdata = &a;
	}
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	if (a.file)
		r = hasp_lock_file(c, a.file, &a.opts, &lease);
	else
		r = hasp_lock(c, a.key, &a.opts, &lease);
	if (r < 0) {
		fputs("hasp: ", stderr);
		cli_put_escaped(stderr, *hasp_client_errmsg(c) ? hasp_client_errmsg(c)
							       : hasp_strerror(r));
		fputc('\n', stderr);
		hasp_close(c);
		if (r == -HASP_E_BUSY || r == -HASP_E_TIMEOUT)
			return a.conflict_code;
		return cli_status(r);
	}
	if (export_lease(lease, &a) < 0) {
		fprintf(stderr, "hasp: cannot set the lease's environment: %s\n", strerror(errno));
		r = 71; /* EX_OSERR */
	} else {
		r = run_command(c, &a);
	}
	warn_if_lost(c, lease, &a);
	hasp_lease_free(lease);
	hasp_close(c);
	return r;
}
