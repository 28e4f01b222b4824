/* The default socket path, shared by haspd and libhasp. */
#pragma once

#include <stddef.h>

/* Writes the default socket path to buf (see hasp_default_socket in hasp.h).
 * Returns 0, or -ENAMETOOLONG when it does not fit in size bytes. */
int proto_default_socket(char *buf, size_t size);
