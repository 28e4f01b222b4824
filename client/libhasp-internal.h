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

/* How a lease the client held ended, as the daemon said (an event). */
enum libhasp_loss {
	LIBHASP_REVOKED = 1,
	LIBHASP_EXPIRED = 2,
};

struct libhasp_lost {
	uint64_t lease;
	enum libhasp_loss how;
};

struct hasp_client {
	int fd;
	int64_t last_id;
	struct frame_buf rb;
	struct libhasp_lost *lost_leases; /* leases the daemon said it revoked or expired */
	size_t nlost, lost_cap;
	bool lost;              /* the connection ended: every lease with it */
	char *socket_path;      /* the socket connected to */
	char errmsg[1536];
};

struct hasp_lease {
	uint64_t id;
	uint64_t fence;
	enum hasp_mode mode;
	int64_t ttl_ms;                         /* 0: none */
	char token[PROTO_TOKEN_HEX + 1];        /* a checkout's, else "" */
	char key[];
};

/* An acquire, whichever options struct the caller gave. */
struct libhasp_acquire {
	enum hasp_mode mode;
	int64_t timeout_ms;
	int64_t ttl_ms;         /* 0: none */
	bool detach;            /* a checkout */
	const char *owner;
	const char *message;
	void (*waiting)(void *userdata);
	int64_t waiting_after_ms;
	void *userdata;
};

/* Takes fd, connected to the daemon at path, as c's connection. Returns 0
 * or -ENOMEM (fd closed). */
int libhasp_connected(hasp_client *c, int fd, const char *path);
/* Sets c's message; returns err. */
int libhasp_error(hasp_client *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* 0, or -EINVAL with c's message: key is not 1 to 1024 bytes of UTF-8,
 * token not 32 lowercase hex digits. */
int libhasp_check_key(hasp_client *c, const char *key);
int libhasp_check_token(hasp_client *c, const char *token);
/* One request, one reply in *rep (proto_reply_done() it): >= 0, or a
 * negative error with c's message set (-HASP_E_* for the daemon's). args
 * is consumed; NULL for an op with arguments means out of memory. fd, if
 * >= 0, travels with the request. */
int libhasp_call(hasp_client *c, enum proto_op op, json_t *args, int fd, struct proto_reply *rep);
/* libhasp_call() on the file at path: opened here (never created; for
 * reading, else writing, else O_PATH; a relative path from the working
 * directory), named in args as "path" with "fd": true, its descriptor
 * sent with the request. -errno when it cannot be opened. */
int libhasp_call_file(hasp_client *c, enum proto_op op, json_t *args, const char *path,
		      struct proto_reply *rep);
/* Takes a lease on key, or on the file at path (hasp_lock_file()'s
 * way), as a asks. */
int libhasp_acquire_key(hasp_client *c, const char *key, const struct libhasp_acquire *a,
			hasp_lease **ret_lease);
int libhasp_acquire_file(hasp_client *c, const char *path, const struct libhasp_acquire *a,
			 hasp_lease **ret_lease);
