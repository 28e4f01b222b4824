/* Redis's lock idiom through hiredis, for compare.sh: SET key val NX PX
 * 30000 to take, DEL to give back. Nothing waits in Redis (a client
 * retries), so there is no hand-off to measure. TARGET is a Unix socket
 * path, or HOST:PORT. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"

static void *redis_connect(const char *target)
{
	const char *colon = strrchr(target, ':');
	redisContext *c;

	if (colon && target[0] != '/') {
		char host[256];

		snprintf(host, sizeof(host), "%.*s", (int)(colon - target), target);
		c = redisConnect(host, atoi(colon + 1));
	} else {
		c = redisConnectUnix(target);
	}
	if (!c || c->err) {
		fprintf(stderr, "redis-peer: %s: %s\n", target, c ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	return c;
}

static void redis_disconnect(void *conn)
{
	redisFree(conn);
}

/* Runs the command; 0 when its reply is of type want (and, for an
 * integer, equal to one). */
static int expect(redisContext *c, int want, redisReply *r)
{
	int ok = r && r->type == want && (want != REDIS_REPLY_INTEGER || r->integer == 1);

	if (!ok)
		fprintf(stderr, "redis-peer: %s\n", !r ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str
			: "the lock was not free (or not held)");
	freeReplyObject(r);
	return ok ? 0 : -1;
}

static int redis_lock(void *conn, const char *key)
{
	return expect(conn, REDIS_REPLY_STATUS,
		      redisCommand(conn, "SET %s %s NX PX 30000", key, "redis-peer"));
}

static int redis_unlock(void *conn, const char *key)
{
	return expect(conn, REDIS_REPLY_INTEGER, redisCommand(conn, "DEL %s", key));
}

int main(int argc, char **argv)
{
	static const struct peer redis = {
		"redis", redis_connect, redis_disconnect, redis_lock, redis_unlock, NULL,
	};

	return peer_main(&redis, argc, argv);
}
