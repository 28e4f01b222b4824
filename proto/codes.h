/* The protocol's version, ops and error codes: the one list shared by the
 * daemon and libhasp. Changing any of them means bumping PROTO_VERSION and
 * updating proto/PROTOCOL.md. */
#pragma once

#include "hasp.h"

#define PROTO_VERSION 1
#define PROTO_LINE_MAX 65536        /* bytes per line, the newline included */

enum proto_op {
	OP_HELLO,
	OP_ACQUIRE,
	OP_RELEASE,
	OP_CANCEL,
	OP_LIST,
	OP_STATS,
	OP_PING,
	OP_REVOKE,
	OP_ADOPT,
	OP_RENEW,
	OP_CONVERT,
	OP_WATCH,
	OP__COUNT,
};

const char *proto_op_name(enum proto_op op);
/* -1 when name is not an op. */
int proto_op_parse(const char *name);

/* Error codes are hasp.h's enum hasp_errcode; these map them to the wire. */
const char *proto_errcode_name(int code);
/* HASP_E_INTERNAL for a name this version does not know. */
int proto_errcode_parse(const char *name);
