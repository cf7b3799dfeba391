/*
 * Restart in place (src/restart.c, src/state.c), against real QEMUs:
 * several VMs, several clients each, commands queued and in flight,
 * half-sent commands and events, across a SIGUSR2, a restart by the
 * control socket into a different binary (tests/qmpmuxd-next, which
 * says another version), and a restart the binary on disk refuses.
 * Every connection stays open, every command gets exactly one reply
 * with its own id, and no event is lost; the pid never changes.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

#define NVMS		3
#define NCLIENTS	3	/* per VM: two ready, one not yet negotiated */

static pid_t		 qemus[NVMS];
static struct t_client	*clients[NVMS][NCLIENTS];
static char		*ctl;

/*
 * Start NVMS real QEMUs and qmpmuxd (the binary at bin) in front of
 * them with a control socket, and connect the clients.
 */
static void
start(const char *bin)
{
	const char	*argv[] = { bin, "-d", "-f", NULL, "--control", NULL,
			    NULL };
	char		*conf = t_path("qmpmuxd.conf"), *q, *v;
	int		 i;

	ctl = t_path("control.sock");
	for (i = 0; i < NVMS; i++) {
		q = t_vm_path("q", i);
		qemus[i] = t_qemu(q);
		free(q);
	}
	t_conf_vms(conf, "command_timeout = 20\n", NVMS);
	argv[3] = conf;
	argv[5] = ctl;
	t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
	free(conf);
	ck_assert_int_eq(t_wait_socket(ctl, T_WAIT_MS), 0);
	for (i = 0; i < NVMS; i++) {
		v = t_vm_path("v", i);
		t_clients_row(clients[i], NCLIENTS, v);
		free(v);
	}
}

static void
stop_all(void)
{
	t_vms_stop(qemus, &clients[0][0], NVMS, NCLIENTS);
	free(ctl);
}

/*
 * The traffic around a restart, for restart_by to make happen:
 * - every ready client has two commands answered, then one sent whole
 *   and one half sent when the restart comes;
 * - VM 0's QEMU is stopped (SIGSTOP) with a stop command in flight and
 *   a query queued behind it, both answered by the new process, and the
 *   STOP event that follows reaches both of its ready clients;
 * - the client not yet negotiated negotiates with the new process.
 */
static void
traffic_restart(void (*restart_by)(void))
{
	struct t_client	*c;
	char		*q0 = t_vm_path("q", 0);
	long		 held;
	int		 i, j;

	for (i = 0; i < NVMS; i++) {
		for (j = 0; j < NCLIENTS - 1; j++) {
			c = clients[i][j];
			t_send(c, "{\"execute\": \"query-status\", \"id\": "
			    "\"a%d\"}", j);
			t_reply_is(c, j == 0 ? T_STATUS("\"a0\"", "running",
			    "true") : T_STATUS("\"a1\"", "running", "true"));
		}
	}
	/* VM 0: a command in flight and one queued, QEMU stuck */
	ck_assert_int_eq(t_sigstop(qemus[0], T_WAIT_MS), 0);
	held = t_unread(q0);
	t_send(clients[0][0], "{\"execute\": \"stop\", \"id\": {\"k\": "
	    "[1, \"in flight\"]}}");
	t_send(clients[0][1], "{\"execute\": \"query-status\", \"id\": "
	    "\"queued\"}");
	/* the others: one command whole, one half sent */
	for (i = 1; i < NVMS; i++) {
		for (j = 0; j < NCLIENTS - 1; j++) {
			c = clients[i][j];
			t_send(c, "{\"execute\": \"query-status\", \"id\": "
			    "\"b%d\"}", j);
			t_send_raw(c, "{\"execute\": \"query-st", 21);
		}
	}
	/* VM 0's stop is in flight: in the stopped QEMU's socket */
	ck_assert_int_eq(t_wait_unread(q0, held, T_WAIT_MS), 0);
	free(q0);

	restart_by();

	/* the half sent ones end, to the new process */
	for (i = 1; i < NVMS; i++) {
		for (j = 0; j < NCLIENTS - 1; j++) {
			c = clients[i][j];
			t_send(c, "atus\", \"id\": \"c%d\"}", j);
			t_reply_is(c, j == 0 ?
			    T_STATUS("\"b0\"", "running", "true") :
			    T_STATUS("\"b1\"", "running", "true"));
			t_reply_is(c, j == 0 ?
			    T_STATUS("\"c0\"", "running", "true") :
			    T_STATUS("\"c1\"", "running", "true"));
		}
		/* the client that had only its greeting negotiates now */
		t_cmd_eq(clients[i][NCLIENTS - 1], "{\"execute\": "
		    "\"qmp_capabilities\", \"id\": 9}", "{\"return\": {}, "
		    "\"id\": 9}");
	}
	/* VM 0's QEMU goes on: the new process answers both, in order */
	ck_assert_int_eq(kill(qemus[0], SIGCONT), 0);
	t_event_is(clients[0][0], "STOP");
	t_reply_is(clients[0][0], "{\"return\": {}, \"id\": {\"k\": [1, "
	    "\"in flight\"]}}");
	t_event_is(clients[0][1], "STOP");
	t_reply_is(clients[0][1], T_STATUS("\"queued\"", "paused", "false"));
	/* and the events of the new process reach every negotiated client */
	t_cmd_eq(clients[0][0], "{\"execute\": \"cont\", \"id\": 5}",
	    "{\"return\": {}, \"id\": 5}");
	t_event_is(clients[0][1], "RESUME");
	t_cmd_eq(clients[0][2], "{\"execute\": \"qmp_capabilities\"}",
	    "{\"return\": {}}");
	/* nothing more, and nothing twice, for anyone */
	for (i = 0; i < NVMS; i++) {
		for (j = 0; j < NCLIENTS; j++) {
			if (i == 0 && j == 0)
				continue;
			c = clients[i][j];
			ck_assert_int_eq(t_quiet(c, 50), T_SILENT);
		}
	}
	ck_assert_int_eq(t_wait_exit(t_proxy_pid, 0), -1);
}

/* A restart by SIGUSR2, seen done in the log. */
static void
by_signal(void)
{
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR2), 0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "took over", T_WAIT_MS),
	    0);
}

/*
 * A restart by the control socket: the answer comes from the new
 * process, and the control client stays connected through it.
 */
static void
by_control(void)
{
	struct t_client	*c;

	ck_assert_ptr_nonnull(c = t_client_ready(ctl));
	t_cmd_eq(c, "{\"execute\": \"restart\", \"id\": \"r\"}",
	    "{\"return\": {}, \"id\": \"r\"}");
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "took over", T_WAIT_MS),
	    0);
	t_cmd_eq(c, "{\"execute\": \"query-version\", \"id\": 2}",
	    "{\"return\": {\"qmpmuxd\": \"" PACKAGE_VERSION "\", "
	    "\"dump_version\": 1}, \"id\": 2}");
	t_client_free(c);
}

START_TEST(test_sigusr2)
{
	pid_t	 pid;

	start(t_bin("QMPMUXD"));
	pid = t_proxy_pid;
	traffic_restart(by_signal);
	ck_assert_int_eq(t_proxy_pid, pid);
	ck_assert_int_eq(kill(pid, 0), 0);
	stop_all();
}
END_TEST

/*
 * An upgrade: the binary on disk is replaced by one that says another
 * version, and the control socket's restart runs it.
 */
START_TEST(test_upgrade)
{
	char	*bin = t_copy_bin(t_bin("QMPMUXD"), "qmpmuxd");

	start(bin);
	free(t_copy_bin(t_bin("QMPMUXD_NEXT"), "qmpmuxd"));
	traffic_restart(by_control);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "qmpmuxd "
	    PACKAGE_VERSION "+next took over", T_WAIT_MS), 0);
	free(bin);
	stop_all();
}
END_TEST

/*
 * A binary on disk that cannot take over (it refuses the state): the
 * restart is refused with why, and the running process serves on.
 */
START_TEST(test_refused)
{
	char		*bin = t_copy_bin(t_bin("QMPMUXD"), "qmpmuxd");
	struct t_client	*c;
	char		*m, *tmp;
	FILE		*f;

	start(bin);
	ck_assert_int_ne(asprintf(&tmp, "%s.new", bin), -1);
	ck_assert_ptr_nonnull(f = fopen(tmp, "w"));
	fputs("#!/bin/sh\necho 'qmpmuxd: state version 1: no' >&2\nexit 1\n",
	    f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(tmp, 0755), 0);
	ck_assert_int_eq(rename(tmp, bin), 0);
	ck_assert_ptr_nonnull(c = t_client_ready(ctl));
	m = t_cmd(c, "{\"execute\": \"restart\", \"id\": 1}");
	ck_assert_ptr_nonnull(m);
	ck_assert_msg(strstr(m, "\"desc\": \"qmpmux: restart failed, the "
	    "running qmpmuxd goes on: ") != NULL && strstr(m, "cannot take "
	    "over (state version 1): qmpmuxd: state version 1: no") != NULL, "%s", m);
	free(m);
	/* a signal likewise: logged, and nothing changes */
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR2), 0);
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "restart failed, going "
	    "on as before", 2, T_WAIT_MS), 0);
	t_cmd_eq(clients[1][0], "{\"execute\": \"query-status\", \"id\": 1}",
	    T_STATUS("1", "running", "true"));
	t_cmd_eq(c, "{\"execute\": \"query-version\", \"id\": 2}",
	    "{\"return\": {\"qmpmuxd\": \"" PACKAGE_VERSION "\", "
	    "\"dump_version\": 1}, \"id\": 2}");
	/* one process began, the one started: none took over */
	ck_assert_int_eq(t_log_begun("qmpmuxd.log"), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "qmpmuxd " PACKAGE_VERSION
	    " started"), 1);
	t_client_free(c);
	free(tmp);
	free(bin);
	stop_all();
}
END_TEST

/*
 * A client that does not read: its replies (query-qmp-schema, some
 * 150 KB each) fill its socket and wait in qmpmuxd's output across the
 * restart; once it reads, each comes whole, once, in order.
 */
START_TEST(test_unread_output)
{
	struct t_client	*c;
	char		*m, want[32];
	long long	 taken;
	int		 i;

	start(t_bin("QMPMUXD"));
	c = clients[1][0];
	taken = t_vm_taken(ctl, "v1");
	for (i = 0; i < 8; i++)
		t_send(c, "{\"execute\": \"query-qmp-schema\", \"id\": %d}",
		    i);
	/* the last one was sent: the replies are on their way, unread */
	ck_assert_int_eq(t_wait_vm_sent(ctl, "v1", taken + 8, T_WAIT_MS), 0);
	by_signal();
	for (i = 0; i < 8; i++) {
		m = t_recv_reply(c, T_WAIT_MS);
		snprintf(want, sizeof(want), "\"id\": %d}", i);
		ck_assert_msg(m != NULL && strncmp(m, "{\"return\": [", 12) ==
		    0 && strlen(m) > 100000 && strcmp(m + strlen(m) -
		    strlen(want), want) == 0, "reply %d: %.80s", i,
		    m != NULL ? m : "(nothing or EOF)");
		free(m);
	}
	ck_assert_int_eq(t_quiet(c, 50), T_SILENT);
	stop_all();
}
END_TEST

/*
 * A client that pipelines past max_client_pipeline (8) while QEMU is
 * stopped: one command at QEMU, seven queued, and the last two read
 * from it but not yet taken, which wait in its input across the restart
 * (and in its spool); once QEMU goes on, all ten are answered, once, in
 * order.
 */
START_TEST(test_unread_input)
{
	struct t_client	*c;
	char		 burst[1024], want[128];
	size_t		 len = 0;
	int		 i;

	start(t_bin("QMPMUXD"));
	c = clients[1][0];
	ck_assert_int_eq(t_sigstop(qemus[1], T_WAIT_MS), 0);
	for (i = 0; i < 10; i++)
		len += (size_t)snprintf(burst + len, sizeof(burst) - len,
		    "{\"execute\": \"query-status\", \"id\": %d}", i);
	t_send_raw(c, burst, len);
	ck_assert_int_eq(t_wait_vm_queued(ctl, "v1", 7, T_WAIT_MS), 0);
	by_signal();
	ck_assert_int_eq(kill(qemus[1], SIGCONT), 0);
	for (i = 0; i < 10; i++) {
		snprintf(want, sizeof(want), T_STATUS("%d", "running", "true"),
		    i);
		t_reply_is(c, want);
	}
	ck_assert_int_eq(t_quiet(c, 50), T_SILENT);
	stop_all();
}
END_TEST

/*
 * A configuration that has gone bad since the start: the binary on disk
 * is asked with the same arguments, refuses, and the restart does not
 * happen; the error says where the file is wrong.
 */
START_TEST(test_bad_conf)
{
	struct t_client	*c;
	char		*m, *conf = t_path("qmpmuxd.conf");
	FILE		*f;

	start(t_bin("QMPMUXD"));
	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fputs("[vm broken\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_nonnull(c = t_client_ready(ctl));
	m = t_cmd(c, "{\"execute\": \"restart\", \"id\": 1}");
	ck_assert_ptr_nonnull(m);
	ck_assert_msg(strstr(m, "restart failed, the running qmpmuxd goes "
	    "on: ") != NULL && strstr(m, "qmpmuxd.conf:1: ") != NULL, "%s", m);
	free(m);
	t_cmd_eq(clients[2][0], "{\"execute\": \"query-status\", \"id\": 1}",
	    T_STATUS("1", "running", "true"));
	/* one process began, the one started: none took over */
	ck_assert_int_eq(t_log_begun("qmpmuxd.log"), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "qmpmuxd " PACKAGE_VERSION
	    " started"), 1);
	t_client_free(c);
	free(conf);
	stop_all();
}
END_TEST

/*
 * A VM that the new process cannot make (the file gave v0 a listener
 * in a directory that does not exist): v0's clients are closed, not
 * left on connections nobody serves, and the other VMs' are served on.
 * The whole takeover used to fail with it, and every connection end.
 */
START_TEST(test_vm_not_remade)
{
	char		*conf = t_path("qmpmuxd.conf"), *bad = t_path("no/v0.sock");
	FILE		*f;
	int		 j;

	start(t_bin("QMPMUXD"));
	ck_assert_ptr_nonnull(f = fopen(conf, "a"));
	fprintf(f, "[listener v0 %s]\n", bad);
	ck_assert_int_eq(fclose(f), 0);
	by_signal();
	for (j = 0; j < NCLIENTS; j++)
		ck_assert_msg(t_eof(clients[0][j], T_WAIT_MS), "v0's client "
		    "%d was left open", j);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm v0: cannot be taken "
	    "over; its connections are closed"), 1);
	t_cmd_eq(clients[1][0], "{\"execute\": \"query-status\", \"id\": 1}",
	    T_STATUS("1", "running", "true"));
	t_cmd_eq(clients[2][1], "{\"execute\": \"query-status\", \"id\": 2}",
	    T_STATUS("2", "running", "true"));
	ck_assert_int_eq(t_wait_exit(t_proxy_pid, 0), -1);
	free(conf);
	free(bad);
	stop_all();
}
END_TEST

/*
 * The file changed before the restart: VM v1 has another upstream (a
 * fake QEMU), v2 is gone, and v5 is new; a VM added by the control
 * socket, v0's namesake aside, stays.  As a reload would: v1's clients
 * are closed and a new one is served by the fake, v2's are closed and
 * its socket removed, v5 serves, v0 goes on untouched.
 */
START_TEST(test_conf_changed)
{
	char		*fsock = t_path("fake.sock"), *conf, *v, *q, *m;
	struct t_client	*c;
	FILE		*f;
	pid_t		 fake;

	start(t_bin("QMPMUXD"));
	fake = t_fakeqemu(fsock, NULL);
	conf = t_path("qmpmuxd.conf");
	q = t_vm_path("q", 0);
	v = t_vm_path("v", 0);
	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fprintf(f, "[global]\ncommand_timeout = 20\n[vm v0]\n"
	    "upstream = connect:%s\n[listener v0 %s]\n", q, v);
	free(v);
	v = t_vm_path("v", 1);
	fprintf(f, "[vm v1]\nupstream = connect:%s\n[listener v1 %s]\n",
	    fsock, v);
	free(v);
	free(q);
	q = t_vm_path("q", 2);
	v = t_vm_path("v", 5);
	fprintf(f, "[vm v5]\nupstream = connect:%s\n[listener v5 %s]\n", q,
	    v);
	ck_assert_int_eq(fclose(f), 0);
	/* v2's QEMU is v5's now: let v2's connection go with it */
	by_signal();
	ck_assert_msg(t_eof(clients[1][0], T_WAIT_MS), "v1's client stayed");
	ck_assert_msg(t_eof(clients[2][0], T_WAIT_MS), "v2's client stayed");
	free(v);
	v = t_vm_path("v", 2);
	ck_assert_int_eq(t_is_socket(v), 0);
	free(v);
	t_cmd_eq(clients[0][0], "{\"execute\": \"query-status\", \"id\": 1}",
	    T_STATUS("1", "running", "true"));
	v = t_vm_path("v", 1);
	ck_assert_ptr_nonnull(c = t_client_ready(v));
	t_cmd_eq(c, "{\"execute\": \"query-status\", \"id\": 2}",
	    "{\"return\": {\"command\": \"query-status\", \"seq\": 1}, "
	    "\"id\": 2}");
	t_client_free(c);
	free(v);
	v = t_vm_path("v", 5);
	ck_assert_int_eq(t_wait_socket(v, T_WAIT_MS), 0);
	ck_assert_ptr_nonnull(c = t_client_ready(v));
	m = t_cmd(c, "{\"execute\": \"query-status\", \"id\": 3}");
	ck_assert_msg(m != NULL && strstr(m, "\"status\": \"running\"") !=
	    NULL, "%s", m != NULL ? m : "(nothing)");
	free(m);
	t_client_free(c);
	free(v);
	free(q);
	t_stop(fake, SIGTERM);
	free(fsock);
	free(conf);
	stop_all();
}
END_TEST

/*
 * Paths that change hands across a restart, as a reload lets them: v1's
 * listener path goes to v0 (v1 gets another), and v2 is renamed v9 on
 * the same path and QEMU.  What the file gave up is closed before
 * anything binds: v0 keeps its clients and serves on both paths, v9
 * serves on v2's, and no VM is left out.  Before, the path held by the
 * socket of before kept v0 from binding it, and v0 was left out.
 */
START_TEST(test_paths_moved)
{
	char		*conf = t_path("qmpmuxd.conf"), *q, *v, *w, *m;
	struct t_client	*c;
	FILE		*f;
	int		 i;

	start(t_bin("QMPMUXD"));
	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fprintf(f, "[global]\ncommand_timeout = 20\n");
	for (i = 0; i < NVMS; i++) {
		q = t_vm_path("q", i);
		v = t_vm_path("v", i);
		fprintf(f, "[vm v%d]\nupstream = connect:%s\n", i == 2 ? 9 : i,
		    q);
		if (i == 0) {
			w = t_vm_path("v", 1);
			fprintf(f, "[listener v0 %s]\n[listener v0 %s]\n", v, w);
			free(w);
		} else if (i == 1)
			fprintf(f, "[listener v1 %s.b]\n", v);
		else
			fprintf(f, "[listener v9 %s]\n", v);
		free(q);
		free(v);
	}
	ck_assert_int_eq(fclose(f), 0);
	by_signal();
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "cannot be taken over"),
	    0);
	/* v0 kept its clients, and v1's path is v0's now */
	for (i = 0; i < NCLIENTS - 1; i++)
		t_cmd_eq(clients[0][i], "{\"execute\": \"query-status\", "
		    "\"id\": 1}", T_STATUS("1", "running", "true"));
	v = t_vm_path("v", 1);
	ck_assert_msg(t_eof(clients[1][0], T_WAIT_MS), "v1's client on a "
	    "path v1 no longer has stayed");
	ck_assert_ptr_nonnull(c = t_client_ready(ctl));
	m = t_cmd(c, "{\"execute\": \"query-vm\", \"arguments\": "
	    "{\"name\": \"v0\"}}");
	ck_assert_msg(m != NULL && strstr(m, v) != NULL, "v0: %s", m);
	free(m);
	t_client_free(c);
	ck_assert_ptr_nonnull(c = t_client_ready(v));
	t_client_free(c);
	free(v);
	/* v9 on v2's path and QEMU; v1 on its new path */
	v = t_vm_path("v", 2);
	ck_assert_ptr_nonnull(c = t_client_ready(v));
	t_cmd_eq(c, "{\"execute\": \"query-status\", \"id\": 2}",
	    T_STATUS("2", "running", "true"));
	t_client_free(c);
	free(v);
	ck_assert_int_ne(asprintf(&v, "%s.b", (w = t_vm_path("v", 1))), -1);
	free(w);
	ck_assert_ptr_nonnull(c = t_client_ready(v));
	t_client_free(c);
	free(v);
	ck_assert_int_eq(t_wait_exit(t_proxy_pid, 0), -1);
	free(conf);
	stop_all();
}
END_TEST

/*
 * Run the binary at bin as a restart asks it, on the state document in
 * file (the version given in place of its own when version is not 0),
 * with the sockets it names (t_state_sockets): its exit status, its
 * complaint in DIR/check.log.
 */
static int
check_state(const char *bin, const char *file, int version)
{
	const char	*argv[] = { bin, "-f", NULL, "--control", "none",
			    "--check-state", NULL, NULL };
	char		*conf = t_path("empty.conf"), *text, num[16];
	FILE		*f;
	size_t		 len;
	int		 fd, status;

	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	ck_assert_int_eq(fclose(f), 0);
	text = t_state_here(t_slurp(file, NULL));
	if (version != 0) {
		ck_assert_ptr_nonnull(strstr(text, "\"qmpmux_state\": 1,"));
		*(strstr(text, "\"qmpmux_state\": 1,") + 16) =
		    (char)('0' + version);
	}
	/* an inherited fd, as a restart gives one, and the sockets */
	len = strlen(text);
	ck_assert_int_ne(fd = memfd_create("state", 0), -1);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	snprintf(num, sizeof(num), "%d", fd);
	argv[2] = conf;
	argv[6] = num;
	t_state_sockets();
	status = t_wait_exit(t_spawn(argv, "check.log"), T_WAIT_MS);
	t_state_sockets_close();
	close(fd);
	free(text);
	free(conf);
	return (status);
}

/*
 * A newer binary reads every older state: the version 1 document of
 * docs/STATE.md (tests/state-v1.json) is read by this one, by the one
 * that says another version, and a version 2 document is refused with
 * why.  The day the format changes, this file stays as it is.
 */
START_TEST(test_state_versions)
{
	const char	*doc = t_bin("STATE_V1");

	ck_assert(t_exited(check_state(t_bin("QMPMUXD"), doc, 0), 0));
	ck_assert(t_exited(check_state(t_bin("QMPMUXD_NEXT"), doc, 0), 0));
	ck_assert(t_exited(check_state(t_bin("QMPMUXD"), doc, 2), 1));
	ck_assert_int_eq(t_wait_log("check.log", "qmpmuxd: cannot take over: "
	    "state version 2: this qmpmuxd reads versions 1 to 1", T_WAIT_MS),
	    0);
}
END_TEST

/*
 * The check reads the whole document, and the fds it names, as the new
 * process would: a document of the version it reads but that it could
 * not use is refused, and the running process serves on.  The binary
 * on disk is a script that changes the state it is asked about (the
 * memfd the new process would get too) before it runs qmpmuxd's check:
 * the command in flight to VM 0's stopped QEMU said not sent, which
 * the check, reading the version only, passed, and the new process
 * then crashed on (no command to send), and every connection with it.
 */
START_TEST(test_refused_document)
{
	char		*bin = t_copy_bin(t_bin("QMPMUXD"), "qmpmuxd");
	char		*real = t_copy_bin(t_bin("QMPMUXD"), "qmpmuxd.real");
	char		*q0 = t_vm_path("q", 0), *tmp;
	struct t_client	*c;
	FILE		*f;
	long		 held;
	pid_t		 pid;

	start(bin);
	pid = t_proxy_pid;
	ck_assert_int_ne(asprintf(&tmp, "%s.new", bin), -1);
	ck_assert_ptr_nonnull(f = fopen(tmp, "w"));
	fprintf(f, "#!/bin/sh\ncase \" $* \" in *\" --check-state \"*)\n"
	    "\teval fd=\\${$#}\n"
	    "\tdoc=$(sed 's/\"sent\":true/\"sent\":false/' /proc/self/fd/$fd)\n"
	    "\tprintf '%%s' \"$doc\" > /proc/self/fd/$fd;;\nesac\n"
	    "exec %s \"$@\"\n", real);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(tmp, 0755), 0);
	ck_assert_int_eq(rename(tmp, bin), 0);
	/* VM 0: a command in flight, its QEMU stuck */
	ck_assert_int_eq(t_sigstop(qemus[0], T_WAIT_MS), 0);
	held = t_unread(q0);
	t_send(clients[0][0], "{\"execute\": \"query-status\", \"id\": "
	    "\"in flight\"}");
	ck_assert_int_eq(t_wait_unread(q0, held, T_WAIT_MS), 0);
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR2), 0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "restart failed, going on "
	    "as before: ", T_WAIT_MS), 0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "cannot take over (state "
	    "version 1): qmpmuxd: cannot take over: the state's "
	    "vms[0].commands[0].wire is missing, for a command not sent",
	    T_WAIT_MS), 0);
	/* the same process answers, and every client is served */
	ck_assert_int_eq(kill(qemus[0], SIGCONT), 0);
	t_reply_is(clients[0][0], T_STATUS("\"in flight\"", "running",
	    "true"));
	t_cmd_eq(clients[1][0], "{\"execute\": \"query-status\", \"id\": 1}",
	    T_STATUS("1", "running", "true"));
	ck_assert_ptr_nonnull(c = t_client_ready(ctl));
	t_cmd_eq(c, "{\"execute\": \"query-version\", \"id\": 2}",
	    "{\"return\": {\"qmpmuxd\": \"" PACKAGE_VERSION "\", "
	    "\"dump_version\": 1}, \"id\": 2}");
	t_client_free(c);
	/* one process began, the one started: none took over */
	ck_assert_int_eq(t_log_begun("qmpmuxd.log"), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "qmpmuxd " PACKAGE_VERSION
	    " started"), 1);
	ck_assert_int_eq(t_proxy_pid, pid);
	ck_assert_int_eq(t_wait_exit(t_proxy_pid, 0), -1);
	free(tmp);
	free(q0);
	free(real);
	free(bin);
	stop_all();
}
END_TEST

/*
 * Signals during the handover are held, not fatal: a SIGHUP sent right
 * behind the SIGUSR2 reaches the new process, which reloads.
 */
/* The new process has served, reloaded on the held SIGHUP, and serves. */
static void
reloaded_after(void)
{
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "took over", T_WAIT_MS),
	    0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "reloaded: ", T_WAIT_MS),
	    0);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "received SIGHUP"), 1);
	ck_assert_int_eq(t_wait_exit(t_proxy_pid, 0), -1);
	t_cmd_eq(clients[1][0], "{\"execute\": \"query-status\", \"id\": 1}",
	    T_STATUS("1", "running", "true"));
}

START_TEST(test_signal_held)
{
	start(t_bin("QMPMUXD"));
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR2), 0);
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	reloaded_after();
	stop_all();
}
END_TEST

/*
 * Signals that come while the binary on disk is being asked (a script
 * in its place takes half a second over it) are held for the new
 * process too: a handler would have caught them in the old one, and
 * the exec lost them.  SIGHUP reloads and SIGUSR1 dumps once it serves.
 */
START_TEST(test_signal_during_check)
{
	char	*bin = t_copy_bin(t_bin("QMPMUXD"), "qmpmuxd");
	char	*real = t_copy_bin(t_bin("QMPMUXD"), "qmpmuxd.real"), *tmp;
	FILE	*f;

	start(bin);
	ck_assert_int_ne(asprintf(&tmp, "%s.new", bin), -1);
	ck_assert_ptr_nonnull(f = fopen(tmp, "w"));
	fprintf(f, "#!/bin/sh\ncase \" $* \" in *\" --check-state \"*)\n"
	    "\techo checking >> %s/check.log; sleep 0.5;;\nesac\n"
	    "exec %s \"$@\"\n", t_dir(), real);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(tmp, 0755), 0);
	ck_assert_int_eq(rename(tmp, bin), 0);
	free(tmp);
	tmp = t_path("check.log");
	fclose(fopen(tmp, "a"));
	free(tmp);
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR2), 0);
	ck_assert_int_eq(t_wait_log("check.log", "checking", T_WAIT_MS), 0);
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR1), 0);
	reloaded_after();
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "dump: 3 VMs", T_WAIT_MS),
	    0);
	free(real);
	free(bin);
	stop_all();
}
END_TEST

/* qom-set of a property -M none has: a write, which the lock holds. */
#define QOM_SET	"{\"execute\": \"qom-set\", \"arguments\": {\"path\": " \
	"\"/machine\", \"property\": \"graphics\", \"value\": false}, " \
	"\"id\": \"w\"}"

/*
 * The lock across a restart: client 1 holds it, client 2's qom-set and
 * acquire wait for it.  After the restart the holder is the same, with
 * the same token and a lease that counted on through it; the write and
 * the acquire still wait, and go once the holder releases, the acquire
 * with the next token.
 */
START_TEST(test_lock)
{
	struct t_client	*a, *b;
	struct t_lock	 l, l2;
	long long	 token;
	char		*m;

	start(t_bin("QMPMUXD"));
	a = clients[0][0];
	b = clients[0][1];
	token = t_lock_acquire(a, 15, 0);
	t_send(b, QOM_SET);
	t_send(b, "{\"execute\": \"__org.qmpmux_x-lock-acquire\", "
	    "\"arguments\": {\"hold\": 5, \"timeout\": 30}, \"id\": "
	    "\"b\"}");
	t_lock_waiting(a, "__org.qmpmux_x-lock-acquire", &l);
	ck_assert(l.held && l.token == token && l.client == 1);
	ck_assert_msg(strstr(l.waiters, "qom-set") != NULL, "%s", l.waiters);

	by_control();

	t_lock_query(a, &l2);
	ck_assert_msg(l2.held && l2.token == token && l2.client == 1,
	    "token %lld of client %lld", l2.token, l2.client);
	ck_assert_msg(l2.expires < l.expires && l2.expires > 5,
	    "lease %g, then %g", l.expires, l2.expires);
	ck_assert_msg(strstr(l2.waiters, "{\"client\": 2, \"command\": "
	    "\"qom-set\"") != NULL && strstr(l2.waiters, "{\"client\": 2, "
	    "\"command\": \"__org.qmpmux_x-lock-acquire\"") != NULL, "%s",
	    l2.waiters);
	free(l.waiters);
	free(l2.waiters);
	ck_assert_int_eq(t_quiet(b, 100), T_SILENT);
	/* the holder writes on; the others wait still */
	t_cmd_eq(a, QOM_SET, "{\"return\": {}, \"id\": \"w\"}");
	t_lock_release(a, token);
	t_reply_is(b, "{\"return\": {}, \"id\": \"w\"}");
	m = t_recv_reply(b, T_WAIT_MS);
	ck_assert_msg(m != NULL && strstr(m, "\"token\": ") != NULL &&
	    strtoll(strstr(m, "\"token\": ") + 9, NULL, 10) == token + 1,
	    "%s", m);
	free(m);
	stop_all();
}
END_TEST

/*
 * A lease that runs out while the restart is under way (its check held
 * back by the binary on disk until the lease is past) expires right
 * after it: the holder is told, fenced, and the write waiting goes.
 */
START_TEST(test_lock_expired)
{
	struct t_client	*a, *b;
	struct t_lock	 l;
	char		*bin, *go = t_path("go"), *tmp;
	FILE		*f;
	int		 fd;

	bin = t_copy_bin(t_bin("QMPMUXD"), "qmpmuxd");
	start(bin);
	a = clients[0][0];
	b = clients[0][1];
	(void)t_lock_acquire(a, 0.5, 0);
	t_send(b, QOM_SET);
	t_lock_waiting(a, "qom-set", &l);
	free(l.waiters);
	/* the binary on disk waits for go, then is the real one */
	ck_assert_int_ne(asprintf(&tmp, "%s.new", bin), -1);
	ck_assert_ptr_nonnull(f = fopen(tmp, "w"));
	fprintf(f, "#!/bin/sh\nwhile [ ! -e '%s' ]; do sleep 0.01; done\n"
	    "exec '%s' \"$@\"\n", go, t_bin("QMPMUXD"));
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(tmp, 0755), 0);
	ck_assert_int_eq(rename(tmp, bin), 0);
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR2), 0);
	/* the lease's end passes while the check waits */
	poll(NULL, 0, 1000);
	ck_assert_int_ne(fd = open(go, O_WRONLY | O_CREAT, 0644), -1);
	close(fd);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "took over", T_WAIT_MS),
	    0);
	t_event_is(a, "__org.qmpmux_LOCK_RELEASED");
	t_reply_is(b, "{\"return\": {}, \"id\": \"w\"}");
	t_lock_query(a, &l);
	ck_assert(!l.held);
	free(l.waiters);
	t_cmd_eq(a, QOM_SET, "{\"id\": \"w\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: this client lost the "
	    "lock of VM v0 (token 1, its lease ran out); acquire it again\"}}");
	/* held at the save, it ran out after the take-over */
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "lock 1 of client 1 taken "
	    "over"), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "released: expired"), 1);
	free(tmp);
	free(go);
	free(bin);
	stop_all();
}
END_TEST

/* A second restart right after the first: the state goes on. */
START_TEST(test_twice)
{
	start(t_bin("QMPMUXD"));
	traffic_restart(by_signal);
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR2), 0);
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "took over", 2,
	    T_WAIT_MS), 0);
	t_cmd_eq(clients[2][1], "{\"execute\": \"query-status\", \"id\": 1}",
	    T_STATUS("1", "running", "true"));
	t_cmd_eq(clients[0][1], "{\"execute\": \"query-status\", \"id\": 1}",
	    T_STATUS("1", "running", "true"));
	stop_all();
}
END_TEST

static Suite *
restart_suite(void)
{
	Suite	*s = suite_create("restart");
	TCase	*tc = t_tcase(s, "restart", 60);

	tcase_add_test(tc, test_sigusr2);
	tcase_add_test(tc, test_upgrade);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_twice);
	tcase_add_test(tc, test_lock);
	tcase_add_test(tc, test_lock_expired);
	tcase_add_test(tc, test_unread_output);
	tcase_add_test(tc, test_unread_input);
	tcase_add_test(tc, test_bad_conf);
	tcase_add_test(tc, test_conf_changed);
	tcase_add_test(tc, test_vm_not_remade);
	tcase_add_test(tc, test_paths_moved);
	tcase_add_test(tc, test_state_versions);
	tcase_add_test(tc, test_refused_document);
	tcase_add_test(tc, test_signal_held);
	tcase_add_test(tc, test_signal_during_check);
	return (s);
}

int
main(void)
{
	return (t_run(restart_suite()));
}
