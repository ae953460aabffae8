/* lease.h — leader election on a coordination.k8s.io/v1 Lease, with controller-runtime's
 * timing: 15 s lease, 10 s renew deadline, 2 s retry. A leader that cannot renew within the renew
 * deadline stops before any other process can take over (the lease is 5 s longer); give the
 * Lease a client of its own with short timeouts and no retries, so nothing delays renewals. */
#ifndef KCMDR_LEASE_H
#define KCMDR_LEASE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "kube.h"

struct lease_opts {
  const char *namespace;
  const char *name;
  const char *identity;   /* unique per process; NULL = hostname_pid */
  int lease_ms;           /* 0 = 15000 */
  int renew_deadline_ms;  /* 0 = 10000 */
  int retry_ms;           /* 0 = 2000 */
  /* Optional: set after every successful acquire or renew to (monotonic ms when that request
   * was sent) + renew deadline, and to 0 when leadership ends. A writer checks
   * kd_now_ms() < *valid_until_ms right before each write that only the leader may make. */
  _Atomic int64_t *valid_until_ms;
  /* Optional: incremented each time this process starts leading (before valid_until_ms is set),
   * so a job can tell the term it started in from a later one (fence.h). */
  _Atomic uint64_t *term;
};

/* Called on lease_run's thread when this process starts and stops leading. */
typedef void (*lease_fn)(void *ud);

/* Campaign until this process holds the lease, call on_start, and renew it every retry period.
 * When renewing fails for longer than the renew deadline, or another holder is seen, it logs
 * that the lease was lost, calls on_stop and campaigns again (on_start again once it leads).
 * Returns KD_OK when *stop is set (the lease is released so another replica takes over at
 * once). API failures are logged and retried. */
kd_rc lease_run(kube_client *c, const struct lease_opts *opts, lease_fn on_start, lease_fn on_stop, void *ud,
                volatile const int *stop);

#endif
