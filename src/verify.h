/* verify.h — a backup's files checked against its backups/<b>/<b>-checksums.json (written by
 * backup.c: {"files":{"<key>":{"sha256":"<64 hex>","size":<bytes>}}}). Two users: every restore
 * stages the tarball through verify_stage before it creates anything, and `kcmdr backup verify`
 * checks every file.
 *
 * A backup Velero wrote has no checksums file: verify_sums_load says KD_ERR_NOTFOUND and the
 * caller goes on unverified, with a warning that says so. */
#ifndef KCMDR_VERIFY_H
#define KCMDR_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "objstore.h"
#include "util.h"

#define VERIFY_SUMS_MAX (1u << 20) /* cap on the checksums file itself */

typedef struct verify_sums verify_sums;

/* Load and parse the checksums file of backup. *out owned by the caller (verify_sums_free).
 * KD_ERR_NOTFOUND when the backup has none; KD_ERR_PARSE (naming the key) for a file of the wrong
 * shape: not JSON, no "files" object, a digest that is not 64 hex digits, a size that is not a
 * non-negative integer; the store's failure otherwise. */
kd_rc verify_sums_load(objstore *s, const char *backup, verify_sums **out);
/* Parse the bytes of a checksums file (pure; for tests and fuzzing). Same failures. */
kd_rc verify_sums_parse(const char *text, size_t len, verify_sums **out);
/* The digest (64 lower-case hex digits, owned by v) and size recorded for key; false when the
 * file does not list key. */
bool verify_sums_get(const verify_sums *v, const char *key, const char **sha256_hex, uint64_t *size);
/* Number of keys listed, and the i-th (in the file's order), for callers that check all. */
size_t verify_sums_count(const verify_sums *v);
const char *verify_sums_key(const verify_sums *v, size_t i);
/* Free. NULL is fine. */
void verify_sums_free(verify_sums *v);

/* Download key, computing its SHA-256 and size on the way; at most max bytes (KD_ERR_TOOBIG past
 * it, the transfer stopped). When sums lists key, digest and size must match: KD_ERR_INTEGRITY
 * with a message naming the key, the expected and the actual values. *verified says whether a
 * recorded checksum was compared (false: sums NULL or key not listed). fd NULL: the bytes are
 * only checked. fd non-NULL: they are kept in an unlinked temporary file under dir (NULL:
 * $TMPDIR, else /tmp); on KD_OK *fd is positioned at 0 and owned by the caller (close it and the
 * file is gone), on failure nothing is left behind. The store's failure otherwise. */
kd_rc verify_stage(objstore *s, const char *key, const verify_sums *sums, const char *dir, uint64_t max, int *fd,
                   bool *verified);

#endif
