/* A client of another lock server, measured the way hasp-bench measures
 * hasp, for compare.sh: an uncontended lock+unlock pair, and a hand-off
 * (the holder unlocks at t0, a waiter blocked in lock returns at t1). */
#pragma once

/* One server's lock, through its own client library. Every call returns
 * 0 on success, or -1 after saying why on stderr. */
struct peer {
	const char *name;
	/* A connection to target (conninfo, socket path, host:port). */
	void *(*connect)(const char *target);
	void (*disconnect)(void *conn);
	/* Take key (waiting for it as long as it takes), and give it back. */
	int (*lock)(void *conn, const char *key);
	int (*unlock)(void *conn, const char *key);
	/* Asked on the holder's connection: 1 when someone waits for key, 0
	 * when not yet, -1 on failure. NULL when a lock cannot be waited for in
	 * the server (a client would poll): no hand-off is measured. */
	int (*waiting)(void *conn, const char *key);
};

/* Usage: NAME-peer [--pairs N] [--handoffs N] [--settle-ms N] TARGET
 *        NAME-peer --probe TARGET    exit 0 when the server serves a lock
 * --settle-ms: the holder keeps the lock that long after it sees the
 * waiter waiting, before it unlocks (a server may take a while to settle
 * a new waiter: etcd's watches catch up every 100 ms).
 * Prints a line a measurement:
 *        result pair MEDIAN_US P99_US N
 *        result handoff MEDIAN_US P99_US N */
int peer_main(const struct peer *p, int argc, char **argv);
