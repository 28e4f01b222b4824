#include "adopt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "haspd.h"
#include "proto-daemon.h"
#include "reply.h"
#include "session.h"

static uint64_t alias_hash(const struct hnode *n)
{
	return hash_bytes(container_of(n, struct oslock_alias, node)->key, OSLOCK_KEY_LEN);
}

int adopt_init(struct htable *aliases)
{
	return htable_init(aliases, 16, alias_hash);
}

void adopt_done(struct htable *aliases)
{
	htable_done(aliases);
}

static struct oslock_alias *alias_find(const struct haspd *d, const char *key)
{
	for (struct hnode *n = htable_chain(&d->aliases, hash_bytes(key, OSLOCK_KEY_LEN)); n;
	     n = n->next) {
		struct oslock_alias *a = container_of(n, struct oslock_alias, node);

		if (memcmp(a->key, key, OSLOCK_KEY_LEN) == 0)
			return a;
	}
	return NULL;
}

struct lt_resource *adopt_lookup(const struct haspd *d, const char *key)
{
	const struct oslock_alias *a = d->aliases.count ? alias_find(d, key) : NULL;

	return a ? a->o->res : NULL;
}

/* Out of the table, its charge refunded, closed. */
static void alias_drop(struct haspd *d, struct oslock_alias *a)
{
	htable_remove(&d->aliases, &a->node);
	users_refund_file(&d->users, a->payer);
	oslock_alias_free(a);
}

void adopt_forget(struct haspd *d, struct oslock *o)
{
	while (!list_empty(&o->aliases))
		alias_drop(d, container_of(o->aliases.next, struct oslock_alias, link));
}

/* Who may join a file to a lock: a writer of it (an atomic write's new
 * file), or anyone for the file at the lock's path now (a taker that finds
 * the path replaced while it waited). A mere reader of some file may not
 * tie it to another's lock. */
static bool may_adopt(int fd, const struct oslock *o, const struct stat *st)
{
	int fl = fcntl(fd, F_GETFL);
	struct stat at;

	if (fl >= 0 && (fl & O_ACCMODE) != O_RDONLY)
		return true;
	return stat(o->path, &at) == 0 && at.st_dev == st->st_dev && at.st_ino == st->st_ino;
}

/* fd's file as an alias of r (r's flock taken on it too). Returns 0 or an
 * error code with msg. */
static int adopt_file(struct session *s, struct lt_resource *r, int fd, char *msg, size_t n)
{
	struct haspd *d = s->d;
	struct oslock *o = r->os;
	char key[OSLOCK_KEY_LEN];
	struct lt_resource *other;
	struct oslock_alias *a;
	int access = oslock_access(fd);
	struct stat st;

	if (access < 0) {
		snprintf(msg, n, "the descriptor is open neither for reading nor for "
			 "writing: it proves no right to the file");
		return HASP_E_PERMISSION_DENIED;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || oslock_identify(fd, key) < 0) {
		snprintf(msg, n, "the file to adopt must be a regular file");
		return HASP_E_BAD_REQUEST;
	}
	other = locktable_find(&d->lt, key, sizeof(key));
	if (!other)
		other = adopt_lookup(d, key);
	if (other == r)
		return 0; /* one lock already */
	if (other) {
		snprintf(msg, n, "that file is a lock of its own, held or waited for");
		return HASP_E_BUSY;
	}
	if (!may_adopt(fd, o, &st)) {
		snprintf(msg, n, "adopt takes a descriptor open for writing (the new file's), or "
			 "one of the file at the lock's path now");
		return HASP_E_PERMISSION_DENIED;
	}
	if (!files_may_open(s, msg, n))
		return HASP_E_LIMIT;
	o->res = r;
	a = oslock_alias_new(o, fd, access, key);
	if (!a) {
		int e = errno;

		snprintf(msg, n, e == EWOULDBLOCK ? "a process outside hasp holds that file's "
			 "flock" : "cannot open the file again: %s", strerror(e));
		return e == EWOULDBLOCK ? HASP_E_BUSY : HASP_E_LIMIT;
	}
	a->payer = s->user;
	users_charge_file(&d->users, s->user);
	htable_insert(&d->aliases, &a->node);
	if (o->naliases > OSLOCK_ALIASES) /* the oldest goes, once the newest is in */
		alias_drop(d, container_of(o->aliases.next, struct oslock_alias, link));
	return 0;
}

/* Returns 0 or an error code with msg. */
static int adopt(struct session *s, const struct proto_request *req, char *msg, size_t n)
{
	struct lt_entry *e = locktable_lease(&s->d->lt, req->adopt.lease);
	int code, fd = files_take_fd(s, &code, msg, n);

	if (fd < 0)
		return code;
	if (!e || e->owner != &s->owner) {
		snprintf(msg, n, "no lease %" PRIu64 " in this session", req->adopt.lease);
		code = HASP_E_UNKNOWN_LEASE;
	} else if (!e->res->os) {
		snprintf(msg, n, "lease %" PRIu64 " is on a named key, not a file", e->id);
		code = HASP_E_BAD_REQUEST;
	} else {
		code = adopt_file(s, e->res, fd, msg, n);
	}
	close(fd);
	return code;
}

void adopt_request(struct session *s, const struct proto_request *req)
{
	char msg[256];
	int code = adopt(s, req, msg, sizeof(msg));

	if (code == 0)
		reply_ok_empty(s, req->id);
	else
		reply_error(s, true, req->id, code, msg, NULL);
}
