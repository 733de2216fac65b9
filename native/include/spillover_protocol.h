/*
** spillover_protocol.h: the two contracts between libspillover.so and the TypeScript side.
**
**  1. The broker socket protocol (version 1): fixed 64-byte little-endian frames over a Unix
**     stream socket. The interposer speaks it synchronously (request, then read the reply);
**     the broker may also push SP_MSG_LEASE_UPDATE at any time, which the client applies the
**     next time it reads the socket.
**  2. The stats record (version 1): a 4096-byte file at /dev/shm/spillover-<uid>-<pid>.stats,
**     written by the interposer under a seqlock and read by the broker and `spillover status`
**     (with or without a broker).
**
** docs/protocol.md describes both in prose; src/protocol/ is the TypeScript mirror, and the
** fixtures in test/fixtures/protocol/ are read by tests on both sides. Change nothing here
** without bumping the version and updating all three.
**
** No CUDA types here: this header is included by the interposer, the test double and tests.
*/
#ifndef SPILLOVER_PROTOCOL_H
#define SPILLOVER_PROTOCOL_H

#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
** 1. Broker socket protocol
** ------------------------------------------------------------------------------------------- */

#define SP_PROTO_MAGIC   0x564c5053u /* "SPLV" read as little-endian bytes */
#define SP_PROTO_VERSION 1u
#define SP_FRAME_SIZE    64u

/* Message types. Requests from the client have odd numbers, replies from the broker even. */
enum sp_msg_type {
  SP_MSG_HELLO         = 1,  /* c->b  a=pid, b=number of GPUs, c=pinned bytes wanted at start */
  SP_MSG_WELCOME       = 2,  /* b->c  a=pinned lease granted (bytes), b=pinned grow step (bytes),
                                       c=broker's pid */
  SP_MSG_VRAM_REQUEST  = 3,  /* c->b  a=device ordinal, b=VRAM bytes wanted, c=physical VRAM total */
  SP_MSG_VRAM_GRANT    = 4,  /* b->c  a=device ordinal, b=VRAM bytes granted (0..wanted) */
  SP_MSG_PINNED_GROW   = 5,  /* c->b  a=extra pinned bytes wanted */
  SP_MSG_PINNED_GRANT  = 6,  /* b->c  a=extra bytes granted (0 = refused), b=lease total now,
                                       c=sp_deny_reason when a < wanted */
  SP_MSG_PINNED_RETURN = 7,  /* c->b  a=pinned bytes given back; no reply */
  SP_MSG_LEASE_UPDATE  = 8,  /* b->c  unsolicited: a=new pinned lease cap (bytes), b=sp_pressure
                                       level. The client stops growing past the cap; it frees
                                       nothing it is using. */
  SP_MSG_BYE           = 9,  /* c->b  the client is exiting; the broker reclaims its lease */
  SP_MSG_ERROR         = 10, /* b->c  a=sp_error_code; the broker closes the connection after it */
};

enum sp_deny_reason {
  SP_DENY_NONE          = 0,
  SP_DENY_BUDGET        = 1, /* the machine-wide pinned budget is spent */
  SP_DENY_PRESSURE      = 2, /* the pressure watchdog has stopped pinned growth */
  SP_DENY_CLIENT_LIMIT  = 3, /* the client's own configured limit */
  SP_DENY_QUOTA         = 4, /* the client's user is at its quota (broker.quota); the machine may
                                have room for others */
};

enum sp_pressure_level {
  SP_PRESSURE_OK       = 0,
  SP_PRESSURE_WARN     = 1, /* grow slowly: grants shrink to the grow step */
  SP_PRESSURE_CRITICAL = 2, /* no growth at all */
};

enum sp_error_code {
  SP_ERR_BAD_MAGIC    = 1,
  SP_ERR_BAD_VERSION  = 2,
  SP_ERR_BAD_TYPE     = 3,
  SP_ERR_OUT_OF_ORDER = 4, /* e.g. a request before HELLO, or a second HELLO */
  SP_ERR_BAD_VALUE    = 5,
  SP_ERR_PEER_MISMATCH = 6, /* HELLO's pid is not the connecting process's as the kernel reports it
                               (SO_PEERCRED), or (per-user broker) the kernel's uid is not the
                               broker's. Nothing is leased; the client runs standalone. */
};

/* One frame. All fields little-endian; reserved fields must be zero. */
typedef struct sp_frame {
  uint32_t magic;      /* SP_PROTO_MAGIC */
  uint16_t version;    /* SP_PROTO_VERSION */
  uint16_t type;       /* enum sp_msg_type */
  uint64_t seq;        /* request number chosen by the client, echoed in the reply; 0 if unsolicited */
  uint64_t a, b, c, d; /* meaning per type, above */
  uint64_t reserved[2];
} sp_frame;

_Static_assert(sizeof(sp_frame) == SP_FRAME_SIZE, "sp_frame must be 64 bytes");

/* ---------------------------------------------------------------------------------------------
** 2. Stats record
** ------------------------------------------------------------------------------------------- */

#define SP_STATS_MAGIC      0x3153544154535053ull /* "SPSTATS1" read as little-endian bytes */
#define SP_STATS_VERSION    1u
#define SP_STATS_SIZE       4096u
#define SP_STATS_MAX_GPUS   8u
#define SP_STATS_TOP_ALLOCS 16u

enum sp_tier {
  SP_TIER_VRAM   = 0, /* T0: spillover's VRAM pages */
  SP_TIER_PINNED = 1, /* T1: pinned host pages behind device pointers */
  SP_TIER_SWAP   = 2, /* T2: pageable, swappable (not implemented yet; always 0) */
  SP_TIER_COUNT  = 3,
};

enum sp_stats_mode {
  SP_MODE_PASSTHROUGH = 0, /* not tiering (bad config, no VMM support, or disabled) */
  SP_MODE_STANDALONE  = 1, /* budgets from the environment */
  SP_MODE_BROKER      = 2, /* lease from a broker */
};

enum sp_alloc_kind {
  SP_ALLOC_TIERED  = 0, /* spillover's own VA + pages (cuMemAlloc*, cuMemAllocAsync*) */
  SP_ALLOC_PROGRAM_VMM = 1, /* the program's own cuMemCreate */
};

/* Per GPU (device ordinal = index). 18 * 8 = 144 bytes. */
typedef struct sp_stats_gpu {
  uint64_t vram_physical;        /* the card's total VRAM */
  uint64_t vram_limit;           /* the VRAM budget (env, or broker grant) */
  uint64_t vram_reserve;         /* kept free for late allocations */
  uint64_t tier_bytes[SP_TIER_COUNT];      /* bytes of spillover pages now in each tier */
  uint64_t tier_peak[SP_TIER_COUNT];       /* highest value each tier_bytes has had */
  uint64_t passthrough_bytes;    /* allocations passed straight to the driver (small ones) */
  uint64_t passthrough_peak;
  uint64_t program_vmm_bytes;    /* the program's own cuMemCreate, device-backed */
  uint64_t program_vmm_host_bytes; /* the program's own cuMemCreate, backed by pinned host */
  uint64_t reported_total;       /* what cuMemGetInfo/cuDeviceTotalMem/NVML report as total */
  uint64_t reported_free;        /* what cuMemGetInfo reported as free, last time it was asked */
  uint64_t reserved[3];
} sp_stats_gpu;

/* One of the largest live allocations. 6 * 8 = 48 bytes. */
typedef struct sp_stats_alloc {
  uint64_t dptr;
  uint64_t size;
  uint64_t vram_bytes;
  uint64_t pinned_bytes;
  uint32_t device;
  uint32_t kind;                 /* enum sp_alloc_kind */
  uint64_t reserved0;
} sp_stats_alloc;

/* The streaming engine (native/src/stream.c), all devices together; zero while it is off or has
** staged nothing. Added in the former padding: records written before it read as zeros. 16 * 8. */
typedef struct sp_stats_stream {
  uint64_t staged_bytes;     /* bytes copied into VRAM staging slots ahead of the kernels */
  uint64_t staged_ranges;    /* ranges staged */
  uint64_t stage_hits;       /* launches that read a staged copy instead of host pages */
  uint64_t late_stages;      /* stagings made by the launch that needed them (not prefetched) */
  uint64_t writeback_pages;  /* staged pages a kernel wrote, copied back before unstaging */
  uint64_t inplace_launches; /* launches naming host pages that read them in place */
  uint64_t copy_busy_ns;     /* copy stream busy time, measured with events */
  uint64_t budget_bytes;     /* VRAM staging arena now (inside the VRAM limit) */
  uint64_t fallbacks;        /* stagings that could not be made (no room, a failed copy) */
  uint64_t reserved[7];
} sp_stats_stream;

/* The whole record; the file is exactly SP_STATS_SIZE bytes. Readers: read the file, check
** magic, version and that seq is even and equal before and after the copy (else retry). */
typedef struct sp_stats {
  /* header: 64 bytes */
  uint64_t magic;                /* SP_STATS_MAGIC */
  uint32_t version;              /* SP_STATS_VERSION */
  uint32_t size;                 /* SP_STATS_SIZE */
  uint64_t seq;                  /* seqlock: odd while the writer is inside */
  int32_t  pid;
  uint32_t gpu_count;            /* valid entries in gpu[] */
  uint64_t start_unix_ns;        /* when the interposer initialised */
  uint64_t update_unix_ns;       /* last write */
  uint32_t mode;                 /* enum sp_stats_mode */
  uint32_t exited;               /* 1 once the process has run its exit summary */
  uint64_t reserved_header;

  /* pinned host memory, machine-wide for this process: 10 * 8 = 80 bytes */
  uint64_t pinned_limit;         /* standalone budget, or the broker's lease cap */
  uint64_t pinned_lease;         /* bytes the broker has granted (0 standalone) */
  uint64_t pinned_pool_bytes;    /* pinned host memory created (the pool, used or not) */
  uint64_t pinned_used_bytes;    /* pool bytes backing live pages */
  uint64_t pinned_peak_bytes;    /* highest pinned_pool_bytes */
  uint64_t reserved_pinned[5];

  /* counters since start: 16 * 8 = 128 bytes */
  uint64_t alloc_calls;          /* every intercepted allocation call */
  uint64_t free_calls;
  uint64_t tiered_allocs;        /* allocations that became spillover VA ranges */
  uint64_t passthrough_allocs;
  uint64_t oom_returned;         /* CUDA_ERROR_OUT_OF_MEMORY returned to the program */
  uint64_t pages_vram;           /* 2 MiB pages ever placed in VRAM */
  uint64_t pages_pinned;         /* 2 MiB pages ever placed in pinned host memory */
  uint64_t migrations;           /* pages moved between tiers */
  uint64_t pool_grows;           /* pinned pool chunks created */
  uint64_t lease_denials;        /* pinned growth refused by the broker */
  uint64_t bad_args;             /* calls rejected for bad arguments (NULL, double free, ...) */
  uint64_t largest_alloc;        /* bytes */
  uint64_t reserved_counters[4];

  char cmdline[256];             /* NUL-terminated, arguments separated by spaces, truncated */

  sp_stats_gpu   gpu[SP_STATS_MAX_GPUS];         /* 8 * 144 = 1152 bytes */
  uint32_t       top_count;                      /* valid entries in top[] */
  uint32_t       reserved_top;
  sp_stats_alloc top[SP_STATS_TOP_ALLOCS];       /* 16 * 48 = 768 bytes, largest first */

  sp_stats_stream stream;                        /* 128 bytes: the streaming engine */

  uint8_t padding[SP_STATS_SIZE - 64 - 80 - 128 - 256 - 1152 - 8 - 768 - 128];
} sp_stats;

_Static_assert(sizeof(sp_stats_gpu) == 144, "sp_stats_gpu layout");
_Static_assert(sizeof(sp_stats_alloc) == 48, "sp_stats_alloc layout");
_Static_assert(sizeof(sp_stats_stream) == 128, "sp_stats_stream layout");
_Static_assert(sizeof(sp_stats) == SP_STATS_SIZE, "sp_stats must be 4096 bytes");

#endif /* SPILLOVER_PROTOCOL_H */
