#include "proto.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

static int fail(struct proto_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct proto_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* An optional string member: absent or null leaves *out NULL. */
static int get_opt_string(json_t *o, const char *name, size_t max, const char **out,
			  size_t *out_len, struct proto_error *err)
{
	json_t *v = json_object_get(o, name);

	*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(err, HASP_E_BAD_REQUEST, "\"%s\" must be a string", name);
	if (json_string_length(v) > max)
		return fail(err, HASP_E_BAD_REQUEST, "\"%s\" is longer than %zu bytes", name, max);
	*out = json_string_value(v);
	if (out_len)
		*out_len = json_string_length(v);
	return 0;
}

/* An optional integer member >= min: absent or null leaves *out at dflt. */
static int get_opt_int(json_t *o, const char *name, int64_t min, int64_t dflt, int64_t *out,
		       struct proto_error *err)
{
	json_t *v = json_object_get(o, name);

	*out = dflt;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min)
		return fail(err, HASP_E_BAD_REQUEST, "\"%s\" must be an integer >= %" PRId64,
			    name, min);
	*out = json_integer_value(v);
	return 0;
}

static int get_int(json_t *o, const char *name, int64_t min, int64_t *out, struct proto_error *err)
{
	if (!json_object_get(o, name) || json_is_null(json_object_get(o, name)))
		return fail(err, HASP_E_BAD_REQUEST, "missing \"%s\"", name);
	return get_opt_int(o, name, min, 0, out, err);
}

static int decode_hello(json_t *o, struct proto_request *req, struct proto_error *err)
{
	if (get_opt_string(o, "client", PROTO_CLIENT_MAX, &req->hello.client, NULL, err) < 0)
		return -1;
	return get_opt_int(o, "version", 1, 0, &req->hello.version, err);
}

static int decode_mode(json_t *o, bool *shared, struct proto_error *err)
{
	json_t *v = json_object_get(o, "mode");
	const char *s;

	*shared = false;
	if (!v || json_is_null(v))
		return 0;
	s = json_string_value(v);
	if (s && strcmp(s, "shared") == 0)
		*shared = true;
	else if (!s || strcmp(s, "exclusive") != 0)
		return fail(err, HASP_E_BAD_REQUEST, "\"mode\" must be \"exclusive\" or \"shared\"");
	return 0;
}

static int decode_acquire(json_t *o, struct proto_request *req, struct proto_error *err)
{
	typeof(req->acquire) *a = &req->acquire;

	json_t *fd = json_object_get(o, "fd");

	if (get_opt_string(o, "key", PROTO_KEY_MAX, &a->key, &a->key_len, err) < 0 ||
	    get_opt_string(o, "path", PROTO_PATH_MAX, &a->path, NULL, err) < 0)
		return -1;
	if (!a->key == !a->path)
		return fail(err, HASP_E_BAD_REQUEST, "an acquire needs one of \"key\" or \"path\"");
	if (a->key && a->key_len == 0)
		return fail(err, HASP_E_BAD_REQUEST, "\"key\" must not be empty");
	if (a->path && a->path[0] != '/')
		return fail(err, HASP_E_BAD_REQUEST, "\"path\" must be absolute");
	if (fd && !json_is_null(fd) && !json_is_boolean(fd))
		return fail(err, HASP_E_BAD_REQUEST, "\"fd\" must be true or false");
	a->fd = json_is_true(fd);
	if (a->fd && !a->path)
		return fail(err, HASP_E_BAD_REQUEST, "\"fd\" goes with \"path\"");
	if (decode_mode(o, &a->shared, err) < 0 ||
	    get_opt_int(o, "timeout_ms", 0, -1, &a->timeout_ms, err) < 0 ||
	    get_opt_string(o, "owner", PROTO_OWNER_MAX, &a->owner, NULL, err) < 0 ||
	    get_opt_string(o, "message", PROTO_MESSAGE_MAX, &a->message, NULL, err) < 0)
		return -1;
	return 0;
}

static int decode_revoke(json_t *o, struct proto_request *req, struct proto_error *err)
{
	int64_t lease;

	if (get_opt_string(o, "key", PROTO_KEY_MAX, &req->revoke.key, &req->revoke.key_len, err) < 0 ||
	    get_opt_int(o, "lease", 1, 0, &lease, err) < 0)
		return -1;
	req->revoke.lease = (uint64_t)lease;
	if (!req->revoke.key == !req->revoke.lease)
		return fail(err, HASP_E_BAD_REQUEST, "a revoke needs one of \"lease\" or \"key\"");
	return 0;
}

static int decode_args(json_t *o, struct proto_request *req, struct proto_error *err)
{
	int64_t lease;

	switch (req->op) {
	case OP_HELLO:
		return decode_hello(o, req, err);
	case OP_ACQUIRE:
		return decode_acquire(o, req, err);
	case OP_RELEASE:
		if (get_int(o, "lease", 1, &lease, err) < 0)
			return -1;
		req->release.lease = (uint64_t)lease;
		return 0;
	case OP_CANCEL:
		return get_int(o, "request", INT64_MIN, &req->cancel.request, err);
	case OP_REVOKE:
		return decode_revoke(o, req, err);
	default:
		return 0;
	}
}

int proto_decode_request(const char *line, size_t len, struct proto_request *req,
			 json_t **root, struct proto_error *err)
{
	json_error_t jerr;
	json_t *o, *id, *op;
	int opn;

	memset(req, 0, sizeof(*req));
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return fail(err, HASP_E_BAD_REQUEST, "malformed JSON at byte %d: %s",
			    jerr.position, jerr.text);
	if (!json_is_object(o)) {
		json_decref(o);
		return fail(err, HASP_E_BAD_REQUEST, "a request must be a JSON object");
	}
	id = json_object_get(o, "id");
	if (json_is_integer(id)) {
		req->has_id = true;
		req->id = json_integer_value(id);
	}
	op = json_object_get(o, "op");
	if (!id)
		fail(err, HASP_E_BAD_REQUEST, "missing \"id\"");
	else if (!req->has_id)
		fail(err, HASP_E_BAD_REQUEST, "\"id\" must be an integer");
	else if (!op)
		fail(err, HASP_E_BAD_REQUEST, "missing \"op\"");
	else if (!json_is_string(op))
		fail(err, HASP_E_BAD_REQUEST, "\"op\" must be a string");
	else if ((opn = proto_op_parse(json_string_value(op))) < 0)
		fail(err, HASP_E_UNKNOWN_OP, "unknown op \"%.64s\"", json_string_value(op));
	else if ((req->op = (enum proto_op)opn, decode_args(o, req, err)) == 0) {
		*root = o;
		return 0;
	}
	json_decref(o);
	return -1;
}

/* ---- replies ---- */

size_t proto_fmt_ok(char *buf, int64_t id)
{
	return (size_t)snprintf(buf, PROTO_SMALL_REPLY, "{\"id\":%" PRId64 ",\"ok\":true}\n", id);
}

size_t proto_fmt_grant(char *buf, int64_t id, uint64_t lease, uint64_t fence, bool shared)
{
	return (size_t)snprintf(buf, PROTO_SMALL_REPLY,
				"{\"id\":%" PRId64 ",\"ok\":true,\"lease\":%" PRIu64
				",\"fence\":%" PRIu64 ",\"mode\":\"%s\"}\n",
				id, lease, fence, shared ? "shared" : "exclusive");
}

/* Serialises o, followed by a newline, and drops the reference. */
static char *dump_line(json_t *o, size_t *len)
{
	size_t n;
	char *buf = NULL;

	if (!o)
		return NULL;
	n = json_dumpb(o, NULL, 0, DUMP_FLAGS);
	if (n > 0 && (buf = malloc(n + 1))) {
		json_dumpb(o, buf, n, DUMP_FLAGS);
		buf[n] = '\n';
		*len = n + 1;
	}
	json_decref(o);
	return buf;
}

char *proto_reply_ok(int64_t id, json_t *body, size_t *len)
{
	json_t *o = json_pack("{s:I,s:b}", "id", (json_int_t)id, "ok", 1);

	if (o && body)
		json_object_update(o, body);
	json_decref(body);
	return dump_line(o, len);
}

char *proto_reply_error(bool has_id, int64_t id, int code, const char *message,
			json_t *holders, size_t *len)
{
	json_t *e = json_pack("{s:s,s:s}", "code", proto_errcode_name(code), "message", message);
	json_t *o;

	if (e && holders)
		json_object_set(e, "holders", holders);
	json_decref(holders);
	o = json_pack("{s:o,s:b,s:o}", "id", has_id ? json_integer(id) : json_null(),
		      "ok", 0, "error", e);
	return dump_line(o, len);
}

char *proto_event(const char *name, json_t *body, size_t *len)
{
	json_t *o = json_pack("{s:s}", "event", name);

	if (o && body)
		json_object_update(o, body);
	json_decref(body);
	return dump_line(o, len);
}

char *proto_encode_request(int64_t id, enum proto_op op, json_t *args, size_t *len)
{
	json_t *o = json_pack("{s:I,s:s}", "id", (json_int_t)id, "op", proto_op_name(op));

	if (o && args)
		json_object_update(o, args);
	json_decref(args);
	return dump_line(o, len);
}

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
