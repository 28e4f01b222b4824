#include "checkouts.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "changes.h"
#include "events.h"
#include "files.h"
#include "haspd.h"
#include "journal.h"
#include "log.h"
#include "oslock.h"
#include "proto-daemon.h"
#include "reply.h"
#include "report.h"
#include "session.h"
#include "users.h"

/* The journal is rewritten when it holds this many records more than twice
 * the checkouts. */
#define CHECKOUTS_SLACK 256

/* When a lease with a TTL expires, on the wall clock (µs). */
static uint64_t expires_wall_us(const struct haspd *d, const struct lt_life *life)
{
	return d->lt.wall_us + lt_life_left_us(&d->lt, life);
}

/* A held lease as the journal keeps it, with this token. */
static void record_of(const struct haspd *d, const struct lt_entry *e, const uint8_t *token,
		      struct journal_checkout *c)
{
	const struct lt_life *life = lt_entry_life(e);
	const struct lt_resource *r = e->res;
	struct lt_cred who = lt_entry_sender(e);

	memset(c, 0, sizeof(*c));
	c->lease = e->id;
	c->fence = e->fence;
	c->shared = e->mode == LT_SHARED;
	if (r->os) {
		const struct oslock *o = r->os;

		c->path = o->path;
		c->dev = o->dev;
		c->ino = o->ino;
		c->btime_ns = oslock_btime(o->fd);
	} else {
		c->key = r->key;
		c->key_len = r->key_len;
	}
	c->pid = who.pid;
	c->uid = who.uid;
	c->gid = who.gid;
	c->owner = lt_entry_owner_name(e);
	c->message = lt_entry_message(e);
	c->granted_wall_us = life->granted_wall_us;
	memcpy(c->token, token, JOURNAL_TOKEN_LEN);
	c->ttl_ms = life->ttl_ms;
	if (life->ttl_ms)
		c->expires_wall_us = expires_wall_us(d, life);
}

/* ---- the journal rewritten from the table ---- */

struct fill {
	struct haspd *d;
	struct journal *next;
	int err;
};

/* A resource's checkouts, in the order of its holders. */
static void fill_resource(struct lt_resource *r, void *arg)
{
	struct fill *f = arg;
	const struct list *pos;

	list_foreach(pos, &r->holders) {
		const struct lt_entry *e = container_of(pos, struct lt_entry, qnode);
		struct journal_checkout c;

		if (f->err || !lt_entry_detached(e))
			continue;
		record_of(f->d, e, lt_entry_life(e)->token, &c);
		f->err = journal_checkout(f->next, &c);
	}
}

static int fill_journal(struct journal *next, void *arg)
{
	struct fill f = { arg, next, 0 };

	locktable_foreach(&f.d->lt, fill_resource, &f);
	return f.err;
}

static int rewrite(struct haspd *d)
{
	return journal_rewrite(&d->journal, d->journal_path, d->lt.last_id, fill_journal, d);
}

/* A rewrite that failed is tried again a second later, not at every call,
 * and logged once until it works. */
#define CHECKOUTS_RETRY_US 1000000u

/* Rewrites the journal from the table (stale or grown), unless a failed
 * try was too recent: 0, or -errno. */
static int compact(struct haspd *d)
{
	int r;

	if (d->journal_failing && d->lt.now_us < d->journal_retry_us)
		return -EAGAIN;
	r = rewrite(d);
	if (r < 0) {
		if (!d->journal_failing)
			log_err("cannot rewrite the checkout journal %s: %s; trying again each second%s",
				d->journal_path, strerror(-r), d->journal_stale ?
				", and no checkout is granted meanwhile" : "");
		d->journal_failing = true;
		d->journal_retry_us = d->lt.now_us + CHECKOUTS_RETRY_US;
		return r;
	}
	if (d->journal_failing)
		log_info("the checkout journal %s is rewritten again", d->journal_path);
	d->journal_failing = false;
	d->journal_stale = false;
	return 0;
}

/* ---- restore at start ---- */

struct restore {
	struct haspd *d;
	size_t restored, dropped;
};

static void dropped(struct restore *rs, const struct journal_checkout *c, const char *why)
{
	rs->dropped++;
	log_warn("checkout %" PRIu64 " of '%s' (uid %u) is dropped: %s", c->lease,
		 c->key ? c->key : c->path, (unsigned)c->uid, why);
}

/* A file's resource for a checkout, or NULL (dropped, said). */
static struct lt_resource *restore_file(struct restore *rs, struct user *usr,
					const struct journal_checkout *c)
{
	const char *why = NULL;
	struct lt_resource *r = files_restore(rs->d, usr, c, &why);

	changes_apply(rs->d, NULL); /* a resource let go */
	if (!r)
		dropped(rs, c, why);
	return r;
}

/* Restores c for usr (held), or drops it. */
static void restore_held(struct restore *rs, struct user *usr, const struct journal_checkout *c,
			 struct lt_request *req, const struct lt_restore *how)
{
	struct haspd *d = rs->d;
	struct lt_resource *r = NULL;
	struct lt_entry *e;
	enum lt_result res;

	if (c->path) {
		r = restore_file(rs, usr, c);
		if (!r)
			return;
		req->key = r->key;
		req->key_len = r->key_len;
	}
	res = locktable_restore(&d->lt, &usr->checkouts, req, how, &e);
	changes_apply(d, NULL);
	if (res == LT_GRANTED)
		rs->restored++;
	else
		dropped(rs, c, res == LT_BUSY ? "it conflicts with a checkout restored before it" :
			"out of memory");
}

static void restore_one(const struct journal_checkout *c, void *arg)
{
	struct restore *rs = arg;
	struct haspd *d = rs->d;
	struct lt_cred who = { c->pid, c->uid, c->gid };
	struct lt_request req = {
		.key = c->key, .key_len = c->key_len,
		.mode = c->shared ? LT_SHARED : LT_EXCLUSIVE,
		.owner_name = c->owner, .message = c->message, .sender = &who,
		.ttl_ms = (int64_t)c->ttl_ms, .detach = true,
	};
	struct lt_restore how = {
		c->lease, c->fence, c->granted_wall_us,
		(int64_t)(c->expires_wall_us - d->lt.wall_us), c->token,
	};
	struct user *usr;

	if (c->ttl_ms && c->expires_wall_us <= d->lt.wall_us) {
		rs->dropped++;
		log_info("checkout %" PRIu64 " of '%s' (uid %u) expired while haspd was down",
			 c->lease, c->key ? c->key : c->path, (unsigned)c->uid);
		return;
	}
	usr = users_of(&d->users, c->uid);
	if (!usr) {
		dropped(rs, c, "out of memory");
		return;
	}
	users_hold(usr); /* a file let go may refund it meanwhile */
	restore_held(rs, usr, c, &req, &how);
	users_drop(&d->users, usr);
}

/* Moves an unreadable journal aside, for someone to look at. */
static void forget(const char *path)
{
	char aside[4200];

	snprintf(aside, sizeof(aside), "%s.unreadable", path);
	if (rename(path, aside) == 0)
		log_warn("started with --forget-checkouts: the journal is moved to %s, and its "
			 "checkouts are forgotten", aside);
	else
		log_warn("started with --forget-checkouts: cannot move the journal aside (%s); "
			 "it is replaced, and its checkouts are forgotten", strerror(errno));
}

int checkouts_open(struct haspd *d, const char *path, bool forget_unreadable)
{
	struct restore rs = { d, 0, 0 };
	struct journal_found found;
	char err[600];
	int r;

	if (!path) {
		log_warn("no journal_file and no StateDirectory: checkouts (detached leases) are off");
		return 0;
	}
	d->journal_path = strdup(path);
	if (!d->journal_path) {
		log_err("out of memory");
		return -1;
	}
	haspd_tick(d);
	r = journal_read(path, restore_one, &rs, &found, err, sizeof(err));
	if (r < 0 && !forget_unreadable) {
		log_err("cannot read the checkout journal, %s; not starting, since forgetting a "
			"checkout would let two holders in (haspd --forget-checkouts starts anyway, "
			"without them)", err);
		return -1;
	}
	if (r < 0)
		forget(path);
	else if (found.last_lease > d->lt.last_id)
		d->lt.last_id = found.last_lease; /* ids never repeat */
	if (r == 0 && found.torn)
		log_warn("%s: its last line was cut short (a crash while writing it, before it was "
			 "acknowledged): skipped", path);
	r = rewrite(d);
	if (r < 0) {
		log_err("cannot write the checkout journal %s: %s", path, strerror(-r));
		return -1;
	}
	if (rs.restored || rs.dropped)
		log_info("restored %zu checkouts from %s (%zu dropped)", rs.restored, path, rs.dropped);
	return 0;
}

void checkouts_stop(struct haspd *d)
{
	journal_close(&d->journal);
}

void checkouts_done(struct haspd *d)
{
	struct lt_entry *e;

	assert(d->journal.fd < 0); /* what ends now stays in it */
	while ((e = locktable_any_detached(&d->lt))) {
		if (e->owner != &d->checkouts_failed)
			users_defer(&d->users, users_of_checkouts(e->owner));
		locktable_end(&d->lt, e);
		changes_apply(d, NULL);
	}
	free(d->journal_path);
	d->journal_path = NULL;
}

/* ---- checking out ---- */

/* Whether usr is at max_user_checkouts (a request that waited may find it
 * so at its grant); msg says so. */
static bool at_limit(const struct haspd *d, const struct user *usr, char *msg, size_t n)
{
	if (!usr->limited || usr->checkouts.nheld < d->cfg.max_user_checkouts)
		return false;
	snprintf(msg, n, "uid %u has %zu checkouts, the limit (max_user_checkouts)",
		 (unsigned)usr->uid, usr->checkouts.nheld);
	return true;
}

bool checkouts_admit(struct session *s, const struct proto_request *req)
{
	struct haspd *d = s->d;
	const struct user *usr = users_find(&d->users, s->sender.uid);
	char msg[200];

	if (d->journal.fd < 0) {
		reply_error(s, true, req->id, HASP_E_UNAVAILABLE, "this haspd keeps no checkout "
			    "journal (no state directory or journal_file): checkouts are off", NULL);
		return false;
	}
	if (usr && at_limit(d, usr, msg, sizeof(msg))) {
		reply_error(s, true, req->id, HASP_E_LIMIT, msg, NULL);
		return false;
	}
	return true;
}

/* Journals a granted lease with a new token, into token: NULL, or why not. */
static const char *journal_grant(struct haspd *d, const struct lt_entry *e, uint8_t *token)
{
	struct journal_checkout c;
	int r;

	if (d->journal_stale && compact(d) < 0)
		return "it lacks the end of an earlier checkout, and cannot be rewritten now";
	/* Never blocking the loop for entropy at early boot: it fails instead. */
	if (getrandom(token, LT_TOKEN_LEN, GRND_NONBLOCK) != LT_TOKEN_LEN)
		return "no random bytes for its token";
	record_of(d, e, token, &c);
	r = journal_checkout(&d->journal, &c);
	return r < 0 ? strerror(-r) : NULL;
}

/* A granted lease that cannot be checked out: its request is answered with
 * the error, and it is ended by checkouts_sweep(). */
static void refuse(struct haspd *d, struct lt_entry *e, struct user *usr, int code,
		   const char *msg)
{
	static const uint8_t none[LT_TOKEN_LEN];

	reply_error(session_of(e->owner), true, e->tag, code, msg, NULL);
	locktable_detach(&d->lt, e, &d->checkouts_failed, none);
	if (usr)
		users_defer(&d->users, usr);
}

void checkouts_granted(struct haspd *d, struct lt_entry *e)
{
	struct session *s = session_of(e->owner);
	struct user *usr = users_of(&d->users, lt_entry_sender(e).uid);
	uint8_t token[LT_TOKEN_LEN] = { 0 };
	const char *why;
	char msg[300];

	if (d->journal.fd < 0 || !usr) {
		refuse(d, e, usr, HASP_E_INTERNAL, usr ? "haspd is stopping" : "out of memory");
		return;
	}
	if (at_limit(d, usr, msg, sizeof(msg))) {
		refuse(d, e, usr, HASP_E_LIMIT, msg);
		return;
	}
	why = journal_grant(d, e, token);
	if (why) {
		log_err("cannot check out lease %" PRIu64 ": the journal: %s", e->id, why);
		snprintf(msg, sizeof(msg), "cannot keep the checkout in the journal (%s): not "
			 "granted", why);
		refuse(d, e, usr, HASP_E_INTERNAL, msg);
		return;
	}
	locktable_detach(&d->lt, e, &usr->checkouts, token);
	reply_grant(s, e);
}

void checkouts_sync(struct haspd *d)
{
	int r;

	if (d->journal.fd < 0 || (r = journal_sync(&d->journal)) == 0)
		return;
	/* Whether its records are on disk is unknown now, and a retry would
	 * not tell (a failed fsync may drop the dirty pages): stop, sending
	 * none of the answers that depend on them, and let the restart read
	 * what the disk has, as PostgreSQL does. */
	log_err("cannot sync the checkout journal %s: %s; stopping, without answering the "
		"requests it holds", d->journal_path, strerror(-r));
	_exit(EXIT_FAILURE);
}

bool checkouts_sweep(struct haspd *d)
{
	struct lt_owner *failed = &d->checkouts_failed;

	if (!list_empty(&failed->held)) {
		struct lt_entry *e = container_of(failed->held.next, struct lt_entry, onode);

		/* Its grant was told (events_granted()): its end is too. */
		events_ended(d, e, EVENT_BY_RELEASE, NULL);
		locktable_end(&d->lt, e);
		return true;
	}
	if (d->journal.fd >= 0 && (d->journal_stale ||
				   d->journal.records >= 2 * d->lt.stats.detached + CHECKOUTS_SLACK))
		compact(d);
	return false;
}

void checkouts_ended(struct haspd *d, struct lt_entry *e)
{
	int r;

	if (e->owner == &d->checkouts_failed)
		return;
	r = d->journal.fd >= 0 ? journal_end(&d->journal, e->id) : 0; /* stopping: it stays */
	if (r < 0) {
		/* Rewritten from the table before anything else is added, so
		 * that it cannot stand against a later checkout of the same. */
		log_err("cannot journal the end of checkout %" PRIu64 ": %s; the journal is to be "
			"rewritten", e->id, strerror(-r));
		d->journal_stale = true;
	}
	users_defer(&d->users, users_of_checkouts(e->owner));
}

/* ---- naming a lease: by id, token, key or path ---- */

static bool token_equal(const uint8_t *a, const uint8_t *b)
{
	uint8_t diff = 0;

	for (size_t i = 0; i < LT_TOKEN_LEN; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/* Whether the sender may end or renew e, a lease of its session or a
 * checkout; if not, the error is in code and msg. */
static bool may_name(const struct session *s, const struct proto_target *t,
		     const struct lt_entry *e, int *code, char *msg, size_t n)
{
	const struct lt_life *life = lt_entry_life(e);

	*code = HASP_E_PERMISSION_DENIED;
	if (!lt_entry_detached(e)) {
		if (!t->has_token)
			return true;
		snprintf(msg, n, "lease %" PRIu64 " is not checked out: it has no token", e->id);
		return false;
	}
	if (t->has_token) {
		if (token_equal(life->token, t->token))
			return true;
		snprintf(msg, n, "wrong token for lease %" PRIu64, e->id);
		return false;
	}
	if (lt_entry_sender(e).uid == s->sender.uid)
		return true;
	snprintf(msg, n, "lease %" PRIu64 " is checked out by uid %u: only that uid, or whoever "
		 "has its token, may name it (root may revoke it)", e->id,
		 (unsigned)lt_entry_sender(e).uid);
	return false;
}

static struct lt_entry *by_lease(struct session *s, const struct proto_target *t, int *code,
				 char *msg, size_t n)
{
	struct lt_entry *e = locktable_lease(&s->d->lt, t->lease);

	if (e && (e->owner == &s->owner || lt_entry_detached(e)))
		return may_name(s, t, e, code, msg, n) ? e : NULL;
	*code = HASP_E_UNKNOWN_LEASE;
	snprintf(msg, n, "no lease %" PRIu64 " in this session, nor checked out", t->lease);
	return NULL;
}

/* On r: the session's own lease, else a checkout the sender may name
 * (with the token given, or of its uid). */
static struct lt_entry *on_resource(struct session *s, const struct proto_target *t,
				    struct lt_resource *r)
{
	const struct list *pos;
	struct lt_entry *mine = NULL;

	if (!r)
		return NULL;
	list_foreach(pos, &r->holders) {
		struct lt_entry *e = container_of(pos, struct lt_entry, qnode);
		int code;
		char msg[8];

		if (e->owner == &s->owner && !t->has_token)
			return e;
		if (!mine && lt_entry_detached(e) && may_name(s, t, e, &code, msg, sizeof(msg)))
			mine = e;
	}
	return mine;
}

static bool has_checkout(const struct lt_resource *r)
{
	const struct list *pos;

	if (!r)
		return false;
	list_foreach(pos, &r->holders)
		if (lt_entry_detached(container_of(pos, struct lt_entry, qnode)))
			return true;
	return false;
}

static struct lt_entry *by_resource(struct session *s, const struct proto_target *t, int *code,
				    char *msg, size_t n)
{
	struct lt_resource *r = NULL;
	struct lt_entry *e;
	int fd = -1;

	if (t->key) {
		r = locktable_find(&s->d->lt, t->key, t->key_len);
	} else {
		if (t->fd && (fd = files_take_fd(s, code, msg, n)) < 0)
			return NULL;
		if (files_find(s, t->path, fd, &r, code, msg, n) < 0)
			return NULL;
	}
	e = on_resource(s, t, r);
	if (e)
		return e;
	if (t->has_token && has_checkout(r)) {
		*code = HASP_E_PERMISSION_DENIED;
		snprintf(msg, n, "wrong token for the checkout on '%.1024s'", t->key ? t->key : t->path);
		return NULL;
	}
	*code = HASP_E_UNKNOWN_LEASE;
	snprintf(msg, n, "no lease of this session on '%.1024s', nor a checkout %s", t->key ?
		 t->key : t->path, t->has_token ? "with this token" : "of this uid");
	return NULL;
}

/* The lease a release or renew names, or NULL with an error sent. */
static struct lt_entry *target(struct session *s, const struct proto_target *t, int64_t id)
{
	struct lt_entry *e;
	char msg[1300];
	int code;

	if (t->lease) {
		e = by_lease(s, t, &code, msg, sizeof(msg));
	} else if (t->key || t->path) {
		e = by_resource(s, t, &code, msg, sizeof(msg));
	} else {
		e = locktable_by_token(&s->d->lt, t->token);
		code = HASP_E_UNKNOWN_LEASE;
		snprintf(msg, sizeof(msg), "no checkout has this token");
	}
	if (!e)
		reply_error(s, true, id, code, msg, NULL);
	return e;
}

static void journal_failed(struct session *s, int64_t id, int err, const struct lt_entry *e,
			   const char *what)
{
	char msg[300];

	log_err("cannot write the checkout journal %s: %s", s->d->journal_path, strerror(-err));
	snprintf(msg, sizeof(msg), "cannot write the checkout journal (%s): lease %" PRIu64
		 " is not %s", strerror(-err), e->id, what);
	reply_error(s, true, id, HASP_E_INTERNAL, msg, NULL);
}

void checkouts_release(struct session *s, const struct proto_request *req)
{
	struct haspd *d = s->d;
	struct lt_entry *e = target(s, &req->release, req->id);
	uint64_t id;
	int r;

	if (!e)
		return;
	id = e->id;
	if (!lt_entry_detached(e)) {
		events_ended(d, e, EVENT_BY_RELEASE, NULL);
		locktable_end(&d->lt, e);
		reply_ok(s, req->id, json_pack("{s:I}", "lease", (json_int_t)id));
		return;
	}
	r = journal_end(&d->journal, id);
	if (r < 0) {
		journal_failed(s, req->id, r, e, "checked in");
		return;
	}
	events_ended(d, e, EVENT_BY_CHECKIN, &s->sender);
	users_defer(&d->users, users_of_checkouts(e->owner));
	locktable_end(&d->lt, e);
	reply_ok(s, req->id, json_pack("{s:I}", "lease", (json_int_t)id));
}

void checkouts_renew(struct session *s, const struct proto_request *req)
{
	struct haspd *d = s->d;
	struct lt_entry *e = target(s, &req->renew.target, req->id);
	const struct lt_life *life = e ? lt_entry_life(e) : NULL;
	int64_t ttl = req->renew.ttl_ms;
	char msg[160];
	int r;

	if (!e)
		return;
	if (!life || (ttl == 0 && life->ttl_ms == 0)) {
		snprintf(msg, sizeof(msg), "lease %" PRIu64 " has no time-to-live: give \"ttl_ms\"%s",
			 e->id, life ? "" : " when you acquire it");
		reply_error(s, true, req->id, HASP_E_BAD_REQUEST, msg, NULL);
		return;
	}
	if (ttl > LT_TIMEOUT_MAX_MS)
		ttl = LT_TIMEOUT_MAX_MS;
	if (ttl == 0)
		ttl = (int64_t)life->ttl_ms;
	/* The journal first: the table's renew cannot fail. */
	if (lt_entry_detached(e) && (r = journal_renew(&d->journal, e->id, (uint64_t)ttl,
					      d->lt.wall_us + (uint64_t)ttl * 1000)) < 0) {
		journal_failed(s, req->id, r, e, "renewed");
		return;
	}
	locktable_renew(&d->lt, e, ttl);
	reply_ok(s, req->id, json_pack("{s:I,s:I}", "lease", (json_int_t)e->id,
				       "expires_ms", (json_int_t)ttl));
}
