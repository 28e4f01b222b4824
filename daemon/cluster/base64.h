/* Base64 (RFC 4648, with padding): etcd's JSON gateway sends keys and
 * values so. */
#pragma once

#include <stddef.h>

/* The encoded length of n bytes, without the NUL. */
#define BASE64_LEN(n) (((n) + 2) / 3 * 4)

/* Writes BASE64_LEN(n) characters and a NUL to out. */
void base64_encode(const void *in, size_t n, char *out);
/* Decodes in (len characters) into out, which has room for len / 4 * 3
 * bytes. Returns the decoded length, or -1 when in is not base64. */
long base64_decode(const char *in, size_t len, unsigned char *out);
