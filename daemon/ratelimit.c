#include "ratelimit.h"

#include "htable.h"

static struct ratelimit_slot *ratelimit_slot(struct ratelimit *rl, uid_t uid)
{
	return &rl->slot[hash_u64(uid) % RATELIMIT_SLOTS];
}

bool ratelimit_take(struct ratelimit *rl, uid_t uid, uint64_t now_us, uint64_t *ret_suppressed)
{
	struct ratelimit_slot *s = ratelimit_slot(rl, uid);
	uint64_t earned;

	if (s->refilled_us == 0) {
		s->tokens = RATELIMIT_BURST;
		s->refilled_us = now_us;
	}
	earned = (now_us - s->refilled_us) / RATELIMIT_EVERY_US;
	if (earned > 0) {
		s->tokens = earned >= RATELIMIT_BURST - s->tokens ? RATELIMIT_BURST :
			    s->tokens + (uint32_t)earned;
		s->refilled_us += earned * RATELIMIT_EVERY_US;
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
