/* A fast reader for the lines that matter most, both ways (the daemon's
 * requests, libhasp's replies): short flat objects whose values are plain
 * ASCII strings (no escapes), integers, true, false or null. Anything else
 * is "not flat", and the caller reads it with jansson, which also reports
 * every error: this reader never decides that a line is invalid, only that
 * it is simple. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define FLAT_LINE_MAX 512
#define FLAT_MEMBERS_MAX 12

enum flat_type { FLAT_STRING, FLAT_INT, FLAT_TRUE, FLAT_FALSE, FLAT_NULL };

struct flat_member {
	const char *name;       /* NUL-terminated, in flat.buf */
	enum flat_type type;
	const char *str;        /* FLAT_STRING: NUL-terminated, in flat.buf */
	size_t len;
	int64_t i;              /* FLAT_INT */
};

struct flat {
	struct flat_member m[FLAT_MEMBERS_MAX];
	size_t n;
	char buf[FLAT_LINE_MAX];
};

/* 0 when line is a flat object as above, with distinct member names;
 * -1 otherwise. */
int flat_parse(const char *line, size_t len, struct flat *f);
/* The member called name, or NULL. */
const struct flat_member *flat_get(const struct flat *f, const char *name);
