#include "users.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "list.h"

static uint64_t user_hash(const struct hnode *n)
{
	return hash_u64(container_of(n, struct user, node)->uid);
}

int users_init(struct users *u)
{
	list_init(&u->deferred);
	return htable_init(&u->table, 64, user_hash);
}

void users_done(struct users *u)
{
	assert(u->table.count == 0);
	htable_done(&u->table);
}

void users_set_fd_budget(struct users *u, size_t limit, size_t base)
{
	u->fds_limit = limit;
	u->fds_base = base;
}

void users_set_fd_limit(struct users *u, size_t limit)
{
	u->fds_limit = limit;
}

struct user *users_find(const struct users *u, uid_t uid)
{
	for (struct hnode *n = htable_chain(&u->table, hash_u64(uid)); n; n = n->next) {
		struct user *usr = container_of(n, struct user, node);

		if (usr->uid == uid)
			return usr;
	}
	return NULL;
}

struct user *users_of(struct users *u, uid_t uid)
{
	struct user *usr = users_find(u, uid);

	if (usr)
		return usr;
	usr = calloc(1, sizeof(*usr));
	if (!usr)
		return NULL;
	usr->uid = uid;
	usr->limited = uid != 0 && uid != geteuid();
	lt_owner_init(&usr->checkouts, 0, 0, uid, 0);
	usr->checkouts.group = &usr->group;
	htable_insert(&u->table, &usr->node);
	return usr;
}

struct user *users_get(struct users *u, uid_t uid)
{
	struct user *usr = users_of(u, uid);

	if (!usr)
		return NULL;
	usr->sessions++;
	u->sessions++;
	return usr;
}

void users_unused(struct users *u, struct user *usr)
{
	if (usr->sessions > 0 || usr->files > 0 || usr->checkouts.nheld > 0 || usr->holds > 0)
		return;
	assert(usr->group.entries == 0 && usr->fds_in_flight == 0);
	htable_remove(&u->table, &usr->node);
	free(usr);
}

void users_hold(struct user *usr)
{
	usr->holds++;
}

void users_drop(struct users *u, struct user *usr)
{
	assert(usr->holds > 0);
	usr->holds--;
	users_unused(u, usr);
}

void users_defer(struct users *u, struct user *usr)
{
	if (usr->deferred)
		return;
	usr->deferred = true;
	usr->holds++;
	list_add_tail(&u->deferred, &usr->defer_link);
}

void users_settle(struct users *u)
{
	while (!list_empty(&u->deferred)) {
		struct user *usr = list_entry(u->deferred.next, struct user, defer_link);

		list_del(&usr->defer_link);
		usr->deferred = false;
		users_drop(u, usr);
	}
}

void users_put(struct users *u, struct user *usr)
{
	assert(usr->sessions > 0);
	usr->sessions--;
	u->sessions--;
	users_unused(u, usr);
}

/* Whether the daemon has descriptors to spare beyond the administrators'
 * reserve (always, while the budget is unknown). */
static bool users_fds_spare(const struct users *u)
{
	size_t used = u->fds_base + u->sessions + u->files + u->fds_in_flight;

	return u->fds_limit == 0 || used + USERS_ADMIN_FDS < u->fds_limit;
}

bool users_admit_session(const struct users *u, const struct user *usr,
			 const struct config *cfg, size_t nsessions, char *why, size_t n)
{
	if (!usr->limited) {
		if (nsessions < cfg->max_sessions + USERS_ADMIN_SESSIONS)
			return true;
		snprintf(why, n, "it serves %zu sessions, the limit (max_sessions) and the "
			 "administrators' reserve", nsessions);
	} else if (nsessions >= cfg->max_sessions) {
		snprintf(why, n, "it serves %zu sessions, the limit (max_sessions)",
			 cfg->max_sessions);
	} else if (usr->sessions > cfg->max_user_sessions) {
		snprintf(why, n, "uid %u has %zu sessions, the limit (max_user_sessions)",
			 (unsigned)usr->uid, cfg->max_user_sessions);
	} else if (!users_fds_spare(u)) {
		snprintf(why, n, "its file descriptors left are kept for administrators "
			 "(RLIMIT_NOFILE %zu)", u->fds_limit);
	} else {
		return true;
	}
	return false;
}

bool users_may_hold_fd(const struct users *u, const struct user *usr)
{
	return !usr->limited ||
	       (usr->fds_in_flight < USERS_FDS_IN_FLIGHT_MAX && users_fds_spare(u));
}

void users_hold_fd(struct users *u, struct user *usr)
{
	usr->fds_in_flight++;
	u->fds_in_flight++;
}

void users_drop_fds(struct users *u, struct user *usr, size_t n)
{
	assert(usr->fds_in_flight >= n && u->fds_in_flight >= n);
	usr->fds_in_flight -= n;
	u->fds_in_flight -= n;
}

bool users_may_open_file(const struct users *u, const struct user *usr,
			 const struct config *cfg, char *why, size_t n)
{
	if (!usr->limited)
		return true;
	if (usr->files >= cfg->max_user_files)
		snprintf(why, n, "uid %u has haspd hold %zu files open, the limit (max_user_files)",
			 (unsigned)usr->uid, usr->files);
	else if (!users_fds_spare(u))
		snprintf(why, n, "haspd's file descriptors left are kept for administrators "
			 "(RLIMIT_NOFILE %zu)", u->fds_limit);
	else
		return true;
	return false;
}

void users_charge_file(struct users *u, struct user *usr)
{
	usr->files++;
	u->files++;
}

void users_refund_file(struct users *u, struct user *usr)
{
	assert(usr->files > 0);
	usr->files--;
	u->files--;
	users_unused(u, usr);
}

void users_foreach(const struct users *u, void (*fn)(const struct user *usr, void *arg),
		   void *arg)
{
	for (size_t i = 0; i <= u->table.mask; i++)
		for (struct hnode *n = u->table.buckets[i]; n; n = n->next)
			fn(container_of(n, struct user, node), arg);
}
