/* Checkouts: leases detached from the session that asked for them (the
 * lock table's detached owners, one per uid: users.h), kept in the journal
 * (journal.h) so that they outlive the session and the daemon, and ended
 * by their token, by their uid, by a revoke or by their time-to-live. The
 * driver's half: who may name one, the journal written before every
 * answer that depends on it, and the restore at start. */
#pragma once

#include <stdbool.h>

struct haspd;
struct session;
struct proto_request;
struct lt_entry;

/* Reads the journal at path, restores its checkouts into the lock table
 * (ids, fences, owners, tokens, TTLs by the wall clock; a file only if its
 * path still names the same file), and rewrites it with what was kept.
 * Before the socket is served. An unreadable journal stops the daemon
 * (-1, logged) unless forget, which moves it aside and starts without its
 * checkouts. Without a path, checkouts are unavailable. */
int checkouts_open(struct haspd *d, const char *path, bool forget);
/* The daemon stops: the journal is closed first, so that nothing of the
 * sessions' end (a waiting checkout granted as another session's lease
 * goes, the rewrite of a shrinking table) reaches it. */
void checkouts_stop(struct haspd *d);
/* Then lets go of every checkout in the table (not in the journal: the
 * next start restores them). */
void checkouts_done(struct haspd *d);

/* Whether s may ask for one more checkout (an acquire with detach): the
 * journal is there, and the sender's uid is below max_user_checkouts.
 * False when an error was sent. */
bool checkouts_admit(struct session *s, const struct proto_request *req);
/* A lease granted to a request that asked to detach: its record journaled,
 * then detached to its uid's owner and answered with its token. When the
 * journal fails, the request is answered with the error and the lease is
 * ended by checkouts_sweep(). */
void checkouts_granted(struct haspd *d, struct lt_entry *e);
/* Syncs the journal's records of this callback, before any answer that
 * depends on them is sent (haspd_sync()). When that fails, the daemon
 * stops at once, having sent none of those answers. */
void checkouts_sync(struct haspd *d);
/* Ends one lease whose checkout failed, or compacts the journal when it is
 * due: true when a lease was ended (its changes are then to be applied). */
bool checkouts_sweep(struct haspd *d);
/* A checkout the lock table ended (its TTL, a revoke): out of the journal. */
void checkouts_ended(struct haspd *d, struct lt_entry *e);

/* The release op in all its forms (by lease, token, key or path). */
void checkouts_release(struct session *s, const struct proto_request *req);
/* The renew op. */
void checkouts_renew(struct session *s, const struct proto_request *req);
