/*
** core/clock.h -- the engine's only source of time.
**
** Everything that needs "now" (timers, due dates, Lua's clock, history
** timestamps) asks an rv_clock. Production uses the system clock; tests
** and replay use a virtual clock that moves only when told to.
** Times are milliseconds since the Unix epoch, UTC.
*/
#ifndef RV_CORE_CLOCK_H
#define RV_CORE_CLOCK_H
#include <stdint.h>
#include <stdbool.h>

typedef struct rv_clock {
  int64_t (*now)(struct rv_clock *c);
  int64_t virtual_ms;          /* used by the virtual clock only */
  bool    is_virtual;
} rv_clock;

void    rv_clock_init_system(rv_clock *c);
void    rv_clock_init_virtual(rv_clock *c, int64_t start_ms);
void    rv_clock_advance(rv_clock *c, int64_t delta_ms);  /* virtual only */
void    rv_clock_set(rv_clock *c, int64_t ms);            /* virtual only */
static inline int64_t rv_clock_now(rv_clock *c){ return c->now(c); }

/* Milliseconds of CLOCK_MONOTONIC: for measuring how long something took. */
double  rv_mono_ms(void);

#endif
