/*
** config.c: the SPILLOVER_* environment variables. A malformed value prints one line naming the
** variable and the accepted form, and the library then passes every call through untouched:
** a typo must never change how the program behaves beyond losing spillover.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sp.h"

sp_config sp_cfg;

/* "123", "1.5G", "512MiB", "8gb", "40%" (only where allow_pct). Binary units throughout. */
int sp_parse_size(const char *s, int allow_pct, sp_size *out) {
  char *end;
  errno = 0;
  while (*s == ' ') s++;
  if (*s == '\0' || *s == '-' || *s == '+') return -1;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0) return -1;
  while (*end == ' ') end++;
  if (*end == '%') {
    if (!allow_pct || end[1] != '\0' || v > 100.0) return -1;
    out->kind = 2;
    out->pct = v;
    out->bytes = 0;
    return 0;
  }
  double mul = 1;
  if (*end) {
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; break;
    case 'm': case 'M': mul = 1024.0 * 1024; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
    case 'b': case 'B': mul = 1; break;
    default: return -1;
    }
    const char *rest = end + 1;
    if (mul > 1 && (strcasecmp(rest, "") && strcasecmp(rest, "b") && strcasecmp(rest, "ib"))) return -1;
    if (mul == 1 && *rest) return -1;
  } else if (end[-1] == '.' || strchr(s, '.')) {
    return -1; /* fractional byte counts are a typo */
  }
  double bytes = v * mul;
  if (bytes >= 18446744073709551615.0) return -1;
  out->kind = 1;
  out->bytes = (uint64_t)bytes;
  out->pct = 0;
  return 0;
}

uint64_t sp_size_resolve(const sp_size *s, uint64_t pct_base, uint64_t dflt) {
  if (s->kind == 1) return s->bytes;
  if (s->kind == 2) return (uint64_t)((double)pct_base * s->pct / 100.0);
  return dflt;
}

static int bad(const char *var, const char *val, const char *form) {
  fprintf(stderr, "spillover: %s=\"%s\" is not %s; passing all CUDA calls through\n", var, val, form);
  return -1;
}

static const char *SIZE_FORM = "a size (use bytes or a number with K/M/G/T, or NN%)";
static const char *SIZE_FORM_NOPCT = "a size (use bytes or a number with K/M/G/T)";

static int size_var(const char *var, int allow_pct, sp_size *out) {
  const char *v = getenv(var);
  out->kind = 0;
  if (!v) return 0;
  /* Set but empty is most likely a failed shell expansion: "no limit" would be the worst guess. */
  if (!*v && !strcmp(var, "SPILLOVER_VRAM_LIMIT")) return bad(var, v, "a size (it is set but empty; unset it for the default)");
  if (!*v) return 0;
  if (sp_parse_size(v, allow_pct, out) != 0) return bad(var, v, allow_pct ? SIZE_FORM : SIZE_FORM_NOPCT);
  return 0;
}

/* SPILLOVER_VRAM_LIMIT / SPILLOVER_VRAM_RESERVE: one size for every GPU, or a per-GPU list
** "0:8G,1:12G" (GPUs not listed keep the default). The list fills per_dev; *all stays unset. */
static int size_or_list_var(const char *var, int positive, sp_size *all, sp_size per_dev[SP_MAX_DEV]) {
  const char *v = getenv(var);
  for (int i = 0; i < SP_MAX_DEV; i++) per_dev[i].kind = 0;
  if (!v || !strchr(v, ':')) {
    if (size_var(var, 1, all)) return -1;
    if (positive && all->kind == 1 && all->bytes == 0)
      return bad(var, v, "a positive size (use bytes or a number with K/M/G/T, or NN%)");
    return 0;
  }
  all->kind = 0;
  char buf[512], why[700];
  if (strlen(v) >= sizeof(buf)) return bad(var, v, "a size or a per-GPU list shorter than 512 bytes");
  memcpy(buf, v, strlen(v) + 1);
  char *save = NULL;
  for (char *e = strtok_r(buf, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
    char *colon = strchr(e, ':'), *end = NULL;
    long gpu = colon ? strtol(e, &end, 10) : -1;
    sp_size one;
    int ok = colon && end == colon && end != e && gpu >= 0 && gpu < SP_MAX_DEV && !per_dev[gpu].kind &&
             sp_parse_size(colon + 1, 1, &one) == 0 && !(positive && one.kind == 1 && one.bytes == 0);
    if (!ok) {
      snprintf(why, sizeof(why),
               "a size or a per-GPU list (entry \"%s\": use GPU:SIZE such as 0:8G,1:12G, each GPU 0-%d once, "
               "sizes in bytes, K/M/G/T or NN%%)",
               e, SP_MAX_DEV - 1);
      return bad(var, v, why);
    }
    per_dev[gpu] = one;
  }
  return 0;
}

static int path_var(const char *var, char *dst, size_t cap) {
  const char *v = getenv(var);
  dst[0] = '\0';
  if (!v || !*v) return 0;
  if (strlen(v) >= cap) return bad(var, v, "a path shorter than 512 bytes");
  memcpy(dst, v, strlen(v) + 1);
  return 0;
}

int sp_config_parse(sp_config *c) {
  const char *v;
  memset(c, 0, sizeof(*c));
  c->log_level = SP_LOG_WARN;
  if ((v = getenv("SPILLOVER_LOG")) && *v) {
    static const char *names[] = {"off", "error", "warn", "info", "debug"};
    int found = -1;
    for (int i = 0; i < 5; i++)
      if (!strcmp(v, names[i])) found = i;
    if (found < 0) return bad("SPILLOVER_LOG", v, "a log level (use off, error, warn, info or debug)");
    c->log_level = found;
  }
  if ((v = getenv("SPILLOVER_DISABLE")) && *v) {
    if (strcmp(v, "0") && strcmp(v, "1")) return bad("SPILLOVER_DISABLE", v, "a switch (use 1 to disable, 0 or unset to enable)");
    c->passthrough = v[0] == '1';
  }
  if ((v = getenv("SPILLOVER_KEEP_STATS")) && *v) {
    if (strcmp(v, "0") && strcmp(v, "1")) return bad("SPILLOVER_KEEP_STATS", v, "a switch (use 1 or 0)");
    c->keep_stats = v[0] == '1';
  }
  c->migrate = 1;
  if ((v = getenv("SPILLOVER_MIGRATE")) && *v) {
    if (strcmp(v, "0") && strcmp(v, "1")) return bad("SPILLOVER_MIGRATE", v, "a switch (use 1 or 0)");
    c->migrate = v[0] == '1';
  }
  c->stream = 1;
  if ((v = getenv("SPILLOVER_STREAM")) && *v) {
    if (strcmp(v, "0") && strcmp(v, "1")) return bad("SPILLOVER_STREAM", v, "a switch (use 1 or 0)");
    c->stream = v[0] == '1';
  }
  c->stream_ratio = 1.5;
  if ((v = getenv("SPILLOVER_STREAM_RATIO")) && *v) {
    char *end = NULL;
    double r = strtod(v, &end);
    if (end == v || *end || !(r >= 0 && r <= 1e6))
      return bad("SPILLOVER_STREAM_RATIO", v, "a number from 0 to 1000000 (the default is 1.5)");
    c->stream_ratio = r;
  }
  if ((v = getenv("SPILLOVER_STREAM_COPY")) && *v) {
    if (strcmp(v, "engine") && strcmp(v, "kernel")) return bad("SPILLOVER_STREAM_COPY", v, "a copy path (use engine or kernel)");
    c->stream_copy_kernel = v[0] == 'k';
  }
  if (size_var("SPILLOVER_STREAM_BUDGET", 1, &c->stream_budget)) return -1;
  if ((c->stream_budget.kind == 1 && c->stream_budget.bytes == 0) ||
      (c->stream_budget.kind == 2 && (c->stream_budget.pct <= 0 || c->stream_budget.pct > 100)))
    return bad("SPILLOVER_STREAM_BUDGET", getenv("SPILLOVER_STREAM_BUDGET"),
               "a positive size or a percent of the VRAM limit up to 100% (use SPILLOVER_STREAM=0 to turn streaming off)");
  if ((v = getenv("SPILLOVER_BROKER")) && *v) {
    if (strcmp(v, "auto") && strcmp(v, "off")) return bad("SPILLOVER_BROKER", v, "a broker mode (use auto or off)");
    c->broker_off = v[0] == 'o';
  }
  if (size_or_list_var("SPILLOVER_VRAM_LIMIT", 1, &c->vram_limit, c->vram_limit_dev)) return -1;
  if (size_or_list_var("SPILLOVER_VRAM_RESERVE", 0, &c->vram_reserve, c->vram_reserve_dev)) return -1;
  if (size_var("SPILLOVER_PINNED_LIMIT", 1, &c->pinned_limit)) return -1;
  if (size_var("SPILLOVER_HOST_RESERVE", 1, &c->host_reserve)) return -1;
  sp_size th;
  if (size_var("SPILLOVER_THRESHOLD", 0, &th)) return -1;
  c->threshold = th.kind ? th.bytes : SP_PAGE;
  if (path_var("SPILLOVER_STATS_DIR", c->stats_dir, sizeof(c->stats_dir))) return -1;
  if (path_var("SPILLOVER_LIBCUDA", c->libcuda, sizeof(c->libcuda))) return -1;
  /* A path that cannot be read is said here, once: a program that dlopens its own libcuda never
  ** makes us open this one, so real.c would have nothing to report. */
  if (strchr(c->libcuda, '/') && access(c->libcuda, R_OK) != 0) {
    c->libcuda_reported = 1;
    char why[128];
    snprintf(why, sizeof(why), "%s", strerror(errno));
    if (c->log_level >= SP_LOG_WARN)
      fprintf(stderr, "spillover: SPILLOVER_LIBCUDA=\"%s\" cannot be opened (%s); spillover finds no driver there: unset it or point it at the driver's libcuda.so.1\n", c->libcuda, why);
  }
  if (path_var("SPILLOVER_LIBNVML", c->libnvml, sizeof(c->libnvml))) return -1;
  if (path_var("SPILLOVER_TEST_HOST_ROOT", c->test_host_root, sizeof(c->test_host_root))) return -1;
  if (!c->stats_dir[0]) memcpy(c->stats_dir, "/dev/shm", 9);
  return 0;
}
