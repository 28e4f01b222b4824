#include "hist.h"

const uint64_t hist_bounds_us[HIST_BOUNDS] = {
	10, 100, 1000, 10000, 100000, 500000, 1000000, 5000000, 10000000,
	60000000, 300000000, 600000000, 1800000000, 3600000000,
};

void hist_observe(struct hist *h, uint64_t us)
{
	unsigned i = 0;

	while (i < HIST_BOUNDS && us > hist_bounds_us[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum_us += us;
}
