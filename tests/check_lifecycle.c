/*
 * How a client's connection ends: the real QEMU behind qmpmuxd, stopped
 * with SIGSTOP where a test needs it stuck.  A client that shuts down
 * its writing side gets every reply, then EOF; one that hangs up is gone
 * even while qmpmuxd is not reading from it.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

/* What QEMU logs of each QMP request it handles, as it parsed it. */
#define TRACE	"qemu-trace.log"

static char	*qsock, *psock;
static pid_t	 qemu_pid, proxy_pid;

static void
setup(void)
{
	qsock = t_path("qemu.sock");
	psock = t_path("proxy.sock");
	qemu_pid = proxy_pid = -1;
}

static void
teardown(void)
{
	t_stop(proxy_pid, SIGTERM);
	if (qemu_pid > 0)
		kill(qemu_pid, SIGCONT);
	t_stop(qemu_pid, SIGKILL);
	free(qsock);
	free(psock);
}

/* A QEMU, tracing requests, and a qmpmuxd with opts in front of it. */
static void
start(const char *const *opts)
{
	qemu_pid = t_qemu_traced(qsock, TRACE);
	proxy_pid = t_qmpmuxd(qsock, psock, opts);
}

/* start(), and two clients negotiated with qmpmuxd. */
static void
start_two(const char *const *opts, struct t_client **a, struct t_client **b)
{
	start(opts);
	*a = t_client_ready(psock);
	*b = t_client_ready(psock);
	ck_assert_ptr_nonnull(*a);
	ck_assert_ptr_nonnull(*b);
}

/*
 * Stop QEMU, every thread of it, so that it reads nothing more; returns
 * what its socket held unread then, for t_wait_unread.
 */
static long
stop_qemu(void)
{
	long	 held;

	ck_assert_int_eq(t_sigstop(qemu_pid, T_WAIT_MS), 0);
	held = t_unread(qsock);
	ck_assert_int_ge(held, 0);
	return (held);
}

/* The next message must be exactly want. */
static void
recv_eq(struct t_client *c, const char *want)
{
	char	*m = t_recv(c, T_WAIT_MS);

	ck_assert_msg(m != NULL && strcmp(m, want) == 0,
	    "expected\n  %s\ngot\n  %s", want, m != NULL ? m : "(nothing)");
	free(m);
}

/* Nothing more comes, and the connection ends. */
static void
recv_eof(struct t_client *c)
{
	char	*m = t_recv(c, T_WAIT_MS);

	ck_assert_msg(m == NULL, "expected EOF, got %s", m);
	ck_assert_msg(t_eof(c, 0), "no EOF within %d ms", T_WAIT_MS);
}

/* Send query-name n times, with ids 1 to n. */
static void
send_names(struct t_client *c, int n)
{
	int	 i;

	for (i = 1; i <= n; i++)
		t_send(c, "{\"execute\":\"query-name\",\"id\":%d}\n", i);
}

/* The replies to send_names, in order, and then EOF. */
static void
recv_names_eof(struct t_client *c, int n)
{
	char	 want[64];
	int	 i;

	for (i = 1; i <= n; i++) {
		snprintf(want, sizeof(want), "{\"return\": {}, \"id\": %d}", i);
		recv_eq(c, want);
	}
	recv_eof(c);
}

/*
 * Commands pipelined past max_client_pipeline (8), then the writing side
 * shut down, as socat and nc -U do at the end of their input: every
 * command is answered, in order, and only then does the connection end.
 */
START_TEST(test_half_close_pipeline)
{
	struct t_client	*c;
	char		*m;

	start(NULL);
	c = t_client_new(psock);
	ck_assert_ptr_nonnull(c);
	m = t_recv(c, T_WAIT_MS);
	ck_assert_msg(m != NULL && strstr(m, "\"QMP\"") != NULL,
	    "greeting: %s", m);
	free(m);
	t_send(c, "{\"execute\":\"qmp_capabilities\"}\n");
	send_names(c, 12);
	ck_assert_int_eq(shutdown(t_client_fd(c), SHUT_WR), 0);
	recv_eq(c, "{\"return\": {}}");
	recv_names_eof(c, 12);
	t_client_free(c);
}
END_TEST

/*
 * The real-world case: commands piped into socat.  socat waits -t
 * seconds (0.5 by default) for the rest once its input has ended; a long
 * -t makes the test independent of the machine's speed, and shows that
 * qmpmuxd closes the connection once all is answered: socat exits then.
 */
START_TEST(test_half_close_socat)
{
	char		*in = t_path("in.json"), *cmdline, *out, *p, want[64];
	const char	*argv[] = { "sh", "-c", NULL, NULL };
	FILE		*f;
	long long	 t0;
	int		 i, status;

	start(NULL);
	if ((f = fopen(in, "w")) == NULL)
		ck_abort_msg("cannot write %s", in);
	fprintf(f, "{\"execute\":\"qmp_capabilities\"}\n");
	for (i = 1; i <= 12; i++)
		fprintf(f, "{\"execute\":\"query-name\",\"id\":%d}\n", i);
	fclose(f);
	if (asprintf(&cmdline, "cat '%s' | exec socat -t 60 - "
	    "UNIX-CONNECT:'%s'", in, psock) == -1)
		abort();
	argv[2] = cmdline;
	t0 = t_clock_ms();
	status = t_wait_exit(t_spawn(argv, "socat.log"), T_WAIT_MS);
	ck_assert_msg(status != -1, "socat still running after %lld ms",
	    t_clock_ms() - t0);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "socat: status %d", status);

	/* its output: the greeting, the negotiation, the twelve replies */
	out = t_path("socat.log");
	if ((f = fopen(out, "r")) == NULL)
		ck_abort_msg("cannot read %s", out);
	if ((p = malloc(1 << 16)) == NULL)
		abort();
	p[fread(p, 1, (1 << 16) - 1, f)] = '\0';
	fclose(f);
	ck_assert_msg(strncmp(p, "{\"QMP\"", 6) == 0, "socat got %s", p);
	ck_assert_msg(strstr(p, "\r\n{\"return\": {}}\r\n") != NULL,
	    "socat got %s", p);
	for (i = 1; i <= 12; i++) {
		snprintf(want, sizeof(want), "{\"return\": {}, \"id\": %d}\r\n",
		    i);
		ck_assert_msg(strstr(p, want) != NULL, "no reply %d: %s", i, p);
	}
	free(p);
	free(out);
	free(cmdline);
	free(in);
}
END_TEST

/*
 * A client hangs up while qmpmuxd is not reading from it: QEMU stopped,
 * query-status in flight, stop queued, and the client's third command
 * unread at --max-client-pipeline 2.  qmpmuxd must see the hang-up all
 * the same, and the dead client's stop must never run: once QEMU goes
 * on, another client finds the VM running.  Loop 1 leaves a reply
 * unread in the client's socket first, so that its close is a reset.
 * Loop 2 lets QEMU go on at once, before qmpmuxd's periodic look for
 * the hang-up: the stop must not be sent all the same.
 */
START_TEST(test_hangup_while_paused)
{
	const char	*opts[] = { "--max-client-pipeline", "2", NULL };
	struct t_client	*a, *b;
	struct pollfd	 pfd;
	long long	 cpu;
	long		 held;
	int		 seen;

	start_two(opts, &a, &b);
	if (_i == 1) {
		t_send(a, "{\"execute\":\"query-name\",\"id\":0}\n");
		pfd.fd = t_client_fd(a);
		pfd.events = POLLIN;
		ck_assert_int_eq(poll(&pfd, 1, T_WAIT_MS), 1);
	}
	held = stop_qemu();
	t_send(a, "{\"execute\":\"query-status\",\"id\":1}\n"
	    "{\"execute\":\"stop\",\"id\":2}\n"
	    "{\"execute\":\"query-status\",\"id\":3}\n");
	/* query-status is in flight: the stopped QEMU holds it unread */
	ck_assert_int_eq(t_wait_unread(qsock, held, T_WAIT_MS), 0);
	cpu = t_cpu_ms(proxy_pid);
	t_client_free(a);
	if (_i == 2)
		ck_assert_int_eq(kill(qemu_pid, SIGCONT), 0);
	seen = t_wait_log("qmpmuxd.log", "client 1: closed: ", T_WAIT_MS);
	cpu = t_cpu_ms(proxy_pid) - cpu;
	if (_i != 2)
		ck_assert_int_eq(kill(qemu_pid, SIGCONT), 0);
	/* not even its STOP event comes first */
	t_send(b, "{\"execute\":\"query-status\",\"id\":4}\n");
	recv_eq(b, "{\"return\": {\"status\": \"running\", \"singlestep\": "
	    "false, \"running\": true}, \"id\": 4}");
	/* QEMU, which has handled b's since, never saw the stop */
	ck_assert_int_eq(t_log_count(TRACE, "req: {\"execute\": \"stop\""),
	    0);
	ck_assert_msg(seen == 0, "the hang-up was not seen");
	ck_assert_int_eq(t_log_count("qmpmuxd.log",
	    "client 1: closed: client hung up"), 1);
	ck_assert_msg(cpu >= 0 && cpu < 200 * t_slow(), "%lld ms of CPU "
	    "while the hang-up was looked for", cpu);
	t_client_free(b);
}
END_TEST

/*
 * A client that shuts down its writing side while qmpmuxd is not reading
 * from it (QEMU stopped, --max-client-pipeline 2) has not hung up: it
 * gets all its replies once QEMU goes on, then EOF.  Looking for a
 * hang-up meanwhile must not spin the loop on the half-close.
 */
START_TEST(test_half_close_while_paused)
{
	const char	*opts[] = { "--max-client-pipeline", "2", NULL };
	struct t_client	*a;
	long long	 cpu;
	long		 held;

	start(opts);
	a = t_client_ready(psock);
	ck_assert_ptr_nonnull(a);
	held = stop_qemu();
	send_names(a, 5);
	ck_assert_int_eq(shutdown(t_client_fd(a), SHUT_WR), 0);
	/* the first is in flight: the stopped QEMU holds it unread */
	ck_assert_int_eq(t_wait_unread(qsock, held, T_WAIT_MS), 0);
	/* long enough for the hang-up check to find the half-close */
	cpu = t_cpu_ms(proxy_pid);
	ck_assert_int_eq(t_quiet(a, 2500), T_SILENT);
	cpu = t_cpu_ms(proxy_pid) - cpu;
	ck_assert_msg(cpu >= 0 && cpu < 200 * t_slow(), "%lld ms of CPU in "
	    "2.5 s paused", cpu);
	ck_assert_int_eq(kill(qemu_pid, SIGCONT), 0);
	recv_names_eof(a, 5);
	t_client_free(a);
}
END_TEST

/* qmpmuxd must exit 0 within ms, its listening socket removed. */
static void
proxy_exits(int ms)
{
	struct stat	 st;
	int		 status;

	status = t_wait_exit(proxy_pid, ms);
	ck_assert_msg(status != -1, "qmpmuxd still running after %d ms", ms);
	proxy_pid = -1;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "qmpmuxd: status %d", status);
	ck_assert_msg(stat(psock, &st) == -1, "%s left behind", psock);
}

/*
 * SIGTERM with a command in flight to a stopped QEMU and another queued
 * behind it: qmpmuxd(8) promises each the error "qmpmux: shutting
 * down", with its id, then EOF; then qmpmuxd exits 0 and removes its
 * socket, QEMU still stopped.
 */
START_TEST(test_sigterm_answers)
{
	struct t_client	*a, *b;
	long		 held;

	start_two(NULL, &a, &b);
	held = stop_qemu();
	t_send(a, "{\"execute\":\"query-status\",\"id\":\"in-flight\"}\n"
	    "{\"execute\":\"query-name\",\"id\":\"queued\"}\n");
	/* query-status is in flight: the stopped QEMU holds it unread */
	ck_assert_int_eq(t_wait_unread(qsock, held, T_WAIT_MS), 0);
	ck_assert_int_eq(kill(proxy_pid, SIGTERM), 0);
	recv_eq(a, "{\"id\": \"in-flight\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: shutting down\"}}");
	recv_eq(a, "{\"id\": \"queued\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: shutting down\"}}");
	recv_eof(a);
	recv_eof(b);
	proxy_exits(T_WAIT_MS);
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * A client that never reads, with more of its replies queued in
 * qmpmuxd than --max-client-output, cannot hold the exit after SIGTERM
 * beyond --slow-client-timeout (1 s); and qmpmuxd does give it that
 * long to take them.  Eight replies to query-qmp-schema (200 kB each)
 * fill its socket and the bound; a second client's reply, queued after
 * them, says they are all in qmpmuxd.  Loop 1: a second SIGTERM while
 * it waits (30 s) for the client ends it at once.
 */
START_TEST(test_sigterm_slow_reader)
{
	const char	*opts[] = { "--slow-client-timeout", _i == 0 ? "1" : "30",
	    NULL };
	struct t_client	*a, *b;
	long long	 t0, ms;
	char		*m;
	int		 i;

	start_two(opts, &a, &b);
	for (i = 0; i < 8; i++)
		t_send(a, "{\"execute\":\"query-qmp-schema\",\"id\":%d}\n",
		    i);
	/* all eight reached QEMU, by its own trace, before b's command */
	ck_assert_int_eq(t_wait_log_n(TRACE, "req: {\"execute\": "
	    "\"query-qmp-schema\"", 8, T_WAIT_MS), 0);
	m = t_cmd(b, "{\"execute\":\"query-name\",\"id\":\"b\"}");
	ck_assert_str_eq(m, "{\"return\": {}, \"id\": \"b\"}");
	free(m);
	t0 = t_clock_ms();
	ck_assert_int_eq(kill(proxy_pid, SIGTERM), 0);
	recv_eof(b);
	if (_i == 1)
		ck_assert_int_eq(kill(proxy_pid, SIGTERM), 0);
	proxy_exits(T_WAIT_MS);
	ms = t_clock_ms() - t0;
	printf("slow reader, %d SIGTERM: qmpmuxd exited %lld ms after the "
	    "first\n", _i + 1, ms);
	ck_assert_msg(ms >= (_i == 0 ? 900 : 0) && ms < 3000 * t_slow(),
	    "exit after %lld ms", ms);
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * SIGHUP reloads (here the command line alone, so nothing changes),
 * SIGUSR1 dumps, and SIGUSR2 restarts in place (check_restart has the
 * rest), as qmpmuxd(8) says.  The daemon goes on serving the same
 * client on the same connection.
 */
START_TEST(test_signals)
{
	static const struct {
		int		 sig;
		const char	*want;
	} sigs[] = {
		/* the command line alone, read again: nothing changes */
		{ SIGHUP, "reloaded: 0 VMs added, 0 removed, 0 changed; "
		    "1 running" },
		{ SIGUSR1, "received SIGUSR1, dumping" },
		{ SIGUSR2, "qmpmuxd " PACKAGE_VERSION " took over" },
	};
	struct t_client	*c;
	char		*m;
	size_t		 i;

	start(NULL);
	c = t_client_ready(psock);
	ck_assert_ptr_nonnull(c);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		ck_assert_int_eq(kill(proxy_pid, sigs[i].sig), 0);
		ck_assert_msg(t_wait_log("qmpmuxd.log", sigs[i].want,
		    T_WAIT_MS) == 0, "no \"%s\" in the log", sigs[i].want);
	}
	ck_assert_msg(t_wait_exit(proxy_pid, 0) == -1, "qmpmuxd exited");
	/* the client of before is still served, on the same connection */
	m = t_cmd(c, "{\"execute\":\"query-name\",\"id\":1}");
	ck_assert_str_eq(m, "{\"return\": {}, \"id\": 1}");
	free(m);
	t_client_free(c);
}
END_TEST

static Suite *
lifecycle_suite(void)
{
	Suite	*s = suite_create("lifecycle");
	TCase	*tc = t_tcase_with(s, "real-qemu", 60, setup, teardown);

	tcase_add_test(tc, test_half_close_pipeline);
	tcase_add_test(tc, test_half_close_socat);
	tcase_add_loop_test(tc, test_hangup_while_paused, 0, 3);
	tcase_add_test(tc, test_half_close_while_paused);
	tcase_add_test(tc, test_sigterm_answers);
	tcase_add_loop_test(tc, test_sigterm_slow_reader, 0, 2);
	tcase_add_test(tc, test_signals);
	return (s);
}

int
main(void)
{
	return (t_run(lifecycle_suite()));
}
