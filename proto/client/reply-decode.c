/* Replies and events as libhasp reads them. */
#include "proto-client.h"

#include <string.h>

int proto_decode_reply(const char *line, size_t len, struct proto_reply *rep)
{
	json_t *o = json_loadb(line, len, 0, NULL);
	json_t *id, *err;

	memset(rep, 0, sizeof(*rep));
	if (!json_is_object(o))
		goto bad;
	rep->root = o;
	rep->event = json_string_value(json_object_get(o, "event"));
	if (rep->event) {
		rep->is_event = true;
		return 0;
	}
	id = json_object_get(o, "id");
	rep->has_id = json_is_integer(id);
	rep->id = rep->has_id ? json_integer_value(id) : 0;
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

void proto_reply_done(struct proto_reply *rep)
{
	json_decref(rep->root);
	rep->root = NULL;
}

int64_t proto_reply_expires_ms(const struct proto_reply *rep)
{
	json_t *e = json_object_get(rep->root, "expires_ms");

	return json_is_integer(e) && json_integer_value(e) >= 0 ? json_integer_value(e) : -1;
}

int proto_decode_grant(const struct proto_reply *rep, struct proto_grant *g)
{
	json_t *lease = json_object_get(rep->root, "lease");
	json_t *fence = json_object_get(rep->root, "fence");
	json_t *token = json_object_get(rep->root, "token");
	json_t *expires = json_object_get(rep->root, "expires_ms");

	if (!json_is_integer(lease) || json_integer_value(lease) < 1 ||
	    (fence && !json_is_integer(fence)) ||
	    (token && !proto_token_valid(json_string_value(token))) ||
	    (expires && proto_reply_expires_ms(rep) < 0))
		return -1;
	g->lease = (uint64_t)json_integer_value(lease);
	g->fence = (uint64_t)json_integer_value(fence);
	g->token = json_string_value(token);
	g->expires_ms = proto_reply_expires_ms(rep);
	return 0;
}
