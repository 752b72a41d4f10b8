/*
 * clock.h — time, with an offset that tests and `parleyd --clock-offset` can inject so
 * retention and expiry can be proven without waiting (P9, P31).
 * Thread-safe (the offset is atomic).
 */
#ifndef PARLEY_CLOCK_H
#define PARLEY_CLOCK_H

#include <stdint.h>

/* Wall-clock time in seconds / milliseconds since the epoch, plus the injected offset. */
int64_t clock_now_s(void);
int64_t clock_now_ms(void);
/* Monotonic microseconds (no offset): for latencies and timeouts. */
uint64_t clock_mono_us(void);
/* Shift the wall clock by offset_s seconds (tests only; default 0). */
void clock_set_offset_s(int64_t offset_s);

#endif
