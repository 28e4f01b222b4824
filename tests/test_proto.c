/* The protocol module: framing, request decoding, reply encoding. */
#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "proto.h"
#include "suite.h"

/* ---- framing ---- */

START_TEST(frame_whole_partial_and_several_lines)
{
	const char buf[] = "{\"a\":1}\n{\"b\":2}\n{\"c\"";
	size_t len;

	ck_assert_int_eq(frame_next(buf, strlen(buf), 100, &len), FRAME_LINE);
	ck_assert_uint_eq(len, 7);
	ck_assert_int_eq(frame_next(buf + 8, strlen(buf) - 8, 100, &len), FRAME_LINE);
	ck_assert_uint_eq(len, 7);
	ck_assert_int_eq(frame_next(buf + 16, strlen(buf) - 16, 100, &len), FRAME_PARTIAL);
	ck_assert_int_eq(frame_next(buf, 0, 100, &len), FRAME_PARTIAL);
}
END_TEST

START_TEST(frame_size_limit)
{
	enum { LIMIT = 64 };
	char buf[LIMIT + 2];
	size_t len;

	memset(buf, 'x', sizeof(buf));
	buf[LIMIT - 1] = '\n';   /* LIMIT bytes, newline included: accepted */
	ck_assert_int_eq(frame_next(buf, sizeof(buf), LIMIT, &len), FRAME_LINE);
	ck_assert_uint_eq(len, LIMIT - 1);
	buf[LIMIT - 1] = 'x';
	buf[LIMIT] = '\n';       /* one byte more: too large */
	ck_assert_int_eq(frame_next(buf, sizeof(buf), LIMIT, &len), FRAME_TOO_LARGE);
	ck_assert_int_eq(frame_next(buf, LIMIT, LIMIT, &len), FRAME_TOO_LARGE);
	ck_assert_int_eq(frame_next(buf, LIMIT - 1, LIMIT, &len), FRAME_PARTIAL);
}
END_TEST

/* Writes text in pieces of the given sizes (cycled) and reads it back. */
static void feed_in_pieces(const size_t *sizes, size_t nsizes)
{
	const char *text = "{\"id\":1,\"op\":\"ping\"}\n{\"id\":2,\"op\":\"list\"}\n\n{\"id\":3}\n";
	const char *want[] = { "{\"id\":1,\"op\":\"ping\"}", "{\"id\":2,\"op\":\"list\"}", "",
			       "{\"id\":3}" };
	size_t off = 0, total = strlen(text), got = 0, len;
	struct frame_buf fb;
	const char *line;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(frame_buf_init(&fb, 1024), 0);
	for (size_t i = 0; off < total; i++) {
		size_t n = sizes[i % nsizes];

		if (n > total - off)
			n = total - off;
		ck_assert_int_eq(write(sv[0], text + off, n), (ssize_t)n);
		off += n;
		ck_assert_int_gt(frame_buf_fill(&fb, sv[1]), 0);
		while (frame_buf_next(&fb, &line, &len) == FRAME_LINE) {
			ck_assert_uint_lt(got, 4);
			ck_assert_uint_eq(len, strlen(want[got]));
			ck_assert(memcmp(line, want[got], len) == 0);
			got++;
		}
	}
	ck_assert_uint_eq(got, 4);
	close(sv[0]);
	ck_assert_int_eq(frame_buf_fill(&fb, sv[1]), 0); /* EOF */
	close(sv[1]);
	frame_buf_done(&fb);
}

START_TEST(frame_buf_split_reads)
{
	static const size_t ones[] = { 1 };
	static const size_t odd[] = { 3, 17, 5, 29, 2 };

	feed_in_pieces(ones, 1);
	feed_in_pieces(odd, 5);
}
END_TEST

START_TEST(frame_buf_too_large)
{
	struct frame_buf fb;
	char big[200];
	const char *line;
	size_t len;
	int sv[2];

	memset(big, 'a', sizeof(big));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(frame_buf_init(&fb, 64), 0);
	ck_assert_int_eq(write(sv[0], big, sizeof(big)), (ssize_t)sizeof(big));
	ck_assert_int_gt(frame_buf_fill(&fb, sv[1]), 0);
	ck_assert_int_eq(frame_buf_next(&fb, &line, &len), FRAME_TOO_LARGE);
	frame_buf_done(&fb);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* ---- requests ---- */

static struct proto_doc doc;

static void decode_ok(const char *line, struct proto_request *req)
{
	struct proto_error err;

	ck_assert_msg(proto_decode_request(line, strlen(line), req, &doc, &err) == 0,
		      "%s: %s", line, err.message);
}

static void done(void)
{
	proto_doc_done(&doc);
}

/* Decoding fails with code, and the message mentions what. */
static void decode_fails(const char *line, int code, const char *what)
{
	struct proto_request req;
	struct proto_error err;

	ck_assert_msg(proto_decode_request(line, strlen(line), &req, &doc, &err) < 0,
		      "accepted: %s", line);
	ck_assert_msg(err.code == code, "%s: code %s, want %s (%s)", line,
		      proto_errcode_name(err.code), proto_errcode_name(code), err.message);
	ck_assert_msg(strstr(err.message, what), "%s: message '%s' lacks '%s'", line, err.message,
		      what);
}

START_TEST(decode_every_op)
{
	struct proto_request r;

	decode_ok("{\"id\":1,\"op\":\"hello\",\"client\":\"backup.sh\",\"version\":1}", &r);
	ck_assert(r.has_id && r.id == 1 && r.op == OP_HELLO);
	ck_assert_str_eq(r.hello.client, "backup.sh");
	ck_assert_int_eq(r.hello.version, 1);
	done();
	decode_ok("{\"id\":2,\"op\":\"acquire\",\"key\":\"db\",\"mode\":\"shared\",\"timeout_ms\":5000,"
		  "\"owner\":\"alice\",\"message\":\"schema v42\"}", &r);
	ck_assert_int_eq(r.op, OP_ACQUIRE);
	ck_assert_str_eq(r.acquire.key, "db");
	ck_assert_uint_eq(r.acquire.key_len, 2);
	ck_assert(r.acquire.shared);
	ck_assert_int_eq(r.acquire.timeout_ms, 5000);
	ck_assert_str_eq(r.acquire.owner, "alice");
	ck_assert_str_eq(r.acquire.message, "schema v42");
	done();
	decode_ok("{\"id\":3,\"op\":\"release\",\"lease\":31}", &r);
	ck_assert(r.op == OP_RELEASE && r.release.lease == 31);
	done();
	decode_ok("{\"id\":4,\"op\":\"cancel\",\"request\":2}", &r);
	ck_assert(r.op == OP_CANCEL && r.cancel.request == 2);
	done();
	decode_ok("{\"id\":5,\"op\":\"list\"}", &r);
	ck_assert_int_eq(r.op, OP_LIST);
	done();
	decode_ok("{\"id\":6,\"op\":\"stats\"}", &r);
	ck_assert_int_eq(r.op, OP_STATS);
	done();
	decode_ok("{\"op\":\"ping\",\"id\":-7}", &r);
	ck_assert(r.op == OP_PING && r.id == -7);
	done();
}
END_TEST

/* list's paging arguments: defaults, both readers (flat and jansson), and
 * strict types and ranges. */
START_TEST(decode_list_paging)
{
	struct proto_request r;

	decode_ok("{\"id\":1,\"op\":\"list\"}", &r);
	ck_assert(!r.list.prefix && !r.list.after && r.list.limit == PROTO_LIST_DEFAULT);
	done();
	decode_ok("{\"id\":1,\"op\":\"list\",\"prefix\":\"jobs/\",\"after\":\"jobs/x\",\"limit\":10000}",
		  &r);
	ck_assert_str_eq(r.list.prefix, "jobs/");
	ck_assert_uint_eq(r.list.prefix_len, 5);
	ck_assert_str_eq(r.list.after, "jobs/x");
	ck_assert_uint_eq(r.list.after_len, 6);
	ck_assert_int_eq(r.list.limit, 10000);
	done();
	decode_ok("{\"id\":1,\"op\":\"list\",\"prefix\":\"\\u00e9\",\"after\":\"\",\"limit\":null}",
		  &r);
	ck_assert_str_eq(r.list.prefix, "\xc3\xa9");
	ck_assert_str_eq(r.list.after, "");
	ck_assert_int_eq(r.list.limit, PROTO_LIST_DEFAULT);
	done();
	decode_fails("{\"id\":1,\"op\":\"list\",\"limit\":0}", HASP_E_BAD_REQUEST, "limit");
	decode_fails("{\"id\":1,\"op\":\"list\",\"limit\":10001}", HASP_E_BAD_REQUEST, "limit");
	decode_fails("{\"id\":1,\"op\":\"list\",\"limit\":\"10\"}", HASP_E_BAD_REQUEST, "limit");
	decode_fails("{\"id\":1,\"op\":\"list\",\"limit\":2.0}", HASP_E_BAD_REQUEST, "limit");
	decode_fails("{\"id\":1,\"op\":\"list\",\"prefix\":1}", HASP_E_BAD_REQUEST, "prefix");
	decode_fails("{\"id\":1,\"op\":\"list\",\"after\":[]}", HASP_E_BAD_REQUEST, "after");
	decode_fails("{\"id\":1,\"op\":\"list\",\"after\":false}", HASP_E_BAD_REQUEST, "after");
}
END_TEST

START_TEST(acquire_defaults)
{
	struct proto_request r;

	decode_ok("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\"}", &r);
	ck_assert(!r.acquire.shared);
	ck_assert_int_eq(r.acquire.timeout_ms, -1);
	ck_assert_ptr_null(r.acquire.owner);
	ck_assert_ptr_null(r.acquire.message);
	done();
	decode_ok("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"timeout_ms\":null,\"mode\":null,"
		  "\"owner\":null}", &r);
	ck_assert_int_eq(r.acquire.timeout_ms, -1);
	ck_assert(!r.acquire.shared);
	done();
	decode_ok("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"timeout_ms\":0,\"mode\":\"exclusive\"}", &r);
	ck_assert_int_eq(r.acquire.timeout_ms, 0);
	done();
}
END_TEST

START_TEST(unknown_fields_ignored)
{
	struct proto_request r;

	decode_ok("{\"id\":1,\"op\":\"ping\",\"future\":{\"x\":[1,2]},\"trace\":\"abc\"}", &r);
	ck_assert_int_eq(r.op, OP_PING);
	done();
}
END_TEST

START_TEST(malformed_and_shapes)
{
	struct proto_request r;
	struct proto_error err;

	ck_assert_int_eq(proto_decode_request("{nope", 5, &r, &doc, &err), -1);
	ck_assert_int_eq(err.code, HASP_E_BAD_REQUEST);
	ck_assert(!r.has_id);
	ck_assert_ptr_nonnull(strstr(err.message, "malformed JSON"));
	decode_fails("[1,2]", HASP_E_BAD_REQUEST, "JSON object");
	decode_fails("\"ping\"", HASP_E_BAD_REQUEST, "malformed"); /* jansson: no scalars */
	decode_fails("{\"op\":\"ping\"}", HASP_E_BAD_REQUEST, "\"id\"");
	decode_fails("{\"id\":\"1\",\"op\":\"ping\"}", HASP_E_BAD_REQUEST, "\"id\"");
	decode_fails("{\"id\":1.5,\"op\":\"ping\"}", HASP_E_BAD_REQUEST, "\"id\"");
	decode_fails("{\"id\":1}", HASP_E_BAD_REQUEST, "\"op\"");
	decode_fails("{\"id\":1,\"op\":7}", HASP_E_BAD_REQUEST, "\"op\"");
	decode_fails("{\"id\":1,\"op\":\"ping\",\"id\":2}", HASP_E_BAD_REQUEST, "duplicate");
}
END_TEST

START_TEST(unknown_op_keeps_the_id)
{
	struct proto_request r;
	struct proto_error err;
	const char *line = "{\"id\":9,\"op\":\"frobnicate\"}";

	ck_assert_int_eq(proto_decode_request(line, strlen(line), &r, &doc, &err), -1);
	ck_assert_int_eq(err.code, HASP_E_UNKNOWN_OP);
	ck_assert(r.has_id && r.id == 9);
	ck_assert_ptr_nonnull(strstr(err.message, "frobnicate"));
}
END_TEST

START_TEST(wrong_types_name_the_field)
{
	decode_fails("{\"id\":1,\"op\":\"acquire\"}", HASP_E_BAD_REQUEST, "\"key\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":7}", HASP_E_BAD_REQUEST, "\"key\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"\"}", HASP_E_BAD_REQUEST, "\"key\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"mode\":\"both\"}", HASP_E_BAD_REQUEST, "\"mode\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"mode\":1}", HASP_E_BAD_REQUEST, "\"mode\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"timeout_ms\":-1}", HASP_E_BAD_REQUEST, "\"timeout_ms\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"timeout_ms\":2.5}", HASP_E_BAD_REQUEST, "\"timeout_ms\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"timeout_ms\":\"5\"}", HASP_E_BAD_REQUEST, "\"timeout_ms\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"owner\":1}", HASP_E_BAD_REQUEST, "\"owner\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"message\":[]}", HASP_E_BAD_REQUEST, "\"message\"");
	decode_fails("{\"id\":1,\"op\":\"release\"}", HASP_E_BAD_REQUEST, "\"lease\"");
	decode_fails("{\"id\":1,\"op\":\"release\",\"lease\":\"3\"}", HASP_E_BAD_REQUEST, "\"lease\"");
	decode_fails("{\"id\":1,\"op\":\"release\",\"lease\":0}", HASP_E_BAD_REQUEST, "\"lease\"");
	decode_fails("{\"id\":1,\"op\":\"cancel\"}", HASP_E_BAD_REQUEST, "\"request\"");
	decode_fails("{\"id\":1,\"op\":\"cancel\",\"request\":true}", HASP_E_BAD_REQUEST, "\"request\"");
	decode_fails("{\"id\":1,\"op\":\"hello\",\"version\":0}", HASP_E_BAD_REQUEST, "\"version\"");
	decode_fails("{\"id\":1,\"op\":\"hello\",\"client\":5}", HASP_E_BAD_REQUEST, "\"client\"");
}
END_TEST

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

START_TEST(length_limits)
{
	char *k1024 = repeat('k', 1024), *k1025 = repeat('k', 1025);
	char *o257 = repeat('o', 257), *m1025 = repeat('m', 1025);
	char line[4096];
	struct proto_request r;

	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"key\":\"%s\"}", k1024);
	decode_ok(line, &r);
	ck_assert_uint_eq(r.acquire.key_len, 1024);
	done();
	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"key\":\"%s\"}", k1025);
	decode_fails(line, HASP_E_BAD_REQUEST, "\"key\"");
	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"owner\":\"%s\"}", o257);
	decode_fails(line, HASP_E_BAD_REQUEST, "\"owner\"");
	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"message\":\"%s\"}", m1025);
	decode_fails(line, HASP_E_BAD_REQUEST, "\"message\"");
	free(k1024);
	free(k1025);
	free(o257);
	free(m1025);
}
END_TEST

START_TEST(bytes_that_are_not_text)
{
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"\xff\xfe\"}", HASP_E_BAD_REQUEST, "malformed");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"a\\u0000b\"}", HASP_E_BAD_REQUEST, "malformed");
}
END_TEST

START_TEST(file_acquires)
{
	struct proto_request r;

	decode_ok("{\"id\":1,\"op\":\"acquire\",\"path\":\"/tmp/x\",\"fd\":true}", &r);
	ck_assert_str_eq(r.acquire.path, "/tmp/x");
	ck_assert_ptr_null(r.acquire.key);
	ck_assert(r.acquire.fd);
	done();
	decode_ok("{\"id\":1,\"op\":\"acquire\",\"path\":\"/tmp/x\"}", &r);
	ck_assert(!r.acquire.fd);
	done();
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"path\":\"x\"}", HASP_E_BAD_REQUEST, "absolute");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"path\":\"/x\",\"key\":\"k\"}", HASP_E_BAD_REQUEST, "\"path\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"path\":\"/x\",\"fd\":1}", HASP_E_BAD_REQUEST, "\"fd\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"fd\":true}", HASP_E_BAD_REQUEST, "\"fd\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"path\":7}", HASP_E_BAD_REQUEST, "\"path\"");
}
END_TEST

/* A semaphore's limit: 1 to 10000, on a key, exclusive, not checked out. */
START_TEST(semaphore_acquires)
{
	struct proto_request r;

	decode_ok("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\"}", &r);
	ck_assert_int_eq(r.acquire.limit, 0);
	done();
	decode_ok("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"limit\":10000,\"mode\":\"exclusive\"}", &r);
	ck_assert_int_eq(r.acquire.limit, 10000);
	done();
	decode_ok("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"limit\":null}", &r);
	ck_assert_int_eq(r.acquire.limit, 0);
	done();
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"limit\":0}", HASP_E_BAD_REQUEST, "\"limit\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"limit\":10001}", HASP_E_BAD_REQUEST, "1 to 10000");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"limit\":\"2\"}", HASP_E_BAD_REQUEST, "\"limit\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"limit\":2,\"mode\":\"shared\"}", HASP_E_BAD_REQUEST, "exclusive");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"path\":\"/x\",\"fd\":true,\"limit\":2}", HASP_E_BAD_REQUEST, "a file is not a semaphore");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"limit\":2,\"detach\":true}", HASP_E_BAD_REQUEST, "checked out");
}
END_TEST

/* A multi-key acquire: 2 to 64 distinct keys, each a name (in the
 * request's mode) or {"key","mode"}; no file, limit, TTL or detach. */
START_TEST(multi_key_acquires_decode)
{
	static const char *const line = "{\"id\":4,\"op\":\"acquire\",\"keys\":[\"a\","
					"{\"key\":\"b\",\"mode\":\"shared\"},{\"key\":\"c\"}],"
					"\"mode\":\"shared\",\"timeout_ms\":1000}";
	struct proto_request r;
	struct proto_key k;
	char many[1024];
	size_t n = 0;

	decode_ok(line, &r);
	ck_assert_uint_eq(r.acquire.nkeys, 3);
	ck_assert_ptr_null(r.acquire.key);
	ck_assert_int_eq(r.acquire.timeout_ms, 1000);
	proto_acquire_key(&r, 0, &k);
	ck_assert(k.key_len == 1 && strcmp(k.key, "a") == 0 && k.shared);
	proto_acquire_key(&r, 1, &k);
	ck_assert(strcmp(k.key, "b") == 0 && k.shared);
	proto_acquire_key(&r, 2, &k);
	ck_assert(strcmp(k.key, "c") == 0 && k.shared);
	done();
	decode_ok("{\"id\":4,\"op\":\"acquire\",\"keys\":[\"a\",{\"key\":\"b\",\"mode\":\"shared\"}]}", &r);
	proto_acquire_key(&r, 0, &k);
	ck_assert(!k.shared);
	done();
	n += (size_t)snprintf(many, sizeof(many), "{\"id\":1,\"op\":\"acquire\",\"keys\":[");
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "%s\"k%d\"", i ? "," : "", i);
	snprintf(many + n, sizeof(many) - n, "]}");
	decode_fails(many, HASP_E_BAD_REQUEST, "2 to 64");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\"]}", HASP_E_BAD_REQUEST, "2 to 64");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[]}", HASP_E_BAD_REQUEST, "2 to 64");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":\"a\"}", HASP_E_BAD_REQUEST, "2 to 64");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",\"a\"]}", HASP_E_BAD_REQUEST, "twice");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",{\"key\":\"a\"}]}", HASP_E_BAD_REQUEST, "twice");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",\"\"]}", HASP_E_BAD_REQUEST, "each of");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",1]}", HASP_E_BAD_REQUEST, "each of");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",{\"key\":\"b\",\"mode\":\"x\"}]}", HASP_E_BAD_REQUEST, "\"mode\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",\"b\"],\"key\":\"c\"}", HASP_E_BAD_REQUEST, "one of");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",\"b\"],\"path\":\"/x\"}", HASP_E_BAD_REQUEST, "one of");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",\"b\"],\"limit\":2}", HASP_E_BAD_REQUEST, "\"limit\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",\"b\"],\"detach\":true}", HASP_E_BAD_REQUEST, "\"detach\"");
	decode_fails("{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",\"b\"],\"ttl_ms\":5}", HASP_E_BAD_REQUEST, "\"ttl_ms\"");
}
END_TEST

/* Decodes line, and the same object with a member that only jansson reads
 * (an escaped string): both readers must see the same request. */
static void same_either_way(const char *line)
{
	char padded[2048];
	struct proto_request a, b;
	struct proto_error ea, eb;
	size_t len = strlen(line);
	int ra, rb;

	ck_assert(len >= 2 && line[len - 1] == '}' && len < sizeof(padded) - 32);
	snprintf(padded, sizeof(padded), "%.*s%s\"zz\":\"\\u0041\"}", (int)(len - 1), line,
		 strstr(line, ":") ? "," : "");
	ra = proto_decode_request(line, len, &a, &doc, &ea);
	if (ra == 0)
		done();
	rb = proto_decode_request(padded, strlen(padded), &b, &doc, &eb);
	ck_assert_msg(ra == rb, "%s: %d, padded %d", line, ra, rb);
	if (ra < 0) {
		ck_assert_msg(ea.code == eb.code, "%s: %s vs %s", line, ea.message, eb.message);
		ck_assert_int_eq(a.has_id, b.has_id);
		ck_assert(!a.has_id || a.id == b.id);
		return;
	}
	ck_assert(a.op == b.op && a.id == b.id);
	if (a.op == OP_ACQUIRE) {
		ck_assert_int_eq(a.acquire.key_len, b.acquire.key_len);
		ck_assert(a.acquire.shared == b.acquire.shared && a.acquire.fd == b.acquire.fd);
		ck_assert_int_eq(a.acquire.timeout_ms, b.acquire.timeout_ms);
		ck_assert(!a.acquire.owner == !b.acquire.owner && !a.acquire.path == !b.acquire.path);
		ck_assert(a.acquire.lock_fd == b.acquire.lock_fd && a.acquire.detach == b.acquire.detach);
		ck_assert_int_eq(a.acquire.ttl_ms, b.acquire.ttl_ms);
		ck_assert_int_eq(a.acquire.limit, b.acquire.limit);
		ck_assert_uint_eq(a.acquire.nkeys, b.acquire.nkeys);
	} else if (a.op == OP_RENEW) {
		ck_assert_uint_eq(a.renew.target.lease, b.renew.target.lease);
		ck_assert_int_eq(a.renew.ttl_ms, b.renew.ttl_ms);
	} else if (a.op == OP_RELEASE) {
		ck_assert_uint_eq(a.release.lease, b.release.lease);
	} else if (a.op == OP_CANCEL) {
		ck_assert_int_eq(a.cancel.request, b.cancel.request);
	}
	done();
}

START_TEST(fast_reader_agrees_with_jansson)
{
	static const char *const lines[] = {
		"{\"id\":1,\"op\":\"ping\"}",
		"{ \"id\" : 7 , \"op\" : \"acquire\" , \"key\" : \"k\" , \"timeout_ms\" : 0 }",
		"{\"id\":-9223372036854775808,\"op\":\"acquire\",\"key\":\"k\",\"mode\":\"shared\"}",
		"{\"id\":9223372036854775807,\"op\":\"release\",\"lease\":31}",
		"{\"id\":9223372036854775808,\"op\":\"ping\"}",
		"{\"id\":-0,\"op\":\"cancel\",\"request\":-5}",
		"{\"id\":01,\"op\":\"ping\"}",
		"{\"id\":1.0,\"op\":\"ping\"}",
		"{\"id\":1e2,\"op\":\"ping\"}",
		"{\"id\":1,\"op\":\"ping\",\"id\":2}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"\"}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"fd\":true}",
		"{\"id\":1,\"op\":\"acquire\",\"path\":\"/x\",\"fd\":false,\"owner\":null}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"timeout_ms\":-1}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"mode\":1}",
		"{\"id\":1,\"op\":\"acquire\",\"path\":\"/x\",\"fd\":true,\"lock_fd\":true}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"ttl_ms\":5,\"detach\":true}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"detach\":1}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"limit\":4}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"limit\":4,\"mode\":\"shared\"}",
		"{\"id\":1,\"op\":\"renew\",\"lease\":3,\"ttl_ms\":0}",
		"{\"id\":1,\"op\":\"renew\",\"lease\":3,\"ttl_ms\":60000}",
		"{\"id\":1,\"op\":\"ping\",\"i\":1,\"l\":2,\"idx\":3,\"\":4}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"timeout_ms\":123456789012345678}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"timeout_ms\":9223372036854775807}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"timeout_ms\":9223372036854775808}",
		"{\"id\":1,\"op\":\"acquire\",\"key\":\"k\",\"timeout_ms\":99999999999999999999}",
		"{\"id\":null,\"op\":\"ping\"}",
		"{\"id\":true,\"op\":\"ping\"}",
		"{\"id\":1,\"op\":null}",
		"{\"id\":1,\"op\":\"frob\"}",
		"{\"id\":1,\"op\":\"ping\",\"x\":[1,{\"y\":2}]}",
		"{\"id\":1,\"op\":\"revoke\",\"lease\":3}",
		"{\"id\":1,\"op\":\"release\",\"lease\":0}",
		"{\"id\":1,\"op\":\"acquire\",\"keys\":\"a\"}",
		"{\"id\":1,\"op\":\"acquire\",\"keys\":7,\"timeout_ms\":0}",
		"{\"id\":1,\"op\":\"acquire\",\"keys\":null,\"key\":\"k\"}",
		"{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",{\"key\":\"b\",\"mode\":\"shared\"}]}",
		"{\"id\":1,\"op\":\"acquire\",\"keys\":[\"a\",\"a\"]}",
		"{}",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		same_either_way(lines[i]);
}
END_TEST

START_TEST(fast_reader_takes_only_simple_lines)
{
	struct flat f;
	const char *simple = "{\"id\":1,\"op\":\"acquire\",\"key\":\"db\",\"fd\":true,\"owner\":null}";

	ck_assert_int_eq(flat_parse(simple, strlen(simple), &f), 0);
	ck_assert_uint_eq(f.n, 5);
	ck_assert_str_eq(flat_get(&f, "key")->str, "db");
	ck_assert_int_eq(flat_get(&f, "fd")->type, FLAT_TRUE);
	ck_assert_int_eq(flat_parse("{\"k\":\"a\\nb\"}", 10, &f), -1);   /* an escape */
	ck_assert_int_eq(flat_parse("{\"k\":\"\xc3\xa9\"}", 10, &f), -1); /* not ASCII */
	ck_assert_int_eq(flat_parse("{\"k\":[1]}", 9, &f), -1);
	ck_assert_int_eq(flat_parse("{\"k\":1,\"k\":2}", 13, &f), -1);   /* duplicate */
	ck_assert_int_eq(flat_parse("{\"k\":1} x", 10, &f), -1);
	ck_assert_int_eq(flat_parse("[1]", 3, &f), -1);
}
END_TEST

/* ---- replies ---- */

static json_t *parse_line(const char *buf, size_t len)
{
	json_t *o;

	ck_assert_uint_gt(len, 0);
	ck_assert_int_eq(buf[len - 1], '\n');
	o = json_loadb(buf, len - 1, JSON_REJECT_DUPLICATES, NULL);
	ck_assert_ptr_nonnull(o);
	return o;
}

START_TEST(small_replies)
{
	char buf[PROTO_SMALL_REPLY];
	size_t len = proto_fmt_grant(buf, 2, 31, (1ULL << 53) - 1, true);
	json_t *o = parse_line(buf, len);

	ck_assert_int_eq(json_integer_value(json_object_get(o, "id")), 2);
	ck_assert(json_is_true(json_object_get(o, "ok")));
	ck_assert_int_eq(json_integer_value(json_object_get(o, "lease")), 31);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "fence")), (json_int_t)((1ULL << 53) - 1));
	ck_assert_str_eq(json_string_value(json_object_get(o, "mode")), "shared");
	json_decref(o);
	len = proto_fmt_ok(buf, INT64_MIN);
	o = parse_line(buf, len);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "id")), INT64_MIN);
	json_decref(o);
}
END_TEST

/* The hot replies are written by hand: byte for byte what the format
 * strings they replaced wrote, for every length of number and both signs. */
START_TEST(small_replies_as_printf_wrote_them)
{
	int64_t ids[64] = { INT64_MIN, INT64_MIN + 1, INT64_MAX, -1, 0 };
	uint64_t nums[64] = { UINT64_MAX, (1ULL << 53) - 1, 1795000000000123ULL, 0 };
	size_t nids = 5, nnums = 4;
	char buf[PROTO_SMALL_REPLY], want[PROTO_SMALL_REPLY];
	uint64_t p = 1;

	for (int digits = 1; digits <= 19; digits++, p *= 10) {
		ids[nids++] = (int64_t)p;
		ids[nids++] = -(int64_t)p;
		if (digits < 19)
			ids[nids++] = (int64_t)(p * 10 - 1);   /* all nines */
		nums[nnums++] = p;
		nums[nnums++] = p * 10 - 1;
		nums[nnums++] = p + 37;
	}
	ck_assert_uint_le(nids, 64);
	ck_assert_uint_le(nnums, 64);
	for (size_t i = 0; i < nids; i++) {
		size_t len = proto_fmt_ok(buf, ids[i]);
		int n = snprintf(want, sizeof(want), "{\"id\":%" PRId64 ",\"ok\":true}\n", ids[i]);

		ck_assert_uint_eq(len, (size_t)n);
		ck_assert(memcmp(buf, want, len) == 0);
		for (size_t j = 0; j < nnums; j++) {
			uint64_t lease = nums[j], fence = nums[(j * 7 + i) % nnums];
			bool shared = (i + j) % 2;

			len = proto_fmt_grant(buf, ids[i], lease, fence, shared);
			n = snprintf(want, sizeof(want), "{\"id\":%" PRId64 ",\"ok\":true,\"lease\":%"
				     PRIu64 ",\"fence\":%" PRIu64 ",\"mode\":\"%s\"}\n", ids[i],
				     lease, fence, shared ? "shared" : "exclusive");
			ck_assert_uint_eq(len, (size_t)n);
			ck_assert_msg(memcmp(buf, want, len) == 0, "%.*s", (int)len, buf);
		}
	}
}
END_TEST

START_TEST(error_replies)
{
	size_t len;
	char *line = proto_reply_error(false, 0, HASP_E_TOO_LARGE, "too long", NULL, &len);
	json_t *o = parse_line(line, len), *e;

	ck_assert(json_is_null(json_object_get(o, "id")));
	ck_assert(json_is_false(json_object_get(o, "ok")));
	e = json_object_get(o, "error");
	ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "too_large");
	ck_assert_str_eq(json_string_value(json_object_get(e, "message")), "too long");
	ck_assert_ptr_null(json_object_get(e, "holders"));
	json_decref(o);
	free(line);
	line = proto_reply_error(true, 5, HASP_E_BUSY, "held by \"bob\"",
				 json_pack("[{s:i}]", "pid", 412), &len);
	o = parse_line(line, len);
	e = json_object_get(o, "error");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "id")), 5);
	ck_assert_str_eq(json_string_value(json_object_get(e, "message")), "held by \"bob\"");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(e, "holders"), 0), "pid")), 412);
	json_decref(o);
	free(line);
}
END_TEST

START_TEST(ok_reply_with_body_and_request_encoding)
{
	size_t len;
	char *line = proto_reply_ok(3, json_pack("{s:s}", "server", "haspd"), &len);
	json_t *o = parse_line(line, len);
	struct proto_request r;

	ck_assert_str_eq(json_string_value(json_object_get(o, "server")), "haspd");
	json_decref(o);
	free(line);
	line = proto_encode_request(12, OP_ACQUIRE, json_pack("{s:s,s:s}", "key", "a\"b\n", "mode", "shared"), &len);
	ck_assert_int_eq(line[len - 1], '\n');
	ck_assert_ptr_null(memchr(line, '\n', len - 1)); /* escaping keeps it one line */
	line[len - 1] = '\0';
	decode_ok(line, &r);
	ck_assert_int_eq(r.id, 12);
	ck_assert_str_eq(r.acquire.key, "a\"b\n");
	done();
	free(line);
}
END_TEST

/* libhasp's text encoder against jansson: every byte that needs an escape,
 * multi-byte UTF-8, a name that is not UTF-8 (shown), and integers at the
 * ends of their range; the daemon decodes the line it writes. */
START_TEST(members_encoder_agrees_with_jansson)
{
	char every[128], line[2048];
	const char *utf8 = "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92 \x7f";
	const char *bad = "a\xff\xc3" "b";
	const int64_t ints[] = { 0, -1, 1, 9007199254740991, INT64_MAX, INT64_MIN };
	struct proto_members m;
	struct proto_request r;
	json_t *o;
	size_t len;

	for (int i = 1; i < 128; i++)
		every[i - 1] = (char)i;
	every[127] = '\0';
	proto_members_init(&m);
	proto_members_str(&m, "key", every);
	proto_members_str(&m, "owner", utf8);
	proto_members_shown(&m, "path", bad, strlen(bad));
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		char name[8];

		snprintf(name, sizeof(name), "i%zu", i);
		proto_members_int(&m, name, ints[i]);
	}
	proto_members_true(&m, "t");
	ck_assert(!m.nomem);
	ck_assert_uint_gt(m.len, sizeof(m.small)); /* it grew */
	ck_assert_uint_le(proto_line_size(OP_ACQUIRE, &m), sizeof(line));
	len = proto_line_write(line, INT64_MAX, OP_ACQUIRE, &m);
	ck_assert_uint_le(len, proto_line_size(OP_ACQUIRE, &m));
	ck_assert_int_eq(line[len - 1], '\n');
	ck_assert_ptr_null(memchr(line, '\n', len - 1));
	o = json_loadb(line, len, 0, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "id")), INT64_MAX);
	ck_assert_str_eq(json_string_value(json_object_get(o, "op")), "acquire");
	ck_assert_str_eq(json_string_value(json_object_get(o, "key")), every);
	ck_assert_str_eq(json_string_value(json_object_get(o, "owner")), utf8);
	ck_assert_str_eq(json_string_value(json_object_get(o, "path")), "a\xef\xbf\xbd\xef\xbf\xbd" "b");
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		char name[8];

		snprintf(name, sizeof(name), "i%zu", i);
		ck_assert_int_eq(json_integer_value(json_object_get(o, name)), ints[i]);
	}
	ck_assert(json_is_true(json_object_get(o, "t")));
	ck_assert_int_eq(json_object_size(o), 6 + sizeof(ints) / sizeof(ints[0]));
	json_decref(o);
	proto_members_free(&m);

	/* A release, as the daemon reads it (by its fast reader). */
	proto_members_init(&m);
	proto_members_int(&m, "lease", 31);
	len = proto_line_write(line, 7, OP_RELEASE, &m);
	ck_assert_mem_eq(line, "{\"id\":7,\"op\":\"release\",\"lease\":31}\n", len);
	line[len - 1] = '\0';
	decode_ok(line, &r);
	ck_assert_int_eq(r.release.lease, 31);
	done();
	proto_members_free(&m);
}
END_TEST

/* The flat reader takes libhasp's everyday replies; what it leaves (an
 * error, a nested body) is jansson's, and the two agree on what they
 * share. */
START_TEST(replies_read_flat_or_not)
{
	struct proto_reply rep;
	const char *grant = "{\"id\":2,\"ok\":true,\"lease\":31,\"fence\":1795000000000123,"
			    "\"mode\":\"exclusive\",\"token\":\"00112233445566778899aabbccddeeff\"}";
	const char *nested = "{\"id\":3,\"ok\":true,\"stats\":{\"leases\":1}}";
	const char *escaped = "{\"event\":\"revoked\",\"lease\":9,\"key\":\"a\\\"b\"}";
	struct proto_grant g;
	int64_t v;

	ck_assert_int_eq(proto_decode_reply(grant, strlen(grant), &rep), 0);
	ck_assert(rep.is_flat && rep.ok && rep.id == 2);
	ck_assert_int_eq(proto_decode_grant(&rep, &g), 0);
	ck_assert(g.lease == 31 && g.fence == 1795000000000123 && g.expires_ms == -1);
	ck_assert_str_eq(g.token, "00112233445566778899aabbccddeeff");
	ck_assert_ptr_null(proto_reply_str(&rep, "lease")); /* not a string */
	ck_assert_ptr_nonnull(proto_reply_root(&rep));
	ck_assert(!rep.is_flat);
	ck_assert_int_eq(proto_decode_grant(&rep, &g), 0);
	ck_assert(g.lease == 31 && g.fence == 1795000000000123);
	proto_reply_done(&rep);
	ck_assert_int_eq(proto_decode_reply(nested, strlen(nested), &rep), 0);
	ck_assert(!rep.is_flat && rep.ok && rep.root);
	proto_reply_done(&rep);
	ck_assert_int_eq(proto_decode_reply(escaped, strlen(escaped), &rep), 0);
	ck_assert(!rep.is_flat && rep.is_event);
	ck_assert(proto_reply_int(&rep, "lease", &v) && v == 9);
	ck_assert_str_eq(proto_reply_str(&rep, "key"), "a\"b");
	proto_reply_done(&rep);
}
END_TEST

START_TEST(decode_replies)
{
	struct proto_reply rep;
	const char *ok = "{\"id\":4,\"ok\":true,\"lease\":1}";
	const char *err = "{\"id\":5,\"ok\":false,\"error\":{\"code\":\"timeout\",\"message\":\"m\"}}";
	const char *future = "{\"id\":6,\"ok\":false,\"error\":{\"code\":\"brand_new\",\"message\":\"m\"}}";
	const char *ev = "{\"event\":\"revoked\",\"lease\":31}";

	ck_assert_int_eq(proto_decode_reply(ok, strlen(ok), &rep), 0);
	ck_assert(rep.ok && rep.has_id && rep.id == 4 && !rep.is_event);
	proto_reply_done(&rep);
	ck_assert_int_eq(proto_decode_reply(err, strlen(err), &rep), 0);
	ck_assert(!rep.ok && rep.code == HASP_E_TIMEOUT);
	ck_assert_str_eq(rep.message, "m");
	proto_reply_done(&rep);
	ck_assert_int_eq(proto_decode_reply(future, strlen(future), &rep), 0);
	ck_assert_int_eq(rep.code, HASP_E_INTERNAL);
	proto_reply_done(&rep);
	ck_assert_int_eq(proto_decode_reply(ev, strlen(ev), &rep), 0);
	ck_assert(rep.is_event);
	ck_assert_str_eq(rep.event, "revoked");
	proto_reply_done(&rep);
	ck_assert_int_eq(proto_decode_reply("garbage", 7, &rep), -1);
	ck_assert_int_eq(proto_decode_reply("[]", 2, &rep), -1);
	ck_assert_int_eq(proto_decode_reply("{\"id\":1,\"ok\":false}", 19, &rep), -1);
}
END_TEST

START_TEST(code_tables_round_trip)
{
	for (int c = HASP_E_BAD_REQUEST; c <= HASP_E_INTERNAL; c++)
		ck_assert_int_eq(proto_errcode_parse(proto_errcode_name(c)), c);
	for (int op = 0; op < OP__COUNT; op++)
		ck_assert_int_eq(proto_op_parse(proto_op_name((enum proto_op)op)), op);
	ck_assert_int_eq(proto_op_parse("nope"), -1);
}
END_TEST

/* ---- the invalid-input corpus ---- */

START_TEST(corpus_is_rejected)
{
	const char *dir = getenv("HASP_CORPUS_DIR") ? getenv("HASP_CORPUS_DIR") : "tests/corpus";
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	ck_assert_msg(d, "no corpus at %s", dir);
	while ((de = readdir(d))) {
		char path[512], line[8192];
		struct proto_request r;
		struct proto_error err;
		size_t len;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		ck_assert_ptr_nonnull(f);
		len = fread(line, 1, sizeof(line), f);
		fclose(f);
		if (len && line[len - 1] == '\n')
			len--;
		ck_assert_msg(proto_decode_request(line, len, &r, &doc, &err) < 0,
			      "%s was accepted", de->d_name);
		ck_assert_msg(err.code == HASP_E_BAD_REQUEST || err.code == HASP_E_UNKNOWN_OP,
			      "%s: %s", de->d_name, proto_errcode_name(err.code));
		n++;
	}
	closedir(d);
	ck_assert_int_ge(n, 12);
}
END_TEST

static Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *frame = tcase_create("frame"), *req = tcase_create("requests");
	TCase *rep = tcase_create("replies");

	tcase_add_test(frame, frame_whole_partial_and_several_lines);
	tcase_add_test(frame, frame_size_limit);
	tcase_add_test(frame, frame_buf_split_reads);
	tcase_add_test(frame, frame_buf_too_large);
	tcase_add_test(req, decode_every_op);
	tcase_add_test(req, decode_list_paging);
	tcase_add_test(req, acquire_defaults);
	tcase_add_test(req, unknown_fields_ignored);
	tcase_add_test(req, malformed_and_shapes);
	tcase_add_test(req, unknown_op_keeps_the_id);
	tcase_add_test(req, wrong_types_name_the_field);
	tcase_add_test(req, length_limits);
	tcase_add_test(req, bytes_that_are_not_text);
	tcase_add_test(req, file_acquires);
	tcase_add_test(req, semaphore_acquires);
	tcase_add_test(req, corpus_is_rejected);
	tcase_add_test(req, fast_reader_agrees_with_jansson);
	tcase_add_test(req, multi_key_acquires_decode);
	tcase_add_test(req, fast_reader_takes_only_simple_lines);
	tcase_add_test(rep, small_replies_as_printf_wrote_them);
	tcase_add_test(rep, small_replies);
	tcase_add_test(rep, error_replies);
	tcase_add_test(rep, ok_reply_with_body_and_request_encoding);
	tcase_add_test(rep, decode_replies);
	tcase_add_test(rep, members_encoder_agrees_with_jansson);
	tcase_add_test(rep, replies_read_flat_or_not);
	tcase_add_test(rep, code_tables_round_trip);
	suite_add_tcase(s, frame);
	suite_add_tcase(s, req);
	suite_add_tcase(s, rep);
	return s;
}

int main(void)
{
	return run_suite(proto_suite());
}
