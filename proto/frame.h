/* Newline-delimited framing with a size limit, shared by daemon and client. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

enum frame_status {
	FRAME_LINE,        /* a whole line: *line_len bytes, then the newline */
	FRAME_PARTIAL,     /* no newline yet, and still within the limit */
	FRAME_TOO_LARGE,   /* the line, newline included, exceeds limit bytes */
};

enum frame_status frame_next(const char *buf, size_t len, size_t limit, size_t *line_len);

/* A read buffer for a blocking reader (libhasp). */
struct frame_buf {
	char *data;
	size_t start, end, cap, limit;
};

int frame_buf_init(struct frame_buf *f, size_t limit);
void frame_buf_done(struct frame_buf *f);
/* Reads once from fd. Returns bytes read, 0 at EOF, -errno on error. */
ssize_t frame_buf_fill(struct frame_buf *f, int fd);
/* The next whole line already buffered: FRAME_LINE with *line (not
 * NUL-terminated) and *len, valid until the next fill; FRAME_PARTIAL; or
 * FRAME_TOO_LARGE. */
enum frame_status frame_buf_next(struct frame_buf *f, const char **line, size_t *len);
