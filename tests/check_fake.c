/*
 * Integration tests: qmpmuxd in front of the scripted fake QEMU
 * (tests/fakeqemu.c), for what a real QEMU cannot do on demand.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <yajl/yajl_tree.h>

#include "testlib.h"

#define GREETING_OOB \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, " \
	"\"major\": 9}, \"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}"
#define GREETING_NONE \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, " \
	"\"major\": 9}, \"package\": \"fake\"}, \"capabilities\": []}}"
#define UPSTREAM_LOST	"vm test: upstream lost (ready): "
#define LOST(id) \
	"{\"id\": " id ", \"error\": {\"class\": \"GenericError\", " \
	"\"desc\": \"qmpmux: connection to QEMU lost\"}}"

/*
 * Half-written messages: with every message from QEMU written in pieces
 * of 1 and of 7 bytes, the greeting, replies and events reach a client
 * of the proxy whole and unchanged.
 */
START_TEST(test_split)
{
	static const char	*sizes[] = { "1", "7" };
	const char		*fargs[] = { "--split", sizes[_i], "--delay",
				    "query-slow=150", "--events-during-delay",
				    "2", NULL };
	struct t_client		*c;
	char			*m;

	t_start_fake(fargs, NULL);
	ck_assert_ptr_nonnull(c = t_client_new(t_psock));
	t_recv_eq(c, GREETING_OOB);
	t_send(c, "{\"execute\": \"qmp_capabilities\", \"id\": \"caps\"}\n");
	t_recv_eq(c, "{\"return\": {}, \"id\": \"caps\"}");

	t_send(c, "{\"execute\":\"query-status\",\"id\":\"s-1\"}\n");
	t_recv_eq(c, "{\"return\": {\"command\": \"query-status\", "
	    "\"seq\": 1}, \"id\": \"s-1\"}");
	/* pipelined: two replies back to back, each whole */
	t_send(c, "{\"execute\":\"query-name\",\"id\":{\"k\":[1,2]}}\n"
	    "{\"execute\":\"query-kvm\"}\n");
	t_recv_eq(c, "{\"return\": {\"command\": \"query-name\", "
	    "\"seq\": 2}, \"id\": {\"k\": [1, 2]}}");
	t_recv_eq(c, "{\"return\": {\"command\": \"query-kvm\", \"seq\": 3}}");
	/* events, split as well, then the held-back reply */
	t_send(c, "{\"execute\":\"query-slow\",\"id\":7}\n");
	ck_assert_ptr_nonnull(m = t_recv(c, T_WAIT_MS));
	ck_assert_msg(strncmp(m, "{\"timestamp\": {\"seconds\": ", 26) == 0 &&
	    strstr(m, "}, \"event\": \"TICK\", \"data\": {\"n\": 0}}") != NULL,
	    "bad first TICK: %s", m);
	free(m);
	ck_assert_ptr_nonnull(m = t_recv(c, T_WAIT_MS));
	ck_assert_msg(strstr(m, "\"event\": \"TICK\", \"data\": {\"n\": 1}}") !=
	    NULL, "bad second TICK: %s", m);
	free(m);
	t_recv_eq(c, "{\"return\": {\"command\": \"query-slow\", "
	    "\"seq\": 4}, \"id\": 7}");
	t_client_free(c);
	ck_assert(t_proxy_alive());
}
END_TEST

/*
 * Garbage from QEMU after the first answer: the command behind it gets
 * the lost-connection error, the client is closed, and qmpmuxd stays up
 * and reconnects to the fake, which serves a new client.  Loop 0 runs
 * with one command in flight at a time, loop 1 with both in flight.
 */
START_TEST(test_garbage)
{
	static const char	*inflight[] = { "1", "2" };
	const char		*fargs[] = { "--garbage-after", "1", NULL };
	const char		*pargs[] = { "--max-inflight", inflight[_i],
				    NULL };
	struct t_client		*c;
	yajl_val		 v;
	char			*m;

	t_start_fake(fargs, pargs);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	t_send(c, "{\"execute\":\"query-status\",\"id\":\"one\"}\n"
	    "{\"execute\":\"query-name\",\"id\":\"two\"}\n");
	t_recv_eq(c, "{\"return\": {\"command\": \"query-status\", "
	    "\"seq\": 1}, \"id\": \"one\"}");
	t_recv_eq(c, LOST("\"two\""));
	ck_assert_msg(t_eof(c, T_WAIT_MS), "client not closed");
	t_client_free(c);
	ck_assert(t_proxy_alive());
	ck_assert_int_eq(t_log_count("qmpmuxd.log", UPSTREAM_LOST
	    "invalid JSON from QEMU: "), 1);

	/* the fake accepts the proxy's reconnect: a new client is served */
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	m = t_cmd(c, "{\"execute\":\"query-kvm\",\"id\":\"three\"}");
	ck_assert_ptr_nonnull(v = t_json(m));
	ck_assert_str_eq(t_get_str(v, "return", "command"), "query-kvm");
	ck_assert_str_eq(t_get_str(v, "id", NULL), "three");
	ck_assert_int_ge(t_get_int(v, "return", "seq"), 2);
	yajl_tree_free(v);
	free(m);
	/* and the garbage after it loses the upstream again */
	ck_assert(t_eof(c, T_WAIT_MS));
	t_client_free(c);
	ck_assert(t_proxy_alive());
	ck_assert_int_eq(t_log_count("qmpmuxd.log", UPSTREAM_LOST
	    "invalid JSON from QEMU: "), 2);
	ck_assert_int_eq(t_log_count("fakeqemu.log", "conn 2: accepted"), 1);
}
END_TEST

/*
 * The upstream message cap, --max-upstream-message 4096, counts the
 * bytes of a message without its "\r\n": an event of 4096 bytes reaches
 * the client, one of 4097 or 5000 bytes drops the upstream.
 */
START_TEST(test_oversize)
{
	static const struct {
		const char	*size;
		int		 pass;
	} cases[] = {
		{ "4096", 1 },
		{ "4097", 0 },
		{ "5000", 0 },
	};
	const char	*fargs[] = { "--oversize", cases[_i].size,
			    "--trigger", "go", NULL };
	const char	*pargs[] = { "--max-upstream-message", "4096", NULL };
	struct t_client	*c;
	char		*m;

	t_start_fake(fargs, pargs);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	t_send(c, "{\"execute\":\"go\",\"id\":\"g\"}\n");
	if (cases[_i].pass) {
		ck_assert_ptr_nonnull(m = t_recv(c, T_WAIT_MS));
		ck_assert_uint_eq(strlen(m), strtoul(cases[_i].size, NULL,
		    10));
		ck_assert_ptr_nonnull(strstr(m, "\"event\": \"OVERSIZE\""));
		free(m);
		t_recv_eq(c, "{\"return\": {\"command\": \"go\", \"seq\": 1}, "
		    "\"id\": \"g\"}");
		t_cmd_eq(c, "{\"execute\":\"query-status\",\"id\":2}",
		    "{\"return\": {\"command\": "
		    "\"query-status\", \"seq\": 2}, \"id\": 2}");
		/* the upstream stayed: c still connected, no reconnect */
		ck_assert_int_eq(t_quiet(c, 100), T_SILENT);
		ck_assert_int_eq(t_log_count("fakeqemu.log", "conn 2: "), 0);
	} else {
		t_recv_eq(c, LOST("\"g\""));
		ck_assert_msg(t_eof(c, T_WAIT_MS), "client not closed");
		ck_assert_int_eq(t_log_count("qmpmuxd.log", UPSTREAM_LOST
		    "message from QEMU larger than 4096 bytes; retry in "), 1);
	}
	t_client_free(c);
	ck_assert(t_proxy_alive());
}
END_TEST

/*
 * A QEMU that never finishes the handshake (no greeting, or no answer to
 * qmp_capabilities): the handshake times out after 0.5 s, and a client
 * that connected meanwhile is closed after greeting_timeout, without a
 * greeting, well within 5 s.
 */
START_TEST(test_handshake_stuck)
{
	static const char	*script[] = { "--silent", "--no-caps-reply" };
	const char		*fargs[] = { script[_i], NULL };
	const char		*pargs[] = { "--handshake-timeout", "0.5",
				    "--greeting-timeout", "1", NULL };
	struct t_client		*c;
	long long		 start, t0, elapsed;
	char			*m;

	/* before qmpmuxd, which tries QEMU as soon as it runs */
	start = t_clock_ms();
	t_start_fake(fargs, pargs);
	t0 = t_clock_ms();
	ck_assert_ptr_nonnull(c = t_client_new(t_psock));
	/* the fake sees the attempt given up after 0.5 s, and the next */
	ck_assert_int_eq(t_wait_log("fakeqemu.log", "conn 2: accepted",
	    T_WAIT_MS), 0);
	elapsed = t_clock_ms() - start;
	ck_assert_int_ge(elapsed, 450);
	ck_assert_int_eq(t_log_count("fakeqemu.log", "conn 1: client left"),
	    1);
	m = t_recv(c, 5000);
	ck_assert_msg(m == NULL, "got %s", m);
	elapsed = t_clock_ms() - t0;
	ck_assert_msg(t_eof(c, 0), "client not closed within 5 s");
	ck_assert_int_lt(elapsed, 5000);
	/* closed by greeting_timeout (1 s), not by anything earlier */
	ck_assert_int_ge(elapsed, 900);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm test: client 1: "
	    "closed: QEMU not ready within greeting_timeout (1s)\n"), 1);
	if (_i == 1)
		ck_assert_int_ge(t_log_count("fakeqemu.log",
		    "conn 1: not answering qmp_capabilities"), 1);
	t_client_free(c);
	ck_assert(t_proxy_alive());
}
END_TEST

/*
 * A QEMU still starting sends an event before its greeting and one
 * before its reply to qmp_capabilities (a real one may, to a client
 * that comes early): qmpmuxd drops them, with one log line for the
 * first and a count once the handshake is done, and goes on, where it
 * used to call the upstream lost, and in fd mode remove the VM.  No
 * client sees them.
 */
START_TEST(test_event_first)
{
	const char	*fargs[] = { "--event-first", "RESUME", NULL };
	struct t_client	*c;

	t_start_fake(fargs, NULL);
	ck_assert_ptr_nonnull(c = t_client_new(t_psock));
	t_recv_eq(c, GREETING_OOB);
	t_cmd_eq(c, "{\"execute\":\"qmp_capabilities\"}",
	    "{\"return\": {}}");
	/* the reply comes first: the event was not kept for anyone */
	t_cmd_eq(c, "{\"execute\":\"query-status\",\"id\":1}",
	    "{\"return\": {\"command\": \"query-status\", "
	    "\"seq\": 1}, \"id\": 1}");
	ck_assert_int_eq(t_log_count("fakeqemu.log",
	    "conn 1: event RESUME sent before the greeting"), 1);
	ck_assert_int_eq(t_log_count("fakeqemu.log",
	    "conn 1: event RESUME sent before the capabilities' reply"), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm test: upstream: "
	    "event RESUME during the handshake, dropped\n"), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm test: upstream: "
	    "2 events during the handshake, dropped\n"), 1);
	ck_assert_int_eq(t_log_count("fakeqemu.log", "conn 2:"), 0);
	t_client_free(c);
}
END_TEST

/*
 * A QEMU that offers no oob: clients are offered none and cannot enable
 * it, and the proxy does not ask QEMU for it.
 */
START_TEST(test_no_oob)
{
	const char	*fargs[] = { "--no-oob", NULL };
	struct t_client	*c;
	char		*m;

	t_start_fake(fargs, NULL);
	ck_assert_ptr_nonnull(c = t_client_new(t_psock));
	t_recv_eq(c, GREETING_NONE);
	t_cmd_eq(c, "{\"execute\":\"qmp_capabilities\","
	    "\"arguments\":{\"enable\":[\"oob\"]}}",
	    "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"Capability 'oob' not available\"}}");
	/* still before negotiation: a plain one succeeds */
	t_cmd_eq(c, "{\"execute\":\"qmp_capabilities\"}",
	    "{\"return\": {}}");
	m = t_cmd(c, "{\"exec-oob\":\"query-status\",\"id\":1}");
	ck_assert_ptr_nonnull(strstr(m,
	    "\"desc\": \"QMP input member 'exec-oob' is unexpected\""));
	free(m);
	t_cmd_eq(c, "{\"execute\":\"query-status\",\"id\":2}",
	    "{\"return\": {\"command\": \"query-status\", "
	    "\"seq\": 1}, \"id\": 2}");
	ck_assert_int_eq(t_log_count("fakeqemu.log",
	    "conn 1: qmp_capabilities without capabilities"), 1);
	t_client_free(c);
}
END_TEST

/*
 * A QEMU that offers oob: clients are offered it, may enable it, and an
 * exec-oob overtakes an in-band command that QEMU holds back and one
 * queued behind it (one in flight at a time).
 */
START_TEST(test_oob)
{
	const char	*fargs[] = { "--delay", "query-slow=1500", NULL };
	const char	*pargs[] = { "--max-inflight", "1", NULL };
	struct t_client	*c;

	t_start_fake(fargs, pargs);
	ck_assert_ptr_nonnull(c = t_client_new(t_psock));
	t_recv_eq(c, GREETING_OOB);
	t_cmd_eq(c, "{\"execute\":\"qmp_capabilities\","
	    "\"arguments\":{\"enable\":[\"oob\"]}}",
	    "{\"return\": {}}");
	ck_assert_int_eq(t_log_count("fakeqemu.log",
	    "conn 1: qmp_capabilities enabling oob"), 1);
	t_send(c, "{\"execute\":\"query-slow\",\"id\":\"slow\"}\n");
	t_send(c, "{\"execute\":\"query-queued\",\"id\":\"queued\"}\n");
	t_send(c, "{\"exec-oob\":\"query-fast\",\"id\":\"fast\"}\n");
	t_recv_eq(c, "{\"return\": {\"command\": \"query-fast\", \"seq\": 1}, "
	    "\"id\": \"fast\"}");
	t_recv_eq(c, "{\"return\": {\"command\": \"query-slow\", \"seq\": 2}, "
	    "\"id\": \"slow\"}");
	t_recv_eq(c, "{\"return\": {\"command\": \"query-queued\", "
	    "\"seq\": 3}, \"id\": \"queued\"}");
	t_client_free(c);
}
END_TEST

/*
 * A denied exec-oob is answered at once, past a pending in-band command,
 * as QEMU answers out-of-band commands; a denied in-band one waits its
 * turn behind it.  Neither reaches the fake.
 */
START_TEST(test_oob_denied)
{
	const char	*fargs[] = { "--delay", "query-slow=500", NULL };
	const char	*pargs[] = { "--deny", "query-fast", NULL };
	struct t_client	*c;

	t_start_fake(fargs, pargs);
	ck_assert_ptr_nonnull(c = t_client_ready_oob(t_psock));
	t_send(c, "{\"execute\":\"query-slow\",\"id\":\"slow\"}\n"
	    "{\"execute\":\"query-fast\",\"id\":\"in\"}\n"
	    "{\"exec-oob\":\"query-fast\",\"id\":\"oob\"}\n");
	t_recv_eq(c, "{\"id\": \"oob\", \"error\": {\"class\": "
	    "\"CommandNotFound\", \"desc\": \"The command query-fast has been "
	    "disabled for this instance\"}}");
	t_recv_eq(c, "{\"return\": {\"command\": \"query-slow\", \"seq\": 1}, "
	    "\"id\": \"slow\"}");
	t_recv_eq(c, "{\"id\": \"in\", \"error\": {\"class\": "
	    "\"CommandNotFound\", \"desc\": \"The command query-fast has been "
	    "disabled for this instance\"}}");
	ck_assert_int_eq(t_log_count("fakeqemu.log", "query-fast"), 0);
	t_client_free(c);
}
END_TEST

/*
 * Ids: QEMU sees the proxy's own ids, never a client's as JSON, and each
 * client gets its own id back, as QEMU writes it, on its own reply.
 */
START_TEST(test_ids)
{
	struct t_client	*a, *b;
	char		*m;

	t_start_fake(NULL, NULL);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_cmd_eq(a, "{\"execute\":\"query-status\",\"id\":\"client-id-a\"}",
	    "{\"return\": {\"command\": \"query-status\", "
	    "\"seq\": 1}, \"id\": \"client-id-a\"}");
	t_cmd_eq(b, "{\"execute\":\"query-name\","
	    "\"id\":{\"client\":[\"b\", null, 1e3]}}",
	    "{\"return\": {\"command\": \"query-name\", "
	    "\"seq\": 2}, \"id\": {\"client\": [\"b\", null, 1000]}}");
	t_cmd_eq(a, "{\"execute\":\"query-kvm\"}",
	    "{\"return\": {\"command\": \"query-kvm\", "
	    "\"seq\": 3}}");
	/* the same id from two clients: each gets its own command's reply */
	t_send(a, "{\"execute\":\"query-a\",\"id\":\"same\"}\n");
	t_send(b, "{\"execute\":\"query-b\",\"id\":\"same\"}\n");
	m = t_recv_reply(a, T_WAIT_MS);
	ck_assert_ptr_nonnull(strstr(m, "\"command\": \"query-a\""));
	ck_assert_ptr_nonnull(strstr(m, "\"id\": \"same\""));
	free(m);
	m = t_recv_reply(b, T_WAIT_MS);
	ck_assert_ptr_nonnull(strstr(m, "\"command\": \"query-b\""));
	free(m);
	ck_assert_int_eq(t_quiet(a, 100), T_SILENT);
	ck_assert_int_eq(t_quiet(b, 100), T_SILENT);

	/*
	 * What the fake saw: qmpmuxd's ids, each its epoch, number, client
	 * and the client's id (as QEMU writes it) in hex; never a client's
	 * id as JSON.
	 */
	ck_assert_int_eq(t_log_count("fakeqemu.log",
	    "conn 1: command query-status id \""), 1);
	ck_assert_int_eq(t_log_count("fakeqemu.log", ".1.1.22636c69656e742d69642d6122\"\n"),
	    1);
	/* {"client": ["b", null, 1000]}, as QEMU will write it back */
	ck_assert_int_eq(t_log_count("fakeqemu.log", ".2.2.7b22636c69656e74"
	    "223a205b2262222c206e756c6c2c20313030305d7d\"\n"), 1);
	ck_assert_int_eq(t_log_count("fakeqemu.log", ".3.1.-\"\n"), 1);
	ck_assert_int_eq(t_log_count("fakeqemu.log", "client-id-a"), 0);
	ck_assert_int_eq(t_log_count("fakeqemu.log", "\"client\""), 0);
	ck_assert_int_eq(t_log_count("fakeqemu.log", "same"), 0);
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * The proxy's own replies keep QEMU's order.  QEMU answers all in-band
 * input in order, parse errors included, so invalid input sent behind a
 * pending command is answered after that command; another client's
 * error does not wait for it.  The held replies count in the pipeline
 * (3 here), so the proxy stops reading a before its last command and
 * goes on once the slow one is answered.
 */
START_TEST(test_local_replies_in_order)
{
	const char	*fargs[] = { "--delay", "query-slow=600", NULL };
	const char	*pargs[] = { "--max-client-pipeline", "3", NULL };
	struct t_client	*a, *b;
	char		*m;

	t_start_fake(fargs, pargs);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_send(a, "{\"execute\":\"query-slow\",\"id\":1}\n"
	    "[]\n"
	    "{\"execute\":\"query-x\",\"foo\":1,\"id\":2}\n"
	    "{\"execute\":\"qmp_capabilities\",\"id\":3}\n"
	    "{\"execute\": nope}\n"
	    "{\"execute\":\"query-y\",\"id\":4}\n");
	t_send(b, "[]\n");
	t_recv_eq(b, "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"QMP input must be a JSON object\"}}");
	/* a's errors wait for its slow command */
	ck_assert_int_eq(t_quiet(a, 100), T_SILENT);
	t_recv_eq(a, "{\"return\": {\"command\": \"query-slow\", \"seq\": 1}, "
	    "\"id\": 1}");
	t_recv_eq(a, "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"QMP input must be a JSON object\"}}");
	t_recv_eq(a, "{\"id\": 2, \"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"QMP input member 'foo' is unexpected\"}}");
	t_recv_eq(a, "{\"id\": 3, \"error\": {\"class\": \"CommandNotFound\", "
	    "\"desc\": \"Capabilities negotiation is already complete, "
	    "command ignored\"}}");
	m = t_recv(a, T_WAIT_MS);
	ck_assert_msg(m != NULL && strncmp(m, "{\"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"JSON parse error, ", 55) == 0,
	    "parse error: %s", m);
	free(m);
	t_recv_eq(a, "{\"return\": {\"command\": \"query-y\", \"seq\": 2}, "
	    "\"id\": 4}");
	ck_assert_int_eq(t_quiet(a, 100), T_SILENT);
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * QEMU lost: the client's commands and the proxy's replies held behind
 * them come out in the client's order, the one in flight first.
 */
START_TEST(test_lost_in_order)
{
	const char	*fargs[] = { "--delay", "query-slow=5000", NULL };
	struct t_client	*a;
	char		*m;

	t_start_fake(fargs, NULL);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	t_send(a, "{\"execute\":\"query-slow\",\"id\":\"A\"}\n"
	    "{\"execute\": nope}\n"
	    "{\"execute\":\"query-x\",\"id\":\"B\"}\n"
	    "[1]\n");
	ck_assert_int_eq(t_wait_log("fakeqemu.log", "command query-slow",
	    T_WAIT_MS), 0);
	t_stop(t_fake_pid, SIGKILL);
	t_fake_pid = 0;
	t_recv_eq(a, LOST("\"A\""));
	m = t_recv(a, T_WAIT_MS);
	ck_assert_msg(m != NULL && strncmp(m, "{\"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"JSON parse error, ", 55) == 0,
	    "parse error: %s", m);
	free(m);
	t_recv_eq(a, LOST("\"B\""));
	t_recv_eq(a, "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"QMP input must be a JSON object\"}}");
	ck_assert(t_eof(a, T_WAIT_MS));
	t_client_free(a);
}
END_TEST

/*
 * A client that sends and does not read: invalid lines, each answered by
 * the proxy itself.  Past --max-client-output the proxy stops reading
 * from it, which the client sees as its lines no longer being taken,
 * well short of 1 MiB of them, and some left unread; the proxy's memory
 * holds the bound, not the replies.  When the client reads, it gets a
 * reply to every line it sent, in order.
 */
START_TEST(test_client_output_bound)
{
	static const char	 reply[] = "{\"error\": {\"class\": "
				    "\"GenericError\", \"desc\": "
				    "\"QMP input must be a JSON object\"}}";
	const char		*pargs[] = { "--max-client-output", "64K",
				    NULL };
	struct t_client		*c;
	char			*lines;
	long			 base_kb, peak_kb;
	size_t			 sent, n, i;

	/* an RSS of qmpmuxd's, not of ASan's quarantine */
	t_small_quarantine();
	t_start_fake(NULL, pargs);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	base_kb = t_proc_kb(t_proxy_pid, "VmRSS");
	/* 1,000 lines a write; a line "[]" is answered once "]" is in */
	if ((lines = malloc(1000 * 3 + 1)) == NULL)
		abort();
	for (i = 0; i < 1000; i++)
		memcpy(lines + i * 3, "[]\n", 3);
	lines[1000 * 3] = '\0';
	sent = t_send_while_taken(c, lines, 1 << 20, 500);
	free(lines);
	ck_assert_uint_lt(sent, 1 << 20);
	ck_assert(t_peer_unread(c));
	peak_kb = t_proc_kb(t_proxy_pid, "VmHWM");
	n = sent / 3 + (sent % 3 == 2);
	printf("client output: %zu lines taken; RSS %ld kB before, peak "
	    "%ld kB when not reading\n", n, base_kb, peak_kb);
	/*
	 * Answering every line taken would hold 64 replies of 82 bytes per
	 * 192 bytes taken: some 5 MiB for the lines a client's socket holds.
	 * The bound is what the proxy holds (the output's 64 kB, its rings'
	 * pages) and, under ASan, what its allocator keeps of what it freed
	 * (a quarantine of 1 MiB, t_small_quarantine, and each size class's
	 * high water), which grows with the messages handled: with output
	 * sent by sendfile, the client's socket takes some 3,000 replies
	 * before the output fills.
	 */
	if (t_rss_is_qmpmuxd())
		ck_assert_int_le(peak_kb - base_kb, 4096);
	for (i = 0; i < n; i++)
		t_recv_eq_at("reply to a line", c, reply);
	ck_assert_int_eq(t_quiet(c, 100), T_SILENT);
	t_client_free(c);
}
END_TEST

/*
 * A client closed while reading from it was paused at
 * --max-client-output is never read again, even when its output drains
 * to half: what it sends then stays in the socket, not in the proxy.
 * The close comes from the fake's death, which closes every client: w,
 * which reads, sees it, and c was closed with it.
 */
START_TEST(test_closing_not_read)
{
	const char	*pargs[] = { "--max-client-output", "4M",
	    "--slow-client-timeout", "20", NULL };
	struct t_client	*c, *w;
	size_t		 got = 0, sent;
	char		*m;

	t_start_fake(NULL, pargs);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(w = t_client_ready(t_psock));
	/* ~100-byte parse errors for 3-byte lines: the output fills first */
	sent = t_send_while_taken(c, "x\n\n", 1 << 20, 500);
	ck_assert_uint_lt(sent, 1 << 20);
	ck_assert(t_peer_unread(c));
	t_stop(t_fake_pid, SIGKILL);
	t_fake_pid = 0;
	ck_assert(t_eof(w, T_WAIT_MS));
	/* read until the output is under half, not empty */
	while (got < (3 << 20) && (m = t_recv(c, T_WAIT_MS)) != NULL) {
		got += strlen(m) + 2;
		free(m);
	}
	sent = t_send_while_taken(c, "x\n\n", 64 << 20, 500);
	printf("closing: read %zu bytes, then %zu bytes taken\n", got, sent);
	ck_assert_uint_lt(sent, 4 << 20);
	t_client_free(c);
	t_client_free(w);
}
END_TEST

/* qmpmuxd and the fake both end cleanly on SIGTERM (sanitizers agree). */
START_TEST(test_sigterm)
{
	struct t_client	*c;
	struct stat	 st;
	char		*m;
	int		 status;

	t_start_fake(NULL, NULL);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	m = t_cmd(c, "{\"execute\":\"query-status\",\"id\":1}");
	ck_assert_ptr_nonnull(m);
	free(m);
	status = t_stop(t_proxy_pid, SIGTERM);
	t_proxy_pid = 0;
	ck_assert_msg(t_exited(status, 0),
	    "qmpmuxd exit status %d", status);
	ck_assert(t_eof(c, T_WAIT_MS));
	t_client_free(c);
	status = t_stop(t_fake_pid, SIGTERM);
	t_fake_pid = 0;
	ck_assert_msg(t_exited(status, 0),
	    "fake exit status %d", status);
	ck_assert_int_eq(stat(t_fsock, &st), -1);
}
END_TEST

/*
 * Events keep flowing while a command is held back: every negotiated
 * client gets the TICK events, in order, and the asker gets them all
 * before its reply.
 */
START_TEST(test_events_during_delay)
{
	const char	*fargs[] = { "--delay", "query-slow=500",
			    "--events-during-delay", "5", NULL };
	struct t_client	*c[2];
	yajl_val	 v;
	char		*m;
	long long	 i;
	int		 k;

	t_start_fake(fargs, NULL);
	t_clients_ready(c, 2, t_psock);
	t_send(c[0], "{\"execute\":\"query-slow\",\"id\":\"s\"}\n");
	for (i = 0; i < 5; i++) {
		for (k = 0; k < 2; k++) {
			ck_assert_ptr_nonnull(m = t_recv(c[k], T_WAIT_MS));
			ck_assert_ptr_nonnull(v = t_json(m));
			ck_assert_str_eq(t_get_str(v, "event", NULL), "TICK");
			ck_assert_int_eq(t_get_int(v, "data", "n"), i);
			yajl_tree_free(v);
			free(m);
		}
	}
	t_recv_eq(c[0], "{\"return\": {\"command\": \"query-slow\", "
	    "\"seq\": 1}, \"id\": \"s\"}");
	ck_assert_int_eq(t_quiet(c[1], 100), T_SILENT);
	t_client_free(c[0]);
	t_client_free(c[1]);
}
END_TEST

/*
 * A flood with a client that does not read: the proxy stops reading the
 * fake (no event reaches the reading client for a while), and once the
 * slow client goes the reading one gets every event, in order.
 */
START_TEST(test_flood)
{
	const char	*fargs[] = { "--flood", "50000", "--trigger", "go",
			    NULL };
	const char	*pargs[] = { "--max-queued-events", "64", NULL };
	struct t_client	*a, *slow;
	yajl_val	 v;
	char		*m;
	long long	 next = 0;
	int		 replied = 0, stalled = 0;

	t_start_fake(fargs, pargs);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(slow = t_client_ready(t_psock));
	t_send(a, "{\"execute\":\"go\",\"id\":\"go\"}\n");
	while (next < 50000) {
		if ((m = t_recv(a, stalled || next == 0 ? T_WAIT_MS :
		    500)) == NULL) {
			/* held back by the slow client: let it go */
			ck_assert_msg(!stalled, "flood stopped at %lld", next);
			ck_assert_int_gt(next, 0);
			/* the proxy stopped reading, so the fake is held */
			ck_assert_int_eq(t_log_count("fakeqemu.log",
			    "flood of 50000 events written"), 0);
			stalled = 1;
			t_client_free(slow);
			slow = NULL;
			continue;
		}
		ck_assert_ptr_nonnull(v = t_json(m));
		if (t_get_str(v, "id", NULL) != NULL) {
			ck_assert_str_eq(t_get_str(v, "return", "command"),
			    "go");
			replied++;
		} else {
			ck_assert_str_eq(t_get_str(v, "event", NULL),
			    "FLOOD");
			ck_assert_int_eq(t_get_int(v, "data", "n"), next);
			next++;
		}
		yajl_tree_free(v);
		free(m);
	}
	ck_assert_msg(stalled, "the slow client never held the fake back");
	if (!replied) {
		m = t_recv_reply(a, T_WAIT_MS);
		ck_assert_ptr_nonnull(strstr(m, "\"command\": \"go\""));
		free(m);
	}
	ck_assert_int_eq(t_quiet(a, 100), T_SILENT);
	t_client_free(a);
	ck_assert(t_proxy_alive());
}
END_TEST

/* The fake itself: --exit-after ends it with status 0 and no socket. */
START_TEST(test_fake_exit_after)
{
	const char	*fargs[] = { "--exit-after", "2", NULL };
	struct t_client	*c;
	struct stat	 st;
	int		 status;

	t_fake_pid = t_fakeqemu(t_fsock, fargs);
	ck_assert_ptr_nonnull(c = t_client_ready(t_fsock));
	t_cmd_eq(c, "{\"execute\":\"a\",\"id\":\"x\"}",
	    "{\"return\": {\"command\": \"a\", \"seq\": 1}, "
	    "\"id\": \"x\"}");
	t_cmd_eq(c, "{\"execute\":\"b\"}",
	    "{\"return\": {\"command\": \"b\", \"seq\": 2}}");
	ck_assert(t_eof(c, T_WAIT_MS));
	t_client_free(c);
	status = t_wait_exit(t_fake_pid, T_WAIT_MS);
	ck_assert_msg(t_exited(status, 0),
	    "fake exit status %d", status);
	t_fake_pid = 0;
	ck_assert_int_eq(stat(t_fsock, &st), -1);
}
END_TEST

/* One TCase; each test starts its own fake and qmpmuxd. */
static Suite *
fake_suite(void)
{
	Suite	*s = suite_create("fake");
	TCase	*tc = t_tcase(s, "fake", 60);

	tcase_add_loop_test(tc, test_split, 0, 2);
	tcase_add_loop_test(tc, test_garbage, 0, 2);
	tcase_add_loop_test(tc, test_oversize, 0, 3);
	tcase_add_loop_test(tc, test_handshake_stuck, 0, 2);
	tcase_add_test(tc, test_event_first);
	tcase_add_test(tc, test_no_oob);
	tcase_add_test(tc, test_oob);
	tcase_add_test(tc, test_oob_denied);
	tcase_add_test(tc, test_ids);
	tcase_add_test(tc, test_local_replies_in_order);
	tcase_add_test(tc, test_lost_in_order);
	tcase_add_test(tc, test_client_output_bound);
	tcase_add_test(tc, test_closing_not_read);
	tcase_add_test(tc, test_sigterm);
	tcase_add_test(tc, test_events_during_delay);
	tcase_add_test(tc, test_flood);
	tcase_add_test(tc, test_fake_exit_after);
	return (s);
}

int
main(void)
{
	return (t_run(fake_suite()));
}
