/* Replies and events as libhasp reads them: the flat reader first (a
 * grant, a release's ok, an event), jansson for the rest and for every
 * error, whose "error" is an object. */
#include "proto-client.h"

#include <string.h>

/* A member as either reader has it. */
struct member {
	bool present;
	bool is_int;
	int64_t i;
	const char *s;          /* a string's, else NULL */
};

static struct member get(const struct proto_reply *rep, const char *name)
{
	struct member v = { 0 };

	if (rep->is_flat) {
		const struct flat_member *m = flat_get(&rep->flat, name);

		v.present = m != NULL;
		v.is_int = m && m->type == FLAT_INT;
		v.i = v.is_int ? m->i : 0;
		v.s = m && m->type == FLAT_STRING ? m->str : NULL;
	} else {
		json_t *j = json_object_get(rep->root, name);

		v.present = j != NULL;
		v.is_int = json_is_integer(j);
		v.i = v.is_int ? json_integer_value(j) : 0;
		v.s = json_string_value(j);
	}
	return v;
}

bool proto_reply_int(const struct proto_reply *rep, const char *name, int64_t *v)
{
	struct member m = get(rep, name);

	*v = m.i;
	return m.is_int;
}

const char *proto_reply_str(const struct proto_reply *rep, const char *name)
{
	return get(rep, name).s;
}

/* The common fields of a reply read by the flat reader; false for what it
 * leaves to jansson: a reply that is not ok. */
static bool read_flat(struct proto_reply *rep)
{
	const struct flat_member *ok;

	rep->is_flat = true;
	rep->event = proto_reply_str(rep, "event");
	if (rep->event) {
		rep->is_event = true;
		return true;
	}
	rep->has_id = proto_reply_int(rep, "id", &rep->id);
	ok = flat_get(&rep->flat, "ok");
	rep->ok = ok && ok->type == FLAT_TRUE;
	return rep->ok;
}

static int read_json(const char *line, size_t len, struct proto_reply *rep)
{
	json_t *o = json_loadb(line, len, 0, NULL);
	json_t *err;

	if (!json_is_object(o))
		goto bad;
	rep->root = o;
	rep->event = json_string_value(json_object_get(o, "event"));
	if (rep->event) {
		rep->is_event = true;
		return 0;
	}
	rep->has_id = proto_reply_int(rep, "id", &rep->id);
	rep->ok = json_is_true(json_object_get(o, "ok"));
	if (!rep->ok) {
		const char *code;

		err = json_object_get(o, "error");
		code = json_string_value(json_object_get(err, "code"));
		rep->message = json_string_value(json_object_get(err, "message"));
		if (!code || !rep->message)
			goto bad;
		rep->code = proto_errcode_parse(code);
	}
	return 0;
bad:
	json_decref(o);
	rep->root = NULL;
	return -1;
}

/* Every field but the flat reader's (a kilobyte it fills itself). */
static void reset(struct proto_reply *rep)
{
	rep->is_event = rep->has_id = rep->ok = rep->is_flat = false;
	rep->id = 0;
	rep->event = rep->message = NULL;
	rep->code = 0;
	rep->root = NULL;
}

int proto_decode_reply(const char *line, size_t len, struct proto_reply *rep)
{
	reset(rep);
	if (flat_parse(line, len, &rep->flat) == 0 && read_flat(rep))
		return 0;
	reset(rep);
	return read_json(line, len, rep);
}

void proto_reply_done(struct proto_reply *rep)
{
	json_decref(rep->root);
	rep->root = NULL;
	rep->is_flat = false;
}

static json_t *flat_value(const struct flat_member *m)
{
	switch (m->type) {
	case FLAT_STRING: return json_stringn(m->str, m->len);
	case FLAT_INT: return json_integer(m->i);
	case FLAT_TRUE: return json_true();
	case FLAT_FALSE: return json_false();
	case FLAT_NULL: return json_null();
	}
	return NULL;
}

json_t *proto_reply_root(struct proto_reply *rep)
{
	json_t *o;

	if (!rep->is_flat)
		return rep->root;
	o = json_object();
	for (size_t i = 0; o && i < rep->flat.n; i++)
		if (json_object_set_new(o, rep->flat.m[i].name, flat_value(&rep->flat.m[i])) < 0) {
			json_decref(o);
			o = NULL;
		}
	if (!o)
		return NULL;
	rep->root = o;
	rep->is_flat = false;
	rep->event = json_string_value(json_object_get(o, "event"));
	return o;
}

int64_t proto_reply_expires_ms(const struct proto_reply *rep)
{
	struct member e = get(rep, "expires_ms");

	return e.is_int && e.i >= 0 ? e.i : -1;
}

int proto_decode_grant(const struct proto_reply *rep, struct proto_grant *g)
{
	struct member lease = get(rep, "lease"), fence = get(rep, "fence");
	struct member token = get(rep, "token"), expires = get(rep, "expires_ms");

	if (!lease.is_int || lease.i < 1 || (fence.present && !fence.is_int) ||
	    (token.present && !proto_token_valid(token.s)) ||
	    (expires.present && proto_reply_expires_ms(rep) < 0))
		return -1;
	g->lease = (uint64_t)lease.i;
	g->fence = (uint64_t)fence.i;
	g->token = token.s;
	g->expires_ms = proto_reply_expires_ms(rep);
	return 0;
}
