/* What libhasp's files share, never installed: the client and lease as
 * they are, and the calls the public functions are built on (libhasp.c).
 * acquire.c, checkin.c and renew.c add checkouts and TTLs on top. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "hasp.h"
#include "proto-client.h"

#define HASP_EXPORT __attribute__((visibility("default")))

/* How a lease the client held ended, as the daemon said (an event); the
 * values are hasp_lease_revoked()'s. */
enum libhasp_loss {
	LIBHASP_REVOKED = 1,
	LIBHASP_EXPIRED = 2,
	LIBHASP_LOST = 3,       /* cluster mode: haspd could not keep it in etcd */
};

struct libhasp_lost {
	uint64_t lease;
	enum libhasp_loss how;
};

#define LIBHASP_NEVER INT64_MAX
/* How long after an acquire's timeout the client stops waiting for
 * haspd's own answer (which may be late on a busy machine, or never come
 * from a stopped daemon); $HASP_GRACE_MS, for slower places (valgrind). */
#define LIBHASP_GRACE_MS 500

struct libhasp_call;
/* A call's end: its reply (rep, ok or not; err 0), or err < 0 and rep
 * NULL when none is waited for any more: the connection ended, -ETIMEDOUT
 * at its deadline, or -ECANCELED at hasp_close() (free ctx, tell no
 * one). The call is unlinked before, and freed after. */
typedef void libhasp_done_fn(hasp_client *c, struct libhasp_call *k, int err,
			     struct proto_reply *rep);

/* One request on the wire whose reply is awaited, in the order sent. */
struct libhasp_call {
	struct libhasp_call *prev, *next;
	int64_t id;
	int64_t deadline_ms;    /* monotonic; LIBHASP_NEVER: none */
	libhasp_done_fn *done;
	void *ctx;
	int unlock_fd;          /* unwanted fd-form grant: flock(LOCK_UN) it; or -1 */
	bool matters;           /* a checkout's fate: awaited at hasp_close() */
};

/* A request line not yet (wholly) written. */
struct libhasp_out {
	struct libhasp_out *next;
	size_t len, off;
	int fd;                 /* sent with the line's first byte, then closed; or -1 */
	char line[];
};

struct hasp_client {
	int fd;
	int64_t last_id;
	struct frame_buf rb;
	struct libhasp_out *out, **out_tail;    /* to write, in order */
	struct libhasp_call *calls, *calls_tail; /* awaiting replies, in order sent */
	struct hasp_request *requests;          /* async acquires not finished */
	struct libhasp_lost *lost_leases; /* leases the daemon said it revoked, expired or lost */
	size_t nlost, lost_cap;
	bool lost;              /* the connection ended: every lease with it */
	int lost_err;           /* what every call says since: -ECONNRESET, or the refusal */
	char lost_msg[1024];    /* and the message it says it with */
	bool told_lost;         /* the event handler knows */
	char *socket_path;      /* the socket connected to */
	char *name;             /* for hello; NULL: the program's */
	char *server;           /* the hello's answer */
	hasp_event_handler on_event;
	void *event_userdata;
	int64_t call_timeout_ms; /* 0: none */
	int64_t grace_ms;       /* LIBHASP_GRACE_MS, or $HASP_GRACE_MS */
	bool interruptible;
	json_t *conflict;       /* the last busy/timeout's holders, or NULL */
	json_t *cycle;          /* the last deadlock's cycle, or NULL */
	hasp_watch_callback on_watch; /* hasp_watch()'s, from its reply on; or NULL */
	void *watch_userdata;
	uint64_t watch_missed;  /* events not handed on for want of memory */
	char errmsg[1536];
};

struct hasp_lease {
	uint64_t id;
	uint64_t fence;
	enum hasp_mode mode;
	bool on_key;                            /* a named key's, not a file's */
	const hasp_client *client;              /* the one that took it */
	int64_t ttl_ms;                         /* 0: none */
	char token[PROTO_TOKEN_HEX + 1];        /* a checkout's, else "" */
	char key[];
};

/* An acquire, whichever options struct the caller gave. */
struct libhasp_acquire {
	enum hasp_mode mode;
	int64_t timeout_ms;
	int64_t ttl_ms;         /* 0: none */
	uint32_t limit;         /* a semaphore's; 0: none */
	bool detach;            /* a checkout */
	const char *owner;
	const char *message;
	const char *keys_json;  /* LIBHASP_KEYS: the "keys" member, as JSON text */
	void (*waiting)(void *userdata);
	int64_t waiting_after_ms;
	void *userdata;
};

/* hasp_lock_options (NULL: the defaults) as an acquire. */
struct libhasp_acquire libhasp_lock_acquire(const struct hasp_lock_options *o);
/* Takes fd, connected to the daemon at path, as c's connection, and
 * sends the hello. Returns 0 or -ENOMEM (fd closed). */
int libhasp_connected(hasp_client *c, int fd, const char *path);
/* Sets c's message; returns err. */
int libhasp_error(hasp_client *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A failed reply's error as c's: its message, its holders (a conflict);
 * returns -code. */
int libhasp_reply_error(hasp_client *c, const struct proto_reply *rep);
/* 0, or -EINVAL with c's message: key is not 1 to 1024 bytes of UTF-8,
 * token not 32 lowercase hex digits. */
int libhasp_check_key(hasp_client *c, const char *key);
int libhasp_check_token(hasp_client *c, const char *token);
int64_t libhasp_now_ms(void);
/* The monotonic time ms after now; LIBHASP_NEVER for a wait of more than
 * about 30 years (or a negative one), which cannot be told from for
 * ever. */
int64_t libhasp_after(int64_t now, int64_t ms);

/* ---- the core (core.c) ---- */

/* Sends a request (args consumed; done NULL: its answer goes to nobody; NULL for an op with arguments means out
 * of memory) with fd (if >= 0; duplicated here) and awaits its reply with
 * done until deadline_ms. It is queued, and written by libhasp_flush(). Returns 0 and the call in *ret (if not NULL), or
 * a negative error with c's message set, done never called. */
int libhasp_send(hasp_client *c, enum proto_op op, json_t *args, int fd, int64_t deadline_ms,
		 libhasp_done_fn *done, void *ctx, struct libhasp_call **ret);
/* The same, the request's members written as text (m not consumed; its
 * nomem is out of memory). */
int libhasp_send_members(hasp_client *c, enum proto_op op, const struct proto_members *m,
			 int fd, int64_t deadline_ms, libhasp_done_fn *done, void *ctx,
			 struct libhasp_call **ret);
/* A release's members (proto_members_free() them): the lease, and the
 * token if not NULL or "". */
void libhasp_members_release(struct proto_members *m, uint64_t lease, const char *token);
/* Writes what the socket takes now, without blocking. A failure to write
 * is the connection's end, which every call in flight is told. Returns 0
 * or that end. */
int libhasp_flush(hasp_client *c);
/* The same, but an error is left for the next libhasp_flush() to find:
 * no callback runs. */
void libhasp_write(hasp_client *c);
/* The answer to the acquire id, already ended (its deadline passed), is
 * awaited after all: a grant in it is given back (on fd, if >= 0: the fd
 * form's flock). 0, or -ENOMEM having dropped the connection. */
int libhasp_expect_grant(hasp_client *c, int64_t id, int fd, bool checkout);
/* k's answer (k still in flight) goes to nobody; with grant, what it
 * grants is given back, as libhasp_expect_grant() does. */
void libhasp_call_forget(hasp_client *c, struct libhasp_call *k, bool grant, int fd,
			 bool checkout);
/* hasp_close(): whether a checkout's release or an unwanted checkout's
 * grant is still awaited; every call's ctx let go (-ECANCELED); all
 * freed. */
bool libhasp_awaits_checkouts(const hasp_client *c);
void libhasp_calls_cancel(hasp_client *c);
void libhasp_calls_free(hasp_client *c);
/* Sends a release of the lease a grant (rep) gave, answered to nobody. */
void libhasp_release_granted(hasp_client *c, const struct proto_reply *rep);
/* The connection is given up (a reply that cannot be read, a notice that
 * cannot be kept): the daemon ends the session and every lease of it. */
int libhasp_drop(hasp_client *c, int code, const char *what);
/* For a call the lost connection ends: its error and message (the
 * daemon's refusal the first time, -ECONNRESET after). */
int libhasp_lost_error(hasp_client *c);
/* Reads and dispatches what has arrived, without blocking (process() but
 * no deadlines). */
int libhasp_drain(hasp_client *c);
/* The earliest deadline or waiting notice, LIBHASP_NEVER if none. */
int64_t libhasp_next_wakeup(const hasp_client *c);

/* ---- watching (watch.c) ---- */

/* Whether rep (the line's) is a watch event: if so, handed to
 * c->on_watch, as the line's text, when a watch is on. */
bool libhasp_watch_event(hasp_client *c, const struct proto_reply *rep, const char *line,
			 size_t len);

/* ---- blocking calls (call.c) ---- */

/* Runs c until *finished, the deadlines of calls ending their waits:
 * 0, -EINTR (interruptible and a signal came), or a system error. */
int libhasp_wait(hasp_client *c, const bool *finished);
/* Returns once what is queued is in the socket (at once, unless the
 * socket is full): 0, or a negative error with c's message set. */
int libhasp_written(hasp_client *c);
/* One request, one reply in *rep (proto_reply_done() it): >= 0, or a
 * negative error with c's message set (-HASP_E_* for the daemon's;
 * -ETIMEDOUT past the call timeout). args is consumed; NULL for an op with
 * arguments means out of memory. fd, if >= 0, travels with the request. */
int libhasp_call(hasp_client *c, enum proto_op op, json_t *args, int fd, struct proto_reply *rep);
/* The same with this deadline (monotonic ms, LIBHASP_NEVER: none); a
 * request that waits in the daemon (waits) is cancelled there when the
 * call is interrupted. */
int libhasp_call_until(hasp_client *c, enum proto_op op, json_t *args, int fd, int64_t deadline,
		       bool waits, struct proto_reply *rep);
/* libhasp_call() on the file at path: opened here (never created; for
 * reading, else writing, else O_PATH; a relative path from the working
 * directory), named in args as "path" with "fd": true, its descriptor
 * sent with the request. -errno when it cannot be opened. */
int libhasp_call_file(hasp_client *c, enum proto_op op, json_t *args, const char *path,
		      struct proto_reply *rep);
/* The path fd was opened by, as /proc says, into buf; -1 if none. */
int libhasp_fd_path(int fd, char *buf, size_t size);
/* path as the protocol wants it, absolute: path itself, or abs (PATH_MAX
 * bytes) filled from the working directory. NULL with the error set. */
const char *libhasp_absolute_path(hasp_client *c, const char *path, char *abs, int *ret_err);

/* ---- acquires (request.c) ---- */

/* What kind of resource an acquire names. */
enum libhasp_target {
	LIBHASP_KEY,
	LIBHASP_FILE,           /* a path, opened (created) here */
	LIBHASP_FD,             /* the caller's descriptor (flock(1)'s fd form) */
	LIBHASP_KEYS,           /* several named keys (a multi-key acquire): the name
				 * is their names joined by newlines, what the lease
				 * shows; libhasp_acquire.keys_json is the request's */
};

/* The caller's options as an acquire: the members that fit in its size
 * (an older caller's smaller struct), the defaults for the rest. */
int libhasp_acquire_options(hasp_client *c, const struct hasp_acquire_options *o, bool detach,
			    struct libhasp_acquire *ret);
/* Starts an acquire as hasp_lock_async() does. */
int libhasp_start(hasp_client *c, enum libhasp_target t, const char *name, int fd,
		  const struct libhasp_acquire *a, hasp_lock_callback cb, void *userdata,
		  hasp_request **ret_req);
/* An acquire, blocking: started, then waited for. */
int libhasp_acquire(hasp_client *c, enum libhasp_target t, const char *name, int fd,
		    const struct libhasp_acquire *a, hasp_lease **ret_lease);
/* The async acquires' waiting notices: the earliest, and those due. */
int64_t libhasp_requests_next_notice(const hasp_client *c);
void libhasp_requests_notify(hasp_client *c, int64_t now);
/* Frees every unfinished request, calling nobody (hasp_close()). */
void libhasp_requests_free(hasp_client *c);
void libhasp_conflict_clear(hasp_client *c);
