#include "flat.h"

#include <stdbool.h>
#include <string.h>

/* The reader walks a line with a cursor p up to end, and copies strings
 * into out (up to out_end). Each step takes p and returns where it stopped,
 * or NULL when the line is not flat; the pointers live in locals, not in
 * memory the copies could alias, so that the loops keep them in registers
 * (a quarter of the daemon's work under a pipelined load was this file). */
struct copies {
	char *out, *end;
};

/* Past JSON's white space; most lines have none, so the first test says no. */
static inline const char *skip_space(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p <= ' ' &&
	       (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* Past ch, after white space; NULL when something else comes. */
static inline const char *eat(const char *p, const char *end, char ch)
{
	if (p < end && *p == ch) /* compact JSON: no white space to skip */
		return p + 1;
	p = skip_space(p, end);
	return p < end && *p == ch ? p + 1 : NULL;
}

#define X4(v) v, v, v, v
#define X16(v) X4(v), X4(v), X4(v), X4(v)

/* What a byte is within a flat string: 0 printable ASCII, copied; 1 its
 * closing quote; 2 what makes the line not flat (a control character, the
 * escape '\\', DEL, or a byte that is not ASCII). */
static const unsigned char string_byte[] = {
	X16(2), X16(2),                                 /* 0x00 */
	0, 0, 1, 0, X4(0), X4(0), X4(0),                /* 0x20: '"' */
	X16(0), X16(0),                                 /* 0x30 */
	X4(0), X4(0), X4(0), 2, 0, 0, 0,                /* 0x50: '\\' */
	X16(0), X4(0), X4(0), X4(0), 0, 0, 0, 2,        /* 0x60: DEL */
	X16(2), X16(2), X16(2), X16(2), X16(2), X16(2), X16(2), X16(2), /* 0x80 */
};
_Static_assert(sizeof(string_byte) == 256, "a class for every byte");

/* A string of printable ASCII without escapes, after white space, copied
 * NUL-terminated to *ret (in cp). (The copies never run out of room: each
 * takes no more bytes than the string and its quotes take in the line, and
 * buf is as long as the longest line; the check stays all the same.) */
static inline const char *read_string(const char *p, const char *end, struct copies *cp,
				      const char **ret, size_t *len)
{
	char *copy = cp->out;
	size_t n, i;

	p = eat(p, end, '"');
	if (!p)
		return NULL;
	n = (size_t)(end - p);
	if (n > (size_t)(cp->end - copy))
		n = (size_t)(cp->end - copy);
	for (i = 0; i < n && string_byte[(unsigned char)p[i]] == 0; i++)
		copy[i] = p[i];
	if (i == n || p[i] != '"')
		return NULL;
	copy[i] = '\0';
	*len = i;
	*ret = copy;
	cp->out = copy + i + 1;
	return p + i + 1;
}

/* -?(0|[1-9][0-9]*) within int64, not followed by a fraction or exponent. */
static inline const char *read_int(const char *p, const char *end, int64_t *out)
{
	bool neg = p < end && *p == '-';
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
	const char *digits;

	if (neg)
		p++;
	digits = p;
	for (; p < end && (unsigned)(*p - '0') <= 9; p++) {
		unsigned d = (unsigned)(*p - '0');

		/* 18 digits never overflow: the checks start at the 19th. */
		if (p - digits >= 18 && (v > limit / 10 || (v == limit / 10 && d > limit % 10)))
			return NULL;
		v = v * 10 + d;
	}
	if (p == digits || (*digits == '0' && p - digits > 1))
		return NULL;
	if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
		return NULL;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return p;
}

static inline const char *read_word(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(end - p) < n || memcmp(p, word, n) != 0)
		return NULL;
	return p + n;
}

static inline const char *read_value(const char *p, const char *end, struct copies *cp,
				     struct flat_member *m)
{
	p = skip_space(p, end);
	if (p == end)
		return NULL;
	switch (*p) {
	case '"':
		m->type = FLAT_STRING;
		return read_string(p, end, cp, &m->str, &m->len);
	case 't':
		m->type = FLAT_TRUE;
		return read_word(p, end, "true");
	case 'f':
		m->type = FLAT_FALSE;
		return read_word(p, end, "false");
	case 'n':
		m->type = FLAT_NULL;
		return read_word(p, end, "null");
	default:
		m->type = FLAT_INT;
		return read_int(p, end, &m->i);
	}
}

const struct flat_member *flat_get(const struct flat *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->m[i].name[0] == name[0] && strcmp(f->m[i].name, name) == 0)
			return &f->m[i];
	return NULL;
}

/* A member; seen has a bit for the first byte of each name read before, so
 * that a name is compared with the others only when one may be the same. */
static inline const char *read_member(const char *p, const char *end, struct copies *cp,
				      struct flat *f, uint64_t *seen)
{
	struct flat_member *m = &f->m[f->n];
	uint64_t bit;
	size_t len;

	if (f->n == FLAT_MEMBERS_MAX || !(p = read_string(p, end, cp, &m->name, &len)) ||
	    !(p = eat(p, end, ':')) || !(p = read_value(p, end, cp, m)))
		return NULL;
	bit = (uint64_t)1 << ((unsigned char)m->name[0] & 63);
	if ((*seen & bit) && flat_get(f, m->name))
		return NULL;
	*seen |= bit;
	f->n++;
	return p;
}

int flat_parse(const char *line, size_t len, struct flat *f)
{
	const char *p = line, *end = line + len, *q;
	struct copies cp = { f->buf, f->buf + sizeof(f->buf) };
	uint64_t seen = 0;

	f->n = 0;
	if (len > FLAT_LINE_MAX || !(p = eat(p, end, '{')))
		return -1;
	if ((q = eat(p, end, '}'))) {
		p = q;
	} else {
		for (;;) {
			if (!(p = read_member(p, end, &cp, f, &seen)))
				return -1;
			if (!(q = eat(p, end, ',')))
				break;
			p = q;
		}
		if (!(p = eat(p, end, '}')))
			return -1;
	}
	return skip_space(p, end) == end ? 0 : -1;
}
