/* hasp_lock_keys(): one lease over several named keys (a multi-key
 * acquire), on request.c's acquire with the "keys" member. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "libhasp-internal.h"

/* The "keys" member of the request, as JSON text ("keys":[...]); NULL
 * for want of memory. */
static char *multikey_member(const struct hasp_key *keys, size_t n)
{
	json_t *a = json_array();
	char *text, *member = NULL;

	for (size_t i = 0; a && i < n; i++) {
		json_t *one = json_pack("{s:s,s:s}", "key", keys[i].key, "mode",
					keys[i].mode == HASP_SHARED ? "shared" : "exclusive");

		if (json_array_append_new(a, one) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	text = a ? json_dumps(a, PROTO_DUMP_FLAGS) : NULL;
	json_decref(a);
	if (text && (member = malloc(strlen(text) + sizeof("\"keys\":"))))
		strcat(strcpy(member, "\"keys\":"), text);
	free(text);
	return member;
}

/* The keys' names joined by newlines: what the lease shows as its key. */
static char *multikey_name(const struct hasp_key *keys, size_t n)
{
	size_t len = 0;
	char *name;

	for (size_t i = 0; i < n; i++)
		len += strlen(keys[i].key) + 1;
	name = malloc(len);
	if (!name)
		return NULL;
	name[0] = '\0';
	for (size_t i = 0; i < n; i++)
		strcat(strcat(name, i ? "\n" : ""), keys[i].key);
	return name;
}

HASP_EXPORT int hasp_lock_keys(hasp_client *c, const struct hasp_key *keys, size_t n,
			       const struct hasp_lock_options *opts, hasp_lease **ret_lease)
{
	struct libhasp_acquire a = libhasp_lock_acquire(opts);
	char *member, *name;
	int r;

	if (!keys || n < PROTO_KEYS_MIN || n > PROTO_KEYS_MAX)
		return libhasp_error(c, -EINVAL, "a multi-key lease is over %d to %d keys",
				     PROTO_KEYS_MIN, PROTO_KEYS_MAX);
	for (size_t i = 0; i < n; i++)
		if ((r = libhasp_check_key(c, keys[i].key)) < 0)
			return r;
	member = multikey_member(keys, n);
	name = multikey_name(keys, n);
	a.mode = keys[0].mode;
	a.keys_json = member;
	r = member && name ? libhasp_acquire(c, LIBHASP_KEYS, name, -1, &a, ret_lease)
			   : libhasp_error(c, -ENOMEM, "out of memory");
	free(member);
	free(name);
	return r;
}
