/* hasp renew: push back the end of a checkout (or lease) with a TTL. */
#include <stdio.h>

#include "checkout.h"

static const char usage[] =
	"Usage: hasp renew [--ttl SECONDS] [OPTIONS] --token TOKEN\n"
	"       hasp renew [--ttl SECONDS] [OPTIONS] FILE|DIRECTORY\n"
	"       hasp renew [--ttl SECONDS] [OPTIONS] -k KEY\n"
	"Renews a checkout with a TTL ('hasp checkout --ttl'): it now ends SECONDS\n"
	"from now (without --ttl, its own TTL from now). The checkout is the one whose\n"
	"token is TOKEN (anyone who has it may renew it), or your own (your user's)\n"
	"checkout on FILE or on the named lock KEY; a checkout without a TTL gets one.\n"
	"FILE is opened, never created, to name it.\n"
	"\n"
	"      --ttl SECONDS      the new TTL (decimals allowed, > 0)\n"
	"  -t, --token TOKEN      the checkout's token, as 'hasp checkout' printed it\n"
	"  -k, --key KEY          the checkout on KEY\n"
	"  -j, --json             print {\"expires_ms\":MS}: how long until it ends\n"
	"  -S, --socket PATH      haspd's socket\n"
	"  -h, --help             print this help\n"
	"\n"
	"Exit status: 0 when renewed; 1 when there is no such checkout (it was checked\n"
	"in, revoked or expired already, or it is not yours), the token is wrong, or\n"
	"it has no TTL and --ttl was not given; 64 for a usage error; 66 when FILE\n"
	"cannot be opened; 69 when haspd cannot be reached or will not serve, or its\n"
	"socket is not to be trusted; 71 for a system error.\n";

int cmd_renew(struct cli *cli, int argc, char **argv)
{
	struct checkout_target t = { NULL, NULL, NULL };
	int64_t ttl_ms = 0, expires_ms = 0; /* ttl_ms 0: the checkout's own */
	bool json = false;
	hasp_client *c;
	int r = checkout_target_args(cli, argc, argv, usage, &t, &ttl_ms, &json);

	if (r >= 0)
		return r;
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	r = t.token ? hasp_renew_token(c, t.token, ttl_ms, &expires_ms)
	    : t.key ? hasp_renew_key(c, t.key, ttl_ms, &expires_ms)
		    : hasp_renew_file(c, t.file, ttl_ms, &expires_ms);
	if (r == -HASP_E_BAD_REQUEST && !ttl_ms) {
		cli_report(c, r); /* no TTL to renew */
		r = 1;
	} else if (r < 0) {
		r = checkout_target_failed(c, r, &t);
	} else if (json) {
		printf("{\"expires_ms\":%lld}\n", (long long)expires_ms);
	}
	hasp_close(c);
	return r;
}
