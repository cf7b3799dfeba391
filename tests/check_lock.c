/*
 * The advisory lock of a VM (src/lock.c), against the real QEMU with
 * an iothread whose poll-max-ns is the number the clients read, change
 * and write back: the updates it keeps from being lost, reads that it
 * never holds, writes that wait for it and go in order, what a
 * disconnect, a lease that runs out, the manager and break-lock do, its
 * argument errors, and the clients that never use it, which see nothing
 * of it.  What reached QEMU, and in which order, is read from QEMU's own
 * trace of the requests it handles.
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

#define TRACE		"qemu-trace.log"
#define ACQUIRE		"__org.qmpmux_x-lock-acquire"
#define RELEASE		"__org.qmpmux_x-lock-release"
#define RENEW		"__org.qmpmux_x-lock-renew"
#define QUERY		"__org.qmpmux_x-query-lock"
#define PROP		"\"path\": \"/objects/io0\", \"property\": \"poll-max-ns\""
#define OK		"{\"return\": {}}"

#define RMW_CLIENTS	4	/* seed 004: writers that share a monitor */
#define RMW_ROUNDS	60	/* increments each */

static char	*ctl;		/* the control socket */

/*
 * Start QEMU (traced, with iothread io0) and qmpmuxd with the VM
 * "test", lock_max_hold = 5 and the VM keys given, and the listeners
 * n.sock (normal), mgr.sock (manager), ro.sock (read-only) and bg.sock
 * (background).
 */
static void
start(const char *vm_keys)
{
	char		*conf = t_path("qmpmuxd.conf");
	const char	*qemu[] = { "-object", "iothread,id=io0", NULL };
	FILE		*f;

	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fprintf(f, "[vm test]\nupstream = connect:%s\nlock_max_hold = 5\n%s\n"
	    "[listener test n.sock]\n"
	    "[listener test mgr.sock]\npriority = manager\n"
	    "[listener test ro.sock]\nread_only = yes\n"
	    "[listener test bg.sock]\npriority = background\n", t_qsock,
	    vm_keys);
	ck_assert_int_eq(fclose(f), 0);
	t_qemu_pid = t_qemu_args(t_qsock, TRACE, qemu);
	free(ctl);
	ctl = t_qmpmuxd_conf(conf);
	free(conf);
}

/* A reply's number at k1.k2 (k2 may be NULL), which must be there. */
static long long
reply_int(const char *m, const char *k1, const char *k2)
{
	yajl_val	 v = t_json(m);
	long long	 n;

	ck_assert_msg(v != NULL && (n = t_get_int(v, k1, k2)) >= 0,
	    "no %s.%s in %s", k1, k2 != NULL ? k2 : "", m);
	yajl_tree_free(v);
	return (n);
}

/* poll-max-ns, as c reads it. */
static long long
get_ns(struct t_client *c)
{
	char		*m;
	long long	 n;

	m = t_cmd(c, "{\"execute\": \"qom-get\", \"arguments\": {" PROP "}}");
	ck_assert_msg(m != NULL, "no reply to qom-get");
	n = reply_int(m, "return", NULL);
	free(m);
	return (n);
}

/* Send c's qom-set of poll-max-ns to n, with id, not waiting. */
static void
send_set(struct t_client *c, long long n, const char *id)
{
	t_send(c, "{\"execute\": \"qom-set\", \"arguments\": {" PROP ", "
	    "\"value\": %lld}, \"id\": \"%s\"}\n", n, id);
}

/* c sets poll-max-ns to n, which must succeed. */
static void
set_ns(struct t_client *c, long long n)
{
	char	*m;

	m = t_cmd(c, "{\"execute\": \"qom-set\", \"arguments\": {" PROP ", "
	    "\"value\": %lld}}", n);
	ck_assert_msg(m != NULL && strcmp(m, OK) == 0, "qom-set %lld: %s", n,
	    m != NULL ? m : "(nothing)");
	free(m);
}

/* c's reply (events passed over), which must be an error with desc. */
static void
error_is(struct t_client *c, const char *desc)
{
	char	*m = t_recv_reply(c, T_WAIT_MS), *want;

	ck_assert_int_ne(asprintf(&want, "{\"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"%s\"}}", desc), -1);
	ck_assert_msg(m != NULL && strcmp(m, want) == 0, "expected\n  %s\n"
	    "got\n  %s", want, m != NULL ? m : "(nothing)");
	free(want);
	free(m);
}

/* c's next reply (events passed over), which must hold text. */
static void
reply_has(struct t_client *c, const char *text)
{
	char	*m = t_recv_reply(c, T_WAIT_MS);

	ck_assert_msg(m != NULL && strstr(m, text) != NULL, "expected %s in "
	    "%s", text, m != NULL ? m : "(nothing)");
	free(m);
}

/* c acquires the lock with the arguments given; its token. */
static long long
acquire(struct t_client *c, const char *args)
{
	char		*m;
	long long	 token;

	m = t_cmd(c, "{\"execute\": \"" ACQUIRE "\", \"arguments\": {%s}}",
	    args);
	ck_assert_msg(m != NULL && strstr(m, "\"expires\": ") != NULL,
	    "acquire {%s}: %s", args, m != NULL ? m : "(nothing)");
	token = reply_int(m, "return", "token");
	free(m);
	return (token);
}

/* c releases the lock it holds with token. */
static void
release(struct t_client *c, long long token)
{
	char	*m;

	m = t_cmd(c, "{\"execute\": \"" RELEASE "\", \"arguments\": "
	    "{\"token\": %lld}}", token);
	ck_assert_msg(m != NULL && strcmp(m, OK) == 0, "release %lld: %s",
	    token, m != NULL ? m : "(nothing)");
	free(m);
}

/* The lock's state, as c asks for it (x-query-lock's reply text). */
static char *
query(struct t_client *c)
{
	char	*m = t_cmd(c, "{\"execute\": \"" QUERY "\"}");

	ck_assert_msg(m != NULL && strncmp(m, "{\"return\": {\"held\": ",
	    20) == 0, "query-lock: %s", m != NULL ? m : "(nothing)");
	return (m);
}

/* The client number of the lock's holder, from query-lock. */
static long long
holder(struct t_client *c)
{
	const char	*path[] = { "return", "holder", "client", NULL };
	char		*m = query(c);
	yajl_val	 v = t_json(m), n;
	long long	 id;

	n = yajl_tree_get(v, path, yajl_t_number);
	ck_assert_msg(n != NULL && YAJL_IS_INTEGER(n), "no holder: %s", m);
	id = YAJL_GET_INTEGER(n);
	yajl_tree_free(v);
	free(m);
	return (id);
}

/*
 * The next message of c, which must be the lock's event name (ACQUIRED
 * or RELEASED), with why when it is not NULL.
 */
static void
lock_event(struct t_client *c, const char *name, const char *why)
{
	char	*m = t_recv(c, T_WAIT_MS), want[96];

	snprintf(want, sizeof(want), "\"event\": \"__org.qmpmux_LOCK_%s\"",
	    name);
	ck_assert_msg(m != NULL && strstr(m, want) != NULL, "expected %s, "
	    "got %s", want, m != NULL ? m : "(nothing)");
	if (why != NULL) {
		snprintf(want, sizeof(want), "\"why\": \"%s\"}}", why);
		ck_assert_msg(strstr(m, want) != NULL, "expected %s in %s",
		    want, m);
	}
	free(m);
}

/*
 * Wait until n commands wait for the lock, as query-lock lists them:
 * nothing else tells when another client's command has arrived.
 */
static void
wait_waiters(struct t_client *c, int n)
{
	long long	 end = t_clock_ms() + T_WAIT_MS;
	char		*m, *p;
	int		 found;

	do {
		m = query(c);
		for (found = 0, p = m; (p = strstr(p, "\"command\": ")) !=
		    NULL; p++)
			found++;
		free(m);
	} while (found < n && t_clock_ms() < end);
	ck_assert_msg(found >= n, "%d commands waited for the lock, not %d",
	    found, n);
}

/*
 * Wait until the VM has taken n commands: one that waits behind a full
 * QEMU (max_inflight) is not yet looked at by the lock, nor listed.
 */
static void
wait_taken(long long n)
{
	long long	 end = t_clock_ms() + T_WAIT_MS;

	while (t_vm_taken(ctl, "test") < n && t_clock_ms() < end)
		poll(NULL, 0, 1);
	ck_assert_int_ge(t_vm_taken(ctl, "test"), n);
}

/* The values of the qom-sets QEMU's trace shows it ran, in order. */
static int
qemu_sets(long long *vals, int max)
{
	char	*path = t_path(TRACE), *text, *p;
	int	 n = 0;

	ck_assert_ptr_nonnull(text = t_slurp(path, NULL));
	for (p = text; n < max && (p = strstr(p, "\"qom-set\"")) != NULL;
	    p++) {
		ck_assert_ptr_nonnull(p = strstr(p, "\"value\": "));
		vals[n++] = strtoll(p + 9, NULL, 10);
	}
	free(text);
	free(path);
	return (n);
}

/*
 * A writer of the locked read-modify-write: it sends the acquire and
 * the read together (its read waits behind its acquire), the write on
 * the value read, then the release, RMW_ROUNDS times.
 */
struct rmw {
	struct t_client	*c;
	int		 step;		/* the reply awaited: RMW_* */
	int		 done;		/* increments done */
	long long	 token;
};
enum { RMW_ACQ, RMW_GET, RMW_SET, RMW_REL };

/* Send a writer's acquire and its read. */
static void
rmw_begin(struct rmw *w)
{
	t_send(w->c, "{\"execute\": \"" ACQUIRE "\", \"arguments\": "
	    "{\"timeout\": 20, \"reason\": \"rmw\"}}\n"
	    "{\"execute\": \"qom-get\", \"arguments\": {" PROP "}}\n");
	w->step = RMW_ACQ;
}

/* A writer's next message: the next step of its increment. */
static void
rmw_next(struct rmw *w, const char *m)
{
	if (strncmp(m, "{\"timestamp\"", 12) == 0)
		return;		/* the lock's events */
	switch (w->step) {
	case RMW_ACQ:
		w->token = reply_int(m, "return", "token");
		w->step = RMW_GET;
		break;
	case RMW_GET:
		send_set(w->c, reply_int(m, "return", NULL) + 1, "set");
		w->step = RMW_SET;
		break;
	case RMW_SET:
		ck_assert_msg(strcmp(m, "{\"return\": {}, \"id\": \"set\"}") ==
		    0, "qom-set: %s", m);
		t_send(w->c, "{\"execute\": \"" RELEASE "\", \"arguments\": "
		    "{\"token\": %lld}}\n", w->token);
		w->step = RMW_REL;
		break;
	default:
		ck_assert_msg(strcmp(m, OK) == 0, "release: %s", m);
		if (++w->done < RMW_ROUNDS)
			rmw_begin(w);
		break;
	}
}

/*
 * Seed 004: RMW_CLIENTS clients each add 1 to poll-max-ns RMW_ROUNDS
 * times, reading it (qom-get) and writing back what they read plus one
 * (qom-set).  Without the lock (_i 0) they do what concurrent writers
 * can always do, and reliably so here: each round, all read before any
 * writes, and every update but one of the round is lost; that lost
 * update is the race the lock exists for.  With the lock (_i 1) around
 * each increment, the writers driven at once from one poll loop,
 * pipelining as far as they can, none is lost.
 */
START_TEST(test_rmw)
{
	struct rmw	 w[RMW_CLIENTS];
	struct pollfd	 pfd[RMW_CLIENTS];
	long long	 v[RMW_CLIENTS], end, final;
	char		*m;
	int		 i, r, left, locked = _i == 1;

	start("");
	for (i = 0; i < RMW_CLIENTS; i++) {
		w[i].c = t_client_here("n.sock");
		w[i].done = 0;
	}
	set_ns(w[0].c, 0);
	if (!locked) {
		for (r = 0; r < RMW_ROUNDS; r++) {
			for (i = 0; i < RMW_CLIENTS; i++)
				v[i] = get_ns(w[i].c);
			for (i = 0; i < RMW_CLIENTS; i++)
				set_ns(w[i].c, v[i] + 1);
		}
	} else {
		for (i = 0; i < RMW_CLIENTS; i++)
			rmw_begin(&w[i]);
		end = t_clock_ms() + 6 * T_WAIT_MS;
		for (;;) {
			for (i = left = 0; i < RMW_CLIENTS; i++) {
				pfd[i].fd = t_client_fd(w[i].c);
				pfd[i].events = w[i].done < RMW_ROUNDS ?
				    POLLIN : 0;
				left += w[i].done < RMW_ROUNDS;
			}
			if (left == 0)
				break;
			ck_assert_msg(t_clock_ms() < end, "the writers took "
			    "too long");
			ck_assert_msg(poll(pfd, RMW_CLIENTS, T_WAIT_MS) > 0,
			    "the writers stalled");
			for (i = 0; i < RMW_CLIENTS; i++) {
				while (pfd[i].revents != 0 &&
				    (m = t_recv_now(w[i].c)) != NULL) {
					rmw_next(&w[i], m);
					free(m);
				}
			}
		}
	}
	final = get_ns(w[0].c);
	if (!locked)
		ck_assert_msg(final < RMW_CLIENTS * RMW_ROUNDS, "no update was "
		    "lost without the lock: %lld", final);
	else {
		ck_assert_int_eq(final, RMW_CLIENTS * RMW_ROUNDS);
		ck_assert_int_eq(t_vm_counter(ctl, "test", "lock_acquired"),
		    RMW_CLIENTS * RMW_ROUNDS);
	}
	for (i = 0; i < RMW_CLIENTS; i++)
		t_client_free(w[i].c);
}
END_TEST

/*
 * Reads are never held: another client's qom-get, query-status and
 * query-lock are answered while the lock is held for 5 s, and
 * query-lock names the holder: its client, listener, pid, uid, reason.
 */
START_TEST(test_reader)
{
	struct t_client	*a, *b;
	long long	 t0, token;
	char		*m, *want, *sock = t_path("n.sock");

	start("");
	a = t_client_here("n.sock");
	b = t_client_here("n.sock");
	token = acquire(a, "\"hold\": 5, \"reason\": \"resize \\\"vda\\\"\"");
	ck_assert_int_eq(token, 1);
	set_ns(a, 77);
	t0 = t_clock_ms();
	ck_assert_int_eq(get_ns(b), 77);
	m = t_cmd(b, "{\"execute\": \"query-status\"}");
	ck_assert_msg(m != NULL && strncmp(m, "{\"return\": {\"status\"",
	    20) == 0, "query-status: %s", m != NULL ? m : "(nothing)");
	free(m);
	m = query(b);
	ck_assert_msg(t_clock_ms() - t0 < 2000, "the reads waited %lld ms",
	    t_clock_ms() - t0);
	ck_assert_int_ne(asprintf(&want, "{\"return\": {\"held\": true, "
	    "\"token\": 1, \"holder\": {\"client\": %lld, \"gone\": false, "
	    "\"listener\": \"%s\", \"pid\": %ld, \"uid\": %ld}, \"reason\": "
	    "\"resize \\\"vda\\\"\", \"since\": ", holder(a), sock,
	    (long)getpid(), (long)getuid()), -1);
	ck_assert_msg(strncmp(m, want, strlen(want)) == 0, "query-lock:\n  %s\n"
	    "expected to begin\n  %s", m, want);
	ck_assert_msg(strstr(m, "\"waiters\": []}}") != NULL, "%s", m);
	free(want);
	free(m);
	ck_assert_int_eq(t_vm_counter(ctl, "test", "lock_waited"), 0);
	release(a, token);
	t_client_free(a);
	t_client_free(b);
	free(sock);
}
END_TEST

/*
 * Writes wait, never refused: while A holds the lock, B's two qom-sets
 * and C's one between them get no reply; A's own write and read go.
 * Released, they go in the order they came, as QEMU's trace shows, and
 * each client has its replies in its order.
 */
START_TEST(test_writers_wait)
{
	struct t_client	*a, *b, *c;
	long long	 token, vals[8];
	char		*m;

	start("");
	a = t_client_here("n.sock");
	b = t_client_here("n.sock");
	c = t_client_here("n.sock");
	token = acquire(a, "");
	send_set(b, 100, "b1");
	wait_waiters(a, 1);
	send_set(c, 102, "c1");
	wait_waiters(a, 2);
	send_set(b, 101, "b2");
	set_ns(a, 7);
	ck_assert_int_eq(get_ns(a), 7);
	ck_assert_int_eq(t_quiet(b, 200), T_SILENT);
	ck_assert_int_eq(t_quiet(c, 1), T_SILENT);
	m = query(a);
	ck_assert_msg(strstr(m, "\"waiters\": [{\"client\": ") != NULL, "%s",
	    m);
	free(m);
	release(a, token);
	t_recv_eq(b, "{\"return\": {}, \"id\": \"b1\"}");
	t_recv_eq(b, "{\"return\": {}, \"id\": \"b2\"}");
	t_recv_eq(c, "{\"return\": {}, \"id\": \"c1\"}");
	ck_assert_int_eq(qemu_sets(vals, 8), 4);
	ck_assert_int_eq(vals[0], 7);
	ck_assert_int_eq(vals[1], 100);
	ck_assert_int_eq(vals[2], 102);
	ck_assert_int_eq(vals[3], 101);
	ck_assert_int_eq(get_ns(a), 101);
	ck_assert_int_ge(t_vm_counter(ctl, "test", "lock_waited"), 2);
	t_client_free(a);
	t_client_free(b);
	t_client_free(c);
}
END_TEST

/*
 * A client's lock commands answered in its order among the commands it
 * pipelines behind them: an acquire that waited, then a read; a release
 * behind a read still at QEMU (stopped), then another.
 */
START_TEST(test_pipelined)
{
	struct t_client	*a, *b;
	long long	 token, taken;

	start("");
	a = t_client_here("n.sock");
	b = t_client_here("n.sock");
	token = acquire(a, "");
	t_send(b, "{\"execute\": \"" ACQUIRE "\", \"arguments\": "
	    "{\"timeout\": 5}, \"id\": \"acq\"}\n"
	    "{\"execute\": \"query-status\", \"id\": \"st\"}\n");
	wait_waiters(a, 1);
	release(a, token);
	reply_has(b, "{\"return\": {\"token\": 2, \"expires\": ");

	reply_has(b, "\"id\": \"st\"");

	taken = t_vm_taken(ctl, "test");
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	t_send(b, "{\"execute\": \"qom-get\", \"arguments\": {" PROP "}, "
	    "\"id\": \"get\"}\n");
	ck_assert_int_eq(t_wait_vm_sent(ctl, "test", taken + 1, T_WAIT_MS),
	    0);
	t_send(b, "{\"execute\": \"" RELEASE "\", \"arguments\": "
	    "{\"token\": 2}, \"id\": \"rel\"}\n"
	    "{\"execute\": \"" QUERY "\", \"id\": \"q\"}\n"
	    "{\"execute\": \"query-status\", \"id\": \"st\"}\n");
	ck_assert_int_eq(t_quiet(b, 100), T_SILENT);
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	t_reply_is(b, "{\"return\": 32768, \"id\": \"get\"}");
	t_reply_is(b, "{\"return\": {}, \"id\": \"rel\"}");
	reply_has(b, "\"id\": \"q\"");
	reply_has(b, "\"id\": \"st\"");
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * A waiting write's deadline runs, and its error, like an acquire's
 * that waited or did not, names the holder; the write never reaches
 * QEMU.
 */
START_TEST(test_holder_named)
{
	struct t_client	*a, *b;
	long long	 vals[4];
	char		*who, *desc, *sock = t_path("n.sock");

	start("timeout.qom-set = 0.3");
	a = t_client_here("n.sock");
	b = t_client_here("n.sock");
	acquire(a, "\"reason\": \"backup\"");
	ck_assert_int_ne(asprintf(&who, "client %lld (listener %s, pid %ld, "
	    "uid %ld, reason \\\"backup\\\") for ", holder(a), sock,
	    (long)getpid(), (long)getuid()), -1);

	t_send(b, "{\"execute\": \"" ACQUIRE "\"}\n");
	desc = t_recv_reply(b, T_WAIT_MS);
	ck_assert_msg(desc != NULL && strstr(desc, "\"desc\": \"qmpmux: the "
	    "lock of VM test is held by ") != NULL && strstr(desc, who) !=
	    NULL, "acquire: %s\nwanted %s", desc, who);
	free(desc);
	t_send(b, "{\"execute\": \"" ACQUIRE "\", \"arguments\": "
	    "{\"timeout\": 0.2}}\n");
	desc = t_recv_reply(b, T_WAIT_MS);
	ck_assert_msg(desc != NULL && strstr(desc, "\"desc\": \"qmpmux: timed "
	    "out after 0.2s waiting for the lock of VM test, held by ") !=
	    NULL && strstr(desc, who) != NULL, "acquire: %s", desc);
	free(desc);
	send_set(b, 5, "late");
	desc = t_recv_reply(b, T_WAIT_MS);
	ck_assert_msg(desc != NULL && strstr(desc, "\"desc\": \"qmpmux: "
	    "command qom-set timed out after 0.3s waiting for the lock of VM "
	    "test, held by ") != NULL && strstr(desc, who) != NULL &&
	    strstr(desc, ", and was not sent to QEMU\"}") != NULL &&
	    strstr(desc, "\"id\": \"late\"") != NULL, "qom-set: %s", desc);
	free(desc);
	ck_assert_int_eq(qemu_sets(vals, 4), 0);
	free(who);
	free(sock);
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * The holder's disconnect releases, but only once its command at QEMU
 * (QEMU stopped) is answered: then a client that used the lock hears
 * LOCK_RELEASED, why disconnect, and the waiting write goes, after the
 * holder's.
 */
START_TEST(test_disconnect)
{
	struct t_client	*a, *b, *w;
	long long	 taken;

	start("");
	a = t_client_here("n.sock");
	b = t_client_here("n.sock");
	w = t_client_here("n.sock");
	free(query(w));
	acquire(a, "");
	lock_event(w, "ACQUIRED", NULL);
	taken = t_vm_taken(ctl, "test");
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	send_set(a, 9, "a");
	ck_assert_int_eq(t_wait_vm_sent(ctl, "test", taken + 1, T_WAIT_MS),
	    0);
	send_set(b, 5, "b");
	wait_taken(taken + 2);
	t_client_free(a);
	ck_assert_int_eq(t_quiet(w, 300), T_SILENT);
	ck_assert_int_eq(t_quiet(b, 1), T_SILENT);
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	lock_event(w, "RELEASED", "disconnect");
	t_recv_eq(b, "{\"return\": {}, \"id\": \"b\"}");
	ck_assert_int_eq(get_ns(w), 5);
	t_client_free(b);
	t_client_free(w);
}
END_TEST

/*
 * A lease that runs out (hold 0.3) goes to the acquirer that waits
 * (timeout 2), with the next token; the old holder is fenced: its next
 * write is refused, that it lost the lock, its reads go on, and it is
 * itself again once it acquires again.
 */
START_TEST(test_expired)
{
	struct t_client	*a, *b, *w;
	long long	 t0, took, token;

	start("");
	a = t_client_here("n.sock");
	b = t_client_here("n.sock");
	w = t_client_here("n.sock");
	free(query(w));
	token = acquire(a, "\"hold\": 0.3");
	t0 = t_clock_ms();
	ck_assert_int_eq(acquire(b, "\"timeout\": 2"), token + 1);
	took = t_clock_ms() - t0;
	ck_assert_msg(took >= 250, "the lease of 0.3 s let go after %lld ms",
	    took);
	lock_event(w, "ACQUIRED", NULL);
	lock_event(w, "RELEASED", "expired");
	lock_event(w, "ACQUIRED", NULL);

	t_send(a, "{\"execute\": \"qom-set\", \"arguments\": {" PROP ", "
	    "\"value\": 3}}\n");
	error_is(a, "qmpmux: this client lost the lock of VM test (token 1, "
	    "its lease ran out); acquire it again");
	ck_assert_int_eq(get_ns(a), 32768);
	ck_assert_int_eq(t_vm_counter(ctl, "test", "lock_expired"), 1);
	ck_assert_int_eq(t_vm_counter(ctl, "test", "lock_fenced"), 1);
	set_ns(b, 4);
	release(b, token + 1);
	ck_assert_int_eq(acquire(a, ""), token + 2);
	set_ns(a, 6);
	ck_assert_int_eq(get_ns(b), 6);
	t_client_free(a);
	t_client_free(b);
	t_client_free(w);
}
END_TEST

/*
 * The manager's write waits for the lock too, but within the lease:
 * while it waits, the holder's renew (and its acquire, a renewal) is
 * refused, so it is done within hold and a margin.
 */
START_TEST(test_manager)
{
	struct t_client	*a, *mgr;
	long long	 t0, took, token;

	start("");
	a = t_client_here("n.sock");
	mgr = t_client_here("mgr.sock");
	token = acquire(a, "\"hold\": 1");
	t0 = t_clock_ms();
	send_set(mgr, 42, "m");
	wait_waiters(a, 1);
	t_send(a, "{\"execute\": \"" RENEW "\", \"arguments\": {\"token\": "
	    "%lld}}\n", token);
	error_is(a, "qmpmux: the lock of VM test cannot be renewed while a "
	    "command of the manager class waits for it; release it");
	t_send(a, "{\"execute\": \"" ACQUIRE "\"}\n");
	error_is(a, "qmpmux: the lock of VM test cannot be renewed while a "
	    "command of the manager class waits for it; release it");
	t_recv_eq(mgr, "{\"return\": {}, \"id\": \"m\"}");
	took = t_clock_ms() - t0;
	ck_assert_msg(took < 1000 + 1000, "the manager waited %lld ms for a "
	    "lease of 1 s", took);
	ck_assert_int_eq(t_vm_counter(ctl, "test", "lock_expired"), 1);
	ck_assert_int_eq(get_ns(a), 42);
	t_client_free(a);
	t_client_free(mgr);
}
END_TEST

/*
 * The lock's arguments are checked as QEMU checks a command's, in its
 * words; the bounds of the configuration in qmpmuxd's.  A read-only
 * listener's client may ask about the lock (a read), and is refused
 * the others as any command that is not a read.
 */
START_TEST(test_args)
{
	static const struct {
		const char	*cmd;
		const char	*desc;
	} bad[] = {
		{ ACQUIRE "\", \"arguments\": {\"timeout\": \"1\"}",
		  "Invalid parameter type for 'timeout', expected: number" },
		{ ACQUIRE "\", \"arguments\": {\"hold\": true}",
		  "Invalid parameter type for 'hold', expected: number" },
		{ ACQUIRE "\", \"arguments\": {\"reason\": 5}",
		  "Invalid parameter type for 'reason', expected: string" },
		{ ACQUIRE "\", \"arguments\": {\"token\": 1}",
		  "Parameter 'token' is unexpected" },
		{ ACQUIRE "\", \"arguments\": {\"hold\": 5.5}",
		  "qmpmux: hold must be above 0 and at most 5 "
		  "(lock_max_hold)" },
		{ ACQUIRE "\", \"arguments\": {\"hold\": 0}",
		  "qmpmux: hold must be above 0 and at most 5 "
		  "(lock_max_hold)" },
		{ ACQUIRE "\", \"arguments\": {\"timeout\": -1}",
		  "qmpmux: timeout must be from 0 to 30 (lock_max_wait)" },
		{ RELEASE "\", \"arguments\": {}",
		  "Parameter 'token' is missing" },
		{ RELEASE "\"",
		  "Parameter 'token' is missing" },
		{ RENEW "\", \"arguments\": {\"token\": \"1\"}",
		  "Invalid parameter type for 'token', expected: uint64" },
		{ RENEW "\", \"arguments\": {\"token\": -1}",
		  "Invalid parameter type for 'token', expected: uint64" },
		{ RENEW "\", \"arguments\": {\"token\": 1, \"hold\": 1}",
		  "Parameter 'hold' is unexpected" },
		{ QUERY "\", \"arguments\": {\"x\": 1}",
		  "Parameter 'x' is unexpected" },
		{ RELEASE "\", \"arguments\": {\"token\": 1}",
		  "qmpmux: this client does not hold the lock of VM test with "
		  "token 1" },
		{ RENEW "\", \"arguments\": {\"token\": 1}",
		  "qmpmux: this client does not hold the lock of VM test with "
		  "token 1" },
	};
	static const char *const ro_bad[] = { ACQUIRE, RELEASE, RENEW };
	struct t_client	*c, *ro;
	char		*want;
	size_t		 i;

	start("");
	c = t_client_here("n.sock");
	ro = t_client_here("ro.sock");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t_send(c, "{\"execute\": \"%s}\n", bad[i].cmd);
		error_is(c, bad[i].desc);
	}
	/* QEMU's own words for the same mistakes, to the letter */
	t_send(c, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": 5, "
	    "\"property\": \"x\"}}\n");
	error_is(c, "Invalid parameter type for 'path', expected: string");
	t_send(c, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/\", "
	    "\"property\": \"x\", \"token\": 1}}\n");
	error_is(c, "Parameter 'token' is unexpected");
	t_send(c, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": "
	    "\"/\"}}\n");
	error_is(c, "Parameter 'property' is missing");

	t_cmd_eq(ro, "{\"execute\": \"" QUERY "\"}", "{\"return\": {\"held\": "
	    "false, \"token\": 0, \"waiters\": []}}");
	for (i = 0; i < sizeof(ro_bad) / sizeof(ro_bad[0]); i++) {
		t_send(ro, "{\"execute\": \"%s\", \"arguments\": {\"token\": "
		    "1}}\n", ro_bad[i]);
		ck_assert_int_ne(asprintf(&want, "{\"error\": {\"class\": "
		    "\"CommandNotFound\", \"desc\": \"The command %s has "
		    "been disabled for this instance\"}}", ro_bad[i]), -1);
		t_reply_is(ro, want);
		free(want);
	}
	ck_assert_int_eq(t_vm_counter(ctl, "test", "lock_acquired"), 0);
	t_client_free(c);
	t_client_free(ro);
}
END_TEST

/*
 * break-lock on the control socket releases (LOCK_RELEASED, why
 * broken), lets the waiting write go and fences the holder; a second
 * break-lock finds nothing to break.
 */
START_TEST(test_break)
{
	struct t_client	*a, *b, *w, *q;

	start("");
	a = t_client_here("n.sock");
	b = t_client_here("n.sock");
	w = t_client_here("n.sock");
	free(query(w));
	acquire(a, "\"hold\": 5");
	lock_event(w, "ACQUIRED", NULL);
	send_set(b, 11, "b");
	wait_waiters(w, 1);
	ck_assert_ptr_nonnull(q = t_client_ready(ctl));
	t_cmd_eq(q, "{\"execute\": \"break-lock\", \"arguments\": {\"name\": "
	    "\"test\"}}", OK);
	lock_event(w, "RELEASED", "broken");
	t_recv_eq(b, "{\"return\": {}, \"id\": \"b\"}");
	t_send(a, "{\"execute\": \"qom-set\", \"arguments\": {" PROP ", "
	    "\"value\": 3}}\n");
	error_is(a, "qmpmux: this client lost the lock of VM test (token 1, "
	    "broken by the control socket); acquire it again");
	ck_assert_int_eq(get_ns(a), 11);
	t_cmd_eq(q, "{\"execute\": \"break-lock\", \"arguments\": {\"name\": "
	    "\"test\"}}", "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"qmpmux: the lock of VM test is not held\"}}");
	ck_assert_int_eq(t_vm_counter(ctl, "test", "lock_broken"), 1);
	ck_assert_int_eq(t_vm_counter(ctl, "test", "lock_fenced"), 1);
	t_client_free(q);
	t_client_free(a);
	t_client_free(b);
	t_client_free(w);
}
END_TEST

/*
 * A client that never names the lock sees nothing of it while others
 * take it, let it run out, break it and disconnect holding it: only its
 * replies, each as QEMU gives it, its write held meanwhile and then
 * done.
 */
START_TEST(test_unaware)
{
	struct t_client	*u, *a, *b, *q;
	long long	 token;

	start("");
	u = t_client_here("n.sock");
	a = t_client_here("n.sock");
	b = t_client_here("n.sock");
	ck_assert_ptr_nonnull(q = t_client_ready(ctl));
	token = acquire(a, "");
	send_set(u, 21, "u1");
	release(a, token);
	t_recv_eq(u, "{\"return\": {}, \"id\": \"u1\"}");
	acquire(a, "\"hold\": 0.2");
	acquire(b, "\"timeout\": 2");
	t_cmd_eq(q, "{\"execute\": \"break-lock\", \"arguments\": {\"name\": "
	    "\"test\"}}", OK);
	acquire(a, "");
	send_set(u, 22, "u2");
	t_client_free(a);
	t_recv_eq(u, "{\"return\": {}, \"id\": \"u2\"}");
	t_send(u, "{\"execute\": \"qom-get\", \"arguments\": {" PROP "}, "
	    "\"id\": \"u3\"}\n");
	t_recv_eq(u, "{\"return\": 22, \"id\": \"u3\"}");
	ck_assert_int_eq(t_quiet(u, 200), T_SILENT);
	t_client_free(q);
	t_client_free(b);
	t_client_free(u);
}
END_TEST

/*
 * contrib/qmp-lock-rmw, the README's example, four at once, each
 * adding 1 fifteen times: none of the 60 is lost.
 */
START_TEST(test_example)
{
	struct t_client	*c;
	const char	*argv[] = { "python3", t_bin("QMP_LOCK_RMW"), "-n",
			    "15", NULL, "/objects/io0", "poll-max-ns", NULL };
	char		*sock = t_path("n.sock"), log[32];
	pid_t		 pid[4];
	int		 i, status;

	start("");
	c = t_client_here("n.sock");
	set_ns(c, 0);
	argv[4] = sock;
	for (i = 0; i < 4; i++) {
		snprintf(log, sizeof(log), "rmw%d.log", i);
		pid[i] = t_spawn(argv, log);
	}
	for (i = 0; i < 4; i++) {
		status = t_wait_exit(pid[i], 3 * T_WAIT_MS);
		ck_assert_msg(t_exited(status, 0), "qmp-lock-rmw %d: status "
		    "%d; see %s/rmw%d.log", i, status, t_dir(), i);
	}
	ck_assert_int_eq(get_ns(c), 60);
	ck_assert_int_eq(t_vm_counter(ctl, "test", "lock_acquired"), 60);
	t_client_free(c);
	free(sock);
}
END_TEST

/*
 * A holder of the background class is not held back by the manager
 * that waits for its lock: its costly command (human-monitor-command,
 * cost 5), which manager_quiet holds back while a manager's command
 * could go, goes at once while the manager's write waits for the lock;
 * else each would wait for the other until the lease ran out (relief
 * off, which would break the wait after priority_relief).
 */
START_TEST(test_holder_costly)
{
	struct t_client	*h, *mgr;
	long long	 token, t0;

	start("priority_relief = 0");
	h = t_client_here("bg.sock");
	mgr = t_client_here("mgr.sock");
	token = acquire(h, "\"hold\": 5");
	send_set(mgr, 3, "m");
	wait_waiters(h, 1);
	t0 = t_clock_ms();
	t_send(h, "{\"execute\": \"human-monitor-command\", \"arguments\": "
	    "{\"command-line\": \"info status\"}}\n");
	reply_has(h, "{\"return\": \"VM status: running");
	ck_assert_msg(t_clock_ms() - t0 < 2000, "the holder's command waited "
	    "%lld ms for the manager that waits for it", t_clock_ms() - t0);
	release(h, token);
	t_reply_is(mgr, "{\"return\": {}, \"id\": \"m\"}");
	t_client_free(h);
	t_client_free(mgr);
}
END_TEST

/*
 * An acquire behind its client's own command whose deadline passes at a
 * stopped QEMU goes as soon as that command is answered with its
 * timeout, not when QEMU answers it at last; and a write that waited
 * for a lock now let go, but still waits for QEMU, is no more listed
 * as waiting for the lock.
 */
START_TEST(test_wake)
{
	struct t_client	*a, *b, *w, *q;
	long long	 t0;
	char		*m;

	start("timeout.query-status = 0.3");
	a = t_client_here("n.sock");
	b = t_client_here("n.sock");
	w = t_client_here("n.sock");
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	t_send(a, "{\"execute\": \"query-status\", \"id\": 1}\n");
	t_send(a, "{\"execute\": \"" ACQUIRE "\", \"arguments\": "
	    "{\"timeout\": 20}, \"id\": 2}\n");
	t0 = t_clock_ms();
	reply_has(a, "did not reply to query-status within 0.3s");
	reply_has(a, "\"token\": ");
	ck_assert_msg(t_clock_ms() - t0 < 3000, "the acquire waited %lld ms "
	    "for a QEMU that is stopped", t_clock_ms() - t0);
	ck_assert_int_eq(holder(w), 1);
	/* b's write waits for the lock, QEMU free again */
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	send_set(b, 4, "b");
	wait_waiters(w, 1);
	/* then for QEMU alone: w's command at a stopped QEMU, a lets go */
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	t_send(w, "{\"execute\": \"query-status\", \"id\": \"w\"}\n");
	ck_assert_ptr_nonnull(q = t_client_ready(ctl));
	for (t0 = t_clock_ms(), m = NULL; m == NULL ||
	    strstr(m, "\"in_flight\":1,") == NULL; poll(NULL, 0, 1)) {
		ck_assert_msg(t_clock_ms() < t0 + T_WAIT_MS, "w's command did "
		    "not go to QEMU: %s", m);
		free(m);
		m = t_cmd(q, "{\"execute\": \"query-vm\", \"arguments\": "
		    "{\"name\": \"test\"}}");
	}
	free(m);
	t_client_free(q);
	release(a, 1);
	m = query(a);
	ck_assert_msg(strstr(m, "\"waiters\": []") != NULL, "the write "
	    "that waits for QEMU alone is listed: %s", m);
	free(m);
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	t_reply_is(w, "{\"return\": {\"status\": \"running\", "
	    "\"singlestep\": false, \"running\": true}, \"id\": \"w\"}");
	t_reply_is(b, "{\"return\": {}, \"id\": \"b\"}");
	t_client_free(a);
	t_client_free(b);
	t_client_free(w);
}
END_TEST

/*
 * A client that lost the lock and pipelines an acquire and a write:
 * the write comes behind its own acquire, which is granted, and goes.
 */
START_TEST(test_fenced_reacquire)
{
	struct t_client	*a, *w;

	start("");
	a = t_client_here("n.sock");
	w = t_client_here("n.sock");
	free(query(w));
	acquire(a, "\"hold\": 0.2");
	lock_event(w, "ACQUIRED", NULL);
	lock_event(w, "RELEASED", "expired");
	lock_event(a, "RELEASED", "expired");
	/* its acquire waits behind its command at a stopped QEMU */
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	t_send(a, "{\"execute\": \"query-status\", \"id\": 0}\n");
	t_send(a, "{\"execute\": \"" ACQUIRE "\", \"id\": 1}\n");
	send_set(a, 5, "s");
	ck_assert_int_eq(t_quiet(a, 100), T_SILENT);
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	reply_has(a, "\"status\": \"running\"");
	reply_has(a, "\"token\": 2");
	t_reply_is(a, "{\"return\": {}, \"id\": \"s\"}");
	t_client_free(a);
	t_client_free(w);
}
END_TEST

/*
 * A client that asked for the lock's events and reads no more is not
 * given more of them than max_client_output (1K here) holds: another
 * client's 200 grants and releases (some 34 KB of events) leave its
 * output bounded, and the log says once that it missed some.
 */
START_TEST(test_events_bounded)
{
	struct t_client	*a, *w, *q;
	long long	 token;
	const char	*path[] = { "return", "clients", NULL };
	yajl_val	 v, list, out;
	char		*m;
	size_t		 i;
	int		 k;

	start("max_client_output = 1K");
	a = t_client_here("n.sock");
	w = t_client_here("n.sock");
	free(query(w));
	for (k = 0; k < 200; k++) {
		token = acquire(a, "");
		release(a, token);
	}
	ck_assert_ptr_nonnull(q = t_client_ready(ctl));
	m = t_cmd(q, "{\"execute\": \"query-vm\", \"arguments\": "
	    "{\"name\": \"test\"}}");
	ck_assert_ptr_nonnull(v = t_json(m));
	ck_assert_ptr_nonnull(list = yajl_tree_get(v, path, yajl_t_array));
	for (i = 0; i < list->u.array.len; i++) {
		out = yajl_tree_get(list->u.array.values[i],
		    (const char *[]){ "output_bytes", NULL }, yajl_t_number);
		ck_assert_ptr_nonnull(out);
		ck_assert_msg(YAJL_GET_INTEGER(out) < 1024 + 256, "a client "
		    "holds %lld bytes of output", YAJL_GET_INTEGER(out));
	}
	yajl_tree_free(v);
	free(m);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "lock events dropped"),
	    1);
	t_client_free(q);
	t_client_free(a);
	t_client_free(w);
}
END_TEST

static Suite *
lock_suite(void)
{
	Suite	*s = suite_create("lock");
	TCase	*tc = t_tcase(s, "real-qemu", 120);

	tcase_add_loop_test(tc, test_rmw, 0, 2);
	tcase_add_test(tc, test_reader);
	tcase_add_test(tc, test_writers_wait);
	tcase_add_test(tc, test_pipelined);
	tcase_add_test(tc, test_holder_named);
	tcase_add_test(tc, test_disconnect);
	tcase_add_test(tc, test_expired);
	tcase_add_test(tc, test_manager);
	tcase_add_test(tc, test_args);
	tcase_add_test(tc, test_break);
	tcase_add_test(tc, test_unaware);
	tcase_add_test(tc, test_holder_costly);
	tcase_add_test(tc, test_wake);
	tcase_add_test(tc, test_fenced_reacquire);
	tcase_add_test(tc, test_events_bounded);
	tcase_add_test(tc, test_example);
	return (s);
}

int
main(void)
{
	return (t_run(lock_suite()));
}
