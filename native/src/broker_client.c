/*
** broker_client.c: STUB until the broker client lands: behaves as if no broker runs.
** (Replaced by the real implementation of broker_client.h.)
*/
#include "broker_client.h"

int sp_broker_open(int gpu_count, uint64_t pinned_wanted, uint64_t *pinned_lease, uint64_t *grow_step) {
  (void)gpu_count; (void)pinned_wanted; (void)pinned_lease; (void)grow_step;
  return 0;
}
int sp_broker_connected(void) { return 0; }
uint64_t sp_broker_vram(int device, uint64_t wanted, uint64_t physical) {
  (void)device; (void)physical;
  return wanted;
}
uint64_t sp_broker_pinned_grow(uint64_t extra, uint64_t *lease_total, int *deny_reason) {
  if (lease_total) *lease_total = 0;
  if (deny_reason) *deny_reason = 0;
  return extra;
}
void sp_broker_pinned_return(uint64_t bytes) { (void)bytes; }
uint64_t sp_broker_lease_cap(void) { return UINT64_MAX; }
void sp_broker_close(void) {}
void sp_broker_after_fork(void) {}
