/* Tests common/clock.c: the two clocks in ms, and sleeping. */
#include <criterion/criterion.h>
#include <time.h>

#include "common/clock.h"

Test(clock, unix_ms_is_the_wall_clock)
{
	int64_t ms = clock_unix_ms();
	int64_t s = (int64_t)time(NULL);

	cr_assert_geq(ms / 1000, s - 1);
	cr_assert_leq(ms / 1000, s + 1);
}

Test(clock, mono_ms_never_goes_back_and_sleep_waits)
{
	int64_t a = clock_mono_ms(), b;

	clock_sleep_ms(30);
	b = clock_mono_ms();
	cr_assert_geq(b - a, 30);
	cr_assert_lt(b - a, 5000);
	clock_sleep_ms(0);
	clock_sleep_ms(-5);
	cr_assert_geq(clock_mono_ms(), b);
}
