/* PostgreSQL's advisory locks through libpq, for compare.sh:
 * pg_advisory_lock + pg_advisory_unlock, prepared once per connection.
 * TARGET is a libpq conninfo ("host=/tmp/x port=5432 dbname=postgres"). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"

/* A key's name as the advisory lock's bigint, as text: its 32-bit FNV-1a
 * hash, which pg_locks shows as the lock's objid. */
static void key_number(const char *key, char out[16])
{
	unsigned long h = 2166136261u;

	for (const char *k = key; *k; k++)
		h = ((h ^ (unsigned char)*k) * 16777619u) & 0xffffffffu;
	snprintf(out, 16, "%lu", h);
}

static int prepare(PGconn *c, const char *name, const char *sql)
{
	PGresult *r = PQprepare(c, name, sql, 1, NULL);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok)
		fprintf(stderr, "pg-peer: %s", PQerrorMessage(c));
	PQclear(r);
	return ok ? 0 : -1;
}

static void *pg_connect(const char *target)
{
	PGconn *c = PQconnectdb(target);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pg-peer: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	if (prepare(c, "lock", "SELECT pg_advisory_lock($1::bigint)") < 0 ||
	    prepare(c, "unlock", "SELECT pg_advisory_unlock($1::bigint)") < 0 ||
	    prepare(c, "waiting", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
		    " AND NOT granted AND objid = $1::bigint::oid") < 0) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

static void pg_disconnect(void *conn)
{
	PQfinish(conn);
}

/* The one value the prepared statement name returns for key, or NULL. */
static PGresult *run(PGconn *c, const char *name, const char *key)
{
	char number[16];
	const char *params[1] = { number };
	PGresult *r;

	key_number(key, number);
	r = PQexecPrepared(c, name, 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		fprintf(stderr, "pg-peer: %s: %s", name, PQerrorMessage(c));
		PQclear(r);
		return NULL;
	}
	return r;
}

static int pg_lock(void *conn, const char *key)
{
	PGresult *r = run(conn, "lock", key);

	PQclear(r);
	return r ? 0 : -1;
}

static int pg_unlock(void *conn, const char *key)
{
	PGresult *r = run(conn, "unlock", key);
	int ok = r && strcmp(PQgetvalue(r, 0, 0), "t") == 0;

	if (r && !ok)
		fprintf(stderr, "pg-peer: pg_advisory_unlock: the lock was not held\n");
	PQclear(r);
	return ok ? 0 : -1;
}

static int pg_waiting(void *conn, const char *key)
{
	PGresult *r = run(conn, "waiting", key);
	int n = r ? atoi(PQgetvalue(r, 0, 0)) : -1;

	PQclear(r);
	return n < 0 ? -1 : n > 0;
}

int main(int argc, char **argv)
{
	static const struct peer pg = {
		"pg", pg_connect, pg_disconnect, pg_lock, pg_unlock, pg_waiting,
	};

	return peer_main(&pg, argc, argv);
}
