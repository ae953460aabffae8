/* diff.c — unified line diffs of two object versions (see diff.h).
 *
 * The edit script: the common head and tail are taken off first (most changes to an object are
 * a few lines in one place), then Myers' greedy O((N+M)·D) algorithm finds a shortest script of
 * the middle, remembering the furthest point of every diagonal after each step to walk back
 * from the end (memory D², hence the DIFF_MAX_EDITS cap). */
#include "diff.h"

#include <stdlib.h>
#include <string.h>

void diff_strip_server(json_t *obj) {
  static const char *const drop[] = {"resourceVersion", "uid", "generation", "creationTimestamp", "selfLink", "managedFields"};
  if (!json_is_object(obj)) return;
  json_t *md = json_object_get(obj, "metadata");
  for (size_t i = 0; i < KD_ARRAY_LEN(drop); i++) json_object_del(md, drop[i]);
  json_object_del(obj, "status");
}

char *diff_render(json_t *obj) {
  if (!obj) return strdup("");
  char *s = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  if (!s) return NULL;
  size_t n = strlen(s);
  char *t = realloc(s, n + 2);
  if (!t) {
    free(s);
    return NULL;
  }
  t[n] = '\n', t[n + 1] = '\0';
  return t;
}

/* one side: its lines as (start, length) into the text */
struct dl_side {
  const char *text;
  size_t *start, *len;
  size_t n;
};

static kd_rc dl_split(const char *text, struct dl_side *s) {
  size_t n = 0, cap = 0;
  s->text = text;
  s->start = s->len = NULL;
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t l = nl ? (size_t)(nl - p) : strlen(p);
    if (n == cap) {
      if (n >= DIFF_MAX_LINES) return kd_fail(KD_ERR_TOOBIG, "more than %d lines to compare", DIFF_MAX_LINES);
      size_t nc = cap ? cap * 2 : 64;
      size_t *a = realloc(s->start, nc * sizeof *a);
      if (!a) return kd_fail(KD_ERR_NOMEM, "out of memory");
      s->start = a;
      size_t *b = realloc(s->len, nc * sizeof *b);
      if (!b) return kd_fail(KD_ERR_NOMEM, "out of memory");
      s->len = b;
      cap = nc;
    }
    s->start[n] = (size_t)(p - text), s->len[n] = l, n++;
    p += l + (nl ? 1 : 0);
  }
  s->n = n;
  return KD_OK;
}

static bool dl_eq(const struct dl_side *a, size_t i, const struct dl_side *b, size_t j) {
  return a->len[i] == b->len[j] && memcmp(a->text + a->start[i], b->text + b->start[j], a->len[i]) == 0;
}

/* the script: one op per output line, ' ' (a[i] == b[j]), '-' (a[i]) or '+' (b[j]) */
struct dl_op {
  char kind;
  size_t i, j; /* line of a (' ', '-') and of b (' ', '+') */
};

struct dl_script {
  struct dl_op *ops;
  size_t n, cap;
};

static kd_rc dl_push(struct dl_script *s, char kind, size_t i, size_t j) {
  if (s->n == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 64;
    struct dl_op *o = realloc(s->ops, nc * sizeof *o);
    if (!o) return kd_fail(KD_ERR_NOMEM, "out of memory");
    s->ops = o, s->cap = nc;
  }
  s->ops[s->n++] = (struct dl_op){kind, i, j};
  return KD_OK;
}

/* Myers on a[lo_a, hi_a) and b[lo_b, hi_b): ops appended in order. Returns KD_ERR_TOOBIG
 * (message-less, the caller falls back) when more than DIFF_MAX_EDITS edits are needed. */
static kd_rc dl_myers(const struct dl_side *a, size_t lo_a, size_t hi_a, const struct dl_side *b, size_t lo_b, size_t hi_b,
                      struct dl_script *out) {
  long n = (long)(hi_a - lo_a), m = (long)(hi_b - lo_b), max = n + m;
  if (max > DIFF_MAX_EDITS) max = DIFF_MAX_EDITS;
  long *v = calloc((size_t)(2 * max + 3), sizeof *v);            /* v[k + max + 1] */
  long *trace = malloc((size_t)(max + 1) * (size_t)(max + 1) * sizeof *trace); /* step d: k in [-d, d] at d*d */
  struct dl_op *rev = NULL;
  kd_rc rc = KD_OK;
  long dend = -1;
  if (!v || !trace) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto done;
  }
#define V(k) v[(k) + max + 1]
  for (long d = 0; d <= max && dend < 0; d++) {
    for (long k = -d; k <= d; k += 2) {
      long x = (k == -d || (k != d && V(k - 1) < V(k + 1))) ? V(k + 1) : V(k - 1) + 1;
      long y = x - k;
      while (x < n && y < m && dl_eq(a, lo_a + (size_t)x, b, lo_b + (size_t)y)) x++, y++;
      V(k) = x;
      if (x >= n && y >= m) dend = d;
    }
    for (long k = -d; k <= d; k++) trace[d * d + (k + d)] = V(k);
  }
#undef V
  if (dend < 0) {
    rc = KD_ERR_TOOBIG;
    goto done;
  }
  /* walk back from (n, m): ops in reverse */
  size_t nrev = 0;
  if (!(rev = malloc((size_t)(n + m + 1) * sizeof *rev))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto done;
  }
  long x = n, y = m;
  for (long d = dend; d > 0; d--) {
    long k = x - y;
#define T(dd, kk) trace[(dd) * (dd) + ((kk) + (dd))]
    long pk = (k == -d || (k != d && T(d - 1, k - 1) < T(d - 1, k + 1))) ? k + 1 : k - 1;
    long px = T(d - 1, pk), py = px - pk;
#undef T
    long sx = pk == k + 1 ? px : px + 1; /* where the edit of step d ends, before its snake */
    while (x > sx) x--, y--, rev[nrev++] = (struct dl_op){' ', lo_a + (size_t)x, lo_b + (size_t)y};
    if (pk == k + 1) rev[nrev++] = (struct dl_op){'+', lo_a + (size_t)px, lo_b + (size_t)py};
    else rev[nrev++] = (struct dl_op){'-', lo_a + (size_t)px, lo_b + (size_t)py};
    x = px, y = py;
  }
  while (x > 0) x--, y--, rev[nrev++] = (struct dl_op){' ', lo_a + (size_t)x, lo_b + (size_t)y};
  while (nrev > 0 && !rc) {
    nrev--;
    rc = dl_push(out, rev[nrev].kind, rev[nrev].i, rev[nrev].j);
  }
done:
  free(rev);
  free(trace);
  free(v);
  return rc;
}

static kd_rc dl_range(kd_buf *out, size_t start, size_t len) {
  /* diff -u: "l,n"; "l" when n is 1; an empty range names the line before it */
  if (len == 1) return kd_buf_addf(out, "%zu", start + 1);
  return kd_buf_addf(out, "%zu,%zu", len ? start + 1 : start, len);
}

static kd_rc dl_line(kd_buf *out, char kind, const struct dl_side *s, size_t i) {
  kd_rc rc = kd_buf_add(out, &kind, 1);
  if (!rc) rc = kd_buf_add(out, s->text + s->start[i], s->len[i]);
  if (!rc) rc = kd_buf_add(out, "\n", 1);
  return rc;
}

kd_rc diff_text(const char *a, const char *b, const char *label_a, const char *label_b, int context, kd_buf *out) {
  struct dl_side sa = {0}, sb = {0};
  struct dl_script s = {0};
  kd_rc rc;
  if (context < 0) context = 0;
  if ((rc = dl_split(a, &sa)) || (rc = dl_split(b, &sb))) goto done;
  size_t head = 0, tail = 0;
  while (head < sa.n && head < sb.n && dl_eq(&sa, head, &sb, head)) head++;
  while (tail < sa.n - head && tail < sb.n - head && dl_eq(&sa, sa.n - 1 - tail, &sb, sb.n - 1 - tail)) tail++;
  if (head == sa.n && head == sb.n) goto done; /* equal */
  for (size_t i = 0; i < head && !rc; i++) rc = dl_push(&s, ' ', i, i);
  if (rc) goto done;
  rc = dl_myers(&sa, head, sa.n - tail, &sb, head, sb.n - tail, &s);
  if (rc == KD_ERR_TOOBIG) { /* too many edits: the middle removed, then added */
    rc = KD_OK;
    for (size_t i = head; i < sa.n - tail && !rc; i++) rc = dl_push(&s, '-', i, head);
    for (size_t j = head; j < sb.n - tail && !rc; j++) rc = dl_push(&s, '+', sa.n - tail, j);
  }
  for (size_t t = tail; t > 0 && !rc; t--) rc = dl_push(&s, ' ', sa.n - t, sb.n - t);
  if (rc) goto done;
  if ((rc = kd_buf_addf(out, "--- %s\n+++ %s\n", label_a, label_b))) goto done;
  /* hunks: a change with its context; two changes whose contexts meet share a hunk */
  size_t ctx = (size_t)context;
  for (size_t p = 0; p < s.n;) {
    if (s.ops[p].kind == ' ') {
      p++;
      continue;
    }
    size_t from = p > ctx ? p - ctx : 0, last = p; /* last: the hunk's last change */
    for (size_t q = p + 1; q < s.n; q++) {
      if (s.ops[q].kind == ' ') continue;
      if (q - last - 1 > 2 * ctx) break;
      last = q;
    }
    size_t to = last + 1 + ctx < s.n ? last + 1 + ctx : s.n; /* exclusive */
    size_t na = 0, nb = 0;
    for (size_t q = from; q < to; q++) {
      if (s.ops[q].kind != '+') na++;
      if (s.ops[q].kind != '-') nb++;
    }
    if ((rc = kd_buf_adds(out, "@@ -")) || (rc = dl_range(out, s.ops[from].i, na)) || (rc = kd_buf_adds(out, " +")) ||
        (rc = dl_range(out, s.ops[from].j, nb)) || (rc = kd_buf_adds(out, " @@\n")))
      goto done;
    for (size_t q = from; q < to && !rc; q++)
      rc = s.ops[q].kind == '+' ? dl_line(out, '+', &sb, s.ops[q].j) : dl_line(out, s.ops[q].kind, &sa, s.ops[q].i);
    if (rc) goto done;
    p = to;
  }
done:
  free(sa.start);
  free(sa.len);
  free(sb.start);
  free(sb.len);
  free(s.ops);
  return rc;
}

kd_rc diff_objects(json_t *a, json_t *b, const char *label_a, const char *label_b, kd_buf *out, bool *changed) {
  json_t *ca = a ? json_deep_copy(a) : NULL, *cb = b ? json_deep_copy(b) : NULL;
  char *ta = NULL, *tb = NULL;
  kd_rc rc = KD_OK;
  if ((a && !ca) || (b && !cb)) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto done;
  }
  diff_strip_server(ca);
  diff_strip_server(cb);
  if (changed) *changed = !(ca && cb ? json_equal(ca, cb) : ca == cb);
  if (!(ta = diff_render(ca)) || !(tb = diff_render(cb))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto done;
  }
  rc = diff_text(ta, tb, label_a, label_b, DIFF_CONTEXT, out);
done:
  free(ta);
  free(tb);
  json_decref(ca);
  json_decref(cb);
  return rc;
}
