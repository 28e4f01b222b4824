#include "reply.h"

#include <stdio.h>
#include <stdlib.h>

#include "haspd.h"
#include "proto-daemon.h"
#include "report.h"
#include "session.h"


/* Queues a malloc'ed reply line and frees it. */
void reply_line(struct session *s, char *line, const size_t *len)
{
	if (!line) {
		session_break(s); /* ended at the next flush, not inside this request */
		return;
	}
	session_write(s, line, *len);
	free(line);
}

void reply_ok(struct session *s, int64_t id, json_t *body)
{
	size_t len = 0;

	reply_line(s, body ? proto_reply_ok(id, body, &len) : NULL, &len);
}

void reply_ok_empty(struct session *s, int64_t id)
{
	char buf[PROTO_SMALL_REPLY];

	session_write(s, buf, proto_fmt_ok(buf, id));
}

void reply_error(struct session *s, bool has_id, int64_t id, int code, const char *msg,
			json_t *holders)
{
	size_t len = 0;

	reply_line(s, proto_reply_error(has_id, id, code, msg, holders, &len), &len);
}

/* An error about a resource that others hold: the message names them. A
 * file that only a process outside hasp locks may have no resource left. */
void reply_conflict(struct session *s, int64_t id, int code, const char *what,
			   const struct lt_resource *r, const char *name)
{
	char held[1400], msg[2600];

	report_conflict(s->d, r, held, sizeof(held));
	snprintf(msg, sizeof(msg), "%s: '%.1024s' is %s", what, r ? report_name(r) : name, held);
	reply_error(s, true, id, code, msg, r ? report_holders(s->d, r, ERROR_HOLDERS_MAX) : NULL);
}

/* A request refused because its wait would close the cycle in the table's
 * lt.cycle: the message names each wait, "cycle" describes them. */
void reply_deadlock(struct session *s, int64_t id, const struct lt_request *lr)
{
	const struct lt_cycle *c = &s->d->lt.cycle;
	char msg[4096];
	size_t len = 0, w;

	w = (size_t)snprintf(msg, sizeof(msg), "deadlock: ");
	report_deadlock(c, lr, msg + w, sizeof(msg) - w);
	reply_line(s, proto_reply_error_with(true, id, HASP_E_DEADLOCK, msg, "cycle",
					     report_cycle(s->d, c, lr), &len), &len);
}

/* o with name set to v, or NULL (o dropped) for want of memory. */
static json_t *reply_with(json_t *o, const char *name, json_t *v)
{
	if (o && json_object_set_new(o, name, v) == 0)
		return o;
	json_decref(o);
	return NULL;
}

/* The grant of a lease with a TTL or a token: they join the usual members. */
static void reply_grant_life(struct session *s, const struct lt_entry *e,
			     const struct lt_life *life)
{
	char token[2 * LT_TOKEN_LEN + 1];
	json_t *body = json_pack("{s:I,s:I,s:s}", "lease", (json_int_t)e->id,
				 "fence", (json_int_t)e->fence, "mode", lt_mode_name(e->mode));

	if (life->detached) {
		proto_hex_encode(token, life->token, LT_TOKEN_LEN);
		body = reply_with(body, "token", json_string(token));
	}
	if (life->ttl_ms)
		body = reply_with(body, "expires_ms", json_integer((json_int_t)life->ttl_ms));
	reply_ok(s, e->tag, body);
}

/* The grant of a multi-key lease (e is its first part): its keys, in the
 * request's order. */
static void reply_grant_keys(struct session *s, const struct lt_entry *e)
{
	json_t *body = json_pack("{s:I,s:I}", "lease", (json_int_t)e->id, "fence",
				 (json_int_t)e->fence);
	json_t *keys = body ? json_array() : NULL;

	for (size_t i = 0; keys && i < e->multi->n; i++)
		if (json_array_append_new(keys, json_string(e->multi->parts[i]->res->key)) < 0) {
			json_decref(keys); /* no memory: no reply body, as for any */
			keys = NULL;
		}
	reply_ok(s, e->tag, body ? reply_with(body, "keys", keys) : NULL);
}

void reply_grant(struct session *s, const struct lt_entry *e)
{
	const struct lt_life *life = lt_entry_life(e);
	char buf[PROTO_SMALL_REPLY];
	size_t len;

	if (e->multi) {
		reply_grant_keys(s, e);
		return;
	}
	if (life && (life->detached || life->ttl_ms)) {
		reply_grant_life(s, e, life);
		return;
	}
	len = proto_fmt_grant(buf, e->tag, e->id, e->fence, e->mode == LT_SHARED);
	session_write(s, buf, len);
}

