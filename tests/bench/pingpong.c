/* A hand-off that alternates sides: two processes, each with its own
 * connection (to one server, or to two), take turns holding one lock. The
 * holder waits until the server shows the other side waiting (and settle_ms
 * more), takes t0 and unlocks; the other side's lock returns at t1; then it
 * holds, and the first side asks again. Every hand-off goes the other way
 * from the last. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "pingpong.h"

#define WAIT_NS 10000000000ull /* for the other side to be seen waiting */

/* What the two sides share. */
struct board {
	volatile uint64_t t0;   /* the last unlock call's */
	double us[];            /* the first side's rounds, then the second's */
};

struct side {
	const struct peer *p;
	const char *target, *key;
	int rounds, settle_ms;
	bool first;             /* holds before the other side asks */
	int held;               /* the first side: a byte once it holds */
	struct board *board;
	double *us;             /* this side's samples */
};

static void *side_connect(const struct side *s)
{
	void *conn = s->p->connect(s->target);

	if (!conn)
		exit(1);
	return conn;
}

static void side_lock(const struct side *s, void *conn)
{
	if (s->p->lock(conn, s->key) < 0)
		exit(1);
}

/* Once the other side waits (a bounded poll), and settle_ms later: t0,
 * then the unlock. */
static void side_hand_over(const struct side *s, void *conn)
{
	uint64_t deadline = now_ns() + WAIT_NS;
	int r;

	while ((r = s->p->waiting(conn, s->key)) == 0 && now_ns() < deadline)
		;
	if (r <= 0) {
		if (r == 0)
			fprintf(stderr, "hasp-bench: %s: the other side was not seen waiting in 10 s\n",
				s->p->name);
		exit(1);
	}
	if (s->settle_ms > 0) /* part of the scenario, not a wait for readiness */
		usleep((useconds_t)s->settle_ms * 1000);
	s->board->t0 = now_ns();
	if (s->p->unlock(conn, s->key) < 0)
		exit(1);
}

static void side_granted(const struct side *s, void *conn, int round)
{
	side_lock(s, conn);
	s->us[round] = (double)(now_ns() - s->board->t0) / 1000.0;
}

static void side_main(void *arg)
{
	const struct side *s = arg;
	void *conn = side_connect(s);

	if (s->first) {
		side_lock(s, conn);
		if (write(s->held, "h", 1) != 1)
			exit(1);
	}
	for (int r = 0; r < s->rounds; r++) {
		if (!s->first)
			side_granted(s, conn, r);
		side_hand_over(s, conn);
		if (s->first)
			side_granted(s, conn, r);
	}
	if (s->first && s->p->unlock(conn, s->key) < 0)
		exit(1);
	s->p->disconnect(conn);
}

static struct board *board_new(int rounds)
{
	struct board *b = mmap(NULL, sizeof(*b) + 2 * (size_t)rounds * sizeof(double),
			       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (b == MAP_FAILED) {
		perror("hasp-bench: mmap");
		exit(1);
	}
	return b;
}

void pingpong(const struct peer *p, const char *target_a, const char *target_b, const char *key,
	      int rounds, int settle_ms, struct samples *s)
{
	struct board *b = board_new(rounds);
	struct side a = { p, target_a, key, rounds, settle_ms, true, -1, b, b->us };
	struct side bs = { p, target_b, key, rounds, settle_ms, false, -1, b, b->us + rounds };
	int held[2];
	pid_t pids[2];
	char byte;

	if (pipe(held) < 0) {
		perror("hasp-bench: pipe");
		exit(1);
	}
	a.held = held[1];
	run_in_child(side_main, &a, &pids[0]);
	close(held[1]);
	if (read(held[0], &byte, 1) != 1) {
		fprintf(stderr, "hasp-bench: %s: the first side did not take the lock\n", p->name);
		exit(1);
	}
	close(held[0]);
	run_in_child(side_main, &bs, &pids[1]);
	wait_all(pids, 2);
	for (int i = 0; i < 2 * rounds; i++)
		samples_add(s, b->us[i]);
	munmap(b, sizeof(*b) + 2 * (size_t)rounds * sizeof(double));
}
