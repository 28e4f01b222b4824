/* Requests as libhasp writes them. */
#include "proto-client.h"

#include <string.h>

char *proto_encode_request(int64_t id, enum proto_op op, json_t *args, size_t *len)
{
	json_t *o = json_pack("{s:I,s:s}", "id", (json_int_t)id, "op", proto_op_name(op));

	if (o && args && json_object_update(o, args) < 0) {
		json_decref(o);
		o = NULL;
	}
	json_decref(args);
	return proto_dump_line(o, len);
}

bool proto_token_valid(const char *s)
{
	unsigned char bytes[PROTO_TOKEN_HEX / 2];

	return s && proto_hex_decode(bytes, s, strlen(s), sizeof(bytes)) == 0;
}
