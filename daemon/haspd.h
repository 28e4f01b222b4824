/* The daemon's shared state: one per process, created by main.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "list.h"
#include "locktable.h"

struct event_base;
struct event;

struct haspd {
	struct event_base *base;
	struct locktable lt;
	struct config cfg;
	struct event *timer;        /* the earliest waiter deadline */
	int64_t timer_at;           /* when it is armed for, or -1 */
	struct list sessions;       /* session.link */
	struct list flushing;       /* session.flush_link: output to write */
	struct list graveyard;      /* session.link: lost, freed in haspd_sync */
	struct list retrying;       /* oslock.retry_link: files an outsider holds */
	size_t nsessions;
	uint64_t sessions_total;
	uint64_t protocol_errors;
	uint64_t started_ms;
	struct server *server;
};

/* The monotonic clock in ms, and wall-clock µs, as the lock table sees them. */
uint64_t haspd_now_ms(void);
/* Sets the lock table's clock: call at the start of every event callback. */
void haspd_tick(struct haspd *d);
/* Call at the end of every event callback: writes pending output, frees
 * lost sessions, re-arms the deadline timer. */
void haspd_sync(struct haspd *d);
