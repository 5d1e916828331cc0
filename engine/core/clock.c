/* core/clock.c -- system and virtual clocks. */
#include <assert.h>
#include <time.h>
#include "core/clock.h"

static int64_t sys_now(rv_clock *c){
  struct timespec ts;
  (void)c;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static int64_t virt_now(rv_clock *c){ return c->virtual_ms; }

double rv_mono_ms(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void rv_clock_init_system(rv_clock *c){
  c->now = sys_now; c->virtual_ms = 0; c->is_virtual = false;
}
void rv_clock_init_virtual(rv_clock *c, int64_t start_ms){
  c->now = virt_now; c->virtual_ms = start_ms; c->is_virtual = true;
}
void rv_clock_advance(rv_clock *c, int64_t delta_ms){
  assert(c->is_virtual);
  c->virtual_ms += delta_ms;
}
void rv_clock_set(rv_clock *c, int64_t ms){
  assert(c->is_virtual);
  c->virtual_ms = ms;
}
