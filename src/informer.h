/* informer.h — list+watch of one resource into a local cache, with add/update/delete handlers,
 * as client-go's informers: reconcilers react to events instead of polling.
 *
 * informer_run lists, then watches from the list's resourceVersion; after a disconnect it
 * resumes from the last version seen (bookmarks included); on 410 Gone it lists again and emits
 * exactly the differences to the cache, so no change is lost and none is delivered twice. */
#ifndef KCMDR_INFORMER_H
#define KCMDR_INFORMER_H

#include <jansson.h>
#include <stdbool.h>

#include "kube.h"

typedef struct informer informer;

/* Handlers run on informer_run's thread; objects are borrowed for the call. Any may be NULL. */
struct informer_handlers {
  void (*on_add)(json_t *obj, void *ud);
  void (*on_update)(json_t *old_obj, json_t *new_obj, void *ud);
  void (*on_delete)(json_t *obj, void *ud);
  void (*on_synced)(void *ud); /* after every full list has been applied */
  void *ud;
};

struct informer_opts {
  const char *namespace;      /* NULL: all namespaces (or cluster-scoped) */
  const char *label_selector;
  long watch_timeout_seconds; /* server-side watch length before a resume; 0 = 300 */
  /* Optional: keep only what the caller needs of each object (saves memory with many objects).
   * Gets a borrowed object, returns a new reference (NULL: keep the object as it is). It must
   * keep metadata.name, .namespace and .resourceVersion. */
  json_t *(*transform)(json_t *obj);
};

/* Create an informer for res (copied) on client c (borrowed; must outlive the informer).
 * KD_ERR_NOMEM. */
kd_rc informer_new(kube_client *c, const struct kube_res *res, const struct informer_opts *opts,
                   const struct informer_handlers *h, informer **out);
/* Free the informer and its cache; not while informer_run is running. NULL is fine. */
void informer_free(informer *inf);

/* List and watch until *stop becomes non-zero (returns KD_OK). Errors of the server or the
 * connection are retried forever with capped backoff (logged); only a fatal error (no memory,
 * the resource type gone: KD_ERR_NOTFOUND, forbidden) ends it early with that code. */
kd_rc informer_run(informer *inf, volatile const int *stop);

/* True after the first full list was applied. Thread-safe. */
bool informer_synced(informer *inf);
/* A new reference to the cached object, or NULL. ns NULL for cluster-scoped. Thread-safe. */
json_t *informer_get(informer *inf, const char *ns, const char *name);
/* A new JSON array holding every cached object (new references); NULL on no memory (never a
 * partial list). Thread-safe. */
json_t *informer_list(informer *inf);
/* Number of cached objects. Thread-safe. */
size_t informer_count(informer *inf);

/* Counters for tests and metrics. Thread-safe. */
struct informer_stats {
  long lists;    /* full lists done (1 + relists) */
  long watches;  /* watch connections opened */
  long events;   /* watch events applied */
};
void informer_stats_get(informer *inf, struct informer_stats *out);

#endif
