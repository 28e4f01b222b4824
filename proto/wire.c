#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

bool proto_utf8_valid(const char *s)
{
	return utf8_valid(s, strlen(s));
}

json_t *proto_string_shown(const char *s, size_t n)
{
	json_t *str;
	char *copy;

	if (utf8_valid(s, n))
		return json_stringn_nocheck(s, n);
	copy = n <= SIZE_MAX / 3 ? malloc(3 * n) : NULL;
	if (!copy)
		return NULL;
	str = json_stringn_nocheck(copy, utf8_shown(s, n, copy));
	free(copy);
	return str;
}

char *proto_dump_line(json_t *o, size_t *len)
{
	size_t n;
	char *buf = NULL;

	if (!o)
		return NULL;
	n = json_dumpb(o, NULL, 0, PROTO_DUMP_FLAGS);
	/* Each pass may allocate, so the second can fail where the first did
	 * not: then buf holds no whole line. */
	if (n > 0 && (buf = malloc(n + 1)) && json_dumpb(o, buf, n, PROTO_DUMP_FLAGS) == n) {
		buf[n] = '\n';
		*len = n + 1;
	} else {
		free(buf);
		buf = NULL;
	}
	json_decref(o);
	return buf;
}
