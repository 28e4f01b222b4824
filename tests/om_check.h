/* A strict checker of OpenMetrics text (application/openmetrics-text
 * 1.0.0), for the tests of hasp's formatter, of GET /metrics and of hasp
 * stats --format openmetrics. Stricter than Prometheus where OpenMetrics
 * says MUST: every line ends with \n, no blank line, "# EOF" last and once;
 * a family's TYPE before its samples (and its HELP and UNIT, each once,
 * after it), a family's samples together and never named again; names
 * [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, label
 * values UTF-8 with only \\ \" \n escaped, no label twice, no series twice;
 * a UNIT that ends the family's name; a counter's samples _total (>= 0);
 * a histogram's _bucket series with le increasing, +Inf last, counts
 * cumulative (non-decreasing), and _count equal to its +Inf bucket. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Whether text (len bytes) is such text; if not, why (with the line) in
 * why. */
bool om_check(const char *text, size_t len, char *why, size_t n);
/* The value of the sample written exactly as series (e.g.
 * "hasp_leases" or "hasp_user_locks{uid=\"0\"}") in text, or -1 if none. */
double om_value(const char *text, const char *series);
