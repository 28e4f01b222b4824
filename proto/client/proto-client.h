/* The client's half of the codec: requests out, replies and events in.
 * libhasp's; the daemon's half is proto/daemon/proto-daemon.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "codes.h"
#include "wire.h"

/* ---- requests, written by libhasp ---- */

/* A request line with its newline; malloc'ed. args (may be NULL) is consumed. */
char *proto_encode_request(int64_t id, enum proto_op op, json_t *args, size_t *len);

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
	json_t *root;                   /* the whole object, owned */
};

/* Returns 0, or -1 when the line is not a reply object. */
int proto_decode_reply(const char *line, size_t len, struct proto_reply *rep);
void proto_reply_done(struct proto_reply *rep);

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
