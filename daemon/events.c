#include "events.h"

#include <string.h>

#include "audit.h"
#include "haspd.h"
#include "proto-daemon.h"
#include "report.h"
#include "session.h"
#include "watch.h"

static const char *const kind_names[] = {
	[EVENT_QUEUED] = "queued", [EVENT_GRANTED] = "granted", [EVENT_RELEASED] = "released",
	[EVENT_TIMEOUT] = "timeout", [EVENT_CANCELLED] = "cancelled",
	[EVENT_CONVERTED] = "converted", [EVENT_DEADLOCK] = "deadlock",
};

static const char *const reason_names[] = {
	[EVENT_BY_NONE] = "", [EVENT_BY_RELEASE] = "release", [EVENT_BY_DISCONNECT] = "disconnect",
	[EVENT_BY_REVOKE] = "revoke", [EVENT_BY_EXPIRY] = "expiry", [EVENT_BY_CHECKIN] = "checkin",
	[EVENT_BY_CANCEL] = "cancel",
};

const char *event_name(enum event_kind kind)
{
	return kind_names[kind];
}

bool event_is_checkout(const struct event *ev)
{
	const struct lt_life *life = ev->e ? lt_entry_life(ev->e) : NULL;

	return life && (life->detach || life->detached);
}

const char *event_reason_name(enum event_reason reason)
{
	return reason_names[reason];
}

/* ---- the line a watcher gets ---- */

static int events_set_text(json_t *o, const char *name, const char *s)
{
	return s ? json_object_set_new(o, name, proto_string_shown(s, strlen(s))) : 0;
}

static int events_set_int(json_t *o, const char *name, json_int_t v)
{
	return json_object_set_new(o, name, json_integer(v));
}

/* "keys" of a multi-key request or lease: every one, as shown. */
static int events_set_keys(json_t *o, const struct lt_entry *e)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < e->multi->n; i++) {
		const struct lt_resource *r = e->multi->parts[i]->res;

		if (json_array_append_new(a, proto_string_shown(r->key, r->key_len)) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return json_object_set_new(o, "keys", a);
}

/* What the event is about: its lease or request, and its times. */
static int events_set_what(json_t *o, const struct event *ev)
{
	const struct lt_entry *e = ev->e;
	const char *ms_name = ev->kind == EVENT_RELEASED ? "held_ms" : "waited_ms";
	int r = 0;

	if (ev->kind == EVENT_GRANTED || ev->kind == EVENT_RELEASED || ev->kind == EVENT_CONVERTED)
		r |= events_set_int(o, "lease", (json_int_t)e->id);
	if (ev->kind == EVENT_GRANTED || ev->kind == EVENT_CONVERTED)
		r |= events_set_int(o, "fence", (json_int_t)e->fence);
	if (e && (!e->held || ev->kind == EVENT_GRANTED))
		r |= events_set_int(o, "request", (json_int_t)e->tag);
	if (!e)
		r |= events_set_int(o, "request", (json_int_t)ev->req->tag) |
		     events_set_int(o, "cycle", (json_int_t)ev->cycle);
	if (ev->kind != EVENT_QUEUED && ev->kind != EVENT_DEADLOCK)
		r |= events_set_int(o, ms_name, (json_int_t)(ev->us / 1000));
	if (ev->reason != EVENT_BY_NONE)
		r |= json_object_set_new(o, "reason", json_string(event_reason_name(ev->reason)));
	if (ev->kind == EVENT_GRANTED && event_is_checkout(ev))
		r |= json_object_set_new(o, "checkout", json_true());
	return r;
}

static char *events_line(struct haspd *d, const struct event *ev, size_t *len)
{
	const struct lt_resource *res = ev->res;
	struct lt_cred who = ev->e ? lt_entry_sender(ev->e) : *ev->req->sender;
	const char *name = report_name(res);
	char when[40];
	json_t *o;

	report_time(d->lt.wall_us, when, sizeof(when));
	o = json_pack("{s:s,s:I,s:i,s:I,s:o,s:s}", "time", when,
		      "session", (json_int_t)ev->owner->session, "pid", (int)who.pid,
		      "uid", (json_int_t)who.uid,
		      res->os ? "path" : "key", proto_string_shown(name, strlen(name)),
		      "mode", lt_mode_name(ev->mode));
	if (!o || (ev->e && ev->e->multi && events_set_keys(o, ev->e) < 0) ||
	    (res->limit && events_set_int(o, "limit", res->limit) < 0) ||
	    events_set_text(o, "owner", ev->e ? lt_entry_owner_name(ev->e) : ev->req->owner_name) ||
	    events_set_text(o, "message", ev->e ? lt_entry_message(ev->e) : ev->req->message) ||
	    events_set_what(o, ev)) {
		json_decref(o);
		return NULL;
	}
	return proto_event(event_name(ev->kind), o, len);
}

/* The names an event is about, for the watchers' prefixes. */
static void events_subject(const struct event *ev, struct watch_subject *subj,
			   const char **names, size_t *lens)
{
	const struct lt_multi *m = ev->e ? ev->e->multi : NULL;

	subj->names = names;
	subj->lens = lens;
	subj->n = m ? m->n : 1;
	for (size_t i = 0; i < subj->n; i++) {
		const struct lt_resource *r = m ? m->parts[i]->res : ev->res;

		names[i] = report_name(r);
		lens[i] = r->os ? strlen(names[i]) : r->key_len;
	}
}

static void events_watch(struct haspd *d, const struct event *ev)
{
	const char *names[LT_MULTI_MAX];
	size_t lens[LT_MULTI_MAX], len;
	struct watch_subject subj;
	char *line;

	if (!d->nwatchers)
		return;
	events_subject(ev, &subj, names, lens);
	if (!watch_wanted(d, &subj))
		return;
	line = events_line(d, ev, &len);
	if (!line)
		return; /* out of memory: the watchers miss it */
	watch_publish(d, &subj, line, len);
	free(line);
}

static void events_emit(struct haspd *d, const struct event *ev)
{
	events_watch(d, ev);
	audit_event(d, ev);
}

/* ---- metrics ---- */

/* The busiest-resource slot of r, counting a grant or not. */
static struct busiest_key *events_busiest(struct haspd *d, const struct lt_resource *r,
					  bool grant)
{
	const char *name = report_name(r);
	size_t len = r->os ? strlen(name) : r->key_len;

	return grant ? busiest_grant(&d->busiest, r->os != NULL, name, len) :
		       busiest_find(&d->busiest, r->os != NULL, name, len);
}

static void events_observe(struct haspd *d, const struct lt_entry *e, bool grant, uint64_t us)
{
	size_t n = e->multi ? e->multi->n : 1;

	hist_observe(grant ? &d->wait_hist : &d->hold_hist, us);
	for (size_t i = 0; i < n; i++) {
		const struct lt_resource *r = e->multi ? e->multi->parts[i]->res : e->res;
		struct busiest_key *k = events_busiest(d, r, grant);

		if (k)
			hist_observe(grant ? &k->wait : &k->hold, us);
	}
}

/* ---- the steps ---- */

static struct event events_of(const struct lt_entry *e, enum event_kind kind)
{
	return (struct event){ .kind = kind, .e = e, .owner = e->owner, .res = e->res,
			       .mode = e->mode };
}

void events_queued(struct haspd *d, const struct lt_entry *e)
{
	struct event ev = events_of(e, EVENT_QUEUED);

	events_emit(d, &ev);
}

void events_granted(struct haspd *d, const struct lt_entry *e)
{
	struct event ev = events_of(e, EVENT_GRANTED);

	ev.us = e->waited_us;
	events_observe(d, e, true, ev.us);
	events_emit(d, &ev);
}

void events_ended(struct haspd *d, const struct lt_entry *e, enum event_reason why,
		  const struct lt_cred *by)
{
	struct event ev = events_of(e, EVENT_RELEASED);

	ev.reason = why;
	ev.by = by;
	ev.us = d->lt.now_us - e->since_us;
	events_observe(d, e, false, ev.us);
	events_emit(d, &ev);
}

void events_stopped(struct haspd *d, const struct lt_entry *e, enum event_kind kind,
		    enum event_reason why)
{
	struct event ev = events_of(e, kind);

	ev.reason = why;
	ev.us = d->lt.now_us - e->since_us;
	events_emit(d, &ev);
}

void events_converted(struct haspd *d, const struct lt_entry *e, uint64_t waited_us)
{
	struct event ev = events_of(e, EVENT_CONVERTED);

	ev.us = waited_us;
	events_emit(d, &ev);
}

void events_deadlock(struct haspd *d, struct session *s, const struct lt_request *lr)
{
	const struct lt_cycle *c = &d->lt.cycle;
	struct event ev = {
		.kind = EVENT_DEADLOCK, .owner = &s->owner, .req = lr, .res = c->waits[0].res,
		.mode = c->waits[0].mode, .cycle = c->total,
	};

	events_emit(d, &ev);
}

/* Each entry of list (by onode) once: a multi-key one by its first part. */
static void events_each_ends(struct haspd *d, const struct list *entries, bool held)
{
	const struct list *pos;

	list_foreach(pos, entries) {
		const struct lt_entry *e = container_of(pos, struct lt_entry, onode);

		if (e->multi && e->multi->parts[0] != e)
			continue;
		if (held)
			events_ended(d, e, EVENT_BY_DISCONNECT, NULL);
		else
			events_stopped(d, e, EVENT_CANCELLED, EVENT_BY_DISCONNECT);
	}
}

void events_owner_ends(struct haspd *d, const struct lt_owner *o)
{
	events_each_ends(d, &o->waiting, false);
	events_each_ends(d, &o->held, true);
}
