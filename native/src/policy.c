/*
** policy.c: what lives in VRAM. VRAM is a cache over the host tier, and ranges earn it by use per
** page (launches that name them, from scan.c, halved at most every 500 ms), not by arrival order. Pure
** decisions over the allocation records: these functions read uses and page locations and write
** a list of page moves; mover.c carries them out. Nothing here calls the driver or takes a lock,
** so native/test/t_policy.c drives them with recorded use traces.
**   - A pass brings host pages of hot ranges (densest first) into the VRAM the budget leaves free
**     above the reserve, which stays free for the next fresh allocation. When that is full, VRAM
**     pages of ranges at least SP_EVICT_RATIO times colder leave first (hysteresis: ranges of
**     similar use never trade places, so a repeating workload reaches a state where no page moves).
**   - A fresh allocation is the hottest thing there is (it is about to be written): when it would
**     land in host memory, the VRAM pages of the coldest ranges leave first.
**   - Free room above the reserve is filled with any range named lately (uses not yet halved to 0:
**     a decode step names each weight once, often less than once per pass); trading needs SP_HOT_USES.
**   - Three classes before density: ranges no launch named lately, ranges the streaming engine
**     stages, ranges read in place. A staged range's re-reading kernels get it at copy speed from
**     host pages, while a range read in place (activations, a KV cache) pays the link on every
**     touch: a range read in place takes a staged range's VRAM pages however the two compare in
**     uses, and never gives its own to one; a staged range takes those of unused ranges. Within a
**     class, SP_EVICT_RATIO decides. The engine clears its mark when its arena goes back (decode
**     reads in place).
*/
#define _GNU_SOURCE
#include <stdlib.h>

#include "sp.h"

/* A range's class (see the top): 0 named by no launch lately, 1 staged by the streaming engine,
** 2 read in place. */
static int class_of(const sp_rec *r) { return !r->uses ? 0 : r->stage_streamed ? 1 : 2; }

/* a before b: a higher class, or in the same class more uses per page */
static int denser(const sp_rec *a, const sp_rec *b) {
  int ca = class_of(a), cb = class_of(b);
  if (ca != cb) return ca > cb;
  return (uint64_t)a->uses * b->npages > (uint64_t)b->uses * a->npages;
}

/* Densest first; among equals (decayed uses are often 0 for all), the most recently used first,
** then the newest: the cold end holds what no launch has named for longest (a caching allocator's
** idle blocks) and, when nothing was named, what was allocated first. */
static int by_density_desc(const void *x, const void *y) {
  const sp_rec *a = *(sp_rec *const *)x, *b = *(sp_rec *const *)y;
  int c = denser(b, a) - denser(a, b);
  if (c) return c;
  if (a->use_seq != b->use_seq) return (a->use_seq < b->use_seq) - (a->use_seq > b->use_seq);
  return (a->buffer_id < b->buffer_id) - (a->buffer_id > b->buffer_id);
}

/* hot may take cold's VRAM pages: a higher class, or in the same class SP_EVICT_RATIO times the
** uses per page */
static int much_denser(const sp_rec *hot, const sp_rec *cold) {
  int ch = class_of(hot), cc = class_of(cold);
  if (ch != cc) return ch > cc;
  return (uint64_t)cold->uses * SP_EVICT_RATIO * hot->npages <= (uint64_t)hot->uses * cold->npages;
}

int sp_policy_wants_vram(const sp_rec *r) { return r->movable && r->uses >= SP_HOT_USES && r->nvram < r->npages; }
int sp_policy_wants_room(const sp_rec *r) { return r->movable && r->uses >= 1 && r->nvram < r->npages; }

void sp_policy_rank(sp_rec **recs, size_t n) { qsort(recs, n, sizeof(*recs), by_density_desc); }

/* Victim pages leave from the end of a range (its start stays in VRAM longest). cursor[v] is how
** many pages from the end of recs[v] have been looked at. */
static int next_victim_page(const sp_rec *r, uint32_t *cursor, uint32_t *page) {
  while (*cursor < r->npages) {
    uint32_t i = r->npages - 1 - (*cursor)++;
    if (r->loc[i] == SP_PAGE_VRAM) {
      *page = i;
      return 1;
    }
  }
  return 0;
}

size_t sp_policy_pass(sp_rec **recs, size_t n, uint64_t room, sp_move *out, size_t max) {
  sp_policy_rank(recs, n);
  uint32_t *cursor = calloc(n ? n : 1, sizeof(*cursor));
  if (!cursor) return 0;
  size_t nm = 0, cold_end = n; /* victims come from the cold end */
  for (size_t c = 0; c < n && nm < max; c++) {
    sp_rec *hot = recs[c];
    if (cursor[c] || !(room ? sp_policy_wants_room(hot) : sp_policy_wants_vram(hot)))
      continue; /* a range giving pages up takes none */
    for (uint32_t i = 0; i < hot->npages && nm < max; i++) {
      if (hot->loc[i] != SP_PAGE_HOST) continue;
      if (room == 0) { /* find one colder VRAM page to trade for this one */
        if (!sp_policy_wants_vram(hot)) break; /* it only filled free room */
        uint32_t page = 0;
        int found = 0;
        while (!found && cold_end > c + 1) {
          sp_rec *cold = recs[cold_end - 1];
          if (!much_denser(hot, cold)) break;
          if (cold->movable && next_victim_page(cold, &cursor[cold_end - 1], &page)) found = 1;
          else cold_end--;
        }
        if (!found || nm + 2 > max) goto done;
        out[nm++] = (sp_move){recs[cold_end - 1], page, SP_PAGE_HOST};
        room++;
      }
      out[nm++] = (sp_move){hot, i, SP_PAGE_VRAM};
      room--;
    }
  }
done:
  free(cursor);
  return nm;
}

size_t sp_policy_evict(sp_rec **recs, size_t n, uint64_t need, sp_move *out, size_t max) {
  sp_policy_rank(recs, n);
  size_t nm = 0;
  for (size_t v = n; v-- > 0 && nm < need && nm < max;) {
    sp_rec *cold = recs[v];
    if (!cold->movable) continue;
    uint32_t cursor = 0, page;
    while (nm < need && nm < max && next_victim_page(cold, &cursor, &page)) out[nm++] = (sp_move){cold, page, SP_PAGE_HOST};
  }
  return nm;
}

int sp_policy_worth_a_pass(sp_rec **recs, size_t n, uint64_t room) {
  sp_policy_rank(recs, n);
  for (size_t c = 0; c < n; c++) {
    const sp_rec *hot = recs[c];
    if (room && sp_policy_wants_room(hot)) return 1;
    if (!sp_policy_wants_vram(hot)) continue;
    for (size_t v = n; v > c + 1; v--) {
      const sp_rec *cold = recs[v - 1];
      if (!much_denser(hot, cold)) break;
      if (cold->movable && cold->nvram) return 1;
    }
  }
  return 0;
}
