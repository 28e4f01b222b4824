/* The checker must be able to fail: handcrafted logs, each with one fault,
 * must each be caught as exactly that fault; the clean log must pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soak.h"

#define NONE CK_NKINDS

/* Two workers that end well, a daemon that returns to its baseline. */
static const char head[] =
	"@1 P DAEMON_START 1\n"
	"@2 P SPAWN w0.1 100\n"
	"@3 P SPAWN w1.2 101\n"
	"@4 w0.1 CONN 1\n"
	"@5 w1.2 CONN 1\n";
static const char tail[] =
	"@9000 w0.1 DONE\n"
	"@9001 w1.2 DONE\n"
	"@9002 P REAP w0.1 0\n"
	"@9003 P REAP w1.2 0\n"
	"@9004 P BASELINE fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n"
	"@9005 P FINAL fds=5 heap=100100 sessions=1 leases=0 waiters=0 resources=0\n"
	"@9006 P DAEMON_EXIT 0\n";

struct selftest_case {
	const char *name;
	enum check_kind want;
	const char *body;
	const char *tail;       /* NULL: the common tail */
};

static const struct selftest_case cases[] = {
	{ "clean", NONE,
	  /* one after another, then shared together, a timeout, busy */
	  "@10 w0.1 WANT 1 k0 X 50\n@20 w0.1 ENTER 1 1 1000 1 10\n@30 w0.1 EXIT 1\n"
	  "@12 w1.2 WANT 1 k0 X 50\n@40 w1.2 ENTER 1 2 1001 1 28\n@50 w1.2 EXIT 1\n"
	  "@60 w0.1 WANT 2 f0 S 0\n@70 w0.1 ENTER 2 3 1002 1 10\n@72 w0.1 FLOCK 2 ok\n"
	  "@61 w1.2 WANT 2 f0 S 20\n@71 w1.2 ENTER 2 4 1003 1 10\n@80 w0.1 EXIT 2\n@85 w1.2 EXIT 2\n"
	  "@90 w0.1 WANT 3 k1 X 5\n@5100 w0.1 TIMEOUT 3 5010\n"
	  "@91 w1.2 WANT 3 k1 X 0\n@92 w1.2 BUSY 3 40\n"
	  /* a daemon killed inside a lease: the lease ends then, and the new
	   * daemon's grant of the same resource is no overlap */
	  "@5200 w0.1 WANT 4 k2 X 0\n@5210 w0.1 ENTER 4 5 1004 1 10\n"
	  "@5220 P DAEMON_KILL 1\n@5300 w0.1 EXIT 4\n@5301 w0.1 RELLOST 4 104 1\n"
	  "@5250 w1.2 WANT 4 k2 X 1000\n@5251 w1.2 LOST 4 104 1\n"
	  "@5400 P DAEMON_START 2\n@5401 w0.1 CONN 2\n@5402 w1.2 CONN 2\n"
	  "@5500 w1.2 WANT 5 k2 X 0\n@5510 w1.2 ENTER 5 1 2000000 2 10\n@5520 w1.2 EXIT 5\n"
	  /* a worker killed while waiting, and inside a lease; a torn record */
	  "@5600 P SPAWN w2.3 102\n@5601 w2.3 CONN 2\n@5602 w2.3 WANT 1 k0 X -1\n"
	  "@5610 P KILL w2.3 102\n@5611 w2.3 WA@5612 P REAP w2.3 137\n"
	  "@5700 P SPAWN w2.4 103\n@5701 w2.4 CONN 2\n@5702 w2.4 WANT 1 k0 X -1\n"
	  "@5710 w2.4 ENTER 1 2 2000001 2 8\n@5720 P KILL w2.4 103\n@5721 P REAP w2.4 137\n"
	  "@5730 w0.1 WANT 5 k0 X 100\n@5740 w0.1 ENTER 5 3 2000002 2 10\n@5750 w0.1 EXIT 5\n",
	  NULL },
	{ "overlap of two exclusive leases", CK_OVERLAP,
	  "@10 w0.1 WANT 1 k0 X 50\n@20 w0.1 ENTER 1 1 1000 1 10\n@40 w0.1 EXIT 1\n"
	  "@11 w1.2 WANT 1 k0 X 50\n@30 w1.2 ENTER 1 2 1001 1 19\n@50 w1.2 EXIT 1\n", NULL },
	{ "a shared lease inside an exclusive one", CK_OVERLAP,
	  "@10 w0.1 WANT 1 f1 X 50\n@20 w0.1 ENTER 1 1 1000 1 10\n@40 w0.1 EXIT 1\n"
	  "@11 w1.2 WANT 1 f1 S 50\n@25 w1.2 ENTER 1 2 1001 1 14\n@35 w1.2 EXIT 1\n", NULL },
	{ "a killed worker's lease lasts until the kill", CK_OVERLAP,
	  "@10 w0.1 WANT 1 k0 X 50\n@20 w0.1 ENTER 1 1 1000 1 10\n@100 P KILL w0.1 100\n"
	  "@101 P REAP w0.1 137\n"
	  "@11 w1.2 WANT 1 k0 X 50\n@50 w1.2 ENTER 1 2 1001 1 39\n@60 w1.2 EXIT 1\n",
	  "@9001 w1.2 DONE\n@9003 P REAP w1.2 0\n"
	  "@9004 P BASELINE fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n"
	  "@9005 P FINAL fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n" },
	{ "a decreasing fence", CK_FENCE_ORDER,
	  "@10 w0.1 WANT 1 k0 X 50\n@20 w0.1 ENTER 1 1 1001 1 10\n@30 w0.1 EXIT 1\n"
	  "@12 w1.2 WANT 1 k0 X 50\n@40 w1.2 ENTER 1 2 1000 1 28\n@50 w1.2 EXIT 1\n", NULL },
	{ "one fence twice", CK_FENCE_DUP,
	  "@10 w0.1 WANT 1 k0 S 50\n@20 w0.1 ENTER 1 1 1000 1 10\n@30 w0.1 EXIT 1\n"
	  "@11 w1.2 WANT 1 k1 S 50\n@19 w1.2 ENTER 1 2 1000 1 8\n@50 w1.2 EXIT 1\n", NULL },
	{ "a restarted daemon's fence below the old ones", CK_FENCE_EPOCH,
	  "@10 w0.1 WANT 1 k0 X 50\n@20 w0.1 ENTER 1 1 5000 1 10\n@30 w0.1 EXIT 1\n"
	  "@40 P DAEMON_KILL 1\n@41 w0.1 WANT 2 k1 X 50\n@42 w0.1 LOST 2 104 1\n"
	  "@43 w1.2 WANT 1 k1 X 50\n@44 w1.2 LOST 1 104 1\n@50 P DAEMON_START 2\n"
	  "@51 w1.2 CONN 2\n@60 w1.2 WANT 2 k1 X 50\n@70 w1.2 ENTER 2 1 4000 2 10\n@80 w1.2 EXIT 2\n",
	  NULL },
	{ "an unanswered request", CK_UNANSWERED,
	  "@10 w0.1 WANT 1 k0 X 200\n", NULL },
	{ "a worker that hung at the stop", CK_UNANSWERED,
	  "@10 w0.1 WANT 1 k0 X -1\n@8000 P HUNG w0.1 100\n@8001 P KILL w0.1 100\n",
	  "@9001 w1.2 DONE\n@9002 P REAP w0.1 137\n@9003 P REAP w1.2 0\n"
	  "@9004 P BASELINE fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n"
	  "@9005 P FINAL fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n" },
	{ "a timeout before its time", CK_TIMEOUT_EARLY,
	  "@10 w0.1 WANT 1 k0 X 50\n@40 w0.1 TIMEOUT 1 49990\n", NULL },
	{ "a try-once request timed out before libhasp gives up", CK_OUTCOME,
	  "@10 w0.1 WANT 1 k0 X 0\n@40 w0.1 TIMEOUT 1 30\n", NULL },
	{ "busy although it asked to wait", CK_OUTCOME,
	  "@10 w0.1 WANT 1 k0 X 50\n@40 w0.1 BUSY 1 30\n", NULL },
	{ "a connection lost while the daemon lived", CK_LOST,
	  "@10 w0.1 WANT 1 k0 X 50\n@40 w0.1 LOST 1 104 1\n", NULL },
	{ "the daemon did not hold the flock", CK_FLOCK,
	  "@10 w0.1 WANT 1 f0 X 50\n@20 w0.1 ENTER 1 1 1000 1 10\n@25 w0.1 FLOCK 1 bad:sh-not-refused\n"
	  "@30 w0.1 EXIT 1\n", NULL },
	{ "a lease left in the daemon", CK_BASELINE, "",
	  "@9000 w0.1 DONE\n@9001 w1.2 DONE\n@9002 P REAP w0.1 0\n@9003 P REAP w1.2 0\n"
	  "@9004 P BASELINE fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n"
	  "@9005 P FINAL fds=6 heap=100000 sessions=1 leases=1 waiters=0 resources=1\n" },
	{ "the daemon's heap grew", CK_BASELINE, "",
	  "@9000 w0.1 DONE\n@9001 w1.2 DONE\n@9002 P REAP w0.1 0\n@9003 P REAP w1.2 0\n"
	  "@9004 P BASELINE fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n"
	  "@9005 P FINAL fds=5 heap=900000 sessions=1 leases=0 waiters=0 resources=0\n" },
	{ "a daemon that did not stop cleanly", CK_BASELINE, "",
	  "@9000 w0.1 DONE\n@9001 w1.2 DONE\n@9002 P REAP w0.1 0\n@9003 P REAP w1.2 0\n"
	  "@9004 P BASELINE fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n"
	  "@9005 P FINAL fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n"
	  "@9006 P DAEMON_EXIT 134\n" },
	{ "a worker that exited badly", CK_WORKER, "",
	  "@9000 w0.1 DONE\n@9002 P REAP w0.1 0\n@9003 P REAP w1.2 4\n"
	  "@9004 P BASELINE fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n"
	  "@9005 P FINAL fds=5 heap=100000 sessions=1 leases=0 waiters=0 resources=0\n" },
};

static int selftest_one(const struct selftest_case *c)
{
	char path[] = "/tmp/hasp-soak-selftest-XXXXXX";
	int fd = mkstemp(path);
	struct check_result r;
	FILE *f;
	int rc, others = 0;

	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		perror("hasp-soak: self-test");
		return 1;
	}
	fprintf(f, "%s%s%s", head, c->body, c->tail ? c->tail : tail);
	fclose(f);
	fprintf(stderr, "--- %s: the checker says:\n", c->name);
	rc = check_file(path, &r);
	unlink(path);
	for (int k = 0; k < CK_NKINDS; k++)
		others += k != (int)c->want && r.violations[k] != 0;
	if (c->want == NONE ? rc == 0 && r.intervals > 0 :
	    rc == 1 && r.violations[c->want] > 0 && others == 0) {
		printf("ok: %s\n", c->name);
		return 0;
	}
	printf("FAIL: %s (expected %s, rc %d)\n", c->name,
	       c->want == NONE ? "no violation" : check_kind_name(c->want), rc);
	check_print(&r);
	return 1;
}

int selftest_run(void)
{
	int failed = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		failed += selftest_one(&cases[i]);
	printf("self-test: %d of %zu failed\n", failed, sizeof(cases) / sizeof(cases[0]));
	return failed ? 1 : 0;
}
