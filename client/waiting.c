/* What hasp lock and hasp checkout say while they wait on a terminal:
 * whom for, asked through a connection of its own (the first one is busy
 * waiting). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "utf8.h"

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

void cli_notify_waiting(void *userdata)
{
	const struct cli_waiting *w = userdata;
	hasp_client *c = NULL;
	json_t *resource = NULL, *holders, *h;
	char age[32], path[3 * PATH_MAX];
	size_t i;

	if (hasp_connect(w->cli->socket, &c) < 0)
		goto out;
	if (w->key)
		resource = find_resource(c, "key", w->key);
	else if (w->file && shown_path(w->file, path, sizeof(path)))
		resource = find_resource(c, "path", path);
	else
		goto out;
	holders = json_object_get(resource, "holders");
	fprintf(stderr, "%s: waiting for '", CLI_NAME);
	cli_put_escaped(stderr, w->key ? w->key : w->file);
	fputs("', held by", stderr);
	json_array_foreach(holders, i, h) {
		cli_format_age(age, sizeof(age), (long long)json_integer_value(json_object_get(h, "held_ms")));
		fprintf(stderr, "%s %s %lld (", i ? "," : "",
			json_is_true(json_object_get(h, "detached")) ? "a checkout of pid" : "pid",
			(long long)json_integer_value(json_object_get(h, "pid")));
		cli_put_escaped(stderr, cli_str(h, "owner", "no owner"));
		fputs(", ", stderr);
		cli_put_escaped(stderr, cli_str(h, "mode", "?"));
		fprintf(stderr, ", for %s)", age);
	}
	fputs(json_array_size(holders) ? "\n"
	      : w->key ? " nobody: queued behind other waiters\n"
	      : " a process outside hasp (flock), or queued behind other waiters\n", stderr);
out:
	json_decref(resource);
	hasp_close(c);
}
