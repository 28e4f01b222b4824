/* Checking a checkout in: a release by its token, or by the key or file
 * it is on. */
#include <errno.h>

#include "libhasp-internal.h"

/* A release whose args (consumed) name what, on path's file if not NULL. */
static int release(hasp_client *c, json_t *args, const char *path)
{
	struct proto_reply rep;
	int r = path ? libhasp_call_file(c, OP_RELEASE, args, path, &rep)
		     : libhasp_call(c, OP_RELEASE, args, -1, &rep);

	if (r < 0)
		return r;
	proto_reply_done(&rep);
	return 0;
}

HASP_EXPORT int hasp_checkin(hasp_client *c, const char *token)
{
	int r = libhasp_check_token(c, token);

	return r < 0 ? r : release(c, json_pack("{s:s}", "token", token), NULL);
}

HASP_EXPORT int hasp_checkin_key(hasp_client *c, const char *key)
{
	int r = libhasp_check_key(c, key);

	return r < 0 ? r : release(c, json_pack("{s:s}", "key", key), NULL);
}

HASP_EXPORT int hasp_checkin_file(hasp_client *c, const char *path)
{
	return release(c, json_object(), path);
}
