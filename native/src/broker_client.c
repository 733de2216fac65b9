/*
** broker_client.c: the interposer's client of the broker socket protocol
** (include/spillover_protocol.h, docs/protocol.md).
**
** One Unix stream socket, one mutex, synchronous request/reply with a deadline. Any failure
** (no socket, timeout, short read, a frame that does not parse, an ERROR frame) closes the
** connection and from then on every call answers as if no broker ran: the interposer falls back
** to its standalone budgets and the program's call never fails because of the broker.
** LEASE_UPDATE frames pushed by the broker are applied whenever the socket is read (before each
** request and in sp_broker_lease_cap). An ERROR frame is reported in one log line naming the
** code (sp_log when linked into the interposer, stderr in the standalone test build).
** No allocations; no CUDA.
*/
#define _GNU_SOURCE
#include "broker_client.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sp.h"
#include "spillover_protocol.h"

/* log.c's logger inside libspillover.so; absent (NULL) in the standalone test build of this file. */
#pragma weak sp_log

#define SP_BROKER_TIMEOUT_MS 2000 /* a loaded broker (ten clients at once on 2 cores) can take over 500 ms */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_fd = -1;
static uint64_t g_seq;
static uint64_t g_lease_cap = UINT64_MAX;
static uint64_t g_lease_total;
static int g_pressure;
static int g_refused;          /* the last sp_error_code the broker sent, 0 if none */
static char g_path[256];       /* the socket connected to, for the refusal line */

/* ---- low-level I/O (caller holds g_mu) -------------------------------------------------- */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void drop(void) {
  if (g_fd >= 0) close(g_fd);
  g_fd = -1;
}

static int write_all(const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(g_fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads exactly one frame before `deadline` (ms, monotonic); `deadline` < 0 means "only if one is
** already there": returns 0 with nothing read when the socket is empty. 1 = frame read, -1 = error. */
static int read_frame(sp_frame *f, int64_t deadline) {
  char *p = (char *)f;
  size_t got = 0;
  while (got < sizeof *f) {
    int wait_ms = 0;
    if (deadline >= 0) {
      int64_t left = deadline - now_ms();
      if (left <= 0) return -1;
      wait_ms = (int)left;
    } else if (got > 0) {
      wait_ms = SP_BROKER_TIMEOUT_MS; /* half a frame is there: the rest follows at once */
    }
    struct pollfd pfd = { .fd = g_fd, .events = POLLIN, .revents = 0 };
    int r = poll(&pfd, 1, wait_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) {
      if (deadline < 0 && got == 0) return 0;
      return -1;
    }
    ssize_t n = recv(g_fd, p + got, sizeof *f - got, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return -1; /* closed by the broker, or an error */
    got += (size_t)n;
  }
  if (f->magic != SP_PROTO_MAGIC || f->version != SP_PROTO_VERSION) return -1;
  return 1;
}

static const char *error_text(uint64_t code) {
  switch (code) {
  case SP_ERR_BAD_MAGIC: return "BAD_MAGIC (not a spillover broker, or a corrupted frame)";
  case SP_ERR_BAD_VERSION: return "BAD_VERSION (the broker speaks another protocol version)";
  case SP_ERR_BAD_TYPE: return "BAD_TYPE (a message the broker does not expect)";
  case SP_ERR_OUT_OF_ORDER: return "OUT_OF_ORDER (a request out of sequence)";
  case SP_ERR_BAD_VALUE: return "BAD_VALUE (a value out of range)";
  case SP_ERR_PEER_MISMATCH:
    return "PEER_MISMATCH (the kernel reports another pid or uid for this connection than HELLO "
           "names: a PID namespace between program and broker, or a per-user broker of another user)";
  default: return "unknown error code";
  }
}

/* One line per refusal: why this process runs without the broker. */
static void report_error(uint64_t code) {
  g_refused = (int)code;
  if (sp_log)
    sp_log(SP_LOG_WARN, "broker at %s refused this process: error %llu %s; running with standalone budgets",
           g_path, (unsigned long long)code, error_text(code));
  else
    fprintf(stderr, "spillover: broker at %s refused this process: error %llu %s\n", g_path,
            (unsigned long long)code, error_text(code));
}

/* Applies an unsolicited frame. Returns 0 if handled, -1 if the connection must go. */
static int apply_push(const sp_frame *f) {
  if (f->type == SP_MSG_LEASE_UPDATE) {
    g_lease_cap = f->a;
    g_pressure = (int)f->b;
    return 0;
  }
  if (f->type == SP_MSG_ERROR) report_error(f->a);
  return -1; /* ERROR, or anything we did not ask for */
}

/* Drains frames the broker pushed since the last read. */
static void drain_pushes(void) {
  sp_frame f;
  while (g_fd >= 0) {
    int r = read_frame(&f, -1);
    if (r == 0) return;
    if (r < 0 || apply_push(&f) != 0) drop();
  }
}

/* Sends a request and waits for the reply of `reply_type` with the same seq. 0 = ok, -1 = the
** connection is gone (already dropped). `reply` may be NULL for requests without a reply. */
static int request(uint16_t type, uint64_t a, uint64_t b, uint64_t c, uint16_t reply_type, sp_frame *reply) {
  if (g_fd < 0) return -1;
  drain_pushes();
  if (g_fd < 0) return -1;
  sp_frame f;
  memset(&f, 0, sizeof f);
  f.magic = SP_PROTO_MAGIC;
  f.version = SP_PROTO_VERSION;
  f.type = type;
  f.seq = ++g_seq;
  f.a = a;
  f.b = b;
  f.c = c;
  if (write_all(&f, sizeof f) != 0) {
    drop();
    return -1;
  }
  if (!reply) return 0;
  int64_t deadline = now_ms() + SP_BROKER_TIMEOUT_MS;
  for (;;) {
    if (read_frame(reply, deadline) != 1) break;
    if (reply->type == reply_type && reply->seq == f.seq) return 0;
    if (reply->seq != 0 || apply_push(reply) != 0) break;
  }
  drop();
  return -1;
}

/* ---- connecting ---------------------------------------------------------------------- */

static int try_connect(const char *path) {
  struct sockaddr_un sa;
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof sa.sun_path) return -1;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, len);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sa, (socklen_t)sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  snprintf(g_path, sizeof g_path, "%s", path);
  return fd;
}

/* SPILLOVER_SOCKET, else the user's socket, else the system one (docs/protocol.md). */
static int connect_broker(void) {
  const char *mode = getenv("SPILLOVER_BROKER");
  if (mode && strcmp(mode, "off") == 0) return -1;
  const char *env = getenv("SPILLOVER_SOCKET");
  if (env && *env) return try_connect(env);
  char path[256];
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  int fd = -1;
  if (xdg && *xdg) {
    if ((size_t)snprintf(path, sizeof path, "%s/spillover/broker.sock", xdg) < sizeof path) fd = try_connect(path);
  }
  if (fd < 0) {
    snprintf(path, sizeof path, "/tmp/spillover-%u/broker.sock", (unsigned)getuid());
    fd = try_connect(path);
  }
  if (fd < 0) fd = try_connect("/run/spillover/broker.sock");
  return fd;
}

/* ---- API ------------------------------------------------------------------------------ */

int sp_broker_open(int gpu_count, uint64_t pinned_wanted, uint64_t *pinned_lease, uint64_t *grow_step) {
  pthread_mutex_lock(&g_mu);
  drop();
  g_seq = 0;
  g_lease_cap = UINT64_MAX;
  g_lease_total = 0;
  g_pressure = SP_PRESSURE_OK;
  g_refused = 0;
  g_fd = connect_broker();
  sp_frame w;
  int ok = g_fd >= 0 &&
           request(SP_MSG_HELLO, (uint64_t)getpid(), gpu_count < 0 ? 0 : (uint64_t)gpu_count, pinned_wanted,
                   SP_MSG_WELCOME, &w) == 0;
  if (ok) {
    g_lease_total = w.a;
    if (pinned_lease) *pinned_lease = w.a;
    if (grow_step) *grow_step = w.b;
  }
  pthread_mutex_unlock(&g_mu);
  return ok;
}

int sp_broker_refusal(void) {
  pthread_mutex_lock(&g_mu);
  int r = g_refused;
  pthread_mutex_unlock(&g_mu);
  return r;
}

int sp_broker_connected(void) {
  pthread_mutex_lock(&g_mu);
  int c = g_fd >= 0;
  pthread_mutex_unlock(&g_mu);
  return c;
}

uint64_t sp_broker_vram(int device, uint64_t wanted, uint64_t physical) {
  pthread_mutex_lock(&g_mu);
  uint64_t granted = wanted;
  sp_frame r;
  if (device >= 0 && request(SP_MSG_VRAM_REQUEST, (uint64_t)device, wanted, physical, SP_MSG_VRAM_GRANT, &r) == 0) {
    granted = r.b < wanted ? r.b : wanted;
  }
  pthread_mutex_unlock(&g_mu);
  return granted;
}

uint64_t sp_broker_pinned_grow(uint64_t extra, uint64_t *lease_total, int *deny_reason) {
  pthread_mutex_lock(&g_mu);
  uint64_t granted = extra, total = 0;
  int reason = SP_DENY_NONE;
  sp_frame r;
  if (request(SP_MSG_PINNED_GROW, extra, 0, 0, SP_MSG_PINNED_GRANT, &r) == 0) {
    granted = r.a < extra ? r.a : extra;
    total = g_lease_total = r.b;
    reason = granted < extra ? (int)r.c : SP_DENY_NONE;
  }
  pthread_mutex_unlock(&g_mu);
  if (lease_total) *lease_total = total;
  if (deny_reason) *deny_reason = reason;
  return granted;
}

void sp_broker_pinned_return(uint64_t bytes) {
  pthread_mutex_lock(&g_mu);
  if (request(SP_MSG_PINNED_RETURN, bytes, 0, 0, 0, NULL) == 0) {
    g_lease_total = bytes < g_lease_total ? g_lease_total - bytes : 0;
  }
  pthread_mutex_unlock(&g_mu);
}

uint64_t sp_broker_lease_cap(void) {
  pthread_mutex_lock(&g_mu);
  if (g_fd >= 0) drain_pushes();
  uint64_t cap = g_fd >= 0 ? g_lease_cap : UINT64_MAX;
  pthread_mutex_unlock(&g_mu);
  return cap;
}

void sp_broker_close(void) {
  pthread_mutex_lock(&g_mu);
  if (g_fd >= 0) request(SP_MSG_BYE, 0, 0, 0, 0, NULL);
  drop();
  pthread_mutex_unlock(&g_mu);
}

void sp_broker_after_fork(void) {
  /* Another thread of the parent may have held g_mu at fork time: start from a fresh one. The
  ** close only drops the child's reference; the parent's connection stays open. */
  pthread_mutex_init(&g_mu, NULL);
  if (g_fd >= 0) close(g_fd);
  g_fd = -1;
  g_lease_cap = UINT64_MAX;
  g_lease_total = 0;
}
