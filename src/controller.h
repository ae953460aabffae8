/* controller.h — `kcmdr controller`: reconciles ManagementBackup objects as kcm does (on-demand
 * and cron-scheduled Velero Backups, the selectors that decide what is in them, status that
 * follows the Backup, status rebuilt after a restore, pre-upgrade backups), driven by watches,
 * with leader election, Events, Prometheus metrics and health probes. */
#ifndef KCMDR_CONTROLLER_H
#define KCMDR_CONTROLLER_H

/* The `controller` verb: parses its flags, runs until SIGTERM/SIGINT, returns the exit code. */
int controller_main(int argc, char **argv);

#endif
