/* The whole codec, both halves: for the protocol's own tests and fuzzer,
 * which read what one half writes with the other. It needs both halves' directories
 * on the include path, so libhasp, which has only proto/client/, cannot
 * include it: libhasp includes proto-client.h.
 *
 *   wire.h, codes.h, sockpath.h   shared (proto_common)
 *   proto-client.h                requests out, replies in (proto_client)
 *   proto-daemon.h                requests in, replies out (proto_daemon) */
#pragma once

#include "codes.h"
#include "proto-client.h"
#include "proto-daemon.h"
#include "sockpath.h"
#include "wire.h"
