#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cli.h"
#include "openmetrics.h"

static const char usage[] =
	"Usage: hasp stats [--format table|json|openmetrics] [--json] [--socket PATH]\n"
	"Shows haspd's gauges (sessions, resources, leases, checkouts, waiters) and\n"
	"counters, then how the leases granted since haspd started (the checkouts it\n"
	"restored from its journal at its start among them) have ended: released (or\n"
	"checked in), ended with their session (the client closed or died), revoked,\n"
	"expired (their TTL ran out), or handed over (the fd form of hasp lock: the\n"
	"flock is the client's descriptor's), and how many are held now;\n"
	"granted is always ended plus held.\n"
	"  -f, --format FORMAT  table (the default), json (the daemon's JSON\n"
	"                       object) or openmetrics (OpenMetrics text, as a\n"
	"                       Prometheus scrape of haspd's metrics_listen gets it;\n"
	"                       names in haspd(8), METRICS)\n"
	"  -j, --json           the same as --format json\n";

/* In the order of formats[] in cmd_stats(). */
enum stats_format { STATS_TABLE, STATS_JSON, STATS_OPENMETRICS };

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

static void print_table(json_t *o)
{
	print_group("gauges", json_object_get(o, "gauges"));
	print_group("counters", json_object_get(o, "counters"));
	print_balance(json_object_get(o, "gauges"), json_object_get(o, "counters"));
}

/* The daemon's stats as OpenMetrics text; 0, or EXIT_OSERR. */
static int print_openmetrics(json_t *o)
{
	size_t len;
	char *text;

	if (openmetrics_format(o, &text, &len) < 0) {
		fprintf(stderr, "%s: stats: out of memory\n", CLI_NAME);
		return EXIT_OSERR;
	}
	fwrite(text, 1, len, stdout);
	free(text);
	return 0;
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	static const char *const formats[] = { "table", "json", "openmetrics", NULL };
	int format = STATS_TABLE;
	int r = cli_simple_args(cli, argc, argv, usage, formats, &format);
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
	r = 0;
	if (format == STATS_JSON) {
		puts(text);
	} else if ((o = json_loads(text, 0, NULL))) {
		if (format == STATS_OPENMETRICS)
			r = print_openmetrics(o);
		else
			print_table(o);
		json_decref(o);
	} else {
		fprintf(stderr, "%s: stats: haspd's reply is not JSON\n", CLI_NAME);
		r = 1;
	}
	free(text);
	return r;
}
