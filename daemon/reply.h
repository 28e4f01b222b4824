/* Replies to one session: queued on its output, written by haspd_sync(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "locktable.h"

struct session;

/* Holders listed in a conflict error; the full list is the list op's job. */
#define ERROR_HOLDERS_MAX 16

/* Queues a malloc'ed line (NULL: out of memory, which ends the session)
 * and frees it. */
void reply_line(struct session *s, char *line, const size_t *len);
/* {"id":ID,"ok":true, ...body}; body is consumed. A NULL body is one that
 * could not be built for want of memory: the session ends instead. */
void reply_ok(struct session *s, int64_t id, json_t *body);
/* {"id":ID,"ok":true}, without allocating. */
void reply_ok_empty(struct session *s, int64_t id);
/* An error; holders may be NULL and is consumed. */
void reply_error(struct session *s, bool has_id, int64_t id, int code, const char *msg,
		 json_t *holders);
/* An error about a resource others hold: the message names them. A file
 * that only a process outside hasp locks may have no resource (r NULL). */
void reply_conflict(struct session *s, int64_t id, int code, const char *what,
		    const struct lt_resource *r, const char *name);
struct lt_request;
/* deadlock: lr's wait would have closed the cycle the table reports. */
void reply_deadlock(struct session *s, int64_t id, const struct lt_request *lr);
/* The grant of a lease, to the request that asked for it. */
void reply_grant(struct session *s, const struct lt_entry *e);
