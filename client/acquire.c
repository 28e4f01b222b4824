/* hasp_acquire_options: acquires with a TTL, and checkouts (detached
 * leases), on libhasp.c's acquire. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "libhasp-internal.h"

int libhasp_acquire_options(hasp_client *c, const struct hasp_acquire_options *o, bool detach,
			    struct libhasp_acquire *ret)
{
	struct hasp_acquire_options v = HASP_ACQUIRE_OPTIONS_INIT;

	if (o) {
		if (o->size < offsetof(struct hasp_acquire_options, mode) + sizeof(o->mode))
			return libhasp_error(c, -EINVAL, "struct hasp_acquire_options: size not set");
		memcpy(&v, o, o->size < sizeof(v) ? o->size : sizeof(v));
	}
	if (v.ttl_ms < 0)
		return libhasp_error(c, -EINVAL, "a TTL is 0 (none) or more ms");
	*ret = (struct libhasp_acquire){
		.mode = v.mode, .timeout_ms = v.timeout_ms, .ttl_ms = v.ttl_ms, .limit = v.limit,
		.detach = detach,
		.owner = v.owner, .message = v.message, .waiting = v.waiting,
		.waiting_after_ms = v.waiting_after_ms, .userdata = v.userdata,
	};
	return 0;
}

/* A lease on key, or on the file at path, as opts ask; a checkout if
 * detach. */
static int acquire(hasp_client *c, const char *key, const char *path,
		   const struct hasp_acquire_options *opts, bool detach, hasp_lease **ret_lease)
{
	struct libhasp_acquire a;
	int r = libhasp_acquire_options(c, opts, detach, &a);

	if (r < 0)
		return r;
	return key ? libhasp_acquire(c, LIBHASP_KEY, key, -1, &a, ret_lease)
		   : libhasp_acquire(c, LIBHASP_FILE, path, -1, &a, ret_lease);
}

HASP_EXPORT int hasp_acquire(hasp_client *c, const char *key,
			     const struct hasp_acquire_options *opts, hasp_lease **ret_lease)
{
	return acquire(c, key ? key : "", NULL, opts, false, ret_lease);
}

HASP_EXPORT int hasp_acquire_file(hasp_client *c, const char *path,
				  const struct hasp_acquire_options *opts, hasp_lease **ret_lease)
{
	return acquire(c, NULL, path, opts, false, ret_lease);
}

HASP_EXPORT int hasp_checkout(hasp_client *c, const char *key,
			      const struct hasp_acquire_options *opts, hasp_lease **ret_lease)
{
	return acquire(c, key ? key : "", NULL, opts, true, ret_lease);
}

HASP_EXPORT int hasp_checkout_file(hasp_client *c, const char *path,
				   const struct hasp_acquire_options *opts, hasp_lease **ret_lease)
{
	return acquire(c, NULL, path, opts, true, ret_lease);
}
