/*
** t_policy.c: the placement policy alone (native/src/policy.c, linked in directly: no driver, no
** interposer). Records are built by hand as a trace of uses would leave them:
**  trade      a hot range in host, VRAM full of a range 4x+ colder: pages trade places
**  hysteresis ranges of similar use (within 4x) never trade, whatever their placement
**  evict      a fresh allocation takes the VRAM pages of the least-used, then least recently used,
**             then oldest range first, from the end of the range
**  room       with free room, host pages of ranges named since the last pass come in without any
**             leaving (busiest first); ranges named by no launch stay; without room, one use is
**             not enough to trade
**  streamed   a range the streaming engine stages ranks below ranges read in place: activations
**             take its VRAM pages, it never takes theirs however often it is named; it takes the
**             pages of a range no launch named, fills free room, and leaves first for a fresh
**             allocation after the unnamed ones
*/
#define _GNU_SOURCE /* as policy.c, which is compiled into this program */
#include "sp.h"
#include "t_common.h" /* CHECK only: this program calls no driver function */

static uint64_t next_id;

static sp_rec *range(uint32_t npages, uint32_t nvram, uint32_t uses, uint64_t last_use) {
  sp_rec *r = calloc(1, sizeof(*r));
  r->buffer_id = ++next_id;
  r->npages = npages;
  r->nvram = nvram;
  r->loc = calloc(npages, 1);
  for (uint32_t i = nvram; i < npages; i++) r->loc[i] = SP_PAGE_HOST;
  r->tiered = r->movable = 1;
  r->uses = uses;
  r->use_seq = last_use;
  return r;
}

static int trade(void) {
  sp_rec *hot = range(4, 0, 400, 10), *cold = range(8, 8, 8, 9); /* 100 vs 1 use per page */
  sp_rec *recs[] = {cold, hot};
  sp_move m[16];
  CHECK(sp_policy_worth_a_pass(recs, 2, 0), "a 100x colder range in VRAM is worth a pass");
  size_t n = sp_policy_pass(recs, 2, 0, m, 16);
  CHECK(n == 8, "%zu moves, want 4 out + 4 in", n);
  int out = 0, in = 0;
  for (size_t i = 0; i < n; i++) {
    if (m[i].to == SP_PAGE_HOST) {
      CHECK(m[i].r == cold && m[i].page >= 4, "a wrong page leaves");
      out++;
    } else {
      CHECK(m[i].r == hot, "a wrong page comes in");
      in++;
    }
  }
  CHECK(out == 4 && in == 4, "out %d in %d", out, in);
  printf("ok trade\n");
  return 0;
}

static int hysteresis(void) {
  /* decode: every weight once per step; those in host are not hotter than those in VRAM */
  sp_rec *w_host = range(16, 0, 2, 10), *w_vram = range(16, 16, 2, 9), *act = range(2, 2, 200, 11);
  sp_rec *recs[] = {w_host, w_vram, act};
  sp_move m[64];
  CHECK(!sp_policy_worth_a_pass(recs, 3, 0), "equal use should not be worth a pass");
  CHECK(sp_policy_pass(recs, 3, 0, m, 64) == 0, "equal use traded pages");
  w_host->uses = 7; /* 3.5x: still inside the ratio */
  CHECK(sp_policy_pass(recs, 3, 0, m, 64) == 0, "3.5x traded pages");
  printf("ok hysteresis\n");
  return 0;
}

static int evict(void) {
  sp_rec *old_idle = range(4, 4, 0, 1), *recent_idle = range(4, 4, 0, 50), *busy = range(4, 4, 30, 60);
  sp_rec *recs[] = {busy, recent_idle, old_idle};
  sp_move m[16];
  size_t n = sp_policy_evict(recs, 3, 6, m, 16);
  CHECK(n == 6, "%zu pages, want 6", n);
  for (int i = 0; i < 4; i++) CHECK(m[i].r == old_idle && m[i].page == (uint32_t)(3 - i), "move %d: not the oldest idle range's tail", i);
  for (int i = 4; i < 6; i++) CHECK(m[i].r == recent_idle, "move %d: should come from the next idle range", i);
  /* never named at all (loading): the oldest allocation leaves first */
  sp_rec *first = range(2, 2, 0, 0), *second = range(2, 2, 0, 0);
  sp_rec *load[] = {second, first};
  n = sp_policy_evict(load, 2, 2, m, 16);
  CHECK(n == 2 && m[0].r == first && m[1].r == first, "a newer allocation left before an older one");
  printf("ok evict\n");
  return 0;
}

static int room(void) {
  sp_rec *hot = range(4, 1, 40, 10), *once = range(4, 0, 1, 9), *idle = range(4, 0, 0, 8);
  sp_rec *recs[] = {idle, once, hot};
  sp_move m[16];
  CHECK(sp_policy_worth_a_pass(recs, 3, 4), "free room and host pages named since the last pass");
  size_t n = sp_policy_pass(recs, 3, 4, m, 16);
  CHECK(n == 4, "%zu moves, want the hot range's 3 host pages and one of the other", n);
  for (size_t i = 0; i < 3; i++) CHECK(m[i].r == hot && m[i].to == SP_PAGE_VRAM, "move %zu", i);
  CHECK(m[3].r == once && m[3].to == SP_PAGE_VRAM, "the range named once fills what room is left");
  n = sp_policy_pass(recs, 3, 16, m, 16);
  for (size_t i = 0; i < n; i++) CHECK(m[i].r != idle, "a range no launch named came in");
  /* no room: one use does not trade with VRAM pages of an idle range */
  sp_rec *full = range(4, 4, 0, 1), *named = range(4, 0, 1, 9);
  sp_rec *recs2[] = {full, named};
  CHECK(!sp_policy_worth_a_pass(recs2, 2, 0), "one use should not be worth a trade");
  CHECK(sp_policy_pass(recs2, 2, 0, m, 16) == 0, "one use traded pages");
  printf("ok room\n");
  return 0;
}

static int streamed(void) {
  /* a weight the engine stages, named by every prefill, half in VRAM; an activation in host */
  sp_rec *weight = range(8, 4, 400, 10), *act = range(4, 0, 8, 11);
  weight->stage_streamed = 1;
  sp_rec *recs[] = {weight, act};
  sp_move m[16];
  CHECK(sp_policy_worth_a_pass(recs, 2, 0), "an activation in host against a streamed weight in VRAM");
  size_t n = sp_policy_pass(recs, 2, 0, m, 16);
  CHECK(n == 8, "%zu moves, want 4 out + 4 in", n);
  for (size_t i = 0; i < n; i++)
    CHECK(m[i].to == SP_PAGE_HOST ? m[i].r == weight : m[i].r == act, "move %zu goes the wrong way", i);
  /* the other way round: the streamed weight in host never takes an activation's VRAM pages */
  sp_rec *w2 = range(8, 0, 400, 10), *a2 = range(4, 4, 2, 11);
  w2->stage_streamed = 1;
  sp_rec *recs2[] = {w2, a2};
  CHECK(!sp_policy_worth_a_pass(recs2, 2, 0), "a streamed weight should not be worth a trade");
  CHECK(sp_policy_pass(recs2, 2, 0, m, 16) == 0, "a streamed weight traded pages");
  /* free room it does fill: residency still saves its copy */
  n = sp_policy_pass(recs2, 2, 4, m, 16);
  CHECK(n == 4, "%zu moves, want the streamed weight's 4 pages into free room", n);
  for (size_t i = 0; i < n; i++) CHECK(m[i].r == w2 && m[i].to == SP_PAGE_VRAM, "move %zu", i);
  /* evictions for a fresh allocation take the streamed weight's pages first */
  sp_rec *w3 = range(4, 4, 400, 10), *a3 = range(4, 4, 2, 11);
  w3->stage_streamed = 1;
  sp_rec *recs3[] = {a3, w3};
  n = sp_policy_evict(recs3, 2, 4, m, 16);
  CHECK(n == 4, "%zu pages, want 4", n);
  for (size_t i = 0; i < n; i++) CHECK(m[i].r == w3, "eviction %zu took an activation's page", i);
  /* a range no launch named gives its VRAM pages to a staged one */
  sp_rec *w4 = range(8, 0, 40, 10), *idle = range(4, 4, 0, 1);
  w4->stage_streamed = 1;
  sp_rec *recs4[] = {w4, idle};
  CHECK(sp_policy_worth_a_pass(recs4, 2, 0), "a staged range against an unnamed one in VRAM");
  n = sp_policy_pass(recs4, 2, 0, m, 16);
  CHECK(n == 8, "%zu moves, want 4 out + 4 in", n);
  for (size_t i = 0; i < n; i++)
    CHECK(m[i].to == SP_PAGE_HOST ? m[i].r == idle : m[i].r == w4, "move %zu goes the wrong way", i);
  printf("ok streamed\n");
  return 0;
}

int main(int argc, char **argv) {
  const char *s = argc > 1 ? argv[1] : "";
  if (!strcmp(s, "trade")) return trade();
  if (!strcmp(s, "hysteresis")) return hysteresis();
  if (!strcmp(s, "evict")) return evict();
  if (!strcmp(s, "room")) return room();
  if (!strcmp(s, "streamed")) return streamed();
  fprintf(stderr, "usage: t_policy trade|hysteresis|evict|room|streamed\n");
  return 2;
}
