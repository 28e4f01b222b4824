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
