/* resmod.c — Velero's resource modifiers (see resmod.h): the ConfigMap decoded as Velero's
 * yaml.UnmarshalStrict decodes it, validated as Validate() does, and applied as
 * ApplyResourceModifierRules does. */
#include "resmod.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "jsonpatch.h"
#include "yamljson.h"

#define RM_MAX_YAML (4u << 20)   /* a ConfigMap holds at most 1 MiB; leave room */
#define RM_MAX_TEXT (16u << 20)  /* one patch text */
#define RM_MAX_ERRS (64u << 10)  /* collected failure messages of one object */

typedef struct rm_s {
  char *s;
  size_t n;
} rm_s;

typedef struct rm_jpatch {
  rm_s op, from, path, value;
} rm_jpatch;

/* ---------------------------------------------------------------- gobwas/glob */

enum { GI_CHAR, GI_ANY, GI_SUPER, GI_SINGLE, GI_LIST, GI_RANGE, GI_SPLIT, GI_JMP, GI_MATCH };

typedef struct gl_ins {
  int op;
  unsigned r, lo, hi;   /* GI_CHAR rune; GI_RANGE bounds */
  bool not;             /* GI_LIST, GI_RANGE */
  unsigned *list;       /* GI_LIST runes */
  size_t nlist;
  size_t *to;           /* GI_SPLIT targets; GI_JMP to[0] */
  size_t nto;
} gl_ins;

typedef struct glob_prog {
  gl_ins *ins;
  size_t n, cap;
  unsigned sep; /* 0: none */
} glob_prog;

static void gl_free(glob_prog *g) {
  if (!g) return;
  for (size_t i = 0; i < g->n; i++) {
    free(g->ins[i].list);
    free(g->ins[i].to);
  }
  free(g->ins);
  free(g);
}

static kd_rc gl_emit(glob_prog *g, int op, size_t *at) {
  if (g->n == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 16;
    if (cap > 1u << 20) return kd_fail(KD_ERR_TOOBIG, "glob pattern too long");
    gl_ins *ins = realloc(g->ins, cap * sizeof *ins);
    if (!ins) return kd_fail(KD_ERR_NOMEM, "glob: out of memory");
    g->ins = ins;
    g->cap = cap;
  }
  memset(&g->ins[g->n], 0, sizeof g->ins[g->n]);
  g->ins[g->n].op = op;
  if (at) *at = g->n;
  g->n++;
  return KD_OK;
}

static kd_rc gl_add_to(glob_prog *g, size_t at, size_t target) {
  gl_ins *in = &g->ins[at];
  size_t *to = realloc(in->to, (in->nto + 1) * sizeof *to);
  if (!to) return kd_fail(KD_ERR_NOMEM, "glob: out of memory");
  to[in->nto++] = target;
  in->to = to;
  return KD_OK;
}

/* The gobwas lexer: runes of the pattern (a NUL is its end), U+FFFD or bad UTF-8 an error. */
typedef struct gl_lex {
  const unsigned char *s;
  size_t n, pos;
  int terms;
} gl_lex;

#define GL_EOF 0u
#define GL_BAD 0xffffffffu

/* One UTF-8 rune of s[0..left) (left > 0): its code point and width, GL_BAD for a bad sequence. */
static unsigned gl_rune(const unsigned char *s, size_t left, size_t *w) {
  unsigned c = s[0], cp;
  size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
  *w = 1;
  if (len == 0 || c >= 0xf5 || len > left) return GL_BAD;
  for (size_t k = 1; k < len; k++)
    if ((s[k] & 0xc0) != 0x80) return GL_BAD;
  if (len == 1) cp = c;
  else if (len == 2) cp = ((c & 0x1f) << 6) | (s[1] & 0x3f);
  else if (len == 3) cp = ((c & 0x0f) << 12) | ((unsigned)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
  else cp = ((c & 0x07) << 18) | ((unsigned)(s[1] & 0x3f) << 12) | ((unsigned)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
  if ((len == 2 && cp < 0x80) || (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return GL_BAD;
  *w = len;
  return cp;
}

/* The next rune of the pattern without consuming it: GL_EOF (width 0) at the end, GL_BAD for
 * bad UTF-8 and for U+FFFD (gobwas takes utf8.RuneError for an error). */
static unsigned gl_peek(const gl_lex *l, size_t *w) {
  *w = 0;
  if (l->pos >= l->n) return GL_EOF;
  unsigned cp = gl_rune(l->s + l->pos, l->n - l->pos, w); /* a NUL is GL_EOF of width 1 */
  if (cp == GL_BAD || cp == 0xfffd) {
    *w = 0;
    return GL_BAD;
  }
  return cp;
}

static kd_rc gl_read(gl_lex *l, unsigned *r) {
  size_t w;
  *r = gl_peek(l, &w);
  if (*r == GL_BAD) return kd_fail(KD_ERR_INVALID, "could not read rune");
  l->pos += w;
  return KD_OK;
}

typedef struct gl_text {
  unsigned *r;
  size_t n, cap;
} gl_text;

static kd_rc gl_text_add(gl_text *t, unsigned r) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    unsigned *nr = realloc(t->r, cap * sizeof *nr);
    if (!nr) return kd_fail(KD_ERR_NOMEM, "glob: out of memory");
    t->r = nr;
    t->cap = cap;
  }
  t->r[t->n++] = r;
  return KD_OK;
}

/* fetchText: runes up to an unescaped breaker (left unread) or the end; '\' escapes one rune. */
static kd_rc gl_fetch_text(gl_lex *l, const char *breakers, gl_text *t) {
  bool escaped = false;
  for (;;) {
    size_t before = l->pos;
    unsigned r;
    kd_rc rc = gl_read(l, &r);
    if (rc != KD_OK) return rc;
    if (r == GL_EOF) return KD_OK; /* the end, or a NUL: it ends the text and is gone */
    if (!escaped) {
      if (r == '\\') {
        escaped = true;
        continue;
      }
      if (r < 0x80 && strchr(breakers, (int)r)) {
        l->pos = before;
        return KD_OK;
      }
    }
    escaped = false;
    if ((rc = gl_text_add(t, r)) != KD_OK) return rc;
  }
}

/* A character class after '[': one range lo-hi or a list of runes, '!' first for negation. */
static kd_rc gl_class(glob_prog *g, gl_lex *l) {
  bool not = false, seen_not = false, want_hi = false;
  unsigned lo = 0, hi = 0;
  gl_text chars = {0};
  kd_rc rc = KD_OK;
  for (;;) {
    unsigned r;
    if ((rc = gl_read(l, &r)) != KD_OK) goto fail;
    if (r == GL_EOF) {
      rc = kd_fail(KD_ERR_INVALID, "unexpected end of input");
      goto fail;
    }
    if (want_hi) {
      hi = r;
      unsigned c;
      if ((rc = gl_read(l, &c)) != KD_OK) goto fail;
      if (c == GL_EOF) {
        rc = kd_fail(KD_ERR_INVALID, "unexpected end of input");
        goto fail;
      }
      if (c != ']') {
        rc = kd_fail(KD_ERR_INVALID, "expected close range character");
        goto fail;
      }
      if (hi < lo) {
        rc = kd_fail(KD_ERR_INVALID, "hi character should be greater than lo");
        goto fail;
      }
      break;
    }
    if (!seen_not && r == '!') {
      not = seen_not = true;
      continue;
    }
    size_t w;
    unsigned nx = gl_peek(l, &w);
    if (nx == GL_BAD) {
      rc = kd_fail(KD_ERR_INVALID, "could not read rune");
      goto fail;
    }
    if (nx == '-') {
      l->pos += w;
      lo = r;
      want_hi = true;
      continue;
    }
    /* unread r and take text up to ']' */
    l->pos -= (r < 0x80 ? 1 : r < 0x800 ? 2 : r < 0x10000 ? 3 : 4);
    if ((rc = gl_fetch_text(l, "]", &chars)) != KD_OK) goto fail;
    unsigned c;
    if ((rc = gl_read(l, &c)) != KD_OK) goto fail;
    if (c == GL_EOF) {
      rc = kd_fail(KD_ERR_INVALID, "unexpected end of input");
      goto fail;
    }
    if (c != ']') { /* cannot happen: text stops only at ']' or the end */
      rc = kd_fail(KD_ERR_INVALID, "expected close range character");
      goto fail;
    }
    if (chars.n == 0) {
      rc = kd_fail(KD_ERR_INVALID, "could not parse range");
      goto fail;
    }
    break;
  }
  size_t at;
  if (want_hi) {
    if ((rc = gl_emit(g, GI_RANGE, &at)) != KD_OK) goto fail;
    g->ins[at].lo = lo, g->ins[at].hi = hi, g->ins[at].not = not;
    free(chars.r);
    return KD_OK;
  }
  if ((rc = gl_emit(g, GI_LIST, &at)) != KD_OK) goto fail;
  g->ins[at].list = chars.r, g->ins[at].nlist = chars.n, g->ins[at].not = not;
  return KD_OK;
fail:
  free(chars.r);
  return rc;
}

/* One pattern up to the end, or (inside braces) up to ',' or '}' (left unread). Alternatives
 * {a,b} become a split whose branches jump to what follows. */
static kd_rc gl_pattern(glob_prog *g, gl_lex *l, int depth) {
  kd_rc rc;
  if (depth > 1000) return kd_fail(KD_ERR_INVALID, "glob pattern nested deeper than 1000 braces");
  for (;;) {
    size_t before = l->pos, at;
    unsigned r;
    if ((rc = gl_read(l, &r)) != KD_OK) return rc;
    if (r == GL_EOF) { /* the end, or a NUL where a token starts: gobwas stops there */
      l->pos = l->n;
      return KD_OK;
    }
    if (l->terms > 0 && (r == ',' || r == '}')) {
      l->pos = before;
      return KD_OK;
    }
    if (r == '{') {
      l->terms++;
      size_t split, njmp = 0, *jmps = NULL;
      if ((rc = gl_emit(g, GI_SPLIT, &split)) != KD_OK) return rc;
      for (;;) {
        size_t *nj = realloc(jmps, (njmp + 1) * sizeof *nj);
        if (!nj) {
          rc = kd_fail(KD_ERR_NOMEM, "glob: out of memory");
          break;
        }
        jmps = nj;
        if ((rc = gl_add_to(g, split, g->n)) != KD_OK) break;
        if ((rc = gl_pattern(g, l, depth + 1)) != KD_OK) break;
        if ((rc = gl_emit(g, GI_JMP, &jmps[njmp++])) != KD_OK) break;
        unsigned c;
        if ((rc = gl_read(l, &c)) != KD_OK) break;
        if (c == ',') continue;
        if (c == '}') l->terms--;
        break; /* '}' or the end: an unclosed '{' is accepted */
      }
      for (size_t k = 0; rc == KD_OK && k < njmp; k++) rc = gl_add_to(g, jmps[k], g->n);
      free(jmps);
      if (rc != KD_OK) return rc;
      continue;
    }
    if (r == '[') {
      if ((rc = gl_class(g, l)) != KD_OK) return rc;
      continue;
    }
    if (r == '?') {
      if ((rc = gl_emit(g, GI_SINGLE, NULL)) != KD_OK) return rc;
      continue;
    }
    if (r == '*') {
      size_t w;
      unsigned nx = gl_peek(l, &w);
      if (nx == '*') l->pos += w;
      if ((rc = gl_emit(g, nx == '*' || g->sep == 0 ? GI_SUPER : GI_ANY, NULL)) != KD_OK) return rc;
      continue;
    }
    l->pos = before;
    gl_text t = {0};
    rc = gl_fetch_text(l, l->terms > 0 ? "?*[{}," : "?*[{", &t);
    for (size_t k = 0; rc == KD_OK && k < t.n; k++) {
      if ((rc = gl_emit(g, GI_CHAR, &at)) == KD_OK) g->ins[at].r = t.r[k];
    }
    free(t.r);
    if (rc != KD_OK) return rc;
  }
}

static kd_rc gl_compile(const char *pattern, size_t plen, char sep, glob_prog **out) {
  glob_prog *g = calloc(1, sizeof *g);
  *out = NULL;
  if (!g) return kd_fail(KD_ERR_NOMEM, "glob: out of memory");
  g->sep = (unsigned char)sep;
  gl_lex l = {(const unsigned char *)pattern, plen, 0, 0};
  kd_rc rc = gl_pattern(g, &l, 0);
  if (rc == KD_OK) rc = gl_emit(g, GI_MATCH, NULL);
  if (rc != KD_OK) {
    gl_free(g);
    return rc;
  }
  *out = g;
  return KD_OK;
}

/* Add state i and what it reaches without consuming to the set (mark: generation stamps;
 * stack: room for every state). */
static void gl_addstate(const glob_prog *g, size_t i, size_t *set, size_t *nset, unsigned *mark, unsigned gen,
                        size_t *stack) {
  size_t sp = 0;
  stack[sp++] = i;
  while (sp > 0) {
    size_t k = stack[--sp];
    if (mark[k] == gen) continue;
    mark[k] = gen;
    const gl_ins *in = &g->ins[k];
    if (in->op == GI_JMP) {
      stack[sp++] = in->to[0];
      continue;
    }
    if (in->op == GI_SPLIT) {
      for (size_t j = in->nto; j > 0; j--) stack[sp++] = in->to[j - 1];
      continue;
    }
    set[(*nset)++] = k;
    if (in->op == GI_ANY || in->op == GI_SUPER) stack[sp++] = k + 1;
  }
}

/* Run the program over the runes of s (as Go ranges a string: a bad byte is U+FFFD). */
/* gobwas turns text, "**" (or "*" without separators), text into its PrefixSuffix matcher,
 * which lets the prefix and the suffix overlap ("a*a" matches "a"): Velero matches that way. */
static bool gl_prefix_suffix(const glob_prog *g, const char *s, size_t n, bool *match) {
  size_t i = 0, p0, p1, s0, s1;
  while (i < g->n && g->ins[i].op == GI_CHAR) i++;
  p0 = 0, p1 = i;
  if (p1 == 0 || i >= g->n || g->ins[i].op != GI_SUPER) return false;
  while (i < g->n && g->ins[i].op == GI_SUPER) i++;
  s0 = i;
  while (i < g->n && g->ins[i].op == GI_CHAR) i++;
  s1 = i;
  if (s1 == s0 || i + 1 != g->n || g->ins[i].op != GI_MATCH) return false;
  char buf[8];
  size_t pos = 0, end = n;
  *match = true;
  for (size_t k = p0; k < p1 && *match; k++) { /* prefix, rune by rune */
    size_t w;
    unsigned r = pos < n ? gl_rune((const unsigned char *)s + pos, n - pos, &w) : GL_BAD;
    if (pos >= n || r != g->ins[k].r) *match = false;
    pos += pos < n ? w : 0;
  }
  for (size_t k = s1; k > s0 && *match; k--) { /* suffix, from the end, as bytes */
    unsigned r = g->ins[k - 1].r;
    size_t w = r < 0x80 ? 1 : r < 0x800 ? 2 : r < 0x10000 ? 3 : 4;
    if (w > end) {
      *match = false;
      break;
    }
    /* encode r and compare the last w bytes before end */
    if (w == 1) buf[0] = (char)r;
    else if (w == 2) buf[0] = (char)(0xc0 | (r >> 6)), buf[1] = (char)(0x80 | (r & 0x3f));
    else if (w == 3) buf[0] = (char)(0xe0 | (r >> 12)), buf[1] = (char)(0x80 | ((r >> 6) & 0x3f)), buf[2] = (char)(0x80 | (r & 0x3f));
    else buf[0] = (char)(0xf0 | (r >> 18)), buf[1] = (char)(0x80 | ((r >> 12) & 0x3f)), buf[2] = (char)(0x80 | ((r >> 6) & 0x3f)), buf[3] = (char)(0x80 | (r & 0x3f));
    if (memcmp(s + end - w, buf, w) != 0) *match = false;
    end -= w;
  }
  return true;
}

static kd_rc gl_run(const glob_prog *g, const char *s, size_t n, bool *match) {
  if (gl_prefix_suffix(g, s, n, match)) return KD_OK;
  size_t total = 0;
  for (size_t i = 0; i < g->n; i++) total += 1 + g->ins[i].nto;
  size_t *cur = malloc(g->n * sizeof *cur), *nxt = malloc(g->n * sizeof *nxt), ncur = 0, nnxt;
  size_t *stack = malloc(total * sizeof *stack);
  unsigned *mark = calloc(g->n, sizeof *mark), gen = 1;
  if (!cur || !nxt || !mark || !stack) {
    free(cur), free(nxt), free(mark), free(stack);
    return kd_fail(KD_ERR_NOMEM, "glob: out of memory");
  }
  gl_addstate(g, 0, cur, &ncur, mark, gen, stack);
  size_t pos = 0;
  while (pos < n && ncur > 0) {
    size_t w;
    unsigned r = gl_rune((const unsigned char *)s + pos, n - pos, &w);
    if (r == GL_BAD) r = 0xfffd; /* as Go ranges over a string */
    pos += w;
    gen++;
    nnxt = 0;
    for (size_t k = 0; k < ncur; k++) {
      const gl_ins *in = &g->ins[cur[k]];
      bool ok = false, stay = false;
      switch (in->op) {
      case GI_CHAR: ok = in->r == r; break;
      case GI_ANY: stay = r != g->sep; break;
      case GI_SUPER: stay = true; break;
      case GI_SINGLE: ok = g->sep == 0 || r != g->sep; break;
      case GI_RANGE: ok = (r >= in->lo && r <= in->hi) != in->not; break;
      case GI_LIST: {
        bool in_list = false;
        for (size_t j = 0; j < in->nlist && !in_list; j++) in_list = in->list[j] == r;
        ok = in_list != in->not;
        break;
      }
      default: break;
      }
      if (ok) gl_addstate(g, cur[k] + 1, nxt, &nnxt, mark, gen, stack);
      if (stay) gl_addstate(g, cur[k], nxt, &nnxt, mark, gen, stack);
    }
    size_t *t = cur;
    cur = nxt, nxt = t, ncur = nnxt;
  }
  *match = false;
  if (pos >= n)
    for (size_t k = 0; k < ncur; k++)
      if (g->ins[cur[k]].op == GI_MATCH) *match = true;
  free(cur), free(nxt), free(mark), free(stack);
  return KD_OK;
}

kd_rc resmod_glob_match(const char *pattern, size_t plen, char sep, const char *s, size_t slen, bool *match) {
  glob_prog *g = NULL;
  *match = false;
  kd_rc rc = gl_compile(pattern, plen, sep, &g);
  if (rc != KD_OK) return rc == KD_ERR_NOMEM ? rc : KD_ERR_INVALID;
  rc = gl_run(g, s, slen, match);
  gl_free(g);
  return rc;
}

/* ---------------------------------------------------------------- the rules */

typedef struct rm_glob {
  glob_prog *g; /* NULL: did not compile */
  char *err;
} rm_glob;

typedef struct rm_rule {
  /* as decoded */
  rm_s *ns;
  size_t nns;
  rm_s gr, regex;
  json_t *selector; /* normalised metav1.LabelSelector, NULL when absent */
  rm_s *mpath, *mvalue;
  size_t nmatches;
  rm_jpatch *patches;
  size_t npatches;
  rm_s *merges;
  size_t nmerges;
  size_t nstrategic;
  /* compiled */
  rm_glob *nsglob; /* sorted namespaces up to and including the first that does not compile */
  size_t nnsglob;
  bool ns_all; /* empty list or "*" */
  rm_glob grglob;
  regex_t re;
  bool re_ok;
  char *re_err;
  backup_selector *sel;
  char *sel_err;
} rm_rule;

struct resmod {
  rm_s version;
  rm_rule *rules;
  size_t n;
};

static void rm_s_free(rm_s *s) {
  free(s->s);
  s->s = NULL;
  s->n = 0;
}

static kd_rc rm_s_set(rm_s *d, const char *s, size_t n) {
  char *c = malloc(n + 1);
  if (!c) return kd_fail(KD_ERR_NOMEM, "resource modifiers: out of memory");
  memcpy(c, s, n);
  c[n] = '\0';
  free(d->s);
  d->s = c;
  d->n = n;
  return KD_OK;
}

static void rm_rule_clear(rm_rule *r) {
  for (size_t i = 0; i < r->nns; i++) rm_s_free(&r->ns[i]);
  free(r->ns);
  rm_s_free(&r->gr);
  rm_s_free(&r->regex);
  json_decref(r->selector);
  for (size_t i = 0; i < r->nmatches; i++) rm_s_free(&r->mpath[i]), rm_s_free(&r->mvalue[i]);
  free(r->mpath);
  free(r->mvalue);
  for (size_t i = 0; i < r->npatches; i++) {
    rm_s_free(&r->patches[i].op), rm_s_free(&r->patches[i].from);
    rm_s_free(&r->patches[i].path), rm_s_free(&r->patches[i].value);
  }
  free(r->patches);
  for (size_t i = 0; i < r->nmerges; i++) rm_s_free(&r->merges[i]);
  free(r->merges);
  for (size_t i = 0; i < r->nnsglob; i++) gl_free(r->nsglob[i].g), free(r->nsglob[i].err);
  free(r->nsglob);
  gl_free(r->grglob.g);
  free(r->grglob.err);
  if (r->re_ok) regfree(&r->re);
  free(r->re_err);
  backup_selector_free(r->sel);
  free(r->sel_err);
  memset(r, 0, sizeof *r);
}

void resmod_free(resmod *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n; i++) rm_rule_clear(&m->rules[i]);
  free(m->rules);
  rm_s_free(&m->version);
  free(m);
}

size_t resmod_rules(const resmod *m) { return m ? m->n : 0; }

/* ---------------------------------------------------------------- strict decoding */

/* Velero decodes with sigs.k8s.io/yaml's UnmarshalStrict: YAML to JSON (scalars meant for a
 * string field become strings), then encoding/json with unknown fields refused. Member names
 * match case-insensitively; the JSON it decodes has its keys sorted, so the first problem in
 * sorted order is the one reported, and of two spellings of one field the later one wins. */

static const char *rm_kind(json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER:
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "bool";
  default: return "null";
  }
}

static kd_rc rm_type(json_t *v, const char *where, const char *gotype) {
  return kd_fail(KD_ERR_INVALID, "json: cannot unmarshal %s into Go struct field %s of type %s", rm_kind(v), where,
                 gotype);
}

static bool rm_name_is(const char *k, size_t kl, const char *name) {
  if (kl != strlen(name)) return false;
  for (size_t i = 0; i < kl; i++) {
    int a = (unsigned char)k[i], b = (unsigned char)name[i];
    if (a >= 'A' && a <= 'Z') a += 32;
    if (b >= 'A' && b <= 'Z') b += 32;
    if (a != b) return false;
  }
  return true;
}

typedef struct rm_member {
  const char *k;
  size_t kl;
  json_t *v;
} rm_member;

static int rm_member_cmp(const void *a, const void *b) {
  const rm_member *x = a, *y = b;
  size_t n = x->kl < y->kl ? x->kl : y->kl;
  int c = memcmp(x->k, y->k, n);
  return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

/* The members of o in Go's sorted order; caller frees. */
static kd_rc rm_members(json_t *o, rm_member **out, size_t *n) {
  size_t cnt = json_object_size(o), i = 0;
  rm_member *m = calloc(cnt ? cnt : 1, sizeof *m);
  const char *k;
  size_t kl;
  json_t *v;
  if (!m) return kd_fail(KD_ERR_NOMEM, "resource modifiers: out of memory");
  json_object_keylen_foreach(o, k, kl, v) {
    m[i].k = k, m[i].kl = kl, m[i].v = v;
    i++;
  }
  qsort(m, i, sizeof *m, rm_member_cmp);
  *out = m;
  *n = i;
  return KD_OK;
}

static kd_rc rm_unknown(const char *k, size_t kl) {
  char show[128];
  size_t n = kl < sizeof show - 1 ? kl : sizeof show - 1;
  for (size_t i = 0; i < n; i++) show[i] = (k[i] >= 0x20 && k[i] != 0x7f) ? k[i] : '?';
  show[kd_utf8_cut(show, n)] = '\0';
  return kd_fail(KD_ERR_INVALID, "json: unknown field \"%s\"", show);
}

/* A scalar for a string field, as sigs.k8s.io/yaml converts it; null leaves the field as it was. */
static kd_rc rm_string(json_t *v, const char *where, rm_s *dst) {
  char buf[64];
  switch (json_typeof(v)) {
  case JSON_NULL: return KD_OK;
  case JSON_STRING: return rm_s_set(dst, json_string_value(v), json_string_length(v));
  case JSON_INTEGER:
    snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return rm_s_set(dst, buf, strlen(buf));
  case JSON_REAL:
    jsonpatch_go_gfloat(json_real_value(v), 32, buf, sizeof buf);
    return rm_s_set(dst, buf, strlen(buf));
  case JSON_TRUE: return rm_s_set(dst, "true", 4);
  case JSON_FALSE: return rm_s_set(dst, "false", 5);
  default: return rm_type(v, where, "string");
  }
}

/* A []string field: null empties it, an array replaces it. */
static kd_rc rm_strings(json_t *v, const char *where, rm_s **list, size_t *n) {
  if (json_is_null(v)) {
    for (size_t i = 0; i < *n; i++) rm_s_free(&(*list)[i]);
    free(*list);
    *list = NULL, *n = 0;
    return KD_OK;
  }
  if (!json_is_array(v)) return rm_type(v, where, "[]string");
  size_t cnt = json_array_size(v);
  rm_s *l = calloc(cnt ? cnt : 1, sizeof *l);
  if (!l) return kd_fail(KD_ERR_NOMEM, "resource modifiers: out of memory");
  for (size_t i = 0; i < cnt; i++) {
    kd_rc rc = rm_string(json_array_get(v, i), where, &l[i]);
    if (rc == KD_OK && !l[i].s) rc = rm_s_set(&l[i], "", 0);
    if (rc != KD_OK) {
      for (size_t j = 0; j <= i; j++) rm_s_free(&l[j]);
      free(l);
      return rc;
    }
  }
  rm_strings(json_null(), where, list, n);
  *list = l, *n = cnt;
  return KD_OK;
}

/* A struct field decoded in place: each member to one field of names (case-insensitive), via
 * set(ctx, field index, value). null is a no-op (Go leaves a struct as it was). */
typedef kd_rc (*rm_setter)(void *ctx, int field, json_t *v);

static kd_rc rm_struct(json_t *v, const char *where, const char *gotype, const char *const *names, int nnames,
                       rm_setter set, void *ctx) {
  rm_member *m = NULL;
  size_t n = 0;
  kd_rc rc = KD_OK;
  if (json_is_null(v)) return KD_OK;
  if (!json_is_object(v)) return rm_type(v, where, gotype);
  if ((rc = rm_members(v, &m, &n)) != KD_OK) return rc;
  for (size_t i = 0; rc == KD_OK && i < n; i++) {
    int f = -1;
    for (int k = 0; k < nnames && f < 0; k++)
      if (rm_name_is(m[i].k, m[i].kl, names[k])) f = k;
    rc = f < 0 ? rm_unknown(m[i].k, m[i].kl) : set(ctx, f, m[i].v);
  }
  free(m);
  return rc;
}

/* metav1.LabelSelector, normalised to {"matchLabels": {...}, "matchExpressions": [...]}. */
static kd_rc rm_set_requirement(void *ctx, int f, json_t *v) {
  json_t *req = ctx;
  static const char *const where[] = {"LabelSelectorRequirement.resourceModifierRules.conditions.labelSelector.matchExpressions.key",
                                      "LabelSelectorRequirement.resourceModifierRules.conditions.labelSelector.matchExpressions.operator",
                                      "LabelSelectorRequirement.resourceModifierRules.conditions.labelSelector.matchExpressions.values"};
  static const char *const name[] = {"key", "operator", "values"};
  if (f < 2) {
    rm_s s = {0};
    kd_rc rc = rm_string(v, where[f], &s);
    if (rc == KD_OK && s.s) rc = json_object_set_new(req, name[f], json_stringn(s.s, s.n)) ? kd_fail(KD_ERR_NOMEM, "out of memory") : KD_OK;
    rm_s_free(&s);
    return rc;
  }
  rm_s *l = NULL;
  size_t n = 0;
  kd_rc rc = rm_strings(v, where[2], &l, &n);
  if (rc != KD_OK) return rc;
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < n; i++)
    if (json_array_append_new(arr, json_stringn(l[i].s, l[i].n))) json_decref(arr), arr = NULL;
  rm_strings(json_null(), where[2], &l, &n);
  if (!arr) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return json_object_set_new(req, "values", arr) ? kd_fail(KD_ERR_NOMEM, "out of memory") : KD_OK;
}

static kd_rc rm_set_selector(void *ctx, int f, json_t *v) {
  json_t *sel = ctx;
  if (f == 0) { /* matchLabels: map[string]string, merged into */
    const char *where = "LabelSelector.resourceModifierRules.conditions.labelSelector.matchLabels";
    if (json_is_null(v)) return json_object_del(sel, "matchLabels"), KD_OK;
    if (!json_is_object(v)) return rm_type(v, where, "map[string]string");
    json_t *ml = json_object_get(sel, "matchLabels");
    if (!ml) {
      if (!(ml = json_object()) || json_object_set_new(sel, "matchLabels", ml)) return kd_fail(KD_ERR_NOMEM, "out of memory");
    }
    rm_member *m = NULL;
    size_t n = 0;
    kd_rc rc = rm_members(v, &m, &n);
    for (size_t i = 0; rc == KD_OK && i < n; i++) {
      rm_s s = {0};
      rc = rm_string(m[i].v, where, &s);
      if (rc == KD_OK && json_object_setn_new(ml, m[i].k, m[i].kl, json_stringn(s.s ? s.s : "", s.n)))
        rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      rm_s_free(&s);
    }
    free(m);
    return rc;
  }
  const char *where = "LabelSelector.resourceModifierRules.conditions.labelSelector.matchExpressions";
  if (json_is_null(v)) return json_object_del(sel, "matchExpressions"), KD_OK;
  if (!json_is_array(v)) return rm_type(v, where, "[]v1.LabelSelectorRequirement");
  json_t *arr = json_array();
  if (!arr) return kd_fail(KD_ERR_NOMEM, "out of memory");
  static const char *const names[] = {"key", "operator", "values"};
  for (size_t i = 0; i < json_array_size(v); i++) {
    json_t *req = json_object();
    kd_rc rc = req ? rm_struct(json_array_get(v, i), where, "v1.LabelSelectorRequirement", names, 3, rm_set_requirement, req)
                   : kd_fail(KD_ERR_NOMEM, "out of memory");
    if (rc == KD_OK && json_array_append_new(arr, req)) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    else if (rc != KD_OK) json_decref(req);
    if (rc != KD_OK) {
      json_decref(arr);
      return rc;
    }
  }
  return json_object_set_new(sel, "matchExpressions", arr) ? kd_fail(KD_ERR_NOMEM, "out of memory") : KD_OK;
}

typedef struct rm_pair {
  rm_s *a, *b; /* path/value of a match; or the four strings of a patch via rm_jpatch */
  rm_jpatch *p;
  rm_s *one;
} rm_pair;

static kd_rc rm_set_match(void *ctx, int f, json_t *v) {
  rm_pair *p = ctx;
  return rm_string(v, f == 0 ? "MatchRule.resourceModifierRules.conditions.matches.path" : "MatchRule.resourceModifierRules.conditions.matches.value",
                   f == 0 ? p->a : p->b);
}

static kd_rc rm_set_jpatch(void *ctx, int f, json_t *v) {
  rm_pair *p = ctx;
  static const char *const where[] = {"JSONPatch.resourceModifierRules.patches.operation", "JSONPatch.resourceModifierRules.patches.from",
                                      "JSONPatch.resourceModifierRules.patches.path", "JSONPatch.resourceModifierRules.patches.value"};
  rm_s *dst[] = {&p->p->op, &p->p->from, &p->p->path, &p->p->value};
  return rm_string(v, where[f], dst[f]);
}

static kd_rc rm_set_patchdata(void *ctx, int f, json_t *v) {
  (void)f;
  rm_pair *p = ctx;
  return rm_string(v, "JSONMergePatch.resourceModifierRules.mergePatches.patchData", p->one);
}

static kd_rc rm_set_conditions(void *ctx, int f, json_t *v) {
  rm_rule *r = ctx;
  switch (f) {
  case 0: return rm_strings(v, "Conditions.resourceModifierRules.conditions.namespaces", &r->ns, &r->nns);
  case 1: return rm_string(v, "Conditions.resourceModifierRules.conditions.groupResource", &r->gr);
  case 2: return rm_string(v, "Conditions.resourceModifierRules.conditions.resourceNameRegex", &r->regex);
  case 3: {
    static const char *const names[] = {"matchLabels", "matchExpressions"};
    if (json_is_null(v)) {
      json_decref(r->selector);
      r->selector = NULL;
      return KD_OK;
    }
    if (!json_is_object(v)) return rm_type(v, "Conditions.resourceModifierRules.conditions.labelSelector", "v1.LabelSelector");
    if (!r->selector && !(r->selector = json_object())) return kd_fail(KD_ERR_NOMEM, "out of memory");
    return rm_struct(v, "Conditions.resourceModifierRules.conditions.labelSelector", "v1.LabelSelector", names, 2,
                     rm_set_selector, r->selector);
  }
  default: {
    const char *where = "Conditions.resourceModifierRules.conditions.matches";
    static const char *const names[] = {"path", "value"};
    if (json_is_null(v)) {
      for (size_t i = 0; i < r->nmatches; i++) rm_s_free(&r->mpath[i]), rm_s_free(&r->mvalue[i]);
      free(r->mpath), free(r->mvalue);
      r->mpath = r->mvalue = NULL, r->nmatches = 0;
      return KD_OK;
    }
    if (!json_is_array(v)) return rm_type(v, where, "[]resourcemodifiers.MatchRule");
    size_t n = json_array_size(v);
    rm_s *pa = calloc(n ? n : 1, sizeof *pa), *va = calloc(n ? n : 1, sizeof *va);
    kd_rc rc = pa && va ? KD_OK : kd_fail(KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == KD_OK && i < n; i++) {
      rm_pair p = {&pa[i], &va[i], NULL, NULL};
      rc = rm_struct(json_array_get(v, i), where, "resourcemodifiers.MatchRule", names, 2, rm_set_match, &p);
    }
    if (rc != KD_OK) {
      for (size_t i = 0; pa && va && i < n; i++) rm_s_free(&pa[i]), rm_s_free(&va[i]);
      free(pa), free(va);
      return rc;
    }
    rm_set_conditions(r, 4, json_null());
    r->mpath = pa, r->mvalue = va, r->nmatches = n;
    return KD_OK;
  }
  }
}

static kd_rc rm_set_rule(void *ctx, int f, json_t *v) {
  rm_rule *r = ctx;
  if (f == 0) {
    static const char *const names[] = {"namespaces", "groupResource", "resourceNameRegex", "labelSelector", "matches"};
    return rm_struct(v, "ResourceModifierRule.resourceModifierRules.conditions", "resourcemodifiers.Conditions", names, 5,
                     rm_set_conditions, r);
  }
  if (f == 1) {
    const char *where = "ResourceModifierRule.resourceModifierRules.patches";
    static const char *const names[] = {"operation", "from", "path", "value"};
    if (!json_is_null(v) && !json_is_array(v)) return rm_type(v, where, "[]resourcemodifiers.JSONPatch");
    size_t n = json_array_size(v);
    rm_jpatch *pa = calloc(n ? n : 1, sizeof *pa);
    kd_rc rc = pa ? KD_OK : kd_fail(KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == KD_OK && i < n; i++) {
      rm_pair p = {NULL, NULL, &pa[i], NULL};
      rc = rm_struct(json_array_get(v, i), where, "resourcemodifiers.JSONPatch", names, 4, rm_set_jpatch, &p);
    }
    for (size_t i = 0; i < (rc == KD_OK ? r->npatches : n); i++) {
      rm_jpatch *q = rc == KD_OK ? &r->patches[i] : &pa[i];
      rm_s_free(&q->op), rm_s_free(&q->from), rm_s_free(&q->path), rm_s_free(&q->value);
    }
    if (rc != KD_OK) {
      free(pa);
      return rc;
    }
    free(r->patches);
    r->patches = pa, r->npatches = n;
    return KD_OK;
  }
  /* mergePatches, strategicPatches: [{patchData}] */
  const char *where = f == 2 ? "ResourceModifierRule.resourceModifierRules.mergePatches" : "ResourceModifierRule.resourceModifierRules.strategicPatches";
  static const char *const names[] = {"patchData"};
  if (!json_is_null(v) && !json_is_array(v))
    return rm_type(v, where, f == 2 ? "[]resourcemodifiers.JSONMergePatch" : "[]resourcemodifiers.StrategicMergePatch");
  size_t n = json_array_size(v);
  rm_s *pa = calloc(n ? n : 1, sizeof *pa);
  kd_rc rc = pa ? KD_OK : kd_fail(KD_ERR_NOMEM, "out of memory");
  for (size_t i = 0; rc == KD_OK && i < n; i++) {
    rm_pair p = {NULL, NULL, NULL, &pa[i]};
    rc = rm_struct(json_array_get(v, i), where, f == 2 ? "resourcemodifiers.JSONMergePatch" : "resourcemodifiers.StrategicMergePatch",
                   names, 1, rm_set_patchdata, &p);
  }
  if (rc != KD_OK || f == 3) {
    for (size_t i = 0; i < n; i++) rm_s_free(&pa[i]);
    free(pa);
    if (rc == KD_OK) r->nstrategic = n;
    return rc;
  }
  for (size_t i = 0; i < r->nmerges; i++) rm_s_free(&r->merges[i]);
  free(r->merges);
  r->merges = pa, r->nmerges = n;
  return KD_OK;
}

static kd_rc rm_set_top(void *ctx, int f, json_t *v) {
  resmod *m = ctx;
  if (f == 0) return rm_string(v, "ResourceModifiers.version", &m->version);
  const char *where = "ResourceModifiers.resourceModifierRules";
  static const char *const names[] = {"conditions", "patches", "mergePatches", "strategicPatches"};
  if (!json_is_null(v) && !json_is_array(v)) return rm_type(v, where, "[]resourcemodifiers.ResourceModifierRule");
  size_t n = json_array_size(v);
  rm_rule *rules = calloc(n ? n : 1, sizeof *rules);
  kd_rc rc = rules ? KD_OK : kd_fail(KD_ERR_NOMEM, "out of memory");
  for (size_t i = 0; rc == KD_OK && i < n; i++)
    rc = rm_struct(json_array_get(v, i), where, "resourcemodifiers.ResourceModifierRule", names, 4, rm_set_rule, &rules[i]);
  if (rc != KD_OK) {
    for (size_t i = 0; rules && i < n; i++) rm_rule_clear(&rules[i]);
    free(rules);
    return rc;
  }
  for (size_t i = 0; i < m->n; i++) rm_rule_clear(&m->rules[i]);
  free(m->rules);
  m->rules = rules, m->n = n;
  return KD_OK;
}

/* ---------------------------------------------------------------- compiling conditions */

/* resourceNameRegex (RE2) as a POSIX extended regex: (?i) at the start, \d \D, lazy
 * quantifiers, and class escapes translated; the rest is passed on. */
static kd_rc rm_regex_translate(const rm_s *re, kd_buf *out, int *flags) {
  const char *s = re->s;
  size_t n = re->n, i = 0;
  kd_rc rc = KD_OK;
  bool quant = false; /* the last token was a quantifier */
  *flags = REG_EXTENDED | REG_NOSUB;
  if (memchr(s, '\0', n)) return kd_fail(KD_ERR_INVALID, "a NUL in the regex is not supported");
  if (n >= 4 && memcmp(s, "(?i)", 4) == 0) *flags |= REG_ICASE, i = 4;
  for (; rc == KD_OK && i < n; i++) {
    char c = s[i];
    if (c == '\\' && i + 1 < n) {
      char e = s[++i];
      if (e == 'd') rc = kd_buf_adds(out, "[0-9]");
      else if (e == 'D') rc = kd_buf_adds(out, "[^0-9]");
      else if (e == 'A') rc = kd_buf_adds(out, "^");
      else if (e == 'z') rc = kd_buf_adds(out, "$");
      else rc = kd_buf_add(out, s + i - 1, 2);
      quant = false;
      continue;
    }
    if (c == '[') { /* a class: Go's escapes inside it become POSIX forms */
      size_t j = i + 1;
      bool dash = false;
      kd_buf cls = KD_BUF_INIT(n * 16 + 64);
      rc = kd_buf_add(&cls, "[", 1);
      if (rc == KD_OK && j < n && s[j] == '^') rc = kd_buf_add(&cls, "^", 1), j++;
      if (rc == KD_OK && j < n && s[j] == ']') rc = kd_buf_add(&cls, "]", 1), j++;
      for (; rc == KD_OK && j < n && s[j] != ']'; j++) {
        if (s[j] == '\\' && j + 1 < n) {
          char e = s[++j];
          if (e == 'd') rc = kd_buf_adds(&cls, "0-9");
          else if (e == 'w') rc = kd_buf_adds(&cls, "[:alnum:]_");
          else if (e == 's') rc = kd_buf_adds(&cls, "[:space:]");
          else if (e == '-') dash = true;
          else if (e == ']' || e == '^' || e == '\\') rc = kd_buf_add(&cls, &e, 1); /* approximations */
          else rc = kd_buf_add(&cls, &e, 1);
          continue;
        }
        if (s[j] == '[' && j + 1 < n && s[j + 1] == ':') { /* [:alpha:] */
          const char *endc = NULL;
          for (size_t k = j + 2; k + 1 < n; k++)
            if (s[k] == ':' && s[k + 1] == ']') {
              endc = s + k + 2;
              break;
            }
          if (endc) {
            rc = kd_buf_add(&cls, s + j, (size_t)(endc - (s + j)));
            j = (size_t)(endc - s) - 1;
            continue;
          }
        }
        rc = kd_buf_add(&cls, s + j, 1);
      }
      if (rc == KD_OK && dash) rc = kd_buf_add(&cls, "-", 1);
      if (rc == KD_OK) rc = kd_buf_add(&cls, "]", 1);
      if (rc == KD_OK) rc = kd_buf_add(out, cls.data, cls.len);
      kd_buf_free(&cls);
      i = j; /* on the closing ']' (or past the end: regcomp reports it) */
      quant = false;
      continue;
    }
    if (c == '(' && i + 2 < n && s[i + 1] == '?' && s[i + 2] == ':') { /* non-capturing group */
      rc = kd_buf_add(out, "(", 1);
      i += 2;
      quant = false;
      continue;
    }
    if (c == '?' && quant) { /* lazy: matches what the greedy quantifier matches */
      quant = false;
      continue;
    }
    quant = c == '*' || c == '+' || c == '?' || c == '}';
    rc = kd_buf_add(out, &c, 1);
  }
  if (rc == KD_OK && !out->data) rc = kd_buf_add(out, "", 0);
  return rc;
}

static char *rm_strdupf(const char *fmt, const char *a, const char *b) {
  size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
  char *s = malloc(n);
  if (s) snprintf(s, n, fmt, a, b);
  return s;
}

static kd_rc rm_glob_compile(const rm_s *p, char sep, rm_glob *g) {
  kd_rc rc = gl_compile(p->s ? p->s : "", p->n, sep, &g->g);
  if (rc == KD_ERR_NOMEM) return rc;
  if (rc != KD_OK && !(g->err = rm_strdupf("%s%s", kd_errmsg(), ""))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

static int rm_s_cmp(const void *a, const void *b) {
  const rm_s *x = a, *y = b;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

static kd_rc rm_compile(rm_rule *r) {
  kd_rc rc;
  /* namespaces: a set, listed sorted; "*" or nothing includes everything */
  r->ns_all = r->nns == 0;
  if (r->nns > 1) qsort(r->ns, r->nns, sizeof *r->ns, rm_s_cmp);
  if (r->nns && !(r->nsglob = calloc(r->nns, sizeof *r->nsglob))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < r->nns; i++) {
    if (r->ns[i].n == 1 && r->ns[i].s[0] == '*') r->ns_all = true;
    if (i > 0 && rm_s_cmp(&r->ns[i], &r->ns[i - 1]) == 0) continue;
    if (r->nnsglob > 0 && !r->nsglob[r->nnsglob - 1].g) continue; /* Velero stops at the first bad one */
    if ((rc = rm_glob_compile(&r->ns[i], 0, &r->nsglob[r->nnsglob++])) != KD_OK) return rc;
  }
  if ((rc = rm_glob_compile(&r->gr, '.', &r->grglob)) != KD_OK) return rc;
  if (r->regex.n > 0) {
    kd_buf t = KD_BUF_INIT(r->regex.n * 16 + 64);
    int flags;
    rc = rm_regex_translate(&r->regex, &t, &flags);
    if (rc == KD_ERR_NOMEM || rc == KD_ERR_TOOBIG) {
      kd_buf_free(&t);
      return rc;
    }
    if (rc != KD_OK) {
      r->re_err = rm_strdupf("%s%s", kd_errmsg(), "");
    } else {
      int e = regcomp(&r->re, t.data, flags);
      if (e == 0) {
        r->re_ok = true;
      } else {
        char msg[256];
        regerror(e, &r->re, msg, sizeof msg);
        r->re_err = rm_strdupf("error parsing regexp: %s: `%s`", msg, r->regex.s);
      }
    }
    kd_buf_free(&t);
    if (!r->re_ok && !r->re_err) return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  if (r->selector) {
    rc = backup_selector_new(r->selector, &r->sel);
    if (rc == KD_ERR_NOMEM) return rc;
    if (rc != KD_OK && !(r->sel_err = rm_strdupf("%s%s", kd_errmsg(), ""))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  return KD_OK;
}

/* ---------------------------------------------------------------- parse */

static kd_rc rm_validate(const resmod *m) {
  if (!(m->version.n == 2 && (m->version.s[0] == 'v' || m->version.s[0] == 'V') && m->version.s[1] == '1'))
    return kd_fail(KD_ERR_INVALID, "unsupported resource modifier version %s", m->version.s ? m->version.s : "");
  if (m->n == 0) return kd_fail(KD_ERR_INVALID, "resource modifier rules cannot be empty");
  for (size_t i = 0; i < m->n; i++) {
    const rm_rule *r = &m->rules[i];
    if (r->gr.n == 0) return kd_fail(KD_ERR_INVALID, "groupkResource cannot be empty");
    int kinds = (r->npatches > 0) + (r->nmerges > 0) + (r->nstrategic > 0);
    if (kinds >= 2) return kd_fail(KD_ERR_INVALID, "only one of patches, mergePatches, strategicPatches can be specified");
    for (size_t k = 0; k < r->npatches; k++) {
      const rm_jpatch *p = &r->patches[k];
      if (p->op.n == 0) return kd_fail(KD_ERR_INVALID, "operation cannot be empty");
      static const char *const ops[] = {"add", "remove", "replace", "test", "move", "copy"};
      bool ok = false;
      for (size_t j = 0; j < KD_ARRAY_LEN(ops) && !ok; j++) ok = rm_name_is(p->op.s, p->op.n, ops[j]);
      if (!ok) return kd_fail(KD_ERR_INVALID, "unsupported operation %s", p->op.s);
      if (p->path.n == 0) return kd_fail(KD_ERR_INVALID, "path cannot be empty");
    }
  }
  return KD_OK;
}

kd_rc resmod_parse(json_t *configmap, resmod **out) {
  kd_rc rc = KD_OK;
  resmod *m = NULL;
  json_t *docs = NULL;
  char where[600];
  *out = NULL;
  json_t *meta = json_object_get(configmap, "metadata");
  const char *ns = json_string_value(json_object_get(meta, "namespace"));
  const char *name = json_string_value(json_object_get(meta, "name"));
  snprintf(where, sizeof where, "%s/%s", ns ? ns : "", name ? name : "");
  json_t *data = json_object_get(configmap, "data");
  if (json_object_size(data) != 1)
    return kd_fail(KD_ERR_INVALID, "Error in parsing resource modifiers provided in configmap %s: illegal resource modifiers %s configmap",
                   where, where);
  const char *k;
  size_t kl;
  json_t *text = NULL, *v;
  json_object_keylen_foreach(data, k, kl, v) text = v;
  (void)k, (void)kl;
  if (!json_is_string(text))
    return kd_fail(KD_ERR_INVALID, "Error in parsing resource modifiers provided in configmap %s: the data value is not a string", where);
  if (json_string_length(text) > RM_MAX_YAML)
    return kd_fail(KD_ERR_TOOBIG, "Error in parsing resource modifiers provided in configmap %s: larger than %u MiB", where,
                   RM_MAX_YAML >> 20);
  if (!(m = calloc(1, sizeof *m))) return kd_fail(KD_ERR_NOMEM, "resource modifiers: out of memory");
  rc = yj_parse_all(json_string_value(text), json_string_length(text), &docs);
  if (rc != KD_OK) {
    kd_fail_wrap(rc, "error converting YAML to JSON");
    goto decode_fail;
  }
  static const char *const names[] = {"version", "resourceModifierRules"};
  json_t *doc = json_array_size(docs) ? json_array_get(docs, 0) : json_null();
  if (!json_is_null(doc) && !json_is_object(doc)) {
    rc = kd_fail(KD_ERR_INVALID, "json: cannot unmarshal %s into Go value of type resourcemodifiers.ResourceModifiers", rm_kind(doc));
  } else {
    rc = rm_struct(doc, "ResourceModifiers", "resourcemodifiers.ResourceModifiers", names, 2, rm_set_top, m);
  }
  if (rc == KD_ERR_NOMEM) goto fail;
  if (rc != KD_OK) {
    kd_fail_wrap(rc, "error unmarshaling JSON: while decoding JSON");
    goto decode_fail;
  }
  if ((rc = rm_validate(m)) != KD_OK) {
    kd_fail_wrap(rc, "Validation error in resource modifiers provided in configmap %s", where);
    goto fail;
  }
  for (size_t i = 0; i < m->n; i++)
    if (m->rules[i].nstrategic > 0) {
      rc = kd_fail(KD_ERR_UNSUPPORTED,
                   "Validation error in resource modifiers provided in configmap %s: rule %zu: strategicPatches are not supported yet",
                   where, i);
      goto fail;
    }
  for (size_t i = 0; i < m->n; i++)
    if ((rc = rm_compile(&m->rules[i])) != KD_OK) goto fail;
  json_decref(docs);
  *out = m;
  return KD_OK;
decode_fail:
  if (rc != KD_ERR_NOMEM) {
    kd_fail_wrap(rc, "failed to decode yaml data into resource modifiers, err");
    kd_fail_wrap(rc, "Error in parsing resource modifiers provided in configmap %s", where);
    rc = rc == KD_ERR_TOOBIG ? rc : KD_ERR_INVALID;
  }
fail:
  json_decref(docs);
  resmod_free(m);
  return rc;
}

/* ---------------------------------------------------------------- apply */

kd_rc resmod_patch_text(const char *op, size_t opn, const char *from, size_t fromn, const char *path, size_t pathn,
                        const char *value, size_t valuen, kd_buf *out) {
  bool quote;
  const char *v = value;
  size_t vn = valuen;
  if (vn == 0) quote = true;
  else if (v[0] == '"' && v[vn - 1] == '"') { /* TrimPrefix and TrimSuffix of one quote each */
    v++, vn--;
    if (vn > 0 && v[vn - 1] == '"') vn--;
    quote = true;
  } else if (vn == 4 && memcmp(v, "null", 4) == 0) quote = false;
  else if (rm_name_is(v, vn, "true") || rm_name_is(v, vn, "false")) quote = false;
  else if (v[0] == '{' || v[0] == '[') quote = false;
  else quote = !jsonpatch_go_parsefloat_ok(v, vn);
  kd_rc rc = kd_buf_adds(out, "{\"op\": \"");
  if (rc == KD_OK) rc = kd_buf_add(out, op, opn);
  if (rc == KD_OK) rc = kd_buf_adds(out, "\", \"from\": \"");
  if (rc == KD_OK) rc = kd_buf_add(out, from, fromn);
  if (rc == KD_OK) rc = kd_buf_adds(out, "\", \"path\": \"");
  if (rc == KD_OK) rc = kd_buf_add(out, path, pathn);
  if (rc == KD_OK) rc = kd_buf_adds(out, quote ? "\", \"value\": \"" : "\", \"value\": ");
  if (rc == KD_OK) rc = kd_buf_add(out, v, vn);
  if (rc == KD_OK) rc = kd_buf_adds(out, quote ? "\"}" : "}");
  return rc;
}

static const char *rm_str_at(json_t *obj, const char *a, const char *b, size_t *n) {
  json_t *v = json_object_get(json_object_get(obj, a), b);
  *n = json_string_length(v);
  return json_is_string(v) ? json_string_value(v) : "";
}

/* Does the rule's condition hold for origin? KD_ERR_INVALID (message set) when it cannot be
 * evaluated, as Velero's match returns an error. */
static kd_rc rm_match(const rm_rule *r, json_t *origin, const char *gr, bool *matched) {
  size_t nsn, namen;
  const char *ns = rm_str_at(origin, "metadata", "namespace", &nsn);
  const char *name = rm_str_at(origin, "metadata", "name", &namen);
  *matched = false;
  if (nsn > 0 && !r->ns_all) {
    bool in = false;
    for (size_t i = 0; i < r->nnsglob && !in; i++) {
      if (!r->nsglob[i].g) break; /* Velero's glob set gives up at a pattern that does not compile */
      kd_rc rc = gl_run(r->nsglob[i].g, ns, nsn, &in);
      if (rc != KD_OK) return rc;
    }
    if (!in) return KD_OK;
  }
  if (!r->grglob.g) return kd_fail(KD_ERR_INVALID, "bad glob pattern of groupResource %s: %s", r->gr.s, r->grglob.err);
  bool in = false;
  kd_rc rc = gl_run(r->grglob.g, gr, strlen(gr), &in);
  if (rc != KD_OK || !in) return rc;
  if (r->regex.n > 0) {
    if (!r->re_ok) return kd_fail(KD_ERR_INVALID, "error in matching regex %s", r->re_err);
    regmatch_t pm[1] = {{0, (regoff_t)namen}};
    if (regexec(&r->re, name, 1, pm, REG_STARTEND) != 0) return KD_OK;
  }
  if (r->selector) {
    if (!r->sel) return kd_fail(KD_ERR_INVALID, "error in creating label selector %s", r->sel_err);
    json_t *labels = json_object_get(json_object_get(origin, "metadata"), "labels");
    const char *lk;
    json_t *lv;
    bool strings = json_is_object(labels);
    if (strings) json_object_foreach(labels, lk, lv) if (!json_is_string(lv)) strings = false;
    if (!backup_selector_matches(r->sel, strings ? labels : NULL)) return KD_OK; /* GetLabels gives up on non-strings */
  }
  if (r->nmatches > 0) {
    kd_buf t = KD_BUF_INIT(RM_MAX_TEXT);
    rc = kd_buf_add(&t, "[", 1);
    for (size_t i = 0; rc == KD_OK && i < r->nmatches; i++) {
      if (r->mpath[i].n == 0) {
        kd_buf_free(&t);
        return kd_fail(KD_ERR_INVALID, "path is required for match rule");
      }
      if (i > 0) rc = kd_buf_adds(&t, ",\n\t");
      if (rc == KD_OK)
        rc = resmod_patch_text("test", 4, "", 0, r->mpath[i].s, r->mpath[i].n, r->mvalue[i].s ? r->mvalue[i].s : "",
                               r->mvalue[i].n, &t);
    }
    if (rc == KD_OK) rc = kd_buf_add(&t, "]", 1);
    json_t *res = NULL;
    jsonpatch_err why = JSONPATCH_OK;
    if (rc == KD_OK) rc = jsonpatch_apply_text(origin, t.data, t.len, &res, &why);
    kd_buf_free(&t);
    json_decref(res);
    if (rc != KD_OK) {
      if (rc == KD_ERR_INVALID && (why == JSONPATCH_TEST_FAILED || why == JSONPATCH_MISSING)) return KD_OK;
      if (rc == KD_ERR_INVALID && why == JSONPATCH_DECODE) kd_fail_wrap(rc, "error in decoding json patch");
      return rc;
    }
  }
  *matched = true;
  return KD_OK;
}

/* Numbers as Velero's decoding of a patched object leaves them: a real Go prints as an integer
 * is an integer. */
static void rm_normalise(json_t *v, int depth) {
  if (depth > 4096) return;
  if (json_is_object(v)) {
    const char *k;
    size_t kl;
    json_t *m;
    void *tmp;
    json_object_keylen_foreach_safe(v, tmp, k, kl, m) {
      if (json_is_real(m)) {
        kd_buf b = KD_BUF_INIT(64);
        if (jsonpatch_go_text(m, &b) == KD_OK && !strpbrk(b.data, ".eE")) {
          json_t *iv = json_integer(strtoll(b.data, NULL, 10));
          if (iv && strlen(b.data) < 19) json_object_setn_new_nocheck(v, k, kl, iv);
          else json_decref(iv);
        }
        kd_buf_free(&b);
      } else {
        rm_normalise(m, depth + 1);
      }
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *m = json_array_get(v, i);
      if (json_is_real(m)) {
        kd_buf b = KD_BUF_INIT(64);
        if (jsonpatch_go_text(m, &b) == KD_OK && !strpbrk(b.data, ".eE") && strlen(b.data) < 19)
          json_array_set_new(v, i, json_integer(strtoll(b.data, NULL, 10)));
        kd_buf_free(&b);
      } else {
        rm_normalise(m, depth + 1);
      }
    }
  }
}

/* Velero's unstructured decoding of the result: an object with a "kind". */
static kd_rc rm_check_kind(json_t *v) {
  json_t *kind = json_object_get(v, "kind");
  if (json_is_object(v) && json_is_string(kind) && json_string_length(kind) > 0) return KD_OK;
  return kd_fail(KD_ERR_INVALID, "error in unmarshalling modified object Object 'Kind' is missing");
}

/* Apply the rule's patches to cur; *out the new object (NULL: unchanged, a test stopped it). */
static kd_rc rm_patch(const rm_rule *r, json_t *cur, json_t **out) {
  kd_rc rc = KD_OK;
  *out = NULL;
  if (r->npatches > 0) {
    kd_buf t = KD_BUF_INIT(RM_MAX_TEXT);
    rc = kd_buf_add(&t, "[", 1);
    for (size_t i = 0; rc == KD_OK && i < r->npatches; i++) {
      const rm_jpatch *p = &r->patches[i];
      if (i > 0) rc = kd_buf_adds(&t, ",\n\t");
      if (rc == KD_OK)
        rc = resmod_patch_text(p->op.s ? p->op.s : "", p->op.n, p->from.s ? p->from.s : "", p->from.n, p->path.s ? p->path.s : "",
                               p->path.n, p->value.s ? p->value.s : "", p->value.n, &t);
    }
    if (rc == KD_OK) rc = kd_buf_add(&t, "]", 1);
    jsonpatch_err why = JSONPATCH_OK;
    if (rc == KD_OK) rc = jsonpatch_apply_text(cur, t.data, t.len, out, &why);
    kd_buf_free(&t);
    if (rc == KD_ERR_INVALID && why == JSONPATCH_TEST_FAILED) return KD_OK;
    if (rc == KD_ERR_INVALID && why == JSONPATCH_DECODE) kd_fail_wrap(rc, "error in decoding json patch");
    if (rc != KD_OK) return rc == KD_ERR_NOMEM ? rc : kd_fail_wrap(rc, "error in applying JSON Patch");
  } else if (r->nmerges > 0) {
    json_t *doc = json_incref(cur);
    for (size_t i = 0; i < r->nmerges; i++) {
      json_t *docs = NULL, *next = NULL;
      rc = yj_parse_all(r->merges[i].s ? r->merges[i].s : "", r->merges[i].n, &docs);
      if (rc != KD_OK) {
        json_decref(doc);
        return rc == KD_ERR_NOMEM ? rc : kd_fail_wrap(KD_ERR_INVALID, "error in converting YAML to JSON");
      }
      rc = jsonpatch_merge(doc, json_array_size(docs) ? json_array_get(docs, 0) : json_null(), &next);
      json_decref(docs);
      json_decref(doc);
      if (rc != KD_OK) return rc == KD_ERR_NOMEM ? rc : kd_fail_wrap(rc, "error in applying JSON Patch");
      doc = next;
    }
    *out = doc;
  } else {
    return kd_fail(KD_ERR_INVALID, "no patch data found");
  }
  if ((rc = rm_check_kind(*out)) != KD_OK) {
    json_decref(*out);
    *out = NULL;
    return rc;
  }
  rm_normalise(*out, 0);
  return KD_OK;
}

kd_rc resmod_apply(const resmod *m, const char *group_resource, json_t **obj, int *applied) {
  kd_rc first = KD_OK;
  kd_buf errs = KD_BUF_INIT(RM_MAX_ERRS);
  json_t *origin = json_incref(*obj), *cur = json_incref(*obj);
  if (applied) *applied = 0;
  for (size_t i = 0; m && i < m->n; i++) {
    const rm_rule *r = &m->rules[i];
    bool matched = false;
    json_t *next = NULL;
    kd_rc rc = rm_match(r, origin, group_resource ? group_resource : "", &matched);
    if (rc == KD_OK && matched) rc = rm_patch(r, cur, &next);
    if (rc == KD_ERR_NOMEM) {
      first = rc;
      break;
    }
    if (rc != KD_OK) {
      if (first == KD_OK) first = KD_ERR_INVALID;
      if (errs.len) (void)kd_buf_adds(&errs, "; ");
      (void)kd_buf_addf(&errs, "resource modifier rule %zu: %s", i, kd_errmsg());
      continue;
    }
    if (next) {
      json_decref(cur);
      cur = next;
      if (applied) (*applied)++;
    }
  }
  json_decref(origin);
  json_decref(*obj);
  *obj = cur;
  if (first == KD_ERR_INVALID) kd_fail(first, "%s", errs.data ? errs.data : "resource modifier failed");
  kd_buf_free(&errs);
  return first;
}
