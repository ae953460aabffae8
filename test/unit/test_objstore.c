/* test_objstore.c — the object-store layer without a network: key rules, AWS credentials files,
 * reading BackupStorageLocations, S3 addressing, the S3 XML reader (answers as AWS and Ceph RGW
 * send them, and hostile ones), and the filesystem store in a temporary directory (hostile keys,
 * symbolic links, aborted writers, listing order). The S3 client itself runs against the real
 * Ceph gateway in test/e2e/t_objstore.sh. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsstore.h"
#include "objstore.h"
#include "s3.h"
#include "tests.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define CREDS "[default]\naws_access_key_id = AKIDTEST\naws_secret_access_key = " SECRET "\n"

static void key_rules(void **state) {
  (void)state;
  const char *good[] = {"a", "backups/b/velero-backup.json", "a b/c+d/\xc3\xa9", "...", ".a/..b/c.", "x/~/%00"};
  /* tried: every way a careless caller could build a key that escapes or aliases */
  const char *bad[] = {"", "/abs", "a//b", "a/", "/", ".", "..", "../x", "a/../b", "a/./b", "a/..", "./a"};
  for (size_t i = 0; i < KD_ARRAY_LEN(good); i++)
    if (!objstore_key_valid(good[i])) fail_msg("'%s' should be valid", good[i]);
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++)
    if (objstore_key_valid(bad[i])) fail_msg("'%s' should be invalid", bad[i]);
  assert_false(objstore_key_valid(NULL));
}

/* ---- credentials ---- */

static void credentials_files(void **state) {
  (void)state;
  struct objstore_creds c;
  /* CRLF, comments, spaces and tabs around '=', keys in another case, other profiles around */
  const char *f1 = "\xef\xbb\xbf# made by hand\r\n[other]\r\naws_access_key_id=WRONG\r\naws_secret_access_key=WRONG\r\n"
                   "\r\n[ default ]\r\n; comment\r\nAWS_ACCESS_KEY_ID\t=  AKID1  \r\naws_secret_access_key =" SECRET
                   "\r\naws_session_token = tok/en+==\r\nregion = us-west-2\r\n";
  assert_int_equal(objstore_parse_credentials(f1, strlen(f1), NULL, &c), KD_OK);
  assert_string_equal(c.access_key, "AKID1");
  assert_string_equal(c.secret_key, SECRET);
  assert_string_equal(c.session_token, "tok/en+==");
  objstore_creds_free(&c);
  /* config.profile: "[name]" and "[profile name]" spellings; no trailing newline */
  const char *f2 = "[default]\naws_access_key_id=A\naws_secret_access_key=B\n[profile backup]\naws_access_key_id=C\n"
                   "aws_secret_access_key=D";
  assert_int_equal(objstore_parse_credentials(f2, strlen(f2), "backup", &c), KD_OK);
  assert_string_equal(c.access_key, "C");
  assert_string_equal(c.secret_key, "D");
  assert_null(c.session_token);
  objstore_creds_free(&c);
  /* tried: a profile that is not there; a profile without the secret; an empty file; a junk
   * line holding the secret inside the profile: errors that name what is missing, never a value */
  assert_int_equal(objstore_parse_credentials(f2, strlen(f2), "nope", &c), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "[nope]"));
  const char *f3 = "[default]\naws_access_key_id=AKID\n";
  assert_int_equal(objstore_parse_credentials(f3, strlen(f3), NULL, &c), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "aws_secret_access_key"));
  assert_int_equal(objstore_parse_credentials("", 0, NULL, &c), KD_ERR_CONFIG);
  const char *f4 = "[default]\naws_access_key_id=AKID\n" SECRET "\n";
  assert_int_equal(objstore_parse_credentials(f4, strlen(f4), NULL, &c), KD_ERR_CONFIG);
  assert_null(strstr(kd_errmsg(), SECRET));
  assert_non_null(strstr(kd_errmsg(), "line 3"));
  /* tried: a NUL byte inside the file (a binary Secret) */
  const char f5[] = "[default]\naws_access_key_id=A\0B\naws_secret_access_key=C\n";
  assert_int_equal(objstore_parse_credentials(f5, sizeof f5 - 1, NULL, &c), KD_ERR_CONFIG);
}

/* ---- BSLs ---- */

static json_t *bsl(const char *provider, const char *bucket, const char *prefix, json_t *config) {
  json_t *os = json_object();
  if (bucket) json_object_set_new(os, "bucket", json_string(bucket));
  if (prefix) json_object_set_new(os, "prefix", json_string(prefix));
  json_t *spec = json_pack("{s:s,s:o}", "provider", provider, "objectStorage", os);
  if (config) json_object_set_new(spec, "config", config);
  return json_pack("{s:s,s:s,s:{s:s},s:o}", "apiVersion", "velero.io/v1", "kind", "BackupStorageLocation", "metadata",
                   "name", "default", "spec", spec);
}

/* A fresh self-signed certificate as PEM (caller frees). */
static char *make_cert_pem(void) {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  X509 *x = X509_new();
  assert_non_null(k);
  assert_non_null(x);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, k);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"kcmdr-test", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  assert_true(X509_sign(x, k, EVP_sha256()) > 0);
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *pem = strndup(data, (size_t)n);
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(k);
  return pem;
}

static void open_bsl_reads_velero_config(void **state) {
  (void)state;
  objstore *s = NULL;
  /* aws with everything: prefix trimmed of '/', path style, endpoint, region */
  json_t *b = bsl("velero.io/aws", "kcmdr", "//backups/cluster-a/",
                  json_pack("{s:s,s:s,s:s,s:s}", "region", "minio", "s3Url", "http://127.0.0.1:9000", "s3ForcePathStyle",
                            "true", "publicUrl", "https://s3.example.com"));
  assert_int_equal(objstore_open_bsl(b, CREDS, strlen(CREDS), &s), KD_OK);
  assert_string_equal(objstore_describe(s), "s3://kcmdr/backups/cluster-a at http://127.0.0.1:9000");
  objstore_free(s);
  json_decref(b);
  /* provider aws, no s3Url: AWS itself for the region, virtual-hosted */
  b = bsl("aws", "my-bucket", NULL, json_pack("{s:s}", "region", "eu-central-1"));
  assert_int_equal(objstore_open_bsl(b, CREDS, strlen(CREDS), &s), KD_OK);
  assert_string_equal(objstore_describe(s), "s3://my-bucket at https://s3.eu-central-1.amazonaws.com");
  objstore_free(s);
  json_decref(b);
  /* caCert: base64 of a PEM certificate */
  char *pem = make_cert_pem();
  char *b64 = kd_base64_encode((const unsigned char *)pem, strlen(pem));
  b = bsl("aws", "b12", NULL, json_pack("{s:s}", "s3Url", "https://gw.example:8443"));
  json_object_set_new(json_object_get(json_object_get(b, "spec"), "objectStorage"), "caCert", json_string(b64));
  assert_int_equal(objstore_open_bsl(b, CREDS, strlen(CREDS), &s), KD_OK);
  objstore_free(s);
  json_decref(b);
  free(pem);
  free(b64);
  /* filesystem */
  b = bsl("filesystem", NULL, "/pre/", json_pack("{s:s}", "path", "/var/lib/kcmdr/backups/"));
  assert_int_equal(objstore_open_bsl(b, NULL, 0, &s), KD_OK);
  assert_string_equal(objstore_describe(s), "file:///var/lib/kcmdr/backups/pre");
  objstore_free(s);
  json_decref(b);
}

/* tried: every BSL mistake a user makes; each is KD_ERR_CONFIG naming the field, and no
 * message holds the secret key */
static void open_bsl_rejects_what_it_cannot_use(void **state) {
  (void)state;
  struct {
    json_t *b;
    const char *cred;
    const char *needle;
  } cases[] = {
      {bsl("gcp", "b", NULL, NULL), CREDS, "spec.provider 'gcp'"},
      {bsl("aws", NULL, NULL, NULL), CREDS, "objectStorage.bucket"},
      {bsl("aws", "b", NULL, json_pack("{s:s}", "s3Url", "ftp://host")), CREDS, "config.s3Url"},
      {bsl("aws", "b", NULL, json_pack("{s:s}", "s3Url", "http://user:" SECRET "@host")), CREDS, "config.s3Url"},
      {bsl("aws", "b", NULL, json_pack("{s:s}", "s3Url", "http://host/?x=1")), CREDS, "config.s3Url"},
      {bsl("aws", "b", NULL, json_pack("{s:s}", "s3ForcePathStyle", "yes")), CREDS, "config.s3ForcePathStyle"},
      {bsl("aws", "b", NULL, json_pack("{s:b}", "insecureSkipTLSVerify", 1)), CREDS, "config.insecureSkipTLSVerify"},
      {bsl("aws", "b", NULL, json_pack("{s:s}", "region", "us east")), CREDS, "config.region"},
      {bsl("aws", "b", NULL, NULL), NULL, "no credentials"},
      {bsl("aws", "b", NULL, json_pack("{s:s}", "profile", "prod")), CREDS, "[prod]"},
      {bsl("aws", "b", "a/../b", NULL), CREDS, "objectStorage.prefix"},
      {bsl("aws", "b/c", NULL, NULL), CREDS, "objectStorage.bucket"},
      {bsl("filesystem", NULL, NULL, NULL), NULL, "config.path"},
      {bsl("filesystem", NULL, NULL, json_pack("{s:s}", "path", "relative/dir")), NULL, "config.path"},
      {json_pack("{s:s}", "kind", "BackupStorageLocation"), CREDS, "no spec"},
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
    objstore *s = NULL;
    kd_rc rc = objstore_open_bsl(cases[i].b, cases[i].cred, cases[i].cred ? strlen(cases[i].cred) : 0, &s);
    if (rc != KD_ERR_CONFIG) fail_msg("case %zu: expected a configuration error, got %d (%s)", i, rc, kd_errmsg());
    if (!strstr(kd_errmsg(), cases[i].needle)) fail_msg("case %zu: '%s' not in '%s'", i, cases[i].needle, kd_errmsg());
    if (strstr(kd_errmsg(), SECRET)) fail_msg("case %zu: the secret is in the message", i);
    assert_null(s);
    json_decref(cases[i].b);
  }
  /* caCert that is not base64, and base64 of something that is not a certificate */
  const char *certs[] = {"not*base64", "aGVsbG8gd29ybGQ="};
  for (size_t i = 0; i < KD_ARRAY_LEN(certs); i++) {
    json_t *b = bsl("aws", "b", NULL, NULL);
    json_object_set_new(json_object_get(json_object_get(b, "spec"), "objectStorage"), "caCert", json_string(certs[i]));
    objstore *s = NULL;
    assert_int_equal(objstore_open_bsl(b, CREDS, strlen(CREDS), &s), KD_ERR_CONFIG);
    assert_non_null(strstr(kd_errmsg(), "objectStorage.caCert"));
    json_decref(b);
  }
}

/* tried: the header values of a locked write with fixed vectors (RFC 1321's MD5 of "" and "abc"
 * as base64; 2001-09-09T01:46:40Z is 1e9 s), the date as the backup's when given and as now +
 * days otherwise, none for a date not in the future or no mode; the annotations as users may get
 * them wrong (lower case, a number, days without a mode, 0, signs, spaces, too many days, a
 * filesystem location); and GET ?object-lock answers as AWS and RGW send them. */
static void object_lock_config_and_headers(void **state) {
  (void)state;
  struct s3_lock_hdrs h;
  s3_lock_hdrs_build("COMPLIANCE", 0, 1000000000, 999999000, "", 0, true, true, &h);
  assert_string_equal(h.md5, "1B2M2Y8AsgTpgAmY7PhCfg==");
  assert_string_equal(h.mode, "COMPLIANCE");
  assert_string_equal(h.until, "2001-09-09T01:46:40Z");
  s3_lock_hdrs_build("GOVERNANCE", 2, 0, 1000000000, "abc", 3, true, true, &h);
  assert_string_equal(h.md5, "kAFQmDzST7DWlj99KOF/cg==");
  assert_string_equal(h.until, "2001-09-11T01:46:40Z");
  s3_lock_hdrs_build("GOVERNANCE", 2, 0, 1000000000, "abc", 3, true, false, &h); /* a part: MD5 only */
  assert_string_equal(h.md5, "kAFQmDzST7DWlj99KOF/cg==");
  assert_string_equal(h.mode, "");
  s3_lock_hdrs_build("GOVERNANCE", 0, 0, 1000000000, "abc", 3, false, true, &h); /* no date: no lock */
  assert_string_equal(h.md5, "");
  assert_string_equal(h.mode, "");
  assert_string_equal(h.until, "");
  s3_lock_hdrs_build("COMPLIANCE", 0, 999999999, 1000000000, "", 0, true, true, &h); /* a date in the past */
  assert_string_equal(h.mode, "");

  struct {
    const char *mode, *days, *needle;
  } bad[] = {{"compliance", NULL, "must be COMPLIANCE or GOVERNANCE"}, {"", NULL, "must be COMPLIANCE or GOVERNANCE"},
             {NULL, "3", "needs kcmdr.io/object-lock"},        {"GOVERNANCE", "0", "whole number of days"},
             {"GOVERNANCE", "-1", "whole number of days"},       {"GOVERNANCE", "+1", "whole number of days"},
             {"GOVERNANCE", " 1", "whole number of days"},       {"GOVERNANCE", "36501", "whole number of days"},
             {"GOVERNANCE", "1d", "whole number of days"},       {"GOVERNANCE", "", "whole number of days"}};
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) {
    json_t *b = bsl("aws", "b", NULL, NULL), *ann = json_object();
    if (bad[i].mode) json_object_set_new(ann, OBJSTORE_ANN_LOCK, json_string(bad[i].mode));
    if (bad[i].days) json_object_set_new(ann, OBJSTORE_ANN_LOCK_DAYS, json_string(bad[i].days));
    json_object_set_new(b, "metadata", json_pack("{s:o}", "annotations", ann));
    objstore *st = NULL;
    kd_rc rc = objstore_open_bsl(b, CREDS, strlen(CREDS), &st);
    if (rc != KD_ERR_CONFIG || !strstr(kd_errmsg(), bad[i].needle))
      fail_msg("case %zu: %s: '%s' (wanted '%s')", i, kd_rc_name(rc), kd_errmsg(), bad[i].needle);
    assert_null(st);
    json_decref(b);
  }
  json_t *b = bsl("aws", "b", NULL, NULL);
  json_object_set_new(b, "metadata", json_pack("{s:{s:i}}", "annotations", OBJSTORE_ANN_LOCK, 1));
  objstore *st = NULL;
  assert_int_equal(objstore_open_bsl(b, CREDS, strlen(CREDS), &st), KD_ERR_CONFIG);
  json_decref(b);
  b = bsl("filesystem", NULL, NULL, json_pack("{s:s}", "path", "/tmp"));
  json_object_set_new(b, "metadata", json_pack("{s:{s:s}}", "annotations", OBJSTORE_ANN_LOCK, "COMPLIANCE"));
  assert_int_equal(objstore_open_bsl(b, NULL, 0, &st), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "needs an S3 location"));
  json_decref(b);
  b = bsl("aws", "b", NULL, NULL);
  json_object_set_new(b, "metadata", json_pack("{s:{s:s,s:s}}", "annotations", OBJSTORE_ANN_LOCK, "GOVERNANCE",
                                               OBJSTORE_ANN_LOCK_DAYS, "36500"));
  assert_int_equal(objstore_open_bsl(b, CREDS, strlen(CREDS), &st), KD_OK);
  assert_string_equal(objstore_lock_mode(st), "GOVERNANCE");
  assert_int_equal(objstore_lock_days(st), 36500);
  /* the later of the expiration and start + days */
  assert_int_equal(objstore_lock_backup(st, 1000, 5000), 1000 + 36500L * 86400);
  objstore_free(st);
  json_decref(b);

  struct s3_lock_config cfg;
  static const char aws[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                            "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode>"
                            "<Years>2</Years></DefaultRetention></Rule></ObjectLockConfiguration>";
  assert_int_equal(s3_parse_lock_config(aws, strlen(aws), &cfg), KD_OK);
  assert_true(cfg.enabled);
  assert_string_equal(cfg.default_mode, "GOVERNANCE");
  assert_int_equal(cfg.default_days, 730);
  static const char rgw[] = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>";
  assert_int_equal(s3_parse_lock_config(rgw, strlen(rgw), &cfg), KD_OK);
  assert_true(cfg.enabled);
  assert_int_equal(cfg.default_days, 0);
  static const char off[] = "<ObjectLockConfiguration><ObjectLockEnabled>Disabled</ObjectLockEnabled></ObjectLockConfiguration>";
  assert_int_equal(s3_parse_lock_config(off, strlen(off), &cfg), KD_OK);
  assert_false(cfg.enabled);
  static const char other[] = "<Error><Code>ObjectLockConfigurationNotFoundError</Code></Error>";
  assert_int_equal(s3_parse_lock_config(other, strlen(other), &cfg), KD_ERR_PARSE);

  /* ListObjectVersions, newest first: an attacker's delete marker and overwrite on top of ours,
   * and a longer key under the same prefix; the first version is ours */
  static const char versions[] =
      "<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><IsTruncated>false</IsTruncated>"
      "<DeleteMarker><Key>p/b.tar.gz</Key><VersionId>dm3</VersionId><IsLatest>true</IsLatest></DeleteMarker>"
      "<Version><Key>p/b.tar.gz</Key><VersionId>junk2</VersionId></Version>"
      "<Version><Key>p/b.tar.gz</Key><VersionId>ours1</VersionId></Version>"
      "<Version><Key>p/b.tar.gz.x</Key><VersionId>other</VersionId></Version></ListVersionsResult>";
  struct s3_versions_page pg;
  memset(&pg, 0, sizeof pg);
  snprintf(pg.key, sizeof pg.key, "p/b.tar.gz");
  assert_int_equal(s3_parse_versions(versions, strlen(versions), &pg), KD_OK);
  assert_true(pg.any);
  assert_string_equal(pg.oldest, "ours1");
  assert_false(pg.truncated);
  static const char hidden[] = "<ListVersionsResult><IsTruncated>true</IsTruncated><NextKeyMarker>p/c</NextKeyMarker>"
                               "<DeleteMarker><Key>p/c</Key><VersionId>dm</VersionId></DeleteMarker></ListVersionsResult>";
  memset(&pg, 0, sizeof pg);
  snprintf(pg.key, sizeof pg.key, "p/c");
  assert_int_equal(s3_parse_versions(hidden, strlen(hidden), &pg), KD_OK);
  assert_true(pg.any);
  assert_string_equal(pg.oldest, "");
  assert_true(pg.truncated);
  assert_string_equal(pg.next_key, "p/c");
  assert_int_equal(s3_parse_versions(aws, strlen(aws), &pg), KD_ERR_PARSE);
}

/* Path-style and virtual-hosted URLs, and when virtual hosting is impossible. Keys are encoded
 * once, '/' kept; the query is sorted and encoded. */
static void s3_addressing(void **state) {
  (void)state;
  struct {
    const char *endpoint, *bucket;
    bool path_style;
    const char *want;
  } cases[] = {
      {"http://127.0.0.1:7480", "kcmdr", false, "http://127.0.0.1:7480/kcmdr/a%20b/c%2Bd?prefix=x%2Fy&uploads="},
      {"https://s3.example.com", "kcmdr", false, "https://kcmdr.s3.example.com/a%20b/c%2Bd?prefix=x%2Fy&uploads="},
      {"https://s3.example.com/", "kcmdr", true, "https://s3.example.com/kcmdr/a%20b/c%2Bd?prefix=x%2Fy&uploads="},
      {"https://S3.Example.com/gw/", "kcmdr", true, "https://s3.example.com/gw/kcmdr/a%20b/c%2Bd?prefix=x%2Fy&uploads="},
      {"https://s3.example.com", "my.dotted.bucket", false,
       "https://s3.example.com/my.dotted.bucket/a%20b/c%2Bd?prefix=x%2Fy&uploads="},
      {"http://[::1]:7480", "kcmdr", false, "http://[::1]:7480/kcmdr/a%20b/c%2Bd?prefix=x%2Fy&uploads="},
      {NULL, "kcmdr", false, "https://kcmdr.s3.us-east-1.amazonaws.com/a%20b/c%2Bd?prefix=x%2Fy&uploads="},
  };
  sigv4_kv q[] = {{"uploads", NULL}, {"prefix", "x/y"}};
  for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
    struct s3_config cfg = {cases[i].endpoint, cases[i].bucket, NULL, cases[i].path_style, false, NULL, 0, "AK", SECRET, NULL};
    s3_client *c;
    assert_int_equal(s3_new(&cfg, &c), KD_OK);
    kd_buf url = KD_BUF_INIT(4096);
    assert_int_equal(s3_url(c, "a b/c+d", q, 2, &url), KD_OK);
    if (strcmp(url.data, cases[i].want) != 0) fail_msg("case %zu: %s, want %s", i, url.data, cases[i].want);
    kd_buf_free(&url);
    s3_free(c);
  }
  assert_int_equal(s3_part_size(1), 8u << 20);
  assert_int_equal(s3_part_size(1000), 8u << 20);
  assert_int_equal(s3_part_size(1001), 16u << 20);
  /* 10,000 parts of these sizes hold more than 5 TiB, S3's largest object */
  uint64_t total = 0;
  for (int n = 1; n <= S3_MAX_PARTS; n++) total += s3_part_size(n);
  assert_true(total > (5ull << 40));
}

/* tried: a gateway that is not listening. The check fails as a transport error naming the
 * endpoint and the refused connection, without the secret. */
static void s3_connection_refused_is_clear(void **state) {
  (void)state;
  struct s3_config cfg = {"http://127.0.0.1:1", "kcmdr", NULL, true, false, NULL, 0, "AKIDTEST", SECRET, "TOKEN-SECRET"};
  s3_client *c;
  assert_int_equal(s3_new(&cfg, &c), KD_OK);
  assert_int_equal(s3_check(c, ""), KD_ERR_TRANSPORT);
  assert_non_null(strstr(kd_errmsg(), "127.0.0.1:1"));
  assert_non_null(strstr(kd_errmsg(), "refused"));
  assert_null(strstr(kd_errmsg(), SECRET));
  assert_null(strstr(kd_errmsg(), "TOKEN-SECRET"));
  /* a cancelled store stops before sending */
  volatile int cancel = 1;
  s3_set_cancel(c, &cancel);
  assert_int_equal(s3_head(c, "k", NULL), KD_ERR_CANCELLED);
  s3_free(c);
}

/* ---- the XML reader ---- */

/* The shape Ceph RGW 16 sends (namespace, url encoding of keys, CommonPrefixes after Contents) */
static const char rgw_page[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>kcmdr</Name><Prefix>p%2F</Prefix><MaxKeys>1000</MaxKeys><Delimiter>%2F</Delimiter><IsTruncated>true</IsTruncated>"
    "<EncodingType>url</EncodingType><NextContinuationToken>1ZVs+/tok=&amp;x</NextContinuationToken>"
    "<Contents><Key>p%2Fb+c%2Bd%C3%A9</Key><LastModified>2024-06-11T10:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag>"
    "<Size>12</Size><StorageClass>STANDARD</StorageClass><Owner><ID>kcmdr</ID><DisplayName>kcmdr</DisplayName></Owner>"
    "<Type>Normal</Type></Contents>"
    "<Contents><Key>p%2Fa</Key><Size>0</Size></Contents>"
    "<CommonPrefixes><Prefix>p%2Fbackups%2F</Prefix></CommonPrefixes><KeyCount>3</KeyCount></ListBucketResult>";

static void s3_xml_list_pages(void **state) {
  (void)state;
  struct s3_page pg;
  assert_int_equal(s3_parse_list(rgw_page, strlen(rgw_page), &pg), KD_OK);
  assert_int_equal(pg.n, 3);
  assert_true(pg.truncated);
  assert_string_equal(pg.next_token, "1ZVs+/tok=&x"); /* tokens are not URL-decoded */
  assert_string_equal(pg.entries[0].key, "p/b c+d\xc3\xa9");
  assert_int_equal(pg.entries[0].size, 12);
  assert_false(pg.entries[0].is_prefix);
  assert_string_equal(pg.entries[1].key, "p/a");
  assert_string_equal(pg.entries[2].key, "p/backups/");
  assert_true(pg.entries[2].is_prefix);
  s3_page_free(&pg);
  /* without EncodingType: keys as they are, entities and character references decoded, text
   * around them kept byte for byte (leading and trailing spaces are part of a key) */
  const char *plain = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key> a&amp;b&lt;c&gt;&apos;&#233;&#x10348;"
                      "+%41 </Key><Size>5</Size></Contents><!-- c --><Contents><Key><![CDATA[x<y]]></Key><Size>1</Size>"
                      "</Contents></ListBucketResult>\n";
  assert_int_equal(s3_parse_list(plain, strlen(plain), &pg), KD_OK);
  assert_int_equal(pg.n, 2);
  assert_false(pg.truncated);
  assert_null(pg.next_token);
  assert_string_equal(pg.entries[0].key, " a&b<c>'\xc3\xa9\xf0\x90\x8d\x88+%41 ");
  assert_string_equal(pg.entries[1].key, "x<y");
  s3_page_free(&pg);
}

/* tried: hostile or broken answers. Each is a clean KD_ERR_PARSE or KD_ERR_TOOBIG. */
static void s3_xml_rejects_hostile_answers(void **state) {
  (void)state;
  const char *bad[] = {
      "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><ListBucketResult>&lol2;</ListBucketResult>",
      "<ListBucketResult><Contents><Key>a</Key></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a</Key></Contents>",
      "<ListBucketResult><Contents><Key>&#0;</Key></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>&#xD800;</Key></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>&#x110000;</Key></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>&nbsp;</Key></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a & b</Key></Contents></ListBucketResult>",
      "<ListBucketResult/><ListBucketResult/>",
      "junk<ListBucketResult/>",
      "",
      "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
      "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a</Key><Size>99999999999999999999</Size></Contents></ListBucketResult>",
      "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%2</Key></Contents></ListBucketResult>",
      "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%00b</Key></Contents></ListBucketResult>",
      "<Error><Code>AccessDenied</Code></Error>",
      "<ListBucketResult><Contents><Key attr=\"x>y\">a</Key></Contents><!-- unterminated",
      "<ListBucketResult><Contents <Key>a</Key></Contents></ListBucketResult>",
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) {
    struct s3_page pg;
    kd_rc rc = s3_parse_list(bad[i], strlen(bad[i]), &pg);
    if (rc != KD_ERR_PARSE) fail_msg("case %zu: expected a parse error, got %d (%s)", i, rc, kd_errmsg());
    s3_page_free(&pg);
  }
  /* nesting 17 deep; one element's text over the cap; a NUL byte in the document */
  kd_buf deep = KD_BUF_INIT(1 << 20);
  for (int i = 0; i < 17; i++) kd_buf_adds(&deep, "<a>");
  for (int i = 0; i < 17; i++) kd_buf_adds(&deep, "</a>");
  struct s3_page pg;
  assert_int_equal(s3_parse_list(deep.data, deep.len, &pg), KD_ERR_PARSE);
  s3_page_free(&pg);
  kd_buf_reset(&deep);
  kd_buf_adds(&deep, "<ListBucketResult><Contents><Key>");
  for (int i = 0; i < 70000; i++) kd_buf_add(&deep, "k", 1);
  kd_buf_adds(&deep, "</Key></Contents></ListBucketResult>");
  assert_int_equal(s3_parse_list(deep.data, deep.len, &pg), KD_ERR_TOOBIG);
  s3_page_free(&pg);
  kd_buf_free(&deep);
  const char nul[] = "<ListBucketResult><Contents><Key>a\0b</Key></Contents></ListBucketResult>";
  assert_int_equal(s3_parse_list(nul, sizeof nul - 1, &pg), KD_ERR_PARSE);
  s3_page_free(&pg);
}

static void s3_xml_errors_and_fields(void **state) {
  (void)state;
  struct s3_error e;
  /* RGW's answer to a wrong secret: no Message at all */
  const char *rgw = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code><RequestId>tx0</RequestId>"
                    "<HostId>h</HostId></Error>";
  assert_int_equal(s3_parse_error(rgw, strlen(rgw), &e), KD_OK);
  assert_string_equal(e.code, "SignatureDoesNotMatch");
  assert_string_equal(e.message, "");
  const char *aws = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; expecting "
                    "'eu-west-1'</Message><Region>eu-west-1</Region></Error>";
  assert_int_equal(s3_parse_error(aws, strlen(aws), &e), KD_OK);
  assert_string_equal(e.region, "eu-west-1");
  assert_int_equal(s3_parse_error(rgw_page, strlen(rgw_page), &e), KD_ERR_NOTFOUND);
  kd_buf out = KD_BUF_INIT(4096);
  const char *init = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>2~abc&amp;</UploadId>"
                     "</InitiateMultipartUploadResult>";
  assert_int_equal(s3_parse_field(init, strlen(init), "InitiateMultipartUploadResult/UploadId", &out), KD_OK);
  assert_string_equal(out.data, "2~abc&");
  assert_int_equal(s3_parse_field(init, strlen(init), "InitiateMultipartUploadResult/Nope", &out), KD_ERR_NOTFOUND);
  kd_buf_free(&out);
}

/* ---- the filesystem store ---- */

struct fsfix {
  char root[64];
  objstore *s;
};

static int fs_setup(void **state) {
  struct fsfix *f = calloc(1, sizeof *f);
  snprintf(f->root, sizeof f->root, "/tmp/kcmdr-fsstore-XXXXXX");
  if (!mkdtemp(f->root)) return -1;
  char dir[128];
  snprintf(dir, sizeof dir, "%s/store", f->root);
  mkdir(dir, 0755);
  json_t *b = bsl("filesystem", NULL, "loc", json_pack("{s:s}", "path", dir));
  kd_rc rc = objstore_open_bsl(b, NULL, 0, &f->s);
  json_decref(b);
  *state = f;
  return rc == KD_OK ? 0 : -1;
}

static int fs_teardown(void **state) {
  struct fsfix *f = *state;
  objstore_free(f->s);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
  int r = system(cmd);
  free(f);
  return r == 0 ? 0 : -1;
}

struct listed {
  kd_buf text; /* "key|P|size\n" lines */
};

static kd_rc collect(const char *key, bool is_prefix, uint64_t size, void *ud) {
  struct listed *l = ud;
  return kd_buf_addf(&l->text, "%s%s%s\n", key, is_prefix ? " P" : " ", is_prefix ? "" : (size ? "s" : "0"));
}

static char *list_all(objstore *s, const char *prefix, char delim) {
  struct listed l = {KD_BUF_INIT(1 << 20)};
  kd_buf_add(&l.text, "", 0);
  kd_rc rc = objstore_list(s, prefix, delim, collect, &l);
  if (rc != KD_OK) fail_msg("list '%s': %s", prefix, kd_errmsg());
  return kd_buf_steal(&l.text);
}

static void fs_round_trip_and_byte_order(void **state) {
  struct fsfix *f = *state;
  objstore *s = f->s;
  assert_int_equal(objstore_check(s), KD_OK);
  const char *keys[] = {"a0", "a/x", "a-b", "a/y/z", "b", "backups/b1/velero-backup.json", "backups/b1/b1.tar.gz",
                        "backups/b10/velero-backup.json", "sp ace/\xc3\xa9+%"};
  for (size_t i = 0; i < KD_ARRAY_LEN(keys); i++)
    assert_int_equal(objstore_put(s, keys[i], keys[i], strlen(keys[i])), KD_OK);
  char *got = list_all(s, "", '\0');
  /* byte order of whole keys: '-' (0x2d) < '/' (0x2f) < '0' (0x30) */
  assert_string_equal(got, "a-b s\na/x s\na/y/z s\na0 s\nb s\nbackups/b1/b1.tar.gz s\nbackups/b1/velero-backup.json s\n"
                           "backups/b10/velero-backup.json s\nsp ace/\xc3\xa9+% s\n");
  free(got);
  got = list_all(s, "", '/');
  assert_string_equal(got, "a-b s\na/ P\na0 s\nb s\nbackups/ P\nsp ace/ P\n");
  free(got);
  got = list_all(s, "backups/", '/');
  assert_string_equal(got, "backups/b1/ P\nbackups/b10/ P\n");
  free(got);
  /* a prefix that ends inside a name */
  got = list_all(s, "backups/b1", '\0');
  assert_string_equal(got, "backups/b1/b1.tar.gz s\nbackups/b1/velero-backup.json s\nbackups/b10/velero-backup.json s\n");
  free(got);
  got = list_all(s, "backups/b1/", '/');
  assert_string_equal(got, "backups/b1/b1.tar.gz s\nbackups/b1/velero-backup.json s\n");
  free(got);
  /* the location prefix is a directory on disk; keys are relative to it */
  char path[256];
  snprintf(path, sizeof path, "%s/store/loc/backups/b1/b1.tar.gz", f->root);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  char *data;
  size_t n;
  uint64_t size;
  assert_int_equal(objstore_get_all(s, "sp ace/\xc3\xa9+%", 100, &data, &n), KD_OK);
  assert_int_equal(n, strlen("sp ace/\xc3\xa9+%"));
  free(data);
  assert_int_equal(objstore_head(s, "a/y/z", &size), KD_OK);
  assert_int_equal(size, 5);
  assert_int_equal(objstore_get_all(s, "a/y/z", 4, &data, &n), KD_ERR_TOOBIG);
  assert_int_equal(objstore_get_all(s, "a/y", 100, &data, &n), KD_ERR_NOTFOUND); /* a directory is no object */
  assert_int_equal(objstore_head(s, "nope", &size), KD_ERR_NOTFOUND);
  /* delete: missing is fine; emptied directories go away, so no empty "folder" is listed */
  assert_int_equal(objstore_delete(s, "a/y/z"), KD_OK);
  assert_int_equal(objstore_delete(s, "a/y/z"), KD_OK);
  assert_int_equal(objstore_delete(s, "no/such/dir/key"), KD_OK);
  snprintf(path, sizeof path, "%s/store/loc/a/y", f->root);
  assert_int_equal(stat(path, &st), -1);
  /* an empty directory made by someone else is not a "folder" either */
  snprintf(path, sizeof path, "%s/store/loc/emptydir", f->root);
  assert_int_equal(mkdir(path, 0755), 0);
  got = list_all(s, "", '/');
  assert_string_equal(got, "a-b s\na/ P\na0 s\nb s\nbackups/ P\nsp ace/ P\n");
  free(got);
  /* an empty object is an object */
  assert_int_equal(objstore_put(s, "empty", "", 0), KD_OK);
  assert_int_equal(objstore_head(s, "empty", &size), KD_OK);
  assert_int_equal(size, 0);
}

struct counter {
  size_t bytes;
  int calls;
};
static kd_rc count_sink(const char *p, size_t n, void *ud) {
  (void)p;
  struct counter *c = ud;
  c->bytes += n;
  c->calls++;
  return KD_OK;
}

static bool dir_has_tmp(const char *dir) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "find '%s' -name '.kcmdr-tmp-*' | grep -q .", dir);
  return system(cmd) == 0;
}

/* A writer is invisible until commit; an aborted or failed one leaves nothing, not even its
 * directories; a commit replaces an older object whole. */
static void fs_writer_visibility(void **state) {
  struct fsfix *f = *state;
  objstore *s = f->s;
  objstore_writer *w;
  char buf[65536];
  memset(buf, 'x', sizeof buf);
  assert_int_equal(objstore_writer_open(s, "backups/big/big.tar.gz", &w), KD_OK);
  for (int i = 0; i < 100; i++) assert_int_equal(objstore_writer_write(w, buf, sizeof buf), KD_OK);
  assert_int_equal(objstore_writer_size(w), 100 * sizeof buf);
  char *got = list_all(s, "", '\0');
  assert_string_equal(got, ""); /* halfway: nothing visible */
  free(got);
  assert_int_equal(objstore_head(s, "backups/big/big.tar.gz", NULL), KD_ERR_NOTFOUND);
  objstore_writer_abort(w);
  char dir[128];
  snprintf(dir, sizeof dir, "%s/store", f->root);
  assert_false(dir_has_tmp(dir));
  snprintf(dir, sizeof dir, "%s/store/loc/backups", f->root);
  struct stat st;
  assert_int_equal(stat(dir, &st), -1); /* the directories it made are gone too */
  /* commit: visible whole; a second writer replaces it atomically */
  assert_int_equal(objstore_writer_open(s, "backups/big/big.tar.gz", &w), KD_OK);
  for (int i = 0; i < 100; i++) assert_int_equal(objstore_writer_write(w, buf, sizeof buf), KD_OK);
  assert_int_equal(objstore_writer_commit(w), KD_OK);
  assert_int_equal(objstore_writer_open(s, "backups/big/big.tar.gz", &w), KD_OK);
  assert_int_equal(objstore_writer_write(w, "new", 3), KD_OK);
  uint64_t size;
  assert_int_equal(objstore_head(s, "backups/big/big.tar.gz", &size), KD_OK);
  assert_int_equal(size, 100 * sizeof buf); /* the old one until commit */
  assert_int_equal(objstore_writer_commit(w), KD_OK);
  assert_int_equal(objstore_head(s, "backups/big/big.tar.gz", &size), KD_OK);
  assert_int_equal(size, 3);
  /* a cancelled writer fails its next write and its commit, and leaves nothing new */
  volatile int cancel = 0;
  objstore_set_cancel(s, &cancel);
  assert_int_equal(objstore_writer_open(s, "backups/c/c.tar.gz", &w), KD_OK);
  assert_int_equal(objstore_writer_write(w, "abc", 3), KD_OK);
  cancel = 1;
  assert_int_equal(objstore_writer_write(w, "abc", 3), KD_ERR_CANCELLED);
  assert_int_equal(objstore_writer_commit(w), KD_ERR_CANCELLED);
  struct counter c = {0, 0};
  assert_int_equal(objstore_get(s, "backups/big/big.tar.gz", count_sink, &c), KD_ERR_CANCELLED);
  cancel = 0;
  assert_int_equal(objstore_head(s, "backups/c/c.tar.gz", NULL), KD_ERR_NOTFOUND);
  snprintf(dir, sizeof dir, "%s/store", f->root);
  assert_false(dir_has_tmp(dir));
  /* a temporary file of a writer that died (kill -9) is never listed */
  snprintf(dir, sizeof dir, "%s/store/loc/backups/big/.kcmdr-tmp-0123456789abcdef", f->root);
  int fd = open(dir, O_CREAT | O_WRONLY, 0644);
  assert_true(fd >= 0);
  close(fd);
  got = list_all(s, "backups/big/", '\0');
  assert_string_equal(got, "backups/big/big.tar.gz s\n");
  free(got);
  /* streamed reads come in chunks */
  assert_int_equal(objstore_writer_open(s, "chunks", &w), KD_OK);
  for (int i = 0; i < 20; i++) assert_int_equal(objstore_writer_write(w, buf, sizeof buf), KD_OK);
  assert_int_equal(objstore_writer_commit(w), KD_OK);
  assert_int_equal(objstore_get(s, "chunks", count_sink, &c), KD_OK);
  assert_int_equal(c.bytes, 20 * sizeof buf);
  assert_true(c.calls >= 2);
}

/* tried: keys that try to leave the root, and symbolic links planted inside it pointing out.
 * Nothing outside the root is read, written, listed or deleted. */
static void fs_hostile_keys_and_links(void **state) {
  struct fsfix *f = *state;
  objstore *s = f->s;
  char outside[128], link[160], path[200];
  snprintf(outside, sizeof outside, "%s/outside", f->root);
  assert_int_equal(mkdir(outside, 0755), 0);
  snprintf(path, sizeof path, "%s/secret.txt", outside);
  FILE *fp = fopen(path, "w");
  fputs("do not read", fp);
  fclose(fp);
  const char *hostile[] = {"../x", "../../outside/secret.txt", "a//b", "/abs", "a/./b", "a/../../x", "", "a/",
                           ".kcmdr-tmp-1234", "d/.kcmdr-tmp-x/y"};
  for (size_t i = 0; i < KD_ARRAY_LEN(hostile); i++) {
    objstore_writer *w = NULL;
    char *data;
    size_t n;
    if (objstore_put(s, hostile[i], "x", 1) != KD_ERR_INVALID) fail_msg("put '%s' was not refused", hostile[i]);
    if (objstore_writer_open(s, hostile[i], &w) != KD_ERR_INVALID) fail_msg("writer '%s' was not refused", hostile[i]);
    if (objstore_get_all(s, hostile[i], 100, &data, &n) != KD_ERR_INVALID) fail_msg("get '%s' was not refused", hostile[i]);
    if (objstore_delete(s, hostile[i]) != KD_ERR_INVALID) fail_msg("delete '%s' was not refused", hostile[i]);
  }
  /* a NUL inside a key ends the C string: "a\0/../../x" can only ever mean "a" */
  assert_int_equal(objstore_put(s, "a\0/../../x", "y", 1), KD_OK);
  assert_int_equal(objstore_head(s, "a", NULL), KD_OK);
  /* symbolic links inside the root: a directory link and a file link, both pointing outside */
  snprintf(link, sizeof link, "%s/store/loc/dirlink", f->root);
  assert_int_equal(symlink(outside, link), 0);
  snprintf(link, sizeof link, "%s/store/loc/filelink", f->root);
  assert_int_equal(symlink(path, link), 0);
  char *data;
  size_t n;
  assert_int_equal(objstore_get_all(s, "dirlink/secret.txt", 100, &data, &n), KD_ERR_INVALID);
  assert_int_equal(objstore_get_all(s, "filelink", 100, &data, &n), KD_ERR_INVALID);
  assert_int_equal(objstore_head(s, "filelink", NULL), KD_ERR_INVALID);
  assert_int_equal(objstore_put(s, "dirlink/new.txt", "x", 1), KD_ERR_INVALID);
  objstore_writer *w;
  assert_int_equal(objstore_writer_open(s, "dirlink/sub/new.txt", &w), KD_ERR_INVALID);
  assert_int_equal(objstore_delete(s, "dirlink/secret.txt"), KD_ERR_INVALID);
  /* overwriting the file link replaces the link itself, never the file it points to */
  assert_int_equal(objstore_put(s, "filelink", "replaced", 8), KD_OK);
  assert_int_equal(kd_read_file(path, 100, &data, &n), KD_OK);
  assert_string_equal(data, "do not read");
  free(data);
  /* listing never follows links */
  char *got = list_all(s, "", '\0');
  assert_null(strstr(got, "secret"));
  assert_null(strstr(got, "dirlink"));
  free(got);
  got = list_all(s, "", '/');
  assert_null(strstr(got, "dirlink"));
  free(got);
  snprintf(path, sizeof path, "%s/new.txt", outside);
  struct stat st;
  assert_int_equal(stat(path, &st), -1);
  /* a file where a directory of the key must be */
  assert_int_equal(objstore_put(s, "a/b", "x", 1), KD_ERR_CONFLICT);
}

static mode_t mode_of(const char *root, const char *rel) {
  char path[512];
  struct stat st;
  snprintf(path, sizeof path, "%s/store/%s", root, rel);
  if (lstat(path, &st) != 0) fail_msg("%s: %s", path, strerror(errno));
  return st.st_mode & 07777;
}

/* tried: umask 022 (the usual one, which made files 0644 and directories 0755, readable by
 * everyone on the host although backups hold Secrets), 000, and 0277 (which would leave even
 * the owner without write or search bits): whatever the umask, put, put_new and the writer make
 * files 0600 and the directories they create 0700. */
static void fs_modes_whatever_the_umask(void **state) {
  struct fsfix *f = *state;
  mode_t masks[] = {022, 000, 0277};
  for (size_t i = 0; i < KD_ARRAY_LEN(masks); i++) {
    mode_t old = umask(masks[i]);
    char k1[64], k2[64], k3[64], rel[80];
    snprintf(k1, sizeof k1, "m%zu/backups/b/velero-backup.json", i);
    snprintf(k2, sizeof k2, "m%zu/backups/b/new/lock", i);
    snprintf(k3, sizeof k3, "m%zu/restores/r/r.tar.gz", i);
    kd_rc r1 = objstore_put(f->s, k1, "{}", 2), r2 = objstore_put_new(f->s, k2, "x", 1);
    objstore_writer *w = NULL;
    kd_rc r3 = objstore_writer_open(f->s, k3, &w);
    if (r3 == KD_OK) r3 = objstore_writer_write(w, "abc", 3);
    if (r3 == KD_OK) r3 = objstore_writer_commit(w);
    umask(old);
    if (r1 || r2 || r3) fail_msg("umask %03o: %s", (unsigned)masks[i], kd_errmsg());
    const char *files[] = {k1, k2, k3};
    for (size_t j = 0; j < KD_ARRAY_LEN(files); j++) {
      snprintf(rel, sizeof rel, "loc/%s", files[j]);
      if (mode_of(f->root, rel) != 0600) fail_msg("umask %03o: %s is %03o", (unsigned)masks[i], rel, (unsigned)mode_of(f->root, rel));
    }
    const char *dirs[] = {"m%zu", "m%zu/backups", "m%zu/backups/b", "m%zu/backups/b/new", "m%zu/restores/r"};
    for (size_t j = 0; j < KD_ARRAY_LEN(dirs); j++) {
      char d[64];
      snprintf(d, sizeof d, dirs[j], i);
      snprintf(rel, sizeof rel, "loc/%s", d);
      if (mode_of(f->root, rel) != 0700) fail_msg("umask %03o: directory %s is %03o", (unsigned)masks[i], rel, (unsigned)mode_of(f->root, rel));
    }
  }
  /* the location's own directory ("loc", made by the first put) is ours too; the root is not */
  assert_int_equal(mode_of(f->root, "loc"), 0700);
  assert_int_equal(mode_of(f->root, ""), 0755);
}

struct racer {
  fsstore *fs;
  int id;
  kd_rc rc;
};

static void *race_put_new(void *ud) {
  struct racer *r = ud;
  char body[32];
  int n = snprintf(body, sizeof body, "racer %d", r->id);
  r->rc = fsstore_put_new(r->fs, "race/velero-backup.json", body, (size_t)n);
  return NULL;
}

/* tried: creating a key that is absent (made), present (conflict "already exists", the first
 * bytes kept, no temporary file left), a directory of that name (conflict), and eight threads
 * creating one key at once (exactly one wins, the file holds its bytes) -- with hard links, and
 * again as on a filesystem without them (the O_EXCL claim). */
static void fs_put_new_creates_only_once(void **state) {
  struct fsfix *f = *state;
  char dir[128], path[256];
  snprintf(dir, sizeof dir, "%s/store", f->root);
  for (int links = 1; links >= 0; links--) {
    fsstore *fs;
    assert_int_equal(fsstore_new(dir, &fs), KD_OK);
    fsstore_test_without_links(fs, !links);
    char key[64];
    snprintf(key, sizeof key, "l%d/backups/b/velero-backup.json", links);
    assert_int_equal(fsstore_put_new(fs, key, "first", 5), KD_OK);
    assert_int_equal(fsstore_put_new(fs, key, "second!", 7), KD_ERR_CONFLICT);
    assert_non_null(strstr(kd_errmsg(), "already exists"));
    char *data;
    size_t n;
    snprintf(path, sizeof path, "%s/%s", dir, key);
    assert_int_equal(kd_read_file(path, 100, &data, &n), KD_OK);
    assert_string_equal(data, "first");
    free(data);
    assert_false(dir_has_tmp(dir));
    snprintf(key, sizeof key, "l%d/backups", links); /* a directory is there */
    assert_int_equal(fsstore_put_new(fs, key, "x", 1), KD_ERR_CONFLICT);
    assert_false(dir_has_tmp(dir));
    /* the race */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/race'", dir);
    assert_int_equal(system(cmd), 0);
    struct racer r[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
      r[i] = (struct racer){fs, i, KD_OK};
      assert_int_equal(pthread_create(&t[i], NULL, race_put_new, &r[i]), 0);
    }
    int won = -1, lost = 0;
    for (int i = 0; i < 8; i++) {
      pthread_join(t[i], NULL);
      if (r[i].rc == KD_OK) {
        if (won >= 0) fail_msg("two racers created the key (links %d)", links);
        won = i;
      } else if (r[i].rc == KD_ERR_CONFLICT) {
        lost++;
      } else {
        fail_msg("racer %d: %s", i, kd_rc_name(r[i].rc));
      }
    }
    assert_true(won >= 0);
    assert_int_equal(lost, 7);
    snprintf(path, sizeof path, "%s/race/velero-backup.json", dir);
    assert_int_equal(kd_read_file(path, 100, &data, &n), KD_OK);
    char want[32];
    snprintf(want, sizeof want, "racer %d", won);
    assert_string_equal(data, want);
    free(data);
    assert_false(dir_has_tmp(dir));
    fsstore_free(fs);
  }
}

struct fsguard {
  bool refuse;
  int calls;
};

static kd_rc fs_guard(void *ud) {
  struct fsguard *g = ud;
  g->calls++;
  return g->refuse ? kd_fail(KD_ERR_CANCELLED, "deposed: the lease is gone") : KD_OK;
}

/* tried: a write guard that refuses: put, put_new, delete and opening a writer fail with its
 * code and change nothing; a writer opened while it allowed is refused at commit (nothing
 * visible, its temporary file gone); reads and listings go on; allowed again, writes work. */
static void fs_guard_blocks_every_mutation(void **state) {
  struct fsfix *f = *state;
  objstore *s = f->s;
  char dir[128];
  snprintf(dir, sizeof dir, "%s/store", f->root);
  assert_int_equal(objstore_put(s, "keep", "k", 1), KD_OK);
  struct fsguard g = {false, 0};
  objstore_set_guard(s, fs_guard, &g);
  objstore_writer *w, *w2;
  assert_int_equal(objstore_writer_open(s, "backups/b/b.tar.gz", &w), KD_OK);
  assert_int_equal(objstore_writer_write(w, "data", 4), KD_OK);
  g.refuse = true;
  assert_int_equal(objstore_put(s, "k", "v", 1), KD_ERR_CANCELLED);
  assert_non_null(strstr(kd_errmsg(), "deposed"));
  assert_int_equal(objstore_put_new(s, "k", "v", 1), KD_ERR_CANCELLED);
  assert_int_equal(objstore_delete(s, "keep"), KD_ERR_CANCELLED);
  assert_int_equal(objstore_writer_open(s, "w", &w2), KD_ERR_CANCELLED);
  assert_int_equal(objstore_writer_commit(w), KD_ERR_CANCELLED);
  assert_non_null(strstr(kd_errmsg(), "deposed"));
  assert_int_equal(objstore_head(s, "backups/b/b.tar.gz", NULL), KD_ERR_NOTFOUND);
  assert_false(dir_has_tmp(dir));
  char *got = list_all(s, "", '\0');
  assert_string_equal(got, "keep s\n");
  free(got);
  assert_int_equal(objstore_head(s, "keep", NULL), KD_OK);
  assert_int_equal(g.calls, 6);
  g.refuse = false;
  assert_int_equal(objstore_put_new(s, "k", "v", 1), KD_OK);
  assert_int_equal(objstore_delete(s, "keep"), KD_OK);
}

/* tried: a listing with more keys than the cap: it stops with a clear message after the cap,
 * fn never sees more */
static void fs_list_key_cap(void **state) {
  struct fsfix *f = *state;
  for (int i = 0; i < 5; i++) {
    char k[16];
    snprintf(k, sizeof k, "backups/b%d", i & 7);
    assert_int_equal(objstore_put(f->s, k, "x", 1), KD_OK);
  }
  objstore_set_list_caps(f->s, 0, 3);
  struct listed l = {KD_BUF_INIT(1 << 16)};
  kd_buf_add(&l.text, "", 0);
  assert_int_equal(objstore_list(f->s, "backups/", '\0', collect, &l), KD_ERR_TOOBIG);
  assert_non_null(strstr(kd_errmsg(), "more than 3 keys"));
  assert_string_equal(l.text.data, "backups/b0 s\nbackups/b1 s\nbackups/b2 s\n");
  kd_buf_free(&l.text);
  objstore_set_list_caps(f->s, 0, 0);
  char *got = list_all(f->s, "backups/", '\0');
  free(got);
}

static void fs_missing_root(void **state) {
  (void)state;
  json_t *b = bsl("filesystem", NULL, NULL, json_pack("{s:s}", "path", "/nonexistent/kcmdr-backups"));
  objstore *s;
  assert_int_equal(objstore_open_bsl(b, NULL, 0, &s), KD_OK);
  json_decref(b);
  /* tried: a location whose directory is not there: check, list, put and delete say so */
  assert_int_equal(objstore_check(s), KD_ERR_NOTFOUND);
  assert_non_null(strstr(kd_errmsg(), "/nonexistent/kcmdr-backups"));
  struct listed l = {KD_BUF_INIT(100)};
  assert_int_equal(objstore_list(s, "", '/', collect, &l), KD_ERR_NOTFOUND);
  assert_int_equal(objstore_put(s, "k", "v", 1), KD_ERR_NOTFOUND);
  assert_int_equal(objstore_delete(s, "k"), KD_ERR_NOTFOUND);
  kd_buf_free(&l.text);
  objstore_free(s);
}

int test_s3store(void); /* test_s3store.c */

int test_objstore(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(key_rules),
      cmocka_unit_test(credentials_files),
      cmocka_unit_test(open_bsl_reads_velero_config),
      cmocka_unit_test(open_bsl_rejects_what_it_cannot_use),
      cmocka_unit_test(object_lock_config_and_headers),
      cmocka_unit_test(s3_addressing),
      cmocka_unit_test(s3_connection_refused_is_clear),
      cmocka_unit_test(s3_xml_list_pages),
      cmocka_unit_test(s3_xml_rejects_hostile_answers),
      cmocka_unit_test(s3_xml_errors_and_fields),
      cmocka_unit_test_setup_teardown(fs_round_trip_and_byte_order, fs_setup, fs_teardown),
      cmocka_unit_test_setup_teardown(fs_writer_visibility, fs_setup, fs_teardown),
      cmocka_unit_test_setup_teardown(fs_hostile_keys_and_links, fs_setup, fs_teardown),
      cmocka_unit_test(fs_missing_root),
      cmocka_unit_test_setup_teardown(fs_modes_whatever_the_umask, fs_setup, fs_teardown),
      cmocka_unit_test_setup_teardown(fs_put_new_creates_only_once, fs_setup, fs_teardown),
      cmocka_unit_test_setup_teardown(fs_guard_blocks_every_mutation, fs_setup, fs_teardown),
      cmocka_unit_test_setup_teardown(fs_list_key_cap, fs_setup, fs_teardown),
  };
  /* the S3 client against a hostile in-process peer: test_s3store.c, run with this group */
  return cmocka_run_group_tests_name("objstore", tests, NULL, NULL) + test_s3store();
}
