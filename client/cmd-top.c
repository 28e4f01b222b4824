/* hasp top: haspd's stats and list, refreshed every --delay seconds in the
 * terminal until 'q', SIGINT or SIGTERM; or, with --once, one plain
 * snapshot for scripts. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "top.h"

static const char usage[] =
	"Usage: hasp top [-d SECS] [--once] [--socket PATH]\n"
	"A live view of haspd, refreshed every second: sessions, leases, waiters and\n"
	"the oldest waiter's wait; grants, waits (requests that queued and have\n"
	"ended: granted, timed out, cancelled or abandoned), timeouts and deadlocks\n"
	"per second over the last interval; the busiest keys with their wait and\n"
	"hold times (p50 and p99, estimated from haspd's histograms; a haspd that\n"
	"does not keep them shows none); then the longest waits and the longest\n"
	"held leases. 'q' quits, as do SIGINT and SIGTERM. Client text is escaped.\n"
	"  -d, --delay SECS  seconds between refreshes (default 1; 0.1 at least)\n"
	"  -1, --once        print one snapshot without escapes and exit: from one\n"
	"                    sample, so no rates\n";

#define TOP_DELAY_MIN_MS 100
#define TOP_ONCE_ROWS 50        /* waits and holders each, with --once */

struct top_args {
	int64_t delay_ms;
	bool once;
};

static int parse_top_args(struct cli *cli, int argc, char **argv, struct top_args *a)
{
	static const struct option longopts[] = {
		{ "delay", required_argument, NULL, 'd' },
		{ "once", no_argument, NULL, '1' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*a = (struct top_args){ .delay_ms = 1000 };
	optind = 0;
	while ((c = getopt_long(argc, argv, "+d:1hS:", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!cli_seconds(optarg, &a->delay_ms) || a->delay_ms < TOP_DELAY_MIN_MS) {
				fprintf(stderr, "%s: top: --delay takes seconds, 0.1 or more\n%s",
					CLI_NAME, usage);
				return EXIT_USAGE;
			}
			break;
		case '1': a->once = true; break;
		case 'S': cli->socket = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	return cli_no_more_args(argc, argv, usage);
}

/* One sample: stats and list as JSON. */
struct top_sample {
	json_t *stats, *list;
	int64_t at_ms;
};

static void sample_done(struct top_sample *s)
{
	json_decref(s->stats);
	json_decref(s->list);
	*s = (struct top_sample){ NULL, NULL, 0 };
}

/* JSON text from libhasp, parsed (and freed); -ENOMEM when it cannot be. */
static int parse(char *text, json_t **ret)
{
	json_t *j = json_loads(text, 0, NULL);

	free(text);
	if (!j)
		return -ENOMEM;
	*ret = j;
	return 0;
}

static int take_sample(hasp_client *c, struct top_sample *s)
{
	struct timespec ts;
	char *text;
	int r = hasp_stats_json(c, &text);

	if (r >= 0)
		r = parse(text, &s->stats);
	if (r >= 0)
		r = hasp_list_json(c, &text);
	if (r >= 0)
		r = parse(text, &s->list);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->at_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return r;
}

/* The first line: what, where, when. */
static void format_title(char *buf, size_t size, hasp_client *c, bool once)
{
	char when[16] = "", *sock = cli_escape(hasp_client_socket(c) ? hasp_client_socket(c) : "?");
	time_t t = time(NULL);
	struct tm tm;

	if (localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	snprintf(buf, size, "hasp top - %s - %s%s", sock ? sock : "?", when,
		 once ? "" : "  (q quits)");
	free(sock);
}

static void build(struct top_lines *out, hasp_client *c, const struct top_sample *now,
		  const struct top_sample *prev, size_t max_rows, bool once)
{
	char title[512];
	struct top_view v = {
		.stats = now->stats, .prev = prev ? prev->stats : NULL,
		.interval_s = prev ? (double)(now->at_ms - prev->at_ms) / 1000.0 : 0,
		.list = now->list, .max_rows = max_rows, .title = title,
	};

	format_title(title, sizeof(title), c, once);
	top_view_build(out, &v);
}

static int top_once(hasp_client *c)
{
	struct top_sample s = { NULL, NULL, 0 };
	struct top_lines out;
	int r = take_sample(c, &s);

	if (r < 0) {
		sample_done(&s);
		return cli_error(c, "top", r);
	}
	top_lines_init(&out);
	build(&out, c, &s, NULL, TOP_ONCE_ROWS, true);
	for (size_t i = 0; i < out.n; i++)
		puts(out.v[i]);
	r = out.nomem ? cli_error(NULL, "top", -ENOMEM) : 0;
	top_lines_done(&out);
	sample_done(&s);
	return r;
}

/* Rows for each of the two lists: what the screen has left after the
 * header (4 lines), the keys (up to 12) and the lists' own 4 lines. */
static size_t list_rows(unsigned rows)
{
	return rows > 28 ? (rows - 28) / 2 + 1 : 3;
}

static void draw(hasp_client *c, const struct top_sample *now, const struct top_sample *prev)
{
	struct top_lines out;
	unsigned rows, cols;

	top_term_size(&rows, &cols);
	top_lines_init(&out);
	build(&out, c, now, prev, list_rows(rows), false);
	top_term_draw(&out, rows, cols);
	top_lines_done(&out);
}

/* Samples and draws until 'q' or a signal: 0, or the error that ended it
 * (the terminal restored first). */
static int top_live(hasp_client *c, int64_t delay_ms)
{
	struct top_sample prev = { NULL, NULL, 0 }, now = { NULL, NULL, 0 };
	enum top_wake w = TOP_WAKE_TIMEOUT;
	int r = top_term_start();

	while (r >= 0 && w != TOP_WAKE_QUIT) {
		if (w == TOP_WAKE_TIMEOUT) {
			sample_done(&prev);
			prev = now;
			now = (struct top_sample){ NULL, NULL, 0 };
			r = take_sample(c, &now);
		}
		if (r >= 0) {
			draw(c, &now, prev.stats ? &prev : NULL);
			w = top_term_wait(delay_ms);
		}
	}
	top_term_stop();
	sample_done(&prev);
	sample_done(&now);
	return r < 0 ? cli_error(c, "top", r) : 0;
}

int cmd_top(struct cli *cli, int argc, char **argv)
{
	struct top_args a;
	int r = parse_top_args(cli, argc, argv, &a);
	hasp_client *c;

	if (r >= 0)
		return r;
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	r = a.once ? top_once(c) : top_live(c, a.delay_ms);
	hasp_close(c);
	return r;
}
