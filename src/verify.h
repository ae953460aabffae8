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

/* ---- signatures (crypt.h) ---- */

struct crypt_location;
/* What a backup's <b>-checksums.json.sig says under a location's settings. */
struct verify_sig {
  bool present;    /* the signature file exists */
  bool valid;      /* it verifies the checksums file with one of the location's keys */
  bool refused;    /* the location's policy refuses this backup: a required signature missing or
                      not valid, or a signature present that fails with the keys configured */
  char key_id[17]; /* the signer's key id, when the file parses ("" otherwise) */
  char why[2400];  /* why it is not valid ("" when it is) */
};
/* Read the checksums file and its signature and judge them with loc (NULL: no keys, nothing
 * required). *sums (may be NULL) gets the checksums parsed from the very bytes that were checked
 * (NULL when there is no checksums file), owned by the caller. A missing checksums file is a
 * missing signature. Fails only when the store cannot be read or the checksums file does not
 * parse (KD_ERR_PARSE). */
kd_rc verify_signature(objstore *s, const char *backup, const struct crypt_location *loc, struct verify_sig *out,
                       verify_sums **sums);

#endif
