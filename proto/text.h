/* Text from clients, made safe to show: for the daemon's log and the
 * command line tool's output, where a key, owner, message, client name or
 * path must never move a terminal's cursor, clear its screen or fake a row. */
#pragma once

#include <stddef.h>

/* The length of the valid UTF-8 sequence at s (len bytes left), or 0. */
size_t text_utf8_len(const unsigned char *s, size_t len);
/* Copies src (len bytes) to dst (size bytes, NUL-terminated, cut at a whole
 * escape): control characters (C0, DEL, C1) and bytes that are not UTF-8 as
 * \xNN, and \ as \\, so that the copy is printable and says what was sent.
 * Returns the length written. */
size_t text_escape(char *dst, size_t size, const char *src, size_t len);
