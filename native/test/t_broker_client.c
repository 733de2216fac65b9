/*
** t_broker_client.c: drives the interposer's broker client (src/broker_client.c) from a script
** given on the command line, so the TypeScript broker tests exercise the real C side.
** One line of output per step, "key=value" words, e.g. "grow granted=1048576 total=... reason=0".
**
**   t_broker_client 'hello GPUS WANT' 'grow BYTES' 'growloop CHUNK TOTAL' 'vram DEV WANT PHYS'
**                   'return BYTES' 'cap' 'sleep MS' 'hold' 'fork WANT' 'bye' ...
** `hold` prints "holding" and blocks until stdin reaches EOF (the test kills it meanwhile).
**
** Build: gcc -std=c11 -Inative/include -Inative/src native/test/t_broker_client.c
**        native/src/broker_client.c -lpthread
*/
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker_client.h"

static uint64_t num(const char *s) { return s ? strtoull(s, NULL, 0) : 0; }

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (int i = 1; i < argc; i++) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", argv[i]);
    char *op = strtok(buf, " ");
    char *x = strtok(NULL, " "), *y = strtok(NULL, " "), *z = strtok(NULL, " ");
    if (!op) continue;
    if (strcmp(op, "hello") == 0) {
      uint64_t lease = 0, step = 0;
      int ok = sp_broker_open((int)num(x), num(y), &lease, &step);
      printf("hello connected=%d lease=%" PRIu64 " step=%" PRIu64 " refused=%d\n", ok, lease, step, sp_broker_refusal());
    } else if (strcmp(op, "grow") == 0) {
      uint64_t total = 0;
      int reason = 0;
      uint64_t g = sp_broker_pinned_grow(num(x), &total, &reason);
      printf("grow granted=%" PRIu64 " total=%" PRIu64 " reason=%d connected=%d\n", g, total, reason,
             sp_broker_connected());
    } else if (strcmp(op, "growloop") == 0) {
      /* asks CHUNK at a time until TOTAL has been asked for; reports the sum and the refusals */
      uint64_t chunk = num(x), want = num(y), asked = 0, got = 0, total = 0, refused = 0;
      int reason = 0, last_reason = 0;
      while (asked < want) {
        uint64_t g = sp_broker_pinned_grow(chunk, &total, &reason);
        asked += chunk;
        got += g;
        if (g < chunk) {
          refused++;
          last_reason = reason;
        }
      }
      printf("growloop granted=%" PRIu64 " total=%" PRIu64 " refused=%" PRIu64 " reason=%d connected=%d\n", got,
             total, refused, last_reason, sp_broker_connected());
    } else if (strcmp(op, "vram") == 0) {
      uint64_t g = sp_broker_vram((int)num(x), num(y), num(z));
      printf("vram granted=%" PRIu64 "\n", g);
    } else if (strcmp(op, "return") == 0) {
      sp_broker_pinned_return(num(x));
      printf("return ok=1\n");
    } else if (strcmp(op, "cap") == 0) {
      uint64_t c = sp_broker_lease_cap();
      printf("cap cap=%" PRIu64 " connected=%d\n", c, sp_broker_connected());
    } else if (strcmp(op, "sleep") == 0) {
      struct timespec ts = { (time_t)(num(x) / 1000), (long)(num(x) % 1000) * 1000000L };
      nanosleep(&ts, NULL);
    } else if (strcmp(op, "hold") == 0) {
      printf("holding\n");
      char c;
      while (read(0, &c, 1) > 0) {
      }
    } else if (strcmp(op, "fork") == 0) {
      /* the child forgets the parent's connection, opens its own, and exits */
      pid_t pid = fork();
      if (pid == 0) {
        sp_broker_after_fork();
        int before = sp_broker_connected();
        uint64_t lease = 0, step = 0;
        int ok = sp_broker_open(1, num(x), &lease, &step);
        printf("child before=%d connected=%d lease=%" PRIu64 " pid=%d\n", before, ok, lease, (int)getpid());
        fflush(stdout);
        _exit(0);
      }
      int st = 0;
      waitpid(pid, &st, 0);
      printf("fork child_exit=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    } else if (strcmp(op, "bye") == 0) {
      sp_broker_close();
      printf("bye ok=1\n");
    } else {
      fprintf(stderr, "t_broker_client: unknown step %s\n", op);
      return 2;
    }
  }
  return 0;
}
