/* Logging for the daemon's I/O layer and main.c only: one line per event, to
 * stderr, so that the journal captures it. Control characters and bytes
 * that are not UTF-8 are escaped (text.h): client text cannot forge lines
 * or drive the terminal of whoever reads the log. */
#pragma once

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

/* Returns -1 for an unknown name. */
int log_level_parse(const char *name);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_threshold >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
