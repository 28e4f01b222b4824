#include "watch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haspd.h"
#include "proto-daemon.h"
#include "reply.h"
#include "report.h"
#include "session.h"

void watch_request(struct session *s, const struct proto_request *req)
{
	struct watcher *w = &s->watch;
	char *prefix = NULL;
	char msg[96];

	if (!w->on && s->user->limited && s->user->watchers >= WATCH_USER_MAX) {
		snprintf(msg, sizeof(msg), "uid %u has %u sessions that watch, the limit",
			 (unsigned)s->user->uid, WATCH_USER_MAX);
		reply_error(s, true, req->id, HASP_E_LIMIT, msg, NULL);
		return;
	}
	if (req->watch.prefix_len) {
		prefix = malloc(req->watch.prefix_len);
		if (!prefix) {
			reply_error(s, true, req->id, HASP_E_INTERNAL, "out of memory", NULL);
			return;
		}
		memcpy(prefix, req->watch.prefix, req->watch.prefix_len);
	}
	free(w->prefix);
	w->prefix = prefix;
	w->prefix_len = req->watch.prefix_len;
	if (!w->on) {
		w->on = true;
		w->lost = 0;
		list_add_tail(&s->d->watchers, &w->link);
		s->d->nwatchers++;
		s->user->watchers++;
	}
	reply_ok_empty(s, req->id);
}

void watch_stop(struct session *s)
{
	struct watcher *w = &s->watch;

	if (w->on) {
		list_del(&w->link);
		s->d->nwatchers--;
		s->user->watchers--;
		w->on = false;
	}
	free(w->prefix);
	w->prefix = NULL;
}

static bool watch_matches(const struct watcher *w, const struct watch_subject *subj)
{
	if (!w->prefix)
		return true;
	for (size_t i = 0; i < subj->n; i++)
		if (subj->lens[i] >= w->prefix_len &&
		    memcmp(subj->names[i], w->prefix, w->prefix_len) == 0)
			return true;
	return false;
}

static bool watch_has_room(const struct session *s)
{
	return session_unsent(s) <= WATCH_BACKLOG;
}

bool watch_wanted(struct haspd *d, const struct watch_subject *subj)
{
	bool wanted = false;
	struct list *pos;

	list_foreach(pos, &d->watchers) {
		struct session *s = container_of(pos, struct session, watch.link);

		if (!watch_matches(&s->watch, subj))
			continue;
		if (watch_has_room(s)) {
			wanted = true;
		} else {
			s->watch.lost++;
			d->watch_events_lost++;
		}
	}
	return wanted;
}

/* The events w lost, told before its next one. */
static void watch_tell_lost(struct haspd *d, struct session *s)
{
	char line[PROTO_SMALL_REPLY];
	char when[40];
	int n;

	report_time(d->lt.wall_us, when, sizeof(when));
	n = snprintf(line, sizeof(line), "{\"event\":\"overflow\",\"time\":\"%s\",\"lost\":%" PRIu64
		     "}\n", when, s->watch.lost);
	session_write(s, line, (size_t)n);
	s->watch.lost = 0;
}

void watch_publish(struct haspd *d, const struct watch_subject *subj, const char *line,
		   size_t len)
{
	struct list *pos;

	list_foreach(pos, &d->watchers) {
		struct session *s = container_of(pos, struct session, watch.link);

		if (!watch_matches(&s->watch, subj) || !watch_has_room(s))
			continue;
		if (s->watch.lost)
			watch_tell_lost(d, s);
		session_write(s, line, len);
		d->watch_events++;
	}
}
