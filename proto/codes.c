#include "codes.h"

#include <string.h>

static const char *const op_names[OP__COUNT] = {
	[OP_HELLO] = "hello",
	[OP_ACQUIRE] = "acquire",
	[OP_RELEASE] = "release",
	[OP_CANCEL] = "cancel",
	[OP_LIST] = "list",
	[OP_STATS] = "stats",
	[OP_PING] = "ping",
	[OP_REVOKE] = "revoke",
	[OP_ADOPT] = "adopt",
	[OP_RENEW] = "renew",
	[OP_CONVERT] = "convert",
	[OP_WATCH] = "watch",
};

static const char *const err_names[] = {
	[HASP_E_BAD_REQUEST - HASP_E_BASE] = "bad_request",
	[HASP_E_UNKNOWN_OP - HASP_E_BASE] = "unknown_op",
	[HASP_E_BUSY - HASP_E_BASE] = "busy",
	[HASP_E_TIMEOUT - HASP_E_BASE] = "timeout",
	[HASP_E_CANCELLED - HASP_E_BASE] = "cancelled",
	[HASP_E_ALREADY_HELD - HASP_E_BASE] = "already_held",
	[HASP_E_UNKNOWN_LEASE - HASP_E_BASE] = "unknown_lease",
	[HASP_E_UNKNOWN_REQUEST - HASP_E_BASE] = "unknown_request",
	[HASP_E_DEADLOCK - HASP_E_BASE] = "deadlock",
	[HASP_E_PERMISSION_DENIED - HASP_E_BASE] = "permission_denied",
	[HASP_E_LIMIT - HASP_E_BASE] = "limit",
	[HASP_E_TOO_LARGE - HASP_E_BASE] = "too_large",
	[HASP_E_UNSUPPORTED - HASP_E_BASE] = "unsupported",
	[HASP_E_INTERNAL - HASP_E_BASE] = "internal",
	[HASP_E_UNAVAILABLE - HASP_E_BASE] = "unavailable",
};

#define N_ERRS (sizeof(err_names) / sizeof(err_names[0]))

const char *proto_op_name(enum proto_op op)
{
	return (unsigned)op < OP__COUNT ? op_names[op] : "?";
}

int proto_op_parse(const char *name)
{
	for (int i = 0; i < OP__COUNT; i++)
		if (op_names[i][0] == name[0] && strcmp(op_names[i], name) == 0)
			return i;
	return -1;
}

const char *proto_errcode_name(int code)
{
	unsigned i = (unsigned)(code - HASP_E_BASE);

	return i < N_ERRS && err_names[i] ? err_names[i] : "internal";
}

int proto_errcode_parse(const char *name)
{
	for (unsigned i = 0; i < N_ERRS; i++)
		if (err_names[i] && strcmp(err_names[i], name) == 0)
			return HASP_E_BASE + (int)i;
	return HASP_E_INTERNAL;
}
