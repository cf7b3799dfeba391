/* Integration tests: qmpmuxd in front of the real QEMU. */
#include "config.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

/* What QEMU 7.2 -M none answers to query-status while it runs. */
#define RUNNING	"{\"status\": \"running\", \"singlestep\": false, " \
		"\"running\": true}"
#define PAUSED	"{\"status\": \"paused\", \"singlestep\": false, " \
		"\"running\": false}"

#define CAPS_FIRST \
	"Expecting capabilities negotiation with 'qmp_capabilities'"
#define CAPS_AGAIN \
	"Capabilities negotiation is already complete, command ignored"

/* What QEMU logs of each QMP request it handles: see trace_count. */
#define TRACE	"qemu-trace.log"

/*
 * The shared case: a fresh QEMU, tracing the requests it handles, and a
 * qmpmuxd in front of it.
 */
static void
start(void)
{
	t_qemu_pid = t_qemu_traced(t_qsock, TRACE);
	t_proxy_pid = t_qmpmuxd(t_qsock, t_psock, NULL);
}

/*
 * How many requests QEMU handled that begin with text (all of them for
 * ""), as its trace shows them: re-serialised by QEMU, so
 * {"execute": "stop", ...}.  The first is always qmpmuxd's own
 * qmp_capabilities.
 */
static int
trace_count(const char *text)
{
	char	*needle;
	int	 n;

	if (asprintf(&needle, "req: %s", text) == -1)
		abort();
	n = t_log_count(TRACE, needle);
	free(needle);
	return (n);
}

/* Send one line and require exactly want as the next message. */
static void
send_eq(struct t_client *c, const char *line, const char *want)
{
	t_send(c, "%s\n", line);
	t_recv_eq_at(line, c, want);
}

/* The next message must be the event named name. */
static void
recv_event(struct t_client *c, const char *name, const char *who)
{
	char		*m = t_recv(c, T_WAIT_MS);
	yajl_val	 v = t_json(m);
	const char	*ev = t_get_str(v, "event", NULL);

	ck_assert_msg(ev != NULL && strcmp(ev, name) == 0 &&
	    strncmp(m, "{\"timestamp\": ", 14) == 0,
	    "%s: expected event %s, got %s", who, name,
	    m != NULL ? m : "(nothing or EOF)");
	yajl_tree_free(v);
	free(m);
}

/*
 * A return as QEMU writes it with an id: the return without one, its
 * closing brace replaced by the id member.  id NULL: no id at all.
 */
static char *
with_id(const char *reply, const char *id)
{
	char	*s;
	size_t	 len = strlen(reply);

	if (id == NULL) {
		if ((s = strdup(reply)) == NULL)
			abort();
		return (s);
	}
	if (asprintf(&s, "%.*s, \"id\": %s}", (int)(len - 1), reply,
	    id) == -1)
		abort();
	return (s);
}

/* An error as QEMU writes it: the id first when there is one. */
static char *
error_text(const char *id, const char *class, const char *desc)
{
	char	*s;
	int	 n;

	if (id != NULL)
		n = asprintf(&s, "{\"id\": %s, \"error\": {\"class\": \"%s\", "
		    "\"desc\": \"%s\"}}", id, class, desc);
	else
		n = asprintf(&s, "{\"error\": {\"class\": \"%s\", "
		    "\"desc\": \"%s\"}}", class, desc);
	if (n == -1)
		abort();
	return (s);
}

/* Send a command and require its error, with id (or none). */
static void
send_error(struct t_client *c, const char *line, const char *id,
    const char *class, const char *desc)
{
	char	*want = error_text(id, class, desc);

	send_eq(c, line, want);
	free(want);
}

/*
 * A marker: the next message after everything before it must be the
 * marker's own reply, so nothing stray (another client's reply, an
 * event) came in between.
 */
static void
marker(struct t_client *c, const char *tag)
{
	char	*line, *want;

	if (asprintf(&line, "{\"execute\":\"query-name\",\"id\":\"%s\"}",
	    tag) == -1 ||
	    asprintf(&want, "{\"return\": {}, \"id\": \"%s\"}", tag) == -1)
		abort();
	send_eq(c, line, want);
	free(line);
	free(want);
}

/* Two clients: each gets its own id back; STOP and RESUME reach both. */
START_TEST(test_two_clients_share)
{
	struct t_client	*a, *b;

	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_cmd_eq(a, "{\"execute\":\"stop\",\"id\":\"a-1\"}",
	    "{\"return\": {}, \"id\": \"a-1\"}");
	recv_event(b, "STOP", "b");
	t_cmd_eq(b, "{\"execute\":\"cont\",\"id\":[1, {\"b\":null}]}",
	    "{\"return\": {}, \"id\": [1, {\"b\": null}]}");
	/* a's STOP came before its reply and t_cmd passed it over */
	recv_event(a, "RESUME", "a");
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * The ids of the three-client test, as the clients write them and as
 * QEMU writes them back: every JSON type, written in ways QEMU
 * re-serialises (1.50, spaces, \u escapes, -0, 1e3, a number past 64
 * bits, single quotes), so only a proxy that writes ids as QEMU does
 * passes.  NULL: no id.
 */
static const struct {
	const char	*in;
	const char	*out;
} share_ids[] = {
	{ "1", "1" },
	{ "\"1\"", "\"1\"" },
	{ "1.50", "1.5" },
	{ "{\"x\":[1, 2]}", "{\"x\": [1, 2]}" },
	{ "[ 1,2 ]", "[1, 2]" },
	{ "null", "null" },
	{ NULL, NULL },
	{ "\"\\u00e9\"", "\"\\u00E9\"" },
	{ "-0", "0" },
	{ "1e3", "1000" },
	{ "true", "true" },
	{ "123456789012345678901234567890", "1.2345678901234568e+29" },
	{ "{ \"a\" : { \"b\" : [ ] } }", "{\"a\": {\"b\": []}}" },
	{ "\"a\\\"b\"", "\"a\\\"b\"" },
	{ "{}", "{}" },
	{ "[]", "[]" },
	{ "\"\"", "\"\"" },
	{ "'q'", "\"q\"" },
};
#define NSHARE	(sizeof(share_ids) / sizeof(share_ids[0]))

/*
 * Three clients pipeline commands with the same ids at once: each gets
 * exactly its own replies, in order, with its own id.
 */
START_TEST(test_three_clients_ids)
{
	static const char	*cmds[3] = { "query-name", "query-status",
				    "query-kvm" };
	struct t_client		*c[3];
	char			*base[3], *want, tag[32];
	size_t			 i, k;

	t_clients_ready(c, 3, t_psock);
	/* each client's command answers differently: whose reply is plain */
	for (k = 0; k < 3; k++) {
		base[k] = t_cmd(c[k], "{\"execute\":\"%s\"}", cmds[k]);
		ck_assert_ptr_nonnull(base[k]);
		ck_assert_msg(strncmp(base[k], "{\"return\": ", 11) == 0,
		    "%s: %s", cmds[k], base[k]);
	}
	ck_assert_str_ne(base[0], base[1]);
	ck_assert_str_ne(base[1], base[2]);
	ck_assert_str_ne(base[0], base[2]);

	/* all of them in flight together, interleaved across clients */
	for (i = 0; i < NSHARE; i++) {
		for (k = 0; k < 3; k++) {
			if (share_ids[i].in == NULL)
				t_send(c[k], "{\"execute\":\"%s\"}\n", cmds[k]);
			else if (i % 2 == 0)
				t_send(c[k], "{\"execute\":\"%s\",\"id\":%s}\n",
				    cmds[k], share_ids[i].in);
			else
				t_send(c[k], "{\"id\" :  %s , "
				    "\"execute\": \"%s\"}\n", share_ids[i].in,
				    cmds[k]);
		}
	}
	for (k = 0; k < 3; k++) {
		for (i = 0; i < NSHARE; i++) {
			want = with_id(base[k], share_ids[i].out);
			t_recv_eq_at(cmds[k], c[k], want);
			free(want);
		}
		snprintf(tag, sizeof(tag), "end-%zu", k);
		marker(c[k], tag);
	}
	for (k = 0; k < 3; k++) {
		free(base[k]);
		t_client_free(c[k]);
	}
}
END_TEST

/*
 * STOP and RESUME reach all three negotiated clients in order; a client
 * that has not negotiated gets none, then gets events once it has.
 */
START_TEST(test_events_fanout)
{
	struct t_client	*c[3], *late;
	int		 k;

	t_clients_ready(c, 3, t_psock);
	late = t_client_greeted(t_psock);

	/* the event comes before the reply of the command that caused it */
	t_send(c[0], "{\"execute\":\"stop\",\"id\":\"s\"}\n");
	recv_event(c[0], "STOP", "client 0");
	t_recv_eq(c[0], "{\"return\": {}, \"id\": \"s\"}");
	t_send(c[0], "{\"execute\":\"cont\",\"id\":\"c\"}\n");
	recv_event(c[0], "RESUME", "client 0");
	t_recv_eq(c[0], "{\"return\": {}, \"id\": \"c\"}");
	for (k = 1; k < 3; k++) {
		recv_event(c[k], "STOP", "other client");
		recv_event(c[k], "RESUME", "other client");
		marker(c[k], "after-events");
	}

	/* nothing was queued for the late client: its next is its return */
	send_eq(late, "{\"execute\":\"qmp_capabilities\"}", "{\"return\": {}}");
	send_eq(late, "{\"execute\":\"query-status\",\"id\":0}",
	    "{\"return\": " RUNNING ", \"id\": 0}");

	/* negotiated now, it gets the next ones, as all the others do */
	t_send(c[1], "{\"execute\":\"stop\"}\n");
	recv_event(c[1], "STOP", "client 1");
	t_recv_eq(c[1], "{\"return\": {}}");
	recv_event(late, "STOP", "late client");
	recv_event(c[0], "STOP", "client 0");
	recv_event(c[2], "STOP", "client 2");
	send_eq(late, "{\"execute\":\"query-status\",\"id\":1}",
	    "{\"return\": " PAUSED ", \"id\": 1}");
	for (k = 0; k < 3; k++)
		t_client_free(c[k]);
	t_client_free(late);
}
END_TEST

/*
 * Clients that close with commands in flight or queued do not disturb
 * the others: their replies are dropped, never delivered elsewhere.
 */
START_TEST(test_client_gone_inflight)
{
	struct t_client	*b, *c, *gone, *piped, *fresh;
	int		 i, round;

	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	for (round = 0; round < 3; round++) {
		ck_assert_ptr_nonnull(gone = t_client_ready(t_psock));
		ck_assert_ptr_nonnull(piped = t_client_ready(t_psock));

		/* b's first is in flight; gone's and piped's wait behind */
		t_send(b, "{\"execute\":\"query-status\",\"id\":1}\n");
		t_send(gone, "{\"execute\":\"query-status\",\"id\":1}\n");
		for (i = 0; i < 8; i++)
			t_send(piped,
			    "{\"execute\":\"query-name\",\"id\":%d}\n", i);
		t_send(c, "{\"execute\":\"query-name\",\"id\":1}\n");
		t_client_free(gone);
		t_send(b, "{\"execute\":\"query-name\",\"id\":2}\n");
		t_client_free(piped);
		t_send(c, "{\"execute\":\"query-status\",\"id\":2}\n");

		t_recv_eq(b, "{\"return\": " RUNNING ", \"id\": 1}");
		t_recv_eq(b, "{\"return\": {}, \"id\": 2}");
		t_recv_eq(c, "{\"return\": {}, \"id\": 1}");
		t_recv_eq(c, "{\"return\": " RUNNING ", \"id\": 2}");
		marker(b, "b-end");
		marker(c, "c-end");
	}

	/* a command sent and closed at once, with nobody else waiting */
	ck_assert_ptr_nonnull(gone = t_client_ready(t_psock));
	t_send(gone, "{\"execute\":\"stop\",\"id\":\"gone\"}\n");
	t_client_free(gone);
	/* it did run: the others see its STOP, but not its reply */
	recv_event(b, "STOP", "b");
	recv_event(c, "STOP", "c");
	t_send(b, "{\"execute\":\"cont\",\"id\":\"b\"}\n");
	recv_event(b, "RESUME", "b");
	t_recv_eq(b, "{\"return\": {}, \"id\": \"b\"}");
	recv_event(c, "RESUME", "c");
	marker(b, "b-last");
	marker(c, "c-last");
	t_client_free(b);
	t_client_free(c);
	ck_assert_ptr_nonnull(fresh = t_client_ready(t_psock));
	ck_assert(t_proxy_alive());
	t_client_free(fresh);
}
END_TEST

/*
 * QEMU's quit closes every client after what was queued for it; the
 * listener stays, and a new QEMU at the same path serves new clients.
 */
START_TEST(test_qemu_quit_reconnect)
{
	struct t_client	*c[3], *waiting, *fresh;
	int		 k, status;

	t_clients_ready(c, 3, t_psock);
	/* greeted but not negotiated: closed as well */
	waiting = t_client_greeted(t_psock);

	/* as from QEMU itself: SHUTDOWN, the return, then EOF */
	t_send(c[0], "{\"execute\":\"quit\",\"id\":\"q\"}\n");
	for (k = 0; k < 3; k++)
		recv_event(c[k], "SHUTDOWN", "quit");
	t_recv_eq(c[0], "{\"return\": {}, \"id\": \"q\"}");
	for (k = 0; k < 3; k++)
		ck_assert_msg(t_eof(c[k], T_WAIT_MS), "client %d not closed",
		    k);
	ck_assert_msg(t_eof(waiting, T_WAIT_MS), "waiting client not closed");
	status = t_wait_exit(t_qemu_pid, T_WAIT_MS);
	ck_assert_msg(t_exited(status, 0),
	    "QEMU did not exit 0 (%d)", status);
	t_qemu_pid = 0;

	ck_assert_msg(t_is_socket(t_psock), "listener %s is gone", t_psock);
	ck_assert(t_proxy_alive());

	/* QEMU may leave its socket file; a new one must be seen anew */
	if (unlink(t_qsock) == -1)
		ck_assert_int_eq(errno, ENOENT);
	t_qemu_pid = t_qemu(t_qsock);
	fresh = t_client_greeted(t_psock);
	send_eq(fresh, "{\"execute\":\"qmp_capabilities\"}",
	    "{\"return\": {}}");
	send_eq(fresh, "{\"execute\":\"query-status\",\"id\":\"again\"}",
	    "{\"return\": " RUNNING ", \"id\": \"again\"}");
	for (k = 0; k < 3; k++)
		t_client_free(c[k]);
	t_client_free(waiting);
	t_client_free(fresh);
}
END_TEST

/*
 * Before negotiation: the greeting first, QEMU's errors for anything but
 * qmp_capabilities and for malformed input, none of it ever forwarded;
 * invalid JSON is skipped up to the newline.
 */
START_TEST(test_pre_negotiation)
{
	struct t_client	*c, *watch;
	char		*m;

	ck_assert_ptr_nonnull(watch = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(c = t_client_new(t_psock));
	m = t_recv(c, T_WAIT_MS);
	ck_assert_msg(m != NULL &&
	    strncmp(m, "{\"QMP\": {\"version\": {\"qemu\": ", 29) == 0 &&
	    strstr(m, "\"capabilities\": [\"oob\"]}}") != NULL,
	    "greeting: %s", m != NULL ? m : "(nothing)");
	free(m);

	send_error(c, "{\"execute\":\"stop\",\"id\":1}", "1",
	    "CommandNotFound", CAPS_FIRST);
	send_error(c, "{\"execute\":\"stop\"}", NULL, "CommandNotFound",
	    CAPS_FIRST);
	send_error(c, "{\"execute\":\"stop\",\"id\":{\"x\":[1, 2]}}",
	    "{\"x\": [1, 2]}", "CommandNotFound", CAPS_FIRST);
	send_error(c, "[1,2]", NULL, "GenericError",
	    "QMP input must be a JSON object");
	send_error(c, "3", NULL, "GenericError",
	    "QMP input must be a JSON object");
	send_error(c, "\"str\"", NULL, "GenericError",
	    "QMP input must be a JSON object");
	send_error(c, "{\"foo\":1,\"id\":2}", "2", "GenericError",
	    "QMP input member 'foo' is unexpected");
	send_error(c, "{\"execute\":\"stop\",\"foo\":1}", NULL, "GenericError",
	    "QMP input member 'foo' is unexpected");
	send_error(c, "{\"execute\":3}", NULL, "GenericError",
	    "QMP input member 'execute' must be a string");
	send_error(c, "{\"execute\":\"stop\",\"arguments\":[]}", NULL,
	    "GenericError", "QMP input member 'arguments' must be an object");
	send_error(c, "{\"id\":5}", "5", "GenericError",
	    "QMP input lacks member 'execute'");

	/*
	 * invalid JSON: QEMU's error, then reading goes on at the next
	 * token, as in QEMU: the object after it negotiates
	 */
	t_send(c, "{\"execute\": } {\"execute\":\"qmp_capabilities\"}\n");
	t_recv_eq(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"JSON parse error, expecting value\"}}");
	t_recv_eq(c, "{\"return\": {}}");
	send_error(c, "{\"execute\":\"qmp_capabilities\",\"id\":\"n\"}",
	    "\"n\"", "CommandNotFound", CAPS_AGAIN);
	send_error(c, "{\"execute\":\"qmp_capabilities\",\"id\":7}", "7",
	    "CommandNotFound", CAPS_AGAIN);

	/* negotiated: malformed commands are still answered here */
	send_error(c, "{\"execute\":\"stop\",\"foo\":1,\"id\":1}", "1",
	    "GenericError", "QMP input member 'foo' is unexpected");
	send_error(c, "{\"execute\":\"stop\",\"arguments\":[],\"id\":2}", "2",
	    "GenericError", "QMP input member 'arguments' must be an object");
	send_error(c, "{\"execute\":3,\"id\":3}", "3", "GenericError",
	    "QMP input member 'execute' must be a string");
	send_error(c, "{\"execute\":\"stop\",\"id\":1,\"id\":2}", NULL,
	    "GenericError", "JSON parse error, duplicate key");
	send_error(c, "{\"exec-oob\":\"stop\",\"id\":4}", "4", "GenericError",
	    "QMP input member 'exec-oob' is unexpected");
	send_error(c, "[\"stop\"]", NULL, "GenericError",
	    "QMP input must be a JSON object");
	t_send(c, "{\"execute\":\"stop\" ]\n");
	m = t_recv(c, T_WAIT_MS);
	ck_assert_msg(m != NULL && strstr(m, "JSON parse error") != NULL,
	    "invalid JSON: %s", m != NULL ? m : "(nothing)");
	free(m);

	/* none of those stops ran: no STOP event, still running */
	send_eq(watch, "{\"execute\":\"query-status\",\"id\":\"w\"}",
	    "{\"return\": " RUNNING ", \"id\": \"w\"}");
	/* and QEMU got qmpmuxd's handshake and watch's command only */
	ck_assert_int_eq(trace_count(""), 2);
	ck_assert_int_eq(trace_count("{\"execute\": \"qmp_capabilities\""),
	    1);
	ck_assert_int_eq(trace_count("{\"execute\": \"query-status\""), 1);
	send_eq(c, "{\"execute\":\"query-status\",\"id\":\"c\"}",
	    "{\"return\": " RUNNING ", \"id\": \"c\"}");
	ck_assert_int_eq(trace_count(""), 3);
	ck_assert_int_eq(trace_count("{\"execute\": \"query-status\""), 2);
	t_client_free(c);
	t_client_free(watch);
}
END_TEST

/*
 * A key repeated inside a command's id or arguments makes it invalid
 * JSON to QEMU; qmpmuxd must answer QEMU's error and never run it.
 */
START_TEST(test_nested_dupkey_not_forwarded)
{
	struct t_client	*a, *watch;

	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(watch = t_client_ready(t_psock));
	send_error(a, "{\"execute\":\"stop\",\"id\":{\"k\": 1, \"k\": 2}}",
	    NULL, "GenericError", "JSON parse error, duplicate key");
	send_error(a, "{\"execute\":\"stop\",\"arguments\":{},"
	    "\"id\":[{\"k\": 1, \"k\": 2}]}", NULL, "GenericError",
	    "JSON parse error, duplicate key");
	/* the VM must still run, and watch must have seen no STOP */
	send_eq(watch, "{\"execute\":\"query-status\",\"id\":\"w\"}",
	    "{\"return\": " RUNNING ", \"id\": \"w\"}");
	t_client_free(a);
	t_client_free(watch);
}
END_TEST

/*
 * The listener is mode 0600 whatever the umask; SIGTERM closes the
 * clients, removes the socket, and qmpmuxd exits 0.
 */
START_TEST(test_mode_and_sigterm)
{
	struct t_client	*c;
	struct stat	 st;
	mode_t		 old;
	int		 status;

	old = umask(0);
	t_qemu_pid = t_qemu(t_qsock);
	t_proxy_pid = t_qmpmuxd(t_qsock, t_psock, NULL);
	umask(old);
	ck_assert_int_eq(stat(t_psock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_msg((st.st_mode & 07777) == 0600, "mode %04o",
	    (unsigned int)(st.st_mode & 07777));
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));

	status = t_stop(t_proxy_pid, SIGTERM);
	t_proxy_pid = 0;
	ck_assert_msg(t_exited(status, 0),
	    "qmpmuxd exit status %d", status);
	ck_assert_msg(stat(t_psock, &st) == -1 && errno == ENOENT,
	    "%s still exists", t_psock);
	ck_assert(t_eof(c, T_WAIT_MS));
	t_client_free(c);
}
END_TEST

/*
 * Access lists per listener, with the real QEMU: a read-only listener
 * may query but not stop the VM; --deny refuses what --allow let
 * through, and what --allow does not name is refused too.  The refusal
 * is QEMU's own text for a disabled command, with the client's id, and
 * nothing reaches QEMU: the VM keeps running.  --full-access gives the
 * next listener everything again.
 */
START_TEST(test_access_lists)
{
	char		*ro = t_path("ro.sock"), *lim = t_path("lim.sock");
	const char	*extra[] = { "--read-only", "--listen", ro,
			    "--full-access", "--allow", "query-*", "--deny",
			    "query-status", "--listen", lim, "--full-access",
			    NULL };
	struct t_client	*r, *l, *f;
	char		*line;

	t_qemu_pid = t_qemu_traced(t_qsock, TRACE);
	t_proxy_pid = t_qmpmuxd(t_qsock, t_psock, extra);
	ck_assert_ptr_nonnull(r = t_client_ready(ro));
	ck_assert_ptr_nonnull(l = t_client_ready(lim));
	ck_assert_ptr_nonnull(f = t_client_ready(t_psock));

	send_error(r, "{\"execute\":\"stop\",\"id\":\"s\"}", "\"s\"",
	    "CommandNotFound", "The command stop has been disabled for this "
	    "instance");
	send_eq(r, "{\"execute\":\"query-status\",\"id\":1}",
	    "{\"return\": " RUNNING ", \"id\": 1}");
	send_error(l, "{\"execute\":\"query-status\",\"id\":[1]}", "[1]",
	    "CommandNotFound", "The command query-status has been disabled "
	    "for this instance");
	send_error(l, "{\"execute\":\"stop\"}", NULL, "CommandNotFound",
	    "The command stop has been disabled for this instance");
	marker(l, "allowed");
	/* the full listener: stop reaches QEMU, so nothing else did */
	send_eq(f, "{\"execute\":\"query-status\",\"id\":2}",
	    "{\"return\": " RUNNING ", \"id\": 2}");
	t_cmd_eq(f, "{\"execute\":\"stop\",\"id\":3}",
	    "{\"return\": {}, \"id\": 3}");
	/* QEMU handled the handshake and the four allowed, no others */
	ck_assert_int_eq(trace_count(""), 5);
	ck_assert_int_eq(trace_count("{\"execute\": \"stop\""), 1);
	ck_assert_int_eq(trace_count("{\"execute\": \"query-status\""), 2);
	/* each refusal is logged, as qmpmuxd(8) says */
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "refused by the access "
	    "list of "), 3);
	if (asprintf(&line, "vm test: client 1: stop refused by the access "
	    "list of %s\n", ro) == -1)
		abort();
	ck_assert_int_eq(t_log_count("qmpmuxd.log", line), 1);
	free(line);
	if (asprintf(&line, "vm test: client 2: query-status refused by the "
	    "access list of %s\n", lim) == -1)
		abort();
	ck_assert_int_eq(t_log_count("qmpmuxd.log", line), 1);
	free(line);
	if (asprintf(&line, "vm test: client 2: stop refused by the access "
	    "list of %s\n", lim) == -1)
		abort();
	ck_assert_int_eq(t_log_count("qmpmuxd.log", line), 1);
	free(line);
	t_client_free(r);
	t_client_free(l);
	t_client_free(f);
	free(ro);
	free(lim);
}
END_TEST

/* A message of a given length: a query-name padded in its string id. */
static char *
sized_message(size_t len, char **id)
{
	static const char	 head[] =
				    "{\"execute\":\"query-name\",\"id\":\"";
	size_t			 pad = len - (sizeof(head) - 1) - 2;
	char			*s;

	if ((s = malloc(len + 1)) == NULL)
		abort();
	memcpy(s, head, sizeof(head) - 1);
	memset(s + sizeof(head) - 1, 'x', pad);
	memcpy(s + sizeof(head) - 1 + pad, "\"}", 3);
	if (id != NULL && asprintf(id, "\"%.*s\"", (int)pad,
	    s + sizeof(head) - 1) == -1)
		abort();
	return (s);
}

/*
 * --max-client-message: a message of exactly the cap is served; one byte
 * more gets an error and the client is closed; others go on.
 */
START_TEST(test_max_client_message)
{
	static const char	*extra[] = { "--max-client-message", "1024",
				    NULL };
	static const char	 toolong[] = "{\"error\": {\"class\": "
				    "\"GenericError\", \"desc\": \"qmpmux: "
				    "message larger than max_client_message "
				    "(1024 bytes)\"}}";
	struct t_client		*a, *b, *big;
	char			*msg, *id, *want;

	t_qemu_pid = t_qemu(t_qsock);
	t_proxy_pid = t_qmpmuxd(t_qsock, t_psock, extra);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));

	/* exactly 1024 bytes, whitespace around it not counted */
	msg = sized_message(1024, &id);
	ck_assert_uint_eq(strlen(msg), 1024);
	want = with_id("{\"return\": {}}", id);
	t_send(a, "  \r\n\t%s\r\n", msg);
	t_recv_eq(a, want);
	free(msg);
	free(id);
	free(want);

	/* 1025 bytes: the error, then EOF */
	msg = sized_message(1025, NULL);
	ck_assert_uint_eq(strlen(msg), 1025);
	t_send(a, "%s\n", msg);
	free(msg);
	t_recv_eq(a, toolong);
	ck_assert_msg(t_eof(a, T_WAIT_MS), "client not closed after 1025");

	/* far beyond, in one go, while b has a command going */
	ck_assert_ptr_nonnull(big = t_client_ready(t_psock));
	t_send(b, "{\"execute\":\"query-status\",\"id\":\"b1\"}\n");
	msg = sized_message(256 * 1024, NULL);
	t_send(big, "%s\n", msg);
	free(msg);
	t_recv_eq(big, toolong);
	ck_assert_msg(t_eof(big, T_WAIT_MS), "client not closed after 256K");

	t_recv_eq(b, "{\"return\": " RUNNING ", \"id\": \"b1\"}");
	marker(b, "b-end");
	ck_assert(t_proxy_alive());
	t_client_free(a);
	t_client_free(b);
	t_client_free(big);
}
END_TEST

/*
 * Clients that connect before QEMU exists wait without a greeting, get
 * it when QEMU starts, and what they sent early is answered after it.
 */
START_TEST(test_wait_for_qemu)
{
	struct t_client	*a, *b;

	t_proxy_pid = t_qmpmuxd(t_qsock, t_psock, NULL);
	ck_assert_ptr_nonnull(a = t_client_new(t_psock));
	ck_assert_ptr_nonnull(b = t_client_new(t_psock));
	/* QMP lets a client send before it has read the greeting */
	t_send(b, "{\"execute\":\"qmp_capabilities\",\"id\":\"early\"}\n");
	ck_assert_int_eq(t_quiet(a, 300), T_SILENT);
	ck_assert_int_eq(t_quiet(b, 1), T_SILENT);

	t_qemu_pid = t_qemu(t_qsock);
	t_recv_greeting(a);
	t_recv_greeting(b);
	t_recv_eq(b, "{\"return\": {}, \"id\": \"early\"}");
	send_eq(a, "{\"execute\":\"qmp_capabilities\"}", "{\"return\": {}}");
	send_eq(a, "{\"execute\":\"query-status\",\"id\":\"a\"}",
	    "{\"return\": " RUNNING ", \"id\": \"a\"}");
	send_eq(b, "{\"execute\":\"query-status\",\"id\":\"b\"}",
	    "{\"return\": " RUNNING ", \"id\": \"b\"}");
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/* With no QEMU, --greeting-timeout 0.5 closes a waiting client in time. */
START_TEST(test_greeting_timeout)
{
	static const char	*extra[] = { "--greeting-timeout", "0.5",
				    NULL };
	struct t_client		*c, *d;
	long long		 start, took;
	char			*m;

	t_proxy_pid = t_qmpmuxd(t_qsock, t_psock, extra);
	start = t_clock_ms();
	ck_assert_ptr_nonnull(c = t_client_new(t_psock));
	m = t_recv(c, 5000);
	took = t_clock_ms() - start;
	ck_assert_msg(m == NULL, "got %s", m);
	ck_assert_msg(t_eof(c, 0), "not closed within 5s");
	ck_assert_msg(took >= 450 && took < 5000, "closed after %lld ms",
	    took);

	/* qmpmuxd goes on, and so does its listener */
	ck_assert(t_proxy_alive());
	ck_assert_ptr_nonnull(d = t_client_new(t_psock));
	ck_assert(t_eof(d, 5000));
	t_client_free(c);
	t_client_free(d);
}
END_TEST

/* Two TCases: the shared fixture, and tests that start things themselves. */
static Suite *
proxy_suite(void)
{
	Suite	*s = suite_create("proxy");
	TCase	*tc;

	tc = t_tcase(s, "share", 60);
	tcase_add_checked_fixture(tc, start, NULL);
	tcase_add_test(tc, test_two_clients_share);
	tcase_add_test(tc, test_three_clients_ids);
	tcase_add_test(tc, test_events_fanout);
	tcase_add_test(tc, test_client_gone_inflight);
	tcase_add_test(tc, test_qemu_quit_reconnect);
	tcase_add_test(tc, test_pre_negotiation);
	tcase_add_test(tc, test_nested_dupkey_not_forwarded);

	/* these start QEMU and qmpmuxd themselves, with their options */
	tc = t_tcase(s, "own", 60);
	tcase_add_test(tc, test_mode_and_sigterm);
	tcase_add_test(tc, test_max_client_message);
	tcase_add_test(tc, test_wait_for_qemu);
	tcase_add_test(tc, test_greeting_timeout);
	tcase_add_test(tc, test_access_lists);
	return (s);
}

int
main(void)
{
	return (t_run(proxy_suite()));
}
