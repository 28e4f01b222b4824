/* Watchers: sessions that asked (op watch) to be told of every lock event
 * on a prefix (events.h builds the events). A watcher that does not read
 * loses events rather than ever slowing the daemon or being ended for it:
 * past WATCH_BACKLOG of its unread output, events for it are dropped and
 * counted, and once it has room again it is told how many (an "overflow"
 * line) before the next event. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"

struct haspd;
struct session;
struct proto_request;

/* Sessions of one uid (but root's and haspd's own) that may watch at
 * once: every lock event looks at every watcher. */
#define WATCH_USER_MAX 64

/* Unread output past which a watcher's events are dropped. */
#define WATCH_BACKLOG (256u << 10)

/* Embedded in its session. */
struct watcher {
	struct list link;           /* in d->watchers, while watching */
	char *prefix;               /* NULL: every resource */
	size_t prefix_len;
	uint64_t lost;              /* dropped since its last overflow line */
	bool on;
};

/* The names an event is about: its resource's, or a multi-key's keys. */
struct watch_subject {
	const char *const *names;
	const size_t *lens;
	size_t n;
};

/* op watch: s watches prefix (replacing its earlier one), and is answered;
 * limit past WATCH_USER_MAX of its uid's sessions. */
void watch_request(struct session *s, const struct proto_request *req);
/* s watches no more (its end). */
void watch_stop(struct session *s);
/* Whether any watcher wants an event about subj, that is, has the prefix
 * and the room for it; those without room count it lost. Cheap when none
 * watches. */
bool watch_wanted(struct haspd *d, const struct watch_subject *subj);
/* Hands the event line (newline included) to every watcher that wants it. */
void watch_publish(struct haspd *d, const struct watch_subject *subj, const char *line,
		   size_t len);
