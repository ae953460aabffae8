/* fsstore.h — the filesystem object store (BSL provider "filesystem", config "path"): keys are
 * files under one root directory. objstore.c is its only caller; keys here are full keys (the
 * location prefix included).
 *
 * Safety: every key is resolved segment by segment from the root with openat and O_NOFOLLOW,
 * so no key ("..", "/abs", a symbolic link planted in the tree) reaches outside the root; empty,
 * "." and ".." segments and segments starting with ".kcmdr-tmp-" (our temporary names) are
 * KD_ERR_INVALID. The root itself may be a symbolic link (the user chose it).
 * Durability: a write goes to ".kcmdr-tmp-<random>" in the target's directory, is fsync'ed,
 * renamed over the key, and the directory is fsync'ed; readers never see a partial file.
 * Permissions: backups hold Secrets, so every file this store creates is 0600 and every
 * directory 0700, set with fchmod after creation whatever the process umask (directories that
 * already exist, the root included, are left as they are).
 * Listing walks directories in byte order of the keys, hides temporary files, symbolic links
 * and directories without objects (as S3 has no empty "folders"); deleting removes parent
 * directories left empty (never the root). */
#ifndef KCMDR_FSSTORE_H
#define KCMDR_FSSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "objstore.h"
#include "util.h"

#define FSSTORE_TMP_PREFIX ".kcmdr-tmp-"

typedef struct fsstore fsstore;
typedef struct fsstore_writer fsstore_writer;

/* A store rooted at the directory root (copied; need not exist yet: fsstore_check says).
 * KD_ERR_CONFIG for an empty or relative root, KD_ERR_NOMEM. */
kd_rc fsstore_new(const char *root, fsstore **out);
/* Release the store. NULL is fine. */
void fsstore_free(fsstore *f);
/* Watch *cancel (see objstore_set_cancel). */
void fsstore_set_cancel(fsstore *f, volatile const int *cancel);
/* The root directory (owned by the store). */
const char *fsstore_root(const fsstore *f);
/* KD_OK when the root is a directory that can be listed; KD_ERR_NOTFOUND when it does not
 * exist, KD_ERR_FORBIDDEN when it cannot be read, KD_ERR_IO otherwise. */
kd_rc fsstore_check(fsstore *f);
/* Create a temporary file for key (missing directories are created). *out owned by the caller
 * until commit or abort. KD_ERR_INVALID (bad key), KD_ERR_CONFLICT (a file is where a directory
 * of the key must be), KD_ERR_NOTFOUND (no root), KD_ERR_IO. */
kd_rc fsstore_writer_open(fsstore *f, const char *key, fsstore_writer **out);
/* Append n bytes. KD_ERR_IO (disk full...), KD_ERR_CANCELLED. The writer stays the caller's. */
kd_rc fsstore_writer_write(fsstore_writer *w, const void *p, size_t n);
/* Bytes written so far. */
uint64_t fsstore_writer_size(const fsstore_writer *w);
/* fsync, rename over the key, fsync the directory; frees w. On failure the temporary file is
 * removed and nothing changed under key. */
kd_rc fsstore_writer_commit(fsstore_writer *w);
/* Remove the temporary file (and directories the writer left empty); frees w. NULL is fine. */
void fsstore_writer_abort(fsstore_writer *w);
/* Write a whole object atomically (writer open, write, commit). */
kd_rc fsstore_put(fsstore *f, const char *key, const void *p, size_t n);
/* Create key with these bytes only if no object is there: a temporary file (fsync'ed) linked to
 * the key with linkat (EEXIST: KD_ERR_CONFLICT "already exists"), then removed. Where the
 * filesystem has no hard links (EPERM, EOPNOTSUPP, ENOSYS from linkat) the key is claimed with
 * O_CREAT|O_EXCL (an empty file, visible briefly) and the temporary file renamed over it. The
 * directory is fsync'ed. On failure nothing new is left under key. */
kd_rc fsstore_put_new(fsstore *f, const char *key, const void *p, size_t n);
/* For tests: behave as on a filesystem without hard links (linkat is not tried), so that
 * fsstore_put_new's O_EXCL path runs. */
void fsstore_test_without_links(fsstore *f, bool on);
/* Stream key's bytes into fn in chunks. KD_ERR_NOTFOUND, KD_ERR_INVALID, KD_ERR_IO, the sink's code. */
kd_rc fsstore_get(fsstore *f, const char *key, objstore_sink_fn fn, void *ud);
/* Size of key. KD_ERR_NOTFOUND when it is not a regular file there. */
kd_rc fsstore_head(fsstore *f, const char *key, uint64_t *size);
/* Remove key (missing is KD_OK) and the directories it leaves empty. */
kd_rc fsstore_delete(fsstore *f, const char *key);
/* Every key starting with prefix, in byte order; delimiter '/' reports each deeper "folder"
 * (holding at least one object) once as a common prefix ending in '/'; '\0' lists all keys.
 * KD_ERR_INVALID for another delimiter; fn's code stops the walk. KD_ERR_NOTFOUND without root. */
kd_rc fsstore_list(fsstore *f, const char *prefix, char delimiter, objstore_list_fn fn, void *ud);

#endif
