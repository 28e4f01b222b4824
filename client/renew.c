/* Renewing a lease with a TTL: by the handle, or a checkout by its token,
 * or the caller's lease or checkout on a key or file. */
#include <errno.h>

#include "libhasp-internal.h"

/* A renew whose args (consumed) name what, on path's file if not NULL:
 * the new TTL added (none: the lease's own), and the time left read. */
static int renew(hasp_client *c, json_t *args, const char *path, int64_t ttl_ms,
		 int64_t *ret_expires_ms)
{
	struct proto_reply rep;
	int64_t expires;
	int r;

	if (ttl_ms < 0) {
		json_decref(args);
		return libhasp_error(c, -EINVAL, "a TTL is 0 (the lease's own) or more ms");
	}
	if (args && ttl_ms > 0 && json_object_set_new(args, "ttl_ms", json_integer(ttl_ms)) < 0) {
		json_decref(args);
		args = NULL; /* out of memory, said by the call */
	}
	r = path ? libhasp_call_file(c, OP_RENEW, args, path, &rep)
		 : libhasp_call(c, OP_RENEW, args, -1, &rep);
	if (r < 0)
		return r;
	expires = proto_reply_expires_ms(&rep);
	proto_reply_done(&rep);
	if (expires < 0)
		return libhasp_error(c, -HASP_E_PROTOCOL, "haspd's renew reply has no "
				     "\"expires_ms\"");
	if (ret_expires_ms)
		*ret_expires_ms = expires;
	return 0;
}

HASP_EXPORT int hasp_renew(hasp_client *c, const hasp_lease *l, int64_t ttl_ms,
			   int64_t *ret_expires_ms)
{
	return renew(c, json_pack("{s:I,s:s*}", "lease", (json_int_t)l->id, "token",
				  *l->token ? l->token : NULL),
		     NULL, ttl_ms, ret_expires_ms);
}

HASP_EXPORT int hasp_renew_token(hasp_client *c, const char *token, int64_t ttl_ms,
				 int64_t *ret_expires_ms)
{
	int r = libhasp_check_token(c, token);

	return r < 0 ? r : renew(c, json_pack("{s:s}", "token", token), NULL, ttl_ms,
				 ret_expires_ms);
}

HASP_EXPORT int hasp_renew_key(hasp_client *c, const char *key, int64_t ttl_ms,
			       int64_t *ret_expires_ms)
{
	int r = libhasp_check_key(c, key);

	return r < 0 ? r : renew(c, json_pack("{s:s}", "key", key), NULL, ttl_ms, ret_expires_ms);
}

HASP_EXPORT int hasp_renew_file(hasp_client *c, const char *path, int64_t ttl_ms,
				int64_t *ret_expires_ms)
{
	return renew(c, json_object(), path, ttl_ms, ret_expires_ms);
}
