/* What happens to locks, told to whoever listens: the metrics (wait and
 * hold histograms, the busiest resources: metrics.h), the watchers
 * (watch.h) and the audit trail (audit.h). The driver calls one of these
 * at each step of a request's or a lease's life, while the entry is still
 * valid: a lease's end before the lock table's call that ends it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "locktable.h"

struct haspd;
struct session;

enum event_kind {
	EVENT_QUEUED,
	EVENT_GRANTED,
	EVENT_RELEASED,
	EVENT_TIMEOUT,
	EVENT_CANCELLED,
	EVENT_CONVERTED,
	EVENT_DEADLOCK,
};

/* Why a lease ended (released) or a wait did (cancelled). */
enum event_reason {
	EVENT_BY_NONE,
	EVENT_BY_RELEASE,
	EVENT_BY_DISCONNECT,
	EVENT_BY_REVOKE,
	EVENT_BY_EXPIRY,
	EVENT_BY_CHECKIN,
	EVENT_BY_CANCEL,
};

/* One event, as the listeners see it. */
struct event {
	enum event_kind kind;
	enum event_reason reason;
	const struct lt_entry *e;   /* the request or lease; NULL for a deadlock */
	const struct lt_owner *owner; /* e's, or the refused request's */
	const struct lt_request *req; /* a deadlock's refused request, else NULL */
	const struct lt_resource *res; /* e's, or the deadlock's first wait's */
	enum lt_mode mode;
	uint64_t us;                /* waited (granted, timeout, cancelled, converted)
				     * or held (released) */
	const struct lt_cred *by;   /* a revoke's sender, else NULL */
	size_t cycle;               /* a deadlock's sessions */
};

const char *event_name(enum event_kind kind);
/* Whether ev is about a checkout: a lease granted to be detached, or one
 * that is. */
bool event_is_checkout(const struct event *ev);
/* "" for EVENT_BY_NONE. */
const char *event_reason_name(enum event_reason reason);

void events_queued(struct haspd *d, const struct lt_entry *e);
/* e was granted (e->waited_us: how long it waited; 0 at once). */
void events_granted(struct haspd *d, const struct lt_entry *e);
/* Lease e ends now. by: a revoke's sender. */
void events_ended(struct haspd *d, const struct lt_entry *e, enum event_reason why,
		  const struct lt_cred *by);
/* Waiting request e ends now, not granted: EVENT_TIMEOUT, or
 * EVENT_CANCELLED (EVENT_BY_CANCEL or _DISCONNECT). */
void events_stopped(struct haspd *d, const struct lt_entry *e, enum event_kind kind,
		    enum event_reason why);
/* Lease e has its new mode, after waiting waited_us for it. */
void events_converted(struct haspd *d, const struct lt_entry *e, uint64_t waited_us);
/* s's request lr was refused: its wait would close d->lt.cycle. */
void events_deadlock(struct haspd *d, struct session *s, const struct lt_request *lr);
/* Every lease and waiting request of o ends with it (before the lock
 * table's locktable_owner_done()). */
void events_owner_ends(struct haspd *d, const struct lt_owner *o);
