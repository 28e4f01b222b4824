#include "flat.h"

#include <stdbool.h>
#include <string.h>

struct cursor {
	const char *p, *end;
	char *out, *out_end;
};

static void skip_space(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

static bool eat(struct cursor *c, char ch)
{
	skip_space(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

/* A string of printable ASCII without escapes, copied NUL-terminated. */
static const char *read_string(struct cursor *c, size_t *len)
{
	const char *start;
	char *copy = c->out;

	if (!eat(c, '"'))
		return NULL;
	start = c->p;
	while (c->p < c->end && *c->p != '"') {
		if (*c->p < 0x20 || *c->p > 0x7e || *c->p == '\\')
			return NULL;
		c->p++;
	}
	if (c->p == c->end)
		return NULL;
	*len = (size_t)(c->p - start);
	if ((size_t)(c->out_end - c->out) < *len + 1)
		return NULL;
	memcpy(copy, start, *len);
	copy[*len] = '\0';
	c->out += *len + 1;
	c->p++;
	return copy;
}

/* -?(0|[1-9][0-9]*) within int64, not followed by a fraction or exponent. */
static bool read_int(struct cursor *c, int64_t *out)
{
	bool neg = c->p < c->end && *c->p == '-';
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	const char *digits;

	if (neg)
		c->p++;
	digits = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		unsigned d = (unsigned)(*c->p - '0');

		if (v > (limit - d) / 10)
			return false;
		v = v * 10 + d;
		c->p++;
	}
	if (c->p == digits || (*digits == '0' && c->p - digits > 1))
		return false;
	if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
		return false;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static bool read_word(struct cursor *c, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return false;
	c->p += n;
	return true;
}

static bool read_value(struct cursor *c, struct flat_member *m)
{
	skip_space(c);
	if (c->p == c->end)
		return false;
	switch (*c->p) {
	case '"':
		m->type = FLAT_STRING;
		return (m->str = read_string(c, &m->len)) != NULL;
	case 't':
		m->type = FLAT_TRUE;
		return read_word(c, "true");
	case 'f':
		m->type = FLAT_FALSE;
		return read_word(c, "false");
	case 'n':
		m->type = FLAT_NULL;
		return read_word(c, "null");
	default:
		m->type = FLAT_INT;
		return read_int(c, &m->i);
	}
}

const struct flat_member *flat_get(const struct flat *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->m[i].name, name) == 0)
			return &f->m[i];
	return NULL;
}

static bool read_member(struct cursor *c, struct flat *f)
{
	struct flat_member *m = &f->m[f->n];
	size_t len;

	if (f->n == FLAT_MEMBERS_MAX || !(m->name = read_string(c, &len)) || !eat(c, ':') ||
	    !read_value(c, m) || flat_get(f, m->name))
		return false;
	f->n++;
	return true;
}

int flat_parse(const char *line, size_t len, struct flat *f)
{
	struct cursor c = { line, line + len, f->buf, f->buf + sizeof(f->buf) };

	f->n = 0;
	if (len > FLAT_LINE_MAX || !eat(&c, '{'))
		return -1;
	if (!eat(&c, '}')) {
		do {
			if (!read_member(&c, f))
				return -1;
		} while (eat(&c, ','));
		if (!eat(&c, '}'))
			return -1;
	}
	skip_space(&c);
	return c.p == c.end ? 0 : -1;
}
