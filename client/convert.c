/* Converting a held lease to the other mode (issue 17): a downgrade at
 * once, an upgrade that may wait for the other holders. */
#include <errno.h>
#include <string.h>

#include "libhasp-internal.h"

/* The client gives up on the daemon a little after an upgrade's timeout. */
static int64_t convert_deadline(const hasp_client *c, int64_t timeout_ms)
{
	if (timeout_ms == HASP_WAIT_FOREVER)
		return LIBHASP_NEVER;
	return libhasp_after(libhasp_now_ms(), timeout_ms + c->grace_ms);
}

/* The converted lease as the reply says: its mode and fence. */
static int convert_read(hasp_client *c, hasp_lease *l, struct proto_reply *rep)
{
	const char *mode = proto_reply_str(rep, "mode");
	int64_t fence;

	if (!mode || !proto_reply_int(rep, "fence", &fence) || fence <= 0)
		return libhasp_error(c, -HASP_E_PROTOCOL, "haspd's convert reply has no \"mode\" "
				     "or \"fence\"");
	l->mode = strcmp(mode, "shared") == 0 ? HASP_SHARED : HASP_EXCLUSIVE;
	l->fence = (uint64_t)fence;
	return 0;
}

HASP_EXPORT int hasp_convert(hasp_client *c, hasp_lease *l, enum hasp_mode mode,
			     int64_t timeout_ms)
{
	struct proto_reply rep;
	json_t *args;
	int r;

	if (mode != HASP_SHARED && mode != HASP_EXCLUSIVE)
		return libhasp_error(c, -EINVAL, "no such mode");
	if (timeout_ms < 0 && timeout_ms != HASP_WAIT_FOREVER)
		return libhasp_error(c, -EINVAL, "a timeout is HASP_WAIT_FOREVER, 0 or more ms");
	args = json_pack("{s:I,s:s}", "lease", (json_int_t)l->id, "mode",
			 mode == HASP_SHARED ? "shared" : "exclusive");
	if (args && timeout_ms >= 0 &&
	    json_object_set_new(args, "timeout_ms", json_integer(timeout_ms)) < 0) {
		json_decref(args);
		args = NULL; /* out of memory, said by the call */
	}
	r = libhasp_call_until(c, OP_CONVERT, args, -1, convert_deadline(c, timeout_ms), true, &rep);
	if (r < 0)
		return r;
	r = convert_read(c, l, &rep);
	proto_reply_done(&rep);
	return r;
}
