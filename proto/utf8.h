/* UTF-8, the one validator for daemon, library and tool; and text that is
 * not UTF-8 (a file name) as it is shown: each invalid sequence, as much of
 * it as could begin a character (Unicode's "maximal subpart"), becomes
 * U+FFFD, as Python's errors="replace" does. Strings are counted: a NUL
 * byte is a character like any other. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The character at s (n >= 1 bytes left): its length (1 to 4) when valid,
 * else minus the length of the invalid sequence (one U+FFFD's worth). */
int utf8_char(const char *s, size_t n);
bool utf8_valid(const char *s, size_t n);

/* The shown form of the character at s: *chunk (into s, or U+FFFD) and
 * *chunk_len. Returns how many bytes of s it stands for (>= 1). */
size_t utf8_shown_chunk(const char *s, size_t n, const char **chunk, size_t *chunk_len);
/* Compares the shown forms of a and b byte by byte (memcmp's sign), without
 * building them. */
int utf8_shown_cmp(const char *a, size_t an, const char *b, size_t bn);
/* Whether the shown form of s starts with prefix. */
bool utf8_shown_has_prefix(const char *s, size_t n, const char *prefix, size_t plen);
/* Writes the shown form of s to out, which holds 3 * n bytes; returns its
 * length (no NUL is added). */
size_t utf8_shown(const char *s, size_t n, char *out);
