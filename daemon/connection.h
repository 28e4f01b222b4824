/* The transport of one client: a Unix stream socket's buffers, framing into
 * lines, the descriptors (SCM_RIGHTS) and sender credentials
 * (SCM_CREDENTIALS) that come with them, backpressure and teardown. It
 * knows nothing above it: whole lines and its end go up through the ops it
 * is given; whether a descriptor may be kept is asked of them too. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "locktable.h"

/* Descriptors a connection may have in flight before lines claim them. */
#define CONNECTION_FDS_MAX 16
/* The rights of a read that came without its sender's credentials (never,
 * from Linux): the overflow uid's, nobody's. */
#define CONNECTION_NOBODY 65534
/* Stop reading with this much output queued (a client that does not read
 * its replies), and read again below half of it. */
#define CONNECTION_OUT_SOFT (1u << 20)
/* A connection whose unread output passes this is ended: its client does
 * not read, and the daemon must not grow without bound for it. */
#define CONNECTION_OUT_HARD (16u << 20)

struct loop;
struct loop_event;
struct evbuffer;

enum connection_end {
	CONNECTION_CLOSED,      /* closed after its output, as asked or at EOF */
	CONNECTION_OVERFLOW,    /* output over CONNECTION_OUT_HARD, or no memory for it */
	CONNECTION_FAILED,      /* a read or write failed; detail says why */
};

struct connection_ops {
	/* A whole line (without its newline); the sender and descriptors that
	 * came with it are in the connection until the next line. */
	void (*line)(void *ctx, const char *line, size_t len);
	/* A line passed the size limit; the connection closes after its output. */
	void (*too_large)(void *ctx);
	/* The connection will close once its output is written: the peer
	 * half-closed, or connection_close_after_flush() was called. */
	void (*closing)(void *ctx);
	/* The connection is dead: ctx must use it no more but to free it. */
	void (*lost)(void *ctx, enum connection_end why, const char *detail);
	/* A descriptor arrived: whether it may be kept in flight (counted by
	 * ctx once it says yes); n kept ones were claimed or closed. */
	bool (*hold_fd)(void *ctx);
	void (*fds_gone)(void *ctx, size_t n);
};

struct connection {
	const struct connection_ops *ops;
	void *ctx;
	const size_t *max_line;     /* the longest line, newline included (config) */
	struct list *flushing;      /* where it queues itself while output waits */
	struct list flush_link;
	int fd;
	struct loop_event *rev, *wev;
	struct evbuffer *in, *out;
	struct connection_fd {
		int fd;
		uint64_t end;       /* input offset just past the read that brought it */
	} fds[CONNECTION_FDS_MAX];  /* received, in order, not yet claimed */
	size_t nfds;
	uint64_t fds_refused_end;   /* like connection_fd.end, for descriptors closed
				     * at once (0: none) */
	uint64_t in_offset;         /* input offset of the first byte in in */
	uint64_t line_start, line_end; /* the line being handed up: [start, end) */
	struct lt_cred sender;      /* SCM_CREDENTIALS of the latest read: the sender
				     * of the line being handed up */
	bool part_mixed;            /* the unfinished line came from two senders */
	bool line_mixed;            /* ... and so did the line being handed up */
	bool closing;               /* write what is queued, then close */
	bool throttled;             /* not reading: too much output queued */
	bool overflow;              /* output past the hard limit: to be ended */
	bool paused;                /* the line handed up is to be handed up again */
	bool dead;
};

/* A connection on fd (taken: closed on failure too), reading at once.
 * Returns 0, or -ENOMEM. */
int connection_init(struct connection *c, struct loop *l, int fd, const size_t *max_line,
		    struct list *flushing, const struct connection_ops *ops, void *ctx);
/* Closes what is left; the ops are not called. */
void connection_done(struct connection *c);

/* Output queued and not yet written to the socket. */
size_t connection_unsent(const struct connection *c);
/* Queues output (a whole reply line); past the hard limit of unread output,
 * or for want of memory, breaks the connection instead. */
void connection_write(struct connection *c, const char *buf, size_t len);
/* To be ended at the next flush, outside the callback that noticed (output
 * that could not be queued). */
void connection_break(struct connection *c);
/* Reads no more; ends once the queued output is written. */
void connection_close_after_flush(struct connection *c);
/* The descriptor that came with the line being handed up, or -1; the caller
 * owns it. A descriptor belongs to the line that holds the last byte of the
 * read that brought it, which is the line sent with it in one sendmsg(2). */
int connection_take_fd(struct connection *c);
/* Whether descriptors that came with the line being handed up were closed
 * for want of room (CONNECTION_FDS_MAX, or ops->hold_fd said no). */
bool connection_fds_refused(const struct connection *c);
/* Whether the peer has closed its end, before its end is read (one poll). */
bool connection_peer_gone(const struct connection *c);
/* Ends it now (ops->lost is called), e.g. as the daemon stops. */
void connection_lose(struct connection *c, enum connection_end why, const char *detail);
/* From ops->line: the line is not taken now. Nothing more is read or
 * handed up until connection_resume(), which hands it up again first. */
void connection_pause(struct connection *c);
void connection_resume(struct connection *c);
/* Writes the output of every connection queued on flushing. */
void connection_flush_all(struct list *flushing);
