#include "ratelimit.h"

#include "htable.h"

static struct ratelimit_slot *ratelimit_slot(struct ratelimit *rl, uid_t uid)
{
	return &rl->slot[hash_u64(uid) % RATELIMIT_SLOTS];
}

bool ratelimit_take(struct ratelimit *rl, uid_t uid, uint64_t now_ms, uint64_t *ret_suppressed)
{
	struct ratelimit_slot *s = ratelimit_slot(rl, uid);
	uint64_t earned;

	if (s->refilled_ms == 0) {
		s->tokens = RATELIMIT_BURST;
		s->refilled_ms = now_ms;
	}
	earned = (now_ms - s->refilled_ms) / RATELIMIT_EVERY_MS;
	if (earned > 0) {
		s->tokens = earned >= RATELIMIT_BURST - s->tokens ? RATELIMIT_BURST :
			    s->tokens + (uint32_t)earned;
		s->refilled_ms += earned * RATELIMIT_EVERY_MS;
	}
	if (s->tokens == 0) {
		s->suppressed++;
		return false;
	}
	s->tokens--;
	*ret_suppressed = s->suppressed;
	s->suppressed = 0;
	return true;
}
