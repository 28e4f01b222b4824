#include "files.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "changes.h"
#include "fdlimit.h"
#include "haspd.h"
#include "oslock.h"
#include "proto.h"
#include "session.h"

static int open_error(int err, const char *path, int *code, char *msg, size_t n)
{
	*code = err == EACCES || err == EPERM ? HASP_E_PERMISSION_DENIED : HASP_E_BAD_REQUEST;
	if (err == EINVAL)
		snprintf(msg, n, "%.1024s is not a regular file", path);
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

/* A descriptor for the request: the client's, or one the daemon opens for a
 * peer of its own uid. Returns it, or -1 with the error set. */
static int request_fd(struct session *s, const char *path, int fd, int *code, char *msg, size_t n)
{
	if (fd >= 0 && oslock_check_access(fd) < 0) {
		close(fd);
		return refuse_access(path, code, msg, n);
	}
	if (fd >= 0)
		return fd;
	if (s->sender.uid != geteuid()) {
		*code = HASP_E_PERMISSION_DENIED;
		snprintf(msg, n, "a path without a descriptor is served only to uid %u; "
			 "send the open file with \"fd\": true", (unsigned)geteuid());
		return -1;
	}
	fd = oslock_open_path(path);
	if (fd < 0)
		return open_error(-fd, path, code, msg, n);
	return fd;
}

struct lt_resource *files_resource(struct session *s, const char *path, int fd, int *code,
				   char *msg, size_t msg_size)
{
	struct locktable *lt = &s->d->lt;
	char key[OSLOCK_KEY_LEN];
	struct lt_resource *r = NULL;
	struct oslock *o;
	int e;

	if (path[0] != '/') {
		if (fd >= 0)
			close(fd);
		*code = HASP_E_BAD_REQUEST;
		snprintf(msg, msg_size, "\"path\" must be absolute");
		return NULL;
	}
	fd = request_fd(s, path, fd, code, msg, msg_size);
	if (fd < 0)
		return NULL;
	e = oslock_identify(fd, key);
	if (e < 0) {
		open_error(-e, path, code, msg, msg_size);
	} else if (!(r = locktable_find(lt, key, sizeof(key)))) {
		users_set_fd_budget(&s->d->users, fdlimit_now(), s->d->users.fds_base);
		if (!users_may_open_file(&s->d->users, s->user, &s->d->cfg, msg, msg_size)) {
			*code = HASP_E_LIMIT;
		} else if (!(o = oslock_new(fd, path))) {
			open_error(errno, path, code, msg, msg_size);
		} else if (!(r = locktable_attach(lt, key, sizeof(key), o))) {
			oslock_free(o);
			*code = HASP_E_INTERNAL;
			snprintf(msg, msg_size, "out of memory");
		} else {
			o->payer = s->user;
			users_charge_file(&s->d->users, s->user);
		}
	}
	close(fd);
	return r;
}

static void retry_schedule(struct haspd *d, struct oslock *o)
{
	if (!list_empty(&o->retry_link))
		return;
	if (o->backoff_us == 0)
		o->backoff_us = FILES_BACKOFF_MIN_US;
	o->retry_at_us = d->lt.now_us + o->backoff_us;
	list_add_tail(&d->retrying, &o->retry_link);
}

bool files_admit(struct lt_resource *r, enum lt_mode mode, void *arg)
{
	struct oslock *o = r->os;

	if (oslock_try(o, mode == LT_SHARED)) {
		list_del(&o->retry_link);
		o->backoff_us = 0;
		return true;
	}
	o->res = r;
	retry_schedule(arg, o);
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
	list_del(&o->retry_link);
	oslock_free(o);
	r->os = NULL;
}

int64_t files_next_retry(const struct haspd *d)
{
	const struct list *pos;
	int64_t next = -1;

	list_foreach(pos, &d->retrying) {
		const struct oslock *o = container_of(pos, struct oslock, retry_link);

		if (next < 0 || (int64_t)o->retry_at_us < next)
			next = (int64_t)o->retry_at_us;
	}
	return next;
}

void files_retry_due(struct haspd *d)
{
	struct list due, *pos, *tmp;

	list_init(&due);
	list_foreach_safe(pos, tmp, &d->retrying) {
		struct oslock *o = container_of(pos, struct oslock, retry_link);

		if (o->retry_at_us <= d->lt.now_us) {
			list_del(&o->retry_link);
			list_add_tail(&due, &o->retry_link);
		}
	}
	while (!list_empty(&due)) {
		struct oslock *o = container_of(due.next, struct oslock, retry_link);

		list_del(&o->retry_link);
		o->backoff_us *= 2;
		if (o->backoff_us > FILES_BACKOFF_MAX_US)
			o->backoff_us = FILES_BACKOFF_MAX_US;
		locktable_kick(&d->lt, o->res);
		changes_apply(d, NULL);
	}
}
