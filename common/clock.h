/* clock: milliseconds from the two clocks the programs use. */
#ifndef FSG_COMMON_CLOCK_H
#define FSG_COMMON_CLOCK_H

#include <stdint.h>

/* Unix time in ms (CLOCK_REALTIME): for timestamps that leave the process. */
int64_t clock_unix_ms(void);

/* CLOCK_MONOTONIC in ms: for deadlines and intervals inside the process. */
int64_t clock_mono_ms(void);

/* Sleeps ms milliseconds (restarted after a signal). */
void clock_sleep_ms(int64_t ms);

#endif
