/* objstore.h — one object-store interface for backup storage locations, with two
 * implementations: S3 (s3.c, SigV4-signed, for BSL providers "aws" and "velero.io/aws") and a
 * local directory (fsstore.c, provider "filesystem", config "path"). The engine never knows which.
 *
 * Keys are relative to the location: "backups/b/velero-backup.json". The store adds the BSL's
 * prefix ("<prefix>/", trimmed of '/') itself. A key is a '/'-separated relative path without
 * empty, "." or ".." segments and without NUL; anything else is KD_ERR_INVALID.
 *
 * Every call may block on the network; every call honours the store's cancel flag (set by
 * objstore_set_cancel) and then fails with KD_ERR_CANCELLED. A store is safe to share between
 * threads; a writer belongs to one thread. */
#ifndef KCMDR_OBJSTORE_H
#define KCMDR_OBJSTORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

typedef struct objstore objstore;
typedef struct objstore_writer objstore_writer;

/* Open the store a velero.io/v1 BackupStorageLocation describes (bsl borrowed). cred/cred_len:
 * the bytes of the Secret key spec.credential names (an AWS shared-credentials file; the
 * profile is config.profile or "default"), or NULL when the BSL names none (S3 then fails with
 * KD_ERR_CONFIG "no credentials"). Honours config region, s3Url, s3ForcePathStyle,
 * insecureSkipTLSVerify, publicUrl, profile, path (filesystem); objectStorage bucket, prefix,
 * caCert (base64 PEM). KD_ERR_CONFIG with a message naming the field for a BSL it cannot use
 * (unknown provider, no bucket, bad URL, bad caCert); never puts a secret in a message. */
kd_rc objstore_open_bsl(json_t *bsl, const char *cred, size_t cred_len, objstore **out);
/* S3 Object Lock, configured by annotations on the BackupStorageLocation (Velero's AWS plugin
 * refuses unknown spec.config keys): OBJSTORE_ANN_LOCK "COMPLIANCE" or "GOVERNANCE" (exactly), and
 * optionally OBJSTORE_ANN_LOCK_DAYS, a whole number of days 1..OBJSTORE_LOCK_DAYS_MAX. With it,
 * every object the store writes is locked (see s3_set_lock; a backup's files until the date
 * objstore_lock_backup gives, other files for the days from the time of writing, or not at all
 * without days) and objstore_check also requires the bucket to have object lock enabled.
 * Every key is then written once and read as written: objstore_get and objstore_head read the
 * key's FIRST version (an overwrite or a delete marker made later changes nothing they see), and
 * objstore_put_new, objstore_put and objstore_writer_open (again at objstore_writer_commit) are
 * KD_ERR_CONFLICT while any version of the key exists, hidden ones too: a version planted
 * before kcmdr writes would otherwise be the first one, the one every read returns.
 * Listings (objstore_list) still show only current versions. */
#define OBJSTORE_ANN_LOCK "kcmdr.io/object-lock"
#define OBJSTORE_ANN_LOCK_DAYS "kcmdr.io/object-lock-days"
#define OBJSTORE_LOCK_DAYS_MAX 36500
/* Read and check the two annotations of bsl (pure): mode ("" without lock) and days (0 when not
 * given). KD_ERR_CONFIG naming the annotation for a value other than the above, days without a
 * mode, or annotations that are not a map. objstore_open_bsl calls it (a filesystem location
 * with object lock is KD_ERR_CONFIG there). */
kd_rc objstore_lock_annotations(json_t *bsl, char mode[16], int *days);
/* The store's object-lock mode, or NULL without object lock. */
const char *objstore_lock_mode(const objstore *s);
/* The store's object-lock days (0 when not given). */
int objstore_lock_days(const objstore *s);
/* Under object lock, the files of the backup that starts now are retained until the later of
 * expiration and start + days (one date for every file it writes from now on); returns that
 * date, or 0 without object lock (then nothing changes). Call before the backup's first write. */
time_t objstore_lock_backup(objstore *s, time_t start, time_t expiration);
/* The retention of key as stored: mode ("" when none) and retain-until date (0 when none; a
 * directory has none). KD_ERR_NOTFOUND when key does not exist. */
kd_rc objstore_retention(objstore *s, const char *key, char mode[16], time_t *until);

/* Release the store. NULL is fine. */
void objstore_free(objstore *s);
/* A flag the store watches: when *cancel becomes non-zero, running and later calls fail with
 * KD_ERR_CANCELLED (transfers stop within about a second). NULL: never cancelled. */
void objstore_set_cancel(objstore *s, volatile const int *cancel);
/* A write guard: called before every mutating call (and, on S3, before every attempt of a
 * mutating request, retries included); a non-KD_OK return means "do not write now". */
typedef kd_rc (*objstore_guard_fn)(void *ud);
/* Install guard (NULL: none) with its ud. From then on objstore_put, objstore_put_new,
 * objstore_delete, objstore_writer_open and objstore_writer_commit (and on S3 each
 * CreateMultipartUpload, UploadPart, CompleteMultipartUpload, PutObject and DeleteObject
 * attempt) call it first and fail with its code, without touching the store, when it refuses
 * (a refused commit aborts the writer). Reads (get, head, list, check) are never guarded, nor is
 * removing our own unfinished upload (writer abort). Set before the store is shared. */
void objstore_set_guard(objstore *s, objstore_guard_fn guard, void *ud);
#define OBJSTORE_MAX_LIST_KEYS 1000000u /* entries one objstore_list passes to its fn */
/* Caps of one objstore_list: S3 requests at most max_pages pages (0 = S3_MAX_LIST_PAGES,
 * 10,000); at most max_keys entries reach fn (0 = OBJSTORE_MAX_LIST_KEYS), then KD_ERR_TOOBIG.
 * Set before the store is shared (tests set small ones). */
void objstore_set_list_caps(objstore *s, long max_pages, size_t max_keys);

/* Human description for logs and status: "s3://bucket/prefix at https://host" or "file:///path".
 * Never contains credentials. Owned by the store. */
const char *objstore_describe(const objstore *s);

/* Check the location is usable: the bucket (directory) exists and can be listed with these
 * credentials, and, under object lock, the bucket has object lock enabled (KD_ERR_CONFIG saying
 * so when not). KD_OK, or the failure with a message a user can act on: KD_ERR_UNAUTHORIZED /
 * KD_ERR_FORBIDDEN (bad key: "SignatureDoesNotMatch", "InvalidAccessKeyId"), KD_ERR_NOTFOUND
 * (no such bucket or directory), KD_ERR_TRANSPORT (connection refused, TLS). */
kd_rc objstore_check(objstore *s);

/* Start a streamed upload of key. Nothing is visible under key until objstore_writer_commit
 * succeeds (S3: multipart upload, parts of at least 5 MiB; filesystem: a temporary name in the
 * same directory, fsync, rename). */
kd_rc objstore_writer_open(objstore *s, const char *key, objstore_writer **out);
/* Append n bytes. On failure the writer is still owned by the caller: abort it. */
kd_rc objstore_writer_write(objstore_writer *w, const void *p, size_t n);
/* Bytes written so far. */
uint64_t objstore_writer_size(const objstore_writer *w);
/* Finish: the object becomes visible whole. Frees w in every case; on failure nothing is
 * visible under key (a partial upload is aborted). */
kd_rc objstore_writer_commit(objstore_writer *w);
/* Give up: remove whatever was uploaded; frees w. NULL is fine. Never fails visibly (a leftover
 * multipart upload is logged). */
void objstore_writer_abort(objstore_writer *w);

/* Put a whole small object (one request). Same visibility rule as a writer. */
kd_rc objstore_put(objstore *s, const char *key, const void *p, size_t n);
/* Create key with these bytes only if no object with that key exists, atomically with respect
 * to every other objstore_put_new (S3: PUT with If-None-Match: *; filesystem: a temporary file
 * hard-linked into place, or an O_EXCL claim replaced by rename where the filesystem has no
 * hard links). KD_ERR_CONFLICT with "already exists" when it does; KD_ERR_UNSUPPORTED when the
 * S3 server cannot guarantee it (501 NotImplemented, or it was found to ignore If-None-Match:
 * see s3_put_new); then nothing was written under key. A plain objstore_put may still replace
 * the object afterwards: exclusivity holds between put_new callers. */
kd_rc objstore_put_new(objstore *s, const char *key, const void *p, size_t n);

/* Called with successive chunks of an object's bytes; return KD_OK to go on, anything else to
 * stop the transfer with that code. */
typedef kd_rc (*objstore_sink_fn)(const char *p, size_t n, void *ud);
/* Stream the object key into fn. KD_ERR_NOTFOUND when it does not exist. */
kd_rc objstore_get(objstore *s, const char *key, objstore_sink_fn fn, void *ud);
/* Read a whole object of at most max bytes into *out (caller frees, NUL-terminated).
 * KD_ERR_NOTFOUND, KD_ERR_TOOBIG past max. */
kd_rc objstore_get_all(objstore *s, const char *key, size_t max, char **out, size_t *len);
/* Size of key in *size (may be NULL). KD_ERR_NOTFOUND when it does not exist. */
kd_rc objstore_head(objstore *s, const char *key, uint64_t *size);
/* Delete key; a missing key is KD_OK. Under object lock, a key whose first version is still
 * retained is KD_ERR_FORBIDDEN ("protected by S3 Object Lock (MODE) until DATE") and nothing is
 * sent (a plain DELETE would only hide it behind a delete marker); a retention that cannot be
 * read is that failure, never a delete on a guess. */
kd_rc objstore_delete(objstore *s, const char *key);

/* One listing entry: key relative to the location; is_prefix for a "directory" (a common
 * prefix, ending in '/') when a delimiter was given; size for objects. */
typedef kd_rc (*objstore_list_fn)(const char *key, bool is_prefix, uint64_t size, void *ud);
/* List keys starting with prefix ("" = everything), in byte order, all pages. delimiter '/'
 * groups deeper keys into common prefixes; '\0' lists every key. fn's non-KD_OK stops the
 * listing with that code. fn only ever sees keys starting with prefix (a server's entries
 * outside it are dropped). KD_ERR_TOOBIG past the caps (objstore_set_list_caps), KD_ERR_PARSE
 * for a server whose continuation tokens cycle; the message says which. */
kd_rc objstore_list(objstore *s, const char *prefix, char delimiter, objstore_list_fn fn, void *ud);

/* True when key is a valid relative key (see above). Pure; for tests and callers that build keys
 * from names they did not choose. */
bool objstore_key_valid(const char *key);

/* The keys of one profile of an AWS shared-credentials file. */
struct objstore_creds {
  char *access_key;    /* aws_access_key_id */
  char *secret_key;    /* aws_secret_access_key */
  char *session_token; /* aws_session_token, or NULL */
};
/* Parse an AWS shared-credentials file (text[0..len)) for profile ("default" when NULL or ""):
 * sections "[name]" or "[profile name]", "key = value" lines (spaces around '=', keys in any
 * case), comments starting with '#' or ';', CRLF line ends, a UTF-8 BOM. *out owned by the
 * caller (objstore_creds_free) on KD_OK. KD_ERR_CONFIG naming the missing profile or key; no
 * message ever holds a value from the file. */
kd_rc objstore_parse_credentials(const char *text, size_t len, const char *profile, struct objstore_creds *out);
/* Wipe and free what out holds. NULL is fine. */
void objstore_creds_free(struct objstore_creds *c);

#endif
