/* Requests as the daemon reads them: the fast flat reader for simple lines,
 * jansson for the rest, both through one set of member decoders. */
#include "proto-daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Set when jansson's allocator (once proto_track_memory() installed it)
 * found no memory: jansson reports that as a parse error, or not at all. */
static bool json_oom;

static void *proto_json_malloc(size_t size)
{
	void *p = malloc(size);

	if (!p)
		json_oom = true;
	return p;
}

void proto_track_memory(void)
{
	json_set_alloc_funcs(proto_json_malloc, free);
}

/* The members any request may have, in the order a line names them most
 * often (acquire and release first). */
enum name {
	N_ID, N_OP, N_KEY, N_TIMEOUT_MS, N_LEASE, N_MODE, N_PATH, N_FD, N_LOCK_FD, N_OWNER,
	N_MESSAGE, N_TTL_MS, N_DETACH, N_TOKEN, N_CLIENT, N_VERSION, N_REQUEST, N_PREFIX,
	N_AFTER, N_LIMIT, N_KEYS, N__COUNT
};

static const char *const names[N__COUNT] = {
	[N_ID] = "id", [N_OP] = "op", [N_KEY] = "key", [N_TIMEOUT_MS] = "timeout_ms",
	[N_LEASE] = "lease", [N_MODE] = "mode", [N_PATH] = "path", [N_FD] = "fd",
	[N_LOCK_FD] = "lock_fd", [N_OWNER] = "owner", [N_MESSAGE] = "message",
	[N_TTL_MS] = "ttl_ms", [N_DETACH] = "detach", [N_TOKEN] = "token",
	[N_CLIENT] = "client", [N_VERSION] = "version", [N_REQUEST] = "request",
	[N_PREFIX] = "prefix", [N_AFTER] = "after", [N_LIMIT] = "limit", [N_KEYS] = "keys",
};

/* A request's members, read either by the fast flat reader or by jansson:
 * the decoders below see only struct value. A flat line's members are
 * looked up once, by name, into at[] (the index in flat->m, or -1): the
 * decoders ask for a dozen names a request. */
struct members {
	json_t *json;
	const struct flat *flat;
	signed char at[N__COUNT];
};
_Static_assert(FLAT_MEMBERS_MAX <= 127, "a member's index fits in at[]");

#define TWO(a, b) ((unsigned char)(a) << 8 | (unsigned char)(b))

/* The member called s, or -1: told by its first two bytes (no two names
 * share them), then confirmed whole. */
static int name_index(const char *s)
{
	int n;

	if (!s[0])
		return -1;
	switch (TWO(s[0], s[1])) {
	case TWO('i', 'd'): n = N_ID; break;
	case TWO('o', 'p'): n = N_OP; break;
	case TWO('k', 'e'): n = s[2] == 'y' && s[3] == 's' ? N_KEYS : N_KEY; break;
	case TWO('t', 'i'): n = N_TIMEOUT_MS; break;
	case TWO('l', 'e'): n = N_LEASE; break;
	case TWO('m', 'o'): n = N_MODE; break;
	case TWO('p', 'a'): n = N_PATH; break;
	case TWO('f', 'd'): n = N_FD; break;
	case TWO('l', 'o'): n = N_LOCK_FD; break;
	case TWO('o', 'w'): n = N_OWNER; break;
	case TWO('m', 'e'): n = N_MESSAGE; break;
	case TWO('t', 't'): n = N_TTL_MS; break;
	case TWO('d', 'e'): n = N_DETACH; break;
	case TWO('t', 'o'): n = N_TOKEN; break;
	case TWO('c', 'l'): n = N_CLIENT; break;
	case TWO('v', 'e'): n = N_VERSION; break;
	case TWO('r', 'e'): n = N_REQUEST; break;
	case TWO('p', 'r'): n = N_PREFIX; break;
	case TWO('a', 'f'): n = N_AFTER; break;
	case TWO('l', 'i'): n = N_LIMIT; break;
	default: return -1;
	}
	return strcmp(s, names[n]) == 0 ? n : -1;
}

static void members_index(struct members *m)
{
	memset(m->at, -1, sizeof(m->at));
	for (size_t i = 0; i < m->flat->n; i++) {
		int n = name_index(m->flat->m[i].name);

		if (n >= 0)
			m->at[n] = (signed char)i;
	}
}

enum value_type { V_ABSENT, V_NULL, V_STRING, V_INT, V_TRUE, V_FALSE, V_OTHER };

struct value {
	enum value_type type;
	const char *s;          /* V_STRING, NUL-terminated */
	size_t len;
	int64_t i;              /* V_INT */
};

static inline struct value flat_value(const struct flat_member *m)
{
	static const enum value_type types[] = {
		[FLAT_STRING] = V_STRING, [FLAT_INT] = V_INT, [FLAT_TRUE] = V_TRUE,
		[FLAT_FALSE] = V_FALSE, [FLAT_NULL] = V_NULL,
	};

	if (!m)
		return (struct value){ .type = V_ABSENT };
	return (struct value){ types[m->type], m->str, m->len, m->i };
}

static struct value json_value(json_t *v)
{
	if (!v)
		return (struct value){ .type = V_ABSENT };
	switch (json_typeof(v)) {
	case JSON_NULL: return (struct value){ .type = V_NULL };
	case JSON_TRUE: return (struct value){ .type = V_TRUE };
	case JSON_FALSE: return (struct value){ .type = V_FALSE };
	case JSON_INTEGER: return (struct value){ .type = V_INT, .i = json_integer_value(v) };
	case JSON_STRING:
		return (struct value){ V_STRING, json_string_value(v), json_string_length(v), 0 };
	default: return (struct value){ .type = V_OTHER };
	}
}

static inline struct value member(const struct members *m, enum name n)
{
	if (m->flat)
		return flat_value(m->at[n] < 0 ? NULL : &m->flat->m[m->at[n]]);
	return json_value(json_object_get(m->json, names[n]));
}

static inline bool absent(struct value v)
{
	return v.type == V_ABSENT || v.type == V_NULL;
}

/* An optional string member: absent or null leaves *out NULL. */
static inline int get_opt_string(const struct members *m, enum name n, size_t max,
			  const char **out, size_t *out_len, struct proto_error *err)
{
	struct value v = member(m, n);

	*out = NULL;
	if (out_len)
		*out_len = 0;
	if (absent(v))
		return 0;
	if (v.type != V_STRING)
		return fail(err, HASP_E_BAD_REQUEST, "\"%s\" must be a string", names[n]);
	if (v.len > max)
		return fail(err, HASP_E_BAD_REQUEST, "\"%s\" is longer than %zu bytes", names[n], max);
	*out = v.s;
	if (out_len)
		*out_len = v.len;
	return 0;
}

/* An optional integer member >= min: absent or null leaves *out at dflt. */
static inline int get_opt_int(const struct members *m, enum name n, int64_t min, int64_t dflt,
		       int64_t *out, struct proto_error *err)
{
	struct value v = member(m, n);

	*out = dflt;
	if (absent(v))
		return 0;
	if (v.type != V_INT || v.i < min)
		return fail(err, HASP_E_BAD_REQUEST, "\"%s\" must be an integer >= %" PRId64,
			    names[n], min);
	*out = v.i;
	return 0;
}

static inline int get_int(const struct members *m, enum name n, int64_t min, int64_t *out,
		   struct proto_error *err)
{
	if (absent(member(m, n)))
		return fail(err, HASP_E_BAD_REQUEST, "missing \"%s\"", names[n]);
	return get_opt_int(m, n, min, 0, out, err);
}

static int decode_hello(const struct members *m, struct proto_request *req,
			struct proto_error *err)
{
	if (get_opt_string(m, N_CLIENT, PROTO_CLIENT_MAX, &req->hello.client, NULL, err) < 0)
		return -1;
	return get_opt_int(m, N_VERSION, 1, 0, &req->hello.version, err);
}

/* An optional boolean member: absent or null is false. */
static inline int get_opt_bool(const struct members *m, enum name n, bool *out,
			struct proto_error *err)
{
	struct value v = member(m, n);

	*out = v.type == V_TRUE;
	if (!absent(v) && v.type != V_TRUE && v.type != V_FALSE)
		return fail(err, HASP_E_BAD_REQUEST, "\"%s\" must be true or false", names[n]);
	return 0;
}

static int decode_mode(const struct members *m, bool *shared, struct proto_error *err)
{
	struct value v = member(m, N_MODE);

	*shared = false;
	if (absent(v))
		return 0;
	if (v.type == V_STRING && strcmp(v.s, "shared") == 0)
		*shared = true;
	else if (v.type != V_STRING || strcmp(v.s, "exclusive") != 0)
		return fail(err, HASP_E_BAD_REQUEST, "\"mode\" must be \"exclusive\" or \"shared\"");
	return 0;
}

/* An absolute "path" (or none), and "fd" (a descriptor came with the
 * line), which goes with it. */
static inline int decode_path_fd(const struct members *m, const char **path, bool *has_fd,
			  struct proto_error *err)
{
	struct value fd = member(m, N_FD);

	if (get_opt_string(m, N_PATH, PROTO_PATH_MAX, path, NULL, err) < 0)
		return -1;
	if (*path && (*path)[0] != '/')
		return fail(err, HASP_E_BAD_REQUEST, "\"path\" must be absolute");
	if (!absent(fd) && fd.type != V_TRUE && fd.type != V_FALSE)
		return fail(err, HASP_E_BAD_REQUEST, "\"fd\" must be true or false");
	*has_fd = fd.type == V_TRUE;
	if (*has_fd && !*path)
		return fail(err, HASP_E_BAD_REQUEST, "\"fd\" goes with \"path\"");
	return 0;
}

/* A semaphore's "limit": 1 .. PROTO_SEMAPHORE_MAX holders of a named key,
 * each exclusive; not checked out (the journal keeps no limit). */
static int decode_semaphore(const struct members *m, struct proto_request *req,
			    struct proto_error *err)
{
	__typeof__(req->acquire) *a = &req->acquire;

	if (get_opt_int(m, N_LIMIT, 1, 0, &a->limit, err) < 0)
		return -1;
	if (!a->limit)
		return 0;
	if (a->limit > PROTO_SEMAPHORE_MAX)
		return fail(err, HASP_E_BAD_REQUEST, "\"limit\" must be an integer from 1 to %d",
			    PROTO_SEMAPHORE_MAX);
	if (a->path)
		return fail(err, HASP_E_BAD_REQUEST, "\"limit\" goes with \"key\": a file is not a "
			    "semaphore");
	if (a->shared)
		return fail(err, HASP_E_BAD_REQUEST, "a semaphore's holders are exclusive: \"limit\" "
			    "goes with \"mode\": \"exclusive\" (or none)");
	if (a->detach)
		return fail(err, HASP_E_BAD_REQUEST, "a semaphore's lease cannot be checked out "
			    "(\"detach\" with \"limit\")");
	return 0;
}

/* One of "keys": a name, or {"key": name, "mode": ...}; *name and *mode
 * (NULL when absent) are set. */
static int keys_item(json_t *item, json_t **name, json_t **mode, struct proto_error *err)
{
	*name = item;
	*mode = NULL;
	if (json_is_object(item)) {
		*name = json_object_get(item, "key");
		*mode = json_object_get(item, "mode");
	}
	if (!json_is_string(*name) || json_string_length(*name) == 0 ||
	    json_string_length(*name) > PROTO_KEY_MAX)
		return fail(err, HASP_E_BAD_REQUEST, "each of \"keys\" must be a key (1 to %d bytes) "
			    "or {\"key\":..,\"mode\":..}", PROTO_KEY_MAX);
	if (*mode && !json_is_null(*mode) && (!json_is_string(*mode) ||
	    (strcmp(json_string_value(*mode), "shared") != 0 &&
	     strcmp(json_string_value(*mode), "exclusive") != 0)))
		return fail(err, HASP_E_BAD_REQUEST, "\"mode\" must be \"exclusive\" or \"shared\"");
	return 0;
}

/* Whether keys' items i and j name one key. */
static bool keys_same(json_t *keys, size_t i, size_t j)
{
	json_t *a, *b, *mode;

	keys_item(json_array_get(keys, i), &a, &mode, NULL);
	keys_item(json_array_get(keys, j), &b, &mode, NULL);
	return json_string_length(a) == json_string_length(b) &&
	       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
}

/* A multi-key acquire's "keys": PROTO_KEYS_MIN .. PROTO_KEYS_MAX distinct
 * keys. Only jansson reads an array: a flat line's "keys" is never one. */
static int decode_keys(const struct members *m, struct proto_request *req,
		       struct proto_error *err)
{
	json_t *keys = m->json ? json_object_get(m->json, "keys") : NULL, *name, *mode;
	size_t n;

	if (absent(member(m, N_KEYS)))
		return 0;
	n = json_is_array(keys) ? json_array_size(keys) : 0;
	if (n < PROTO_KEYS_MIN || n > PROTO_KEYS_MAX)
		return fail(err, HASP_E_BAD_REQUEST, "\"keys\" must be an array of %d to %d keys",
			    PROTO_KEYS_MIN, PROTO_KEYS_MAX);
	for (size_t i = 0; i < n; i++) {
		if (keys_item(json_array_get(keys, i), &name, &mode, err) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (keys_same(keys, i, j))
				return fail(err, HASP_E_BAD_REQUEST, "\"keys\" names a key twice "
					    "(items %zu and %zu)", j, i);
	}
	req->acquire.keys = keys;
	req->acquire.nkeys = n;
	return 0;
}

void proto_acquire_key(const struct proto_request *req, size_t i, struct proto_key *ret)
{
	json_t *name, *mode;

	keys_item(json_array_get(req->acquire.keys, i), &name, &mode, NULL);
	ret->key = json_string_value(name);
	ret->key_len = json_string_length(name);
	ret->shared = json_is_string(mode) ? strcmp(json_string_value(mode), "shared") == 0 :
		      req->acquire.shared;
}

/* What a multi-key acquire cannot have. */
static int decode_keys_alone(const struct proto_request *req, struct proto_error *err)
{
	const __typeof__(req->acquire) *a = &req->acquire;

	if (a->keys && (a->detach || a->ttl_ms || a->limit))
		return fail(err, HASP_E_BAD_REQUEST, "a multi-key acquire (\"keys\") cannot be "
			    "checked out (\"detach\"), have a \"ttl_ms\" or a \"limit\"");
	return 0;
}

static int decode_acquire(const struct members *m, struct proto_request *req,
			  struct proto_error *err)
{
	__typeof__(req->acquire) *a = &req->acquire;
	struct value lock_fd = member(m, N_LOCK_FD);

	if (get_opt_string(m, N_KEY, PROTO_KEY_MAX, &a->key, &a->key_len, err) < 0 ||
	    decode_path_fd(m, &a->path, &a->fd, err) < 0 || decode_keys(m, req, err) < 0)
		return -1;
	if ((a->key != NULL) + (a->path != NULL) + (a->keys != NULL) != 1)
		return fail(err, HASP_E_BAD_REQUEST, "an acquire needs one of \"key\", \"keys\" or "
			    "\"path\"");
	if (a->key && a->key_len == 0)
		return fail(err, HASP_E_BAD_REQUEST, "\"key\" must not be empty");
	if (!absent(lock_fd) && lock_fd.type != V_TRUE && lock_fd.type != V_FALSE)
		return fail(err, HASP_E_BAD_REQUEST, "\"lock_fd\" must be true or false");
	a->lock_fd = lock_fd.type == V_TRUE;
	if (a->lock_fd && !a->fd)
		return fail(err, HASP_E_BAD_REQUEST, "\"lock_fd\" goes with \"fd\": true");
	if (decode_mode(m, &a->shared, err) < 0 ||
	    get_opt_int(m, N_TIMEOUT_MS, 0, -1, &a->timeout_ms, err) < 0 ||
	    get_opt_string(m, N_OWNER, PROTO_OWNER_MAX, &a->owner, NULL, err) < 0 ||
	    get_opt_string(m, N_MESSAGE, PROTO_MESSAGE_MAX, &a->message, NULL, err) < 0 ||
	    get_opt_int(m, N_TTL_MS, 1, 0, &a->ttl_ms, err) < 0 ||
	    get_opt_bool(m, N_DETACH, &a->detach, err) < 0)
		return -1;
	if (a->lock_fd && (a->detach || a->ttl_ms))
		return fail(err, HASP_E_BAD_REQUEST, "the fd form (\"lock_fd\") leaves the lock with "
			    "the client's descriptor: it cannot detach or have a \"ttl_ms\"");
	if (decode_semaphore(m, req, err) < 0)
		return -1;
	return decode_keys_alone(req, err);
}

/* A checkout's token: 32 lowercase hex digits. */
static int decode_token(const struct members *m, struct proto_target *t, struct proto_error *err)
{
	const char *token;
	size_t len;

	if (get_opt_string(m, N_TOKEN, 2 * PROTO_TOKEN_LEN, &token, &len, err) < 0)
		return -1;
	t->has_token = token != NULL;
	if (token && proto_hex_decode(t->token, token, len, PROTO_TOKEN_LEN) < 0)
		return fail(err, HASP_E_BAD_REQUEST, "\"token\" must be %d lowercase hex digits",
			    2 * PROTO_TOKEN_LEN);
	return 0;
}

/* What a release or renew names: one of lease, key or path, or a token
 * alone. */
static int decode_target(const struct members *m, const char *op, struct proto_target *t,
			 struct proto_error *err)
{
	int64_t lease;

	if (get_opt_string(m, N_KEY, PROTO_KEY_MAX, &t->key, &t->key_len, err) < 0 ||
	    decode_path_fd(m, &t->path, &t->fd, err) < 0 ||
	    get_opt_int(m, N_LEASE, 1, 0, &lease, err) < 0 || decode_token(m, t, err) < 0)
		return -1;
	t->lease = (uint64_t)lease;
	if ((t->key != NULL) + (t->path != NULL) + (t->lease != 0) > 1 ||
	    (!t->key && !t->path && !t->lease && !t->has_token))
		return fail(err, HASP_E_BAD_REQUEST, "a %s needs one of \"lease\", \"key\" or "
			    "\"path\", or a \"token\" alone", op);
	if (t->key && t->key_len == 0)
		return fail(err, HASP_E_BAD_REQUEST, "\"key\" must not be empty");
	return 0;
}

static int decode_revoke(const struct members *m, struct proto_request *req,
			 struct proto_error *err)
{
	int64_t lease;

	if (get_opt_string(m, N_KEY, PROTO_KEY_MAX, &req->revoke.key, &req->revoke.key_len, err) < 0 ||
	    decode_path_fd(m, &req->revoke.path, &req->revoke.fd, err) < 0 ||
	    get_opt_int(m, N_LEASE, 1, 0, &lease, err) < 0)
		return -1;
	req->revoke.lease = (uint64_t)lease;
	if ((req->revoke.key != NULL) + (req->revoke.path != NULL) + (req->revoke.lease != 0) != 1)
		return fail(err, HASP_E_BAD_REQUEST,
			    "a revoke needs one of \"lease\", \"key\" or \"path\"");
	return 0;
}

/* A file joining a held file lease's lock: lease, path and its descriptor. */
static int decode_adopt(const struct members *m, struct proto_request *req,
			struct proto_error *err)
{
	int64_t lease;

	if (get_int(m, N_LEASE, 1, &lease, err) < 0 ||
	    decode_path_fd(m, &req->adopt.path, &req->adopt.fd, err) < 0)
		return -1;
	req->adopt.lease = (uint64_t)lease;
	if (!req->adopt.path || !req->adopt.fd)
		return fail(err, HASP_E_BAD_REQUEST, "an adopt needs \"path\" and \"fd\": true, "
			    "with the file's descriptor");
	return 0;
}

/* A held lease to another mode: lease, mode (required), timeout_ms. */
static int decode_convert(const struct members *m, struct proto_request *req,
			  struct proto_error *err)
{
	int64_t lease;

	if (get_int(m, N_LEASE, 1, &lease, err) < 0)
		return -1;
	req->convert.lease = (uint64_t)lease;
	if (absent(member(m, N_MODE)))
		return fail(err, HASP_E_BAD_REQUEST, "a convert needs \"mode\": \"exclusive\" or "
			    "\"shared\"");
	return decode_mode(m, &req->convert.shared, err) < 0 ? -1 :
	       get_opt_int(m, N_TIMEOUT_MS, 0, -1, &req->convert.timeout_ms, err);
}

/* Paging: prefix, after, limit (see PROTOCOL.md, list). */
static int decode_list(const struct members *m, struct proto_request *req,
		       struct proto_error *err)
{
	struct proto_list_args *l = &req->list;

	if (get_opt_string(m, N_PREFIX, PROTO_LIST_NAME_MAX, &l->prefix, &l->prefix_len, err) < 0 ||
	    get_opt_string(m, N_AFTER, PROTO_LIST_NAME_MAX, &l->after, &l->after_len, err) < 0 ||
	    get_opt_int(m, N_LIMIT, 1, PROTO_LIST_DEFAULT, &l->limit, err) < 0)
		return -1;
	if (l->limit > PROTO_LIST_MAX)
		return fail(err, HASP_E_BAD_REQUEST, "\"limit\" must be an integer from 1 to %d",
			    PROTO_LIST_MAX);
	return 0;
}

static int decode_args(const struct members *m, struct proto_request *req,
		       struct proto_error *err)
{
	switch (req->op) {
	case OP_HELLO:
		return decode_hello(m, req, err);
	case OP_ACQUIRE:
		return decode_acquire(m, req, err);
	case OP_RELEASE:
		return decode_target(m, "release", &req->release, err);
	case OP_RENEW:
		if (decode_target(m, "renew", &req->renew.target, err) < 0)
			return -1;
		return get_opt_int(m, N_TTL_MS, 1, 0, &req->renew.ttl_ms, err);
	case OP_CANCEL:
		return get_int(m, N_REQUEST, INT64_MIN, &req->cancel.request, err);
	case OP_REVOKE:
		return decode_revoke(m, req, err);
	case OP_ADOPT:
		return decode_adopt(m, req, err);
	case OP_LIST:
		return decode_list(m, req, err);
	case OP_CONVERT:
		return decode_convert(m, req, err);
	case OP_WATCH:
		return get_opt_string(m, N_PREFIX, PROTO_LIST_NAME_MAX, &req->watch.prefix,
				      &req->watch.prefix_len, err);
	default:
		return 0;
	}
}

/* id and op, then the op's own members. */
static int decode_members(const struct members *m, struct proto_request *req,
			  struct proto_error *err)
{
	struct value id = member(m, N_ID), op = member(m, N_OP);
	int opn;

	if (id.type == V_INT) {
		req->has_id = true;
		req->id = id.i;
	}
	if (id.type == V_ABSENT)
		return fail(err, HASP_E_BAD_REQUEST, "missing \"id\"");
	if (!req->has_id)
		return fail(err, HASP_E_BAD_REQUEST, "\"id\" must be an integer");
	if (op.type == V_ABSENT)
		return fail(err, HASP_E_BAD_REQUEST, "missing \"op\"");
	if (op.type != V_STRING)
		return fail(err, HASP_E_BAD_REQUEST, "\"op\" must be a string");
	opn = proto_op_parse(op.s);
	if (opn < 0)
		return fail(err, HASP_E_UNKNOWN_OP, "unknown op \"%.64s\"", op.s);
	req->op = (enum proto_op)opn;
	return decode_args(m, req, err);
}

int proto_decode_request(const char *line, size_t len, struct proto_request *req,
			 struct proto_doc *doc, struct proto_error *err)
{
	struct members m = { NULL, NULL, { 0 } };
	json_error_t jerr;

	memset(req, 0, sizeof(*req));
	doc->root = NULL;
	if (flat_parse(line, len, &doc->flat) == 0) {
		m.flat = &doc->flat;
		members_index(&m);
		return decode_members(&m, req, err);
	}
	json_oom = false;
	doc->root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	/* Out of memory, jansson's lexer drops the characters it cannot keep
	 * and may return a document that is not the line (a key or a number
	 * cut short): not to be trusted, whatever it returned. */
	if (json_oom) {
		proto_doc_done(doc);
		fail(err, HASP_E_INTERNAL, "out of memory");
		return -ENOMEM;
	}
	if (!doc->root)
		return fail(err, HASP_E_BAD_REQUEST, "malformed JSON at byte %d: %s",
			    jerr.position, jerr.text);
	if (!json_is_object(doc->root)) {
		proto_doc_done(doc);
		return fail(err, HASP_E_BAD_REQUEST, "a request must be a JSON object");
	}
	m.json = doc->root;
	if (decode_members(&m, req, err) < 0) {
		proto_doc_done(doc);
		return -1;
	}
	return 0;
}

void proto_doc_done(struct proto_doc *doc)
{
	json_decref(doc->root);
	doc->root = NULL;
}
