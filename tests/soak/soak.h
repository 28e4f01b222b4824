/* hasp-soak: a crash-and-chaos soak of haspd with a checker that proves,
 * from the log the run writes, that no incompatible leases overlapped, that
 * fences only grow, that every waiter got an answer and that the daemon came
 * back to its baseline. See README.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SOAK_RESOURCES 5          /* 3 keys and 2 files */
#define SOAK_TIMEOUT_MAX_MS 1000  /* the longest bounded timeout asked */
#define SOAK_LATE_SLACK_MS 3000   /* a timeout may answer this late (noisy machine) */
#define SOAK_HEAP_TOLERANCE (64 * 1024)
#define SOAK_LINE_MAX 256

struct soak_opts {
	double duration;          /* seconds */
	int workers;
	bool daemon_restarts;
	uint64_t seed;
	const char *keep_log;     /* NULL: the log is removed after a good run */
	const char *haspd;
};

/* ---- time and randomness (util.c) ---- */

int64_t util_now_us(void);
/* xorshift64*: small, fast, reproducible from a seed. */
uint64_t util_rand(uint64_t *state);
/* Uniform in [lo, hi]. */
int64_t util_rand_range(uint64_t *state, int64_t lo, int64_t hi);
void util_sleep_us(int64_t us);
/* calloc(), or the end of the program: a soak without memory is no soak. */
void *util_calloc(size_t n, size_t size);

/* ---- state shared by the parent and its workers (control.c) ---- */

/* The daemon's state word is 2 * epoch + up: odd while the daemon of that
 * epoch listens, even from just before it is killed until its successor
 * listens. Workers connect only while it is odd, and check it did not change
 * across connect(2), so a connection belongs to a known epoch. */
struct control {
	uint32_t stop;
	uint32_t daemon_state;
	char socket[108];
	char files[2][256];
};

struct control *control_new(void);
bool control_stopped(const struct control *c);
void control_set_stop(struct control *c, bool stop);
uint32_t control_daemon_state(const struct control *c);
/* Publishes a new state and wakes every worker waiting for a change. */
void control_set_daemon_state(struct control *c, uint32_t state);
/* Waits until the state differs from seen, at most timeout_ms. */
void control_wait_change(struct control *c, uint32_t seen, int timeout_ms);

/* ---- the log (record.c) ---- */

/* One record: "@<µs> <who> <KIND> <fields>\n", written with one write(2)
 * on an O_APPEND file, so records of concurrent writers never mix. who is
 * "w<id>.<gen>" for a worker, "P" for the parent. */
void record_write(int fd, int64_t ts, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- haspd (daemon.c) ---- */

struct daemon {
	const char *haspd;
	const char *socket;
	pid_t pid;
	int pidfd;
};

/* Starts haspd and waits (bounded) until it accepts. Returns 0 or -errno. */
int daemon_start(struct daemon *d);
/* SIGKILL, then waits (bounded) for its exit. Returns 0 or -ETIMEDOUT. */
int daemon_kill(struct daemon *d);
/* SIGTERM, then waits (bounded). */
int daemon_stop(struct daemon *d);
/* How many descriptors the daemon has open, or -errno. */
int daemon_fds(const struct daemon *d);
/* Waits for a child's pidfd to become readable (it exited). */
bool daemon_wait_pidfd(int pidfd, int timeout_ms);

struct gauges {
	long long sessions, resources, leases, waiters, heap_bytes;
};

/* The stats reply's gauges through libhasp. Returns 0 or a negative code. */
struct hasp_client;
int daemon_gauges(struct hasp_client *c, struct gauges *ret);

/* ---- a worker process (worker.c) ---- */

struct worker_ctx {
	int id;
	int gen;
	int logfd;
	uint64_t seed;
	struct control *ctl;
};

/* The worker's loop; never returns. Exit 0 when told to stop. */
void worker_main(const struct worker_ctx *w) __attribute__((noreturn));
/* The name of resource i, as the log writes it. */
const char *worker_resource_name(int i);

/* ---- the parent: phases, chaos, stop, figures (chaos.c) ---- */

int chaos_run(const struct soak_opts *o);

/* ---- the checker (check.c, intervals.c) ---- */

enum check_kind {
	CK_OVERLAP,            /* incompatible leases overlapped */
	CK_FENCE_ORDER,        /* a later lease has a smaller fence */
	CK_FENCE_DUP,          /* two grants with one fence */
	CK_FENCE_EPOCH,        /* a restarted daemon's fence not above the old ones */
	CK_LEASE_DUP,          /* a lease id reused within one daemon's life */
	CK_UNANSWERED,         /* a WANT of a live worker without an outcome */
	CK_TIMEOUT_EARLY,
	CK_TIMEOUT_LATE,
	CK_OUTCOME,            /* busy with a timeout, timeout with 0, an error */
	CK_LOST,               /* a connection lost while its daemon lived */
	CK_FLOCK,              /* the daemon did not hold the flock */
	CK_WORKER,             /* a worker that exited badly or vanished */
	CK_BASELINE,           /* the daemon did not return to baseline */
	CK_FORMAT,             /* a record that cannot be understood */
	CK_NKINDS,
};

struct check_result {
	long violations[CK_NKINDS];
	long records, torn, workers, killed, daemon_kills, wants, grants, busy, timeouts,
	     lost, errors, intervals, stale, fences, flock_checks, flock_excused,
	     ended_kill, ended_dkill;
	int max_shared;
	int64_t max_late_us;
	bool have_final;
	long long base_fds, base_heap, end_fds, end_heap;
};

const char *check_kind_name(enum check_kind k);
/* Checks a log. Violations are printed to stderr (at most a few of each
 * kind) and counted in *r. Returns 0 if the log is clean, 1 if not, or
 * -errno if it cannot be read. */
int check_file(const char *path, struct check_result *r);
void check_print(const struct check_result *r);

/* Interval and fence checks on what check.c collected. */
struct interval {
	int64_t start, end;
	uint64_t fence;
	int res;
	bool shared;
	int id, gen;
	long seq;
};

struct grant {
	int64_t want_ts, enter_ts;
	uint64_t fence, lease;
	int epoch;
	int id, gen;
	long seq;
};

void intervals_check(struct interval *v, size_t n, struct check_result *r);
void intervals_check_grants(struct grant *g, size_t n, struct check_result *r);
/* Reports one violation (printing the first few of each kind). */
void check_violation(struct check_result *r, enum check_kind k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- the checker's own test (selftest.c) ---- */

int selftest_run(void);
