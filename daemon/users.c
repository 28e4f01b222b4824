#include "users.h"

#include <assert.h>
#include <stdlib.h>
#include <unistd.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static uint64_t user_hash(const struct hnode *n)
{
	return hash_u64(container_of(n, struct user, node)->uid);
}

int users_init(struct users *u)
{
	return htable_init(&u->table, 64, user_hash);
}

void users_done(struct users *u)
{
	assert(u->table.count == 0);
	htable_done(&u->table);
}

static struct user *users_find(struct users *u, uid_t uid)
{
	for (struct hnode *n = htable_chain(&u->table, hash_u64(uid)); n; n = n->next) {
		struct user *usr = container_of(n, struct user, node);

		if (usr->uid == uid)
			return usr;
	}
	return NULL;
}

struct user *users_get(struct users *u, uid_t uid)
{
	struct user *usr = users_find(u, uid);

	if (!usr) {
		usr = calloc(1, sizeof(*usr));
		if (!usr)
			return NULL;
		usr->uid = uid;
		usr->limited = uid != 0 && uid != geteuid();
		htable_insert(&u->table, &usr->node);
	}
	usr->sessions++;
	return usr;
}

void users_put(struct users *u, struct user *usr)
{
	assert(usr->sessions > 0);
	if (--usr->sessions > 0)
		return;
	assert(usr->group.entries == 0);
	htable_remove(&u->table, &usr->node);
	free(usr);
}
