/* hasp top's terminal: non-canonical mode without echo, the alternate
 * screen with plain ANSI escapes (no terminfo: it works over ssh and on
 * anything VT100-like), its size, keys, and SIGINT, SIGTERM and SIGWINCH,
 * which are blocked except while waiting (cli-signals.c), so that none is
 * missed.
 * Whatever is changed is restored by top_term_stop(). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "top.h"

static struct termios saved;
static bool raw_mode, started;
static struct cli_signals sigs;

int top_term_start(void)
{
	static const int caught[] = { SIGINT, SIGTERM, SIGWINCH };
	int r = cli_signals_catch(&sigs, caught, 3);

	if (r < 0)
		return r;
	started = true;
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0) {
		struct termios t = saved;

		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		raw_mode = tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0;
	}
	/* The alternate screen, the cursor hidden. */
	fputs("\033[?1049h\033[?25l", stdout);
	fflush(stdout);
	return 0;
}

void top_term_stop(void)
{
	if (!started)
		return;
	started = false;
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	if (raw_mode)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	raw_mode = false;
	cli_signals_restore(&sigs);
}

void top_term_size(unsigned *rows, unsigned *cols)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	} else {
		*rows = 24;
		*cols = 80;
	}
}

/* What a key read from stdin means. */
static enum top_wake read_key(void)
{
	char buf[64];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n == 0)
		return TOP_WAKE_QUIT; /* the terminal went */
	if (n < 0)
		return TOP_WAKE_KEY;
	return memchr(buf, 'q', (size_t)n) || memchr(buf, 'Q', (size_t)n) ? TOP_WAKE_QUIT
									   : TOP_WAKE_KEY;
}

enum top_wake top_term_wait(int64_t timeout_ms)
{
	struct pollfd p = { .fd = raw_mode ? STDIN_FILENO : -1, .events = POLLIN };
	struct timespec ts = { (time_t)(timeout_ms / 1000), (long)(timeout_ms % 1000) * 1000000 };
	int r;

	if (!cli_signal_pending(SIGINT) && !cli_signal_pending(SIGTERM) &&
	    !cli_signal_pending(SIGWINCH))
		r = ppoll(&p, 1, timeout_ms >= 0 ? &ts : NULL, &sigs.wait_mask);
	else
		r = -1;
	if (cli_signal_pending(SIGINT) || cli_signal_pending(SIGTERM))
		return TOP_WAKE_QUIT;
	if (cli_signal_caught(SIGWINCH))
		return TOP_WAKE_RESIZE;
	if (r > 0 && (p.revents & (POLLHUP | POLLERR)) && !(p.revents & POLLIN))
		return TOP_WAKE_QUIT;
	if (r > 0)
		return read_key();
	return TOP_WAKE_TIMEOUT;
}

/* s cut to cols columns: UTF-8 continuation bytes take none. */
static size_t cut(const char *s, unsigned cols)
{
	size_t i = 0;
	unsigned w = 0;

	for (; s[i]; i++) {
		if (((unsigned char)s[i] & 0xc0) == 0x80)
			continue;
		if (w == cols)
			break;
		w++;
	}
	return i;
}

void top_term_draw(const struct top_lines *l, unsigned rows, unsigned cols)
{
	fputs("\033[H", stdout);
	for (size_t i = 0; i < l->n && i < rows; i++) {
		fwrite(l->v[i], 1, cut(l->v[i], cols), stdout);
		/* The rest of the line cleared; no newline after the last row,
		 * which would scroll. */
		fputs(i + 1 < rows && i + 1 < l->n ? "\033[K\r\n" : "\033[K", stdout);
	}
	fputs("\033[J", stdout);
	fflush(stdout);
}
