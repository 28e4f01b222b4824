/* hasp checkin: end a checkout, by its token or by what it is on. */
#include <stdio.h>

#include "checkout.h"

static const char usage[] =
	"Usage: hasp checkin [OPTIONS] --token TOKEN\n"
	"       hasp checkin [OPTIONS] FILE|DIRECTORY\n"
	"       hasp checkin [OPTIONS] -k KEY\n"
	"Ends a checkout ('hasp checkout'): the one whose token is TOKEN, from any\n"
	"process or user who has it; or your own (your user's) checkout on FILE or on\n"
	"the named lock KEY. The next waiters are granted at once. FILE is opened,\n"
	"never created, to name it.\n"
	"\n"
	"  -t, --token TOKEN      the checkout's token, as 'hasp checkout' printed it\n"
	"  -k, --key KEY          the checkout on KEY\n"
	"  -S, --socket PATH      haspd's socket\n"
	"  -h, --help             print this help\n"
	"\n"
	"Exit status: 0 when checked in; 1 when there is no such checkout (it was\n"
	"checked in, revoked or expired already, or it is not yours) or the token is\n"
	"wrong; 64 for a usage error; 66 when FILE cannot be opened; 69 when haspd\n"
	"cannot be reached or will not serve, or its socket is not to be trusted; 71\n"
	"for a system error.\n";

int cmd_checkin(struct cli *cli, int argc, char **argv)
{
	struct checkout_target t = { NULL, NULL, NULL };
	hasp_client *c;
	int r = checkout_target_args(cli, argc, argv, usage, &t, NULL, NULL);

	if (r >= 0)
		return r;
	c = cli_connect(cli);
	if (!c)
		return EXIT_UNAVAILABLE;
	r = t.token ? hasp_checkin(c, t.token) : t.key ? hasp_checkin_key(c, t.key)
						       : hasp_checkin_file(c, t.file);
	r = r < 0 ? checkout_target_failed(c, r, &t) : 0;
	hasp_close(c);
	return r;
}
