/*
 * A flooding QEMU cannot grow qmpmuxd's memory, a QEMU that goes while
 * reads are paused is noticed and its last events delivered, and slow
 * clients are closed only when closing them lets QEMU go on: the
 * scripted fake QEMU behind qmpmuxd.
 */
#include "config.h"

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "testlib.h"

static char	*dsock;		/* the listener that disconnects slow clients */

/* Beside the common fixture: the path of the second listener. */
static void
setup(void)
{
	dsock = t_path("slow.sock");
}

static void
teardown(void)
{
	free(dsock);
}

/*
 * A flood of 100,000 events on a trigger, and qmpmuxd with two
 * listeners: dsock disconnects slow clients after 1 s, t_psock blocks.
 */
static void
start_two_listeners(void)
{
	const char	*fargs[] = { "--flood", "100000", "--trigger", "flood",
	    NULL };
	const char	*opts[] = { "--max-queued-events", "1000",
	    "--slow-client", "disconnect", "--slow-client-timeout", "1",
	    "--listen", dsock, "--slow-client", "block", NULL };

	t_start_fake(fargs, opts);
}

/*
 * The slow client, client 1 of a disconnect listener, is closed as slow:
 * the close is seen without reading (a client that reads is not slow),
 * then what is left in its socket is read to the end, and its close is
 * logged with that reason.  Returns the FLOOD events it got.
 */
static long
slow_cut(struct t_client *slow)
{
	struct t_flood	 f;

	ck_assert(t_hungup(slow, T_WAIT_MS));
	t_flood_init(&f, slow);
	ck_assert_int_eq(t_flood_read(&f, LONG_MAX, SIZE_MAX), -1);
	ck_assert(t_eof(slow, 0));
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm test: client 1: "
	    "closed: slow client: QEMU's reads paused for 1s with "), 1);
	return (f.n);
}

/*
 * A million events while one client reads nothing: qmpmuxd pauses its
 * reads at the byte bound, and its memory stays within a bound made of
 * the configured limits, while paused and at its peak; then the client
 * gets every event, in order.
 */
START_TEST(test_flood_bounded)
{
	const char	*fargs[] = { "--flood", "1000000", "--trigger", "flood",
	    NULL };
	const char	*opts[] = { "--max-queued-events", "1000000",
	    "--max-queued-bytes", "2M", NULL };
	const long	 bytes_bound = 2L << 20;
	struct t_client	*c;
	struct t_flood	 r;
	long		 base_kb, paused_kb, later_kb, peak_kb, limit_kb;
	double		 eps;
	long long	 t0;

	t_small_quarantine();
	c = t_flood_start(fargs, opts, 1000000, (size_t)bytes_bound, &r,
	    &base_kb);
	paused_kb = t_proc_kb(t_proxy_pid, "VmRSS");
	/* the backlog is the bound: the last event took it to 2 MiB */
	ck_assert_uint_ge(r.bytes, (size_t)bytes_bound);
	ck_assert_uint_lt(r.bytes - r.last, (size_t)bytes_bound);
	/* while c reads nothing, nothing more is read from QEMU */
	ck_assert_int_eq(t_quiet(r.c, 500), T_SILENT);
	later_kb = t_proc_kb(t_proxy_pid, "VmRSS");
	/*
	 * The backlog holds max_queued_bytes of events, as a batch per read
	 * from QEMU with one chain per batch in the client's output; allow
	 * three times the bound for that and the sanitizers' redzones and
	 * shadow, and 4 MiB for input buffers, the replies that clog c and
	 * allocator slack.  Each client's out ring (max_client_output, 1 MiB
	 * by default, and 64 KiB) is mapped as it is written, two of them.
	 */
	limit_kb = base_kb + (3 * bytes_bound + (4L << 20) +
	    2 * ((1L << 20) + (64L << 10))) / 1024;
	printf("flood: RSS %ld kB before, %ld kB with reads paused, %ld kB "
	    "0.5 s later (bound %ld kB, max_queued_bytes %ld kB)\n", base_kb,
	    paused_kb, later_kb, limit_kb, bytes_bound / 1024);
	ck_assert_int_le(paused_kb, limit_kb);
	ck_assert_int_le(later_kb, limit_kb);
	/* it did buffer up to the bound: most of 2 MiB of events */
	ck_assert_int_ge(paused_kb - base_kb, bytes_bound / 1024 / 2);

	/* a million events are far past the bound: c's reads resume QEMU's */
	t_client_free(r.c);
	t0 = t_clock_ms();
	ck_assert_int_eq(t_read_flood(c, 1000000, NULL), 0);
	eps = 1e6 * 1000 / (double)(t_clock_ms() - t0 + 1);
	peak_kb = t_proc_kb(t_proxy_pid, "VmHWM");
	printf("flood: 1000000 events drained in order at %.0f events/s; "
	    "peak RSS %ld kB (bound %ld kB)\n", eps, peak_kb, limit_kb);
	ck_assert_int_le(peak_kb, limit_kb);
	t_client_free(c);
}
END_TEST

/*
 * The host's budget: two VMs whose own bounds (64M) would each hold a
 * whole flood, and max_total_queued_bytes = 2M for both together.  The
 * first VM's backlog stops at the budget; the second, flooding then,
 * reads on up to its share (half the budget, with two VMs), whatever
 * events) whatever the first holds, and stops there; qmpmuxd's memory
 * stays within what the budget allows (at most twice it), not what the
 * VMs' bounds would; and once the holders go, both resume and every
 * event of both arrives in order, each VM's reader read on its own.
 */
START_TEST(test_host_budget)
{
	const char	*fargs[] = { "--flood", "300000", "--trigger", "flood",
	    NULL };
	const long	 budget = 2L << 20;
	char		*conf, *fa, *fb, *pa, *pb;
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "-f", NULL, NULL };
	struct t_client	*ha, *ra, *hb, *rb;
	struct t_flood	 fla, flb;
	pid_t		 fake_b;
	long		 base_kb, paused_kb, peak_kb, limit_kb;
	FILE		*f;

	t_small_quarantine();
	conf = t_path("qmpmuxd.conf");
	fa = t_path("fa.sock");
	fb = t_path("fb.sock");
	pa = t_path("pa.sock");
	pb = t_path("pb.sock");
	t_fake_pid = t_fakeqemu(fa, fargs);
	fake_b = t_fakeqemu(fb, fargs);
	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fprintf(f, "[global]\nmax_total_queued_bytes = 2M\n"
	    "max_queued_bytes = 64M\nmax_queued_events = 16777216\n"
	    "[vm a]\nupstream = connect:%s\n[listener a %s]\n"
	    "[vm b]\nupstream = connect:%s\n[listener b %s]\n", fa, pa, fb, pb);
	fclose(f);
	argv[3] = conf;
	t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
	ck_assert_int_eq(t_wait_socket(pb, T_WAIT_MS), 0);
	ck_assert_ptr_nonnull(ha = t_client_ready(pa));
	ck_assert_ptr_nonnull(ra = t_client_ready(pa));
	ck_assert_ptr_nonnull(hb = t_client_ready(pb));
	ck_assert_ptr_nonnull(rb = t_client_ready(pb));
	base_kb = t_proc_kb(t_proxy_pid, "VmRSS");

	/* a alone: its backlog stops at the host's budget, not its own */
	t_flood_init(&fla, ra);
	t_flood_hold(ha, &fla, LONG_MAX, (size_t)budget);
	ck_assert_uint_lt(fla.bytes - fla.last, (size_t)budget);
	ck_assert_int_eq(t_quiet(ra, 300), T_SILENT);
	/* b then: on past what a holds, up to its share, and no further */
	t_flood_init(&flb, rb);
	t_flood_hold(hb, &flb, LONG_MAX, (size_t)budget / 2);
	ck_assert_uint_lt(flb.bytes - flb.last, (size_t)budget / 2);
	ck_assert_int_eq(t_quiet(rb, 300), T_SILENT);
	paused_kb = t_proc_kb(t_proxy_pid, "VmRSS");
	/* as test_flood_bounded's bound, of twice the budget */
	limit_kb = base_kb + (3 * 2 * budget + (4L << 20)) / 1024;
	printf("host budget: a holds %zu bytes, b %zu; RSS %ld kB before, "
	    "%ld kB paused (bound %ld kB)\n", fla.bytes, flb.bytes, base_kb,
	    paused_kb, limit_kb);
	ck_assert_int_le(paused_kb, limit_kb);

	/* the holders go: both read again, and nothing was lost */
	t_client_free(ha);
	t_client_free(hb);
	ck_assert_int_eq(t_flood_read(&fla, 300000, SIZE_MAX), 0);
	ck_assert_int_eq(t_flood_read(&flb, 300000, SIZE_MAX), 0);
	peak_kb = t_proc_kb(t_proxy_pid, "VmHWM");
	printf("host budget: 2 x 300000 events in order; peak RSS %ld kB "
	    "(bound %ld kB)\n", peak_kb, limit_kb);
	ck_assert_int_le(peak_kb, limit_kb);
	t_client_free(ra);
	t_client_free(rb);
	ck_assert(t_exited(t_stop(fake_b, SIGTERM), 0));
	free(conf);
	free(fa);
	free(fb);
	free(pa);
	free(pb);
}
END_TEST

/*
 * With no client negotiated, events are handed to nobody and the
 * backlog stays empty: a bound smaller than one read's worth of events
 * must not pause QEMU's reads for good.  Paused, the fake could not
 * write its flood, nor QEMU answer the client.
 */
START_TEST(test_flood_nobody_reads)
{
	const char	*fargs[] = { "--flood", "20000", NULL };
	const char	*opts[] = { "--max-queued-events", "10", NULL };
	struct t_client	*c;
	char		*m;

	t_start_fake(fargs, opts);
	ck_assert_int_eq(t_wait_log("fakeqemu.log",
	    "flood of 20000 events written", T_WAIT_MS), 0);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	m = t_cmd(c, "{\"execute\":\"query-status\",\"id\":1}");
	ck_assert_msg(m != NULL && strstr(m, "\"id\": 1") != NULL, "reply: %s",
	    m);
	free(m);
	t_client_free(c);
}
END_TEST

/*
 * Reads paused when QEMU goes: the next connection starts reading, and
 * pauses again at the bound, with the events of the last one still
 * held by a closing client; then its client gets every event.
 */
START_TEST(test_paused_across_reconnect)
{
	const char	*fargs[] = { "--flood", "100000", "--trigger", "flood",
	    NULL };
	const char	*opts[] = { "--max-queued-events", "1000",
	    "--slow-client-timeout", "1", NULL };
	struct t_client	*a, *b;
	struct t_flood	 r;

	a = t_flood_start(fargs, opts, 1000, SIZE_MAX, &r, NULL);
	t_stop(t_fake_pid, SIGKILL);
	t_fake_pid = 0;
	/* paused, qmpmuxd sees QEMU gone when it next writes to it */
	t_send(a, "{\"execute\":\"query-status\",\"id\":2}\n");
	/* and closes its clients: the reader, which holds nothing, sees it */
	ck_assert(t_eof(r.c, T_WAIT_MS));
	t_fake_pid = t_fakeqemu(t_fsock, fargs);
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_send(b, "{\"execute\":\"flood\",\"id\":1}\n");
	/* 100000 events do not fit in the socket: paused, it cannot finish */
	ck_assert_int_eq(t_wait_log("fakeqemu.log",
	    "flood of 100000 events written", 1000), -1);
	ck_assert_int_eq(t_read_flood(b, 100000, NULL), 0);
	t_client_free(a);
	t_client_free(b);
	t_client_free(r.c);
}
END_TEST

/*
 * QEMU crashes while reads are paused.  qmpmuxd cannot see an EOF it
 * does not read, so it watches for the hang-up apart, and it must not
 * lose what QEMU had written to the socket: each client gets every event
 * up to the last whole one, then the close, with nobody writing to the
 * dead QEMU to find out, nor reading what a held the reads paused with.
 */
START_TEST(test_last_words)
{
	const char	*fargs[] = { "--flood", "1000000", "--trigger", "flood",
	    NULL };
	const char	*opts[] = { "--max-queued-events", "100", NULL };
	struct t_client	*a;
	struct t_flood	 r, fa;
	long		 last;

	a = t_flood_start(fargs, opts, 100, SIZE_MAX, &r, NULL);
	kill(t_fake_pid, SIGUSR1);
	ck_assert_int_eq(t_wait_exit(t_fake_pid, T_WAIT_MS), 0);
	t_fake_pid = 0;
	t_log_scan("fakeqemu.log", "last FLOOD in the socket: ", -1, NULL,
	    &last);
	ck_assert_int_gt(last, 0);
	/* the reader first: the loss is seen while a has read nothing */
	ck_assert_int_eq(t_flood_read(&r, LONG_MAX, SIZE_MAX), -1);
	ck_assert(t_eof(r.c, 0));
	ck_assert_int_eq(r.n, last + 1);
	t_flood_init(&fa, a);
	ck_assert_int_eq(t_flood_read(&fa, LONG_MAX, SIZE_MAX), -1);
	ck_assert(t_eof(a, 0));
	ck_assert_int_eq(fa.n, last + 1);
	printf("last words: %ld events, %ld of them taken after QEMU had "
	    "gone\n", fa.n, fa.n - 100);
	t_client_free(a);
	t_client_free(r.c);
}
END_TEST

/*
 * QEMU dies with a command of ours unread while reads are paused: the
 * socket is reset, which a watch for a hang-up alone does not see.  The
 * loss is still noticed without anything read or written, and a new
 * client is not greeted by the dead QEMU.
 */
START_TEST(test_reset_while_paused)
{
	const char	*fargs[] = { "--flood", "1000000", "--trigger", "flood",
	    "--hold-input", NULL };
	/* two in flight: the flood's reply may still be behind the pause */
	const char	*opts[] = { "--max-queued-events", "1000",
	    "--max-inflight", "2", NULL };
	struct t_client	*a, *b;
	struct t_flood	 r;

	a = t_flood_start(fargs, opts, 1000, SIZE_MAX, &r, NULL);
	t_send(a, "{\"execute\":\"query-status\",\"id\":2}\n");
	/* qmpmuxd sent it on, and the fake, which reads no more, has it */
	ck_assert_int_eq(t_wait_log("fakeqemu.log", "input held unread",
	    T_WAIT_MS), 0);
	kill(t_fake_pid, SIGKILL);
	ck_assert_int_ne(t_wait_exit(t_fake_pid, T_WAIT_MS), -1);
	t_fake_pid = 0;
	/* noticed: the clients are closed, the reader sees it */
	ck_assert(t_eof(r.c, T_WAIT_MS));
	ck_assert_ptr_nonnull(b = t_client_new(t_psock));
	ck_assert_int_eq(t_quiet(b, 300), T_SILENT);
	t_client_free(a);
	t_client_free(b);
	t_client_free(r.c);
}
END_TEST

/*
 * A peer that takes no more input but keeps writing: qmpmuxd finds the
 * loss when its next write fails, and takes QEMU's last words from at
 * most max_queued_bytes more of input, not for as long as the peer
 * writes.  Memory stays within the flood test's bound.  The bound is
 * kept below what the socket holds, so that taking all of it would show.
 * What qmpmuxd takes reaches the reader, which had the backlog's events
 * when reads paused: the rest are what it took after the loss.
 */
START_TEST(test_last_words_bounded)
{
	const char	*fargs[] = { "--flood", "100000000", "--trigger",
	    "flood", "--shut-read", NULL };
	/* two in flight: the flood's reply may still be behind the pause */
	const char	*opts[] = { "--max-queued-events", "1000000",
	    "--max-queued-bytes", "16K", "--max-inflight", "2", NULL };
	const long	 bytes_bound = 16L << 10;
	struct t_client	*a;
	struct t_flood	 r;
	long		 base_kb, peak_kb, paused, taken;

	t_small_quarantine();
	a = t_flood_start(fargs, opts, 1000000, (size_t)bytes_bound, &r,
	    &base_kb);
	paused = r.n;
	t_send(a, "{\"execute\":\"query-status\",\"id\":2}\n");
	/* the reason is the write's, not what reading afterwards left */
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "vm test: upstream lost "
	    "(ready): Broken pipe; retry in ", T_WAIT_MS), 0);
	ck_assert_int_eq(t_flood_read(&r, LONG_MAX, SIZE_MAX), -1);
	ck_assert(t_eof(r.c, 0));
	taken = r.n - paused;
	peak_kb = t_proc_kb(t_proxy_pid, "VmHWM");
	printf("last words bounded: %ld events taken (max_queued_bytes %ld), "
	    "peak RSS %ld kB, %ld kB before\n", taken, bytes_bound, peak_kb,
	    base_kb);
	/*
	 * Events of the fake's flood are over 90 bytes each; the input may
	 * already hold one read of libevent's (16 KiB) from before the pause.
	 */
	ck_assert_int_ge(taken, 0);
	ck_assert_int_le(taken * 90, bytes_bound + (16L << 10));
	ck_assert_int_le(peak_kb, base_kb + (3 * bytes_bound +
	    (4L << 20)) / 1024);
	t_client_free(a);
	t_client_free(r.c);
}
END_TEST

/*
 * A client of a disconnect listener is closed only when it alone keeps
 * QEMU's reads paused: while a block client lags too, closing it would
 * not let QEMU go on.  Both hold every event (t_clog), so both have
 * events unwritten when the reads pause; the slow one outlives its
 * timeout twice over.  Once the block client has read all it could,
 * the slow one is closed, and the block client gets the whole flood.
 */
START_TEST(test_slow_client_not_alone)
{
	struct t_client	*slow, *reader, *blocker;
	struct t_flood	 r;

	start_two_listeners();
	ck_assert_ptr_nonnull(slow = t_client_ready(dsock));
	ck_assert_ptr_nonnull(reader = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(blocker = t_client_ready(t_psock));
	t_clog(slow, "{\"execute\":\"query-clog\",\"id\":\"clog\"}");
	/* qmpmuxd read slow's lines in order: its replies wait before it */
	ck_assert_int_eq(t_wait_log("fakeqemu.log", "command query-clog",
	    T_WAIT_MS), 0);
	t_flood_init(&r, reader);
	t_flood_hold(blocker, &r, 1000, SIZE_MAX);
	t_client_free(reader);
	ck_assert_msg(!t_hungup(slow, 2500), "slow client closed while a "
	    "block client held QEMU's reads too");
	ck_assert_int_eq(t_read_flood(blocker, 100000, NULL), 0);
	slow_cut(slow);
	t_client_free(slow);
	t_client_free(blocker);
}
END_TEST

/*
 * A block client whose own replies wait unread holds no events, so it
 * does not spare a disconnect client that alone holds QEMU's reads: it
 * joins after the pause, and fills its output with the proxy's replies
 * to 5,000 invalid lines it does not read.  The slow client is cut
 * without its output: none of the events held for it reach it.
 */
START_TEST(test_slow_client_replies_not_events)
{
	struct t_client	*slow, *reader, *b;
	struct t_flood	 r;
	char		*lines;
	int		 i;

	start_two_listeners();
	ck_assert_ptr_nonnull(slow = t_client_ready(dsock));
	ck_assert_ptr_nonnull(reader = t_client_ready(t_psock));
	t_flood_init(&r, reader);
	t_flood_hold(slow, &r, 1000, SIZE_MAX);
	t_client_free(reader);
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	if ((lines = malloc(5000 * 3)) == NULL)
		abort();
	for (i = 0; i < 5000; i++)
		memcpy(lines + i * 3, "[]\n", 3);
	t_send_raw(b, lines, 5000 * 3);
	free(lines);
	ck_assert_int_eq(slow_cut(slow), 0);
	t_client_free(slow);
	t_client_free(b);
}
END_TEST

/*
 * A client of a disconnect listener that reads nothing is closed after
 * its timeout, while a block client of another listener of the same VM
 * gets every event.
 */
START_TEST(test_slow_client_disconnect)
{
	struct t_client	*slow, *good;

	start_two_listeners();
	ck_assert_ptr_nonnull(slow = t_client_ready(dsock));
	ck_assert_ptr_nonnull(good = t_client_ready(t_psock));
	t_send(good, "{\"execute\":\"flood\",\"id\":1}\n");
	ck_assert_int_eq(t_read_flood(good, 100000, NULL), 0);
	ck_assert_int_lt(slow_cut(slow), 100000);
	t_client_free(slow);
	t_client_free(good);
}
END_TEST

static Suite *
flood_suite(void)
{
	Suite	*s = suite_create("flood");
	TCase	*tc = t_tcase(s, "fake-qemu", 240);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_flood_bounded);
	tcase_add_test(tc, test_flood_nobody_reads);
	tcase_add_test(tc, test_host_budget);
	tcase_add_test(tc, test_paused_across_reconnect);
	tcase_add_test(tc, test_last_words);
	tcase_add_test(tc, test_last_words_bounded);
	tcase_add_test(tc, test_reset_while_paused);
	tcase_add_test(tc, test_slow_client_not_alone);
	tcase_add_test(tc, test_slow_client_replies_not_events);
	tcase_add_test(tc, test_slow_client_disconnect);
	return (s);
}

int
main(void)
{
	return (t_run(flood_suite()));
}
