#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "adopt.h"
#include "changes.h"
#include "fdlimit.h"
#include "fdlocks.h"
#include "haspd.h"
#include "journal.h"
#include "oslock.h"
#include "proto-daemon.h"
#include "session.h"

static int open_error(int err, const char *path, int *code, char *msg, size_t n)
{
	*code = err == EACCES || err == EPERM ? HASP_E_PERMISSION_DENIED : HASP_E_BAD_REQUEST;
	if (err == EINVAL)
		snprintf(msg, n, "%.1024s is neither a regular file nor a directory", path);
	else
		snprintf(msg, n, "cannot open %.1024s: %s", path, strerror(err));
	return -1;
}

/* A descriptor that proves nothing: O_PATH, or open for neither reading
 * nor writing. */
static int refuse_access(const char *path, int *code, char *msg, size_t n)
{
	*code = HASP_E_PERMISSION_DENIED;
	snprintf(msg, n, "the descriptor for %.1024s is open neither for reading nor for "
		 "writing (O_PATH?): it proves no right to lock the file", path);
	return -1;
}

int files_take_fd(struct session *s, int *code, char *msg, size_t msg_size)
{
	int fd = session_take_fd(s);

	if (fd >= 0)
		return fd;
	*code = session_fds_refused(s) ? HASP_E_LIMIT : HASP_E_BAD_REQUEST;
	snprintf(msg, msg_size, "%s", session_fds_refused(s) ?
		 "the descriptor was closed on arrival: this session or uid has too many in "
		 "flight (sent before the requests that claim them), or haspd's descriptors "
		 "left are kept for administrators" :
		 "\"fd\": true, but no descriptor came with the request");
	return -1;
}

/* Only the daemon's own uid names a file by its path alone: -1 with the
 * error set for any other sender. */
static int refuse_bare_path(const struct session *s, int *code, char *msg, size_t n)
{
	if (s->sender.uid == geteuid())
		return 0;
	*code = HASP_E_PERMISSION_DENIED;
	snprintf(msg, n, "a path without a descriptor is served only to uid %u; "
		 "send the open file with \"fd\": true", (unsigned)geteuid());
	return -1;
}

/* A descriptor for the request: the client's, or one the daemon opens for a
 * peer of its own uid, and in *ret_access the access it proves (for
 * oslock_new()). Returns it, or -1 with the error set. */
static int request_fd(struct session *s, const char *path, int fd, int *ret_access, int *code,
		      char *msg, size_t n)
{
	if (fd >= 0) {
		*ret_access = oslock_access(fd);
		if (*ret_access >= 0)
			return fd;
		close(fd);
		return refuse_access(path, code, msg, n);
	}
	if (refuse_bare_path(s, code, msg, n) < 0)
		return -1;
	fd = oslock_open_path(path);
	if (fd < 0)
		return open_error(-fd, path, code, msg, n);
	*ret_access = oslock_access(fd);
	return fd;
}

bool files_may_open(struct session *s, char *msg, size_t n)
{
	struct haspd *d = s->d;

	if (users_may_open_file(&d->users, s->user, &d->cfg, msg, n))
		return true;
	users_set_fd_limit(&d->users, fdlimit_now());
	return users_may_open_file(&d->users, s->user, &d->cfg, msg, n);
}

/* A new resource for key with o (a file's new oslock) attached, charged
 * to usr; NULL, with o freed, for want of memory. */
static struct lt_resource *attach_new(struct haspd *d, struct user *usr, struct oslock *o,
				      const char *key)
{
	struct lt_resource *r = locktable_attach(&d->lt, key, OSLOCK_KEY_LEN, o);

	if (!r) {
		oslock_free(o);
		return NULL;
	}
	o->payer = usr;
	o->res = r;
	users_charge_file(&d->users, usr);
	return r;
}

struct lt_resource *files_resource(struct session *s, const char *path, int fd, int *code,
				   char *msg, size_t msg_size)
{
	char key[OSLOCK_KEY_LEN];
	struct lt_resource *r = NULL;
	struct oslock *o;
	int e, access = 0;

	if (path[0] != '/') {
		if (fd >= 0)
			close(fd);
		*code = HASP_E_BAD_REQUEST;
		snprintf(msg, msg_size, "\"path\" must be absolute");
		return NULL;
	}
	fd = request_fd(s, path, fd, &access, code, msg, msg_size);
	if (fd < 0)
		return NULL;
	e = oslock_identify(fd, key);
	if (e < 0) {
		open_error(-e, path, code, msg, msg_size);
	} else if (!(r = files_lookup(s->d, key))) {
		if (!files_may_open(s, msg, msg_size)) {
			*code = HASP_E_LIMIT;
		} else if (!(o = oslock_new(fd, access, path))) {
			open_error(errno, path, code, msg, msg_size);
		} else if (!(r = attach_new(s->d, s->user, o, key))) {
			*code = HASP_E_INTERNAL;
			snprintf(msg, msg_size, "out of memory");
		}
	}
	close(fd);
	return r;
}

/* Finds a checkout's file again as the daemon, without opening it first:
 * by O_PATH, which opens no device and waits on no FIFO, following no
 * symbolic link where the kernel can say so (the path recorded is the
 * kernel's own name for the file, which has none: a link there now is
 * someone else's). */
static int find_path(const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));

	return fd >= 0 || errno != ENOSYS ? fd : open(path, O_PATH | O_CLOEXEC);
}

/* Opens a checkout's file again: found as above, a regular file or a
 * directory, then opened through /proc/self/fd for reading, else for
 * writing. -1 with errno set. */
static int reopen(const char *path)
{
	int flags = O_NONBLOCK | O_CLOEXEC | O_NOCTTY, found = find_path(path), fd;
	char proc[32];
	struct stat st;

	if (found < 0)
		return -1;
	if (fstat(found, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
		close(found);
		errno = EINVAL;
		return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", found);
	fd = open(proc, O_RDONLY | flags);
	if (fd < 0 && errno == EACCES)
		fd = open(proc, O_WRONLY | flags);
	close(found);
	return fd;
}

/* The resource for fd's file (key), new or one restored before, charged to
 * usr; NULL with why set. */
static struct lt_resource *restore_resource(struct haspd *d, struct user *usr, const char *path,
					    int fd, const char *key, const char **why)
{
	struct lt_resource *r = files_lookup(d, key);
	int access = oslock_access(fd);
	struct oslock *o;

	if (r)
		return r;
	if (access < 0 || !(o = oslock_new(fd, access, path))) {
		*why = strerror(access < 0 ? -access : errno);
		return NULL;
	}
	r = attach_new(d, usr, o, key);
	if (!r)
		*why = "out of memory";
	return r;
}

/* Whether fd is the file the checkout was taken on. */
static bool same_file(int fd, const struct journal_checkout *c)
{
	uint64_t born = c->btime_ns ? oslock_btime(fd) : 0;
	struct stat st;

	return fstat(fd, &st) == 0 && (uint64_t)st.st_dev == c->dev &&
	       (uint64_t)st.st_ino == c->ino && (!born || born == c->btime_ns);
}

struct lt_resource *files_restore(struct haspd *d, struct user *usr,
				  const struct journal_checkout *c, const char **why)
{
	char key[OSLOCK_KEY_LEN];
	struct lt_resource *r = NULL;
	bool shared = c->shared;
	int fd = reopen(c->path);

	if (fd < 0) {
		*why = errno == ELOOP || errno == EXDEV ? "its path goes through a symbolic link now" :
		       errno == EINVAL ? "it is no longer a regular file or a directory" :
		       strerror(errno);
		return NULL;
	}
	if (oslock_identify(fd, key) < 0)
		*why = "it is no longer a file that can be locked";
	else if (!same_file(fd, c))
		*why = "another file is at its path now (the file was replaced or removed since it was "
		       "checked out)";
	else
		r = restore_resource(d, usr, c->path, fd, key, why);
	close(fd);
	if (r && r->nholders && !(r->held_mode == LT_SHARED && shared)) {
		*why = "another checkout of it, restored before, conflicts with it";
		return NULL;
	}
	if (r && !oslock_try(r->os, shared)) {
		*why = "a process outside hasp holds its flock(2) now";
		locktable_put_unused(&d->lt, r);
		return NULL;
	}
	return r;
}

struct lt_resource *files_lookup(const struct haspd *d, const char *key)
{
	struct lt_resource *r = locktable_find(&d->lt, key, OSLOCK_KEY_LEN);

	return r ? r : adopt_lookup(d, key);
}

int files_find(struct session *s, const char *path, int fd, struct lt_resource **ret, int *code,
	       char *msg, size_t msg_size)
{
	char key[OSLOCK_KEY_LEN];
	int e;

	if (fd < 0 && refuse_bare_path(s, code, msg, msg_size) < 0)
		return -1;
	if (fd < 0 && (fd = open(path, O_PATH | O_CLOEXEC)) < 0)
		return open_error(errno, path, code, msg, msg_size);
	e = oslock_identify(fd, key);
	close(fd);
	if (e == -EINVAL) {
		*ret = NULL; /* a kind of file no lease can be on */
		return 0;
	}
	if (e < 0)
		return open_error(-e, path, code, msg, msg_size);
	*ret = files_lookup(s->d, key);
	return 0;
}

void files_retry_init(struct files_retry *fr)
{
	memset(fr, 0, sizeof(*fr));
	for (int i = 0; i < FILES_RAMP_STEPS; i++)
		list_init(&fr->ramp[i]);
	for (int i = 0; i < FILES_RETRY_QUEUES; i++)
		list_init(&fr->queues[i].files);
}

bool files_retrying(const struct files_retry *fr)
{
	for (int i = 0; i < FILES_RAMP_STEPS; i++)
		if (!list_empty(&fr->ramp[i]))
			return true;
	return fr->active != 0;
}

/* The queue of uid: a multiplicative hash, so that uids 1000 and 1064 differ. */
static unsigned retry_queue_of(uid_t uid)
{
	return ((uint32_t)uid * 2654435761u) >> 26;
}

/* The uid a file's retries count against: its first waiter's. */
static uid_t retry_uid(const struct oslock *o)
{
	const struct lt_resource *r = o->res;

	if (!r || list_empty(&r->waiters))
		return (uid_t)-1;
	return list_entry(r->waiters.next, struct lt_entry, qnode)->owner->uid;
}

/* How long a queue waits between two files: FILES_BACKOFF_MAX_US over its
 * files, but no faster than its share of the rates. */
static uint64_t retry_slot_us(const struct files_retry *fr, const struct files_queue *q)
{
	uint64_t nactive = (uint64_t)__builtin_popcountll(fr->active);
	uint64_t rate = FILES_RETRY_RATE / (nactive ? nactive : 1);
	uint64_t slot;

	if (rate > FILES_RETRY_UID_RATE)
		rate = FILES_RETRY_UID_RATE;
	slot = FILES_BACKOFF_MAX_US / (q->n ? q->n : 1);
	return slot > 1000000u / rate ? slot : 1000000u / rate;
}

static void retry_remove(struct files_retry *fr, struct oslock *o)
{
	list_del(&o->retry_link);
	if (o->retry_queue) {
		unsigned i = o->retry_queue - 1;

		if (--fr->queues[i].n == 0)
			fr->active &= ~(1ull << i);
		o->retry_queue = 0;
	}
}

static void retry_schedule(struct haspd *d, struct oslock *o)
{
	struct files_retry *fr = &d->retrying;
	struct files_queue *q;
	unsigned i, step = 0;

	if (!list_empty(&o->retry_link))
		return;
	if (o->backoff_us == 0)
		o->backoff_us = FILES_BACKOFF_MIN_US;
	if (o->backoff_us < FILES_BACKOFF_MAX_US) {
		while (((uint64_t)FILES_BACKOFF_MIN_US << step) < o->backoff_us)
			step++;
		o->retry_at_us = d->lt.now_us + o->backoff_us;
		list_add_tail(&fr->ramp[step], &o->retry_link);
		return;
	}
	i = retry_queue_of(retry_uid(o));
	q = &fr->queues[i];
	if (q->n++ == 0) {
		fr->active |= 1ull << i;
		q->next_us = d->lt.now_us + retry_slot_us(fr, q);
	}
	o->retry_queue = i + 1;
	list_add_tail(&q->files, &o->retry_link);
}

enum lt_admit files_admit(struct lt_resource *r, const struct lt_entry *e, void *arg)
{
	struct haspd *d = arg;
	struct oslock *o = r->os;
	struct session *s = session_of(e->owner);
	int fd = fdlocks_fd(s, r);
	bool shared = e->mode == LT_SHARED, taken;

	/* The fd form: not for a client gone while it waited (killed), which
	 * could never tell its shell that the descriptor holds the lock; its
	 * session ends next. */
	if (fd >= 0)
		taken = !session_peer_gone(s) && oslock_place(o, fd, shared, r->nholders == 0);
	else
		taken = oslock_try(o, shared);
	if (taken && fd < 0) {
		retry_remove(&d->retrying, o);
		o->backoff_us = 0;
		return LT_ADMIT_HOLD;
	}
	if (taken) {
		fdlocks_drop(s, r); /* placed: the client's description holds it */
		/* Granted ahead of waiters (its own description held it): they
		 * wait for it now as for any outside holder. */
		o->res = r;
		if (!list_empty(&r->waiters) && r->waiters.next != &e->qnode)
			retry_schedule(d, o);
		else
			retry_remove(&d->retrying, o);
		return LT_ADMIT_HANDED_OVER;
	}
	o->res = r;
	retry_schedule(d, o);
	return LT_ADMIT_NO;
}

bool files_convert(struct lt_resource *r, const struct lt_entry *e, enum lt_mode mode, void *arg)
{
	struct haspd *d = arg;
	struct oslock *o = r->os;

	if (oslock_convert(o, mode == LT_SHARED)) {
		retry_remove(&d->retrying, o);
		o->backoff_us = 0;
		return true;
	}
	o->res = r;
	retry_schedule(d, o);
	return false;
}

void files_unlocked(struct lt_resource *r)
{
	oslock_unlock(r->os);
}

void files_freed(struct haspd *d, struct lt_resource *r)
{
	struct oslock *o = r->os;

	users_refund_file(&d->users, o->payer);
	adopt_forget(d, o);
	retry_remove(&d->retrying, o);
	oslock_free(o);
	r->os = NULL;
}

int64_t files_next_retry(const struct haspd *d)
{
	const struct files_retry *fr = &d->retrying;
	int64_t next = -1;

	for (int i = 0; i < FILES_RAMP_STEPS; i++) {
		const struct oslock *o;

		if (list_empty(&fr->ramp[i]))
			continue;
		o = container_of(fr->ramp[i].next, struct oslock, retry_link);
		if (next < 0 || (int64_t)o->retry_at_us < next)
			next = (int64_t)o->retry_at_us;
	}
	for (uint64_t m = fr->active; m; m &= m - 1) {
		const struct files_queue *q = &fr->queues[__builtin_ctzll(m)];

		if (next < 0 || (int64_t)q->next_us < next)
			next = (int64_t)q->next_us;
	}
	return next;
}

/* Tries o's file again: the lock table asks files_admit(), which schedules
 * the next retry if the outsider still holds it. */
static void retry_one(struct haspd *d, struct oslock *o)
{
	retry_remove(&d->retrying, o);
	o->backoff_us *= 2;
	if (o->backoff_us > FILES_BACKOFF_MAX_US)
		o->backoff_us = FILES_BACKOFF_MAX_US;
	locktable_kick(&d->lt, o->res);
	changes_apply(d, NULL);
}

void files_retry_due(struct haspd *d)
{
	struct files_retry *fr = &d->retrying;
	uint64_t now = d->lt.now_us;

	/* A ramp list is in due order: each step appends now + its delay. */
	for (int i = 0; i < FILES_RAMP_STEPS; i++) {
		while (!list_empty(&fr->ramp[i])) {
			struct oslock *o = container_of(fr->ramp[i].next, struct oslock, retry_link);

			if (o->retry_at_us > now)
				break;
			retry_one(d, o);
		}
	}
	/* Each queue: its head, then the next one a slot later, round robin;
	 * slots shorter than FILES_RETRY_TICK_US are served a tick's worth at a
	 * wake-up (early by less than a tick, the rate the same). */
	for (uint64_t m = fr->active; m; m &= m - 1) {
		struct files_queue *q = &fr->queues[__builtin_ctzll(m)];
		uint64_t slot = retry_slot_us(fr, q);
		uint64_t until = now + (slot < FILES_RETRY_TICK_US ? FILES_RETRY_TICK_US - slot : 0);

		/* After a stall, no burst to catch up. */
		if (q->next_us + FILES_BACKOFF_MAX_US < now)
			q->next_us = now;
		while (q->n && q->next_us <= until) {
			q->next_us += retry_slot_us(fr, q);
			retry_one(d, container_of(q->files.next, struct oslock, retry_link));
		}
	}
}
