#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
	"Usage: hasp ls [--json] [--socket PATH]\n"
	"Lists every named lock and file with its holders and its waiters, in queue\n"
	"order.\n"
	"  -j, --json  print the daemon's JSON array instead of a table\n";

static void print_row(const char *key, const char *state, json_t *e, const char *age_field)
{
	char age[32], lease[24] = "-";

	cli_format_age(age, sizeof(age), (long long)json_integer_value(json_object_get(e, age_field)));
	if (json_object_get(e, "lease"))
		snprintf(lease, sizeof(lease), "%lld",
			 (long long)json_integer_value(json_object_get(e, "lease")));
	printf("%-24s %-8s %-10s %-7s %-8lld %-12s %-8s %s\n", key, state,
	       cli_str(e, "mode", "?"), lease, (long long)json_integer_value(json_object_get(e, "pid")),
	       cli_str(e, "owner", "-"), age, cli_str(e, "message", ""));
}

/* A named lock's key, or a file's path. */
static const char *resource_name(json_t *r)
{
	return cli_str(r, "key", cli_str(r, "path", "?"));
}

static int by_key(const void *a, const void *b)
{
	const char *ka = resource_name(*(json_t *const *)a);
	const char *kb = resource_name(*(json_t *const *)b);

	return strcmp(ka, kb);
}

static void print_table(json_t *resources)
{
	size_t n = json_array_size(resources), i, j;
	json_t **v = calloc(n ? n : 1, sizeof(*v));
	json_t *e;

	if (n == 0 || !v) {
		puts("no leases held, nobody waiting");
		free(v);
		return;
	}
	for (i = 0; i < n; i++)
		v[i] = json_array_get(resources, i);
	qsort(v, n, sizeof(*v), by_key);
	printf("%-24s %-8s %-10s %-7s %-8s %-12s %-8s %s\n", "KEY/PATH", "STATE", "MODE", "LEASE",
	       "PID", "OWNER", "AGE", "MESSAGE");
	for (i = 0; i < n; i++) {
		const char *key = resource_name(v[i]);

		json_array_foreach(json_object_get(v[i], "holders"), j, e)
			print_row(key, "held", e, "held_ms");
		json_array_foreach(json_object_get(v[i], "waiters"), j, e)
			print_row(key, "waiting", e, "waiting_ms");
	}
	free(v);
}

int cmd_ls(struct cli *cli, int argc, char **argv)
{
	bool json = false;
	int r = cli_simple_args(cli, argc, argv, usage, &json);
	hasp_client *c;
	json_t *resources;
	char *text;

	if (r >= 0)
		return r;
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	r = hasp_list_json(c, &text);
	if (r < 0) {
		r = cli_error(c, "ls", r);
		hasp_close(c);
		return r;
	}
	hasp_close(c);
	if (json) {
		puts(text);
	} else if ((resources = json_loads(text, 0, NULL))) {
		print_table(resources);
		json_decref(resources);
	}
	free(text);
	return 0;
}
