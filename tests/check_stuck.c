/*
 * A stuck QEMU cannot hang a caller: the real QEMU, stopped with SIGSTOP
 * or killed with SIGKILL, behind qmpmuxd.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

/* Assert a message holds a text. */
static void
expect(const char *m, const char *text)
{
	ck_assert_msg(m != NULL && strstr(m, text) != NULL,
	    "expected %s in %s", text, m != NULL ? m : "(nothing)");
}

/*
 * Against a stopped QEMU: the sent command gets its error within its
 * limit, the command queued behind it expires unsent and provably never
 * runs (the stop it carried leaves the VM running), and the late reply
 * reaches nobody.
 */
START_TEST(test_sigstop_timeouts)
{
	const char	*opts[] = { "--command-timeout", "1", NULL };
	struct t_client	*a, *b, *c;
	char		*m;
	double		 t0, ta, tb;

	t_start_qemu(opts);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	ck_assert_int_eq(kill(t_qemu_pid, SIGSTOP), 0);

	/* one write, so the proxy reads query-status first: it is sent */
	t0 = t_clock_ms() / 1e3;
	t_send(a, "{\"execute\":\"query-status\",\"id\":\"sent\"}\n"
	    "{\"execute\":\"stop\",\"id\":\"queued\"}\n");
	m = t_recv(a, T_WAIT_MS);
	ta = t_clock_ms() / 1e3 - t0;
	expect(m, "\"id\": \"sent\", \"error\"");
	expect(m, "may still complete");
	free(m);
	m = t_recv(a, T_WAIT_MS);
	tb = t_clock_ms() / 1e3 - t0;
	expect(m, "\"id\": \"queued\", \"error\"");
	expect(m, "was not sent to QEMU");
	free(m);
	printf("timeout 1s: sent command error after %.3fs, "
	    "queued after %.3fs\n", ta, tb);
	/* the upper bounds are the machine's: valgrind's runs are slower */
	ck_assert(ta >= 0.95 && ta < 1.0 + t_slow());
	ck_assert(tb >= 0.95 && tb < 1.0 + t_slow());

	/*
	 * A restarted libvirtd connects once and waits for the greeting
	 * with no timeout: a stuck QEMU must not keep a new client from
	 * being greeted and negotiated, from what the proxy kept.
	 */
	t0 = t_clock_ms();
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	ck_assert_msg(t_clock_ms() - t0 < 1000 * t_slow(), "a new client "
	    "waited %.0f ms for its greeting from a stopped QEMU",
	    t_clock_ms() - t0);
	t_client_free(c);

	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	/* the late reply to "sent" is dropped: no client hears of it */
	ck_assert_int_eq(t_quiet(a, 500), T_SILENT);
	ck_assert_int_eq(t_quiet(b, 100), T_SILENT);
	m = t_cmd(a, "{\"execute\":\"query-status\",\"id\":2}");
	expect(m, "\"running\": true");
	expect(m, "\"id\": 2");
	free(m);
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * A per-command override, with no VM-wide limit: only the named command
 * times out; the other waits for as long as QEMU takes, and gets its
 * reply once QEMU answers the first (whose slot stayed taken).
 */
START_TEST(test_per_command_timeout)
{
	const char	*opts[] = { "--command-timeout", "0",
	    "--timeout", "query-status=0.5", NULL };
	struct t_client	*a;
	char		*m;
	double		 t0, ta;

	t_start_qemu(opts);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_int_eq(kill(t_qemu_pid, SIGSTOP), 0);
	t0 = t_clock_ms() / 1e3;
	t_send(a, "{\"execute\":\"query-status\",\"id\":1}\n");
	t_send(a, "{\"execute\":\"query-name\",\"id\":2}\n");
	m = t_recv(a, T_WAIT_MS);
	ta = t_clock_ms() / 1e3 - t0;
	expect(m, "\"id\": 1, \"error\"");
	free(m);
	printf("timeout query-status=0.5s: error after %.3fs\n", ta);
	ck_assert(ta >= 0.45 && ta < 0.5 + t_slow());
	ck_assert_int_eq(t_quiet(a, 1000), T_SILENT);
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	m = t_recv(a, T_WAIT_MS);
	ck_assert_str_eq(m, "{\"return\": {}, \"id\": 2}");
	free(m);
	t_client_free(a);
}
END_TEST

/*
 * Many clients of a stuck VM: one command in flight and four queued
 * (max_queued_commands); of six clients sending one each, exactly one is
 * refused, at once, and the five others are answered once QEMU runs.
 * Which one is refused depends on the order the proxy reads the sockets.
 */
START_TEST(test_queue_limit)
{
	const char	*opts[] = { "--max-queued-commands", "4", NULL };
	struct t_client	*c[6];
	char		*m, want[200];
	double		 t0;
	int		 i, refused = -1;

	t_start_qemu(opts);
	t_clients_ready(c, 6, t_psock);
	ck_assert_int_eq(kill(t_qemu_pid, SIGSTOP), 0);
	t0 = t_clock_ms() / 1e3;
	for (i = 0; i < 6; i++)
		t_send(c[i], "{\"execute\":\"query-status\",\"id\":%d}\n", i);
	while (refused == -1 && t_clock_ms() / 1e3 - t0 < 5) {
		for (i = 0; i < 6 && refused == -1; i++) {
			if ((m = t_recv(c[i], 10)) == NULL)
				continue;
			snprintf(want, sizeof(want), "{\"id\": %d, \"error\": "
			    "{\"class\": \"GenericError\", \"desc\": \"qmpmux: "
			    "too many commands queued for VM test\"}}", i);
			ck_assert_str_eq(m, want);
			free(m);
			refused = i;
		}
	}
	ck_assert_int_ne(refused, -1);
	printf("queue limit: refusal after %.3fs\n", t_clock_ms() / 1e3 - t0);
	ck_assert(t_clock_ms() / 1e3 - t0 < t_slow());
	for (i = 0; i < 6; i++) {
		if (i != refused)
			ck_assert_int_eq(t_quiet(c[i], 100), T_SILENT);
	}
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	for (i = 0; i < 6; i++) {
		if (i != refused) {
			m = t_recv_reply(c[i], T_WAIT_MS);
			expect(m, "\"return\"");
			free(m);
		}
		t_client_free(c[i]);
	}
}
END_TEST

/*
 * A client pipelining 1,000 commands without waiting gets 1,000 replies
 * in order, none refused: it is slowed, as QEMU slows it, not refused.
 */
START_TEST(test_pipeline_1000)
{
	struct t_client	*a;
	char		*buf, *m, want[64];
	size_t		 len = 0;
	int		 i;

	t_start_qemu(NULL);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	buf = malloc(1000 * 64);
	for (i = 0; i < 1000; i++)
		len += (size_t)sprintf(buf + len,
		    "{\"execute\":\"query-status\",\"id\":%d}\n", i);
	t_send_raw(a, buf, len);
	free(buf);
	for (i = 0; i < 1000; i++) {
		m = t_recv(a, T_WAIT_MS);
		snprintf(want, sizeof(want), "\"id\": %d}", i);
		ck_assert_msg(m != NULL && strstr(m, "\"return\"") != NULL &&
		    strstr(m, want) != NULL, "reply %d: %s", i, m);
		free(m);
	}
	t_client_free(a);
}
END_TEST

/*
 * QEMU killed with commands in flight and queued: each gets its error,
 * the clients see EOF, and a QEMU restarted at the same path is
 * reconnected and serves new clients.
 */
START_TEST(test_sigkill_reconnect)
{
	const char	*opts[] = { "--backoff-max", "0.2", NULL };
	struct t_client	*a, *b;
	char		*m;

	t_start_qemu(opts);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	ck_assert_int_eq(kill(t_qemu_pid, SIGSTOP), 0);
	t_send(a, "{\"execute\":\"query-status\",\"id\":\"in-flight\"}\n");
	t_send(b, "{\"execute\":\"query-name\",\"id\":\"queued\"}\n");
	ck_assert_int_eq(t_quiet(b, 200), T_SILENT);
	t_stop(t_qemu_pid, SIGKILL);
	t_qemu_pid = -1;
	m = t_recv(a, T_WAIT_MS);
	ck_assert_str_eq(m, "{\"id\": \"in-flight\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: connection to QEMU lost\"}}");
	free(m);
	m = t_recv(b, T_WAIT_MS);
	ck_assert_str_eq(m, "{\"id\": \"queued\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: connection to QEMU lost\"}}");
	free(m);
	ck_assert(t_eof(a, T_WAIT_MS));
	ck_assert(t_eof(b, T_WAIT_MS));
	t_client_free(a);
	t_client_free(b);

	/* the listener stayed; a new QEMU at the same path is found */
	ck_assert_int_eq(access(t_psock, F_OK), 0);
	unlink(t_qsock);
	t_qemu_pid = t_qemu(t_qsock);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	m = t_cmd(a, "{\"execute\":\"query-status\",\"id\":3}");
	expect(m, "\"id\": 3");
	expect(m, "\"return\"");
	free(m);
	t_client_free(a);
}
END_TEST

/* exec-oob reaches the real QEMU when both sides negotiated oob. */
START_TEST(test_exec_oob_real)
{
	struct t_client	*a, *b;
	char		*m;

	t_start_qemu(NULL);
	ck_assert_ptr_nonnull(a = t_client_new(t_psock));
	m = t_recv(a, T_WAIT_MS);
	expect(m, "\"capabilities\": [\"oob\"]");
	free(m);
	t_cmd_eq(a, "{\"execute\":\"qmp_capabilities\","
	    "\"arguments\":{\"enable\":[\"oob\"]}}",
	    "{\"return\": {}}");
	t_cmd_eq(a, "{\"exec-oob\":\"yank\",\"arguments\":{\"instances\":[]},"
	    "\"id\":\"o1\"}",
	    "{\"return\": {}, \"id\": \"o1\"}");
	/* without oob negotiated, QEMU's own error */
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_cmd_eq(b, "{\"exec-oob\":\"yank\",\"arguments\":{\"instances\":[]},"
	    "\"id\":\"o2\"}",
	    "{\"id\": \"o2\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"QMP input member 'exec-oob' is "
	    "unexpected\"}}");
	t_client_free(a);
	t_client_free(b);
}
END_TEST

static Suite *
stuck_suite(void)
{
	Suite	*s = suite_create("stuck");
	TCase	*tc = t_tcase(s, "real-qemu", 60);

	tcase_add_test(tc, test_sigstop_timeouts);
	tcase_add_test(tc, test_per_command_timeout);
	tcase_add_test(tc, test_queue_limit);
	tcase_add_test(tc, test_pipeline_1000);
	tcase_add_test(tc, test_sigkill_reconnect);
	tcase_add_test(tc, test_exec_oob_real);
	return (s);
}

int
main(void)
{
	return (t_run(stuck_suite()));
}
