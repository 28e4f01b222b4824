#include "fdlocks.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "haspd.h"
#include "session.h"
#include "users.h"

static struct fdlock *fdlocks_find(const struct session *s, const struct lt_resource *r)
{
	struct list *pos;

	list_foreach(pos, &s->fdlocks) {
		struct fdlock *f = container_of(pos, struct fdlock, link);

		if (f->res == r)
			return f;
	}
	return NULL;
}

int fdlocks_add(struct session *s, const struct lt_resource *r, int fd)
{
	struct fdlock *f;

	if (fdlocks_find(s, r)) {
		close(fd);
		return -EEXIST;
	}
	f = malloc(sizeof(*f));
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	f->res = r;
	f->fd = fd;
	list_add_tail(&s->fdlocks, &f->link);
	return 0;
}

int fdlocks_fd(const struct session *s, const struct lt_resource *r)
{
	const struct fdlock *f = list_empty(&s->fdlocks) ? NULL : fdlocks_find(s, r);

	return f ? f->fd : -1;
}

static void fdlock_free(struct session *s, struct fdlock *f)
{
	list_del(&f->link);
	close(f->fd);
	users_refund_file(&s->d->users, s->user);
	free(f);
}

void fdlocks_drop(struct session *s, const struct lt_resource *r)
{
	struct fdlock *f = list_empty(&s->fdlocks) ? NULL : fdlocks_find(s, r);

	if (f)
		fdlock_free(s, f);
}

void fdlocks_drop_all(struct session *s)
{
	while (!list_empty(&s->fdlocks))
		fdlock_free(s, container_of(s->fdlocks.next, struct fdlock, link));
}
