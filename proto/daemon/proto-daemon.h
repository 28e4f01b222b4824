/* The daemon's half of the codec: requests in, replies and events out.
 * Strings in decoded structs are borrowed from the document the caller
 * frees. haspd's; libhasp's half is proto/client/proto-client.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "codes.h"
#include "flat.h"
#include "wire.h"

/* A list request's arguments. */
struct proto_list_args {
	const char *prefix;     /* only names that start with it; NULL: all */
	size_t prefix_len;
	const char *after;      /* only names after it; NULL: from the first */
	size_t after_len;
	int64_t limit;          /* 1 .. PROTO_LIST_MAX resources */
};

#define PROTO_TOKEN_LEN 16

/* What a release or renew names: a lease by its id, a checkout by its token
 * alone, or the caller's lease or checkout on a key or a file. */
struct proto_target {
	uint64_t lease;         /* 0 when by token, key or path */
	const char *key;        /* a named lock, or */
	size_t key_len;
	const char *path;       /* a file (absolute) */
	bool fd;                /* its descriptor came with it */
	bool has_token;         /* the checkout's token (alone, or it must match) */
	unsigned char token[PROTO_TOKEN_LEN];
};

struct proto_request {
	bool has_id;
	int64_t id;
	enum proto_op op;
	union {
		struct {
			const char *client;     /* may be NULL */
			int64_t version;        /* 0 when absent */
		} hello;
		struct {
			const char *key;        /* a named lock, or */
			size_t key_len;
			const char *path;       /* a file (then key is NULL) */
			bool fd;                /* a descriptor came with it */
			bool lock_fd;           /* the flock goes on that descriptor */
			bool shared;
			int64_t timeout_ms;     /* -1 when absent or null */
			const char *owner;      /* may be NULL */
			const char *message;    /* may be NULL */
			int64_t ttl_ms;         /* 0 when absent */
			bool detach;
			int64_t limit;          /* 0 when absent; else 1 .. PROTO_SEMAPHORE_MAX,
						 * with a key, in exclusive mode */
			const json_t *keys;     /* a multi-key acquire's (then key and path
						 * are NULL; no detach, ttl_ms or limit):
						 * read with proto_acquire_key() */
			size_t nkeys;           /* PROTO_KEYS_MIN .. PROTO_KEYS_MAX, distinct */
		} acquire;
		struct proto_target release;
		struct {
			struct proto_target target;
			int64_t ttl_ms;         /* 0 when absent: as it was */
		} renew;
		struct {
			int64_t request;
		} cancel;
		struct proto_list_args list;
		struct {
			const char *prefix;     /* NULL or "": every resource */
			size_t prefix_len;
		} watch;
		struct {
			uint64_t lease;         /* 0 when by key or path */
			const char *key;        /* a named lock, or */
			size_t key_len;
			const char *path;       /* a file (absolute) */
			bool fd;                /* its descriptor came with it */
		} revoke;
		struct {
			uint64_t lease;         /* a file lease of the session's */
			const char *path;       /* the file to join it (absolute) */
			bool fd;                /* its descriptor came with it */
		} adopt;
		struct {
			uint64_t lease;         /* a lease of the session's */
			bool shared;            /* the mode to convert it to */
			int64_t timeout_ms;     /* an upgrade's wait: -1 when absent or null */
		} convert;
	};
};

struct proto_error {
	int code;                       /* HASP_E_* */
	char message[160];
};

/* What a decoded request's strings point into: the fast reader's copy of a
 * simple line, or jansson's document for any other. */
struct proto_doc {
	json_t *root;
	struct flat flat;
};

/* ---- requests, read by the daemon ---- */

/* One key of a multi-key acquire. */
struct proto_key {
	const char *key;        /* borrowed from the request's document */
	size_t key_len;         /* 1 .. PROTO_KEY_MAX */
	bool shared;
};

/* Key i (< req->acquire.nkeys) of a decoded multi-key acquire: a plain
 * name in the request's mode, or {"key":..,"mode":..} in its own (by
 * default the request's). */
void proto_acquire_key(const struct proto_request *req, size_t i, struct proto_key *ret);

/* Decodes one request line (without its newline). On success returns 0;
 * the request's strings live in doc until proto_doc_done(). On failure
 * returns -1 (nothing to free) and fills err; req->has_id/id tell whether
 * the error can be addressed to a request. Returns -ENOMEM when jansson
 * ran out of memory for a line it had to parse (seen only after
 * proto_track_memory()): the line may be a valid request, unanswerable. */
int proto_decode_request(const char *line, size_t len, struct proto_request *req,
			 struct proto_doc *doc, struct proto_error *err);
void proto_doc_done(struct proto_doc *doc);
/* Routes jansson's allocations through one that notes a failure, so that
 * the decoder can tell running out of memory from a malformed line. It
 * sets jansson's allocator for the whole process: the daemon's call. */
void proto_track_memory(void);

/* ---- replies, written by the daemon ---- */

/* The length of o as the daemon writes it (compact, in order). */
size_t proto_dump_size(const json_t *o);

/* The hot replies, formatted without allocation. Each returns the line's
 * length, newline included; buf must hold PROTO_SMALL_REPLY bytes. */
#define PROTO_SMALL_REPLY 160
size_t proto_fmt_ok(char *buf, int64_t id);
size_t proto_fmt_grant(char *buf, int64_t id, uint64_t lease, uint64_t fence, bool shared);

/* {"id":ID,"ok":true, ...members of body}: body (may be NULL) is consumed.
 * Returns a malloc'ed line with its newline, or NULL on ENOMEM. */
char *proto_reply_ok(int64_t id, json_t *body, size_t *len);
/* {"id":ID|null,"ok":false,"error":{"code":..,"message":..,"holders":..}};
 * holders (may be NULL) is consumed. */
char *proto_reply_error(bool has_id, int64_t id, int code, const char *message,
			json_t *holders, size_t *len);
/* The same with value (may be NULL; consumed) under field instead of
 * "holders", e.g. a deadlock's "cycle". */
char *proto_reply_error_with(bool has_id, int64_t id, int code, const char *message,
			     const char *field, json_t *value, size_t *len);

/* {"event":NAME, ...members of body}: body is consumed. */
char *proto_event(const char *name, json_t *body, size_t *len);
