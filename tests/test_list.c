/* list against a real haspd: names that are not UTF-8, paging (prefix,
 * after, limit, next; pages bounded in bytes so that no list reply ends the
 * session that asked), libhasp's paging, and hasp ls (all pages, --prefix,
 * client text escaped for the terminal). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "harness.h"
#include "hasp.h"

static struct daemon_proc daemon_;

static void setup(void)
{
	daemon_start(&daemon_);
	setenv("HASP_SOCKET", daemon_.socket, 1);
}

static void teardown(void)
{
	daemon_stop(&daemon_);
}

/* ---- a raw connection that reads lines of any length ---- */

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
};

static void conn_open(struct conn *c)
{
	c->fd = raw_connect(daemon_.socket);
	c->len = 0;
	c->cap = 1 << 16;
	c->buf = malloc(c->cap);
	ck_assert_ptr_nonnull(c->buf);
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c->buf);
}

/* The next line, NUL-terminated in a malloc'ed copy with its length, or
 * NULL at EOF or after timeout_ms. */
static char *conn_line(struct conn *c, int timeout_ms, size_t *ret_len)
{
	int64_t end = now_ms() + test_ms(timeout_ms);

	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len), *line;
		ssize_t n;

		if (nl) {
			size_t len = (size_t)(nl - c->buf);

			line = malloc(len + 1);
			ck_assert_ptr_nonnull(line);
			memcpy(line, c->buf, len);
			line[len] = '\0';
			memmove(c->buf, nl + 1, c->len - len - 1);
			c->len -= len + 1;
			*ret_len = len;
			return line;
		}
		if (c->len == c->cap) {
			c->cap *= 2;
			c->buf = realloc(c->buf, c->cap);
			ck_assert_ptr_nonnull(c->buf);
		}
		if (now_ms() >= end || !wait_readable(c->fd, (int)(end - now_ms())))
			return NULL;
		n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n <= 0)
			return NULL;
		c->len += (size_t)n;
	}
}

/* The reply to id (others are skipped), its line's length in *ret_len;
 * fails the test at EOF: the daemon ended the session. */
static json_t *conn_reply(struct conn *c, int64_t id, size_t *ret_len)
{
	for (;;) {
		size_t len = 0;
		char *line = conn_line(c, 30000, &len);
		json_t *r;

		ck_assert_msg(line, "no reply to request %lld: the session was ended",
			      (long long)id);
		r = json_loads(line, 0, NULL);
		free(line);
		ck_assert_ptr_nonnull(r);
		if (json_integer_value(json_object_get(r, "id")) == id) {
			if (ret_len)
				*ret_len = len;
			return r;
		}
		json_decref(r);
	}
}

static json_t *conn_call(struct conn *c, int64_t id, const char *line, size_t *ret_len)
{
	raw_send(c->fd, line);
	return conn_reply(c, id, ret_len);
}

/* A list request's reply, checked to be ok. */
static json_t *list_page(struct conn *c, const char *args, size_t *ret_len)
{
	static int64_t id = 1000;
	char line[16384];
	json_t *r;

	snprintf(line, sizeof(line), "{\"id\":%lld,\"op\":\"list\"%s%s}\n", (long long)++id,
		 *args ? "," : "", args);
	r = conn_call(c, id, line, ret_len);
	ck_assert_msg(!reply_error(r), "list %s: %s", args, reply_message(r));
	return r;
}

static const char *name_of(json_t *resource)
{
	json_t *k = json_object_get(resource, "key");

	return json_string_value(k ? k : json_object_get(resource, "path"));
}

/* "name,name,...|next" of a list page, for comparing with what is expected. */
static char *page_str(json_t *reply)
{
	json_t *a = json_object_get(reply, "resources"), *r;
	const char *next = json_string_value(json_object_get(reply, "next"));
	char *s = calloc(1, 1 << 16);
	size_t i;

	ck_assert_ptr_nonnull(s);
	json_array_foreach(a, i, r) {
		strcat(s, i ? "," : "");
		strcat(s, name_of(r));
	}
	if (next) {
		strcat(s, "|");
		strcat(s, next);
	}
	return s;
}

#define PAGE_IS(c, args, want) do { \
		json_t *r_ = list_page(c, args, NULL); \
		char *s_ = page_str(r_); \
		ck_assert_msg(strcmp(s_, want) == 0, "list %s gave \"%s\", not \"%s\"", args, s_, \
			      want); \
		free(s_); \
		json_decref(r_); \
	} while (0)

/* Pipelines acquires of keys prefix + i (i from 0 to n - 1, with width
 * digits) with the extra members, on c, and waits for every grant. */
static void acquire_many(struct conn *c, const char *prefix, int width, int n, const char *extra)
{
	enum { BATCH = 100 };
	size_t size = (strlen(extra) + 200) * BATCH;
	char *batch = malloc(size), key[256];

	ck_assert_ptr_nonnull(batch);
	for (int i = 0; i < n; i += BATCH) {
		char *p = batch;
		int last = i + BATCH < n ? i + BATCH : n;

		for (int k = i; k < last; k++) {
			snprintf(key, sizeof(key), "%s%0*d", prefix, width, k);
			p += sprintf(p, "{\"id\":%d,\"op\":\"acquire\",\"key\":\"%s\"%s}\n", k + 1, key,
				     extra);
		}
		raw_send(c->fd, batch);
		for (int k = i; k < last; k++) {
			json_t *r = conn_reply(c, k + 1, NULL);

			ck_assert_msg(!reply_error(r), "acquire %d: %s", k, reply_message(r));
			json_decref(r);
		}
	}
	free(batch);
}

/* ---- running hasp ---- */

static const char *cli_path(void)
{
	return getenv("HASP_CLI") ? getenv("HASP_CLI") : "build/client/hasp";
}

/* Runs hasp with args to completion, its stdout in *out (malloc'ed) and its
 * stderr in *err (malloc'ed, if err is not NULL; else to ours). Returns its
 * exit status. */
static int cli_run(char *const args[], char **out, char **err)
{
	int o[2], e[2], status;
	char *buf[2] = { NULL, NULL };
	size_t len[2] = { 0, 0 }, cap[2] = { 0, 0 };
	bool open_[2] = { true, err != NULL };
	int fds[2];
	pid_t pid;

	ck_assert_int_eq(pipe(o), 0);
	ck_assert_int_eq(pipe(e), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(o[1], 1);
		if (err)
			dup2(e[1], 2);
		execv(cli_path(), args);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	fds[0] = o[0];
	fds[1] = e[0];
	/* Both pipes, until EOF: bounded by wait_readable's deadline. */
	while (open_[0] || open_[1]) {
		for (int k = 0; k < 2; k++) {
			ssize_t n;

			if (!open_[k])
				continue;
			if (cap[k] - len[k] < 65536) {
				cap[k] = cap[k] ? cap[k] * 2 : 1 << 17;
				buf[k] = realloc(buf[k], cap[k]);
				ck_assert_ptr_nonnull(buf[k]);
			}
			if (!wait_readable(fds[k], open_[!k] ? 10 : 30000)) {
				ck_assert_msg(open_[!k], "hasp wrote nothing for 30 s");
				continue;
			}
			n = read(fds[k], buf[k] + len[k], cap[k] - len[k] - 1);
			if (n <= 0)
				open_[k] = false;
			else
				len[k] += (size_t)n;
		}
	}
	close(o[0]);
	close(e[0]);
	status = wait_child(pid, 30000);
	ck_assert(WIFEXITED(status));
	for (int k = 0; k < 2; k++)
		if (buf[k])
			buf[k][len[k]] = '\0';
	*out = buf[0] ? buf[0] : strdup("");
	if (err)
		*err = buf[1] ? buf[1] : strdup("");
	return WEXITSTATUS(status);
}

#define RUN(out, err, ...) cli_run((char *const[]){ "hasp", __VA_ARGS__, NULL }, out, err)

static size_t count_char(const char *s, char c)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

/* No byte that a terminal would act on: C0 controls but the newline, DEL,
 * and C1 controls (U+0080..U+009F, as UTF-8 C2 80..C2 9F). */
static void assert_terminal_safe(const char *what, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		ck_assert_msg((*p >= 0x20 || *p == '\n') && *p != 0x7f,
			      "%s has a raw control byte %#x at %zu: %s", what, *p,
			      (size_t)(p - (const unsigned char *)s), s);
		ck_assert_msg(!(p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0),
			      "%s has a raw C1 control at %zu: %s", what,
			      (size_t)(p - (const unsigned char *)s), s);
	}
}

/* ---- names that are not UTF-8 ---- */

/* One lease on a file whose name is not UTF-8 broke every list: jansson
 * refused the name and the asking session was dropped. The name is shown
 * with U+FFFD; the file can be locked through libhasp and hasp. */
START_TEST(a_name_that_is_not_utf8_is_shown_with_fffd)
{
	char path[256], shown[256], *text = NULL, *out = NULL, *err = NULL;
	hasp_client *holder = client_connect(daemon_.socket);
	hasp_client *other = client_connect(daemon_.socket);
	struct conn raw;
	hasp_lease *l = NULL;
	json_t *reply, *res;
	size_t i;

	snprintf(path, sizeof(path), "%s/bad-\xff.lock", daemon_.dir);
	snprintf(shown, sizeof(shown), "%s/bad-\xef\xbf\xbd.lock", daemon_.dir);
	ck_assert_msg(hasp_lock_file(holder, path, NULL, &l) == 0, "lock: %s",
		      hasp_client_errmsg(holder));
	ck_assert_str_eq(hasp_lease_key(l), path);
	/* A raw session lists it, and is still served. */
	conn_open(&raw);
	reply = list_page(&raw, "", NULL);
	res = json_object_get(reply, "resources");
	ck_assert_int_eq(json_array_size(res), 1);
	ck_assert_str_eq(name_of(json_array_get(res, 0)), shown);
	json_decref(reply);
	json_decref(conn_call(&raw, 7, "{\"id\":7,\"op\":\"ping\"}\n", NULL));
	/* libhasp's list, and hasp's, from other sessions. */
	ck_assert_int_eq(hasp_list_json(other, &text), 0);
	res = json_loads(text, 0, NULL);
	ck_assert_str_eq(name_of(json_array_get(res, 0)), shown);
	json_decref(res);
	free(text);
	ck_assert_int_eq(RUN(&out, NULL, "ls"), 0);
	ck_assert_msg(strstr(out, "bad-\xef\xbf\xbd.lock"), "hasp ls: %s", out);
	free(out);
	/* hasp addresses that file by its name too: it is held. */
	ck_assert_int_eq(RUN(&out, &err, "lock", "--verbose", "-n", path, "-c", "true"), 1);
	ck_assert_msg(strstr(err, "held by pid"), "hasp lock -n: %s", err);
	assert_terminal_safe("hasp lock's error", err);
	free(out);
	free(err);
	/* The holder's session lives on, with its lease. */
	ck_assert_int_eq(hasp_ping(holder), 0);
	ck_assert_int_eq(hasp_lease_revoked(holder, l), 0);
	ck_assert_int_eq(hasp_unlock(holder, l), 0);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(hasp_ping(i ? other : holder), 0);
	conn_close(&raw);
	hasp_close(holder);
	hasp_close(other);
	unlink(path);
}
END_TEST

/* ---- paging ---- */

/* owner and message members at their limits, of characters JSON escapes:
 * about 2.6 KB per holder in a list. */
static void long_extra(char *extra)
{
	char *p = extra;

	p += sprintf(p, ",\"owner\":\"");
	for (int i = 0; i < 256 / 2; i++)
		p += sprintf(p, "\\\"\\\\");
	p += sprintf(p, "\",\"message\":\"");
	for (int i = 0; i < 1024 / 2; i++)
		p += sprintf(p, "\\\"\\\\");
	sprintf(p, "\"");
}

/* 7,000 leases with the longest owner and message, both of characters that
 * JSON escapes, make about 20 MB of list: once one reply, past the 16 MiB
 * of unread output that ends a session, so the asking session was ended
 * and lost its leases. Now pages stop at 4 MiB, even with the largest
 * limit: the asker sees every lease, in order, and keeps its session. */
START_TEST(seven_thousand_long_leases_page_and_the_asker_survives)
{
	enum { N = 7000 };
	char extra[4096], *last = NULL, after[512] = "";
	struct conn holder, asker;
	hasp_client *c = client_connect(daemon_.socket);
	hasp_lease *mine = client_lock(c, "asker's own", HASP_EXCLUSIVE);
	size_t seen = 0, pages = 0, total = 0, len;
	char *text = NULL;
	json_t *all;

	long_extra(extra);
	conn_open(&holder);
	conn_open(&asker);
	acquire_many(&holder, "long-", 5, N, extra);
	/* The asker holds something of its own, which must outlive the list. */
	json_decref(conn_call(&asker, 1, "{\"id\":1,\"op\":\"acquire\",\"key\":\"held-by-asker\"}\n",
			      NULL));
	do {
		char args[600];
		json_t *reply, *res, *r;
		const char *next;
		size_t i;

		snprintf(args, sizeof(args), "\"limit\":10000%s%s%s", *after ? ",\"after\":\"" : "",
			 after, *after ? "\"" : "");
		reply = list_page(&asker, args, &len);
		/* Far below the 16 MiB that would end the session. */
		ck_assert_msg(len < (5u << 20), "a list reply of %zu bytes", len);
		total += len;
		res = json_object_get(reply, "resources");
		json_array_foreach(res, i, r) {
			const char *name = name_of(r);
			json_t *h = json_array_get(json_object_get(r, "holders"), 0);

			if (last)
				ck_assert_msg(strcmp(last, name) < 0, "'%s' after '%s'", name, last);
			free(last);
			last = strdup(name);
			if (strncmp(name, "long-", 5) == 0) {
				seen++;
				ck_assert_int_eq(strlen(json_string_value(json_object_get(h, "owner"))),
						 256);
				ck_assert_int_eq(strlen(json_string_value(json_object_get(h, "message"))),
						 1024);
			}
		}
		next = json_string_value(json_object_get(reply, "next"));
		ck_assert_msg(!next || strlen(next) < sizeof(after), "next too long");
		snprintf(after, sizeof(after), "%s", next ? next : "");
		json_decref(reply);
		pages++;
	} while (*after);
	ck_assert_int_eq(seen, N);
	ck_assert_msg(total > (16u << 20), "only %zu bytes listed: not a test of the hard limit",
		      total);
	ck_assert_msg(pages >= 4, "%zu pages", pages);
	/* Both sessions are served still, the asker's lease with it. */
	json_decref(conn_call(&asker, 2, "{\"id\":2,\"op\":\"ping\"}\n", NULL));
	json_decref(conn_call(&holder, N + 1, "{\"id\":7001,\"op\":\"ping\"}\n", NULL));
	ck_assert_int_eq(stats_gauge(c, "leases"), N + 2);
	/* libhasp pages through it all. */
	ck_assert_int_eq(hasp_list_json(c, &text), 0);
	all = json_loads(text, 0, NULL);
	ck_assert_int_eq(json_array_size(all), N + 2);
	json_decref(all);
	free(text);
	ck_assert_int_eq(hasp_lease_revoked(c, mine), 0);
	hasp_lease_free(mine);
	free(last);
	conn_close(&holder);
	conn_close(&asker);
	hasp_close(c);
}
END_TEST

/* One resource whose holders alone pass 4 MiB (1,600 sessions share it) is
 * cut, and says how many holders it leaves out; a group of files all shown
 * under one name (g-U+FFFD: one byte of 0x80..0xff each) passing 8 MiB is
 * cut too, and says how many resources it leaves out. No reply passes
 * 9 MiB, and the asker is served on. */
START_TEST(huge_resources_and_groups_are_cut_not_the_session)
{
	enum { SHARERS = 1600, FILES = 128, SESSIONS = 32 };
	static int fds[SHARERS];
	char extra[4096], line[8192], path[256], group[256], args[600];
	struct conn asker, s[SESSIONS];
	json_t *r, *res, *big;
	size_t len;

	long_extra(extra);
	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"key\":\"big\","
		 "\"mode\":\"shared\"%s}\n", extra);
	for (int i = 0; i < SHARERS; i++) {
		fds[i] = raw_connect(daemon_.socket);
		raw_send(fds[i], line);
	}
	for (int i = 0; i < SHARERS; i++) {
		r = raw_recv(fds[i], 10000);
		ck_assert_msg(r && !reply_error(r), "sharer %d: %s", i, reply_message(r));
		json_decref(r);
	}
	conn_open(&asker);
	r = list_page(&asker, "\"prefix\":\"big\"", &len);
	ck_assert_msg(len < (9u << 20), "a reply of %zu bytes", len);
	big = json_array_get(json_object_get(r, "resources"), 0);
	ck_assert_str_eq(name_of(big), "big");
	ck_assert_int_gt(json_integer_value(json_object_get(big, "holders_omitted")), 0);
	ck_assert_int_eq(json_array_size(json_object_get(big, "holders")) +
			 json_integer_value(json_object_get(big, "holders_omitted")), SHARERS);
	ck_assert_ptr_null(json_object_get(big, "waiters_omitted"));
	json_decref(r);
	for (int i = 0; i < SHARERS; i++)
		close(fds[i]);
	/* The group: SESSIONS sessions share each of the FILES files. */
	snprintf(line, sizeof(line), "{\"id\":1,\"op\":\"acquire\",\"path\":\"/x\",\"fd\":true,"
		 "\"mode\":\"shared\"%s}\n", extra);
	for (int k = 0; k < SESSIONS; k++) {
		conn_open(&s[k]);
		for (int b = 0; b < FILES; b++) {
			int fd;

			snprintf(path, sizeof(path), "%s/g-%c", daemon_.dir, (char)(0x80 + b));
			fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
			ck_assert_int_ge(fd, 0);
			raw_send_fd(s[k].fd, line, fd);
			close(fd);
		}
		for (int b = 0; b < FILES; b++)
			json_decref(conn_reply(&s[k], 1, NULL));
	}
	snprintf(args, sizeof(args), "{\"id\":2,\"op\":\"acquire\",\"key\":\"%s/zz\"}\n",
		 daemon_.dir);
	json_decref(conn_call(&asker, 2, args, NULL));
	snprintf(group, sizeof(group), "%s/g-\xef\xbf\xbd", daemon_.dir);
	snprintf(args, sizeof(args), "\"prefix\":\"%s/\"", daemon_.dir);
	r = list_page(&asker, args, &len);
	ck_assert_msg(len < (9u << 20), "a reply of %zu bytes", len);
	res = json_object_get(r, "resources");
	ck_assert_int_gt(json_integer_value(json_object_get(r, "omitted")), 0);
	ck_assert_int_eq(json_array_size(res) + json_integer_value(json_object_get(r, "omitted")),
			 FILES);
	for (size_t i = 0; i < json_array_size(res); i++)
		ck_assert_str_eq(name_of(json_array_get(res, i)), group);
	ck_assert_str_eq(json_string_value(json_object_get(r, "next")), group);
	json_decref(r);
	snprintf(args, sizeof(args), "\"prefix\":\"%s/\",\"after\":\"%s\"", daemon_.dir, group);
	snprintf(line, sizeof(line), "%s/zz", daemon_.dir);
	PAGE_IS(&asker, args, line);
	json_decref(conn_call(&asker, 3, "{\"id\":3,\"op\":\"ping\"}\n", NULL));
	for (int k = 0; k < SESSIONS; k++)
		conn_close(&s[k]);
	for (int b = 0; b < FILES; b++) {
		snprintf(path, sizeof(path), "%s/g-%c", daemon_.dir, (char)(0x80 + b));
		unlink(path);
	}
	conn_close(&asker);
}
END_TEST

START_TEST(prefix_after_limit_and_next)
{
	struct conn c;
	char many[32];
	hasp_client *h = client_connect(daemon_.socket);
	hasp_lease *l;
	char path[256], args[600];

	conn_open(&c);
	acquire_many(&c, "a/", 1, 3, "");
	json_decref(conn_call(&c, 11, "{\"id\":11,\"op\":\"acquire\",\"key\":\"b\"}\n", NULL));
	json_decref(conn_call(&c, 12, "{\"id\":12,\"op\":\"acquire\",\"key\":\"B\"}\n", NULL));
	json_decref(conn_call(&c, 13, "{\"id\":13,\"op\":\"acquire\",\"key\":\"\xc3\xa9\"}\n", NULL));
	json_decref(conn_call(&c, 14, "{\"id\":14,\"op\":\"acquire\",\"key\":\"a\"}\n", NULL));
	/* Byte order of the names; no next on the last page. */
	PAGE_IS(&c, "", "B,a,a/0,a/1,a/2,b,\xc3\xa9");
	PAGE_IS(&c, "\"limit\":null,\"prefix\":null,\"after\":null", "B,a,a/0,a/1,a/2,b,\xc3\xa9");
	PAGE_IS(&c, "\"prefix\":\"a/\"", "a/0,a/1,a/2");
	PAGE_IS(&c, "\"prefix\":\"a\"", "a,a/0,a/1,a/2");
	PAGE_IS(&c, "\"prefix\":\"\"", "B,a,a/0,a/1,a/2,b,\xc3\xa9");
	PAGE_IS(&c, "\"prefix\":\"c\"", "");
	/* limit and next, and after strictly after. */
	PAGE_IS(&c, "\"prefix\":\"a/\",\"limit\":2", "a/0,a/1|a/1");
	PAGE_IS(&c, "\"prefix\":\"a/\",\"limit\":2,\"after\":\"a/1\"", "a/2");
	PAGE_IS(&c, "\"prefix\":\"a/\",\"limit\":3", "a/0,a/1,a/2");
	PAGE_IS(&c, "\"limit\":1", "B|B");
	PAGE_IS(&c, "\"limit\":1,\"after\":\"B\"", "a|a");
	PAGE_IS(&c, "\"after\":\"a/\"", "a/0,a/1,a/2,b,\xc3\xa9");
	PAGE_IS(&c, "\"after\":\"a/2\",\"limit\":2", "b,\xc3\xa9");
	PAGE_IS(&c, "\"after\":\"\xc3\xa9\"", "");
	PAGE_IS(&c, "\"after\":\"\\u00e9\"", ""); /* the same, through jansson */
	/* A file whose path is also a key: one name, never split by a page's
	 * end, even with limit 1; the key first. */
	snprintf(path, sizeof(path), "%s/same", daemon_.dir);
	l = NULL;
	ck_assert_int_eq(hasp_lock_file(h, path, NULL, &l), 0);
	l = hasp_lease_free(l);
	snprintf(args, sizeof(args), "{\"id\":15,\"op\":\"acquire\",\"key\":\"%s\"}\n", path);
	json_decref(conn_call(&c, 15, args, NULL));
	json_decref(conn_call(&c, 16, "{\"id\":16,\"op\":\"acquire\",\"key\":\"/0\"}\n", NULL));
	{
		json_t *r = list_page(&c, "\"limit\":1,\"after\":\"/0\"", NULL);
		json_t *res = json_object_get(r, "resources");

		ck_assert_int_eq(json_array_size(res), 2);
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(res, 0), "key")),
				 path);
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(res, 1), "path")),
				 path);
		ck_assert_str_eq(json_string_value(json_object_get(r, "next")), path);
		json_decref(r);
	}
	snprintf(args, sizeof(args), "\"limit\":1,\"after\":\"%s\"", path);
	PAGE_IS(&c, args, "B|B");
	/* A page that would end inside the group ends before it. */
	PAGE_IS(&c, "\"limit\":2,\"after\":\"/\"", "/0|/0");
	snprintf(args, sizeof(args), "\"limit\":2,\"after\":\"/0\"");
	{
		json_t *r = list_page(&c, args, NULL);
		char *s = page_str(r);
		char want[800];

		snprintf(want, sizeof(want), "%s,%s|%s", path, path, path);
		ck_assert_str_eq(s, want);
		free(s);
		json_decref(r);
	}
	/* The default limit is 1000. */
	acquire_many(&c, "many-", 4, 1001, "");
	PAGE_IS(&c, "\"prefix\":\"many-\",\"after\":\"many-0999\"", "many-1000");
	{
		json_t *r = list_page(&c, "\"prefix\":\"many-\"", NULL);

		ck_assert_int_eq(json_array_size(json_object_get(r, "resources")), 1000);
		snprintf(many, sizeof(many), "%s", json_string_value(json_object_get(r, "next")));
		ck_assert_str_eq(many, "many-0999");
		json_decref(r);
	}
	PAGE_IS(&c, "\"prefix\":\"many-\",\"limit\":10000,\"after\":\"many-0998\"",
		"many-0999,many-1000");
	conn_close(&c);
	hasp_close(h);
	unlink(path);
}
END_TEST

/* Wrong types and ranges are bad requests, through the fast reader and
 * through jansson (a \u escape), and the session goes on. */
START_TEST(list_arguments_are_checked)
{
	static const char *const bad[] = {
		"\"limit\":0", "\"limit\":10001", "\"limit\":-1", "\"limit\":\"5\"",
		"\"limit\":1.5", "\"limit\":true", "\"limit\":[1]", "\"prefix\":5",
		"\"prefix\":true", "\"prefix\":{}", "\"after\":1", "\"after\":[\"a\"]",
		"\"limit\":\"\\u0035\"", "\"prefix\":7,\"x\":\"\\u0041\"",
	};
	struct conn c;
	char line[256];

	conn_open(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *r;

		snprintf(line, sizeof(line), "{\"id\":%zu,\"op\":\"list\",%s}\n", i + 1, bad[i]);
		r = conn_call(&c, (int64_t)i + 1, line, NULL);
		ck_assert_msg(reply_error(r) && strcmp(reply_error(r), "bad_request") == 0,
			      "%s was not a bad_request", bad[i]);
		json_decref(r);
	}
	PAGE_IS(&c, "\"limit\":10000", "");
	PAGE_IS(&c, "\"limit\":1", "");
	conn_close(&c);
}
END_TEST

/* ---- libhasp ---- */

START_TEST(libhasp_pages_through)
{
	struct hasp_list_options o = HASP_LIST_OPTIONS_INIT;
	hasp_client *c = client_connect(daemon_.socket);
	char *text = NULL, *next = NULL;
	struct conn holder;
	json_t *a;

	conn_open(&holder);
	acquire_many(&holder, "k-", 4, 2500, "");
	/* All of it, through three pages. */
	ck_assert_int_eq(hasp_list_json(c, &text), 0);
	a = json_loads(text, 0, NULL);
	ck_assert_int_eq(json_array_size(a), 2500);
	ck_assert_str_eq(name_of(json_array_get(a, 0)), "k-0000");
	ck_assert_str_eq(name_of(json_array_get(a, 2499)), "k-2499");
	json_decref(a);
	free(text);
	/* One page at a time. */
	o.prefix = "k-1";
	o.limit = 600;
	ck_assert_int_eq(hasp_list_page_json(c, &o, &text, &next), 0);
	a = json_loads(text, 0, NULL);
	ck_assert_int_eq(json_array_size(a), 600);
	ck_assert_str_eq(name_of(json_array_get(a, 0)), "k-1000");
	ck_assert_str_eq(next, "k-1599");
	json_decref(a);
	free(text);
	o.after = next;
	ck_assert_int_eq(hasp_list_page_json(c, &o, &text, &next), 0);
	free((char *)o.after);
	a = json_loads(text, 0, NULL);
	ck_assert_int_eq(json_array_size(a), 400);
	ck_assert_ptr_null(next);
	json_decref(a);
	free(text);
	/* NULL options: the first page of everything. */
	ck_assert_int_eq(hasp_list_page_json(c, NULL, &text, &next), 0);
	a = json_loads(text, 0, NULL);
	ck_assert_int_eq(json_array_size(a), 1000);
	ck_assert_str_eq(next, "k-0999");
	json_decref(a);
	free(text);
	free(next);
	/* Errors: not UTF-8, a limit out of range, a size not set. */
	text = next = NULL;
	o.after = NULL;
	o.prefix = "k-\xff";
	ck_assert_int_eq(hasp_list_page_json(c, &o, &text, &next), -EINVAL);
	o.prefix = NULL;
	o.limit = 10001;
	ck_assert_int_eq(hasp_list_page_json(c, &o, &text, &next), -HASP_E_BAD_REQUEST);
	o.size = 0;
	ck_assert_int_eq(hasp_list_page_json(c, &o, &text, &next), -EINVAL);
	ck_assert_ptr_null(text);
	ck_assert_ptr_null(next);
	/* An older caller's smaller struct: the rest at its defaults. */
	o.size = sizeof(size_t) + sizeof(const char *);
	o.prefix = "k-24";
	ck_assert_int_eq(hasp_list_page_json(c, &o, &text, &next), 0);
	a = json_loads(text, 0, NULL);
	ck_assert_int_eq(json_array_size(a), 100);
	json_decref(a);
	free(text);
	ck_assert_ptr_null(next);
	ck_assert_int_eq(hasp_ping(c), 0);
	conn_close(&holder);
	hasp_close(c);
}
END_TEST

/* ---- hasp ls ---- */

START_TEST(hasp_ls_pages_and_filters)
{
	struct conn holder;
	char *out = NULL, *err = NULL;
	json_t *a;

	conn_open(&holder);
	acquire_many(&holder, "k-", 4, 2500, "");
	ck_assert_int_eq(RUN(&out, NULL, "ls"), 0);
	ck_assert_int_eq(count_char(out, '\n'), 2501); /* a header, and a row each */
	ck_assert_ptr_nonnull(strstr(out, "\nk-0000 "));
	ck_assert_ptr_nonnull(strstr(out, "\nk-2499 "));
	ck_assert(strstr(out, "\nk-0999 ") < strstr(out, "\nk-1000 "));
	free(out);
	ck_assert_int_eq(RUN(&out, NULL, "ls", "--prefix", "k-20"), 0);
	ck_assert_int_eq(count_char(out, '\n'), 101);
	ck_assert_ptr_null(strstr(out, "\nk-1999 "));
	free(out);
	ck_assert_int_eq(RUN(&out, NULL, "ls", "-p", "zz"), 0);
	ck_assert_ptr_nonnull(strstr(out, "nothing held or awaited under 'zz'"));
	free(out);
	ck_assert_int_eq(RUN(&out, NULL, "ls", "--json"), 0);
	a = json_loads(out, 0, NULL);
	ck_assert_msg(a, "not JSON");
	ck_assert_int_eq(json_array_size(a), 2500);
	json_decref(a);
	free(out);
	ck_assert_int_eq(RUN(&out, NULL, "ls", "--json", "--prefix", "k-249"), 0);
	a = json_loads(out, 0, NULL);
	ck_assert_int_eq(json_array_size(a), 10);
	json_decref(a);
	free(out);
	ck_assert_int_eq(RUN(&out, &err, "ls", "--bogus"), 64);
	free(out);
	free(err);
	ck_assert_int_eq(RUN(&out, NULL, "ls", "--help"), 0);
	ck_assert_ptr_nonnull(strstr(out, "--prefix"));
	free(out);
	conn_close(&holder);
}
END_TEST

/* A key with ESC[2J, a CR and a newline, an owner with a C1 control (CSI,
 * U+009B) and a message with DEL and a tab used to reach the terminal raw:
 * they cleared the screen, overwrote a row, and forged a "root" row. */
#define EVIL_KEY "evil\x1b[2J\rroot\nfake"
#define EVIL_JSON_KEY "evil\\u001b[2J\\rroot\\nfake"

START_TEST(hasp_ls_escapes_client_text)
{
	struct conn holder;
	char *out = NULL, *err = NULL;
	json_t *a;

	conn_open(&holder);
	json_decref(conn_call(&holder, 1, "{\"id\":1,\"op\":\"acquire\",\"key\":\"" EVIL_JSON_KEY "\","
			      "\"owner\":\"o\\u009bx\",\"message\":\"m\\u007f\\tn\\\\e\"}\n", NULL));
	json_decref(conn_call(&holder, 2, "{\"id\":2,\"op\":\"acquire\",\"key\":\"plain\"}\n", NULL));
	ck_assert_int_eq(RUN(&out, NULL, "ls"), 0);
	assert_terminal_safe("hasp ls", out);
	ck_assert_int_eq(count_char(out, '\n'), 3); /* a header and two rows */
	ck_assert_msg(strstr(out, "evil\\e[2J\\rroot\\nfake "), "%s", out);
	ck_assert_msg(strstr(out, "o\\xc2\\x9bx "), "%s", out);
	ck_assert_msg(strstr(out, "m\\x7f\\tn\\\\e\n"), "%s", out);
	free(out);
	/* --json stays JSON, in ASCII. */
	ck_assert_int_eq(RUN(&out, NULL, "ls", "--json"), 0);
	assert_terminal_safe("hasp ls --json", out);
	ck_assert_int_eq(count_char(out, '\n'), 1);
	a = json_loads(out, 0, NULL);
	ck_assert_str_eq(name_of(json_array_get(a, 0)), EVIL_KEY);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(
		json_array_get(a, 0), "holders"), 0), "owner")), "o\xc2\x9bx");
	json_decref(a);
	free(out);
	/* The daemon's error quotes the key (said with --verbose): hasp escapes it. */
	ck_assert_int_eq(RUN(&out, &err, "lock", "--verbose", "-n", "-k", EVIL_KEY, "-c", "true"), 1);
	assert_terminal_safe("hasp lock's error", err);
	ck_assert_msg(strstr(err, "'evil\\e[2J\\rroot\\nfake' is held"), "%s", err);
	ck_assert_int_eq(count_char(err, '\n'), 1);
	free(out);
	free(err);
	conn_close(&holder);
}
END_TEST

/* On a terminal, hasp lock says after a second whom it waits for: the
 * holder's owner is client text, escaped there too. */
START_TEST(lock_waiting_message_is_escaped)
{
	struct conn holder;
	struct termios raw_tty;
	int master, status;
	char buf[8192] = "";
	pid_t pid;

	conn_open(&holder);
	json_decref(conn_call(&holder, 1, "{\"id\":1,\"op\":\"acquire\",\"key\":\"" EVIL_JSON_KEY "\","
			      "\"owner\":\"\\u001b]0;pwned\\u0007\\r\\n\"}\n", NULL));
	/* Raw: what hasp writes arrives unchanged (no \n to \r\n). */
	memset(&raw_tty, 0, sizeof(raw_tty));
	cfmakeraw(&raw_tty);
	pid = forkpty(&master, NULL, &raw_tty, NULL);
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execl(cli_path(), "hasp", "lock", "-w", "30", "-k", EVIL_KEY, "-c", "true",
		      (char *)NULL);
		_exit(127);
	}
	ck_assert_msg(wait_output(master, "s)\n", 10000, buf, sizeof(buf)),
		      "no waiting message: %s", buf);
	ck_assert_msg(strstr(buf, "waiting for 'evil\\e[2J\\rroot\\nfake', held by pid"), "%s", buf);
	ck_assert_msg(strstr(buf, "(\\e]0;pwned\\x07\\r\\n, exclusive"), "%s", buf);
	assert_terminal_safe("hasp lock's waiting message", buf);
	ck_assert_int_eq(count_char(buf, '\n'), 1);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(master);
	conn_close(&holder);
}
END_TEST

static Suite *list_suite(void)
{
	Suite *s = suite_create("list");
	TCase *tc = tcase_create("list");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, a_name_that_is_not_utf8_is_shown_with_fffd);
	tcase_add_test(tc, seven_thousand_long_leases_page_and_the_asker_survives);
	tcase_add_test(tc, huge_resources_and_groups_are_cut_not_the_session);
	tcase_add_test(tc, prefix_after_limit_and_next);
	tcase_add_test(tc, list_arguments_are_checked);
	tcase_add_test(tc, libhasp_pages_through);
	tcase_add_test(tc, hasp_ls_pages_and_filters);
	tcase_add_test(tc, hasp_ls_escapes_client_text);
	tcase_add_test(tc, lock_waiting_message_is_escaped);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(list_suite());
}
