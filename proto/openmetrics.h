/* haspd's stats object (the "stats" reply's inner object, PROTOCOL.md) as
 * OpenMetrics text (application/openmetrics-text; version=1.0.0): the one
 * formatter of hasp(1)'s `stats --format openmetrics` and of haspd's
 * metrics_listen (GET /metrics).
 *
 * The names are stable (haspd(8), METRICS, lists them):
 *   gauges.NAME           gauge   hasp_NAME; NAME_ms as hasp_NAME_seconds
 *                                 (hasp_uptime_seconds, hasp_oldest_waiter_seconds)
 *   counters.NAME         counter hasp_NAME, sample hasp_NAME_total; the
 *                                 counter "sessions" is hasp_sessions_opened
 *                                 (hasp_sessions is the gauge)
 *   histograms.wait/hold  histogram hasp_lock_wait_seconds, hasp_lock_hold_seconds
 *   keys[]                histogram hasp_key_lock_wait_seconds{key|path},
 *                         hasp_key_lock_hold_seconds{key|path},
 *                         counter hasp_key_grants{key|path}
 *   users[]               gauges hasp_user_sessions{uid}, hasp_user_locks{uid},
 *                         hasp_user_files{uid}, hasp_user_checkouts{uid}
 *
 * Every member is optional (an older haspd lacks the histograms, keys and
 * users): what is absent, not an integer where one is due, inconsistent
 * (a histogram whose buckets do not add up to its count) or would clash
 * with a name or a series already given is left out, never shown wrong. Label values
 * are escaped as OpenMetrics says (\\, \", \n); bytes that are not UTF-8,
 * and NUL, are shown as U+FFFD. */
#pragma once

#include <stddef.h>

#include <jansson.h>

/* The most entries of "keys" (the first ones, each label once: two names
 * can be shown alike) and of "users" shown; the rest are left out. */
#define OPENMETRICS_MAX_KEYS 64
#define OPENMETRICS_MAX_USERS 65536
/* The most members of "gauges" and of "counters" shown. */
#define OPENMETRICS_MAX_MEMBERS 256

/* stats as OpenMetrics text, ending with "# EOF\n": *ret_text (malloc'ed,
 * NUL-terminated, free() it) of *ret_len bytes. Returns 0, or -ENOMEM;
 * ret_* are written only on success. stats may be NULL or not an object:
 * the text is then "# EOF\n" alone. */
int openmetrics_format(const json_t *stats, char **ret_text, size_t *ret_len);
