/* Requests as libhasp writes them: most with jansson, the hot path's
 * (acquire, release) as text written here, which allocates only when a
 * request outgrows a small buffer. */
#include "proto-client.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

char *proto_encode_request(int64_t id, enum proto_op op, json_t *args, size_t *len)
{
	json_t *o = json_pack("{s:I,s:s}", "id", (json_int_t)id, "op", proto_op_name(op));

	if (o && args && json_object_update(o, args) < 0) {
		json_decref(o);
		o = NULL;
	}
	json_decref(args);
	return proto_dump_line(o, len);
}

bool proto_token_valid(const char *s)
{
	unsigned char bytes[PROTO_TOKEN_HEX / 2];

	return s && proto_hex_decode(bytes, s, strlen(s), sizeof(bytes)) == 0;
}

/* ---- members as text ---- */

void proto_members_init(struct proto_members *m)
{
	m->text = m->small;
	m->len = 0;
	m->cap = sizeof(m->small);
	m->nomem = false;
}

void proto_members_free(struct proto_members *m)
{
	if (m->text != m->small)
		free(m->text);
	proto_members_init(m);
}

/* Room for n more bytes; false (remembered) when there is none. */
static bool reserve(struct proto_members *m, size_t n)
{
	size_t cap = m->cap;
	char *p;

	if (m->nomem)
		return false;
	if (m->len + n <= m->cap)
		return true;
	while (cap < m->len + n)
		cap *= 2;
	p = m->text == m->small ? malloc(cap) : realloc(m->text, cap);
	if (!p) {
		m->nomem = true;
		return false;
	}
	if (m->text == m->small)
		memcpy(p, m->small, m->len);
	m->text = p;
	m->cap = cap;
	return true;
}

void proto_members_add(struct proto_members *m, const char *text, size_t len)
{
	if (!reserve(m, len))
		return;
	memcpy(m->text + m->len, text, len);
	m->len += len;
}

size_t proto_format_int(char *dst, int64_t v)
{
	char digits[20];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n = 0, len = 0;

	do
		digits[n++] = (char)('0' + u % 10);
	while ((u /= 10) > 0);
	if (v < 0)
		dst[len++] = '-';
	while (n > 0)
		dst[len++] = digits[--n];
	return len;
}

/* ,"name": (the comma before every member but the first) */
static void add_name(struct proto_members *m, const char *name)
{
	size_t n = strlen(name);

	if (!reserve(m, n + 4))
		return;
	if (m->len > 0)
		m->text[m->len++] = ',';
	m->text[m->len++] = '"';
	memcpy(m->text + m->len, name, n);
	m->len += n;
	m->text[m->len++] = '"';
	m->text[m->len++] = ':';
}

/* What JSON cannot carry as it is: the quote, the backslash and the
 * control characters. */
static bool needs_escape(unsigned char ch)
{
	return ch < 0x20 || ch == '"' || ch == '\\';
}

static void add_escaped(struct proto_members *m, unsigned char ch)
{
	static const char hex[] = "0123456789abcdef";
	char e[6] = { '\\', (char)ch };
	size_t n = 2;

	switch (ch) {
	case '\n': e[1] = 'n'; break;
	case '\r': e[1] = 'r'; break;
	case '\t': e[1] = 't'; break;
	case '"': case '\\': break;
	default:
		memcpy(e + 1, "u00", 3);
		e[4] = hex[ch >> 4];
		e[5] = hex[ch & 15];
		n = 6;
	}
	proto_members_add(m, e, n);
}

/* s (n bytes of UTF-8) as a JSON string. */
static void add_string(struct proto_members *m, const char *s, size_t n)
{
	size_t run = 0;

	proto_members_add(m, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (!needs_escape((unsigned char)s[i]))
			continue;
		proto_members_add(m, s + run, i - run);
		add_escaped(m, (unsigned char)s[i]);
		run = i + 1;
	}
	proto_members_add(m, s + run, n - run);
	proto_members_add(m, "\"", 1);
}

void proto_members_str(struct proto_members *m, const char *name, const char *s)
{
	add_name(m, name);
	add_string(m, s, strlen(s));
}

void proto_members_shown(struct proto_members *m, const char *name, const char *s, size_t n)
{
	char *shown;

	if (utf8_valid(s, n)) {
		add_name(m, name);
		add_string(m, s, n);
		return;
	}
	shown = malloc(3 * n);
	if (!shown) {
		m->nomem = true;
		return;
	}
	add_name(m, name);
	add_string(m, shown, utf8_shown(s, n, shown));
	free(shown);
}

void proto_members_int(struct proto_members *m, const char *name, int64_t v)
{
	add_name(m, name);
	if (reserve(m, 20))
		m->len += proto_format_int(m->text + m->len, v);
}

void proto_members_true(struct proto_members *m, const char *name)
{
	add_name(m, name);
	proto_members_add(m, "true", 4);
}

size_t proto_line_size(enum proto_op op, const struct proto_members *m)
{
	/* {"id":  20 digits  ,"op":"  name  ",  members  }\n */
	return 6 + 20 + 7 + strlen(proto_op_name(op)) + 2 + m->len + 2;
}

size_t proto_line_write(char *dst, int64_t id, enum proto_op op, const struct proto_members *m)
{
	const char *name = proto_op_name(op);
	size_t len = 0, n = strlen(name);

	memcpy(dst, "{\"id\":", 6);
	len = 6 + proto_format_int(dst + 6, id);
	memcpy(dst + len, ",\"op\":\"", 7);
	len += 7;
	memcpy(dst + len, name, n);
	len += n;
	dst[len++] = '"';
	if (m->len > 0) {
		dst[len++] = ',';
		memcpy(dst + len, m->text, m->len);
		len += m->len;
	}
	dst[len++] = '}';
	dst[len++] = '\n';
	return len;
}
