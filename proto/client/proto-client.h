/* The client's half of the codec: requests out, replies and events in.
 * libhasp's; the daemon's half is proto/daemon/proto-daemon.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "codes.h"
#include "flat.h"
#include "wire.h"

/* ---- requests, written by libhasp ---- */

/* A request line with its newline; malloc'ed. args (may be NULL) is consumed. */
char *proto_encode_request(int64_t id, enum proto_op op, json_t *args, size_t *len);

/* A request's members as JSON text ("name":value,...), written without
 * jansson, for the hot path (acquire, release). Strings given to _str must
 * be UTF-8 (checked before); _shown writes one that may not be (a path)
 * as it is shown. Running out of memory is remembered in nomem, for the
 * caller to look at once at the end. */
struct proto_members {
	char *text;             /* small, until it outgrows it */
	size_t len, cap;
	bool nomem;
	char small[192];
};

void proto_members_init(struct proto_members *m);
void proto_members_free(struct proto_members *m);
/* Members written before (another proto_members' text), as they are. */
void proto_members_add(struct proto_members *m, const char *text, size_t len);
void proto_members_str(struct proto_members *m, const char *name, const char *s);
void proto_members_shown(struct proto_members *m, const char *name, const char *s, size_t n);
void proto_members_int(struct proto_members *m, const char *name, int64_t v);
void proto_members_true(struct proto_members *m, const char *name);
/* The most bytes proto_line_write() writes for op and m. */
size_t proto_line_size(enum proto_op op, const struct proto_members *m);
/* {"id":id,"op":"op",members}\n into dst; returns its length. */
size_t proto_line_write(char *dst, int64_t id, enum proto_op op, const struct proto_members *m);
/* v in decimal into dst (20 bytes or more); returns the length. */
size_t proto_format_int(char *dst, int64_t v);

/* A checkout's token as the wire carries it: its 16 bytes as 32 lowercase
 * hex digits. */
#define PROTO_TOKEN_HEX 32
/* Whether s is such a token, so that one can be sent or kept. */
bool proto_token_valid(const char *s);

/* ---- replies, read by libhasp ---- */

struct proto_reply {
	bool is_event;
	bool has_id;
	int64_t id;
	const char *event;              /* when is_event */
	bool ok;
	int code;                       /* HASP_E_* when !ok */
	const char *message;            /* when !ok */
	/* The whole object: as jansson read it (root, owned), or, for the
	 * simple flat replies of the hot path (an ok, an event), as the flat
	 * reader did (flat, root NULL until proto_reply_root()). */
	json_t *root;
	bool is_flat;
	struct flat flat;
};

/* Returns 0, or -1 when the line is not a reply object. */
int proto_decode_reply(const char *line, size_t len, struct proto_reply *rep);
void proto_reply_done(struct proto_reply *rep);
/* The whole object as jansson's, built from the flat reader's if that read
 * it (after which rep may be copied); NULL when out of memory. */
json_t *proto_reply_root(struct proto_reply *rep);
/* A member that is an integer, or a string: false or NULL when absent or
 * of another type. */
bool proto_reply_int(const struct proto_reply *rep, const char *name, int64_t *v);
const char *proto_reply_str(const struct proto_reply *rep, const char *name);

/* What a granted acquire's reply says of the lease (pointers into rep). */
struct proto_grant {
	uint64_t lease;
	uint64_t fence;
	const char *token;              /* a checkout's, else NULL */
	int64_t expires_ms;             /* with a TTL, else -1 */
};

/* Reads an ok acquire reply. Returns 0, or -1 when it names no lease, or
 * carries a token or an expiry that is not one. */
int proto_decode_grant(const struct proto_reply *rep, struct proto_grant *g);
/* An ok reply's "expires_ms" (renew), or -1 when absent or not a count. */
int64_t proto_reply_expires_ms(const struct proto_reply *rep);
