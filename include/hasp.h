/* libhasp: the client library of hasp, a local lock service.
 *
 * One hasp_client is one connection to haspd, which is one session: every
 * lease taken through it ends when it is closed or when the process dies.
 * Thread safety: a hasp_client and its leases may be used by one thread at a
 * time; distinct clients are independent and may be used concurrently.
 *
 * Errors: functions that can fail return an int, >= 0 on success, or a
 * negative code: -errno for a system error (-ECONNREFUSED when no daemon
 * listens, -ECONNRESET when the daemon went away, -ENOMEM, ...), or
 * -HASP_E_* for an error the daemon reported. hasp_client_errmsg() then gives
 * the daemon's message, which for a conflict names the holder. Output
 * parameters (ret_*) are written only on success.
 *
 * A lost connection (the daemon stopped, crashed or was restarted) ends
 * every lease of the client; from then on every call on it returns
 * -ECONNRESET. Connect again for a new session: a restarted daemon's fences
 * are above every fence it gave before. A daemon over max_sessions or
 * max_user_sessions, or out of descriptors, refuses a new session: the
 * first call returns -HASP_E_LIMIT, with the reason in hasp_client_errmsg(). */
#ifndef HASP_H
#define HASP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HASP_VERSION_MAJOR 0
#define HASP_VERSION_MINOR 1
#define HASP_VERSION_PATCH 0

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *hasp_version(void);

/* Errors the daemon reports, returned negated. Values are stable. */
enum hasp_errcode {
	HASP_E_BASE = 1000,
	HASP_E_BAD_REQUEST = HASP_E_BASE, /* malformed or invalid request */
	HASP_E_UNKNOWN_OP,        /* the daemon does not know the operation */
	HASP_E_BUSY,              /* held, and timeout 0 asked not to wait */
	HASP_E_TIMEOUT,           /* still held when the timeout ran out */
	HASP_E_CANCELLED,         /* the waiting request was cancelled */
	HASP_E_ALREADY_HELD,      /* this session holds or waits for it already */
	HASP_E_UNKNOWN_LEASE,     /* no such lease in this session */
	HASP_E_UNKNOWN_REQUEST,   /* no such waiting request to cancel */
	HASP_E_DEADLOCK,
	HASP_E_PERMISSION_DENIED,
	HASP_E_LIMIT,             /* a daemon limit was reached */
	HASP_E_TOO_LARGE,         /* a request line over the size limit */
	HASP_E_UNSUPPORTED,
	HASP_E_INTERNAL,
	HASP_E_PROTOCOL,          /* the daemon's reply could not be understood */
	/* libhasp refused the socket: its directory could be anyone's, or
	 * whoever serves it is not root, the caller or the socket's owner.
	 * Nothing was sent to it. Since HASP_2. */
	HASP_E_UNTRUSTED,
};

enum hasp_mode {
	HASP_EXCLUSIVE = 0,
	HASP_SHARED = 1,
};

#define HASP_WAIT_FOREVER (-1)

typedef struct hasp_client hasp_client;
typedef struct hasp_lease hasp_lease;

struct hasp_lock_options {
	enum hasp_mode mode;
	int64_t timeout_ms;       /* HASP_WAIT_FOREVER, 0 (try once) or ms */
	const char *owner;        /* optional: who takes it, <= 256 bytes */
	const char *message;      /* optional: why, <= 1024 bytes */
	/* Optional: called once if the lease is still not granted after
	 * waiting_after_ms. It must not use the client that is waiting. */
	void (*waiting)(void *userdata);
	int64_t waiting_after_ms;
	void *userdata;
};

#define HASP_LOCK_OPTIONS_INIT { HASP_EXCLUSIVE, HASP_WAIT_FOREVER, NULL, NULL, NULL, 0, NULL }

/* The socket haspd listens on by default: $HASP_SOCKET, else
 * $XDG_RUNTIME_DIR/hasp/haspd.sock, else /run/hasp/haspd.sock for root, else
 * /tmp/hasp-$UID/haspd.sock. Returns 0 or -ENAMETOOLONG. */
int hasp_default_socket(char *buf, size_t size);

/* Connects to haspd at socket_path (NULL: the default). Returns 0,
 * -ECONNREFUSED/-ENOENT when no daemon listens, -HASP_E_UNTRUSTED when the
 * socket is not to be trusted (below), -ENOMEM. For the reason of a
 * failure, use hasp_client_new() and hasp_client_connect().
 *
 * Before it connects, libhasp checks who could have put the socket there:
 * its directory (not a symbolic link) must not be writable by group or
 * others, and must belong to root, to the caller (euid), or to the socket's
 * owner (a daemon under its own uid in a directory of its own); the
 * per-user default directory, /tmp/hasp-$UID, must be the caller's own with
 * mode 0700; the socket must not be a symbolic link. Once connected, the
 * daemon's uid (SO_PEERCRED) must be root, the caller's, or that of the
 * socket's or the directory's owner. Otherwise it sends nothing and returns
 * -HASP_E_UNTRUSTED: a fake server in a squatted /tmp/hasp-$UID never sees
 * a request or a descriptor. */
int hasp_connect(const char *socket_path, hasp_client **ret_client);
/* A client that is not connected yet, so that a failed connection can
 * say why in hasp_client_errmsg(). Returns 0 or -ENOMEM. Since HASP_2. */
int hasp_client_new(hasp_client **ret_client);
/* Connects c as hasp_connect() does; on failure hasp_client_errmsg(c)
 * says why (for -HASP_E_UNTRUSTED, naming the directory, its owner and its
 * mode) and c may be connected again or closed. -EISCONN if c is connected
 * already. Calls on a client that is not connected return -ENOTCONN.
 * Since HASP_2. */
int hasp_client_connect(hasp_client *c, const char *socket_path);
/* Ends the session (its leases are released) and frees c. Accepts NULL;
 * returns NULL. Lease handles stay valid until hasp_lease_free(). */
hasp_client *hasp_close(hasp_client *c);
/* The connection's descriptor, e.g. to keep a session alive in a child. */
int hasp_client_fd(const hasp_client *c);
/* The daemon's message for the last error on c ("" if none). */
const char *hasp_client_errmsg(const hasp_client *c);

/* Takes a lease on a named key. Returns 0 and the lease in *ret_lease, or
 * -HASP_E_BUSY, -HASP_E_TIMEOUT, -HASP_E_ALREADY_HELD, -HASP_E_BAD_REQUEST,
 * -HASP_E_LIMIT, -EINVAL (key, owner or message not UTF-8), or a system
 * error. opts may be NULL (exclusive, forever).
 * A failed call leaves no lease behind: where its answer was lost (out of
 * memory, an unreadable reply) the connection is dropped, and later calls
 * on c return -ECONNRESET. */
int hasp_lock(hasp_client *c, const char *key, const struct hasp_lock_options *opts,
	      hasp_lease **ret_lease);
/* Takes a lease on a file, as a real flock(2) lock that programs outside
 * hasp see too. The file is opened here (created, mode 0666 minus umask, if
 * missing; a relative path is taken from the working directory) and its
 * descriptor passed to the daemon, so the caller's own permissions apply.
 * Two paths to one file (links, symlinks) are one lock. The descriptor is
 * the file's identity and the path only its name, so any path works: one
 * that is not UTF-8 is listed with U+FFFD for its stray bytes. Errors as
 * hasp_lock() (-EINVAL: owner or message not UTF-8), and -errno when the
 * file cannot be opened (-ENOENT for a missing directory, -EACCES). */
int hasp_lock_file(hasp_client *c, const char *path, const struct hasp_lock_options *opts,
		   hasp_lease **ret_lease);
/* Releases the lease and frees l, whatever the result. Returns 0,
 * -HASP_E_UNKNOWN_LEASE (it had ended already), or a system error. */
int hasp_unlock(hasp_client *c, hasp_lease *l);
/* Frees a lease handle without releasing it. Accepts NULL; returns NULL. */
hasp_lease *hasp_lease_free(hasp_lease *l);

uint64_t hasp_lease_id(const hasp_lease *l);
/* Strictly increasing over every grant of the daemon, across restarts. */
uint64_t hasp_lease_fence(const hasp_lease *l);
enum hasp_mode hasp_lease_mode(const hasp_lease *l);
/* The key, or for a file lease the absolute path it was asked for. */
const char *hasp_lease_key(const hasp_lease *l);

/* Every resource with its holders and waiters, as the JSON text of an
 * array in key order (see hasp_list_page_json), fetched page by page, or
 * the daemon's counters, the reply's "stats" member; free() it. A list is
 * not a snapshot: it is as the daemon saw each page. */
int hasp_list_json(hasp_client *c, char **ret_json);
int hasp_stats_json(hasp_client *c, char **ret_json);

/* Which resources a page of the list holds. Since HASP_2. */
struct hasp_list_options {
	size_t size;            /* sizeof(struct hasp_list_options) */
	const char *prefix;     /* only names (keys, paths) that start with it; NULL: all */
	const char *after;      /* only names after it: a previous page's next; NULL: from the first */
	unsigned limit;         /* resources per page, 1 to 10000; 0: the daemon's default (1000) */
};

#define HASP_LIST_OPTIONS_INIT { sizeof(struct hasp_list_options), NULL, NULL, 0 }

/* One page of the list: resources whose name (a key, or a file's path with
 * U+FFFD for what is not UTF-8) starts with opts->prefix and comes after
 * opts->after, in the byte order of names, at most opts->limit of them (a
 * group of resources with one name is never split: it can pass the limit)
 * and at most about 8 MiB. *ret_json is the JSON array; *ret_next is the
 * name to give as after for the next page, or NULL when this page is the
 * last; free() both. opts may be NULL (the first page of everything).
 * Returns 0, -EINVAL (prefix or after not UTF-8, or opts->size too small),
 * -HASP_E_BAD_REQUEST (a limit out of range), or a system error. Since
 * HASP_2. */
int hasp_list_page_json(hasp_client *c, const struct hasp_list_options *opts, char **ret_json,
			char **ret_next);
/* A round trip to the daemon. */
int hasp_ping(hasp_client *c);

/* Administrative: ends a lease whoever holds it; the holder is told. Allowed
 * to root, the daemon's uid and the holder's uid. Returns 0,
 * -HASP_E_UNKNOWN_LEASE or -HASP_E_PERMISSION_DENIED. */
int hasp_revoke(hasp_client *c, uint64_t lease_id);
/* Ends every lease on key this caller may revoke (waiters stay queued).
 * Returns how many, or -HASP_E_PERMISSION_DENIED when none could be. */
int hasp_revoke_key(hasp_client *c, const char *key);
/* 1 if the daemon revoked l, 0 if not (as far as the daemon has said),
 * -ECONNRESET if the connection to the daemon was lost (it stopped, crashed
 * or restarted), which ends every lease of c. Never blocks. */
int hasp_lease_revoked(hasp_client *c, const hasp_lease *l);

/* A short description of a code returned by this library. */
const char *hasp_strerror(int err);
/* The protocol's name of a -HASP_E_* code ("busy", "timeout", ...), or NULL. */
const char *hasp_errcode_name(int err);

#ifdef __cplusplus
}
#endif

#endif
