/* etcd's lock service through its JSON gateway, for compare.sh: the client
 * is hasp-bench's (etcd.h). TARGET is HOST:PORT. */
#include "etcd.h"
#include "peer.h"

int main(int argc, char **argv)
{
	return peer_main(&etcd_peer, argc, argv);
}
