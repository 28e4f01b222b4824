/* Converting a held lease to the other mode (issue 17): a downgrade at
 * once, an upgrade that may wait for the other holders. */
#include <errno.h>
#include <stdlib.h>
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

/* A convert's arguments, checked: 0 and *ret (NULL for want of memory,
 * which the send says), or -EINVAL with c's message set. */
static int convert_args(hasp_client *c, const hasp_lease *l, enum hasp_mode mode,
			int64_t timeout_ms, json_t **ret)
{
	json_t *args;

	if (mode != HASP_SHARED && mode != HASP_EXCLUSIVE)
		return libhasp_error(c, -EINVAL, "no such mode");
	if (timeout_ms < 0 && timeout_ms != HASP_WAIT_FOREVER)
		return libhasp_error(c, -EINVAL, "a timeout is HASP_WAIT_FOREVER, 0 or more ms");
	args = json_pack("{s:I,s:s}", "lease", (json_int_t)l->id, "mode",
			 mode == HASP_SHARED ? "shared" : "exclusive");
	if (args && timeout_ms >= 0 &&
	    json_object_set_new(args, "timeout_ms", json_integer(timeout_ms)) < 0) {
		json_decref(args);
		args = NULL;
	}
	*ret = args;
	return 0;
}

HASP_EXPORT int hasp_convert(hasp_client *c, hasp_lease *l, enum hasp_mode mode,
			     int64_t timeout_ms)
{
	struct proto_reply rep;
	json_t *args;
	int r = convert_args(c, l, mode, timeout_ms, &args);

	if (r < 0)
		return r;
	r = libhasp_call_until(c, OP_CONVERT, args, -1, convert_deadline(c, timeout_ms), true, &rep);
	if (r < 0)
		return r;
	r = convert_read(c, l, &rep);
	proto_reply_done(&rep);
	return r;
}

/* Where an asynchronous convert's answer goes. */
struct convert_cb {
	hasp_lease *lease;
	hasp_done_callback cb;
	void *userdata;
};

static void convert_done(hasp_client *c, struct libhasp_call *k, int err, struct proto_reply *rep)
{
	struct convert_cb *u = k->ctx;
	int r;

	if (err != -ECANCELED) {
		r = err < 0 ? libhasp_lost_error(c) : !rep->ok ? libhasp_reply_error(c, rep) :
		    convert_read(c, u->lease, rep);
		u->cb(c, r, u->userdata);
	}
	free(u);
}

HASP_EXPORT int hasp_convert_async(hasp_client *c, hasp_lease *l, enum hasp_mode mode,
				   int64_t timeout_ms, hasp_done_callback cb, void *userdata)
{
	struct convert_cb *u;
	json_t *args;
	int r = convert_args(c, l, mode, timeout_ms, &args);

	if (r < 0)
		return r;
	if (!cb) {
		json_decref(args);
		return libhasp_error(c, -EINVAL, "no callback");
	}
	u = malloc(sizeof(*u));
	if (!u) {
		json_decref(args);
		return libhasp_error(c, -ENOMEM, "out of memory");
	}
	*u = (struct convert_cb){ l, cb, userdata };
	r = libhasp_send(c, OP_CONVERT, args, -1, convert_deadline(c, timeout_ms), convert_done, u,
			 NULL);
	if (r < 0)
		free(u);
	return r;
}
