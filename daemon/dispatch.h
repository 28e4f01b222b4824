/* A decoded request -> lock table calls -> replies. */
#pragma once

#include <stddef.h>

#include "locktable.h"

struct session;

void dispatch_line(struct session *s, const char *line, size_t len);
/* A session the daemon cannot serve (why: the limit it is over): a limit
 * error, then the end. */
void dispatch_refuse(struct session *s, const char *why);
/* The session sent a line over the size limit: error, then the end. */
void dispatch_too_large(struct session *s);

