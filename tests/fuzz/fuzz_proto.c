/* Fuzzes the wire protocol's readers: the framing (frame_next, at a few
 * limits), the request decoder on every line, and the reply decoder that
 * libhasp uses. Checks, abort()ing when one fails:
 * - frame_next's answer matches where the newlines are;
 * - a line that the fast flat reader accepts decodes to the same request
 *   (or the same error) through jansson, forced by adding a member that
 *   only jansson reads;
 * - every decode error can be sent back as a reply (the daemon ends a
 *   session whose reply it cannot build), and libhasp reads that reply back
 *   to the same id, code and message. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flat.h"
#include "frame.h"
#include "fuzz.h"
#include "proto.h"

#define CHECK(cond) do { if (!(cond)) fuzz_fail(#cond, __LINE__); } while (0)

/* Added to a flat line to force the jansson path: an escaped string. */
#define PAD_NAME "fuzz~pad"
#define PAD_MEMBER "\"" PAD_NAME "\":\"\\u0041\""

static void fuzz_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_proto.c:%d: check failed: %s\n", line, what);
	abort();
}

static bool same_string(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	return (!a && !b) || (a && b && alen == blen && memcmp(a, b, alen) == 0);
}

static bool same_request(const struct proto_request *a, const struct proto_request *b)
{
	if (a->has_id != b->has_id || a->id != b->id || a->op != b->op)
		return false;
	switch (a->op) {
	case OP_HELLO:
		return same_string(a->hello.client, b->hello.client) &&
		       a->hello.version == b->hello.version;
	case OP_ACQUIRE:
		return same_bytes(a->acquire.key, a->acquire.key_len, b->acquire.key,
				  b->acquire.key_len) &&
		       same_string(a->acquire.path, b->acquire.path) &&
		       a->acquire.fd == b->acquire.fd && a->acquire.shared == b->acquire.shared &&
		       a->acquire.timeout_ms == b->acquire.timeout_ms &&
		       same_string(a->acquire.owner, b->acquire.owner) &&
		       same_string(a->acquire.message, b->acquire.message);
	case OP_RELEASE:
		return a->release.lease == b->release.lease;
	case OP_CANCEL:
		return a->cancel.request == b->cancel.request;
	case OP_REVOKE:
		return a->revoke.lease == b->revoke.lease &&
		       same_bytes(a->revoke.key, a->revoke.key_len, b->revoke.key,
				  b->revoke.key_len);
	case OP_LIST:
		return same_bytes(a->list.prefix, a->list.prefix_len, b->list.prefix,
				  b->list.prefix_len) &&
		       same_bytes(a->list.after, a->list.after_len, b->list.after,
				  b->list.after_len) &&
		       a->list.limit == b->list.limit;
	default:
		return true;
	}
}

/* An error reply for err, as the daemon sends it, read back by libhasp. */
static void check_error_reply(const struct proto_request *req, const struct proto_error *err)
{
	struct proto_reply rep;
	size_t len = 0;
	char *line = proto_reply_error(req->has_id, req->id, err->code, err->message, NULL, &len);

	/* NULL would make the daemon end the session instead of answering. */
	if (!line)
		fprintf(stderr, "cannot send error: %s\n", err->message);
	CHECK(line != NULL);
	CHECK(len > 0 && line[len - 1] == '\n');
	CHECK(proto_decode_reply(line, len - 1, &rep) == 0);
	CHECK(!rep.is_event && !rep.ok && rep.has_id == req->has_id);
	CHECK(!rep.has_id || rep.id == req->id);
	CHECK(rep.code == err->code && strlen(rep.message) == strlen(err->message));
	/* The same message, but for bytes of invalid UTF-8 made '?'. */
	for (size_t i = 0; err->message[i]; i++)
		CHECK(rep.message[i] == err->message[i] || rep.message[i] == '?');
	proto_reply_done(&rep);
	free(line);
}

/* Decodes line; returns the result, with req and err filled in. */
static int decode(const char *line, size_t len, struct proto_request *req,
		  struct proto_error *err)
{
	struct proto_doc doc;
	int r;

	memset(err, 0, sizeof(*err));
	r = proto_decode_request(line, len, req, &doc, err);
	if (r == 0)
		proto_doc_done(&doc);
	else
		check_error_reply(req, err);
	return r;
}

/* Where a flat line's closing brace is: before any trailing white space. */
static size_t closing_brace(const char *line, size_t len)
{
	while (len > 0 && line[len - 1] != '}')
		len--;
	CHECK(len > 0);
	return len - 1;
}

/* A line the fast reader takes must decode alike through jansson. The
 * strings of both requests are compared while both documents live. */
static void check_differential(const char *line, size_t len)
{
	struct proto_request a, b;
	struct proto_error ea, eb;
	struct proto_doc da, db;
	struct flat f;
	size_t close, plen;
	char *padded;
	int ra, rb;

	if (flat_parse(line, len, &f) < 0 || flat_get(&f, PAD_NAME))
		return;
	close = closing_brace(line, len);
	plen = len + 1 + strlen(PAD_MEMBER);
	padded = malloc(plen);
	if (!padded)
		return;
	memcpy(padded, line, close);
	plen = close;
	if (f.n > 0)
		padded[plen++] = ',';
	memcpy(padded + plen, PAD_MEMBER, strlen(PAD_MEMBER));
	plen += strlen(PAD_MEMBER);
	memcpy(padded + plen, line + close, len - close);
	plen += len - close;
	CHECK(flat_parse(padded, plen, &f) < 0);

	memset(&ea, 0, sizeof(ea));
	memset(&eb, 0, sizeof(eb));
	ra = proto_decode_request(line, len, &a, &da, &ea);
	rb = proto_decode_request(padded, plen, &b, &db, &eb);
	if (ra != rb || (ra < 0 && (ea.code != eb.code || strcmp(ea.message, eb.message) != 0 ||
				    a.has_id != b.has_id || (a.has_id && a.id != b.id))) ||
	    (ra == 0 && !same_request(&a, &b))) {
		fprintf(stderr, "flat:    %.*s -> %d %s\njansson: %.*s -> %d %s\n", (int)len, line,
			ra, ra < 0 ? ea.message : "", (int)plen, padded, rb,
			rb < 0 ? eb.message : "");
		fuzz_fail("the flat reader and jansson disagree", __LINE__);
	}
	if (ra == 0)
		proto_doc_done(&da);
	if (rb == 0)
		proto_doc_done(&db);
	free(padded);
}

/* libhasp's reply reader, flat or not, agrees with jansson on the line. */
static void check_reply_decoder(const char *line, size_t len)
{
	struct proto_reply rep;
	json_t *whole;

	if (proto_decode_reply(line, len, &rep) < 0) {
		CHECK(rep.root == NULL);
		return;
	}
	CHECK(rep.is_flat || rep.root != NULL);
	CHECK(rep.is_event == (rep.event != NULL));
	CHECK(rep.is_event || rep.ok || rep.message != NULL);
	whole = json_loadb(line, len, 0, NULL);
	CHECK(whole != NULL);
	if (proto_reply_root(&rep)) { /* NULL: out of memory */
		CHECK(json_equal(rep.root, whole));
		CHECK(rep.is_event == json_is_string(json_object_get(whole, "event")));
	}
	json_decref(whole);
	proto_reply_done(&rep);
}

/* One line, in a buffer of its exact size so that a read past it is caught. */
static void fuzz_line(const char *data, size_t len)
{
	char *line = malloc(len ? len : 1);
	struct proto_request req;
	struct proto_error err;

	if (!line)
		return;
	memcpy(line, data, len);
	decode(line, len, &req, &err);
	check_differential(line, len);
	check_reply_decoder(line, len);
	free(line);
}

/* frame_next at one limit over the whole input: its answers must match
 * where the newlines are. Returns how many lines it found. */
static size_t check_framing(const char *buf, size_t len, size_t limit, bool decode_lines)
{
	size_t off = 0, lines = 0, line_len;

	for (;;) {
		enum frame_status st = frame_next(buf + off, len - off, limit, &line_len);
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t first = nl ? (size_t)(nl - (buf + off)) : len - off;

		if (st == FRAME_PARTIAL) {
			CHECK(!nl && len - off < limit);
			return lines;
		}
		if (st == FRAME_TOO_LARGE) {
			CHECK(first >= limit);
			return lines;
		}
		CHECK(st == FRAME_LINE && line_len == first && line_len < limit);
		if (decode_lines)
			fuzz_line(buf + off, line_len);
		off += line_len + 1;
		lines++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = { 1, 2, 64, 1024 };
	const char *buf = (const char *)data;

	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		check_framing(buf, size, limits[i], false);
	/* The daemon's default limit, decoding every line. */
	check_framing(buf, size, 65536, true);
	/* The whole input as one line too: jansson reads newlines as space. */
	if (memchr(buf, '\n', size))
		fuzz_line(buf, size);
	return 0;
}
