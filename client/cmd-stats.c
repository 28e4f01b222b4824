#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
	"Usage: hasp stats [--json] [--socket PATH]\n"
	"Shows haspd's gauges (sessions, resources, leases, checkouts, waiters) and\n"
	"counters, then how the leases granted since haspd started (the checkouts it\n"
	"restored from its journal at its start among them) have ended: released (or\n"
	"checked in), ended with their session (the client closed or died), revoked,\n"
	"expired (their TTL ran out), or handed over (the fd form of hasp lock: the\n"
	"flock is the client's descriptor's), and how many are held now;\n"
	"granted is always ended plus held.\n"
	"  -j, --json  print the daemon's JSON object instead of a table\n";

static void print_group(const char *title, json_t *group)
{
	const char *name;
	json_t *v;

	printf("%s:\n", title);
	json_object_foreach(group, name, v)
		printf("  %-24s %lld\n", name, (long long)json_integer_value(v));
}

static long long stat_of(json_t *group, const char *name)
{
	return (long long)json_integer_value(json_object_get(group, name));
}

/* Grants against ends: every lease granted (a checkout restored at the
 * start counts as granted) has ended, or is held now. */
static void print_balance(json_t *gauges, json_t *counters)
{
	long long restored = stat_of(counters, "restored");
	long long granted = stat_of(counters, "granted_at_once") +
			    stat_of(counters, "granted_after_wait") + restored;
	long long released = stat_of(counters, "releases"), revoked = stat_of(counters, "revokes");
	long long disconnected = stat_of(counters, "disconnects");
	long long expired = stat_of(counters, "expired");
	long long handed = stat_of(counters, "handed_over");

	printf("leases:\n");
	printf("  %-24s %lld\n", "granted", granted);
	printf("    %-22s %lld\n", "restored", restored);
	printf("  %-24s %lld\n", "ended", released + disconnected + revoked + expired + handed);
	printf("    %-22s %lld\n", "released", released);
	printf("    %-22s %lld\n", "disconnected", disconnected);
	printf("    %-22s %lld\n", "revoked", revoked);
	printf("    %-22s %lld\n", "expired", expired);
	printf("    %-22s %lld\n", "handed over", handed);
	printf("  %-24s %lld\n", "held", stat_of(gauges, "leases"));
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	bool json = false;
	int r = cli_simple_args(cli, argc, argv, usage, &json);
	hasp_client *c;
	char *text;
	json_t *o;

	if (r >= 0)
		return r;
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	r = hasp_stats_json(c, &text);
	if (r < 0) {
		r = cli_error(c, "stats", r);
		hasp_close(c);
		return r;
	}
	hasp_close(c);
	if (json) {
		puts(text);
	} else if ((o = json_loads(text, 0, NULL))) {
		print_group("gauges", json_object_get(o, "gauges"));
		print_group("counters", json_object_get(o, "counters"));
		print_balance(json_object_get(o, "gauges"), json_object_get(o, "counters"));
		json_decref(o);
	}
	free(text);
	return 0;
}
