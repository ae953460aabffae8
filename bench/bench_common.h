/* bench_common.h — what the backup and restore benchmarks share: the benchmark's objects
 * (ConfigMaps, Secrets, ClusterDeployments, HelmReleases, about 1-2 KiB each, named
 * obj-NNNNNNN), loading them, a client, a thread pool, a filesystem location, and measuring a
 * function in a fresh child process. Every failure ends the program with a message (exit 1). */
#ifndef KCMDR_BENCH_COMMON_H
#define KCMDR_BENCH_COMMON_H

#include <jansson.h>
#include <stdbool.h>

#include "kube.h"

#define BENCH_NTYPES 4
extern const char *bench_prog; /* "bench-backup" or "bench-restore": the messages' prefix */
extern const struct kube_res bench_types[BENCH_NTYPES];
extern const struct kube_res bench_ns_res, bench_backup_res;

/* Print "<prog>: what: <last kd error>" and exit(1). */
void bench_die(const char *what) __attribute__((noreturn));
/* A client from the environment's kubeconfig: unlimited rate, or (engine_default) the options
 * the engine's own client has (qps 1000, burst 2000). */
kube_client *bench_client(bool engine_default);
/* Object i's index into bench_types (4 in 10 ConfigMaps, 3 Secrets, 2 ClusterDeployments, 1
 * HelmRelease) and the object itself in namespace ns (owned by the caller). */
int bench_type_of(long i);
json_t *bench_object(const char *ns, long i);
/* Create namespace ns if missing (idempotent POST). */
void bench_create_ns(kube_client *c, const char *ns);
/* Run fn(arg) on n threads (1..128) and wait for them. */
void bench_pool(int n, void *(*fn)(void *), void *arg);
/* Create objects 0..n-1 in ns (and ns) with workers threads, keeping those that exist; prints
 * what it did on stderr. Returns 0. */
int bench_load(const char *ns, long n, int workers);
/* The filesystem BackupStorageLocation "bench" (kcm-system, Available) over dir (the caller's). */
json_t *bench_bsl(const char *dir);
/* Run fn(arg, fd) in a fresh child; what it writes to fd (one line) into buf[n], its peak RSS
 * in KiB into *rss. A child that fails ends the program with its output and hint. */
void bench_in_child(void (*fn)(void *arg, int fd), void *arg, char *buf, size_t n, long *rss, const char *hint);

#endif
