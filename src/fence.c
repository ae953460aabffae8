/* fence.c — leadership terms (see fence.h). */
#include "fence.h"

struct fence fence_take(const struct fence_src *src) {
  struct fence f = {{NULL, NULL}, 0};
  if (src) f.src = *src;
  if (f.src.term) {
    f.term = atomic_load(f.src.term);
    /* not leading now: a term of 0 never matches a real one */
    if (!f.src.valid_until_ms || kd_now_ms() >= atomic_load(f.src.valid_until_ms)) f.term = 0;
  }
  return f;
}

bool fence_held(const struct fence *f) {
  if (!f) return true;
  if (!f->src.term) return true;
  if (f->term == 0 || atomic_load(f->src.term) != f->term) return false;
  return f->src.valid_until_ms && kd_now_ms() < atomic_load(f->src.valid_until_ms);
}

kd_rc fence_check(const struct fence *f, const char *what) {
  if (fence_held(f)) return KD_OK;
  return kd_fail(KD_ERR_CANCELLED, "%s: refused, this replica is no longer the leader of the term the job started in",
                 what ? what : "writing");
}

kd_rc fence_guard(void *ud) { return fence_check(ud, "writing to the storage location"); }
