#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum frame_status frame_next(const char *buf, size_t len, size_t limit, size_t *line_len)
{
	size_t scan = len < limit ? len : limit;
	const char *nl = memchr(buf, '\n', scan);

	if (nl) {
		*line_len = (size_t)(nl - buf);
		return FRAME_LINE;
	}
	return len >= limit ? FRAME_TOO_LARGE : FRAME_PARTIAL;
}

int frame_buf_init(struct frame_buf *f, size_t limit)
{
	f->cap = 4096;
	f->data = malloc(f->cap);
	if (!f->data)
		return -ENOMEM;
	f->start = f->end = 0;
	f->limit = limit;
	return 0;
}

void frame_buf_done(struct frame_buf *f)
{
	free(f->data);
	f->data = NULL;
}

/* Room for at least one more byte, keeping the pending bytes. */
static int frame_buf_make_room(struct frame_buf *f)
{
	size_t pending = f->end - f->start;

	if (f->start > 0) {
		memmove(f->data, f->data + f->start, pending);
		f->start = 0;
		f->end = pending;
	}
	if (f->end == f->cap) {
		size_t cap = f->cap * 2;
		char *d;

		if (cap > f->limit)
			cap = f->limit;
		if (cap <= f->cap)
			return -EMSGSIZE;
		d = realloc(f->data, cap);
		if (!d)
			return -ENOMEM;
		f->data = d;
		f->cap = cap;
	}
	return 0;
}

ssize_t frame_buf_fill(struct frame_buf *f, int fd)
{
	ssize_t n;
	int r = frame_buf_make_room(f);

	if (r < 0)
		return r;
	do
		n = read(fd, f->data + f->end, f->cap - f->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	f->end += (size_t)n;
	return n;
}

enum frame_status frame_buf_next(struct frame_buf *f, const char **line, size_t *len)
{
	enum frame_status s = frame_next(f->data + f->start, f->end - f->start, f->limit, len);

	if (s == FRAME_LINE) {
		*line = f->data + f->start;
		f->start += *len + 1;
		if (f->start == f->end)
			f->start = f->end = 0;
	}
	return s;
}
