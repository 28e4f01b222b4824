/* hasp watch: haspd's lock events as they happen, one line each, like
 * journalctl -f, until SIGINT or SIGTERM (exit 0) or until haspd goes
 * away (exit 69). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char usage[] =
	"Usage: hasp watch [--json|--format text|json] [--socket PATH] [PREFIX]\n"
	"Follows what happens to every lock whose key or path starts with PREFIX\n"
	"(every lock without it), one line per event as haspd saw it, until\n"
	"interrupted (SIGINT, SIGTERM: exit 0) or until haspd goes away (exit 69):\n"
	"local time, the event (queued, granted, released, timeout, cancelled,\n"
	"converted, deadlock; overflow when haspd had to drop events because this\n"
	"watcher read too slowly), the key or path, the mode, who (session, pid,\n"
	"uid, owner), the lease or request, the fence, how long it waited or was\n"
	"held, and why it ended. Client text is escaped.\n"
	"  -j, --json         print each event as haspd's JSON object, one per line\n"
	"                     (ASCII only)\n"
	"  -f, --format NAME  text (the default) or json\n";

static void print_time(json_t *ev)
{
	const char *s = cli_str(ev, "time", NULL);
	struct tm tm = { 0 };
	struct timespec now;
	char buf[32], *end = NULL;
	time_t t;
	long ms = 0;

	if (s && (end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))) {
		t = timegm(&tm);
		/* The fraction's first three digits. */
		for (int i = 1, f = 100; *end == '.' && i <= 3 && end[i] >= '0' && end[i] <= '9';
		     i++, f /= 10)
			ms += (end[i] - '0') * f;
	} else { /* an event without a time (libhasp's own overflow): now */
		clock_gettime(CLOCK_REALTIME, &now);
		t = now.tv_sec;
		ms = now.tv_nsec / 1000000;
	}
	if (!localtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%b %d %H:%M:%S", &tm))
		snprintf(buf, sizeof(buf), "-");
	printf("%s.%03ld ", buf, ms);
}

static void print_text(const char *label, const char *s)
{
	if (!s)
		return;
	printf(" %s", label);
	cli_put_escaped(stdout, s);
}

static void print_int(json_t *ev, const char *label, const char *name)
{
	json_t *v = json_object_get(ev, name);

	if (json_is_integer(v))
		printf(" %s %lld", label, (long long)json_integer_value(v));
}

static void print_ms(json_t *ev, const char *label, const char *name)
{
	json_t *v = json_object_get(ev, name);
	char age[32];

	if (!json_is_integer(v))
		return;
	cli_format_age(age, sizeof(age), (long long)json_integer_value(v));
	printf(" %s %s", label, age);
}

/* The key or path; a multi-key lease's first key and how many more. */
static void print_name(json_t *ev)
{
	size_t more = json_array_size(json_object_get(ev, "keys"));

	cli_put_escaped(stdout, cli_str(ev, "key", cli_str(ev, "path", "?")));
	if (more > 1)
		printf(" (+%zu keys)", more - 1);
}

static void print_event(json_t *ev)
{
	const char *name = cli_str(ev, "event", "?");

	print_time(ev);
	cli_put_escaped(stdout, name);
	if (strcmp(name, "overflow") == 0) {
		print_int(ev, "events lost:", "lost");
		putchar('\n');
		return;
	}
	putchar(' ');
	print_name(ev);
	print_text("", cli_str(ev, "mode", NULL));
	print_int(ev, "limit", "limit");
	print_int(ev, "session", "session");
	print_int(ev, "pid", "pid");
	print_int(ev, "uid", "uid");
	print_text("host ", cli_str(ev, "host", NULL));
	print_text("owner ", cli_str(ev, "owner", NULL));
	if (json_is_true(json_object_get(ev, "checkout")))
		fputs(" checkout", stdout);
	print_int(ev, "lease", "lease");
	print_int(ev, "request", "request");
	print_int(ev, "fence", "fence");
	print_ms(ev, "waited", "waited_ms");
	print_ms(ev, "held", "held_ms");
	print_int(ev, "cycle of", "cycle");
	print_text("reason ", cli_str(ev, "reason", NULL));
	print_text("message ", cli_str(ev, "message", NULL));
	putchar('\n');
}

static void on_event(hasp_client *c, const char *text, size_t len, void *userdata)
{
	const bool *json = userdata;
	json_t *ev = json_loadb(text, len, 0, NULL);

	(void)c;
	if (!ev) { /* not from a haspd: shown, but safely */
		cli_put_escaped(stdout, text);
		putchar('\n');
	} else if (*json) {
		if (cli_print_json(ev) < 0)
			fputs("{\"event\":\"overflow\",\"lost\":1}", stdout);
		putchar('\n');
	} else {
		print_event(ev);
	}
	json_decref(ev);
	fflush(stdout);
}

/* Drives c until a signal (0) or the connection's end (its error). */
static int follow(hasp_client *c, const struct cli_signals *sigs)
{
	for (;;) {
		struct pollfd p = { .fd = hasp_client_get_fd(c),
				    .events = (short)hasp_client_get_events(c) };
		int ms = hasp_client_get_timeout(c), r;
		struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

		if (cli_signal_caught(SIGINT) || cli_signal_caught(SIGTERM))
			return 0;
		r = ppoll(&p, 1, ms >= 0 ? &ts : NULL, &sigs->wait_mask);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r < 0)
			continue; /* a signal: seen at the top */
		r = hasp_client_process(c);
		if (r < 0)
			return r;
	}
}

int cmd_watch(struct cli *cli, int argc, char **argv)
{
	static const char *const formats[] = { "text", "json", NULL };
	static const int caught[] = { SIGINT, SIGTERM };
	const char *prefix = NULL;
	struct cli_signals sigs;
	bool json = false;
	hasp_client *c;
	int format = 0;
	int r = cli_simple_args_one(cli, argc, argv, usage, formats, &format, &prefix);

	if (r >= 0)
		return r;
	json = format == 1;
	/* Caught before the connection: a SIGTERM that comes while it
	 * starts ends it as well. */
	r = cli_signals_catch(&sigs, caught, 2);
	if (r < 0)
		return cli_error(NULL, "watch", r);
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	r = hasp_watch(c, prefix, on_event, &json);
	if (r == -EINVAL) { /* the prefix: not UTF-8 */
		cli_error(c, "watch", r);
		r = EXIT_USAGE;
	} else if (r < 0) {
		r = cli_error(c, "watch", r);
	} else if ((r = follow(c, &sigs)) < 0) {
		cli_error(c, "watch", r); /* haspd went away, or stopped answering */
		r = EXIT_UNAVAILABLE;
	}
	hasp_close(c);
	cli_signals_restore(&sigs);
	return r;
}
