/* haspd: options, signals, and the event loop. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "dispatch.h"
#include "files.h"
#include "haspd.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "session.h"

static const char usage[] =
	"Usage: haspd [OPTIONS]\n"
	"The hasp lock daemon: serves exclusive and shared leases on named keys\n"
	"over a Unix socket. It runs in the foreground and logs to stderr.\n"
	"\n"
	"  -S, --socket PATH     listen on PATH (default: $HASP_SOCKET, else\n"
	"                        $XDG_RUNTIME_DIR/hasp/haspd.sock, else\n"
	"                        /run/hasp/haspd.sock for root, else\n"
	"                        /tmp/hasp-$UID/haspd.sock)\n"
	"  -f, --foreground      stay in the foreground (the default and only mode)\n"
	"  -l, --log-level LEVEL error, warning, info (default) or debug\n"
	"  -V, --version         print the version and exit\n"
	"  -h, --help            print this help and exit\n"
	"\n"
	"SIGTERM or SIGINT stop it cleanly and remove its socket file.\n";

struct options {
	const char *socket;
};

static int parse_options(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, level;

	while ((c = getopt_long(argc, argv, "S:fl:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			opt->socket = optarg;
			break;
		case 'f':
			break;
		case 'l':
			level = log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "haspd: unknown log level '%s' (error, warning, info, debug)\n",
					optarg);
				return 2;
			}
			log_threshold = (enum log_level)level;
			break;
		case 'V':
			printf("haspd %s (protocol %d)\n", HASP_VERSION_STRING, PROTO_VERSION);
			return 0;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs("Try 'haspd --help'.\n", stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "haspd: unexpected argument '%s'\nTry 'haspd --help'.\n", argv[optind]);
		return 2;
	}
	return -1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct haspd *d = arg;

	log_info("caught %s, stopping", strsignal((int)sig));
	event_base_loopbreak(d->base);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct haspd *d = arg;

	haspd_tick(d);
	d->timer_at = -1;
	locktable_expire(&d->lt);
	files_retry_due(d);
	haspd_sync(d);
}

static int haspd_init(struct haspd *d)
{
	const struct lt_callbacks cb = {
		.granted = dispatch_granted,
		.expired = dispatch_expired,
		.admit = files_admit,
		.unlocked = files_unlocked,
		.freed = files_freed,
		.arg = d,
	};

	memset(d, 0, sizeof(*d));
	list_init(&d->sessions);
	list_init(&d->flushing);
	list_init(&d->graveyard);
	list_init(&d->retrying);
	d->timer_at = -1;
	d->started_ms = haspd_now_ms();
	/* Not EVENT_BASE_FLAG_PRECISE_TIMER: it costs a timerfd_settime per
	 * loop. epoll_wait's millisecond timeout is rounded up, so a deadline
	 * fires at most 1 ms late and never early. */
	d->base = event_base_new();
	if (!d->base || locktable_init(&d->lt, &cb) < 0)
		return -1;
	d->timer = evtimer_new(d->base, on_timer, d);
	if (!d->timer)
		return -1;
	haspd_tick(d);
	return 0;
}

static void haspd_done(struct haspd *d)
{
	while (!list_empty(&d->sessions))
		session_lost(list_entry(d->sessions.next, struct session, link), "daemon stopping");
	haspd_sync(d);
	d->server = server_free(d->server);
	if (d->timer)
		event_free(d->timer);
	locktable_done(&d->lt);
	if (d->base)
		event_base_free(d->base);
}

int main(int argc, char **argv)
{
	struct options opt = { NULL };
	struct event *sigs[2] = { NULL, NULL };
	char path[256];
	struct haspd d;
	int r = parse_options(argc, argv, &opt);

	if (r >= 0)
		return r;
	if (!opt.socket) {
		if (proto_default_socket(path, sizeof(path)) < 0) {
			log_err("the default socket path is too long; use --socket");
			return 1;
		}
		opt.socket = path;
	}
	signal(SIGPIPE, SIG_IGN);
	if (haspd_init(&d) < 0) {
		log_err("cannot initialise: %s", strerror(errno));
		haspd_done(&d);
		return 1;
	}
	d.server = server_new(&d, opt.socket);
	sigs[0] = evsignal_new(d.base, SIGTERM, on_signal, &d);
	sigs[1] = evsignal_new(d.base, SIGINT, on_signal, &d);
	if (!d.server || !sigs[0] || !sigs[1] || event_add(sigs[0], NULL) < 0 ||
	    event_add(sigs[1], NULL) < 0) {
		r = 1;
	} else {
		log_info("haspd %s listening on %s", HASP_VERSION_STRING, opt.socket);
		r = event_base_dispatch(d.base) < 0;
		log_info("stopped");
	}
	for (int i = 0; i < 2; i++)
		if (sigs[i])
			event_free(sigs[i]);
	haspd_done(&d);
	return r;
}
