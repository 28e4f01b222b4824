#include "audit.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "events.h"
#include "haspd.h"
#include "report.h"
#include "text.h"

#define AUDIT_FIELDS 24
#define AUDIT_MESSAGE_MAX 1024

/* One entry's fields, NAME=value, as the journal takes them. */
struct audit_entry {
	struct {
		const char *name;
		const char *value;
		size_t len;
	} f[AUDIT_FIELDS];
	size_t n;
	char nums[AUDIT_FIELDS][24];
	size_t nnums;
};

/* Whether stderr is the journal's stream (JOURNAL_STREAM is its
 * "device:inode"), as sd_journal_stream_fd(3) says to check. */
static bool audit_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return env && sscanf(env, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	       st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

int audit_init(struct audit *a, const char *journal_socket)
{
	const char *path = journal_socket[0] ? journal_socket :
			   audit_stderr_is_journal() ? AUDIT_JOURNAL_SOCKET : NULL;

	memset(a, 0, sizeof(*a));
	a->fd = -1;
	if (!path)
		return 0;
	if (strlen(path) >= sizeof(a->addr.sun_path))
		return -ENAMETOOLONG;
	a->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (a->fd < 0)
		return -errno;
	a->addr.sun_family = AF_UNIX;
	strcpy(a->addr.sun_path, path);
	a->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
	return 0;
}

void audit_done(struct audit *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
}

/* ---- which events, and what is said ---- */

static bool audit_wanted(const struct haspd *d, const struct event *ev)
{
	uint64_t wait_us = (uint64_t)d->cfg.log_lock_waits_ms * 1000;

	switch (ev->kind) {
	case EVENT_GRANTED:
		return event_is_checkout(ev) || (wait_us && ev->us >= wait_us);
	case EVENT_RELEASED:
		return ev->reason == EVENT_BY_REVOKE || ev->reason == EVENT_BY_EXPIRY ||
		       ev->reason == EVENT_BY_CHECKIN;
	case EVENT_TIMEOUT:
	case EVENT_DEADLOCK:
		return true;
	default:
		return false;
	}
}

static void audit_add(struct audit_entry *en, const char *name, const char *value, size_t len)
{
	if (en->n == AUDIT_FIELDS || !value)
		return;
	en->f[en->n].name = name;
	en->f[en->n].value = value;
	en->f[en->n].len = len;
	en->n++;
}

static void audit_add_text(struct audit_entry *en, const char *name, const char *value)
{
	if (value)
		audit_add(en, name, value, strlen(value));
}

static void audit_add_int(struct audit_entry *en, const char *name, uint64_t v)
{
	char *buf = en->nums[en->nnums++];

	audit_add(en, name, buf, (size_t)snprintf(buf, sizeof(en->nums[0]), "%" PRIu64, v));
}

/* Whether ev is told by its lease (a grant, or a lease's end), not by its
 * request. */
static bool audit_of_lease(const struct event *ev)
{
	return ev->e && (ev->e->held || ev->kind == EVENT_GRANTED);
}

/* What is said of ev's lease or request: "lease 31" or "request 7". */
static void audit_subject(const struct event *ev, char *buf, size_t n)
{
	if (audit_of_lease(ev))
		snprintf(buf, n, "%s %" PRIu64, event_is_checkout(ev) ? "checkout" : "lease",
			 ev->e->id);
	else
		snprintf(buf, n, "request %" PRId64, ev->e ? ev->e->tag : ev->req->tag);
}

/* The plain sentence: MESSAGE=, and the log line. */
static void audit_sentence(const struct event *ev, const struct lt_cred *who, char *buf,
			   size_t n)
{
	const char *name = report_name(ev->res);
	char subject[48], tail[96] = "";
	uint64_t ms = ev->us / 1000;

	audit_subject(ev, subject, sizeof(subject));
	switch (ev->kind) {
	case EVENT_GRANTED:
		snprintf(tail, sizeof(tail), "granted after waiting %" PRIu64 " ms", ms);
		break;
	case EVENT_TIMEOUT:
		snprintf(tail, sizeof(tail), "timed out after %" PRIu64 " ms", ms);
		break;
	case EVENT_DEADLOCK:
		snprintf(tail, sizeof(tail), "refused: its wait would close a cycle of %zu sessions",
			 ev->cycle);
		break;
	case EVENT_RELEASED:
		if (ev->reason == EVENT_BY_REVOKE)
			snprintf(tail, sizeof(tail), "revoked by pid %d uid %u after %" PRIu64
				 " ms held", (int)ev->by->pid, (unsigned)ev->by->uid, ms);
		else
			snprintf(tail, sizeof(tail), "%s after %" PRIu64 " ms held",
				 ev->reason == EVENT_BY_EXPIRY ? "expired: not renewed in time" :
				 "checked in", ms);
		break;
	default:
		break;
	}
	snprintf(buf, n, "%s of pid %d uid %u (session %" PRIu64 ") on '%s' (%s) %s", subject,
		 (int)who->pid, (unsigned)who->uid, ev->owner->session, name,
		 lt_mode_name(ev->mode), tail);
}

static void audit_fields(const struct event *ev, const struct lt_cred *who,
			 struct audit_entry *en)
{
	const struct lt_entry *e = ev->e;
	const char *name = report_name(ev->res);

	audit_add_text(en, "HASP_EVENT", event_name(ev->kind));
	if (ev->reason != EVENT_BY_NONE)
		audit_add_text(en, "HASP_REASON", event_reason_name(ev->reason));
	audit_add_text(en, ev->res->os ? "HASP_PATH" : "HASP_KEY", name);
	audit_add_text(en, "HASP_MODE", lt_mode_name(ev->mode));
	if (audit_of_lease(ev)) {
		audit_add_int(en, "HASP_LEASE", e->id);
		audit_add_int(en, "HASP_FENCE", e->fence);
	} else {
		audit_add_int(en, "HASP_REQUEST", (uint64_t)(e ? e->tag : ev->req->tag));
	}
	audit_add_int(en, "HASP_SESSION", ev->owner->session);
	audit_add_int(en, "HASP_PID", (uint64_t)who->pid);
	audit_add_int(en, "HASP_UID", who->uid);
	audit_add_text(en, "HASP_OWNER", e ? lt_entry_owner_name(e) : ev->req->owner_name);
	audit_add_text(en, "HASP_MESSAGE", e ? lt_entry_message(e) : ev->req->message);
	if (ev->kind == EVENT_DEADLOCK)
		audit_add_int(en, "HASP_CYCLE", ev->cycle);
	else
		audit_add_int(en, ev->kind == EVENT_RELEASED ? "HASP_HELD_MS" : "HASP_WAITED_MS",
			      ev->us / 1000);
	if (ev->by) {
		audit_add_int(en, "HASP_BY_PID", (uint64_t)ev->by->pid);
		audit_add_int(en, "HASP_BY_UID", ev->by->uid);
	}
}

/* ---- the journal's native protocol ---- */

/* NAME=value\n, or, for a value with a newline, NAME\n, its length as a
 * little-endian 64-bit integer, value, \n. */
static size_t audit_field_iov(struct iovec *iov, const char *name, const char *value,
			      size_t len, uint64_t *le)
{
	size_t n = 0;

	iov[n++] = (struct iovec){ (void *)name, strlen(name) };
	if (memchr(value, '\n', len)) {
		*le = htole64(len);
		iov[n++] = (struct iovec){ "\n", 1 };
		iov[n++] = (struct iovec){ le, sizeof(*le) };
	} else {
		iov[n++] = (struct iovec){ "=", 1 };
	}
	iov[n++] = (struct iovec){ (void *)value, len };
	iov[n++] = (struct iovec){ "\n", 1 };
	return n;
}

static int audit_send(struct audit *a, const struct audit_entry *en)
{
	struct iovec iov[5 * AUDIT_FIELDS];
	uint64_t le[AUDIT_FIELDS];
	struct msghdr mh = { .msg_name = &a->addr, .msg_namelen = a->addr_len, .msg_iov = iov };
	size_t n = 0;

	for (size_t i = 0; i < en->n; i++)
		n += audit_field_iov(iov + n, en->f[i].name, en->f[i].value, en->f[i].len, &le[i]);
	mh.msg_iovlen = n;
	return sendmsg(a->fd, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

void audit_event(struct haspd *d, const struct event *ev)
{
	struct audit *a = &d->audit;
	struct lt_cred who = ev->e ? lt_entry_sender(ev->e) : *ev->req->sender;
	char sentence[AUDIT_MESSAGE_MAX + 128], shown[TEXT_ESCAPE_MAX * sizeof(sentence)];
	uid_t uid = ev->by ? ev->by->uid : who.uid;
	size_t len;
	struct audit_entry en = { .n = 0 };
	uint64_t suppressed;

	/* Plain lines are info lines: none below the log level (nor a share
	 * of the uid's log spent on them, nor a line counted). */
	if (!audit_wanted(d, ev) || (a->fd < 0 && LOG_INFO > log_threshold))
		return;
	if (!ratelimit_take(&d->log_budget, uid, d->lt.now_us, &suppressed)) {
		a->dropped++;
		return;
	}
	audit_sentence(ev, &who, sentence, AUDIT_MESSAGE_MAX);
	/* Said as haspd_vlog_for() says it: the token taken here ends the
	 * count of the uid's lines refused, audit lines or others. */
	len = strlen(sentence);
	if (suppressed)
		snprintf(sentence + len, sizeof(sentence) - len, " (and %" PRIu64 " lines about "
			 "uid %u's sessions before it, unlogged: too many)", suppressed,
			 (unsigned)uid);
	if (a->fd < 0) {
		log_info("%s", sentence);
		a->lines++;
		return;
	}
	text_escape(shown, sizeof(shown), sentence, strlen(sentence));
	audit_add_text(&en, "MESSAGE", shown);
	audit_add_text(&en, "PRIORITY", "6");
	audit_add_text(&en, "SYSLOG_IDENTIFIER", "haspd");
	audit_fields(ev, &who, &en);
	if (audit_send(a, &en) < 0)
		a->dropped++;
	else
		a->lines++;
}
