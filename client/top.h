/* hasp top: a live view of haspd. cmd-top.c runs it, top-view.c turns a
 * stats reply and a list into lines of text, top-term.c owns the
 * terminal (its mode, its size, signals, keys and drawing). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Lines of text, each malloc'ed: client text in them is escaped already. */
struct top_lines {
	char **v;
	size_t n, cap;
	bool nomem;             /* a line was lost for want of memory */
};

void top_lines_init(struct top_lines *l);
void top_lines_done(struct top_lines *l);
/* Adds a line (printf's format); out of memory is noted in l->nomem. */
void top_lines_add(struct top_lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What one view shows. */
struct top_view {
	json_t *stats;          /* this sample's stats object */
	json_t *prev;           /* the one before, or NULL: no rates */
	double interval_s;      /* between them */
	json_t *list;           /* every resource, as hasp_list_json() gives it */
	size_t max_rows;        /* rows for the lists of waits and holders each */
	const char *title;      /* the first line's start: "hasp top", escaped */
};

/* The view as lines: the header, the busiest keys, the longest waits, the
 * holders. */
void top_view_build(struct top_lines *out, const struct top_view *v);
/* A histogram's quantile q (0 to 1) in us, estimated by linear
 * interpolation in the bucket it falls in; -1 without observations; with
 * *over set when it falls in the last (unbounded) bucket, then the last
 * bound; with *under set when in the first (0 to the first bound), then
 * that bound. */
double top_view_quantile(json_t *hist, json_t *bounds_us, double q, bool *over, bool *under);

/* The terminal, in non-canonical mode while the view runs. */
enum top_wake {
	TOP_WAKE_TIMEOUT,       /* the delay passed */
	TOP_WAKE_RESIZE,        /* SIGWINCH */
	TOP_WAKE_QUIT,          /* 'q', SIGINT or SIGTERM, or stdin closed */
	TOP_WAKE_KEY,           /* another key: redraw */
};

/* Enters the view: non-canonical mode without echo (stdin a terminal),
 * the alternate screen, the cursor hidden, signals caught. 0, or -errno. */
int top_term_start(void);
/* Restores all of it; safe to call when never started. */
void top_term_stop(void);
/* The terminal's size (24x80 when it has none). */
void top_term_size(unsigned *rows, unsigned *cols);
/* Waits up to timeout_ms for a key or a signal. */
enum top_wake top_term_wait(int64_t timeout_ms);
/* Draws lines from the top left, each cut to cols columns, at most rows. */
void top_term_draw(const struct top_lines *l, unsigned rows, unsigned cols);
