#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "durable.h"
#include "wire.h"

#define JOURNAL_PATH_MAX 4096

/* ---- writing ---- */

/* One record as a line, written at the end (journal_sync() syncs it); on
 * failure the file is cut back to what it was, so that no half record
 * stays. */
static int journal_append(struct journal *j, json_t *rec)
{
	size_t len = 0;
	char *line = proto_dump_line(rec, &len);
	ssize_t w;
	int r = 0;

	if (!line)
		return -ENOMEM;
	w = pwrite(j->fd, line, len, j->size);
	if (w != (ssize_t)len)
		r = w < 0 ? -errno : -ENOSPC;
	free(line);
	if (r < 0) {
		if (ftruncate(j->fd, j->size) < 0) {
			/* Then the cut-short line is the last, and skipped. */
		}
		return r;
	}
	j->size += (off_t)len;
	j->records++;
	j->unsynced = true;
	return 0;
}

int journal_sync(struct journal *j)
{
	if (!j->unsynced)
		return 0;
	if (fdatasync(j->fd) < 0)
		return -errno;
	j->unsynced = false;
	return 0;
}

/* An unsigned 64-bit number as a JSON string: dev and ino may not fit in
 * jansson's signed integers. */
static json_t *u64_string(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

static int set_opt_string(json_t *o, const char *name, const char *s)
{
	return s ? json_object_set_new(o, name, json_string(s)) : 0;
}

/* The record's name: the key, or the path in hex (any bytes). */
static int set_name(json_t *o, const struct journal_checkout *c)
{
	size_t n;
	char *hex;
	int r;

	if (c->key)
		return json_object_set_new(o, "key", json_stringn(c->key, c->key_len));
	n = strlen(c->path);
	hex = malloc(2 * n + 1);
	if (!hex)
		return -1;
	proto_hex_encode(hex, (const unsigned char *)c->path, n);
	r = json_object_set_new(o, "path_hex", json_string(hex));
	free(hex);
	if (r == 0)
		r = json_object_set_new(o, "dev", u64_string(c->dev));
	if (r == 0 && c->btime_ns)
		r = json_object_set_new(o, "btime_ns", u64_string(c->btime_ns));
	return r == 0 ? json_object_set_new(o, "ino", u64_string(c->ino)) : r;
}

static json_t *checkout_record(const struct journal_checkout *c)
{
	char token[2 * JOURNAL_TOKEN_LEN + 1];
	json_t *o;

	proto_hex_encode(token, c->token, JOURNAL_TOKEN_LEN);
	o = json_pack("{s:s,s:I,s:I,s:s,s:i,s:I,s:I,s:I,s:s}", "op", "checkout",
		      "lease", (json_int_t)c->lease, "fence", (json_int_t)c->fence,
		      "mode", c->shared ? "shared" : "exclusive", "pid", (int)c->pid,
		      "uid", (json_int_t)c->uid, "gid", (json_int_t)c->gid,
		      "granted_us", (json_int_t)c->granted_wall_us, "token", token);
	if (!o || set_name(o, c) < 0 || set_opt_string(o, "owner", c->owner) < 0 ||
	    set_opt_string(o, "message", c->message) < 0 ||
	    (c->ttl_ms && (json_object_set_new(o, "ttl_ms", json_integer((json_int_t)c->ttl_ms)) < 0 ||
			   json_object_set_new(o, "expires_us",
					       json_integer((json_int_t)c->expires_wall_us)) < 0))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int journal_checkout(struct journal *j, const struct journal_checkout *c)
{
	json_t *rec = checkout_record(c);

	return rec ? journal_append(j, rec) : -ENOMEM;
}

int journal_renew(struct journal *j, uint64_t lease, uint64_t ttl_ms, uint64_t expires_wall_us)
{
	json_t *rec = json_pack("{s:s,s:I,s:I,s:I}", "op", "renew", "lease", (json_int_t)lease,
				"ttl_ms", (json_int_t)ttl_ms, "expires_us", (json_int_t)expires_wall_us);

	return rec ? journal_append(j, rec) : -ENOMEM;
}

int journal_end(struct journal *j, uint64_t lease)
{
	json_t *rec = json_pack("{s:s,s:I}", "op", "end", "lease", (json_int_t)lease);

	return rec ? journal_append(j, rec) : -ENOMEM;
}

int journal_rewrite(struct journal *j, const char *path, uint64_t last_lease,
		    int (*fill)(struct journal *next, void *arg), void *arg)
{
	struct journal next = { .fd = -1 };
	char tmp[JOURNAL_PATH_MAX + 8];
	json_t *ids;
	int r;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	next.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (next.fd < 0)
		return -errno;
	ids = json_pack("{s:s,s:I}", "op", "ids", "lease", (json_int_t)last_lease);
	r = ids ? journal_append(&next, ids) : -ENOMEM;
	if (r == 0)
		r = fill(&next, arg);
	if (r == 0 && fsync(next.fd) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		journal_close(&next);
		return r;
	}
	/* Renamed: the new file is the journal, whether or not its name is on
	 * disk yet (the next rewrite tries that again). */
	journal_close(j);
	next.unsynced = false;
	*j = next;
	return durable_sync_dir(path);
}

void journal_close(struct journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	j->size = 0;
	j->records = 0;
}

/* ---- reading ---- */

struct reader {
	const char *path;
	unsigned line;
	char *err;
	size_t n;
	json_t *live;           /* lease id (text) -> its checkout record, in order */
	struct journal_found *found;
};

static int bad(struct reader *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct reader *rd, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(rd->err, rd->n, "%s:%u: %s", rd->path, rd->line, what);
	return -EBADMSG;
}

static bool get_uint(json_t *o, const char *name, uint64_t min, uint64_t *ret)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < min)
		return false;
	*ret = (uint64_t)json_integer_value(v);
	return true;
}

static bool get_u64_text(json_t *o, const char *name, uint64_t *ret)
{
	const char *s = json_string_value(json_object_get(o, name));
	char *end;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*ret = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* An optional string member: absent is NULL. */
static bool get_opt_text(json_t *o, const char *name, const char **ret)
{
	json_t *v = json_object_get(o, name);

	*ret = json_string_value(v);
	return !v || *ret;
}

/* The path of a file checkout, decoded into *ret (malloc'ed). */
static bool get_path(json_t *o, char **ret)
{
	const char *hex = json_string_value(json_object_get(o, "path_hex"));
	size_t len = hex ? strlen(hex) : 0;
	char *path;

	if (len < 2 || len > 2 * JOURNAL_PATH_MAX || len % 2)
		return false;
	path = malloc(len / 2 + 1);
	if (!path)
		return false;
	if (proto_hex_decode((unsigned char *)path, hex, len, len / 2) < 0 || path[0] != '/' ||
	    memchr(path, '\0', len / 2)) {
		free(path);
		return false;
	}
	path[len / 2] = '\0';
	*ret = path;
	return true;
}

/* A checkout record read back; *path is malloc'ed for a file's. */
static bool decode_checkout(json_t *o, struct journal_checkout *c, char **path)
{
	const char *mode = json_string_value(json_object_get(o, "mode"));
	const char *token = json_string_value(json_object_get(o, "token"));
	json_t *key = json_object_get(o, "key");
	uint64_t pid, uid, gid;

	memset(c, 0, sizeof(*c));
	*path = NULL;
	if (!get_uint(o, "lease", 1, &c->lease) || !get_uint(o, "fence", 1, &c->fence) ||
	    !mode || (strcmp(mode, "shared") && strcmp(mode, "exclusive")) ||
	    !get_uint(o, "pid", 0, &pid) || !get_uint(o, "uid", 0, &uid) ||
	    !get_uint(o, "gid", 0, &gid) || uid > UINT32_MAX || gid > UINT32_MAX ||
	    pid > INT32_MAX || !get_uint(o, "granted_us", 0, &c->granted_wall_us) || !token ||
	    proto_hex_decode(c->token, token, strlen(token), JOURNAL_TOKEN_LEN) < 0 ||
	    !get_opt_text(o, "owner", &c->owner) || !get_opt_text(o, "message", &c->message))
		return false;
	c->shared = strcmp(mode, "shared") == 0;
	c->pid = (pid_t)pid;
	c->uid = (uid_t)uid;
	c->gid = (gid_t)gid;
	if (json_object_get(o, "ttl_ms") &&
	    (!get_uint(o, "ttl_ms", 1, &c->ttl_ms) || !get_uint(o, "expires_us", 0, &c->expires_wall_us)))
		return false;
	if (key) {
		c->key = json_string_value(key);
		c->key_len = json_string_length(key);
		return c->key && c->key_len > 0;
	}
	if (!get_u64_text(o, "dev", &c->dev) || !get_u64_text(o, "ino", &c->ino) ||
	    (json_object_get(o, "btime_ns") && !get_u64_text(o, "btime_ns", &c->btime_ns)))
		return false;
	if (!get_path(o, path))
		return false;
	c->path = *path;
	return true;
}

static int replay_checkout(struct reader *rd, json_t *rec, const char *name)
{
	struct journal_checkout c;
	char *path;

	if (!decode_checkout(rec, &c, &path))
		return bad(rd, "a checkout record that is not whole or not valid");
	free(path);
	if (json_object_get(rd->live, name))
		return bad(rd, "lease %s is checked out twice", name);
	return json_object_set(rd->live, name, rec) < 0 ? -ENOMEM : 0;
}

static int replay_renew(struct reader *rd, json_t *rec, const char *name)
{
	json_t *co = json_object_get(rd->live, name);
	uint64_t ttl, expires;

	if (!co)
		return bad(rd, "a renew of lease %s, which is not checked out", name);
	if (!get_uint(rec, "ttl_ms", 1, &ttl) || !get_uint(rec, "expires_us", 0, &expires))
		return bad(rd, "a renew record that is not whole or not valid");
	if (json_object_set_new(co, "ttl_ms", json_integer((json_int_t)ttl)) < 0 ||
	    json_object_set_new(co, "expires_us", json_integer((json_int_t)expires)) < 0)
		return -ENOMEM;
	return 0;
}

static int replay(struct reader *rd, json_t *rec)
{
	const char *op = json_string_value(json_object_get(rec, "op"));
	char name[32];

	uint64_t lease;

	if (!json_is_object(rec) || !op || !get_uint(rec, "lease", 0, &lease))
		return bad(rd, "not a journal record");
	if (lease > rd->found->last_lease)
		rd->found->last_lease = lease;
	if (strcmp(op, "ids") == 0)
		return 0;
	if (lease == 0)
		return bad(rd, "a record of lease 0");
	snprintf(name, sizeof(name), "%" PRIu64, lease);
	if (strcmp(op, "checkout") == 0)
		return replay_checkout(rd, rec, name);
	if (strcmp(op, "renew") == 0)
		return replay_renew(rd, rec, name);
	if (strcmp(op, "end") != 0)
		return bad(rd, "an unknown record \"%.32s\"", op);
	if (json_object_del(rd->live, name) < 0)
		return bad(rd, "the end of lease %s, which is not checked out", name);
	return 0;
}

/* Every line of f, replayed; a last line without its newline, or that is
 * not JSON, is a write that a crash cut short (never acknowledged: nothing
 * was synced after it): skipped, and said in found->torn. */
static bool last_line(FILE *f)
{
	int c = getc(f);

	if (c == EOF)
		return true;
	ungetc(c, f);
	return false;
}

static int read_lines(struct reader *rd, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int r = 0;

	while (r == 0 && (len = getline(&line, &cap, f)) > 0) {
		json_error_t jerr;
		json_t *rec;

		rd->line++;
		if (line[len - 1] != '\n') {
			rd->found->torn = true;
			break;
		}
		rec = json_loadb(line, (size_t)len - 1, JSON_REJECT_DUPLICATES, &jerr);
		if (!rec && last_line(f)) { /* a write whose pages only partly reached the disk */
			rd->found->torn = true;
			break;
		}
		r = rec ? replay(rd, rec) : bad(rd, "not JSON: %s", jerr.text);
		json_decref(rec);
	}
	if (r == 0 && ferror(f))
		r = -errno;
	free(line);
	return r;
}

int journal_read(const char *path, void (*each)(const struct journal_checkout *c, void *arg),
		 void *arg, struct journal_found *ret, char *err, size_t n)
{
	struct reader rd = { path, 0, err, n, json_object(), ret };
	FILE *f = fopen(path, "re");
	const char *name;
	json_t *rec;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (!f) {
		json_decref(rd.live);
		if (errno == ENOENT)
			return 0;
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return -errno;
	}
	r = rd.live ? read_lines(&rd, f) : -ENOMEM;
	fclose(f);
	if (r == -ENOMEM)
		snprintf(err, n, "%s: out of memory", path);
	else if (r < 0 && r != -EBADMSG)
		snprintf(err, n, "%s: %s", path, strerror(-r));
	if (r == 0) {
		json_object_foreach(rd.live, name, rec) {
			struct journal_checkout c;
			char *file;

			decode_checkout(rec, &c, &file); /* valid: checked as read */
			each(&c, arg);
			free(file);
		}
	}
	json_decref(rd.live);
	return r;
}
