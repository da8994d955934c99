/* Unit tests for client/progress: the bar on a terminal and the plain lines elsewhere. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/progress.h"

Test(progress, bytes_are_human)
{
	static const struct {
		uint64_t n;
		const char *want;
	} cases[] = {
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{10 * 1024 * 1024, "10.0 MiB"},
		{(uint64_t)3 << 30, "3.0 GiB"},
		{(uint64_t)5 << 40, "5.0 TiB"},
		{(uint64_t)2048 << 40, "2048.0 TiB"},
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_str_eq(progress_bytes(cases[i].n, buf, sizeof(buf)), cases[i].want);
}

static char *capture(enum progress_mode mode, int resume)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct progress p;

	cr_assert(f);
	progress_init(&p, mode, f);
	p.lines_ms = 0; /* every update draws: no timing in the test */
	progress_begin(&p, "job 1234abcd report.pdf", resume ? 512 * 1024 : 0, 1024 * 1024);
	progress_update(&p, 768 * 1024);
	progress_end(&p, 1024 * 1024, "all sent");
	fclose(f);
	return text;
}

Test(progress, lines_when_not_a_terminal)
{
	char *t = capture(PROGRESS_LINES, 0);

	cr_expect(strstr(t, "fs-client: job 1234abcd report.pdf: sending 1.0 MiB\n"), "%s", t);
	cr_expect(strstr(t, "75% 768.0 KiB of 1.0 MiB"), "%s", t);
	cr_expect(strstr(t, "all sent (1.0 MiB of 1.0 MiB sent"), "%s", t);
	cr_expect_null(strchr(t, '\r'), "no carriage return in plain lines");
	cr_expect_null(strchr(t, '\033'), "no terminal escape in plain lines");
	free(t);
	t = capture(PROGRESS_LINES, 1);
	cr_expect(strstr(t, "resuming at 512.0 KiB of 1.0 MiB"), "%s", t);
	cr_expect(strstr(t, "all sent (512.0 KiB of 1.0 MiB sent"), "only this request's bytes: %s",
		  t);
	free(t);
}

Test(progress, bar_on_a_terminal)
{
	char *t;

	/* The end always draws the bar once more, full, whatever the redraw interval. */
	t = capture(PROGRESS_BAR, 0);
	cr_expect(strstr(t, "\r"), "%s", t);
	cr_expect(strstr(t, "[========================] 100%"), "final bar full: %s", t);
	cr_expect(strstr(t, "\n"), "a newline ends the bar");
	free(t);
}

Test(progress, none_prints_nothing)
{
	char *t = capture(PROGRESS_NONE, 0);

	cr_expect_str_eq(t, "");
	free(t);
}

Test(progress, auto_follows_isatty)
{
	struct progress p;
	FILE *f = tmpfile();

	cr_assert(f);
	progress_init(&p, PROGRESS_AUTO, f);
	cr_expect_eq(p.bar, 0, "a file is not a terminal");
	cr_expect_eq(p.enabled, 1);
	fclose(f);
}
