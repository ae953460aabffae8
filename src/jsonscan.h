/* jsonscan.h — an incremental scanner over a Kubernetes List response ({"kind":..,
 * "metadata":{"continue":..,"resourceVersion":..},"items":[{...},{...}]}) that hands out the raw
 * bytes of each element of the top-level "items" array as it arrives, without building a tree
 * of the page. The backup engine streams LIST pages through it, so objects go into the archive
 * byte-exact (every byte the server sent, NUL escapes and non-ASCII included, numbers as
 * written) and memory stays at one object.
 *
 * Validates JSON structure (strings, escapes, nesting, commas) as far as it needs to find the
 * boundaries; a malformed document is KD_ERR_PARSE with the byte offset in the message. */
#ifndef KCMDR_JSONSCAN_H
#define KCMDR_JSONSCAN_H

#include <stddef.h>

#include "util.h"

#define JSCAN_MAX_ITEM (64u << 20)  /* default cap on one item's bytes */
#define JSCAN_MAX_DEPTH 512

/* Called once per element of "items" with its exact bytes (a complete JSON value, not
 * NUL-terminated in general). Return KD_OK to go on; anything else stops the scan with it. */
typedef kd_rc (*jscan_item_fn)(const char *item, size_t len, void *ud);

struct jscan {
  /* private */
  kd_buf item;            /* bytes of the item being assembled across chunks */
  kd_buf meta;            /* bytes of the top-level "metadata" value */
  kd_buf key;             /* current top-level key (raw, as written) */
  jscan_item_fn fn;
  void *ud;
  size_t max_item;
  unsigned long long offset; /* bytes fed before the current chunk */
  int state, depth, top_key;
  int str_key;            /* the string being scanned is an object key */
  int key_on, key_long;   /* capturing a top-level key; it outgrew s->key */
  int items_depth;        /* depth of the open top-level "items" array, 0 when none */
  int capture, cap_depth; /* capturing an item or the metadata value, which ends at cap_depth */
  int tok;                /* number or hex-escape state, literal position */
  const char *lit;        /* literal being matched ("true", "false", "null") */
  unsigned char stack[JSCAN_MAX_DEPTH];
  kd_rc rc;
  char *cont, *rv;        /* from metadata, after jscan_finish */
  size_t items;
};

/* Start a scan; max_item 0 = JSCAN_MAX_ITEM. Never fails. */
void jscan_init(struct jscan *s, size_t max_item, jscan_item_fn fn, void *ud);
/* Feed the next n bytes (values may be split anywhere). Returns the first error and keeps
 * returning it: KD_ERR_PARSE, KD_ERR_TOOBIG (an item over max_item), KD_ERR_NOMEM, or fn's code. */
kd_rc jscan_feed(struct jscan *s, const char *p, size_t n);
/* The document ended: KD_ERR_PARSE when it is incomplete; otherwise parses the top-level
 * metadata (jansson) for continue and resourceVersion. */
kd_rc jscan_finish(struct jscan *s);
/* After jscan_finish: metadata.continue / metadata.resourceVersion, or NULL. Owned by s. */
const char *jscan_continue(const struct jscan *s);
const char *jscan_resource_version(const struct jscan *s);
/* Number of items handed out so far. */
size_t jscan_items(const struct jscan *s);
/* Release memory. */
void jscan_free(struct jscan *s);

#endif
