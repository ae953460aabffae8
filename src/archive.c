/* archive.c — Velero's backup tarball (see archive.h). Writing: libarchive's PAX-restricted tar
 * (plain USTAR headers, a PAX record only where a name needs one, as Go's archive/tar does) under
 * its gzip filter, handed to the caller's callback block by block. Reading: our own zlib inflate
 * (so a truncated or corrupt gzip stream is always noticed, trailer included) feeding libarchive's
 * tar reader; every entry is checked before its data is read, and nothing touches the disk. */
/* "archive.h" is ours (found next to this file); <archive.h> is libarchive's, because the build
 * never puts src/ on the include path for the files in src/. */
#include "archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define AR_ENTRY_MODE 0755
#define AR_BLOCK (64u << 10)   /* read and inflate granularity */
#define AR_MAX_TAIL (1u << 20) /* bytes allowed after the tar's end marker */

/* ---- paths ---- */

/* A segment the writer may use: non-empty, not "." or "..", no '/'. */
static bool ar_segment_ok(const char *s) {
  return s && *s && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/');
}

kd_rc archive_object_path(const char *gr, const char *preferred_version, const char *ns, const char *name, char *out,
                          size_t n) {
  struct archive_path *f = NULL; /* only for the field sizes the parser has */
  bool cluster = !ns || !*ns;
  if (!ar_segment_ok(gr) || !ar_segment_ok(name) || (!cluster && !ar_segment_ok(ns)) ||
      (preferred_version && !ar_segment_ok(preferred_version)))
    return kd_fail(KD_ERR_INVALID, "object %s/%s/%s cannot be stored in a backup: a path segment is empty, \".\", "
                   "\"..\" or holds '/'", gr ? gr : "", ns ? ns : "", name ? name : "");
  if (strlen(gr) >= sizeof f->gr || strlen(name) >= sizeof f->name || (!cluster && strlen(ns) >= sizeof f->ns) ||
      (preferred_version && strlen(preferred_version) >= sizeof f->version))
    return kd_fail(KD_ERR_INVALID, "object %.100s/%.100s/%.100s cannot be stored in a backup: a name is longer than "
                   "Kubernetes allows", gr, cluster ? "" : ns, name);
  int w = snprintf(out, n, "resources/%s/%s%s%s%s%s/%s.json", gr, preferred_version ? preferred_version : "",
                   preferred_version ? "-preferredversion/" : "", cluster ? "cluster" : "namespaces", cluster ? "" : "/",
                   cluster ? "" : ns, name);
  if (w < 0 || (size_t)w >= n)
    return kd_fail(KD_ERR_TOOBIG, "path of object %s/%s/%s is longer than %zu bytes", gr, cluster ? "" : ns, name,
                   n ? n - 1 : 0);
  return KD_OK;
}

/* copy segment [s, s+len) into a field of size cap */
static bool ar_field(char *dst, size_t cap, const char *s, size_t len) {
  if (len >= cap) return false;
  memcpy(dst, s, len);
  dst[len] = '\0';
  return true;
}

static bool ar_seg_is(const char *s, size_t len, const char *lit) { return strlen(lit) == len && !memcmp(s, lit, len); }

#define AR_MAX_SEGS 8 /* object paths have at most 6; more means "other" */

kd_rc archive_parse_path(const char *path, struct archive_path *out) {
  const char *seg[AR_MAX_SEGS];
  size_t seglen[AR_MAX_SEGS], nseg = 0;
  memset(out, 0, sizeof *out);
  out->kind = ARCHIVE_PATH_OTHER;
  if (!path || !*path) return kd_fail(KD_ERR_INVALID, "archive entry with an empty path");
  size_t plen = strnlen(path, ARCHIVE_PATH_MAX + 1);
  if (plen > ARCHIVE_PATH_MAX) return kd_fail(KD_ERR_INVALID, "archive entry path longer than %d bytes: %.120s...", ARCHIVE_PATH_MAX, path);
  if (path[0] == '/') return kd_fail(KD_ERR_INVALID, "archive entry with an absolute path: %s", path);
  for (const char *p = path;;) {
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 0) return kd_fail(KD_ERR_INVALID, "archive entry path with an empty segment: %s", path);
    if (ar_seg_is(p, len, "..")) return kd_fail(KD_ERR_INVALID, "archive entry path leaves its folder (\"..\"): %s", path);
    if (!ar_seg_is(p, len, ".")) { /* "./x" is x, as Go's filepath.Join makes it */
      if (nseg < AR_MAX_SEGS) {
        seg[nseg] = p;
        seglen[nseg] = len;
      }
      nseg++;
    }
    if (!e) break;
    p = e + 1;
  }
  if (nseg == 2 && ar_seg_is(seg[0], seglen[0], "metadata") && ar_seg_is(seg[1], seglen[1], "version")) {
    out->kind = ARCHIVE_PATH_VERSION;
    return KD_OK;
  }
  if (nseg < 4 || nseg > 6 || !ar_seg_is(seg[0], seglen[0], "resources")) return KD_OK;
  /* resources/<gr>/[<v>-preferredversion/](namespaces/<ns>|cluster)/<name>.json */
  size_t i = 2;
  static const char pv[] = "-preferredversion";
  const size_t pvl = sizeof pv - 1;
  const char *ver = NULL;
  size_t verlen = 0;
  if (seglen[2] > pvl && !memcmp(seg[2] + seglen[2] - pvl, pv, pvl) && !ar_seg_is(seg[2], seglen[2], "namespaces")) {
    ver = seg[2];
    verlen = seglen[2] - pvl;
    i = 3;
  }
  const char *ns = NULL;
  size_t nslen = 0;
  if (nseg == i + 2 && ar_seg_is(seg[i], seglen[i], "cluster")) {
    i += 1;
  } else if (nseg == i + 3 && ar_seg_is(seg[i], seglen[i], "namespaces")) {
    ns = seg[i + 1];
    nslen = seglen[i + 1];
    i += 2;
  } else {
    return KD_OK;
  }
  const char *nm = seg[i];
  size_t nmlen = seglen[i];
  if (nmlen <= 5 || memcmp(nm + nmlen - 5, ".json", 5) != 0) return KD_OK;
  nmlen -= 5;
  /* no object is named "." or ".." (nor is a version): such a path is not an object's */
  if (ar_seg_is(nm, nmlen, ".") || ar_seg_is(nm, nmlen, "..") || (ver && (ar_seg_is(ver, verlen, ".") || ar_seg_is(ver, verlen, ".."))))
    return KD_OK;
  if (!ar_field(out->gr, sizeof out->gr, seg[1], seglen[1]) ||
      (ver && !ar_field(out->version, sizeof out->version, ver, verlen)) ||
      (ns && !ar_field(out->ns, sizeof out->ns, ns, nslen)) || !ar_field(out->name, sizeof out->name, nm, nmlen)) {
    memset(out, 0, sizeof *out);
    out->kind = ARCHIVE_PATH_OTHER;
    return kd_fail(KD_ERR_INVALID, "archive entry path has a segment longer than an object name can be: %s", path);
  }
  out->kind = ARCHIVE_PATH_OBJECT;
  return KD_OK;
}

/* ---- writer ---- */

struct archive_writer {
  struct archive *a;
  struct archive_entry *e;
  archive_out_fn out;
  void *ud;
  kd_rc rc;      /* the output callback's failure */
  bool aborting; /* never call out again */
  char msg[512];  /* what the first failure said */
};

/* libarchive's output. A failing output is remembered, never reported to libarchive: a libarchive
 * writer in its fatal state leaks its gzip filter's zlib state (3.6), so it must stay healthy
 * enough to be closed; after the failure every byte is dropped. */
static la_ssize_t ar_write_cb(struct archive *a, void *ud, const void *buf, size_t n) {
  archive_writer *w = ud;
  (void)a;
  if (w->aborting || w->rc != KD_OK) return (la_ssize_t)n;
  kd_rc rc = w->out(buf, n, w->ud);
  if (rc != KD_OK) {
    w->rc = rc;
    snprintf(w->msg, sizeof w->msg, "%s", kd_errmsg());
  }
  return (la_ssize_t)n;
}

/* The error of a failed step: the output's, or libarchive's own. */
static kd_rc ar_write_err(archive_writer *w, const char *what) {
  if (w->rc != KD_OK) return kd_fail(w->rc, "writing the backup archive (%s): %s", what, w->msg);
  int en = archive_errno(w->a);
  const char *m = archive_error_string(w->a);
  w->rc = kd_fail(en == ENOMEM ? KD_ERR_NOMEM : KD_ERR_IO, "writing the backup archive (%s): %s", what,
                  m ? m : "libarchive failed");
  snprintf(w->msg, sizeof w->msg, "%s", kd_errmsg());
  return w->rc;
}

static kd_rc ar_write_entry(archive_writer *w, const char *path, const void *data, size_t len) {
  if (w->rc != KD_OK) return kd_fail(w->rc, "the backup archive failed earlier (%s); %s not written", w->msg, path);
  archive_entry_clear(w->e);
  archive_entry_copy_pathname(w->e, path); /* raw bytes: libarchive keeps them (hdrcharset=BINARY when not UTF-8 in this locale) */
  archive_entry_set_filetype(w->e, AE_IFREG);
  archive_entry_set_perm(w->e, AR_ENTRY_MODE);
  archive_entry_set_size(w->e, (la_int64_t)len);
  archive_entry_set_mtime(w->e, time(NULL), 0); /* as Velero: time.Now() for each entry */
  if (archive_write_header(w->a, w->e) < ARCHIVE_WARN || w->rc != KD_OK) return ar_write_err(w, path);
  const char *p = data;
  while (len) {
    la_ssize_t k = archive_write_data(w->a, p, len);
    if (k <= 0 || w->rc != KD_OK) return ar_write_err(w, path);
    p += k;
    len -= (size_t)k;
  }
  return KD_OK;
}

kd_rc archive_writer_open(archive_out_fn out, void *ud, int gzip_level, archive_writer **wp) {
  kd_rc rc = KD_OK;
  char lvl[4];
  archive_writer *w = calloc(1, sizeof *w);
  *wp = NULL;
  if (!w) return kd_fail(KD_ERR_NOMEM, "out of memory starting an archive");
  w->out = out;
  w->ud = ud;
  if (gzip_level < 0 || gzip_level > 9) {
    rc = kd_fail(KD_ERR_INVALID, "gzip level %d is not 1..9", gzip_level);
    goto fail;
  }
  snprintf(lvl, sizeof lvl, "%d", gzip_level ? gzip_level : 6);
  if (!(w->a = archive_write_new()) || !(w->e = archive_entry_new())) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory starting an archive");
    goto fail;
  }
  if (archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK || archive_write_add_filter_gzip(w->a) != ARCHIVE_OK ||
      archive_write_set_filter_option(w->a, "gzip", "compression-level", lvl) != ARCHIVE_OK ||
      archive_write_set_bytes_per_block(w->a, 10240) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(w->a, 1) != ARCHIVE_OK ||
      archive_write_open(w->a, w, NULL, ar_write_cb, NULL) != ARCHIVE_OK) {
    rc = ar_write_err(w, "setup");
    goto fail;
  }
  static const char version[] = ARCHIVE_FORMAT_VERSION "\n";
  if ((rc = ar_write_entry(w, "metadata/version", version, sizeof version - 1)) != KD_OK) goto fail;
  *wp = w;
  return KD_OK;
fail:
  archive_writer_abort(w);
  return rc;
}

kd_rc archive_writer_add_object(archive_writer *w, const char *gr, const char *version, const char *ns,
                                const char *name, const char *json, size_t len) {
  char path[ARCHIVE_PATH_MAX + 1];
  kd_rc rc;
  if ((rc = archive_object_path(gr, NULL, ns, name, path, sizeof path)) != KD_OK) return rc;
  if ((rc = ar_write_entry(w, path, json, len)) != KD_OK) return rc;
  if ((rc = archive_object_path(gr, version, ns, name, path, sizeof path)) != KD_OK) return rc;
  return ar_write_entry(w, path, json, len);
}

kd_rc archive_writer_add_file(archive_writer *w, const char *path, const void *data, size_t len) {
  struct archive_path where;
  kd_rc rc = archive_parse_path(path, &where);
  if (rc != KD_OK) return rc;
  for (const char *p = path;;) { /* the reader would drop a "." segment: refuse it here */
    const char *e = strchr(p, '/');
    if (p[0] == '.' && (e == p + 1 || (!e && p[1] == '\0')))
      return kd_fail(KD_ERR_INVALID, "archive path with a \".\" segment: %s", path);
    if (!e) break;
    p = e + 1;
  }
  return ar_write_entry(w, path, data, len);
}

kd_rc archive_writer_close(archive_writer *w) {
  kd_rc rc = KD_OK;
  if (!w) return kd_fail(KD_ERR_INVALID, "no archive to close");
  if (w->rc != KD_OK) {
    rc = kd_fail(w->rc, "the backup archive failed earlier: %s", w->msg);
    w->aborting = true;
  }
  if (archive_write_close(w->a) != ARCHIVE_OK && rc == KD_OK) rc = ar_write_err(w, "finishing");
  if (rc == KD_OK && w->rc != KD_OK) rc = ar_write_err(w, "finishing");
  archive_write_free(w->a);
  archive_entry_free(w->e);
  free(w);
  return rc;
}

void archive_writer_abort(archive_writer *w) {
  if (!w) return;
  w->aborting = true; /* close flushes into the void: everything is released, nothing goes out */
  if (w->a) {
    archive_write_close(w->a);
    archive_write_free(w->a);
  }
  archive_entry_free(w->e);
  free(w);
}

/* ---- reader ---- */

struct archive_reader {
  struct archive *a;
  int fd;
  size_t max_entry;
  kd_rc rc;          /* sticky: the first failure */
  kd_rc src_rc;      /* a failure of the gzip source under libarchive */
  z_stream z;
  bool z_ready;      /* inflateInit2 done */
  bool member_done;  /* the current gzip member ended (trailer checked) */
  bool in_eof;       /* the fd has no more bytes */
  bool any;          /* at least one gzip member started */
  unsigned long long in_total;
  kd_buf data;       /* the current entry's content */
  char path[ARCHIVE_PATH_MAX + 1];
  unsigned char in[AR_BLOCK];
  unsigned char out[AR_BLOCK];
};

static kd_rc ar_src_fail(archive_reader *r, kd_rc rc) {
  r->src_rc = rc;
  return rc;
}

/* Refill the compressed input. KD_OK with r->in_eof set at the end of the fd. */
static kd_rc ar_fill(archive_reader *r) {
  for (;;) {
    ssize_t k = read(r->fd, r->in, sizeof r->in);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return ar_src_fail(r, kd_fail(KD_ERR_IO, "reading the backup archive: %s", strerror(errno)));
    if (k == 0) r->in_eof = true;
    r->z.next_in = r->in;
    r->z.avail_in = (uInt)k;
    r->in_total += (unsigned long long)k;
    return KD_OK;
  }
}

/* Inflate up to one block into r->out; *got 0 means the (multi-member) gzip stream ended cleanly. */
static kd_rc ar_inflate(archive_reader *r, size_t *got) {
  r->z.next_out = r->out;
  r->z.avail_out = sizeof r->out;
  while (r->z.avail_out == sizeof r->out) {
    if (r->z.avail_in == 0 && !r->in_eof && ar_fill(r) != KD_OK) return r->src_rc;
    if (r->member_done) {
      if (r->z.avail_in == 0 && r->in_eof) break; /* clean end */
      if (r->z.avail_in == 0) continue;
      /* more bytes: only another gzip member may follow */
      if (r->z.next_in[0] != 0x1f)
        return ar_src_fail(r, kd_fail(KD_ERR_PARSE, "corrupt backup archive: data after the end of the gzip stream"));
      if (inflateReset(&r->z) != Z_OK) return ar_src_fail(r, kd_fail(KD_ERR_PARSE, "corrupt backup archive"));
      r->member_done = false;
    }
    if (r->z.avail_in == 0 && r->in_eof)
      return ar_src_fail(r, kd_fail(KD_ERR_PARSE, r->any ? "truncated backup archive: the gzip stream ends early after %llu bytes"
                                                         : "empty backup archive (%llu bytes)", r->in_total));
    r->any = true;
    int zr = inflate(&r->z, Z_NO_FLUSH);
    if (zr == Z_STREAM_END) {
      r->member_done = true;
    } else if (zr == Z_MEM_ERROR) {
      return ar_src_fail(r, kd_fail(KD_ERR_NOMEM, "out of memory decompressing the backup archive"));
    } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
      return ar_src_fail(r, kd_fail(KD_ERR_PARSE, "corrupt backup archive: %s (gzip, near byte %llu)",
                                    r->z.msg ? r->z.msg : "bad data", r->in_total - r->z.avail_in));
    }
  }
  *got = sizeof r->out - r->z.avail_out;
  return KD_OK;
}

static la_ssize_t ar_read_cb(struct archive *a, void *ud, const void **buf) {
  archive_reader *r = ud;
  size_t got = 0;
  if (r->src_rc != KD_OK || ar_inflate(r, &got) != KD_OK) {
    archive_set_error(a, EIO, "%s", kd_errmsg());
    return -1;
  }
  *buf = r->out;
  return (la_ssize_t)got;
}

kd_rc archive_reader_open_fd(int fd, size_t max_entry, archive_reader **out) {
  kd_rc rc = KD_OK;
  archive_reader *r = calloc(1, sizeof *r);
  *out = NULL;
  if (!r) return kd_fail(KD_ERR_NOMEM, "out of memory opening an archive");
  r->fd = fd;
  r->max_entry = max_entry ? max_entry : ARCHIVE_MAX_ENTRY;
  kd_buf_init(&r->data, r->max_entry);
  if (inflateInit2(&r->z, 16 + MAX_WBITS) != Z_OK) { /* gzip only, trailer checked */
    rc = kd_fail(KD_ERR_NOMEM, "out of memory opening an archive");
    goto fail;
  }
  r->z_ready = true;
  if (!(r->a = archive_read_new())) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory opening an archive");
    goto fail;
  }
  /* tar only, no filter: the gzip layer is ours */
  if (archive_read_support_format_tar(r->a) != ARCHIVE_OK || archive_read_open(r->a, r, NULL, ar_read_cb, NULL) != ARCHIVE_OK) {
    rc = r->src_rc != KD_OK ? r->src_rc
                            : kd_fail(KD_ERR_PARSE, "not a backup archive: %s",
                                      archive_error_string(r->a) ? archive_error_string(r->a) : "unreadable");
    goto fail;
  }
  *out = r;
  return KD_OK;
fail:
  archive_reader_free(r);
  return rc;
}

/* libarchive refused: say why, preferring the gzip layer's own error */
static kd_rc ar_read_err(archive_reader *r, const char *entry) {
  if (r->src_rc != KD_OK) return r->src_rc;
  const char *m = archive_error_string(r->a);
  if (archive_errno(r->a) == ENOMEM) return kd_fail(KD_ERR_NOMEM, "out of memory reading the backup archive");
  return kd_fail(KD_ERR_PARSE, "corrupt backup archive%s%s: %s", entry ? " at entry " : "", entry ? entry : "",
                 m ? m : "unreadable tar data");
}

static const char *ar_type_name(mode_t t) {
  switch (t) {
  case AE_IFLNK: return "a symbolic link";
  case AE_IFCHR: return "a character device";
  case AE_IFBLK: return "a block device";
  case AE_IFIFO: return "a fifo";
  case AE_IFSOCK: return "a socket";
  default: return "not a regular file";
  }
}

/* At the end of the tar: read the rest of the gzip stream so its trailer (CRC, length) is
 * checked and nothing but another member follows. */
static kd_rc ar_drain(archive_reader *r) {
  size_t total = 0;
  for (;;) {
    size_t got = 0;
    if (r->src_rc != KD_OK) return r->src_rc;
    if (ar_inflate(r, &got) != KD_OK) return r->src_rc;
    if (got == 0) return KD_OK;
    /* block padding is at most tens of KiB; more is not a tarball's tail (or a gzip bomb) */
    if ((total += got) > AR_MAX_TAIL)
      return ar_src_fail(r, kd_fail(KD_ERR_PARSE, "corrupt backup archive: more than %u bytes after the end of the tar data", AR_MAX_TAIL));
  }
}

kd_rc archive_reader_next(archive_reader *r, struct archive_item *it, bool *eof) {
  kd_rc rc = r->rc;
  struct archive_entry *e;
  *eof = false;
  if (rc != KD_OK) return kd_fail(rc, "the backup archive could not be read further");
  for (;;) {
    int ar = archive_read_next_header(r->a, &e);
    if (ar == ARCHIVE_EOF) {
      if ((rc = ar_drain(r)) != KD_OK) goto fail;
      *eof = true;
      return KD_OK;
    }
    if (ar < ARCHIVE_WARN) {
      rc = ar_read_err(r, NULL);
      goto fail;
    }
    const char *name = archive_entry_pathname_utf8(e);
    if (!name) name = archive_entry_pathname(e);
    if (!name || !*name) {
      rc = kd_fail(KD_ERR_INVALID, "hostile backup archive: an entry without a name");
      goto fail;
    }
    size_t nlen = strnlen(name, ARCHIVE_PATH_MAX + 1);
    if (nlen > ARCHIVE_PATH_MAX) {
      rc = kd_fail(KD_ERR_INVALID, "hostile backup archive: entry path longer than %d bytes: %.120s...", ARCHIVE_PATH_MAX, name);
      goto fail;
    }
    memcpy(r->path, name, nlen + 1);
    mode_t type = archive_entry_filetype(e);
    const char *link = archive_entry_hardlink(e);
    if (link) {
      rc = kd_fail(KD_ERR_INVALID, "hostile backup archive: entry %s is a hard link to %.200s", r->path, link);
      goto fail;
    }
    if (type == AE_IFDIR) { /* no content; its path must still be sane */
      if (nlen > 1 && r->path[nlen - 1] == '/') r->path[nlen - 1] = '\0';
      struct archive_path where;
      if ((rc = archive_parse_path(r->path, &where)) != KD_OK) {
        kd_fail_wrap(rc, "hostile backup archive");
        goto fail;
      }
      continue;
    }
    if (type != AE_IFREG) {
      rc = kd_fail(KD_ERR_INVALID, "hostile backup archive: entry %s is %s", r->path, ar_type_name(type));
      goto fail;
    }
    if (archive_entry_sparse_count(e) > 0) {
      rc = kd_fail(KD_ERR_INVALID, "hostile backup archive: entry %s is a sparse file", r->path);
      goto fail;
    }
    if ((rc = archive_parse_path(r->path, &it->where)) != KD_OK) {
      kd_fail_wrap(rc, "hostile backup archive");
      goto fail;
    }
    la_int64_t size = archive_entry_size(e);
    if (!archive_entry_size_is_set(e) || size < 0 || (unsigned long long)size > r->max_entry) {
      rc = kd_fail(KD_ERR_TOOBIG, "backup archive entry %s claims %lld bytes, over the cap of %zu", r->path,
                   (long long)size, r->max_entry);
      goto fail;
    }
    kd_buf_reset(&r->data);
    if (kd_buf_add(&r->data, "", 0) != KD_OK) { /* a NUL-terminated buffer even for 0 bytes */
      rc = KD_ERR_NOMEM;
      goto fail;
    }
    size_t want = (size_t)size;
    for (;;) {
      const void *blk;
      size_t blen;
      la_int64_t off;
      int dr = archive_read_data_block(r->a, &blk, &blen, &off);
      if (dr == ARCHIVE_EOF) break;
      if (dr < ARCHIVE_WARN) {
        rc = ar_read_err(r, r->path);
        goto fail;
      }
      if (off != (la_int64_t)r->data.len || blen > want - r->data.len) {
        rc = kd_fail(KD_ERR_INVALID, "hostile backup archive: entry %s has holes or more data than its header says", r->path);
        goto fail;
      }
      if ((rc = kd_buf_add(&r->data, blk, blen)) != KD_OK) goto fail;
    }
    if (r->data.len != want) {
      rc = kd_fail(KD_ERR_PARSE, "truncated backup archive: entry %s ends after %zu of %zu bytes", r->path, r->data.len, want);
      goto fail;
    }
    it->path = r->path;
    it->data = r->data.data;
    it->len = r->data.len;
    return KD_OK;
  }
fail:
  r->rc = rc;
  return rc;
}

void archive_reader_free(archive_reader *r) {
  if (!r) return;
  if (r->a) archive_read_free(r->a);
  if (r->z_ready) inflateEnd(&r->z);
  kd_buf_free(&r->data);
  free(r);
}

kd_rc archive_gz_init(archive_gz *g, size_t max, int level) {
  memset(g, 0, sizeof *g);
  kd_buf_init(&g->out, max);
  if (deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return kd_fail(KD_ERR_NOMEM, "gzip: cannot start a stream");
  g->init = true;
  return KD_OK;
}

static kd_rc gz_run(archive_gz *g, const void *p, size_t n, int flush) {
  if (!g->init || g->finished) return kd_fail(KD_ERR_INVALID, "gzip: the stream is not open");
  g->z.next_in = (Bytef *)(uintptr_t)p;
  g->z.avail_in = (uInt)n;
  g->in_bytes += n;
  for (;;) {
    unsigned char chunk[16384];
    g->z.next_out = chunk;
    g->z.avail_out = sizeof chunk;
    int zr = deflate(&g->z, flush);
    if (zr == Z_STREAM_ERROR) return kd_fail(KD_ERR_INVALID, "gzip: stream error");
    kd_rc rc = kd_buf_add(&g->out, chunk, sizeof chunk - g->z.avail_out);
    if (rc) return rc;
    if (flush == Z_FINISH ? zr == Z_STREAM_END : (g->z.avail_in == 0 && g->z.avail_out != 0)) break;
  }
  if (flush == Z_FINISH) g->finished = true;
  return KD_OK;
}

kd_rc archive_gz_add(archive_gz *g, const void *p, size_t n) {
  while (n > 0) { /* avail_in is 32 bits */
    size_t k = n > (1u << 30) ? (1u << 30) : n;
    kd_rc rc = gz_run(g, p, k, Z_NO_FLUSH);
    if (rc) return rc;
    p = (const char *)p + k, n -= k;
  }
  return KD_OK;
}

kd_rc archive_gz_write(const void *p, size_t n, void *ud) { return archive_gz_add(ud, p, n); }

kd_rc archive_gz_finish(archive_gz *g) { return gz_run(g, "", 0, Z_FINISH); }

void archive_gz_free(archive_gz *g) {
  if (g->init) deflateEnd(&g->z);
  g->init = false;
  kd_buf_free(&g->out);
}

kd_rc archive_gzip(const void *p, size_t n, kd_buf *out) {
  archive_gz g;
  kd_rc rc = archive_gz_init(&g, out->max - out->len, 6);
  if (!rc) rc = archive_gz_add(&g, p, n);
  if (!rc) rc = archive_gz_finish(&g);
  if (!rc) rc = kd_buf_add(out, g.out.data, g.out.len);
  archive_gz_free(&g);
  return rc;
}
