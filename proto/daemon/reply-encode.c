/* Replies and events as the daemon writes them. */
#include "proto-daemon.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Copies a string literal's bytes (without its NUL) to p; the end. */
#define PUT(p, literal) ((char *)memcpy((p), (literal), sizeof(literal) - 1) + sizeof(literal) - 1)

/* Written by hand, not by snprintf (a quarter of the daemon's work under a
 * pipelined load was printf's); tests/test_proto.c holds them to the
 * format strings they replaced, byte for byte. */
size_t proto_fmt_ok(char *buf, int64_t id)
{
	char *p = PUT(buf, "{\"id\":");

	p = proto_put_i64(p, id);
	p = PUT(p, ",\"ok\":true}\n");
	return (size_t)(p - buf);
}

size_t proto_fmt_grant(char *buf, int64_t id, uint64_t lease, uint64_t fence, bool shared)
{
	char *p = PUT(buf, "{\"id\":");

	p = proto_put_i64(p, id);
	p = PUT(p, ",\"ok\":true,\"lease\":");
	p = proto_put_u64(p, lease);
	p = PUT(p, ",\"fence\":");
	p = proto_put_u64(p, fence);
	if (shared)
		p = PUT(p, ",\"mode\":\"shared\"}\n");
	else
		p = PUT(p, ",\"mode\":\"exclusive\"}\n");
	return (size_t)(p - buf);
}

size_t proto_dump_size(const json_t *o)
{
	return json_dumpb(o, NULL, 0, PROTO_DUMP_FLAGS);
}

char *proto_reply_ok(int64_t id, json_t *body, size_t *len)
{
	json_t *o = json_pack("{s:I,s:b}", "id", (json_int_t)id, "ok", 1);

	if (o && body && json_object_update(o, body) < 0) {
		json_decref(o);
		o = NULL;
	}
	json_decref(body);
	return proto_dump_line(o, len);
}

/* An error message as a JSON string. Messages quote what clients sent, cut
 * at a byte count by snprintf, and jansson's parse errors quote raw input:
 * each byte that is not part of valid UTF-8 becomes '?', so that the error
 * can always be sent (json_string() refuses invalid UTF-8) and keeps its
 * length. */
static json_t *message_string(const char *message)
{
	size_t len = strlen(message), n = 0;
	json_t *str;
	char *copy;

	if (utf8_valid(message, len))
		return json_stringn_nocheck(message, len);
	copy = malloc(len + 1);
	if (!copy)
		return NULL;
	while (n < len) {
		int k = utf8_char(message + n, len - n);

		if (k > 0) {
			memcpy(copy + n, message + n, (size_t)k);
			n += (size_t)k;
		} else {
			memset(copy + n, '?', (size_t)-k);
			n += (size_t)-k;
		}
	}
	str = json_stringn_nocheck(copy, len);
	free(copy);
	return str;
}

char *proto_reply_error(bool has_id, int64_t id, int code, const char *message,
			json_t *holders, size_t *len)
{
	return proto_reply_error_with(has_id, id, code, message, "holders", holders, len);
}

char *proto_reply_error_with(bool has_id, int64_t id, int code, const char *message,
			     const char *field, json_t *value, size_t *len)
{
	json_t *e = json_pack("{s:s,s:o}", "code", proto_errcode_name(code), "message",
			      message_string(message));
	json_t *o;

	if (e && value)
		json_object_set(e, field, value);
	json_decref(value);
	o = json_pack("{s:o,s:b,s:o}", "id", has_id ? json_integer(id) : json_null(),
		      "ok", 0, "error", e);
	return proto_dump_line(o, len);
}

char *proto_event(const char *name, json_t *body, size_t *len)
{
	json_t *o = json_pack("{s:s}", "event", name);

	if (o && body && json_object_update(o, body) < 0) {
		json_decref(o);
		o = NULL;
	}
	json_decref(body);
	return proto_dump_line(o, len);
}

