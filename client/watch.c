/* Watching lock events (hasp_watch()): the watch request on the core, and
 * the daemon's watch events handed to the caller's callback as their JSON
 * text, from the watch's reply on. Revocation and expiry notices are not
 * watch events: core.c keeps them for the event handler. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libhasp-internal.h"

/* The events a watcher is sent (proto/PROTOCOL.md, watch). */
static const char *const watch_events[] = {
	"queued", "granted", "released", "timeout", "cancelled", "converted", "deadlock",
	"overflow",
};

static bool is_watch_event(const char *name)
{
	for (size_t i = 0; i < sizeof(watch_events) / sizeof(watch_events[0]); i++)
		if (strcmp(name, watch_events[i]) == 0)
			return true;
	return false;
}

/* Events libhasp could not hand on (out of memory for their copy), said
 * as the daemon says its own losses, before the next one. */
static void tell_missed(hasp_client *c)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "{\"event\":\"overflow\",\"lost\":%llu}",
			 (unsigned long long)c->watch_missed);

	c->watch_missed = 0;
	c->on_watch(c, line, (size_t)n, c->watch_userdata);
}

bool libhasp_watch_event(hasp_client *c, const struct proto_reply *rep, const char *line,
			 size_t len)
{
	char *text;

	if (!is_watch_event(rep->event))
		return false;
	if (!c->on_watch)
		return true;
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	/* A copy of its own: the callback may make calls that read on. */
	text = malloc(len + 1);
	if (!text) {
		c->watch_missed++;
		return true;
	}
	memcpy(text, line, len);
	text[len] = '\0';
	if (c->watch_missed)
		tell_missed(c);
	c->on_watch(c, text, len, c->watch_userdata);
	free(text);
	return true;
}

/* A watch request in flight: what it installs once answered, and whom it
 * tells. */
struct watch_call {
	hasp_watch_callback cb;
	void *userdata;
	hasp_done_callback done;
	void *done_userdata;
};

/* The reply: the callback gets the events from now on (those after the
 * reply in the same read included), then done hears how it went. */
static void watch_done(hasp_client *c, struct libhasp_call *k, int err, struct proto_reply *rep)
{
	struct watch_call *w = k->ctx;
	int r;

	if (err == -ECANCELED) {
		free(w);
		return;
	}
	if (err == -ETIMEDOUT)
		r = libhasp_error(c, -ETIMEDOUT, "haspd did not answer the watch within %lld ms",
				  (long long)c->call_timeout_ms);
	else if (err < 0)
		r = libhasp_lost_error(c);
	else
		r = rep->ok ? 0 : libhasp_reply_error(c, rep);
	if (r == 0 && w->cb) { /* none: the blocking call gave up on it */
		c->on_watch = w->cb;
		c->watch_userdata = w->userdata;
	}
	if (w->done)
		w->done(c, r, w->done_userdata);
	free(w);
}

/* Sends the watch request; w's copy goes with it (into *ret if not
 * NULL, until the reply). */
static int watch_start(hasp_client *c, const char *prefix, const struct watch_call *w,
		       struct watch_call **ret)
{
	struct proto_members m;
	struct watch_call *copy;
	int64_t deadline;
	int r;

	c->errmsg[0] = '\0';
	libhasp_conflict_clear(c);
	if (!w->cb)
		return libhasp_error(c, -EINVAL, "a watch needs a callback for its events");
	if (prefix && !proto_utf8_valid(prefix))
		return libhasp_error(c, -EINVAL, "a watch prefix must be UTF-8");
	copy = malloc(sizeof(*copy));
	if (!copy)
		return libhasp_error(c, -ENOMEM, "out of memory");
	*copy = *w;
	proto_members_init(&m);
	if (prefix && *prefix)
		proto_members_str(&m, "prefix", prefix);
	deadline = c->call_timeout_ms > 0 ? libhasp_after(libhasp_now_ms(), c->call_timeout_ms)
					  : LIBHASP_NEVER;
	r = libhasp_send_members(c, OP_WATCH, &m, -1, deadline, watch_done, copy, NULL);
	proto_members_free(&m);
	if (r < 0)
		free(copy);
	else if (ret)
		*ret = copy;
	return r;
}

HASP_EXPORT int hasp_watch_async(hasp_client *c, const char *prefix, hasp_watch_callback cb,
				 hasp_done_callback done, void *userdata)
{
	struct watch_call w = { cb, userdata, done, userdata };

	return watch_start(c, prefix, &w, NULL);
}

/* Where the blocking watch's outcome goes. */
struct watch_outcome {
	bool finished;
	int r;
};

static void keep_watch_outcome(hasp_client *c, int r, void *userdata)
{
	struct watch_outcome *o = userdata;

	(void)c;
	o->finished = true;
	o->r = r;
}

HASP_EXPORT int hasp_watch(hasp_client *c, const char *prefix, hasp_watch_callback cb,
			   void *userdata)
{
	struct watch_outcome o = { false, 0 };
	struct watch_call w = { cb, userdata, keep_watch_outcome, &o }, *sent;
	int r = watch_start(c, prefix, &w, &sent);

	if (r < 0)
		return r;
	r = libhasp_wait(c, &o.finished);
	if (o.finished)
		return o.r;
	/* Interrupted (-EINTR): a reply that comes later installs nothing
	 * and tells no one. */
	sent->cb = NULL;
	sent->done = NULL;
	return r;
}
