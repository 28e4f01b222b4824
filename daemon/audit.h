/* The audit trail: the lock events an administrator asks about afterwards
 * (grants that waited long, timeouts, revokes, expiries, deadlocks and
 * checkouts), logged at info. Where the journal is the log (or a journal
 * socket is configured) each is one entry with structured fields
 * (HASP_EVENT=, HASP_KEY=, HASP_LEASE=, HASP_UID=, ...: PROTOCOL.md lists
 * them) sent in the journal's native protocol; else one plain line. Within
 * the uid's share of the log (ratelimit.h), so that no client can flood it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct haspd;
struct event;

/* Where systemd-journald reads native entries. */
#define AUDIT_JOURNAL_SOCKET "/run/systemd/journal/socket"

struct audit {
	int fd;                     /* a datagram socket to the journal, or -1 */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t lines;             /* entries logged */
	uint64_t dropped;           /* entries over the rate limit, or the journal's
				     * socket full */
};

/* journal_socket: "" to use the journal when it is the log (JOURNAL_STREAM
 * names stderr), else its socket's path. Returns 0, or a negative errno
 * (the journal's socket cannot be made). */
int audit_init(struct audit *a, const char *journal_socket);
void audit_done(struct audit *a);
/* Logs ev if it belongs in the audit trail. */
void audit_event(struct haspd *d, const struct event *ev);
