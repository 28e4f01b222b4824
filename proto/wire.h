/* What both halves of the codec share beyond codes.h: the limits on a
 * request's members, and JSON as the wire carries it (one compact object
 * per line, members in order; text that is not UTF-8 shown with U+FFFD).
 * libhasp checks what it sends against the same limits the daemon
 * enforces. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define PROTO_KEY_MAX 1024
#define PROTO_OWNER_MAX 256
#define PROTO_MESSAGE_MAX 1024
#define PROTO_CLIENT_MAX 256
#define PROTO_PATH_MAX 4096
/* list: resources per page, by default and at most; and the longest prefix
 * or cursor, a name as shown (a path with U+FFFD in it can be three times
 * as long as the path). */
#define PROTO_LIST_DEFAULT 1000
#define PROTO_LIST_MAX 10000
/* A semaphore's largest limit (acquire's "limit"). */
#define PROTO_SEMAPHORE_MAX 10000
/* A multi-key acquire's keys, at least and at most. */
#define PROTO_KEYS_MIN 2
#define PROTO_KEYS_MAX 64
#define PROTO_LIST_NAME_MAX (3 * PROTO_PATH_MAX)

/* How both sides write an object: compact, members in order. */
#define PROTO_DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

/* Whether s (NUL-terminated) is valid UTF-8, as JSON strings must be. */
bool proto_utf8_valid(const char *s);
/* s as a JSON string as people are shown it: what is not UTF-8 (a file
 * name) with U+FFFD (see utf8.h). NULL when out of memory. */
json_t *proto_string_shown(const char *s, size_t n);
/* o (may be NULL) as one line: a malloc'ed buffer of *len bytes, the
 * newline included, not NUL-terminated. Drops the reference to o. NULL
 * when o is NULL or out of memory. */
char *proto_dump_line(json_t *o, size_t *len);

/* v in decimal at dst (20 bytes of room for u64, 21 for i64, no NUL),
 * as printf's %llu and %lld write it; returns the end. */
char *proto_put_u64(char *dst, uint64_t v);
char *proto_put_i64(char *dst, int64_t v);

/* n bytes as 2n lowercase hex digits and a NUL (dst holds 2n + 1). */
void proto_hex_encode(char *dst, const unsigned char *src, size_t n);
/* 2n lowercase hex digits (exactly: src has that length) to n bytes:
 * 0, or -1 when src is anything else. */
int proto_hex_decode(unsigned char *dst, const char *src, size_t len, size_t n);
