/*
** broker_client.h: the interposer's side of the broker socket protocol
** (include/spillover_protocol.h, docs/protocol.md).
**
** Synchronous and minimal: the interposer asks, waits for the reply with a timeout, and treats
** any failure as "no broker" (standalone budgets) rather than ever failing the program's call.
** Every function is safe to call from any thread (one mutex guards the socket) and from a
** forked child (the child drops the parent's connection; see sp_broker_after_fork).
*/
#ifndef SPILLOVER_BROKER_CLIENT_H
#define SPILLOVER_BROKER_CLIENT_H

#include <stdint.h>

/* Connects to the socket named by SPILLOVER_SOCKET (or the default user/system paths) and sends
** HELLO. Returns 1 when a broker answered (lease and grow step filled in), 0 when none runs. */
int sp_broker_open(int gpu_count, uint64_t pinned_wanted, uint64_t *pinned_lease, uint64_t *grow_step);

/* The sp_error_code of the broker's last ERROR frame (e.g. SP_ERR_PEER_MISMATCH), 0 if none. */
int sp_broker_refusal(void);

/* Returns 1 if connected to a broker. */
int sp_broker_connected(void);

/* Asks for `wanted` bytes of VRAM on `device`; returns the grant (<= wanted), or `wanted` when
** no broker is connected. */
uint64_t sp_broker_vram(int device, uint64_t wanted, uint64_t physical);

/* Asks for `extra` more bytes of pinned lease. Returns the bytes granted (0 = refused) and sets
** *lease_total and *deny_reason (enum sp_deny_reason). Without a broker returns `extra`. */
uint64_t sp_broker_pinned_grow(uint64_t extra, uint64_t *lease_total, int *deny_reason);

/* Gives `bytes` of pinned lease back. No reply. */
void sp_broker_pinned_return(uint64_t bytes);

/* The lease cap most recently pushed by the broker (SP_MSG_LEASE_UPDATE), or UINT64_MAX. */
uint64_t sp_broker_lease_cap(void);

/* Sends BYE and closes. */
void sp_broker_close(void);

/* In a forked child: forget the parent's connection without sending anything on it. */
void sp_broker_after_fork(void);

#endif /* SPILLOVER_BROKER_CLIENT_H */
