/*
 * The live trace (src/trace.c), with the real QEMU behind qmpmuxd and its
 * control socket: a command's four messages in order with their
 * directions, clients and ids; an event once however many clients; a
 * trace reader that never reads, which must not slow the VM or grow
 * qmpmuxd, and gets the count of what it missed; qmpmuxctl trace.
 */
#include "config.h"

#include <sys/wait.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, " \
		"\"minor\": 1, \"major\": 0}, \"package\": \"qmpmuxd " \
		PACKAGE_VERSION "\"}, \"capabilities\": []}}"
#define OK(id)	"{\"return\": {}, \"id\": " id "}"
#define PAD	4000		/* bytes of a long client id */
#define TRIPS	2000		/* round trips while the reader sleeps */

static char	*ctl;		/* the control socket's path */

/* Start QEMU and qmpmuxd (VM "test") with a control socket. */
static void
start(void)
{
	const char	*opts[] = { "--control", NULL, NULL };

	ctl = t_path("c.sock");
	opts[1] = ctl;
	t_start_qemu(opts);
	ck_assert_int_eq(t_wait_socket(ctl, T_WAIT_MS), 0);
}

/* A negotiated control client tracing VM "test". */
static struct t_client *
tracer(void)
{
	struct t_client	*c;

	ck_assert_ptr_nonnull(c = t_client_new(ctl));
	t_recv_eq(c, GREETING);
	t_cmd_eq(c, "{\"execute\": \"qmp_capabilities\", \"id\": 0}",
	    OK("0"));
	t_cmd_eq(c, "{\"execute\": \"trace\", \"arguments\": {\"name\": "
	    "\"test\"}, \"id\": 1}", OK("1"));
	return (c);
}

/* The next message at c, which must be an event of that name. */
static yajl_val
recv_event(struct t_client *c, const char *name)
{
	char		*m = t_recv(c, T_WAIT_MS);
	yajl_val	 v = t_json(m);

	ck_assert_msg(v != NULL && t_get_str(v, "event", NULL) != NULL &&
	    strcmp(t_get_str(v, "event", NULL), name) == 0,
	    "expected %s, got %.300s", name, m != NULL ? m : "(nothing)");
	ck_assert_int_ge(t_get_int(v, "timestamp", "seconds"), 1);
	ck_assert_int_ge(t_get_int(v, "timestamp", "microseconds"), 0);
	free(m);
	return (v);
}

/* A value in a trace event's data.message, or NULL. */
static yajl_val
msg_get(yajl_val v, const char *key)
{
	const char	*path[] = { "data", "message", key, NULL };

	return (yajl_tree_get(v, path, yajl_t_any));
}

/* A string in a trace event's data.message, or "". */
static const char *
msg_str(yajl_val v, const char *key)
{
	yajl_val	 s = msg_get(v, key);

	return (s != NULL && YAJL_IS_STRING(s) ? s->u.string : "");
}

/*
 * The next trace event: of VM test, in direction dir, of client (-1:
 * null); the caller frees it.
 */
static yajl_val
recv_trace(struct t_client *c, const char *dir, long long client)
{
	yajl_val	 v = recv_event(c, "QMPMUX_TRACE");
	const char	*path[] = { "data", "client", NULL };

	ck_assert_str_eq(t_get_str(v, "data", "vm"), "test");
	ck_assert_str_eq(t_get_str(v, "data", "direction"), dir);
	if (client == -1)
		ck_assert(YAJL_IS_NULL(yajl_tree_get(v, path, yajl_t_any)));
	else
		ck_assert_int_eq(t_get_int(v, "data", "client"), client);
	return (v);
}

/*
 * A client's query-status: client-in as sent, qemu-out with qmpmuxd's
 * id, qemu-in the reply with that id and the client, client-out with
 * the client's own id.  stop and cont: QEMU's STOP and RESUME come
 * once each (qemu-in, no client), though two clients get them.
 */
START_TEST(test_order)
{
	struct t_client	*tr, *a, *b;
	yajl_val	 v, id;
	char		*up;
	const char	*ev;
	int		 i, stops, replies;

	start();
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	tr = tracer();

	t_send(a, "{\"execute\": \"query-status\", \"id\": \"mine\"}");
	v = recv_trace(tr, "client-in", 1);
	ck_assert_str_eq(msg_str(v, "execute"),
	    "query-status");
	ck_assert_str_eq(msg_str(v, "id"), "mine");
	yajl_tree_free(v);
	v = recv_trace(tr, "qemu-out", 1);
	ck_assert_str_eq(msg_str(v, "execute"),
	    "query-status");
	/* qmpmuxd's id: its epoch, number, client, and "mine" in hex */
	ck_assert_ptr_nonnull(id = msg_get(v, "id"));
	ck_assert(YAJL_IS_STRING(id));
	ck_assert_ptr_nonnull(up = strdup(id->u.string));
	ck_assert_msg(strlen(up) == 8 + 17 && strcmp(up + 8,
	    ".1.1.226d696e6522") == 0, "%s", up);
	yajl_tree_free(v);
	v = recv_trace(tr, "qemu-in", 1);
	ck_assert(YAJL_IS_STRING(msg_get(v, "id")));
	ck_assert_str_eq(YAJL_GET_STRING(msg_get(v, "id")), up);
	free(up);
	ck_assert_ptr_nonnull(msg_get(v, "return"));
	yajl_tree_free(v);
	v = recv_trace(tr, "client-out", 1);
	ck_assert_str_eq(msg_str(v, "id"), "mine");
	ck_assert_ptr_nonnull(msg_get(v, "return"));
	yajl_tree_free(v);
	free(t_recv_reply(a, T_WAIT_MS));

	/* a reply the proxy makes itself is traced as QEMU's are */
	t_send(a, "{\"execute\": \"query-status\", \"foo\": 1, \"id\": 2}");
	v = recv_trace(tr, "client-in", 1);
	yajl_tree_free(v);
	v = recv_trace(tr, "client-out", 1);
	ck_assert_int_eq(YAJL_GET_INTEGER(msg_get(v, "id")), 2);
	ck_assert_str_eq(t_get_str(msg_get(v, "error"), "desc", NULL),
	    "QMP input member 'foo' is unexpected");
	yajl_tree_free(v);
	free(t_recv_reply(a, T_WAIT_MS));

	/* stop, then cont: each event once, whatever the clients */
	for (i = 0; i < 2; i++) {
		ev = i == 0 ? "STOP" : "RESUME";
		t_send(a, "{\"execute\": \"%s\", \"id\": %d}",
		    i == 0 ? "stop" : "cont", 10 + i);
		v = recv_trace(tr, "client-in", 1);
		yajl_tree_free(v);
		v = recv_trace(tr, "qemu-out", 1);
		yajl_tree_free(v);
		/* the event and the reply, in QEMU's order, then client-out */
		stops = replies = 0;
		while (replies == 0) {
			v = recv_event(tr, "QMPMUX_TRACE");
			if (strcmp(t_get_str(v, "data", "direction"),
			    "qemu-in") == 0 && msg_get(v, "event") != NULL) {
				ck_assert_str_eq(msg_str(v, "event"), ev);
				ck_assert(YAJL_IS_NULL(yajl_tree_get(v,
				    (const char *[]){ "data", "client", NULL },
				    yajl_t_any)));
				stops++;
			} else if (strcmp(t_get_str(v, "data", "direction"),
			    "client-out") == 0) {
				ck_assert_int_eq(YAJL_GET_INTEGER(
				    msg_get(v, "id")), 10 + i);
				replies++;
			} else
				ck_assert_str_eq(t_get_str(v, "data",
				    "direction"), "qemu-in");
			yajl_tree_free(v);
		}
		if (stops == 0) {
			v = recv_trace(tr, "qemu-in", -1);
			ck_assert_str_eq(msg_str(v, "event"),
			    ev);
			yajl_tree_free(v);
			stops++;
		}
		ck_assert_int_eq(stops, 1);
		free(t_recv_reply(a, T_WAIT_MS));
	}
	/* one event each, not one per client */
	ck_assert_int_eq(t_quiet(tr, 200), T_SILENT);

	/*
	 * The VM removed: its clients see the end, and the trace says
	 * QMPMUX_TRACE_END once and nothing after, while the tracing
	 * connection stays a control client.
	 */
	t_cmd_eq(tr, "{\"execute\": \"remove-vm\", \"arguments\": "
	    "{\"name\": \"test\"}, \"id\": 5}", OK("5"));
	ck_assert(t_eof(a, T_WAIT_MS));
	ck_assert(t_eof(b, T_WAIT_MS));
	v = recv_event(tr, "QMPMUX_TRACE_END");
	ck_assert_str_eq(t_get_str(v, "data", "vm"), "test");
	yajl_tree_free(v);
	t_cmd_eq(tr, "{\"execute\": \"query-vms\", \"id\": 6}",
	    "{\"return\": [], \"id\": 6}");
	ck_assert_int_eq(t_quiet(tr, 200), T_SILENT);

	t_client_free(a);
	t_client_free(b);
	t_client_free(tr);
}
END_TEST

/*
 * A trace reader that reads nothing while a client makes TRACE round
 * trips with ids of PAD bytes: every one completes within a generous
 * bound, qmpmuxd's RSS peak grows by less than 8 MiB (the whole trace,
 * held, would be some 16 MiB), and once the reader reads, a
 * QMPMUX_TRACE_SKIPPED with a count comes before the next message.
 */
START_TEST(test_slow_reader)
{
	struct t_client	*tr, *a;
	char		 pad[PAD + 1];
	char		*m;
	yajl_val	 v;
	long		 rss0, hwm;
	long long	 t0, count = -1;
	int		 i, probe;

	t_small_quarantine();
	start();
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	tr = tracer();
	memset(pad, 'x', PAD);
	pad[PAD] = '\0';
	/* warm: qmpmuxd's buffers and QEMU's answer once before measuring */
	free(t_cmd(a, "{\"execute\": \"query-status\", \"id\": \"%s\"}", pad));
	rss0 = t_proc_kb(t_proxy_pid, "VmRSS");
	ck_assert_int_gt(rss0, 0);

	t0 = t_clock_ms();
	for (i = 0; i < TRIPS; i++) {
		m = t_cmd(a, "{\"execute\": \"query-status\", \"id\": "
		    "\"%s%d\"}", pad, i);
		ck_assert_msg(m != NULL && strstr(m, "\"return\"") != NULL,
		    "round trip %d: %s", i, m != NULL ? m : "(nothing)");
		free(m);
	}
	ck_assert_msg(t_clock_ms() - t0 < 6 * T_WAIT_MS, "%d round trips "
	    "took %lld ms", TRIPS, t_clock_ms() - t0);
	hwm = t_proc_kb(t_proxy_pid, "VmHWM");
	printf("%d round trips, traced unread: %lld ms; qmpmuxd RSS %ld kB "
	    "before, peak %ld kB\n", TRIPS, t_clock_ms() - t0, rss0, hwm);
	ck_assert_msg(hwm - rss0 < 8 * 1024 || !t_rss_is_qmpmuxd(),
	    "qmpmuxd grew from %ld kB to a peak of %ld kB", rss0, hwm);

	/*
	 * Read on, 50 messages a probe (a round trip whose messages the
	 * trace takes once its output is down to half, and the first it
	 * takes comes after the count).  Reading 50 never waits in vain:
	 * while the output is over half (512 KiB), it holds more than 50
	 * messages of at most PAD bytes and a few hundred; once it is not,
	 * the probe was taken, and the count comes before it.
	 */
	for (probe = 0; probe < 1000 && count == -1; probe++) {
		free(t_cmd(a, "{\"execute\": \"query-status\", \"id\": "
		    "\"probe%d\"}", probe));
		for (i = 0; i < 50 && count == -1; i++) {
			m = t_recv(tr, T_WAIT_MS);
			ck_assert_msg(m != NULL, "probe %d: message %d of the "
			    "trace missing", probe, i);
			v = t_json(m);
			ck_assert_ptr_nonnull(v);
			if (strcmp(t_get_str(v, "event", NULL),
			    "QMPMUX_TRACE_SKIPPED") == 0) {
				count = t_get_int(v, "data", "count");
				ck_assert_str_eq(t_get_str(v, "data", "vm"),
				    "test");
			} else
				ck_assert_str_eq(t_get_str(v, "event", NULL),
				    "QMPMUX_TRACE");
			free(m);
			yajl_tree_free(v);
		}
	}
	ck_assert_msg(count > 0, "no QMPMUX_TRACE_SKIPPED after %d probes",
	    probe);
	printf("QMPMUX_TRACE_SKIPPED: %lld after %d probes\n", count, probe);
	/* and right after it, the message that was taken */
	v = recv_event(tr, "QMPMUX_TRACE");
	ck_assert_str_eq(t_get_str(v, "data", "vm"), "test");
	yajl_tree_free(v);

	t_client_free(a);
	t_client_free(tr);
}
END_TEST

/*
 * Read what the pipe fd has within 100 ms onto buf (of size bytes,
 * *have of them used, kept NUL-terminated).
 */
static void
pipe_take(int fd, char *buf, size_t size, size_t *have)
{
	struct pollfd	 pfd;
	ssize_t		 n;

	pfd.fd = fd;
	pfd.events = POLLIN;
	if (*have + 1 >= size || poll(&pfd, 1, 100) != 1)
		return;
	n = read(fd, buf + *have, size - 1 - *have);
	ck_assert_int_gt(n, 0);
	*have += (size_t)n;
	buf[*have] = '\0';
}

/*
 * qmpmuxctl trace test, its output a pipe: a line per message, with
 * the direction, the client and the message compact, its DEL and C1
 * controls escaped; SIGINT ends it with status 0.  trace of a VM that
 * is not there: status 4.
 */
START_TEST(test_ctl)
{
	const char	*argv[] = { NULL, "--control", NULL, "trace", "nosuch",
			    NULL };
	struct t_client	*a;
	char		 buf[8192] = "";
	size_t		 have = 0;
	pid_t		 pid;
	int		 p[2], status, lines = 0;
	long long	 end;
	char		*ta;

	start();
	argv[0] = t_bin("QMPMUXCTL");
	argv[2] = ctl;
	pid = t_spawn(argv, "ctl-nosuch.log");
	status = t_wait_exit(pid, T_WAIT_MS);
	ck_assert_msg(t_exited(status, 4), "qmpmuxctl trace nosuch: status "
	    "%d", status);

	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(t_bin("QMPMUXCTL"), "qmpmuxctl", "--control", ctl,
		    "trace", "test", (char *)NULL);
		_exit(127);
	}
	ck_assert_int_gt(pid, 0);
	close(p[1]);
	/*
	 * The trace is on once qmpmuxd has taken the command, which no
	 * event tells: a's commands go on until their lines come.
	 */
	end = t_clock_ms() + T_WAIT_MS;
	while (lines < 4 && t_clock_ms() < end) {
		free(t_cmd(a, "{\"execute\": \"query-status\", \"id\": 7}"));
		pipe_take(p[0], buf, sizeof(buf), &have);
		lines = 0;
		for (ta = buf; (ta = strchr(ta, '\n')) != NULL; ta++)
			lines++;
	}
	ck_assert_msg(lines >= 4, "qmpmuxctl printed: %s", buf);
	ck_assert_msg(strstr(buf, " client-in  1    {\"execute\":"
	    "\"query-status\",\"id\":7}\n") != NULL, "%s", buf);
	ck_assert_msg(strstr(buf, " qemu-out   1    {\"execute\":"
	    "\"query-status\",\"id\":") != NULL, "%s", buf);
	ck_assert_msg(buf[2] == ':' && buf[5] == ':' && buf[8] == '.' &&
	    buf[12] == ' ', "%s", buf);
	/*
	 * A name with DEL and a C1 CSI, raw in the JSON as QEMU takes them:
	 * the line has them as JSON escapes, which a terminal only shows.
	 */
	free(t_cmd(a, "{\"execute\": \"query-\x7f\xc2\x9b\", \"id\": 8}"));
	end = t_clock_ms() + T_WAIT_MS;
	while (strstr(buf, " client-in  1    {\"execute\":\"query-\\u007F"
	    "\\u009B\",\"id\":8}\n") == NULL && t_clock_ms() < end)
		pipe_take(p[0], buf, sizeof(buf), &have);
	ck_assert_msg(strstr(buf, " client-in  1    {\"execute\":\"query-"
	    "\\u007F\\u009B\",\"id\":8}\n") != NULL, "%s", buf);
	ck_assert_msg(strchr(buf, 0x7f) == NULL && strstr(buf, "\xc2\x9b") ==
	    NULL, "%s", buf);
	kill(pid, SIGINT);
	status = t_wait_exit(pid, T_WAIT_MS);
	ck_assert_msg(t_exited(status, 0), "qmpmuxctl trace: status %d on "
	    "SIGINT", status);
	close(p[0]);
	t_client_free(a);
}
END_TEST

/*
 * A message with a raw C0 80 (QEMU's NUL, an overlong form that QEMU
 * takes and a strict UTF-8 reader refuses) is traced as a string of its
 * bytes, so that every trace event is UTF-8 that Python or jq read.
 */
START_TEST(test_overlong)
{
	struct t_client	*tr, *a;
	char		*m;
	yajl_val	 v;
	const char	*path[] = { "data", "raw", NULL };

	start();
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	tr = tracer();
	t_send(a, "{\"execute\": \"query-\xc0\x80\", \"id\": 9}");
	m = t_recv(tr, T_WAIT_MS);
	ck_assert_ptr_nonnull(m);
	ck_assert_msg(strchr(m, 0xc0) == NULL && strchr(m, 0x80) == NULL,
	    "raw overlong bytes in the trace: %s", m);
	ck_assert_ptr_nonnull(v = t_json(m));
	ck_assert_str_eq(t_get_str(v, "data", "direction"), "client-in");
	ck_assert(YAJL_IS_TRUE(yajl_tree_get(v, path, yajl_t_any)));
	ck_assert_ptr_nonnull(strstr(m, "\"{\\\"execute\\\": \\\"query-"
	    "\\u00c0\\u0080\\\""));
	yajl_tree_free(v);
	free(m);
	free(t_recv_reply(a, T_WAIT_MS));
	t_client_free(tr);
	t_client_free(a);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("trace");
	TCase	*tc;

	tc = t_tcase(s, "order", 60);
	tcase_add_test(tc, test_order);
	tc = t_tcase(s, "slow_reader", 180);
	tcase_add_test(tc, test_slow_reader);
	tc = t_tcase(s, "ctl", 60);
	tcase_add_test(tc, test_ctl);
	tcase_add_test(tc, test_overlong);
	return (t_run(s));
}
