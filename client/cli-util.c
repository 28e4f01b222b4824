#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "utf8.h"

hasp_client *cli_connect(const struct cli *cli)
{
	char name[64];
	hasp_client *c = NULL;
	int r = hasp_client_new(&c);

	/* Who this is, for 'hasp ls': said at connect, never waited for. */
	snprintf(name, sizeof(name), "%s (pid %d)", cli->name ? cli->name : "hasp", (int)getpid());
	if (r >= 0)
		hasp_client_set_name(c, name);
	/* A daemon that leaves a request unanswered this long is hung (or
	 * stopped): a command says so rather than wait for ever. A lock's
	 * wait is bounded by its own --timeout instead. */
	if (r >= 0)
		hasp_client_set_call_timeout(c, CLI_CALL_TIMEOUT_MS);
	if (r >= 0 && (r = hasp_client_connect(c, cli->socket)) >= 0)
		return c;
	/* libhasp's reason names the socket it tried last (the default's
	 * choice), or, for -HASP_E_UNTRUSTED, the directory's owner and mode. */
	fprintf(stderr, "%s: ", CLI_NAME);
	if (c && *hasp_client_errmsg(c))
		cli_put_escaped(stderr, hasp_client_errmsg(c));
	else
		fprintf(stderr, "cannot connect to haspd: %s", strerror(-r));
	fprintf(stderr, "%s\n", r == -ENOENT || r == -ECONNREFUSED ? " (is haspd running?)" : "");
	hasp_close(c);
	return NULL;
}

int cli_status(int err)
{
	return err == -ECONNRESET || err == -HASP_E_LIMIT || err == -HASP_E_UNTRUSTED ||
	       err == -ETIMEDOUT ? EXIT_UNAVAILABLE : 1;
}

int cli_error(hasp_client *c, const char *what, int err)
{
	const char *msg = c ? hasp_client_errmsg(c) : "";

	fprintf(stderr, "%s: %s: ", CLI_NAME, what);
	cli_put_escaped(stderr, *msg ? msg : hasp_strerror(err));
	fputc('\n', stderr);
	return cli_status(err);
}

int cli_lease_status(int err, bool on_key, bool opened_file, int conflict_code)
{
	switch (err) {
	case -HASP_E_BUSY:
	case -HASP_E_TIMEOUT:
	case -HASP_E_DEADLOCK:
		return conflict_code;
	case -ENOMEM: case -EMFILE: case -ENFILE: case -HASP_E_INTERNAL:
		return EXIT_OSERR;
	case -EROFS: case -ENOSPC:
		return EXIT_CANTCREAT;
	case -EBADF:
		return EXIT_DATAERR;
	case -ECONNRESET: case -EPIPE: case -ENOTCONN: case -ECONNREFUSED: case -ETIMEDOUT:
	case -HASP_E_LIMIT: case -HASP_E_PROTOCOL: case -HASP_E_UNTRUSTED:
	case -HASP_E_UNAVAILABLE:
		return EXIT_UNAVAILABLE;
	case -HASP_E_BAD_REQUEST: case -EINVAL:
		/* What the command line gave was checked: for a file, its type. */
		return on_key ? EXIT_USAGE : EXIT_NOINPUT;
	case -HASP_E_PERMISSION_DENIED:
		return EXIT_NOINPUT;
	default:
		/* Opening FILE: ENOENT, EACCES, ENOTDIR, ELOOP, ... */
		return opened_file && err > -HASP_E_BASE ? EXIT_NOINPUT : EXIT_OSERR;
	}
}

void cli_report(hasp_client *c, int err)
{
	const char *msg = c ? hasp_client_errmsg(c) : "";

	fprintf(stderr, "%s: ", CLI_NAME);
	cli_put_escaped(stderr, *msg ? msg : hasp_strerror(err));
	fputc('\n', stderr);
}

bool cli_seconds(const char *s, int64_t *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0) || v > 1e9)
		return false;
	*ms = (int64_t)(v * 1000.0 + 0.5);
	if (*ms == 0 && v > 0)
		*ms = 1; /* a wait, however short, is not -n */
	return true;
}

/* What a string a client sends must be: UTF-8, within max bytes, and for a
 * key not empty. */
static bool text_valid(const char *cmd, const char *what, const char *s, size_t min,
		       size_t max)
{
	size_t n;

	if (!s)
		return true;
	n = strlen(s);
	if (n < min || n > max || !utf8_valid(s, n)) {
		fprintf(stderr, "%s: the %s must be UTF-8, %zu to %zu bytes\n"
			"Try 'hasp %s --help'.\n", CLI_NAME, what, min, max, cmd);
		return false;
	}
	return true;
}

bool cli_texts_valid(const char *cmd, const char *key, const char *owner, const char *message)
{
	return text_valid(cmd, "key", key, 1, 1024) && text_valid(cmd, "owner", owner, 0, 256) &&
	       text_valid(cmd, "message", message, 0, 1024);
}

const char *cli_user_name(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw ? pw->pw_name : getenv("USER");
}

void cli_format_age(char *buf, unsigned size, long long ms)
{
	long long s = ms / 1000;

	if (ms < 60000)
		snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
	else if (s < 3600)
		snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(buf, size, "%lldh%02lldm", s / 3600, s / 60 % 60);
}

/* The index of name among formats, or -1 with the reason said. */
static int cli_format_index(const char *name, const char *const *formats)
{
	for (int i = 0; formats[i]; i++)
		if (strcmp(name, formats[i]) == 0)
			return i;
	fprintf(stderr, "%s: unknown format '%s' (", CLI_NAME, name);
	for (int i = 0; formats[i]; i++)
		fprintf(stderr, "%s%s", i ? ", " : "", formats[i]);
	fputs(")\n", stderr);
	return -1;
}

int cli_simple_args(struct cli *cli, int argc, char **argv, const char *usage,
		    const char *const *formats, int *format)
{
	return cli_simple_args_one(cli, argc, argv, usage, formats, format, NULL);
}

int cli_simple_args_one(struct cli *cli, int argc, char **argv, const char *usage,
			const char *const *formats, int *format, const char **ret_arg)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "+f:jhS:", longopts, NULL)) != -1) {
		bool formatted = formats && (c == 'f' || c == 'j');
		int i = formatted ? cli_format_index(c == 'j' ? "json" : optarg, formats) : -1;

		if (i >= 0) {
			*format = i;
		} else if (c == 'S') {
			cli->socket = optarg;
		} else if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		} else {
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (ret_arg && optind < argc)
		*ret_arg = argv[optind++];
	return cli_no_more_args(argc, argv, usage);
}

int cli_no_more_args(int argc, char **argv, const char *usage)
{
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n%s", CLI_NAME, argv[optind], usage);
		return EXIT_USAGE;
	}
	return -1;
}

const char *cli_str(json_t *o, const char *name, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, name));

	return s ? s : dflt;
}
