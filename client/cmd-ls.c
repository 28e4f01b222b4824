#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
	"Usage: hasp ls [--prefix PREFIX] [--json] [--socket PATH]\n"
	"Lists every named lock and file with its holders and its waiters, in queue\n"
	"order, sorted by key or path. Client text is escaped: control characters\n"
	"show as \\n, \\r, \\t, \\e or \\xNN, bytes that are not UTF-8 as \\xNN, and a\n"
	"backslash as \\\\.\n"
	"  -p, --prefix PREFIX  only keys and paths that start with PREFIX\n"
	"  -j, --json           print a JSON array instead of a table (ASCII only)\n";

struct ls {
	const char *prefix;
	bool json;
	size_t shown;           /* resources printed so far */
};

static void print_escaped_col(const char *s, int width)
{
	char *e = cli_escape(s);

	printf("%-*s ", width, e ? e : "(out of memory)");
	free(e);
}

static void print_row(const char *key, const char *state, json_t *e, const char *age_field)
{
	char age[32], lease[24] = "-", pid[24];

	cli_format_age(age, sizeof(age), (long long)json_integer_value(json_object_get(e, age_field)));
	if (json_object_get(e, "lease"))
		snprintf(lease, sizeof(lease), "%lld",
			 (long long)json_integer_value(json_object_get(e, "lease")));
	snprintf(pid, sizeof(pid), "%lld", (long long)json_integer_value(json_object_get(e, "pid")));
	print_escaped_col(key, 24);
	printf("%-8s ", state);
	print_escaped_col(cli_str(e, "mode", "?"), 10);
	printf("%-7s %-8s ", lease, pid);
	print_escaped_col(cli_str(e, "owner", "-"), 12);
	printf("%-8s ", age);
	cli_put_escaped(stdout, cli_str(e, "message", ""));
	putchar('\n');
}

/* A named lock's key, or a file's path. */
static const char *resource_name(json_t *r)
{
	return cli_str(r, "key", cli_str(r, "path", "?"));
}

static void print_resource(json_t *r)
{
	const char *key = resource_name(r);
	size_t j;
	json_t *e;

	json_array_foreach(json_object_get(r, "holders"), j, e)
		print_row(key, "held", e, "held_ms");
	json_array_foreach(json_object_get(r, "waiters"), j, e)
		print_row(key, "waiting", e, "waiting_ms");
}

/* JSON text with ASCII only (JSON_ENSURE_ASCII), where DEL, which jansson
 * leaves raw, can stand only inside a string: written as \u007f there. */
static void print_json(const char *text)
{
	for (; *text; text++) {
		if (*text == 0x7f)
			fputs("\\u007f", stdout);
		else
			putchar(*text);
	}
}

/* One page: a table's rows, or a JSON array's elements. Returns 0, or -1
 * out of memory. */
static int print_page(struct ls *ls, json_t *resources)
{
	size_t i;
	json_t *r;

	json_array_foreach(resources, i, r) {
		if (ls->json) {
			/* ASCII: no control character or stray byte reaches a terminal. */
			char *text = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);

			if (!text)
				return -1;
			putchar(ls->shown ? ',' : '[');
			print_json(text);
			free(text);
		} else {
			if (ls->shown == 0)
				printf("%-24s %-8s %-10s %-7s %-8s %-12s %-8s %s\n", "KEY/PATH", "STATE",
				       "MODE", "LEASE", "PID", "OWNER", "AGE", "MESSAGE");
			print_resource(r);
		}
		ls->shown++;
	}
	return 0;
}

static void print_end(const struct ls *ls)
{
	if (ls->json)
		puts(ls->shown ? "]" : "[]");
	else if (ls->shown == 0 && ls->prefix) {
		fputs("nothing held or awaited under '", stdout);
		cli_put_escaped(stdout, ls->prefix);
		puts("'");
	} else if (ls->shown == 0) {
		puts("no leases held, nobody waiting");
	}
}

/* Every page, in order, printed as it comes. */
static int list_pages(hasp_client *c, struct ls *ls)
{
	struct hasp_list_options o = HASP_LIST_OPTIONS_INIT;
	char *after = NULL;

	o.prefix = ls->prefix;
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
		r = resources ? print_page(ls, resources) : -1;
		json_decref(resources);
		if (r < 0) {
			free(after);
			fputs("\nhasp: ls: out of memory\n", stderr);
			return 1;
		}
	} while (after);
	print_end(ls);
	return 0;
}

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

	optind = 0;
	while ((c = getopt_long(argc, argv, "+p:jhS:", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': ls->prefix = optarg; break;
		case 'j': ls->json = true; break;
		case 'S': cli->socket = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fputs("hasp: unexpected argument '", stderr);
		cli_put_escaped(stderr, argv[optind]);
		fprintf(stderr, "'\n%s", usage);
		return EXIT_USAGE;
	}
	return -1;
}

int cmd_ls(struct cli *cli, int argc, char **argv)
{
	struct ls ls = { NULL, false, 0 };
	int r = parse_ls_args(cli, argc, argv, &ls);
	hasp_client *c;

	if (r >= 0)
		return r;
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	r = list_pages(c, &ls);
	hasp_close(c);
	return r;
}
