/* fsstore.c — the filesystem object store (see fsstore.h). */
#include "fsstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_CHUNK (256u << 10)
#define FS_MAX_KEY 1024 /* S3's limit on a key, in bytes */
#define FS_MAX_DIR_ENTRIES (4u << 20) /* entries of one directory held while listing it */
#define FS_OPEN_TRIES 3               /* a concurrent delete may prune a directory we just made */

#define FS_FILE_MODE 0600 /* backups hold Secrets: owner only, whatever the umask */
#define FS_DIR_MODE 0700

struct fsstore {
  char *root;
  volatile const int *cancel;
  bool no_links; /* tests: act as on a filesystem without hard links */
};

struct fsstore_writer {
  fsstore *f;
  char *key;
  int dirfd;
  int fd;
  char tmp[sizeof FSSTORE_TMP_PREFIX + 17];
  const char *leaf; /* inside key */
  uint64_t size;
};

kd_rc fsstore_new(const char *root, fsstore **out) {
  *out = NULL;
  if (!root || root[0] != '/')
    return kd_fail(KD_ERR_CONFIG, "config.path must be an absolute directory path, not '%s'", root ? root : "");
  fsstore *f = calloc(1, sizeof *f);
  if (!f || !(f->root = kd_strdup(root))) {
    free(f);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  /* "/data/" and "/data" name the same directory; keep "/" as it is */
  size_t n = strlen(f->root);
  while (n > 1 && f->root[n - 1] == '/') f->root[--n] = '\0';
  *out = f;
  return KD_OK;
}

void fsstore_free(fsstore *f) {
  if (!f) return;
  free(f->root);
  free(f);
}

void fsstore_set_cancel(fsstore *f, volatile const int *cancel) { f->cancel = cancel; }
void fsstore_test_without_links(fsstore *f, bool on) { f->no_links = on; }
const char *fsstore_root(const fsstore *f) { return f->root; }

static kd_rc fs_cancelled(const fsstore *f) {
  if (f->cancel && *f->cancel) return kd_fail(KD_ERR_CANCELLED, "cancelled");
  return KD_OK;
}

static kd_rc fs_errno(int e, const char *what, const char *root, const char *key) {
  kd_rc rc = e == ENOENT ? KD_ERR_NOTFOUND : (e == EACCES || e == EPERM || e == EROFS) ? KD_ERR_FORBIDDEN : KD_ERR_IO;
  return kd_fail(rc, "%s %s/%s: %s", what, root, key, strerror(e));
}

static int fs_open_root(const fsstore *f) { return open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC); }

static kd_rc fs_root_error(const fsstore *f, int e) {
  if (e == ENOENT) return kd_fail(KD_ERR_NOTFOUND, "directory %s does not exist", f->root);
  if (e == ENOTDIR) return kd_fail(KD_ERR_NOTFOUND, "%s is not a directory", f->root);
  if (e == EACCES || e == EPERM) return kd_fail(KD_ERR_FORBIDDEN, "cannot open directory %s: %s", f->root, strerror(e));
  return kd_fail(KD_ERR_IO, "cannot open directory %s: %s", f->root, strerror(e));
}

/* Copy the segment of key starting at *p into seg and move *p past it (and its '/').
 * KD_ERR_INVALID for an empty, ".", "..", reserved or over-long segment. */
static kd_rc fs_segment(const char *key, const char **p, char seg[NAME_MAX + 1]) {
  const char *s = *p, *e = strchr(s, '/');
  size_t n = e ? (size_t)(e - s) : strlen(s);
  if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
    return kd_fail(KD_ERR_INVALID, "key '%s' has an empty, '.' or '..' segment", key);
  if (n > NAME_MAX) return kd_fail(KD_ERR_INVALID, "key '%s' has a segment longer than %d bytes", key, NAME_MAX);
  if (strncmp(s, FSSTORE_TMP_PREFIX, strlen(FSSTORE_TMP_PREFIX)) == 0)
    return kd_fail(KD_ERR_INVALID, "key '%s' uses the reserved name prefix %s", key, FSSTORE_TMP_PREFIX);
  memcpy(seg, s, n);
  seg[n] = '\0';
  *p = e ? e + 1 : s + n;
  return KD_OK;
}

/* Open the directory that holds key's last segment, walking from the root without following
 * symbolic links; with create, make missing directories (FS_DIR_MODE whatever the umask, parent
 * fsync'ed). *leaf points into key. */
static kd_rc fs_open_parent(const fsstore *f, const char *key, bool create, int *dirfd, const char **leaf) {
  kd_rc rc = KD_OK;
  char seg[NAME_MAX + 1];
  *dirfd = -1;
  if (!key || !*key || key[0] == '/' || strlen(key) > FS_MAX_KEY)
    return kd_fail(KD_ERR_INVALID, "key '%.200s' is empty, absolute or too long", key ? key : "");
  int fd = fs_open_root(f);
  if (fd < 0) return fs_root_error(f, errno);
  const char *p = key;
  for (;;) {
    const char *start = p;
    if ((rc = fs_segment(key, &p, seg)) != KD_OK) goto fail;
    if (!*p && p[-1] != '/') { /* last segment: the object's name */
      *leaf = start;
      *dirfd = fd;
      return KD_OK;
    }
    if (!*p) {
      rc = kd_fail(KD_ERR_INVALID, "key '%s' ends with '/'", key);
      goto fail;
    }
    int next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create) {
      bool made = mkdirat(fd, seg, FS_DIR_MODE) == 0;
      if (!made && errno != EEXIST) {
        rc = fs_errno(errno, "cannot create directory for", f->root, key);
        goto fail;
      }
      fsync(fd);
      next = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      /* the umask took bits away (or, at 000, none): the mode is ours to set, exactly */
      if (next >= 0 && made && fchmod(next, FS_DIR_MODE) < 0) {
        rc = fs_errno(errno, "cannot set the mode of a directory for", f->root, key);
        close(next);
        goto fail;
      }
    }
    if (next < 0) {
      int e = errno;
      struct stat st;
      if ((e == ENOTDIR || e == ELOOP) && fstatat(fd, seg, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) e = ELOOP;
      if (e == ELOOP) rc = kd_fail(KD_ERR_INVALID, "key '%s' passes through a symbolic link under %s", key, f->root);
      else if (e == ENOTDIR) rc = create ? kd_fail(KD_ERR_CONFLICT, "key '%s': a file under %s is where a directory must be", key, f->root)
                                         : kd_fail(KD_ERR_NOTFOUND, "no object %s/%s", f->root, key);
      else if (e == ENOENT) rc = kd_fail(KD_ERR_NOTFOUND, "no object %s/%s", f->root, key);
      else rc = fs_errno(e, "cannot open directory for", f->root, key);
      goto fail;
    }
    close(fd);
    fd = next;
  }
fail:
  close(fd);
  return rc;
}

kd_rc fsstore_check(fsstore *f) {
  int fd = fs_open_root(f);
  if (fd < 0) return fs_root_error(f, errno);
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return fs_root_error(f, e);
  }
  errno = 0;
  readdir(d);
  int e = errno;
  closedir(d);
  return e ? fs_root_error(f, e) : KD_OK;
}

/* ---- writes ---- */

static void fs_random_name(char *out, size_t n) {
  unsigned char r[8] = {0};
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    static _Atomic unsigned long counter;
    unsigned long c = ++counter ^ (unsigned long)getpid() << 20 ^ (unsigned long)kd_now_ms() << 32;
    memcpy(r, &c, sizeof r < sizeof c ? sizeof r : sizeof c);
  }
  snprintf(out, n, "%s%02x%02x%02x%02x%02x%02x%02x%02x", FSSTORE_TMP_PREFIX, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
}

/* Remove the now-empty directories of key, deepest first, never the root. Best effort; this
 * thread's error message is left as it was (a failed write's reason stays). */
static void fs_prune(const fsstore *f, const char *key) {
  char saved[1024];
  snprintf(saved, sizeof saved, "%s", kd_errmsg());
  char *k = kd_strdup(key);
  if (!k) return;
  for (char *slash = strrchr(k, '/'); slash; slash = strrchr(k, '/')) {
    *slash = '\0'; /* k is now the directory's key */
    int dirfd;
    const char *leaf;
    if (fs_open_parent(f, k, false, &dirfd, &leaf) != KD_OK) break;
    int r = unlinkat(dirfd, leaf, AT_REMOVEDIR);
    if (r == 0) fsync(dirfd);
    close(dirfd);
    if (r < 0) break;
  }
  free(k);
  kd_fail(KD_OK, "%s", saved);
}

kd_rc fsstore_writer_open(fsstore *f, const char *key, fsstore_writer **out) {
  kd_rc rc = KD_OK;
  *out = NULL;
  fsstore_writer *w = calloc(1, sizeof *w);
  if (!w || !(w->key = kd_strdup(key))) {
    free(w);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  w->f = f;
  w->dirfd = w->fd = -1;
  if ((rc = fs_cancelled(f)) != KD_OK) goto fail;
  for (int attempt = 0; attempt < FS_OPEN_TRIES; attempt++) {
    if ((rc = fs_open_parent(f, w->key, true, &w->dirfd, &w->leaf)) != KD_OK) goto fail;
    fs_random_name(w->tmp, sizeof w->tmp);
    w->fd = openat(w->dirfd, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, FS_FILE_MODE);
    if (w->fd >= 0 && fchmod(w->fd, FS_FILE_MODE) < 0) {
      rc = fs_errno(errno, "cannot set the mode of a temporary file for", f->root, key);
      goto fail;
    }
    if (w->fd >= 0) break;
    int e = errno;
    close(w->dirfd);
    w->dirfd = -1;
    /* ENOENT: a concurrent delete removed the directory we walked into; walk again */
    if (e != ENOENT || attempt + 1 == FS_OPEN_TRIES) {
      rc = fs_errno(e, "cannot create a temporary file for", f->root, key);
      goto fail;
    }
  }
  *out = w;
  return KD_OK;
fail:
  if (w->fd >= 0) {
    close(w->fd);
    unlinkat(w->dirfd, w->tmp, 0);
  }
  if (w->dirfd >= 0) close(w->dirfd);
  free(w->key);
  free(w);
  return rc;
}

kd_rc fsstore_writer_write(fsstore_writer *w, const void *p, size_t n) {
  kd_rc rc = fs_cancelled(w->f);
  if (rc != KD_OK) return rc;
  const char *c = p;
  while (n > 0) {
    ssize_t k = write(w->fd, c, n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return fs_errno(errno, "cannot write", w->f->root, w->key);
    c += k;
    n -= (size_t)k;
    w->size += (uint64_t)k;
  }
  return KD_OK;
}

uint64_t fsstore_writer_size(const fsstore_writer *w) { return w->size; }

static void fs_writer_free(fsstore_writer *w, bool remove_tmp) {
  if (w->fd >= 0) close(w->fd);
  if (remove_tmp && w->dirfd >= 0) unlinkat(w->dirfd, w->tmp, 0);
  if (w->dirfd >= 0) close(w->dirfd);
  if (remove_tmp) fs_prune(w->f, w->key);
  free(w->key);
  free(w);
}

/* Put the temporary file in place only if nothing is under the key: a hard link (EEXIST: taken),
 * or without hard links an O_EXCL claim that the rename then replaces. On KD_OK the key holds
 * our bytes and the temporary name is gone; on failure the key is as it was. */
static kd_rc fs_place_exclusive(fsstore_writer *w) {
  int e = EPERM;
  if (!w->f->no_links) e = linkat(w->dirfd, w->tmp, w->dirfd, w->leaf, 0) == 0 ? 0 : errno;
  if (e == 0) {
    unlinkat(w->dirfd, w->tmp, 0);
    return KD_OK;
  }
  if (e == EEXIST) return kd_fail(KD_ERR_CONFLICT, "cannot create %s/%s: it already exists", w->f->root, w->key);
  if (e != EPERM && e != EOPNOTSUPP && e != ENOSYS) return fs_errno(e, "cannot link into", w->f->root, w->key);
  /* no hard links here (some FUSE and network filesystems): claim the name, then replace the claim */
  int fd = openat(w->dirfd, w->leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, FS_FILE_MODE);
  if (fd < 0) {
    e = errno;
    return e == EEXIST ? kd_fail(KD_ERR_CONFLICT, "cannot create %s/%s: it already exists", w->f->root, w->key)
                       : fs_errno(e, "cannot create", w->f->root, w->key);
  }
  close(fd);
  if (renameat(w->dirfd, w->tmp, w->dirfd, w->leaf) < 0) {
    kd_rc rc = fs_errno(errno, "cannot rename into", w->f->root, w->key);
    unlinkat(w->dirfd, w->leaf, 0); /* our empty claim */
    return rc;
  }
  return KD_OK;
}

/* fsync and close the temporary file, put it under the key (replacing, or only if absent),
 * fsync the directory; frees w. */
static kd_rc fs_writer_finish(fsstore_writer *w, bool exclusive) {
  kd_rc rc = fs_cancelled(w->f);
  if (rc != KD_OK) goto fail;
  if (fsync(w->fd) < 0) {
    rc = fs_errno(errno, "cannot sync", w->f->root, w->key);
    goto fail;
  }
  int fd = w->fd;
  w->fd = -1;
  if (close(fd) < 0) {
    rc = fs_errno(errno, "cannot close", w->f->root, w->key);
    goto fail;
  }
  if (exclusive) {
    if ((rc = fs_place_exclusive(w)) != KD_OK) goto fail;
  } else if (renameat(w->dirfd, w->tmp, w->dirfd, w->leaf) < 0) {
    int e = errno;
    rc = e == EISDIR || e == ENOTEMPTY || e == EEXIST
             ? kd_fail(KD_ERR_CONFLICT, "cannot write %s/%s: a directory has that name", w->f->root, w->key)
             : fs_errno(e, "cannot rename into", w->f->root, w->key);
    goto fail;
  }
  if (fsync(w->dirfd) < 0) {
    /* the object is in place; only its durability is in doubt: report, do not remove it */
    rc = fs_errno(errno, "cannot sync the directory of", w->f->root, w->key);
    fs_writer_free(w, false);
    return rc;
  }
  fs_writer_free(w, false);
  return KD_OK;
fail:
  fs_writer_free(w, true);
  return rc;
}

kd_rc fsstore_writer_commit(fsstore_writer *w) { return fs_writer_finish(w, false); }

void fsstore_writer_abort(fsstore_writer *w) {
  if (w) fs_writer_free(w, true);
}

/* Write p whole through a writer; exclusive: put_new's link instead of a rename. */
static kd_rc fs_put(fsstore *f, const char *key, const void *p, size_t n, bool exclusive) {
  fsstore_writer *w;
  kd_rc rc = fsstore_writer_open(f, key, &w);
  if (rc != KD_OK) return rc;
  if ((rc = fsstore_writer_write(w, p, n)) != KD_OK) {
    fsstore_writer_abort(w);
    return rc;
  }
  return fs_writer_finish(w, exclusive);
}

kd_rc fsstore_put(fsstore *f, const char *key, const void *p, size_t n) { return fs_put(f, key, p, n, false); }

kd_rc fsstore_put_new(fsstore *f, const char *key, const void *p, size_t n) { return fs_put(f, key, p, n, true); }

/* ---- reads ---- */

/* Open key's file for reading; KD_ERR_NOTFOUND unless it is a regular file. */
static kd_rc fs_open_object(const fsstore *f, const char *key, int *fdout, uint64_t *size) {
  int dirfd;
  const char *leaf;
  kd_rc rc = fs_open_parent(f, key, false, &dirfd, &leaf);
  if (rc != KD_OK) return rc;
  int fd = openat(dirfd, leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  int e = errno;
  close(dirfd);
  if (fd < 0) {
    if (e == ELOOP) return kd_fail(KD_ERR_INVALID, "%s/%s is a symbolic link, not an object", f->root, key);
    return e == ENOENT || e == ENOTDIR ? kd_fail(KD_ERR_NOTFOUND, "no object %s/%s", f->root, key)
                                       : fs_errno(e, "cannot open", f->root, key);
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return kd_fail(KD_ERR_NOTFOUND, "no object %s/%s (not a regular file)", f->root, key);
  }
  if (size) *size = (uint64_t)st.st_size;
  *fdout = fd;
  return KD_OK;
}

kd_rc fsstore_get(fsstore *f, const char *key, objstore_sink_fn fn, void *ud) {
  int fd = -1;
  char *buf = NULL;
  kd_rc rc = fs_cancelled(f);
  if (rc != KD_OK || (rc = fs_open_object(f, key, &fd, NULL)) != KD_OK) return rc;
  if (!(buf = malloc(FS_CHUNK))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  for (;;) {
    if ((rc = fs_cancelled(f)) != KD_OK) goto fail;
    ssize_t n = read(fd, buf, FS_CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = fs_errno(errno, "cannot read", f->root, key);
      goto fail;
    }
    if (n == 0) break;
    if ((rc = fn(buf, (size_t)n, ud)) != KD_OK) goto fail;
  }
fail:
  free(buf);
  close(fd);
  return rc;
}

kd_rc fsstore_head(fsstore *f, const char *key, uint64_t *size) {
  int fd;
  kd_rc rc = fs_cancelled(f);
  if (rc != KD_OK || (rc = fs_open_object(f, key, &fd, size)) != KD_OK) return rc;
  close(fd);
  return KD_OK;
}

kd_rc fsstore_delete(fsstore *f, const char *key) {
  int dirfd;
  const char *leaf;
  kd_rc rc = fs_cancelled(f);
  if (rc != KD_OK) return rc;
  rc = fs_open_parent(f, key, false, &dirfd, &leaf);
  if (rc == KD_ERR_NOTFOUND) { /* no such key is fine; no root is not */
    int fd = fs_open_root(f);
    if (fd < 0) return fs_root_error(f, errno);
    close(fd);
    kd_clear_error();
    return KD_OK;
  }
  if (rc != KD_OK) return rc;
  /* a directory of that name is not an object: nothing to delete */
  if (unlinkat(dirfd, leaf, 0) < 0 && errno != ENOENT && errno != EISDIR) {
    rc = fs_errno(errno, "cannot delete", f->root, key);
    close(dirfd);
    return rc;
  }
  fsync(dirfd);
  close(dirfd);
  fs_prune(f, key);
  return KD_OK;
}

/* ---- listing ---- */

struct fs_ent {
  char *name;
  bool dir;
  uint64_t size;
};

static int fs_ent_cmp(const void *a, const void *b) {
  /* byte order of the keys: a directory's keys all start with "name/" */
  const struct fs_ent *x = a, *y = b;
  const unsigned char *p = (const unsigned char *)x->name, *q = (const unsigned char *)y->name;
  for (;; p++, q++) {
    int cp = *p ? *p : (x->dir ? '/' : 0), cq = *q ? *q : (y->dir ? '/' : 0);
    if (cp != cq || cp == 0 || cp == '/') {
      if (cp == cq) return 0; /* both ended the same way: same name (cannot happen) */
      return cp - cq;
    }
  }
}

struct fs_list {
  fsstore *f;
  const char *prefix;
  size_t plen;
  char delim;
  objstore_list_fn fn;
  void *ud;
  kd_buf path; /* key of the current directory, "" or "a/b/" */
};

static bool fs_hidden(const char *name) {
  return strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
         strncmp(name, FSSTORE_TMP_PREFIX, strlen(FSSTORE_TMP_PREFIX)) == 0;
}

/* Read a directory's objects and subdirectories (no symbolic links, no temporary files),
 * sorted. fd stays the caller's. */
static kd_rc fs_read_dir(struct fs_list *c, int fd, struct fs_ent **out, size_t *nout) {
  kd_rc rc = KD_OK;
  struct fs_ent *e = NULL;
  size_t n = 0, alloc = 0;
  int dfd = dup(fd);
  DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
  if (!d) {
    rc = fs_errno(errno, "cannot list", c->f->root, c->path.data ? c->path.data : "");
    if (dfd >= 0) close(dfd);
    goto fail;
  }
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) rc = fs_errno(errno, "cannot list", c->f->root, c->path.data ? c->path.data : "");
      break;
    }
    if (fs_hidden(de->d_name)) continue;
    struct stat st;
    if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue; /* removed meanwhile */
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) continue;      /* symlinks, devices, ... */
    if (n == alloc) {
      if (alloc >= FS_MAX_DIR_ENTRIES) {
        rc = kd_fail(KD_ERR_TOOBIG, "directory %s/%s has more than %u entries", c->f->root,
                     c->path.data ? c->path.data : "", FS_MAX_DIR_ENTRIES);
        break;
      }
      size_t na = alloc ? alloc * 2 : 64;
      struct fs_ent *ne = realloc(e, na * sizeof *ne);
      if (!ne) {
        rc = kd_fail(KD_ERR_NOMEM, "out of memory listing a directory");
        break;
      }
      e = ne;
      alloc = na;
    }
    if (!(e[n].name = kd_strdup(de->d_name))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory listing a directory");
      break;
    }
    e[n].dir = S_ISDIR(st.st_mode);
    e[n].size = (uint64_t)st.st_size;
    n++;
  }
  closedir(d);
  if (rc != KD_OK) goto fail;
  if (n > 1) qsort(e, n, sizeof *e, fs_ent_cmp);
  *out = e;
  *nout = n;
  return KD_OK;
fail:
  for (size_t i = 0; i < n; i++) free(e[i].name);
  free(e);
  return rc;
}

static void fs_free_ents(struct fs_ent *e, size_t n) {
  for (size_t i = 0; i < n; i++) free(e[i].name);
  free(e);
}

/* True when the directory name under parent holds at least one object, at any depth. */
static bool fs_has_object(int parent, const char *name, int depth) {
  if (depth > FS_MAX_KEY / 2) return false; /* deeper than any key can be */
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return false;
  }
  bool found = false;
  struct dirent *de;
  while (!found && (de = readdir(d))) {
    if (fs_hidden(de->d_name)) continue;
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
    if (S_ISREG(st.st_mode)) found = true;
    else if (S_ISDIR(st.st_mode)) found = fs_has_object(dirfd(d), de->d_name, depth + 1);
  }
  closedir(d);
  return found;
}

/* List directory fd (whose key is c->path); takes ownership of fd. One descriptor per level is
 * open at a time (keys are at most FS_MAX_KEY bytes, so depth is bounded). */
static kd_rc fs_list_dir(struct fs_list *c, int fd, int depth) {
  struct fs_ent *e = NULL;
  size_t n = 0;
  size_t base = c->path.len;
  kd_rc rc = fs_read_dir(c, fd, &e, &n);
  if (rc != KD_OK) goto fail;
  for (size_t i = 0; i < n; i++) {
    if ((rc = fs_cancelled(c->f)) != KD_OK) goto fail;
    c->path.len = base;
    if ((rc = kd_buf_adds(&c->path, e[i].name)) != KD_OK || (e[i].dir && (rc = kd_buf_add(&c->path, "/", 1)) != KD_OK))
      goto fail;
    const char *full = c->path.data;
    size_t flen = c->path.len;
    size_t m = flen < c->plen ? flen : c->plen;
    if (memcmp(full, c->prefix, m) != 0) continue; /* neither inside nor above the prefix */
    if (!e[i].dir) {
      if (flen >= c->plen && (rc = c->fn(full, false, e[i].size, c->ud)) != KD_OK) goto fail;
      continue;
    }
    if (flen > c->plen && c->delim == '/') { /* a "folder" below the prefix: one common prefix */
      if (fs_has_object(fd, e[i].name, depth + 1) && (rc = c->fn(full, true, 0, c->ud)) != KD_OK) goto fail;
      continue;
    }
    if (flen > FS_MAX_KEY) continue;
    /* descend: the prefix goes deeper, or no delimiter */
    int sub = openat(fd, e[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) continue; /* removed or replaced by a link meanwhile */
    if ((rc = fs_list_dir(c, sub, depth + 1)) != KD_OK) goto fail;
  }
fail:
  close(fd);
  c->path.len = base;
  if (c->path.data) c->path.data[base] = '\0';
  fs_free_ents(e, n);
  return rc;
}

kd_rc fsstore_list(fsstore *f, const char *prefix, char delimiter, objstore_list_fn fn, void *ud) {
  if (delimiter != '\0' && delimiter != '/')
    return kd_fail(KD_ERR_INVALID, "the filesystem store lists with delimiter '/' or none, not '%c'", delimiter);
  kd_rc rc = fs_cancelled(f);
  if (rc != KD_OK) return rc;
  int fd = fs_open_root(f);
  if (fd < 0) return fs_root_error(f, errno);
  struct fs_list c = {f, prefix ? prefix : "", 0, delimiter, fn, ud, KD_BUF_INIT(FS_MAX_KEY + NAME_MAX + 2)};
  c.plen = strlen(c.prefix);
  rc = kd_buf_add(&c.path, "", 0);
  if (rc == KD_OK) rc = fs_list_dir(&c, fd, 0);
  else close(fd);
  kd_buf_free(&c.path);
  return rc;
}
