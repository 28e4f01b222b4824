/* Text from clients, made safe to show: for the daemon's log and the
 * command line tool's output, where a key, owner, message, client name or
 * path must never move a terminal's cursor, clear its screen or fake a row. */
#pragma once

#include <stddef.h>

/* The most bytes text_escape() writes for one byte of input. */
#define TEXT_ESCAPE_MAX 4

/* Copies src (len bytes) to dst (size bytes, NUL-terminated, cut before an
 * escape or character that does not fit): \n \r \t \e and \\ named, other
 * control characters (C0, DEL, C1) and bytes that are not UTF-8 as \xNN,
 * byte by byte, so that the copy is one line of printable text that says
 * what was sent. Returns the length written. */
size_t text_escape(char *dst, size_t size, const char *src, size_t len);
