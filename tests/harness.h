/* A real haspd on a temporary socket for integration and CLI tests, and a
 * raw line client for protocol-level checks. Every wait is bounded, and
 * every bound in ms that the harness takes is stretched by test_ms(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>
#include <jansson.h>

#include "hasp.h"
#include "suite.h"

struct daemon_proc {
	pid_t pid;
	char dir[64];
	char socket[128];
	char fence[128];        /* where the daemon keeps its fence ceiling */
	char journal[128];      /* and its checkouts */
};

/* How long a daemon may take to start or stop: generous, for valgrind. */
#define DAEMON_START_MS 30000

/* Starts $HASPD (or build/daemon/haspd) and waits until it accepts. */
void daemon_start(struct daemon_proc *d);
/* SIGTERM, then waits for it; fails the test unless it exited with 0. */
void daemon_stop(struct daemon_proc *d);
/* Starts haspd on an existing path; returns the pid without waiting. Under
 * $HASP_TEST_WRAPPER (e.g. "valgrind --error-exitcode=99"), if set. */
pid_t daemon_spawn(const char *socket, int stderr_fd);
/* The same, with these options instead of --log-level warning. */
pid_t daemon_spawn_with(const char *socket, char *const opts[], int stderr_fd);
/* $HASPD, or build/daemon/haspd. */
const char *haspd_path(void);
/* RLIMIT_NOFILE (soft and hard) for what spawn_argv() starts, from its
 * first instruction (a wrapper such as valgrind reads it only then), set
 * by prlimit(1); 0 leaves it as it is. */
extern unsigned spawn_nofile;
/* Runs argv (argv[0] a path), its stderr to stderr_fd if >= 0. */
pid_t spawn_argv(char *const argv[], int stderr_fd);
/* $HASP_TEST_WRAPPER, split at spaces, into argv (at most max words, kept
 * in buf); returns how many words: 0 without a wrapper. */
size_t wrapper_argv(char **argv, size_t max, char *buf, size_t size);
/* A fresh temporary directory and socket path in d, nothing started. */
void daemon_dir(struct daemon_proc *d);
/* Removes the directory, with the socket and fence files a daemon left. */
void daemon_dir_remove(const struct daemon_proc *d);
/* true once something accepts on path, within timeout_ms. */
bool wait_socket(const char *path, int timeout_ms);

int64_t now_ms(void);
int64_t now_us(void);
/* ms times $HASP_TEST_TIME_FACTOR (1 if unset; the valgrind setup sets 10):
 * a bound on waiting for an event, or on a latency, on a slow tool. The
 * harness's waits apply it themselves; a test applies it to its own. */
int test_ms(int ms);

/* A raw connection speaking JSON lines. */
int raw_connect(const char *path);
void raw_send(int fd, const char *text);
/* The same, formatted (a line of at most 4 KiB). */
void raw_sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends text with passfd attached (SCM_RIGHTS) in one sendmsg. */
void raw_send_fd(int fd, const char *text, int passfd);
/* A connection that haspd serves (its ping answered), or -1 if refused. */
int raw_connect_served(const char *path);
/* How many descriptors process pid has open. */
int count_fds(pid_t pid);
/* The next line as JSON, or NULL at EOF or after timeout_ms. */
json_t *raw_recv(int fd, int timeout_ms);
/* Replies until the one with this id (others are dropped). */
json_t *raw_recv_id(int fd, int64_t id, int timeout_ms);
/* The reply with this id within 5 s (stretched), failing the test without. */
json_t *raw_reply(int fd, int64_t id);
/* The error code of a reply, or NULL if it is ok. */
const char *reply_error(json_t *reply);
/* The error message of a reply, or "" if it is ok. */
const char *reply_message(json_t *reply);

/* A pipe used to signal one byte between processes. */
void signal_byte(int fd);
bool wait_byte(int fd, int timeout_ms);
bool wait_readable(int fd, int timeout_ms);
/* Reads fd into buf until it holds needle, EOF, or timeout_ms passed. */
bool wait_output(int fd, const char *needle, int timeout_ms, char *buf, size_t size);
/* waitpid with a deadline; kills the child if it overstays. Returns status. */
int wait_child(pid_t pid, int timeout_ms);

/* libhasp calls that must succeed. */
hasp_client *client_connect(const char *socket);
hasp_lease *client_lock(hasp_client *c, const char *key, enum hasp_mode mode);
/* The value of a gauge in the daemon's stats. */
json_int_t stats_gauge(hasp_client *c, const char *name);
/* The value of a counter in the daemon's stats. */
json_int_t stats_counter(hasp_client *c, const char *name);
/* Asks c's stats until the gauge reads want, failing after timeout_ms. For
 * what has no event, e.g. that haspd has seen other connections end. */
void wait_gauge(hasp_client *c, const char *name, json_int_t want, int timeout_ms);
