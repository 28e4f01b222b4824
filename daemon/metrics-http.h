/* haspd's HTTP listener for Prometheus (metrics_listen, --metrics-listen):
 * GET /metrics answers the daemon's stats as OpenMetrics text
 * (proto/openmetrics.h), served by libevent's evhttp on the daemon's own
 * event base, each request inside the tick/sync bracket (loop.h). Other
 * paths get 404, other methods (HEAD too) 405. At most 16 connections at
 * once, each closed after 10 s without progress. Off unless configured:
 * then no socket at all. */
#pragma once

struct haspd;
struct metrics_http;

/* Listens on addr ("127.0.0.1:9466", "[::1]:9466": netaddr.h) for d.
 * NULL on failure, with the reason logged (an address in use, one that is
 * not the machine's, out of memory). */
struct metrics_http *metrics_http_new(struct haspd *d, const char *addr);
/* Closes the listener and every connection it has. Accepts NULL; returns
 * NULL. */
struct metrics_http *metrics_http_free(struct metrics_http *m);
