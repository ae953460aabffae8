/* archive.h — Velero's backup tarball (format 1.1.0), streamed both ways with libarchive:
 * gzip over tar (PAX where names need it), first entry "metadata/version" = "1.1.0\n", each
 * object as JSON at BOTH resources/<resource>[.<group>]/namespaces/<ns>/<name>.json (or
 * .../cluster/<name>.json) AND resources/<resource>[.<group>]/<version>-preferredversion/
 * namespaces|cluster/...; regular files, mode 0755.
 *
 * The writer never holds more than one entry; the reader never writes to disk and rejects
 * hostile archives (absolute or "../" paths, links, devices, entries over a cap, truncated gzip)
 * with a clear error. */
#ifndef KCMDR_ARCHIVE_H
#define KCMDR_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "util.h"

#define ARCHIVE_FORMAT_VERSION "1.1.0"
#define ARCHIVE_MAX_ENTRY (8u << 20) /* cap on one entry: backup skips larger objects, restore and verify refuse them */
#define ARCHIVE_PATH_MAX 2048

/* Where the writer's compressed bytes go; return KD_OK or the code that stops the archive. */
typedef kd_rc (*archive_out_fn)(const void *p, size_t n, void *ud);

typedef struct archive_writer archive_writer;

/* Start an archive; writes metadata/version. gzip_level 1..9 (0 = 6). The writer buffers at
 * most a few hundred KiB before calling out. KD_ERR_NOMEM, or out's failure. */
kd_rc archive_writer_open(archive_out_fn out, void *ud, int gzip_level, archive_writer **w);
/* Add one object at both of its paths. gr: "pods" (core) or "deployments.apps"; version: the
 * preferred version ("v1"); ns NULL or "" for cluster-scoped. json/len: the exact bytes stored.
 * KD_ERR_INVALID for a name or namespace that cannot be a path segment (see
 * archive_object_path); out's failure otherwise. */
kd_rc archive_writer_add_object(archive_writer *w, const char *gr, const char *version, const char *ns,
                                const char *name, const char *json, size_t len);
/* Add any other regular file (path relative, validated like object paths). */
kd_rc archive_writer_add_file(archive_writer *w, const char *path, const void *data, size_t len);
/* Finish the tar and gzip streams (the last bytes go to out) and free w, also on failure. */
kd_rc archive_writer_close(archive_writer *w);
/* Free w without finishing (the output is incomplete). NULL is fine. */
void archive_writer_abort(archive_writer *w);

/* Build an object's path into out (size n): preferred_version NULL gives the plain path,
 * otherwise the "<version>-preferredversion" one. Segments (gr, version, ns, name) must be
 * non-empty, not "." or "..", free of '/' and NUL, and short enough for struct archive_path's
 * fields: else KD_ERR_INVALID. KD_ERR_TOOBIG when it does not fit in out. Pure. */
kd_rc archive_object_path(const char *gr, const char *preferred_version, const char *ns, const char *name, char *out,
                          size_t n);

/* One path in an archive, parsed. */
enum archive_path_kind {
  ARCHIVE_PATH_VERSION,   /* metadata/version */
  ARCHIVE_PATH_OBJECT,    /* resources/<gr>/[<v>-preferredversion/](namespaces/<ns>|cluster)/<name>.json */
  ARCHIVE_PATH_OTHER,     /* any other relative path (ignored by restore) */
};
struct archive_path {
  enum archive_path_kind kind;
  char gr[320];
  char version[64];       /* "" for the plain copy */
  char ns[256];           /* "" for cluster-scoped */
  char name[256];
};
/* Parse path. KD_ERR_INVALID (with the path in the message) for an absolute path, a ".."
 * segment, an empty segment, a path over ARCHIVE_PATH_MAX, or an object path whose parts do not
 * fit the fields below; "." segments are dropped ("./metadata/version" is the version file, as
 * Go's filepath.Join makes it). A resources/ path of the wrong shape (or an object named "." or
 * "..") is ARCHIVE_PATH_OTHER. Pure. */
kd_rc archive_parse_path(const char *path, struct archive_path *out);

typedef struct archive_reader archive_reader;

/* One entry as read: the parsed path and the whole content (owned by the reader, valid until
 * the next call; data[len] is '\0', so a JSON parser may take it as a string too). */
struct archive_item {
  const char *path;
  struct archive_path where;
  const char *data;
  size_t len;
};

/* Read the gzip tar in file descriptor fd (not closed; read from its current offset). Entries
 * larger than max_entry (0 = ARCHIVE_MAX_ENTRY) are rejected from their header, before they are
 * read. */
kd_rc archive_reader_open_fd(int fd, size_t max_entry, archive_reader **out);
/* The next regular file into *it; *eof true at the end (then *it is unset; the whole gzip stream,
 * CRC and length included, has been checked). Directory entries are skipped after their path is
 * checked. KD_ERR_PARSE for a corrupt or truncated archive, KD_ERR_INVALID for a hostile entry
 * (path, link, device, fifo, directory traversal), KD_ERR_TOOBIG over the cap; the message names
 * the entry. After a failure every later call fails. */
kd_rc archive_reader_next(archive_reader *r, struct archive_item *it, bool *eof);
/* Free the reader. NULL is fine. */
void archive_reader_free(archive_reader *r);

/* A gzip stream into memory (the logs, resource list and results files): compressed bytes go to
 * out, whose cap applies. Fields other than out and in_bytes are private. */
typedef struct archive_gz {
  z_stream z;
  kd_buf out;         /* the compressed bytes so far */
  uint64_t in_bytes;  /* uncompressed bytes taken */
  bool init, finished;
} archive_gz;
/* Start g with out capped at max bytes; level 1..9. KD_ERR_NOMEM; g needs archive_gz_free
 * either way (a no-op after a failed init). */
kd_rc archive_gz_init(archive_gz *g, size_t max, int level);
/* Compress n more bytes. KD_ERR_TOOBIG past the cap, KD_ERR_NOMEM, KD_ERR_INVALID after finish. */
kd_rc archive_gz_add(archive_gz *g, const void *p, size_t n);
/* archive_gz_add as an archive_out_fn (ud: the archive_gz). */
kd_rc archive_gz_write(const void *p, size_t n, void *ud);
/* End the stream (gzip trailer into out); nothing may be added after. Same failures. */
kd_rc archive_gz_finish(archive_gz *g);
/* Free what g holds. */
void archive_gz_free(archive_gz *g);
/* Gzip n bytes at p in one go and append the stream to out (its cap applies: KD_ERR_TOOBIG).
 * KD_ERR_NOMEM. */
kd_rc archive_gzip(const void *p, size_t n, kd_buf *out);

#endif
