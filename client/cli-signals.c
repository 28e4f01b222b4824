/* Signals a command waits for (SIGINT, SIGTERM, SIGWINCH): blocked but
 * while it sleeps in ppoll(2) with cli_signals.wait_mask, so that one that
 * comes between a check and the sleep is not missed; each noted for
 * cli_signal_caught(). */
#include <errno.h>
#include <signal.h>

#include "cli.h"

static volatile sig_atomic_t caught[NSIG];

static void on_signal(int sig)
{
	if (sig > 0 && sig < NSIG)
		caught[sig] = 1;
}

int cli_signals_catch(struct cli_signals *s, const int *sigs, size_t n)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block;

	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (size_t i = 0; i < n; i++)
		sigaddset(&block, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &block, &s->saved_mask) < 0)
		return -errno;
	s->wait_mask = s->saved_mask;
	for (size_t i = 0; i < n; i++) {
		sigdelset(&s->wait_mask, sigs[i]);
		if (sigaction(sigs[i], &sa, NULL) < 0)
			return -errno;
	}
	return 0;
}

bool cli_signal_caught(int sig)
{
	bool was = caught[sig];

	caught[sig] = 0;
	return was;
}

bool cli_signal_pending(int sig)
{
	return caught[sig];
}

void cli_signals_restore(const struct cli_signals *s)
{
	sigprocmask(SIG_SETMASK, &s->saved_mask, NULL);
}
