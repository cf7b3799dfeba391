/*
 * Priority classes, against the real QEMU: the order in which QEMU runs
 * the commands of clients of different listeners (priority = manager,
 * normal, background), read from QEMU's own trace of the requests it
 * handles, in the order it handled them.
 *
 * Each test stops QEMU (SIGSTOP) before its clients send, so that every
 * command but the one qmpmuxd has already written to QEMU (max_inflight
 * = 1) waits in qmpmuxd's queue; then QEMU runs again, and its trace
 * says in which order qmpmuxd let them go.  The command whose place is
 * asserted is the only query-version among query-status ones.
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

/* What QEMU logs of each QMP request it handles. */
#define TRACE		"qemu-trace.log"
#define NCLIENTS_MAX	16
#define DEPTH		8	/* each client's pipeline: max_client_pipeline */

/*
 * Start QEMU and qmpmuxd with the VM "test": one command at QEMU at a
 * time, priority_relief as given, and the listeners bg.sock
 * (background), mgr.sock (manager) and n.sock (normal).
 */
static char	*ctl;		/* the control socket */

/*
 * Write the configuration: the VM "test", one command at QEMU at a
 * time, priority_relief as given, and the listeners bg.sock
 * (background), mgr.sock (manager) and n.sock (n_prio).
 */
static char *
write_conf(const char *relief, const char *n_prio)
{
	char	*conf = t_path("qmpmuxd.conf");
	FILE	*f;

	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fprintf(f, "[vm test]\nupstream = connect:%s\nmax_inflight = 1\n"
	    "priority_relief = %s\n"
	    "[listener test bg.sock]\npriority = background\n"
	    "[listener test mgr.sock]\npriority = manager\n"
	    "[listener test n.sock]\npriority = %s\n", t_qsock, relief,
	    n_prio);
	ck_assert_int_eq(fclose(f), 0);
	return (conf);
}

/* Start QEMU and qmpmuxd on write_conf's configuration, n.sock normal. */
static void
start(const char *relief)
{
	char		*conf = write_conf(relief, "normal");
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "-f", conf,
			    "--control", NULL, NULL };

	t_qemu_pid = t_qemu_traced(t_qsock, TRACE);
	free(ctl);
	argv[5] = ctl = t_path("control.sock");
	t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
	/* made after the VMs' listeners */
	ck_assert_msg(t_wait_socket(ctl, T_WAIT_MS) == 0,
	    "%s did not appear; see %s/qmpmuxd.log", ctl, t_dir());
	free(conf);
}

/* n clients, ready, on the listener name of the test's directory. */
static void
clients(struct t_client **c, int n, const char *name)
{
	char	*path = t_path(name);

	t_clients_ready(c, n, path);
	free(path);
}

/* Send each of n clients depth query-status, pipelined. */
static void
fill(struct t_client **c, int n, int depth)
{
	int	 i, k;

	for (i = 0; i < n; i++) {
		for (k = 0; k < depth; k++)
			t_send(c[i], "{\"execute\": \"query-status\"}\n");
	}
}

/*
 * Wait until qmpmuxd has taken n commands, queued or refused, so that
 * what a test sends next comes after them.
 */
static void
taken(long long n)
{
	long long	 end = t_clock_ms() + T_WAIT_MS, have;

	for (;;) {
		have = t_vm_counter(ctl, "test", "commands") +
		    t_vm_counter(ctl, "test", "commands_refused");
		if (have >= n)
			return;
		ck_assert_msg(t_clock_ms() < end, "qmpmuxd took %lld of %lld "
		    "commands", have, n);
		poll(NULL, 0, 1);
	}
}

/* Read each of n clients' depth replies; how many were errors. */
static int
drain(struct t_client **c, int n, int depth)
{
	char	*m;
	int	 i, k, errors = 0;

	for (i = 0; i < n; i++) {
		for (k = 0; k < depth; k++) {
			ck_assert_msg((m = t_recv(c[i], T_WAIT_MS)) != NULL,
			    "client %d: reply %d of %d did not come", i, k,
			    depth);
			errors += strncmp(m, "{\"error\"", 8) == 0;
			free(m);
		}
	}
	return (errors);
}

/*
 * How many query-status QEMU ran before the first query-version, as its
 * trace shows; -1 if it ran no query-version.
 */
static int
before_version(void)
{
	char	*path = t_path(TRACE), *text, *line, *next;
	int	 n = 0, found = -1;

	ck_assert_ptr_nonnull(text = t_slurp(path, NULL));
	free(path);
	for (line = text; line != NULL && found == -1; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (strstr(line, "req: {\"execute\": \"query-version\"") != NULL)
			found = n;
		else if (strstr(line, "req: {\"execute\": \"query-status\"") !=
		    NULL)
			n++;
	}
	free(text);
	return (found);
}

/* Let QEMU run again. */
static void
cont(void)
{
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
}

/*
 * The manager first, and never refused: 16 background clients with 8
 * commands each fill their class's queue (max_queued_commands 64, some
 * refused), then the manager's command neither is refused nor waits
 * for more than the one command already at QEMU.
 */
START_TEST(test_manager_first)
{
	struct t_client	*bg[NCLIENTS_MAX], *mgr;
	char		*m;
	int		 refused;

	start("1");
	clients(bg, NCLIENTS_MAX, "bg.sock");
	clients(&mgr, 1, "mgr.sock");
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	fill(bg, NCLIENTS_MAX, DEPTH);
	taken(NCLIENTS_MAX * DEPTH);
	t_send(mgr, "{\"execute\": \"query-version\", \"id\": \"m\"}\n");
	cont();
	ck_assert_ptr_nonnull(m = t_recv(mgr, T_WAIT_MS));
	ck_assert_msg(strncmp(m, "{\"return\": {\"qemu\"", 18) == 0,
	    "the manager got %s", m);
	free(m);
	refused = drain(bg, NCLIENTS_MAX, DEPTH);
	/* 128 sent: one at QEMU, 64 queued, the rest refused */
	ck_assert_int_eq(refused, NCLIENTS_MAX * DEPTH - 1 - 64);
	/* counted as the background's, none as the manager's */
	ck_assert_int_eq(t_vm_counter(ctl, "test",
	    "commands_refused_background"), refused);
	ck_assert_int_eq(t_vm_counter(ctl, "test",
	    "commands_refused_manager"), 0);
	ck_assert_int_eq(t_vm_counter(ctl, "test", "commands_refused"),
	    refused);
	ck_assert_int_le(before_version(), 1);
	ck_assert_int_ge(before_version(), 0);
	t_clients_free(bg, NCLIENTS_MAX);
	t_client_free(mgr);
}
END_TEST

/*
 * Round robin within a class: a normal client beside 4 normal clients
 * that each have 8 commands waiting waits for at most one command of
 * each, and the one at QEMU.
 */
START_TEST(test_round_robin)
{
	struct t_client	*n[5];
	char		*m;

	start("1");
	clients(n, 5, "n.sock");
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	fill(n, 4, DEPTH);
	taken(4 * DEPTH);
	t_send(n[4], "{\"execute\": \"query-version\", \"id\": \"v\"}\n");
	cont();
	ck_assert_ptr_nonnull(m = t_recv(n[4], T_WAIT_MS));
	free(m);
	ck_assert_int_eq(drain(n, 4, DEPTH), 0);
	ck_assert_int_ge(before_version(), 0);
	ck_assert_int_le(before_version(), 1 + 4);
	t_clients_free(n, 5);
}
END_TEST

/*
 * A background client beside a manager that never lets its class's
 * queue empty: served by priority_relief while the manager goes on
 * (_i 0), starved until the manager stops without it (_i 1,
 * priority_relief = 0).  The manager's commands are query-qmp-schema,
 * some 20 ms of QEMU's each, so that QEMU, not the test, is what the
 * manager waits for, and its queue never runs dry.
 */
START_TEST(test_relief)
{
	struct t_client	*mgr, *bg;
	char		*m = NULL;
	long long	 end;
	int		 sent, answered = 0, relief = _i == 0;

	start(relief ? "0.2" : "0");
	clients(&mgr, 1, "mgr.sock");
	clients(&bg, 1, "bg.sock");
	for (sent = 0; sent < DEPTH; sent++)
		t_send(mgr, "{\"execute\": \"query-qmp-schema\"}\n");
	/* the manager's first, so that its class has work before */
	taken(DEPTH);
	t_send(bg, "{\"execute\": \"query-version\", \"id\": \"b\"}\n");
	/* the manager keeps DEPTH commands waiting for 3 seconds */
	end = t_clock_ms() + 3000;
	while (t_clock_ms() < end && m == NULL) {
		ck_assert_ptr_nonnull(m = t_recv(mgr, T_WAIT_MS));
		free(m);
		answered++;
		t_send(mgr, "{\"execute\": \"query-qmp-schema\"}\n");
		sent++;
		m = t_recv(bg, 1);
	}
	if (relief)
		ck_assert_msg(m != NULL, "the background client was not "
		    "served in 3 s beside %d manager commands", answered);
	else
		ck_assert_msg(m == NULL, "the background client was served "
		    "without relief: %s", m);
	if (m == NULL)
		ck_assert_ptr_nonnull(m = t_recv(bg, T_WAIT_MS));
	ck_assert_msg(strncmp(m, "{\"return\": {\"qemu\"", 18) == 0,
	    "the background client got %s", m);
	free(m);
	/* the manager's were all answered, in order */
	for (; answered < sent; answered++) {
		ck_assert_ptr_nonnull(m = t_recv(mgr, T_WAIT_MS));
		free(m);
	}
	ck_assert_int_eq(t_vm_counter(ctl, "test", "commands_relieved") > 0,
	    relief);
	t_client_free(mgr);
	t_client_free(bg);
}
END_TEST

/*
 * A reload that changes a listener's class makes it anew and closes its
 * clients; one that has not read its reply stays, closing, and is shown
 * with the class it had, its listener's conf its own to the end.
 */
START_TEST(test_reload_class)
{
	struct t_client	*c, *q;
	char		*conf, *m;
	long long	 end;
	int		 i;

	start("1");
	clients(&c, 1, "n.sock");
	/* some 1.6 MB that it does not read: it closes slowly */
	for (i = 0; i < DEPTH; i++)
		t_send(c, "{\"execute\": \"query-qmp-schema\"}\n");
	end = t_clock_ms() + T_WAIT_MS;
	while (t_vm_counter(ctl, "test", "replies") < DEPTH) {
		ck_assert_msg(t_clock_ms() < end, "QEMU did not answer");
		poll(NULL, 0, 1);
	}
	conf = write_conf("1", "background");
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "reloaded: ", T_WAIT_MS),
	    0);
	free(conf);
	ck_assert_ptr_nonnull(q = t_client_ready(ctl));
	m = t_cmd(q, "{\"execute\": \"query-vm\", \"arguments\": "
	    "{\"name\": \"test\"}}");
	ck_assert_msg(m != NULL && strstr(m, "\"state\":\"closing\"") !=
	    NULL && strstr(m, "\"priority\":\"normal\",\"state\"") !=
	    NULL, "query-vm: %s", m != NULL ? m : "(nothing)");
	free(m);
	t_client_free(q);
	/* alive: a freed listener read would have been fatal under ASan */
	ck_assert_int_eq(t_wait_exit(t_proxy_pid, 0), -1);
	t_client_free(c);
}
END_TEST

static Suite *
prio_suite(void)
{
	Suite	*s = suite_create("prio");
	TCase	*tc = t_tcase(s, "real-qemu", 120);

	tcase_add_test(tc, test_manager_first);
	tcase_add_test(tc, test_round_robin);
	tcase_add_loop_test(tc, test_relief, 0, 2);
	tcase_add_test(tc, test_reload_class);
	return (s);
}

int
main(void)
{
	return (t_run(prio_suite()));
}
