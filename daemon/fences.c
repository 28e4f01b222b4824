#include "fences.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/time.h>

#include "changes.h"
#include "fencefile.h"
#include "haspd.h"
#include "log.h"

/* The last fence there is: the highest ceiling the file may hold. */
#define FENCE_LAST (FENCEFILE_MAX - 1)

/* The ceiling to store for fences from base (at most FENCE_LAST): base +
 * FENCES_RESERVE_US, but never more than the file may hold. Near the end it
 * reserves half of what is left, so that each run can still give fences
 * and the ceiling it stores is one the next run accepts; the first time
 * that bites, the log says that fences are running out. */
static uint64_t fences_next_ceiling(struct haspd *d, uint64_t base)
{
	if (base + FENCES_RESERVE_US <= FENCE_LAST)
		return base + FENCES_RESERVE_US;
	if (!d->fences_ending)
		log_err("fences are running out: %" PRIu64 " left up to %" PRIu64 ", the most the "
			"fence file holds; then nothing more is granted (see haspd(8))",
			(uint64_t)(FENCE_LAST - base), (uint64_t)FENCE_LAST);
	d->fences_ending = true;
	return base + (FENCE_LAST - base + 1) / 2;
}

/* A store failed: the next try is a second later, not at every callback
 * (a failing disk may be slow to fail). */
#define FENCES_RETRY_US 1000000u

int fences_store(struct haspd *d)
{
	struct locktable *lt = &d->lt;
	uint64_t base = lt->last_fence > lt->wall_us ? lt->last_fence : lt->wall_us;
	uint64_t ceiling;
	int r;

	if (base >= FENCE_LAST) {
		if (!d->fences_exhausted)
			log_err("fences are exhausted: the next would be above %" PRIu64 ", the most "
				"the fence file holds; nothing more is granted (requests wait or time "
				"out), so that no fence goes backwards (see haspd(8))",
				(uint64_t)FENCE_LAST);
		d->fences_exhausted = true;
		return -ERANGE;
	}
	ceiling = fences_next_ceiling(d, base);
	d->fences_tried_us = lt->now_us;
	r = fencefile_store(&d->fences, ceiling);
	if (r < 0) {
		if (!d->fences_failing)
			log_err("cannot store the fence ceiling: %s; trying again each second, and "
				"grants that need a fence wait until it works", strerror(-r));
		d->fences_failing = true;
		return r;
	}
	if (d->fences_failing)
		log_info("the fence ceiling is stored again");
	d->fences_failing = false;
	d->fences_mark = lt->last_fence;
	locktable_set_fence_ceiling(lt, ceiling + 1); /* a restart gives fences above it */
	return 0;
}

/* Stores, then grants what waited for a fence. */
static void fences_timer_cb(void *arg)
{
	struct haspd *d = arg;
	bool starved = d->lt.fences_starved;

	if (fences_store(d) < 0 || !starved)
		return;
	locktable_kick_all(&d->lt);
	changes_apply(d, NULL);
}

void fences_plan(struct haspd *d)
{
	const struct locktable *lt = &d->lt;
	bool used = lt->last_fence > d->fences_mark &&
		    locktable_fences_left(lt) < FENCES_RESERVE_US / 2;
	struct timeval tv = { 0, 0 };

	if (!d->fence_timer || d->fences_exhausted || loop_event_pending(d->fence_timer))
		return;
	if (!lt->fences_starved && !used)
		return;
	if (d->fences_failing) {
		uint64_t since = lt->now_us - d->fences_tried_us;
		uint64_t wait = since < FENCES_RETRY_US ? FENCES_RETRY_US - since : 0;

		tv.tv_sec = (time_t)(wait / 1000000u);
		tv.tv_usec = (suseconds_t)(wait % 1000000u);
	}
	/* Cannot fail: the timer heap was reserved at start. */
	loop_event_add(d->fence_timer, &tv);
}

/* How to recover from a lost ceiling, for the log. */
#define FENCE_RECOVERY "write a ceiling above every fence the earlier haspd gave into %s: 20 decimal " \
	"digits and a newline, e.g. an hour ahead of the clock (enough if fences followed the " \
	"clock): echo $(printf %%020d $(( $(date +%%s%%N) / 1000 + 3600000000 ))) > %s"

static int fences_error(int r, const char *path, const char *stale_socket)
{
	pid_t pid;

	switch (r) {
	case -ENOENT:
		log_err("the fence file %s is missing, but a socket left by an earlier haspd is at %s: "
			"fences could go backwards; not starting. To recover, " FENCE_RECOVERY
			"; or, if the clock was never set back, remove %s", path, stale_socket, path,
			path, stale_socket);
		break;
	case -ENODATA:
		log_err("the fence file %s is empty: an earlier haspd's ceiling is lost, and fences "
			"could go backwards; not starting. To recover, " FENCE_RECOVERY "; or, if the "
			"clock was never set back, remove it and any stale socket", path, path, path);
		break;
	case -EBADMSG:
		log_err("the fence file %s does not hold a fence ceiling (20 digits and a newline): "
			"fences could go backwards; not starting. To recover, " FENCE_RECOVERY, path,
			path, path);
		break;
	case -EPERM:
		log_err("the fence file %s is not a regular file of haspd's user, writable by it "
			"alone; not starting (whoever can write it can set fences back)", path);
		break;
	case -EBUSY:
		pid = fencefile_holder(path);
		if (pid > 0)
			log_err("another haspd is running (pid %d): it holds the fence file %s; not "
				"starting", (int)pid, path);
		else
			log_err("another haspd is running: it holds the fence file %s; not starting", path);
		break;
	default:
		log_err("cannot use the fence file %s: %s; not starting", path, strerror(-r));
	}
	return -1;
}

int fences_keep(struct haspd *d, const char *path, const char *stale_socket)
{
	uint64_t stored, ceiling;
	int r = fencefile_open(&d->fences, path, false, &stored);

	if (r == -ENOENT && !stale_socket) {
		log_info("no fence file at %s: a first start; creating it", path);
		r = fencefile_open(&d->fences, path, true, &stored);
	}
	if (r < 0)
		return fences_error(r, path, stale_socket);
	if (stored >= FENCE_LAST || d->lt.wall_us > FENCE_LAST) {
		log_err("fences are exhausted: the fence file %s holds %" PRIu64 " and the clock reads "
			"%" PRIu64 " µs, and no fence is left up to %" PRIu64 "; not starting (see "
			"haspd(8))", path, stored, d->lt.wall_us, (uint64_t)FENCE_LAST);
		fencefile_close(&d->fences);
		return -1;
	}
	locktable_set_fence_floor(&d->lt, stored);
	/* Not stored + 10 s: a string of quick restarts that grant nothing
	 * must not push the fences ever further ahead of the clock. */
	ceiling = stored;
	if (stored < d->lt.wall_us + FENCES_RESERVE_US) {
		ceiling = fences_next_ceiling(d, d->lt.wall_us);
		if (ceiling < stored)
			ceiling = stored;
	}
	r = fencefile_store(&d->fences, ceiling);
	if (r < 0) {
		log_err("cannot write the fence file %s: %s; not starting", path, strerror(-r));
		fencefile_close(&d->fences);
		return -1;
	}
	locktable_set_fence_ceiling(&d->lt, ceiling + 1); /* fences up to it */
	d->fences_mark = d->lt.last_fence;
	d->fence_timer = loop_event_new(&d->loop, -1, 0, fences_timer_cb, d);
	if (!d->fence_timer) {
		log_err("out of memory for the fence timer; not starting");
		fencefile_close(&d->fences);
		return -1;
	}
	log_debug("fences above %" PRIu64 ", kept in %s", stored, path);
	return 0;
}

