/* A failed reply as the client's last error: its message, for a conflict
 * (busy, timeout) the holders it names, read on demand through struct
 * hasp_holder, and for a deadlock its cycle, through struct hasp_wait. */
#include <errno.h>
#include <string.h>

#include "libhasp-internal.h"

void libhasp_conflict_clear(hasp_client *c)
{
	json_decref(c->conflict);
	c->conflict = NULL;
	json_decref(c->cycle);
	c->cycle = NULL;
}

int libhasp_reply_error(hasp_client *c, const struct proto_reply *rep)
{
	json_t *error = json_object_get(rep->root, "error");
	json_t *holders = json_object_get(error, "holders");
	int r = libhasp_error(c, -rep->code, "%s", rep->message);

	json_t *cycle = json_object_get(error, "cycle");

	if ((r == -HASP_E_BUSY || r == -HASP_E_TIMEOUT) && json_is_array(holders))
		c->conflict = json_incref(holders);
	if (r == -HASP_E_DEADLOCK && json_is_array(cycle))
		c->cycle = json_incref(cycle);
	return r;
}

HASP_EXPORT size_t hasp_client_conflict_count(const hasp_client *c)
{
	return json_array_size(c->conflict);
}

static int64_t integer(json_t *o, const char *name, int64_t none)
{
	json_t *v = json_object_get(o, name);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : none;
}

static const char *string(json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

static enum hasp_mode mode_of(json_t *o)
{
	const char *mode = string(o, "mode");

	return mode && strcmp(mode, "shared") == 0 ? HASP_SHARED : HASP_EXCLUSIVE;
}

HASP_EXPORT int hasp_client_conflict(const hasp_client *c, size_t i, struct hasp_holder *ret)
{
	json_t *h = json_array_get(c->conflict, i);
	struct hasp_holder v;

	if (ret->size < offsetof(struct hasp_holder, mode))
		return -EINVAL;
	if (!json_is_object(h))
		return -ENOENT;
	v = (struct hasp_holder){
		.size = ret->size,
		.lease = (uint64_t)integer(h, "lease", 0),
		.fence = (uint64_t)integer(h, "fence", 0),
		.mode = mode_of(h),
		.pid = integer(h, "pid", 0),
		.uid = integer(h, "uid", -1),
		.gid = integer(h, "gid", -1),
		.held_ms = integer(h, "held_ms", 0),
		.checkout = json_is_true(json_object_get(h, "detached")),
		.owner = string(h, "owner"),
		.message = string(h, "message"),
		.client = string(h, "client"),
		.granted_at = string(h, "granted_at"),
	};
	memcpy(ret, &v, ret->size < sizeof(v) ? ret->size : sizeof(v));
	return 0;
}

HASP_EXPORT size_t hasp_client_cycle_count(const hasp_client *c)
{
	return json_array_size(c->cycle);
}

HASP_EXPORT int hasp_client_cycle(const hasp_client *c, size_t i, struct hasp_wait *ret)
{
	json_t *w = json_array_get(c->cycle, i), *by = json_object_get(w, "waits_for");
	struct hasp_wait v;

	if (ret->size < offsetof(struct hasp_wait, mode))
		return -EINVAL;
	if (!json_is_object(w))
		return -ENOENT;
	v = (struct hasp_wait){
		.size = ret->size,
		.session = (uint64_t)integer(w, "session", 0),
		.pid = integer(w, "pid", 0),
		.uid = integer(w, "uid", -1),
		.mode = mode_of(w),
		.key = string(w, "key"),
		.path = string(w, "path"),
		.owner = string(w, "owner"),
		.client = string(w, "client"),
		.for_session = (uint64_t)integer(by, "session", 0),
		.for_pid = integer(by, "pid", 0),
		.for_lease = (uint64_t)integer(by, "lease", 0),
		.for_mode = mode_of(by),
	};
	memcpy(ret, &v, ret->size < sizeof(v) ? ret->size : sizeof(v));
	return 0;
}

HASP_EXPORT int hasp_client_set_name(hasp_client *c, const char *name)
{
	char *copy;

	if (!name || strlen(name) > PROTO_CLIENT_MAX || !proto_utf8_valid(name))
		return libhasp_error(c, -EINVAL, "a client name is UTF-8, at most %d bytes",
				     PROTO_CLIENT_MAX);
	copy = strdup(name);
	if (!copy)
		return libhasp_error(c, -ENOMEM, "out of memory");
	free(c->name);
	c->name = copy;
	return 0;
}

HASP_EXPORT const char *hasp_client_server(const hasp_client *c)
{
	return c->server;
}
