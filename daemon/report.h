/* The JSON the daemon reports: holders in errors, list, stats. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "locktable.h"
#include "proto-daemon.h"

struct haspd;

/* What people call r: its key, or its file's path. */
const char *report_name(const struct lt_resource *r);
/* wall_us (µs since the epoch) in RFC 3339, UTC, to the µs, into buf (40
 * bytes will do); "" if it cannot be. */
void report_time(uint64_t wall_us, char *buf, size_t n);
/* At most max holders of r, as JSON objects. */
json_t *report_holders(const struct haspd *d, const struct lt_resource *r, size_t max);
/* "held by pid 412 (owner bob), exclusive, for 3.2 s" (and "and N more"). */
void report_conflict(const struct haspd *d, const struct lt_resource *r, char *buf, size_t n);
/* A deadlock's "cycle": each wait of c (the first, lr's, refused), its
 * waiter as list shows one, the resource, and what it waits for. */
json_t *report_cycle(const struct haspd *d, const struct lt_cycle *c,
		     const struct lt_request *lr);
/* "session 3 (pid 412) waits for exclusive on 'b', held by session 4 (pid
 * 413); session 4 (pid 413) waits for ..., held by session 3 (pid 412)",
 * as PostgreSQL says it. */
void report_deadlock(const struct lt_cycle *c, const struct lt_request *lr, char *buf, size_t n);
/* {"resources":[...],"next":...}: a page of the list (see report.c for its
 * order, cost and size), and {"stats":{...}}, for proto_reply_ok(). */
json_t *report_list(const struct haspd *d, const struct proto_list_args *args);
json_t *report_stats(const struct haspd *d);
