/*
 * What keeps the manager from waiting on costly commands, against the
 * real QEMU: the introspection cache (its replies byte for byte those
 * of a QEMU of the same binary, each with the client's id, held in the
 * client's order, dropped with the upstream), manager_quiet (a costly
 * background command waits until the manager is quiet, or for relief),
 * and rate limits (a client is delayed by its bucket, never refused,
 * its deadline still running).  What QEMU ran, and in which order, is
 * read from QEMU's own trace of the requests it handles.
 */
#include "config.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

#define TRACE	"qemu-trace.log"

static char	*ctl;		/* the control socket */

/*
 * Start QEMU (traced) and qmpmuxd with the VM "test": one command at
 * QEMU at a time, the VM keys given, and the listeners mgr.sock
 * (manager), n.sock (normal), bg.sock and bg2.sock (background) and
 * rl.sock (normal, with the listener keys given).
 */
static void
start(const char *vm_keys, const char *rl_keys)
{
	char		*conf = t_path("qmpmuxd.conf");
	FILE		*f;

	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fprintf(f, "[vm test]\nupstream = connect:%s\nmax_inflight = 1\n%s\n"
	    "[listener test mgr.sock]\npriority = manager\n"
	    "[listener test n.sock]\n"
	    "[listener test bg.sock]\npriority = background\n"
	    "[listener test bg2.sock]\npriority = background\n"
	    "[listener test rl.sock]\n%s\n", t_qsock, vm_keys, rl_keys);
	ck_assert_int_eq(fclose(f), 0);
	t_qemu_pid = t_qemu_traced(t_qsock, TRACE);
	free(ctl);
	ctl = t_qmpmuxd_conf(conf);
	free(conf);
}

/* How many requests for the command QEMU's trace shows it handled. */
static int
qemu_ran(const char *name)
{
	char	*path = t_path(TRACE), *text, *p, needle[128];
	int	 n = 0;

	snprintf(needle, sizeof(needle), "req: {\"execute\": \"%s\"", name);
	ck_assert_ptr_nonnull(text = t_slurp(path, NULL));
	for (p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(text);
	free(path);
	return (n);
}

/* Send a command and read its reply. */
static char *
ask(struct t_client *c, const char *cmd)
{
	char	*m;

	t_send(c, "%s\n", cmd);
	ck_assert_msg((m = t_recv(c, T_WAIT_MS)) != NULL, "no reply to %s",
	    cmd);
	return (m);
}

/* query-vm's "introspection_cache", as text, for the test to match. */
static char *
cache_state(void)
{
	struct t_client	*q;
	char		*m, *at;

	ck_assert_ptr_nonnull(q = t_client_ready(ctl));
	m = t_cmd(q, "{\"execute\": \"query-vm\", \"arguments\": "
	    "{\"name\": \"test\"}}");
	ck_assert_ptr_nonnull(m);
	t_client_free(q);
	ck_assert_msg((at = strstr(m, "\"introspection_cache\":")) != NULL,
	    "query-vm: %s", m);
	memmove(m, at, strlen(at) + 1);
	if ((at = strchr(m, '}')) != NULL)
		at[1] = '\0';
	return (m);
}

/*
 * The same command, with the same id, to a QEMU of the same binary and
 * through qmpmuxd: the same bytes.
 */
static void
same_as_qemu(struct t_client *direct, struct t_client *c, const char *cmd)
{
	char	*q, *p;

	q = ask(direct, cmd);
	p = ask(c, cmd);
	ck_assert_msg(strcmp(q, p) == 0, "%s: QEMU's %zu bytes and qmpmuxd's "
	    "%zu differ: %.80s / %.80s", cmd, strlen(q), strlen(p), q, p);
	free(q);
	free(p);
}

/*
 * The introspection cache: the first query-qmp-schema of a normal
 * client goes to QEMU, the next ones (ids of every kind, none) do not
 * and are QEMU's bytes; the manager's always goes; one with arguments
 * goes; a cached reply waits for the client's commands before it; the
 * cache empties when QEMU goes and fills again from the next one.
 */
START_TEST(test_cache)
{
	struct t_client	*direct, *n, *mgr;
	static const char *const ids[] = { "\"s\"", "1.0e2", "'x'",
	    "{\"a\": [1, null]}", "\"\\u00e9\"" };
	char		*dsock = t_path("direct.sock"), *m, *cmd;
	char		*trace = t_path(TRACE);
	long long	 taken;
	pid_t		 dpid;
	size_t		 i;

	start("", "");
	dpid = t_qemu(dsock);
	ck_assert_ptr_nonnull(direct = t_client_ready(dsock));
	n = t_client_here("n.sock");
	mgr = t_client_here("mgr.sock");

	same_as_qemu(direct, n, "{\"execute\": \"query-qmp-schema\"}");
	ck_assert_int_eq(qemu_ran("query-qmp-schema"), 1);
	ck_assert_int_eq(t_vm_counter(ctl, "test", "commands_cached"), 0);
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		ck_assert_int_ne(asprintf(&cmd, "{\"execute\": "
		    "\"query-qmp-schema\", \"id\": %s}", ids[i]), -1);
		same_as_qemu(direct, n, cmd);
		free(cmd);
	}
	same_as_qemu(direct, n, "{\"execute\": \"query-qmp-schema\"}");
	same_as_qemu(direct, n, "{\"id\": 7, \"execute\": \"query-version\"}");
	same_as_qemu(direct, n, "{\"execute\": \"query-version\", \"id\": 8}");
	ck_assert_int_eq(qemu_ran("query-qmp-schema"), 1);
	ck_assert_int_eq(qemu_ran("query-version"), 1);
	ck_assert_int_eq(t_vm_counter(ctl, "test", "commands_cached"),
	    (long long)(sizeof(ids) / sizeof(ids[0])) + 2);
	m = cache_state();
	ck_assert_msg(strstr(m, "\"commands\":[\"query-qmp-schema\","
	    "\"query-version\"]}") != NULL, "%s", m);
	free(m);

	/* the manager's goes to QEMU; so does one with arguments */
	same_as_qemu(direct, mgr, "{\"execute\": \"query-qmp-schema\", "
	    "\"id\": \"m\"}");
	ck_assert_int_eq(qemu_ran("query-qmp-schema"), 2);
	same_as_qemu(direct, n, "{\"execute\": \"query-qmp-schema\", "
	    "\"arguments\": {}}");
	ck_assert_int_eq(qemu_ran("query-qmp-schema"), 3);

	/* held behind the client's command at QEMU, as QEMU answers */
	taken = t_vm_taken(ctl, "test");
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	t_send(n, "{\"execute\": \"query-status\", \"id\": 1}\n");
	t_send(n, "{\"execute\": \"query-version\", \"id\": 2}\n");
	ck_assert_int_eq(t_wait_vm_sent(ctl, "test", taken + 2, T_WAIT_MS),
	    0);
	ck_assert_ptr_null(m = t_recv(n, 200));
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	ck_assert_ptr_nonnull(m = t_recv(n, T_WAIT_MS));
	ck_assert_msg(strstr(m, "\"status\"") != NULL, "first: %s", m);
	free(m);
	ck_assert_ptr_nonnull(m = t_recv(n, T_WAIT_MS));
	ck_assert_msg(strstr(m, "\"qemu\"") != NULL, "second: %s", m);
	free(m);

	/* QEMU goes: the cache with it; the next QEMU fills it again */
	t_client_free(n);
	t_client_free(mgr);
	t_stop(t_qemu_pid, SIGKILL);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "upstream lost", T_WAIT_MS),
	    0);
	m = cache_state();
	ck_assert_msg(strstr(m, "\"bytes\":0,") != NULL &&
	    strstr(m, "\"commands\":[]") != NULL, "%s", m);
	free(m);
	ck_assert_int_eq(unlink(trace), 0);
	t_qemu_pid = t_qemu_traced(t_qsock, TRACE);
	n = t_client_here("n.sock");
	same_as_qemu(direct, n, "{\"execute\": \"query-qmp-schema\"}");
	same_as_qemu(direct, n, "{\"execute\": \"query-qmp-schema\"}");
	ck_assert_int_eq(qemu_ran("query-qmp-schema"), 1);
	t_client_free(n);
	t_client_free(direct);
	t_stop(dpid, SIGKILL);
	free(dsock);
	free(trace);
}
END_TEST

/*
 * introspection_cache at its edge: a bound below the schema's size
 * keeps query-version, not the schema; 0 keeps nothing.
 */
START_TEST(test_cache_bound)
{
	struct t_client	*n;
	char		*m;
	int		 off = _i == 1;

	start(off ? "introspection_cache = 0" : "introspection_cache = 100K",
	    "");
	n = t_client_here("n.sock");
	free(ask(n, "{\"execute\": \"query-qmp-schema\"}"));
	free(ask(n, "{\"execute\": \"query-qmp-schema\"}"));
	free(ask(n, "{\"execute\": \"query-version\"}"));
	free(ask(n, "{\"execute\": \"query-version\"}"));
	ck_assert_int_eq(qemu_ran("query-qmp-schema"), 2);
	ck_assert_int_eq(qemu_ran("query-version"), off ? 2 : 1);
	m = cache_state();
	ck_assert_msg(strstr(m, off ? "\"commands\":[]" :
	    "\"commands\":[\"query-version\"]") != NULL, "%s", m);
	free(m);
	t_client_free(n);
}
END_TEST

/*
 * manager_quiet: a background client's qom-list-types (cost 5) waits
 * while the manager sends a command every 50 ms, and goes
 * manager_quiet (0.25 s) after its last is answered (_i 0,
 * priority_relief = 0); a background client's query-status beside it
 * is not held.  With priority_relief = 0.3 (_i 1) it goes while the
 * manager is still busy, by relief.
 */
START_TEST(test_quiet)
{
	struct t_client	*mgr, *bg, *bg2;
	char		*m = NULL, *s = NULL;
	long long	 end, last = 0, got;
	int		 relief = _i == 1;

	start(relief ? "priority_relief = 0.3" : "priority_relief = 0", "");
	mgr = t_client_here("mgr.sock");
	bg = t_client_here("bg.sock");
	bg2 = t_client_here("bg2.sock");
	free(ask(mgr, "{\"execute\": \"query-status\"}"));
	t_send(bg, "{\"execute\": \"qom-list-types\", \"id\": \"t\"}\n");
	t_send(bg2, "{\"execute\": \"query-status\", \"id\": \"s\"}\n");
	end = t_clock_ms() + 1000;
	while (t_clock_ms() < end) {
		free(ask(mgr, "{\"execute\": \"query-status\"}"));
		last = t_clock_ms();
		if (s == NULL)
			s = t_recv(bg2, 1);
		if (m == NULL)
			m = t_recv(bg, 50);
		else
			poll(NULL, 0, 50);
	}
	ck_assert_msg(s != NULL, "the cheap background command waited too");
	free(s);
	if (!relief) {
		ck_assert_msg(m == NULL, "qom-list-types went while the "
		    "manager was busy: %.60s", m);
		ck_assert_ptr_nonnull(m = t_recv(bg, T_WAIT_MS));
		got = t_clock_ms();
		ck_assert_msg(got - last >= 200, "qom-list-types went %lld ms "
		    "after the manager's last", got - last);
	} else {
		ck_assert_msg(m != NULL, "relief did not send qom-list-types");
		ck_assert_int_ge(t_vm_counter(ctl, "test",
		    "commands_relieved"), 1);
	}
	ck_assert_msg(strncmp(m, "{\"return\": [", 12) == 0, "%.60s", m);
	free(m);
	t_client_free(mgr);
	t_client_free(bg);
	t_client_free(bg2);
}
END_TEST

/*
 * A rate limit delays and never refuses: rate_limit = 20, rate_burst
 * = 2, and 12 commands pipelined take at least (12 - 2) / 20 s, every
 * one answered; a client of another listener meanwhile is not delayed.
 * A command's cost is what it takes from the bucket (cost.query-version
 * = 8: the one after waits for 8 tokens more).
 */
START_TEST(test_rate)
{
	struct t_client	*rl, *n;
	long long	 t0, took;
	char		*m;
	int		 i;

	start("cost.query-version = 8", "rate_limit = 20\nrate_burst = 2");
	rl = t_client_here("rl.sock");
	n = t_client_here("n.sock");
	t0 = t_clock_ms();
	for (i = 0; i < 12; i++)
		t_send(rl, "{\"execute\": \"query-status\", \"id\": %d}\n", i);
	/* the other listener's client goes at once, between them */
	t_send(n, "{\"execute\": \"query-status\", \"id\": \"n\"}\n");
	ck_assert_ptr_nonnull(m = t_recv(n, T_WAIT_MS));
	took = t_clock_ms() - t0;
	ck_assert_msg(took < 300, "the unlimited client waited %lld ms", took);
	free(m);
	for (i = 0; i < 12; i++) {
		ck_assert_ptr_nonnull(m = t_recv(rl, T_WAIT_MS));
		ck_assert_msg(strncmp(m, "{\"return\": {\"status\"", 20) == 0,
		    "command %d: %s", i, m);
		free(m);
	}
	took = t_clock_ms() - t0;
	ck_assert_msg(took >= 450, "12 commands at 20/s, burst 2, took only "
	    "%lld ms", took);
	ck_assert_int_ge(t_vm_counter(ctl, "test", "commands_rate_delayed"),
	    9);
	ck_assert_int_eq(t_vm_counter(ctl, "test", "commands_refused"), 0);

	/* cost: the bucket refilled (2), query-version takes 8 */
	poll(NULL, 0, 150);
	t0 = t_clock_ms();
	free(ask(rl, "{\"execute\": \"query-version\"}"));
	free(ask(rl, "{\"execute\": \"query-status\"}"));
	took = t_clock_ms() - t0;
	ck_assert_msg(took >= 300, "a command after one of cost 8 at 20/s "
	    "waited only %lld ms", took);
	t_client_free(rl);
	t_client_free(n);
}
END_TEST

/*
 * A delayed command's deadline runs: at rate_limit = 1, the second of
 * two commands waits a second for its token, past its timeout of 0.2 s,
 * and is answered that it timed out and was not sent.
 */
START_TEST(test_rate_deadline)
{
	struct t_client	*rl;
	char		*m;

	start("timeout.query-status = 0.2", "rate_limit = 1");
	rl = t_client_here("rl.sock");
	t_send(rl, "{\"execute\": \"query-status\", \"id\": 1}\n");
	t_send(rl, "{\"execute\": \"query-status\", \"id\": 2}\n");
	ck_assert_ptr_nonnull(m = t_recv(rl, T_WAIT_MS));
	ck_assert_msg(strncmp(m, "{\"return\"", 9) == 0, "%s", m);
	free(m);
	ck_assert_ptr_nonnull(m = t_recv(rl, T_WAIT_MS));
	ck_assert_msg(strstr(m, "was not sent to QEMU") != NULL &&
	    strstr(m, "\"id\": 2") != NULL, "%s", m);
	free(m);
	ck_assert_int_eq(qemu_ran("query-status"), 1);
	t_client_free(rl);
}
END_TEST

static Suite *
cost_suite(void)
{
	Suite	*s = suite_create("cost");
	TCase	*tc = t_tcase(s, "real-qemu", 120);

	tcase_add_test(tc, test_cache);
	tcase_add_loop_test(tc, test_cache_bound, 0, 2);
	tcase_add_loop_test(tc, test_quiet, 0, 2);
	tcase_add_test(tc, test_rate);
	tcase_add_test(tc, test_rate_deadline);
	return (s);
}

int
main(void)
{
	return (t_run(cost_suite()));
}
