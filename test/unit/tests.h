/* tests.h — every unit-test group; main.c runs them all in this order. */
#ifndef KCMDR_TESTS_H
#define KCMDR_TESTS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

int test_util(void);
int test_fence(void);
int test_retention(void);
int test_yamljson(void);
int test_kubeconfig(void);
int test_kube(void);
int test_http(void);
int test_cron(void);
int test_mgmtbackup(void);
int test_region(void);
int test_jsonscan(void);
int test_velero(void);
int test_archive(void);
int test_sigv4(void);
int test_objstore(void);
int test_backup(void);
int test_verify(void);
int test_joblog(void);
int test_restore(void);
int test_jsonpatch(void), test_resmod(void);
int test_cli(void);
int test_crypt(void);
int test_metrics(void);
int test_owner(void);
int test_preview(void);

#endif
