#include "reply.h"

#include <stdio.h>
#include <stdlib.h>

#include "haspd.h"
#include "proto-daemon.h"
#include "report.h"
#include "session.h"

/* Holders listed in a conflict error; the full list is the list op's job. */
#define ERROR_HOLDERS_MAX 16

/* Queues a malloc'ed reply line and frees it. */
void reply_line(struct session *s, char *line, const size_t *len)
{
	if (!line) {
		session_break(s); /* ended at the next flush, not inside this request */
		return;
	}
	session_write(s, line, *len);
	free(line);
}

void reply_ok(struct session *s, int64_t id, json_t *body)
{
	size_t len = 0;

	reply_line(s, body ? proto_reply_ok(id, body, &len) : NULL, &len);
}

void reply_ok_empty(struct session *s, int64_t id)
{
	char buf[PROTO_SMALL_REPLY];

	session_write(s, buf, proto_fmt_ok(buf, id));
}

void reply_error(struct session *s, bool has_id, int64_t id, int code, const char *msg,
			json_t *holders)
{
	size_t len = 0;

	reply_line(s, proto_reply_error(has_id, id, code, msg, holders, &len), &len);
}

/* An error about a resource that others hold: the message names them. A
 * file that only a process outside hasp locks may have no resource left. */
void reply_conflict(struct session *s, int64_t id, int code, const char *what,
			   const struct lt_resource *r, const char *name)
{
	char held[256], msg[1400];

	report_conflict(s->d, r, held, sizeof(held));
	snprintf(msg, sizeof(msg), "%s: '%.1024s' is %s", what, r ? report_name(r) : name, held);
	reply_error(s, true, id, code, msg, r ? report_holders(s->d, r, ERROR_HOLDERS_MAX) : NULL);
}

void reply_grant(struct session *s, const struct lt_entry *e)
{
	char buf[PROTO_SMALL_REPLY];
	size_t len = proto_fmt_grant(buf, e->tag, e->id, e->fence, e->mode == LT_SHARED);

	session_write(s, buf, len);
}

