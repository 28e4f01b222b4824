#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
	"Usage: hasp ls [--prefix PREFIX] [--json] [--socket PATH] [NAME|PREFIX* ...]\n"
	"Lists every named lock and file with its holders and its waiters, in queue\n"
	"order, sorted by key or path; or only those each argument names: a key or a\n"
	"file's path exactly (a file as given, and as its real path), or, ending in\n"
	"'*', every key and path that starts with what comes before it ('jobs/*').\n"
	"  -p, --prefix PREFIX  only keys and paths that start with PREFIX ('PREFIX*')\n"
	"  -j, --json           print a JSON array instead of a table (ASCII only)\n"
	"Columns: USER is the user of the process that asked (as the kernel says);\n"
	"PID is PID@HOST for a cluster key's holder or waiter (haspd(8)).\n"
	"OWNER is what the client said. SINCE is when it was granted, or queued, in\n"
	"local time; AGE how long ago. MODE is exclusive or shared, or 'limit N' on\n"
	"a semaphore of N places (each an exclusive lease). A file whose path no\n"
	"longer names it shows '(deleted)' or '(moved)' after the path. WAITING FOR\n"
	"says why a waiter waits: the lease it conflicts with ('lease 31', '+N'\n"
	"more), the waiter ahead of it ('queue: pid 412'), a flock(2) lock held\n"
	"outside hasp ('outside flock'), haspd's fence store ('fence'), or, for a\n"
	"lease over several keys, its other keys ('its other keys'). Client\n"
	"text is escaped: control characters show as \\n, \\r, \\t, \\e or \\xNN,\n"
	"bytes that are not UTF-8 as \\xNN, and a backslash as \\\\.\n";

/* What an argument asks for: the names that start with name, or name
 * itself. */
struct ls_filter {
	const char *name;       /* NULL: every name */
	char *owned;            /* name, when it is ours to free */
	bool exact;
};

/* The last user name looked up: rows of one user come together. */
struct ls_user {
	long long uid;          /* -1: none yet */
	char name[64];
};

struct ls {
	struct ls_filter *filters;
	size_t nfilters;
	bool json;
	size_t shown;           /* resources printed so far */
	struct ls_user user;
};

static void print_escaped_col(const char *s, int width)
{
	char *e = cli_escape(s);

	printf("%-*s ", width, e ? e : "(out of memory)");
	free(e);
}

static long long int_of(json_t *o, const char *name)
{
	return (long long)json_integer_value(json_object_get(o, name));
}

/* The name of the user with this uid, or the number. */
static const char *user_name(struct ls_user *u, long long uid)
{
	struct passwd *pw;

	if (u->uid == uid)
		return u->name;
	pw = uid >= 0 && uid <= (long long)UINT_MAX ? getpwuid((uid_t)uid) : NULL;
	if (pw && pw->pw_name)
		snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
	else
		snprintf(u->name, sizeof(u->name), "%lld", uid);
	u->uid = uid;
	return u->name;
}

/* "2026-11-30 14:03:07", local time, from the daemon's ms since the epoch;
 * "-" from a daemon that does not say. */
static void format_since(char *buf, size_t size, json_t *e)
{
	json_t *ms = json_object_get(e, "since_ms");
	time_t t = (time_t)(json_integer_value(ms) / 1000);
	struct tm tm;

	if (!json_is_integer(ms) || !localtime_r(&t, &tm) ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, size, "-");
}

/* Why waiter j of r waits, in a few words. */
static void format_waiting_for(char *buf, size_t size, json_t *r, size_t j)
{
	json_t *waiters = json_object_get(r, "waiters"), *holders = json_object_get(r, "holders");
	const char *why = cli_str(json_array_get(waiters, j), "waiting_for", "-");
	long long more = (long long)json_array_size(holders) - 1 + int_of(r, "holders_omitted");

	if (strcmp(why, "queue") == 0 && j > 0)
		snprintf(buf, size, "queue: pid %lld", int_of(json_array_get(waiters, j - 1), "pid"));
	else if (strcmp(why, "holders") == 0 && json_array_size(holders) > 0 && more > 0)
		snprintf(buf, size, "lease %lld +%lld", int_of(json_array_get(holders, 0), "lease"),
			 more);
	else if (strcmp(why, "holders") == 0 && json_array_size(holders) > 0)
		snprintf(buf, size, "lease %lld", int_of(json_array_get(holders, 0), "lease"));
	else if (strcmp(why, "outside_flock") == 0)
		snprintf(buf, size, "outside flock");
	else if (strcmp(why, "keys") == 0)
		snprintf(buf, size, "its other keys");
	else
		snprintf(buf, size, "%s", why);
}

/* For a holder with a TTL, when it ends: "expires in 4m05s"; else "-". */
static void format_expiry(char *buf, size_t size, json_t *e)
{
	char age[32];

	if (!json_is_integer(json_object_get(e, "expires_in_ms"))) {
		snprintf(buf, size, "-");
		return;
	}
	cli_format_age(age, sizeof(age), int_of(e, "expires_in_ms"));
	snprintf(buf, size, "expires in %s", age);
}

/* A key, or a file's path and what became of it: "/tmp/x (deleted)". */
static void print_name(json_t *r)
{
	const char *state = cli_str(r, "path_state", NULL);
	char *name = cli_escape(cli_str(r, "key", cli_str(r, "path", "?")));
	char *s = state ? cli_escape(state) : NULL;
	size_t n = name ? strlen(name) + (s ? strlen(s) + 4 : 0) + 1 : 0;
	char *both = name ? malloc(n) : NULL;

	if (both)
		snprintf(both, n, s ? "%s (%s)" : "%s", name, s);
	printf("%-24s ", both ? both : "(out of memory)");
	free(both);
	free(s);
	free(name);
}

static void print_row(struct ls *ls, json_t *r, const char *state, json_t *e, const char *age_field,
		      const char *why)
{
	char age[32], lease[24] = "-", pid[300], since[32], limit[24];

	if (json_object_get(r, "limit"))
		snprintf(limit, sizeof(limit), "limit %lld", int_of(r, "limit"));
	cli_format_age(age, sizeof(age), int_of(e, age_field));
	format_since(since, sizeof(since), e);
	if (json_object_get(e, "lease"))
		snprintf(lease, sizeof(lease), "%lld", int_of(e, "lease"));
	/* A cluster key's holder or waiter may be on another host. */
	if (json_object_get(e, "host"))
		snprintf(pid, sizeof(pid), "%lld@%.255s", int_of(e, "pid"), cli_str(e, "host", ""));
	else
		snprintf(pid, sizeof(pid), "%lld", int_of(e, "pid"));
	print_name(r);
	printf("%-8s ", state);
	print_escaped_col(json_object_get(r, "limit") ? limit : cli_str(e, "mode", "?"), 10);
	printf("%-7s ", lease);
	print_escaped_col(pid, 8);
	print_escaped_col(user_name(&ls->user, int_of(e, "uid")), 8);
	print_escaped_col(cli_str(e, "owner", "-"), 12);
	printf("%-19s %-8s ", since, age);
	print_escaped_col(why, 16);
	cli_put_escaped(stdout, cli_str(e, "message", ""));
	putchar('\n');
}

static void print_resource(struct ls *ls, json_t *r)
{
	char why[64];
	size_t j;
	json_t *e;

	json_array_foreach(json_object_get(r, "holders"), j, e) {
		format_expiry(why, sizeof(why), e);
		print_row(ls, r, json_is_true(json_object_get(e, "detached")) ||
			  json_is_true(json_object_get(e, "checkout")) ? "checkout" : "held",
			  e, "held_ms", why);
	}
	json_array_foreach(json_object_get(r, "waiters"), j, e) {
		format_waiting_for(why, sizeof(why), r, j);
		print_row(ls, r, "waiting", e, "waiting_ms", why);
	}
}

static void print_header(void)
{
	printf("%-24s %-8s %-10s %-7s %-8s %-8s %-12s %-19s %-8s %-16s %s\n", "KEY/PATH", "STATE",
	       "MODE", "LEASE", "PID", "USER", "OWNER", "SINCE", "AGE", "WAITING FOR", "MESSAGE");
}

/* One resource: a table's rows, or a JSON array's element. Returns 0, or
 * -1 out of memory. */
static int print_one(struct ls *ls, json_t *r)
{
	if (ls->json) {
		/* ASCII: no control character or stray byte reaches a terminal. */
		putchar(ls->shown ? ',' : '[');
		if (cli_print_json(r) < 0)
			return -1;
	} else {
		if (ls->shown == 0)
			print_header();
		print_resource(ls, r);
	}
	ls->shown++;
	return 0;
}

/* One page's resources that f asks for. Returns 1 when no later page can
 * have any (names come in byte order), 0 to go on, -1 out of memory. */
static int print_page(struct ls *ls, const struct ls_filter *f, json_t *resources)
{
	size_t i;
	json_t *r;

	json_array_foreach(resources, i, r) {
		const char *name = cli_str(r, "key", cli_str(r, "path", ""));
		int c = f->exact ? strcmp(name, f->name) : 0;

		if (c > 0)
			return 1;
		if (c == 0 && print_one(ls, r) < 0)
			return -1;
	}
	return 0;
}

static void print_nothing(const struct ls *ls)
{
	if (ls->nfilters == 1 && !ls->filters[0].name) {
		puts("no leases held, nobody waiting");
		return;
	}
	fputs("nothing held or awaited", stdout);
	for (size_t i = 0; i < ls->nfilters; i++) {
		fputs(i ? ", " : " ", stdout);
		fputs(ls->filters[i].exact ? "as '" : "under '", stdout);
		cli_put_escaped(stdout, ls->filters[i].name ? ls->filters[i].name : "");
		putchar('\'');
	}
	putchar('\n');
}

static void print_end(const struct ls *ls)
{
	if (ls->json)
		puts(ls->shown ? "]" : "[]");
	else if (ls->shown == 0)
		print_nothing(ls);
}

/* Every page f asks for, in order, printed as it comes. */
static int list_pages(hasp_client *c, struct ls *ls, const struct ls_filter *f)
{
	struct hasp_list_options o = HASP_LIST_OPTIONS_INIT;
	char *after = NULL;

	o.prefix = f->name && *f->name ? f->name : NULL;
	do {
		char *text = NULL, *next = NULL;
		json_t *resources;
		int r;

		o.after = after;
		r = hasp_list_page_json(c, &o, &text, &next);
		free(after);
		if (r < 0)
			return cli_error(c, "ls", r);
		after = next;
		resources = json_loads(text, 0, NULL);
		free(text);
		r = resources ? print_page(ls, f, resources) : -1;
		json_decref(resources);
		if (r < 0) {
			free(after);
			fputs("\nhasp: ls: out of memory\n", stderr);
			return 1;
		}
		if (r > 0) {
			free(after);
			after = NULL;
		}
	} while (after);
	return 0;
}

static void add_filter(struct ls *ls, const char *name, char *owned, bool exact)
{
	ls->filters[ls->nfilters++] = (struct ls_filter){ name, owned, exact };
}

/* An argument: 'PREFIX*', or a name, and a file's real path when it
 * differs (list shows the path the daemon's descriptor has). Returns 0,
 * or -1 out of memory. */
static int add_argument(struct ls *ls, const char *arg)
{
	size_t n = strlen(arg);
	char *real;

	if (n > 0 && arg[n - 1] == '*') {
		char *prefix = strndup(arg, n - 1);

		if (!prefix)
			return -1;
		add_filter(ls, prefix, prefix, false);
		return 0;
	}
	add_filter(ls, arg, NULL, true);
	real = realpath(arg, NULL);
	if (real && strcmp(real, arg) != 0)
		add_filter(ls, real, real, true);
	else
		free(real);
	return 0;
}

static void ls_done(struct ls *ls)
{
	for (size_t i = 0; i < ls->nfilters; i++)
		free(ls->filters[i].owned);
	free(ls->filters);
}

/* The filters from --prefix and the arguments (everything without any).
 * Returns -1 to go on, else the exit status. */
static int parse_ls_args(struct cli *cli, int argc, char **argv, struct ls *ls)
{
	static const struct option longopts[] = {
		{ "prefix", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	ls->filters = calloc(2 * (size_t)argc + 1, sizeof(*ls->filters));
	if (!ls->filters) {
		fputs("hasp: ls: out of memory\n", stderr);
		return 1;
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, "+p:jhS:", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': add_filter(ls, optarg, NULL, false); break;
		case 'j': ls->json = true; break;
		case 'S': cli->socket = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	for (; optind < argc; optind++) {
		if (add_argument(ls, argv[optind]) < 0) {
			fputs("hasp: ls: out of memory\n", stderr);
			return 1;
		}
	}
	if (ls->nfilters == 0)
		add_filter(ls, NULL, NULL, false);
	return -1;
}

int cmd_ls(struct cli *cli, int argc, char **argv)
{
	struct ls ls = { .user = { .uid = -1 } };
	int r = parse_ls_args(cli, argc, argv, &ls);
	hasp_client *c;

	if (r >= 0) {
		ls_done(&ls);
		return r;
	}
	c = cli_connect(cli);
	if (!c) {
		ls_done(&ls);
		return EXIT_UNAVAILABLE;
	}
	r = 0;
	for (size_t i = 0; i < ls.nfilters && r == 0; i++)
		r = list_pages(c, &ls, &ls.filters[i]);
	if (r == 0)
		print_end(&ls);
	hasp_close(c);
	ls_done(&ls);
	return r;
}
