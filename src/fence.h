/* fence.h — leadership terms, so that a deposed leader writes nothing.
 *
 * The lease (lease.c) counts terms: each time this process starts leading, the counter goes up.
 * A job (a backup, a restore, a sync of one location) takes a fence when it starts: the term it
 * started in. Every write only a leader may make (a bucket write, a status write) checks the
 * fence first: the term must still be the same one and the lease must still be valid at this
 * instant. A process that was paused, or lost the lease and won it back in between, fails the
 * check and writes nothing more. Without leader election the fence always holds. */
#ifndef KCMDR_FENCE_H
#define KCMDR_FENCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* Where leadership is published; all NULL without leader election (then every fence holds). */
struct fence_src {
  _Atomic uint64_t *term;          /* incremented on each acquisition; 0 while never leading */
  _Atomic int64_t *valid_until_ms; /* monotonic ms until which the lease is ours; 0 = not leading */
};

struct fence {
  struct fence_src src;
  uint64_t term; /* the term the holder started in */
};

/* A fence for a job starting now: the current term. Never fails; a process that is not
 * leading gets a fence that never holds. */
struct fence fence_take(const struct fence_src *src);
/* Does the fence hold at this instant (same term, lease valid)? NULL f always holds. */
bool fence_held(const struct fence *f);
/* KD_OK while the fence holds, else KD_ERR_CANCELLED with a message saying why (what names the
 * write that is refused, e.g. "writing backups/x/x.tar.gz"). NULL f always holds. */
kd_rc fence_check(const struct fence *f, const char *what);
/* The same, in the shape objstore_set_guard takes (ud is a const struct fence *). */
kd_rc fence_guard(void *ud);

#endif
