/* lease.h — leader election on a coordination.k8s.io/v1 Lease, with controller-runtime's
 * timing: 15 s lease, 10 s renew deadline, 2 s retry. Losing the lease ends the leader's work. */
#ifndef KCMDR_LEASE_H
#define KCMDR_LEASE_H

#include <stdbool.h>

#include "kube.h"

struct lease_opts {
  const char *namespace;
  const char *name;
  const char *identity;   /* unique per process; NULL = hostname_pid */
  int lease_ms;           /* 0 = 15000 */
  int renew_deadline_ms;  /* 0 = 10000 */
  int retry_ms;           /* 0 = 2000 */
};

/* Called on lease_run's thread when this process starts and stops leading. */
typedef void (*lease_fn)(void *ud);

/* Campaign until this process holds the lease, call on_start, and renew it every retry period.
 * Returns KD_OK when *stop is set (the lease is released so another replica takes over at once),
 * or KD_ERR_CANCELLED when renewing failed for longer than the renew deadline (on_stop has been
 * called: the caller must stop its work). Other failures are retried while campaigning. */
kd_rc lease_run(kube_client *c, const struct lease_opts *opts, lease_fn on_start, lease_fn on_stop, void *ud,
                volatile const int *stop);

#endif
