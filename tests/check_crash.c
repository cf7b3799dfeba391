/*
 * A crash loses no connection (src/fdstore.c).  The test plays systemd:
 * a file descriptor store of its own on a notify socket that speaks the
 * documented protocol (datagrams "FDSTORE=1\nFDNAME=..." carrying an fd
 * by SCM_RIGHTS, "FDSTOREREMOVE=1\nFDNAME=..."), and, after kill -9, a
 * new qmpmuxd given the fds from 3 with LISTEN_FDS, LISTEN_FDNAMES and
 * LISTEN_PID.  Real QEMUs: two VMs of the file and one added by the
 * control socket, two ready clients and one not negotiated on each, a
 * stop in flight to a SIGSTOPped QEMU when the crash comes.  The store
 * stalled with its socket full, or with room for one datagram, when a
 * client's change of state is sent: a crash there loses no client.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "qmpmux.h"
#include "store.h"
#include "testlib.h"

#define NVMS		3
#define NCLIENTS	3
/*
 * The fake store (tests/store.c), read by a thread all the time, as
 * systemd reads its notify socket: a unix datagram socket queues only a
 * few datagrams (net.unix.max_dgram_qlen) and then the sender waits.
 */
static struct store	 store;
static pthread_t	 store_thread;
static pthread_mutex_t	 store_lock = PTHREAD_MUTEX_INITIALIZER;
static int		 store_stop;

static void	*store_loop(void *);

static pid_t		 qemus[NVMS];
static struct t_client	*clients[NVMS][NCLIENTS];
static char		*ctl, *conf;
static const char	*bin;		/* NULL: $QMPMUXD */

/* What the store must hold: every socket of start()'s, and clients. */
struct store_want {
	size_t		 clients;	/* c. */
	size_t		 ready;		/* c. in state r; -1: any */
	int		 live;		/* each fd a socket qmpmuxd holds */
	int		 whole;		/* and every socket it holds */
	int		 any_spools;	/* not each client's spool stored */
};

static void
store_start(void)
{
	char	*path = t_path("notify.sock");

	ck_assert_int_eq(store_open(&store, path), 0);
	free(path);
	__atomic_store_n(&store_stop, 0, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(pthread_create(&store_thread, NULL, store_loop,
	    NULL), 0);
}

static void
store_end(void)
{
	__atomic_store_n(&store_stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(store_thread, NULL);
	store_close(&store);
}

static void *
store_loop(void *arg)
{
	struct pollfd	 pfd;

	pfd.fd = store.sock;
	pfd.events = POLLIN;
	while (!__atomic_load_n(&store_stop, __ATOMIC_SEQ_CST)) {
		if (poll(&pfd, 1, 20) < 1)
			continue;
		pthread_mutex_lock(&store_lock);
		store_take(&store);
		pthread_mutex_unlock(&store_lock);
	}
	return (NULL);
}

/* What has been sent so far is in the store: take what is queued. */
static void
store_drain(void)
{
	pthread_mutex_lock(&store_lock);
	ck_assert_int_eq(store_take(&store), 0);
	pthread_mutex_unlock(&store_lock);
}

/*
 * Whether the store holds what w says, and why not in why: the control
 * socket, 3 listeners, 3 upstreams, 3 records and w's clients, each
 * name once, none waiting (a greeting can reach its client before its
 * rename to capabilities is sent: client_put); with w->live, each
 * socket is one qmpmuxd holds, and with w->whole those are all the
 * sockets it holds but its notify socket.
 */
static int
store_is(const struct store_want *w, char *why, size_t len)
{
	struct stat	 st;
	size_t		 i, ready = 0, waiting = 0, sockets = 0;
	int		 spool;

	for (i = 0; i < store.n; i++) {
		if (strncmp(store.name[i], "c.", 2) == 0 &&
		    strstr(store.name[i], ".r.") != NULL)
			ready++;
		if (strncmp(store.name[i], "c.", 2) == 0 &&
		    strstr(store.name[i], ".w.") != NULL)
			waiting++;
		if (!w->live || strncmp(store.name[i], "v.", 2) == 0 ||
		    strncmp(store.name[i], "i.", 2) == 0)
			continue;
		/* a client's spool: its memfd and its pipe's two ends */
		spool = strchr("qrw", store.name[i][0]) != NULL &&
		    store.name[i][1] == '.';
		if (!spool)
			sockets++;
		if (fstat(store.fd[i], &st) == -1 || (spool ?
		    !t_proc_holds_file(t_proxy_pid, &st) :
		    !t_proc_holds(t_proxy_pid, (unsigned long)st.st_ino))) {
			snprintf(why, len, "%s, %s qmpmuxd does not hold",
			    store.name[i], spool ? "a file" : "a socket");
			return (0);
		}
	}
	snprintf(why, len, "k %zu, l %zu, u %zu, v %zu, i %zu, c %zu (%zu "
	    "ready, %zu waiting), q %zu r %zu w %zu, %zu in all, %s",
	    store_count(&store, "k"),
	    store_count(&store, "l."), store_count(&store, "u."),
	    store_count(&store, "v."), store_count(&store, "i."),
	    store_count(&store, "c."), ready, waiting,
	    store_count(&store, "q."), store_count(&store, "r."),
	    store_count(&store, "w."), store.n,
	    store.dup ? "a name twice" : "no name twice");
	if (w->whole && (long)sockets + 1 != t_proc_fds(t_proxy_pid,
	    "socket:")) {
		snprintf(why + strlen(why), len - strlen(why), "; qmpmuxd "
		    "holds %d sockets", t_proc_fds(t_proxy_pid, "socket:"));
		return (0);
	}
	return (store_count(&store, "k") == 1 &&
	    store_count(&store, "l.") == 3 && store_count(&store, "u.") == 3 &&
	    store_count(&store, "v.") == 3 && store_count(&store, "i.") == 3 &&
	    store_count(&store, "c.") == w->clients &&
	    (w->any_spools || (store_count(&store, "q.") == w->clients &&
	    store_count(&store, "r.") == w->clients &&
	    store_count(&store, "w.") == w->clients)) &&
	    store.n == 1 + 3 + 3 + w->clients + 3 + 3 +
	    store_count(&store, "q.") + store_count(&store, "r.") +
	    store_count(&store, "w.") && !store.dup &&
	    waiting == 0 && (w->ready == (size_t)-1 || ready == w->ready));
}

/*
 * Wait, within the bound, until the store holds what w says.  qmpmuxd
 * does not wait for the store: what its socket does not take waits in
 * qmpmuxd, and comes after what a client saw, later.
 */
static void
store_wait(const struct store_want *w)
{
	long long	 end = t_clock_ms() + T_WAIT_MS;
	char		 why[512];
	int		 ok;

	for (;;) {
		pthread_mutex_lock(&store_lock);
		store_take(&store);
		ok = store_is(w, why, sizeof(why));
		pthread_mutex_unlock(&store_lock);
		if (ok || t_clock_ms() >= end)
			break;
		poll(NULL, 0, 1);
	}
	ck_assert_msg(ok, "the store holds %s", why);
}

/*
 * Start qmpmuxd under the fake store: from scratch, or, with the fds
 * of the store, as systemd starts a service again after a crash.
 */
static pid_t
spawn(int recover)
{
	const char	*argv[] = { bin != NULL ? bin : t_bin("QMPMUXD"), "-d",
			    "-f", conf, "--control", ctl, NULL };
	char		*log = t_path("qmpmuxd.log");
	pid_t		 pid;
	int		 fd;

	/* the store as it is, and no thread in it while the child copies it */
	pthread_mutex_lock(&store_lock);
	store_take(&store);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644)) !=
		    -1) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		store_exec(&store, argv, recover);
	}
	pthread_mutex_unlock(&store_lock);
	ck_assert_int_ne(pid, -1);
	free(log);
	return (pid);
}

/* kill -9 qmpmuxd, and wait until it is gone. */
static void
kill9(void)
{
	ck_assert_int_eq(kill(t_proxy_pid, SIGKILL), 0);
	ck_assert_int_ne(t_wait_exit(t_proxy_pid, T_WAIT_MS), -1);
}

/*
 * Start qmpmuxd again with the store's fds, as the service manager does
 * after a crash, and wait until it has taken over.
 */
static void
recover(void)
{
	int	 n = t_log_count("qmpmuxd.log", "took over");

	t_proxy_pid = spawn(1);
	/* this one's: the log has those of the take-overs before */
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "took over", n + 1,
	    T_WAIT_MS), 0);
}

/* kill -9 qmpmuxd, and start it again with the store's fds: it takes over. */
static void
crash(void)
{
	kill9();
	recover();
}

/* The file of start()'s two VMs, with more keys of [global]. */
static void
write_conf(const char *global)
{
	t_conf_vms(conf, global, NVMS - 1);
}

/* The file's [global] is global now: written, and reloaded (SIGHUP). */
static void
reconf(const char *global)
{
	write_conf(global);
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "reloaded: ", T_WAIT_MS),
	    0);
}

/* Three VMs (the third added by the control socket), and their clients. */
static void
start(void)
{
	struct t_client	*c;
	char		*q, *v, *m;
	int		 i;

	store_start();
	ctl = t_path("control.sock");
	conf = t_path("qmpmuxd.conf");
	for (i = 0; i < NVMS; i++) {
		q = t_vm_path("q", i);
		qemus[i] = t_qemu(q);
		free(q);
	}
	write_conf("");
	t_proxy_pid = spawn(0);
	ck_assert_int_eq(t_wait_socket(ctl, T_WAIT_MS), 0);
	ck_assert_ptr_nonnull(c = t_client_ready(ctl));
	q = t_vm_path("q", NVMS - 1);
	v = t_vm_path("v", NVMS - 1);
	ck_assert_int_ne(asprintf(&m, "{\"execute\": \"add-vm\", "
	    "\"arguments\": {\"name\": \"v2\", \"upstream\": \"connect:%s\", "
	    "\"listeners\": [{\"path\": \"%s\", \"read_only\": \"yes\"}], "
	    "\"command_timeout\": 20}}", q, v), -1);
	t_cmd_eq(c, m, "{\"return\": {}}");
	free(m);
	t_client_free(c);
	free(q);
	free(v);
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
	store_end();
	free(ctl);
	free(conf);
}

/* The store holds each socket of start()'s once, clients as n are left. */
static void
store_holds(size_t nclients)
{
	struct store_want	 w = { nclients, (size_t)-1, 0, 0, 0 };

	store_wait(&w);
}

/*
 * kill -9 with a stop in flight to a stopped QEMU, then the service
 * manager's restart: every connection stays, the stop's reply (sent by
 * QEMU after the crash) reaches its client with its own id, the STOP
 * event both ready clients, and everything goes on.  A clean stop then
 * leaves nothing in the store.
 */
START_TEST(test_kill9)
{
	struct t_client	*c;
	char		*v, *m, *q0 = t_vm_path("q", 0);
	long		 held;
	int		 i, j;

	start();
	for (i = 0; i < NVMS; i++)
		for (j = 0; j < NCLIENTS - 1; j++)
			t_cmd_eq(clients[i][j], "{\"execute\": \"query-status\", "
			    "\"id\": 1}", T_STATUS("1", "running", "true"));
	ck_assert_int_eq(t_sigstop(qemus[0], T_WAIT_MS), 0);
	held = t_unread(q0);
	t_send(clients[0][0], "{\"execute\": \"stop\", \"id\": {\"k\": "
	    "[\"crash\", 1]}}");
	/* in flight: in the stopped QEMU's socket */
	ck_assert_int_eq(t_wait_unread(q0, held, T_WAIT_MS), 0);

	/*
	 * The store holds every socket: the control socket, 3 listeners,
	 * 3 upstreams, 9 clients, 3 records; each name once.
	 */
	store_holds(9);

	crash();

	/* QEMU goes on: its reply of after the crash, with the caller's id */
	ck_assert_int_eq(kill(qemus[0], SIGCONT), 0);
	t_event_is(clients[0][0], "STOP");
	t_reply_is(clients[0][0], "{\"return\": {}, \"id\": {\"k\": "
	    "[\"crash\", 1]}}");
	t_event_is(clients[0][1], "STOP");
	/* every client is still connected and served, in its state */
	for (i = 0; i < NVMS; i++) {
		for (j = 0; j < NCLIENTS - 1; j++)
			t_cmd_eq(clients[i][j], "{\"execute\": \"query-status\", "
			    "\"id\": 2}", i == 0 ? T_STATUS("2", "paused",
			    "false") : T_STATUS("2", "running", "true"));
		t_cmd_eq(clients[i][NCLIENTS - 1], "{\"execute\": "
		    "\"qmp_capabilities\", \"id\": 3}", "{\"return\": {}, "
		    "\"id\": 3}");
		/* the added VM keeps its role: read-only */
		if (i == NVMS - 1)
			t_cmd_eq(clients[i][0], "{\"execute\": \"stop\", "
			    "\"id\": 4}", "{\"id\": 4, \"error\": {\"class\": "
			    "\"CommandNotFound\", \"desc\": \"The command stop "
			    "has been disabled for this instance\"}}");
		/* and the listeners take new clients */
		v = t_vm_path("v", i);
		ck_assert_ptr_nonnull(c = t_client_ready(v));
		t_cmd_eq(c, "{\"execute\": \"query-status\", \"id\": 5}",
		    i == 0 ? T_STATUS("5", "paused", "false") :
		    T_STATUS("5", "running", "true"));
		t_client_free(c);
		free(v);
	}
	t_cmd_eq(clients[0][1], "{\"execute\": \"cont\", \"id\": 6}",
	    "{\"return\": {}, \"id\": 6}");
	t_event_is(clients[0][0], "RESUME");
	/* the control socket too */
	ck_assert_ptr_nonnull(c = t_client_ready(ctl));
	m = t_cmd(c, "{\"execute\": \"query-vms\", \"id\": 7}");
	ck_assert_msg(m != NULL && strstr(m, "\"name\":\"v2\"") != NULL &&
	    strstr(m, "\"name\":\"v0\"") != NULL, "%s", m);
	free(m);
	t_client_free(c);

	/* the store again holds each socket once, and nothing gone */
	store_holds(9);
	/* a client that leaves leaves the store */
	t_client_free(clients[1][1]);
	clients[1][1] = NULL;
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "vm v1: client 2: closed",
	    T_WAIT_MS), 0);
	t_cmd_eq(clients[1][0], "{\"execute\": \"query-status\", \"id\": 8}",
	    T_STATUS("8", "running", "true"));
	store_holds(8);

	/* a clean stop takes everything out */
	ck_assert(t_exited(t_stop(t_proxy_pid, SIGTERM), 0));
	t_proxy_pid = 0;
	store_drain();
	ck_assert_msg(store.n == 0, "%zu left in the store, the first %s",
	    store.n, store.n > 0 ? store.name[0] : "");
	free(q0);
	stop_all();
}
END_TEST

/* A timeout error of a deadline, with its id, as qmpmuxd words it. */
#define DEADLINE_ERR(id) "{\"id\": " id ", \"error\": {\"class\": " \
	"\"GenericError\", \"desc\": \"qmpmux: QEMU did not reply to " \
	"query-status within 3s; it was sent and may still complete\"}}"

/*
 * Deadlines across kill -9, QEMU stopped, two commands at it: "early"
 * is answered by its deadline before the crash; "kept" is sent 2 s
 * before it, and is answered by its deadline 3 s after its arrival, not
 * 3 s after the take-over (5 s at least).  A restart in place then
 * hands both on.  When QEMU goes on, its two late replies are dropped,
 * neither given to the client as a reply of before the crash: its next
 * reply is its next command's.
 */
START_TEST(test_deadline_kept)
{
	char		*q0 = t_vm_path("q", 0), *m;
	long		 held;
	long long	 t0, t;

	start();
	reconf("command_timeout = 3\nmax_inflight = 2\n");
	ck_assert_int_eq(t_sigstop(qemus[0], T_WAIT_MS), 0);
	held = t_unread(q0);
	t_send(clients[0][0], "{\"execute\": \"query-status\", \"id\": "
	    "\"early\"}");
	ck_assert_int_eq(t_wait_unread(q0, held, T_WAIT_MS), 0);
	t_reply_is(clients[0][0], DEADLINE_ERR("\"early\""));

	held = t_unread(q0);
	t_send(clients[0][0], "{\"execute\": \"query-status\", \"id\": "
	    "\"kept\"}");
	t0 = t_clock_ms();
	ck_assert_int_eq(t_wait_unread(q0, held, T_WAIT_MS), 0);
	/* not a wait for readiness: the crash comes 2 s into the 3 */
	poll(NULL, 0, 2000);
	crash();
	m = t_recv_reply(clients[0][0], T_WAIT_MS);
	t = t_clock_ms() - t0;
	ck_assert_msg(m != NULL && strcmp(m, DEADLINE_ERR("\"kept\"")) == 0,
	    "expected the deadline's error, got %s", m != NULL ? m :
	    "(nothing or EOF)");
	free(m);
	printf("deadline kept: answered %lld ms after its arrival\n", t);
	ck_assert_int_ge(t, 2500);
	ck_assert_int_lt(t, 4800);

	/* a restart in place hands them on, answered, with the rest */
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR2), 0);
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "took over", 2,
	    T_WAIT_MS), 0);
	ck_assert_int_eq(kill(qemus[0], SIGCONT), 0);
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "late reply to command ",
	    2, T_WAIT_MS), 0);
	t_cmd_eq(clients[0][0], "{\"execute\": \"query-status\", \"id\": "
	    "\"after\"}", T_STATUS("\"after\"", "running", "true"));
	free(q0);
	stop_all();
}
END_TEST

/*
 * A slot of the table of commands at QEMU is read after a crash as
 * hostile input: one whose name is not a command's is left out and
 * logged, and costs nothing else: its command's reply still reaches its
 * client (as a reply of before the crash), and every client is served.
 */
START_TEST(test_sent_bad_slot)
{
	char		*q0 = t_vm_path("q", 0);
	long		 held;
	size_t		 i;
	int		 done = 0;

	start();
	ck_assert_int_eq(t_sigstop(qemus[0], T_WAIT_MS), 0);
	held = t_unread(q0);
	t_send(clients[0][0], "{\"execute\": \"stop\", \"id\": \"s\"}");
	ck_assert_int_eq(t_wait_unread(q0, held, T_WAIT_MS), 0);
	kill9();
	/* slot 0's name, 40 bytes in (state-store.c's state_sent_slot) */
	pthread_mutex_lock(&store_lock);
	store_take(&store);
	for (i = 0; i < store.n; i++) {
		if (strncmp(store.name[i], "i.7630.", 7) == 0 &&
		    pwrite(store.fd[i], "st op!", 7, 40) == 7)
			done = 1;
	}
	pthread_mutex_unlock(&store_lock);
	ck_assert_msg(done, "no table of v0's in the store");
	recover();
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "fdstore: vm v0: a command "
	    "sent before the crash is not whole; its deadline is dropped",
	    T_WAIT_MS), 0);
	ck_assert_int_eq(kill(qemus[0], SIGCONT), 0);
	t_event_is(clients[0][0], "STOP");
	t_reply_is(clients[0][0], "{\"return\": {}, \"id\": \"s\"}");
	for (i = 0; i < NVMS; i++)
		t_cmd_eq(clients[i][1], "{\"execute\": \"query-status\", "
		    "\"id\": 2}", i == 0 ? T_STATUS("2", "paused", "false") :
		    T_STATUS("2", "running", "true"));
	free(q0);
	stop_all();
}
END_TEST

/*
 * Wait, within the bound, until VM v0's record in the store holds text:
 * what qmpmuxd sent its store may still wait in its socket.
 */
static void
store_record_has(const char *text)
{
	long long	 end = t_clock_ms() + T_WAIT_MS;
	char		 buf[65536];
	ssize_t		 n = 0;
	size_t		 i;
	int		 found = 0;

	while (!found && t_clock_ms() < end) {
		pthread_mutex_lock(&store_lock);
		store_take(&store);
		for (i = 0; i < store.n && !found; i++) {
			/* v0's name in hex */
			if (strncmp(store.name[i], "v.7630.", 7) != 0)
				continue;
			n = pread(store.fd[i], buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			found = strstr(buf, text) != NULL;
		}
		pthread_mutex_unlock(&store_lock);
		if (!found)
			poll(NULL, 0, 1);
	}
	ck_assert_msg(found, "v0's record does not hold %s: %s", text,
	    n > 0 ? buf : "(none)");
}

/*
 * The lock across kill -9: client 1 holds it (its grant rewrote the
 * record), client 2's qom-set waits.  After the take-over from the store
 * client 1 holds it still, with the same token and what was left of its
 * lease counting on; it releases, and the next grant's token is larger,
 * never one given before.  The queued write is still in client 2's
 * ring: it waits for the lock again, and is answered, once, before a
 * write client 2 sent after the crash.
 */
START_TEST(test_lock)
{
	struct t_client	*a, *b;
	struct t_lock	 l, l2;
	long long	 token;
	char		 want[64];

	start();
	a = clients[0][0];
	b = clients[0][1];
	token = t_lock_acquire(a, 15, 0);
	t_send(b, "{\"execute\": \"qom-set\", \"arguments\": {\"path\": "
	    "\"/machine\", \"property\": \"graphics\", \"value\": false}, "
	    "\"id\": \"w\"}");
	t_lock_waiting(a, "qom-set", &l);
	ck_assert(l.held && l.token == token && l.client == 1);
	snprintf(want, sizeof(want), "\"token\":%lld,", token);
	store_record_has(want);

	crash();

	t_lock_query(a, &l2);
	ck_assert_msg(l2.held && l2.token == token && l2.client == 1,
	    "token %lld of client %lld", l2.token, l2.client);
	ck_assert_msg(l2.expires < l.expires && l2.expires > 5,
	    "lease %g, then %g", l.expires, l2.expires);
	free(l.waiters);
	free(l2.waiters);
	/* the write that waited for it waits again, and another behind it */
	t_send(b, "{\"execute\": \"qom-set\", \"arguments\": {\"path\": "
	    "\"/machine\", \"property\": \"graphics\", \"value\": true}, "
	    "\"id\": \"w2\"}");
	ck_assert_int_eq(t_quiet(b, 100), T_SILENT);
	t_lock_release(a, token);
	t_reply_is(b, "{\"return\": {}, \"id\": \"w\"}");
	t_reply_is(b, "{\"return\": {}, \"id\": \"w2\"}");
	ck_assert_int_gt(t_lock_acquire(b, 5, 10), token);
	stop_all();
}
END_TEST

/*
 * A record is hostile input: v0's, changed in the store while no
 * qmpmuxd runs to give a token past the last one given.  Its lock is
 * refused alone, and logged; the VM keeps its sockets and serves, and
 * no one holds its lock.
 */
START_TEST(test_lock_bad_record)
{
	struct t_lock	 l;
	char		 buf[65536], *bad;
	ssize_t		 n = -1;
	size_t		 i;

	start();
	(void)t_lock_acquire(clients[0][0], 15, 0);
	store_record_has("\"last_token\":1,");
	kill9();
	pthread_mutex_lock(&store_lock);
	store_take(&store);
	for (i = 0; i < store.n; i++) {
		if (strncmp(store.name[i], "v.7630.", 7) != 0)
			continue;
		n = pread(store.fd[i], buf, sizeof(buf) - 1, 0);
		ck_assert_int_gt(n, 0);
		buf[n] = '\0';
		ck_assert_ptr_nonnull(bad = strstr(buf, "\"last_token\":1,"));
		bad[13] = '0';
		ck_assert_int_eq(pwrite(store.fd[i], buf, (size_t)n, 0), n);
	}
	pthread_mutex_unlock(&store_lock);
	ck_assert_int_gt(n, 0);
	recover();
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "fdstore: vm v0: its "
	    "lock cannot be taken over: the state's vms[0].lock.token is past "
	    "last_token"), 1);
	t_lock_query(clients[0][1], &l);
	ck_assert(!l.held);
	free(l.waiters);
	t_cmd_eq(clients[0][0], "{\"execute\": \"query-status\", "
	    "\"id\": 1}", T_STATUS("1", "running", "true"));
	stop_all();
}
END_TEST

/* Bytes pid has read, in all (/proc/PID/io's rchar); -1 if unknown. */
static long long
proc_rchar(pid_t pid)
{
	char		 path[64], line[128];
	long long	 n = -1;
	FILE		*f;

	snprintf(path, sizeof(path), "/proc/%ld/io", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "rchar: %lld", &n) == 1)
			break;
	}
	fclose(f);
	return (n);
}

/*
 * The crash the issue names: QEMU stopped, one command in flight (in
 * QEMU's socket), ten other clients' commands queued in qmpmuxd behind
 * it (max_inflight 1), and a client that has sent half of a command.
 * kill -9, the take-over, QEMU goes on: each of the twelve gets exactly
 * one reply, its own id, a return; the half-sent one goes on where it
 * was.  Then each of the twelve gets the STOP and RESUME of a stop and
 * cont (sent by another client), which no second reply comes before,
 * and none sees its end of stream.
 */
START_TEST(test_queued_kept)
{
	struct t_client	*more[10], *half, *all[12];
	char		*q0 = t_vm_path("q", 0), *v0 = t_vm_path("v", 0);
	char		 want[256];
	long long	 end;
	long		 held;
	size_t		 i, n = 0;

	start();
	half = clients[0][1];
	for (i = 0; i < 10; i++)
		ck_assert_ptr_nonnull(more[i] = t_client_ready(v0));
	ck_assert_int_eq(t_sigstop(qemus[0], T_WAIT_MS), 0);
	held = t_unread(q0);
	t_send(clients[0][0], "{\"execute\": \"query-status\", \"id\": "
	    "\"flight\"}");
	ck_assert_int_eq(t_wait_unread(q0, held, T_WAIT_MS), 0);
	for (i = 0; i < 10; i++)
		t_send(more[i], "{\"execute\": \"query-status\", \"id\": "
		    "\"queued-%zu\"}", i);
	ck_assert_int_eq(t_wait_vm_queued(ctl, "v0", 10, T_WAIT_MS), 0);
	t_send_raw(half, "{\"execute\": \"qu", 15);
	/* in qmpmuxd's hands: nothing of it left in the socket */
	for (end = t_clock_ms() + T_WAIT_MS; t_peer_unread(half) &&
	    t_clock_ms() < end;)
		poll(NULL, 0, 1);
	ck_assert(!t_peer_unread(half));
	/* every socket stored: what waits for the store is not this test's */
	store_holds(19);

	crash();
	t_send_raw(half, "ery-status\", \"id\": \"half\"}", 26);
	ck_assert_int_eq(kill(qemus[0], SIGCONT), 0);

	t_reply_is(clients[0][0], T_STATUS("\"flight\"", "running", "true"));
	for (i = 0; i < 10; i++) {
		snprintf(want, sizeof(want), T_STATUS("\"queued-%zu\"",
		    "running", "true"), i);
		t_reply_is(more[i], want);
	}
	t_reply_is(half, T_STATUS("\"half\"", "running", "true"));

	/* once each: the next a client gets is an event of after them */
	t_cmd_eq(clients[0][2], "{\"execute\": \"qmp_capabilities\"}",
	    "{\"return\": {}}");
	all[n++] = clients[0][0];
	all[n++] = clients[0][1];
	for (i = 0; i < 10; i++)
		all[n++] = more[i];
	/* from a thirteenth, whose own wait for its replies skips events */
	t_cmd_eq(clients[0][2], "{\"execute\": \"stop\", \"id\": \"s\"}",
	    "{\"return\": {}, \"id\": \"s\"}");
	t_cmd_eq(clients[0][2], "{\"execute\": \"cont\", \"id\": \"c\"}",
	    "{\"return\": {}, \"id\": \"c\"}");
	for (i = 0; i < n; i++) {
		t_event_is(all[i], "STOP");
		t_event_is(all[i], "RESUME");
		ck_assert_int_eq(t_quiet(all[i], 0), T_SILENT);
	}
	for (i = 0; i < 10; i++)
		t_client_free(more[i]);
	free(q0);
	free(v0);
	stop_all();
}
END_TEST

/*
 * Replies in a client's output when qmpmuxd is killed: a client asks
 * for four schemas (some 200 kB each, uncached) and reads nothing, so
 * that its socket holds part of them, one cut in the middle, and
 * qmpmuxd the rest.  After kill -9 and the take-over the client reads
 * each of the four once, whole, in order, and nothing more.
 */
START_TEST(test_output_kept)
{
	struct t_client	*c;
	char		*m, id[16];
	size_t		 i, len;

	start();
	reconf("introspection_cache = 0\n");
	c = clients[0][0];
	for (i = 0; i < 4; i++)
		t_send(c, "{\"execute\": \"query-qmp-schema\", \"id\": "
		    "\"s%zu\"}", i);
	ck_assert_int_eq(t_wait_vm_counter(ctl, "v0", "replies", 4,
	    T_WAIT_MS), 0);
	store_holds(9);

	crash();
	for (i = 0; i < 4; i++) {
		m = t_recv(c, T_WAIT_MS);
		snprintf(id, sizeof(id), "\"id\": \"s%zu\"}", i);
		ck_assert_msg(m != NULL, "reply %zu: nothing", i);
		len = strlen(m);
		ck_assert_msg(len > 100000 && strncmp(m, "{\"return\": [",
		    12) == 0 && strcmp(m + len - strlen(id), id) == 0,
		    "reply %zu: %.100s ... (%zu bytes)", i, m, len);
		free(m);
	}
	ck_assert_int_eq(t_quiet(c, 200), T_SILENT);
	t_cmd_eq(c, "{\"execute\": \"query-status\", \"id\": 2}",
	    T_STATUS("2", "running", "true"));
	stop_all();
}
END_TEST

/*
 * A message answered before an earlier one of its client is done (a
 * refusal, past a command that waits) is written over in the ring, so
 * that the take-over after a crash does not answer it again: with
 * max_queued_commands 1 and QEMU stopped, X waits and Y is refused at
 * once; after kill -9 and the take-over X is answered, and Y's refusal
 * is the only reply Y ever gets.
 */
START_TEST(test_answered_once)
{
	char		*q0 = t_vm_path("q", 0);
	struct t_client	*b;
	long		 held;

	start();
	reconf("max_queued_commands = 1\n");
	b = clients[0][1];
	ck_assert_int_eq(t_sigstop(qemus[0], T_WAIT_MS), 0);
	held = t_unread(q0);
	t_send(clients[0][0], "{\"execute\": \"query-status\", \"id\": "
	    "\"flight\"}");
	ck_assert_int_eq(t_wait_unread(q0, held, T_WAIT_MS), 0);
	t_send(b, "{\"execute\": \"query-status\", \"id\": \"x\"}"
	    "{\"execute\": \"query-status\", \"id\": \"y\"}");
	t_reply_is(b, "{\"id\": \"y\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: too many commands queued "
	    "for VM v0\"}}");
	store_holds(9);

	crash();
	ck_assert_int_eq(kill(qemus[0], SIGCONT), 0);
	t_reply_is(clients[0][0], T_STATUS("\"flight\"", "running", "true"));
	t_reply_is(b, T_STATUS("\"x\"", "running", "true"));
	ck_assert_int_eq(t_quiet(b, 200), T_SILENT);
	free(q0);
	stop_all();
}
END_TEST

/*
 * A crash loop: a client's message crashes qmpmuxd (QMPMUX_TEST_ABORT
 * names the command that aborts it), and is still in the client's ring
 * after the take-over, which it crashes too.  The take-over after that
 * drops it, and only it: its client is told, with QEMU's kind of error,
 * and it and every other client are served, none of them closed.
 */
START_TEST(test_crash_loop)
{
	const char	*poison = "{\"execute\": \"x-poison\", \"id\": 1}";
	char		 want[256];
	int		 i, j;

	ck_assert_int_eq(setenv("QMPMUX_TEST_ABORT", "x-poison", 1), 0);
	start();
	store_holds(9);
	t_send(clients[0][0], "%s", poison);
	ck_assert_int_ne(t_wait_exit(t_proxy_pid, T_WAIT_MS), -1);
	/* the first take-over reads it again, and dies of it again */
	recover();
	ck_assert_int_ne(t_wait_exit(t_proxy_pid, T_WAIT_MS), -1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm v0: client 1: "
	    "qmpmuxd died while reading or handling what it sent; it is "
	    "read again"), 1);
	t_proxy_pid = spawn(1);
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "took over", 2,
	    T_WAIT_MS), 0);
	snprintf(want, sizeof(want), "vm v0: client 1: qmpmuxd died 2 times "
	    "reading or handling what it sent: the %zu bytes from there are "
	    "dropped", strlen(poison));
	ck_assert_int_eq(t_log_count("qmpmuxd.log", want), 1);
	snprintf(want, sizeof(want), "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"qmpmux: what you sent from here crashed qmpmuxd "
	    "twice: %zu bytes were dropped\"}}", strlen(poison));
	t_reply_is(clients[0][0], want);
	for (i = 0; i < NVMS; i++)
		for (j = 0; j < NCLIENTS - 1; j++)
			t_cmd_eq(clients[i][j], "{\"execute\": \"query-status\", "
			    "\"id\": 2}", T_STATUS("2", "running", "true"));
	/*
	 * A take-over that dies at once leaves the store whole: what it
	 * was given back is not taken out to be stored again.
	 */
	store_holds(9);
	ck_assert_int_eq(unsetenv("QMPMUX_TEST_ABORT"), 0);
	stop_all();
}
END_TEST

/*
 * A crash in the middle of a message from QEMU: the fake QEMU writes a
 * 400 kB event in 512-byte pieces, one a millisecond, and qmpmuxd is
 * killed once it has read some of it.  The qmpmuxd after it reads the
 * rest from the middle: it drops up to the event's end (QEMU ends each
 * message with a newline) and reads on from the next message, where a
 * reader that took it as it came would find invalid JSON and lose the
 * upstream, with every client.  The event is what the crash lost.
 */
START_TEST(test_half_read)
{
	const char	*fargs[] = { "--split", "512", "--oversize", "400000",
			    NULL };
	char		*fsock = t_path("fake.sock"), *v = t_path("v0.sock");
	struct t_client	*c;
	long long	 before, end;
	FILE		*f;
	pid_t		 fake;

	store_start();
	ctl = t_path("control.sock");
	conf = t_path("qmpmuxd.conf");
	fake = t_fakeqemu(fsock, fargs);
	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fprintf(f, "[global]\ndump_file = %s/dump.json\n[vm v0]\n"
	    "upstream = connect:%s\n[listener v0 %s]\n", t_dir(), fsock, v);
	ck_assert_int_eq(fclose(f), 0);
	t_proxy_pid = spawn(0);
	ck_assert_int_eq(t_wait_socket(v, T_WAIT_MS), 0);
	ck_assert_ptr_nonnull(c = t_client_ready(v));
	/* the event trickles in: wait until qmpmuxd has 10 kB of it */
	before = proc_rchar(t_proxy_pid);
	ck_assert_int_ge(before, 0);
	for (end = t_clock_ms() + T_WAIT_MS; t_clock_ms() < end &&
	    proc_rchar(t_proxy_pid) < before + 10000;)
		t_quiet(c, 1);
	ck_assert_int_ge(proc_rchar(t_proxy_pid), before + 10000);
	crash();
	/* the upstream was kept, and the client is served after it */
	t_cmd_eq(c, "{\"execute\": \"query-status\", \"id\": 1}",
	    "{\"return\": {\"command\": \"query-status\", \"seq\": 1}, "
	    "\"id\": 1}");
	/* a ready upstream lost counts a reconnect */
	ck_assert_int_eq(t_vm_counter(ctl, "v0", "reconnects"), 0);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "taking over after a "
	    "crash: "), 1);
	t_client_free(c);
	ck_assert(t_exited(t_stop(t_proxy_pid, SIGTERM), 0));
	t_proxy_pid = 0;
	t_stop(fake, SIGTERM);
	store_end();
	free(fsock);
	free(v);
	free(ctl);
	free(conf);
}
END_TEST

/*
 * Traffic on every VM: each client's command answered with its own id,
 * and a stop and a cont by the first client seen as STOP and RESUME
 * events by the others (the first's own pass by with its replies);
 * round says which round, for the ids.
 */
static void
traffic(int round)
{
	char	 cmd[128], want[256];
	int	 i, j;

	for (i = 0; i < NVMS; i++) {
		for (j = 0; j < NCLIENTS; j++) {
			snprintf(cmd, sizeof(cmd), "{\"execute\": "
			    "\"query-status\", \"id\": \"r%d.%d\"}", round, j);
			snprintf(want, sizeof(want), "{\"return\": {\"status\": "
			    "\"running\", \"singlestep\": false, \"running\": "
			    "true}, \"id\": \"r%d.%d\"}", round, j);
			t_cmd_eq(clients[i][j], cmd, want);
		}
		if (i == NVMS - 1)
			continue;	/* read-only: no stop */
		t_cmd_eq(clients[i][0], "{\"execute\": \"stop\"}",
		    "{\"return\": {}}");
		t_event_is(clients[i][1], "STOP");
		t_event_is(clients[i][2], "STOP");
		t_cmd_eq(clients[i][0], "{\"execute\": \"cont\"}",
		    "{\"return\": {}}");
		t_event_is(clients[i][1], "RESUME");
		t_event_is(clients[i][2], "RESUME");
	}
	for (i = 0; i < NVMS; i++)
		for (j = 0; j < NCLIENTS; j++)
			ck_assert_int_eq(t_quiet(clients[i][j], 10), T_SILENT);
}

/* A client of kills_traffic: its next id, and whether it waits for it. */
struct kt_client {
	struct t_client	*c;
	int		 next;
	int		 waiting;
};

/*
 * The reply c waits for, if it has come: QEMU's with its id, or the
 * timeout error of a command whose reply died with qmpmuxd.  Counts in
 * *timeouts; a reply with another id, or anything else, fails.
 */
static int
kt_answered(struct kt_client *k, char *m, int *timeouts)
{
	char	 want[256], id[32];

	snprintf(want, sizeof(want), T_STATUS("%d", "running", "true"),
	    k->next);
	snprintf(id, sizeof(id), "\"id\": %d", k->next);
	if (strcmp(m, want) != 0) {
		ck_assert_msg(strncmp(m, "{\"id\": ", 7) == 0 &&
		    strncmp(m + 1, id, strlen(id)) == 0 &&
		    strstr(m, "did not reply to query-status") != NULL,
		    "waiting for %d, got %s", k->next, m);
		(*timeouts)++;
	}
	free(m);
	k->waiting = 0;
	k->next++;
	return (1);
}

/*
 * kill -9 ten times in a row under traffic: six clients of three VMs
 * each keep a query-status at QEMU, and qmpmuxd is killed and taken over
 * every 150 ms of it.  Every command gets exactly one reply, in order,
 * with its own id: QEMU's, or, for one whose reply qmpmuxd had read and
 * died with, the timeout error (command_timeout 2 here); no connection
 * closes, and nothing more comes.  How many were timeouts is printed.
 */
START_TEST(test_kills_under_traffic)
{
	struct kt_client	 k[NVMS * 2];
	long long		 end;
	char			*m;
	int			 i, n = 0, round, answered = 0, timeouts = 0;

	start();
	reconf("command_timeout = 2\n");
	for (i = 0; i < NVMS; i++) {
		k[n].c = clients[i][0];
		k[n].next = 0;
		k[n++].waiting = 0;
		k[n].c = clients[i][1];
		k[n].next = 0;
		k[n++].waiting = 0;
	}
	for (round = 0; round < 10; round++) {
		for (end = t_clock_ms() + 150; t_clock_ms() < end;) {
			for (i = 0; i < n; i++) {
				if (!k[i].waiting) {
					t_send(k[i].c, "{\"execute\": "
					    "\"query-status\", \"id\": %d}",
					    k[i].next);
					k[i].waiting = 1;
				}
				if ((m = t_recv_now(k[i].c)) != NULL)
					answered += kt_answered(&k[i], m,
					    &timeouts);
			}
		}
		store_holds(9);
		crash();
	}
	/* the last of each: QEMU's reply, or its deadline's error */
	for (i = 0; i < n; i++) {
		if (k[i].waiting) {
			ck_assert_ptr_nonnull(m = t_recv(k[i].c, T_WAIT_MS));
			answered += kt_answered(&k[i], m, &timeouts);
		}
		ck_assert_int_eq(t_quiet(k[i].c, 100), T_SILENT);
	}
	printf("kills under traffic: 10 kills, %d commands answered once "
	    "each, %d of them by their deadline\n", answered, timeouts);
	ck_assert_int_gt(answered, 10 * n);
	stop_all();
}
END_TEST

/*
 * The whole life under a service manager: a restart in place, an
 * upgrade to another binary, then kill -9; traffic and events before
 * and after each.  No client's connection closes, and the store holds
 * each socket once all along: a restart takes over what the store has
 * and leaves nothing stale in it.
 */
START_TEST(test_sequence)
{
	struct t_client	*c;
	char		*path;
	size_t		 removes;
	int		 i;

	path = t_copy_bin(t_bin("QMPMUXD"), "qmpmuxd");
	bin = path;
	start();
	/* the third client of each negotiates too: all take events */
	for (i = 0; i < NVMS; i++)
		t_cmd_eq(clients[i][NCLIENTS - 1], "{\"execute\": "
		    "\"qmp_capabilities\"}", "{\"return\": {}}");
	traffic(0);
	store_holds(9);

	pthread_mutex_lock(&store_lock);
	store_take(&store);
	removes = store.removes;
	pthread_mutex_unlock(&store_lock);
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR2), 0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "took over", T_WAIT_MS),
	    0);
	traffic(1);
	store_holds(9);
	/*
	 * What the exec kept is not stored again: only each VM's record
	 * (twice: taken over, then with the new epoch's greeting) and table,
	 * new files, are; the sockets and spools stay where they are.
	 */
	pthread_mutex_lock(&store_lock);
	store_take(&store);
	removes = store.removes - removes;
	pthread_mutex_unlock(&store_lock);
	ck_assert_msg(removes <= 3 * NVMS, "a restart in place took %zu "
	    "names out of the store to store them again", removes);

	free(t_copy_bin(t_bin("QMPMUXD_NEXT"), "qmpmuxd"));
	ck_assert_ptr_nonnull(c = t_client_ready(ctl));
	t_cmd_eq(c, "{\"execute\": \"restart\", \"id\": 1}",
	    "{\"return\": {}, \"id\": 1}");
	t_client_free(c);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", PACKAGE_VERSION "+next "
	    "took over", T_WAIT_MS), 0);
	traffic(2);
	store_holds(9);

	kill9();
	t_proxy_pid = spawn(1);
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "took over", 2,
	    T_WAIT_MS), 0);
	traffic(3);
	store_holds(9);
	/* nothing was closed but the two control clients that left */
	ck_assert_int_eq(t_log_count("qmpmuxd.log", ": closed: "), 2);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "control client 1: "
	    "closed: end of input"), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "control client 2: "
	    "closed: end of input"), 1);

	ck_assert(t_exited(t_stop(t_proxy_pid, SIGTERM), 0));
	t_proxy_pid = 0;
	store_drain();
	ck_assert_uint_eq(store.n, 0);
	bin = NULL;
	free(path);
	stop_all();
}
END_TEST

/*
 * A client's number is given again after a crash to one that never
 * asked: B sends a stop to a stopped QEMU and leaves, the crash comes,
 * C connects and gets B's number.  QEMU's reply to B's stop goes to
 * nobody: not to C, with B's id.
 */
START_TEST(test_number_reused)
{
	struct t_client	*b, *c;
	char		*v, *q0 = t_vm_path("q", 0);
	long		 held;

	start();
	v = t_vm_path("v", 0);
	ck_assert_ptr_nonnull(b = t_client_ready(v));
	ck_assert_int_eq(t_sigstop(qemus[0], T_WAIT_MS), 0);
	held = t_unread(q0);
	t_send(b, "{\"execute\": \"stop\", \"id\": \"B-secret\"}");
	ck_assert_int_eq(t_wait_unread(q0, held, T_WAIT_MS), 0);
	t_client_free(b);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "vm v0: client 4: closed",
	    T_WAIT_MS), 0);
	/* and it has left the store: the crash comes after */
	store_holds(9);
	crash();
	ck_assert_ptr_nonnull(c = t_client_ready(v));
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "vm v0: client 4: "
	    "connected", T_WAIT_MS), 0);
	ck_assert_int_eq(kill(qemus[0], SIGCONT), 0);
	t_event_is(c, "STOP");
	ck_assert_int_eq(t_quiet(c, 300), T_SILENT);
	t_cmd_eq(c, "{\"execute\": \"query-status\", \"id\": 1}",
	    T_STATUS("1", "paused", "false"));
	t_client_free(c);
	free(v);
	free(q0);
	stop_all();
}
END_TEST

/*
 * A VM removed while a client of its still has output to take, and one
 * of the same name added at once: when the old one is at last freed,
 * its names leave the fd store, not the new one's.
 */
START_TEST(test_same_name)
{
	struct t_client	*c, *slow;
	char		*v = t_vm_path("v", 2), *q = t_vm_path("q", 2), *m;
	long long	 taken;
	int		 i;

	start();
	slow = clients[2][0];
	taken = t_vm_taken(ctl, "v2");
	for (i = 0; i < 8; i++)
		t_send(slow, "{\"execute\": \"query-qmp-schema\", \"id\": "
		    "%d}", i);
	ck_assert_int_eq(t_wait_vm_sent(ctl, "v2", taken + 8, T_WAIT_MS), 0);
	/* the replies are on their way: the VM goes, with them unread */
	ck_assert_ptr_nonnull(c = t_client_ready(ctl));
	t_cmd_eq(c, "{\"execute\": \"remove-vm\", \"arguments\": "
	    "{\"name\": \"v2\"}}", "{\"return\": {}}");
	ck_assert_int_ne(asprintf(&m, "{\"execute\": \"add-vm\", "
	    "\"arguments\": {\"name\": \"v2\", \"upstream\": \"connect:%s\", "
	    "\"listeners\": [{\"path\": \"%s.new\"}]}}", q, v), -1);
	t_cmd_eq(c, m, "{\"return\": {}}");
	free(m);
	t_client_free(c);
	/* the old one is freed once the slow client is gone */
	t_client_free(slow);
	clients[2][0] = NULL;
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "vm v2: stopped",
	    T_WAIT_MS), 0);
	/*
	 * And the new one has its upstream, stored.  A client's greeting
	 * is what says so: the log line "upstream ready" comes before the
	 * record is stored again with the greeting, the greeting after.
	 */
	ck_assert_int_ne(asprintf(&m, "%s.new", v), -1);
	ck_assert_ptr_nonnull(c = t_client_ready(m));
	free(m);
	t_client_free(c);
	/* the clients of the old v2 went with it */
	store_holds(6);
	free(v);
	free(q);
	stop_all();
}
END_TEST

#define STALL_ROUNDS	30

/*
 * Clients of every VM that come, make a round trip and, but every third,
 * go, each within a bound, while the store does not read: start()'s
 * clients too, and a SIGHUP half-way.  The ones that stay are in kept;
 * how many.
 */
static int
stall_traffic(struct t_client **kept)
{
	struct t_client	*c;
	long long	 t0, took, worst = 0;
	char		*v, cmd[64], want[128];
	int		 i, n = 0;

	for (i = 0; i < STALL_ROUNDS; i++) {
		t0 = t_clock_ms();
		v = t_vm_path("v", i % NVMS);
		ck_assert_msg((c = t_client_ready(v)) != NULL, "round %d: no "
		    "client served on %s", i, v);
		free(v);
		snprintf(cmd, sizeof(cmd), "{\"execute\": \"query-status\", "
		    "\"id\": %d}", i);
		snprintf(want, sizeof(want), T_STATUS("%d", "running", "true"),
		    i);
		t_cmd_eq(c, cmd, want);
		t_cmd_eq(clients[i % NVMS][0], cmd, want);
		if (i % 3 == 0)
			kept[n++] = c;
		else
			t_client_free(c);
		if (i == STALL_ROUNDS / 2) {
			ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
			ck_assert_int_eq(t_wait_log("qmpmuxd.log", "reloaded: ",
			    T_WAIT_MS), 0);
		}
		if ((took = t_clock_ms() - t0) > worst)
			worst = took;
	}
	printf("stalled store: the slowest of %d rounds took %lld ms\n",
	    STALL_ROUNDS, worst);
	ck_assert_int_lt(worst, T_WAIT_MS / 4);
	return (n);
}

/*
 * The store stops reading, as a service manager that is busy: its
 * socket takes a few datagrams (net.unix.max_dgram_qlen) and then a
 * sendmsg would wait for it.  qmpmuxd must not: it serves every round
 * trip of stall_traffic (new clients, each stored again at each state,
 * and taken out as it goes; a reload's RELOADING=1 and READY=1), and
 * none of it reaches the store meanwhile.  Once the store reads again,
 * every datagram arrives, in order: the store holds exactly the
 * sockets qmpmuxd holds, each once, each client in its last state.  A
 * clean stop then empties it.
 */
START_TEST(test_store_stalled)
{
	struct t_client		*kept[STALL_ROUNDS];
	struct store_want	 w = { 9, 6, 1, 1, 0 };
	size_t			 held;
	int			 n;

	start();
	store_wait(&w);
	/* the store reads no more: its thread waits for the lock */
	pthread_mutex_lock(&store_lock);
	held = store.n;
	n = stall_traffic(kept);
	ck_assert_uint_eq(store.n, held);
	pthread_mutex_unlock(&store_lock);

	w.clients = 9 + (size_t)n;
	w.ready = 6 + (size_t)n;
	store_wait(&w);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "fdstore: "), 0);
	t_clients_free(kept, n);
	ck_assert(t_exited(t_stop(t_proxy_pid, SIGTERM), 0));
	t_proxy_pid = 0;
	store_drain();
	ck_assert_msg(store.n == 0, "%zu left in the store, the first %s",
	    store.n, store.n > 0 ? store.name[0] : "");
	stop_all();
}
END_TEST

/*
 * fdstore_max_pending: with the store stalled, no more than that many
 * sockets wait for it.  The others are not stored, and the log says
 * so, each, and once the store reads again, how many; qmpmuxd serves
 * on, and what the store then holds is still each socket once, each a
 * live one: those not stored are missing, nothing is stale.
 */
START_TEST(test_store_bound)
{
	struct t_client		*kept[STALL_ROUNDS];
	struct store_want	 w = { 9, 6, 1, 1, 0 };
	size_t			 stored;
	int			 n, refused;

	start();
	store_wait(&w);
	reconf("fdstore_max_pending = 2\n");
	pthread_mutex_lock(&store_lock);
	n = stall_traffic(kept);
	pthread_mutex_unlock(&store_lock);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "sockets were not stored "
	    "meanwhile (fdstore_max_pending)", T_WAIT_MS), 0);
	refused = t_log_count("qmpmuxd.log", " is not stored: 2 sockets wait "
	    "for the service manager already (fdstore_max_pending)");
	ck_assert_int_gt(refused, 0);
	/* the clients kept that are stored, ready; none else, none stale */
	pthread_mutex_lock(&store_lock);
	store_take(&store);
	stored = store_count(&store, "c.") - 9;
	pthread_mutex_unlock(&store_lock);
	printf("bound: %d log lines, %zu of %d kept clients stored\n",
	    refused, stored, n);
	ck_assert_uint_lt(stored, (size_t)n);
	w.clients = 9 + stored;
	w.ready = 6 + stored;
	w.whole = 0;
	/* a client's spool is three fds, each stored or not on its own */
	w.any_spools = 1;
	store_wait(&w);
	t_clients_free(kept, n);
	stop_all();
}
END_TEST

/*
 * With store_lock held: the store's socket full but for room datagrams,
 * as a busy service manager's, so that the next sendmsg of qmpmuxd past
 * them would wait (EAGAIN).  The store is read empty first, then fillers
 * of the test's own (a state message, which the store lets go) take the
 * rest; each from a socket of its own until a fresh one is refused, so
 * that it is the store's queue that is full (net.unix.max_dgram_qlen),
 * not a sender's buffer.  Then room fillers are taken out again.
 */
static void
store_fill(int room)
{
	static const char	 filler[] = "STATUS=filler";
	struct sockaddr_un	 sun;
	char			 buf[64];
	int			 fds[64], nfds, sent, i;

	ck_assert_int_eq(store_take(&store), 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(store.path), sizeof(sun.sun_path));
	strcpy(sun.sun_path, store.path);
	for (nfds = 0, sent = 1; sent > 0 && nfds < 64; nfds++) {
		ck_assert_int_ne(fds[nfds] = socket(AF_UNIX, SOCK_DGRAM |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, 0), -1);
		for (sent = 0; sendto(fds[nfds], filler, strlen(filler), 0,
		    (struct sockaddr *)&sun, sizeof(sun)) != -1; sent++)
			;
		ck_assert_msg(errno == EAGAIN, "a filler: %s",
		    strerror(errno));
	}
	ck_assert_msg(sent == 0, "the store's socket took every filler");
	for (i = 0; i < room; i++) {
		ck_assert_int_eq(recv(store.sock, buf, sizeof(buf), 0),
		    (ssize_t)strlen(filler));
		ck_assert(memcmp(buf, filler, strlen(filler)) == 0);
	}
	/* what they sent stays in the store's socket */
	for (i = 0; i < nfds; i++)
		close(fds[i]);
}

/*
 * With store_lock held: the states client id of VM vm is stored under
 * now, as their letters in the order w, c, r, o, into buf.
 */
static void
store_client_states(const char *vm, int id, char *buf, size_t len)
{
	static const char	 letters[] = "wcro";
	struct fdstore_part	 p;
	size_t			 i, k, n = 0;

	ck_assert_int_eq(store_take(&store), 0);
	for (k = 0; letters[k] != '\0'; k++) {
		for (i = 0; i < store.n && n + 1 < len; i++) {
			if (fdstore_parse(store.name[i], &p) == 0 &&
			    p.kind == 'c' && strcmp(p.vm, vm) == 0 &&
			    p.id == id && p.st == letters[k])
				buf[n++] = p.st;
		}
	}
	buf[n] = '\0';
}

/*
 * The same with no room at all: both datagrams of the rename wait and
 * die with the process, and the store holds the two clients that
 * negotiated under their old names, in capabilities negotiation.  Each
 * shows it had negotiated: v1's by a command other than
 * qmp_capabilities, v0's by QEMU's reply, after the crash, to its stop
 * sent to a stopped QEMU before it.  Each is then ready: served, its
 * reply given, and events.  Before, v1's command had QEMU's "Expecting
 * capabilities negotiation" and v0's reply went to nobody.
 */
START_TEST(test_rename_lost)
{
	struct store_want	 w = { 9, 6, 1, 1, 0 };
	struct t_client		*a, *b;
	char			*q0 = t_vm_path("q", 0), sa[8], sb[8];
	long			 held;

	start();
	store_wait(&w);
	a = clients[0][NCLIENTS - 1];
	b = clients[1][NCLIENTS - 1];
	pthread_mutex_lock(&store_lock);
	store_fill(0);
	t_cmd_eq(a, "{\"execute\": \"qmp_capabilities\", \"id\": 1}",
	    "{\"return\": {}, \"id\": 1}");
	t_cmd_eq(b, "{\"execute\": \"qmp_capabilities\", \"id\": 1}",
	    "{\"return\": {}, \"id\": 1}");
	/* read once the renames were sent (client_put), as a's stop */
	t_cmd_eq(b, "{\"execute\": \"query-status\", \"id\": 2}",
	    T_STATUS("2", "running", "true"));
	ck_assert_int_eq(t_sigstop(qemus[0], T_WAIT_MS), 0);
	held = t_unread(q0);
	t_send(a, "{\"execute\": \"stop\", \"id\": \"before\"}");
	ck_assert_int_eq(t_wait_unread(q0, held, T_WAIT_MS), 0);
	kill9();
	store_client_states("v0", 3, sa, sizeof(sa));
	store_client_states("v1", 3, sb, sizeof(sb));
	pthread_mutex_unlock(&store_lock);
	ck_assert_msg(strcmp(sa, "c") == 0 && strcmp(sb, "c") == 0,
	    "the clients are stored as \"%s\" and \"%s\" after the crash",
	    sa, sb);
	recover();
	t_cmd_eq(b, "{\"execute\": \"query-status\", \"id\": 3}",
	    T_STATUS("3", "running", "true"));
	ck_assert_int_eq(kill(qemus[0], SIGCONT), 0);
	t_reply_is(a, "{\"return\": {}, \"id\": \"before\"}");
	t_cmd_eq(clients[0][0], "{\"execute\": \"cont\", \"id\": 4}",
	    "{\"return\": {}, \"id\": 4}");
	t_event_is(a, "RESUME");
	t_cmd_eq(clients[1][0], "{\"execute\": \"stop\", \"id\": 5}",
	    "{\"return\": {}, \"id\": 5}");
	t_event_is(b, "STOP");
	w.ready = 8;
	store_wait(&w);
	free(q0);
	stop_all();
}
END_TEST

/*
 * One client's socket given back under three names of one number, the
 * ready one first, then copies in capabilities and waiting, as a crash
 * in the middle of each change of state would leave them: v1's first
 * client is taken over ready (it has the STOP of another's stop, where
 * a waiting one would be greeted again and one in capabilities has no
 * events), and the copies are closed: the store and qmpmuxd hold each
 * socket once.  Before, two clients of one number made the take-over
 * refuse v1, and close every socket of it.
 */
START_TEST(test_client_twice)
{
	struct store_want	 w = { 9, 6, 1, 1, 0 };
	struct fdstore_part	 p;
	const char		 states[] = "cw";
	char			 name[FDSTORE_NAME_MAX + 1];
	size_t			 i, n;
	int			 k;

	start();
	store_wait(&w);
	kill9();
	pthread_mutex_lock(&store_lock);
	ck_assert_int_eq(store_take(&store), 0);
	for (i = 0, n = store.n; i < n; i++) {
		if (fdstore_parse(store.name[i], &p) == -1 || p.kind != 'c' ||
		    strcmp(p.vm, "v1") != 0 || p.id != 1)
			continue;
		ck_assert_int_eq(p.st, 'r');
		for (k = 0; states[k] != '\0'; k++) {
			p.st = states[k];
			fdstore_name_parts(name, sizeof(name), &p);
			ck_assert_ptr_nonnull(store.name[store.n] =
			    strdup(name));
			ck_assert_int_ne(store.fd[store.n] = fcntl(store.fd[i],
			    F_DUPFD_CLOEXEC, 3), -1);
			store.n++;
		}
	}
	ck_assert_uint_eq(store.n, n + 2);
	pthread_mutex_unlock(&store_lock);
	recover();
	t_cmd_eq(clients[1][1], "{\"execute\": \"stop\", \"id\": 1}",
	    "{\"return\": {}, \"id\": 1}");
	t_event_is(clients[1][0], "STOP");
	t_cmd_eq(clients[1][0], "{\"execute\": \"query-status\", \"id\": 2}",
	    T_STATUS("2", "paused", "false"));
	store_wait(&w);
	stop_all();
}
END_TEST

static Suite *
crash_suite(void)
{
	Suite	*s = suite_create("crash");
	TCase	*tc = t_tcase(s, "crash", 60);

	tcase_add_test(tc, test_kill9);
	tcase_add_test(tc, test_deadline_kept);
	tcase_add_test(tc, test_queued_kept);
	tcase_add_test(tc, test_output_kept);
	tcase_add_test(tc, test_kills_under_traffic);
	tcase_add_test(tc, test_answered_once);
	tcase_add_test(t_tcase(s, "loop", 60), test_crash_loop);
	tcase_add_test(tc, test_sent_bad_slot);
	tcase_add_test(tc, test_lock);
	tcase_add_test(tc, test_lock_bad_record);
	tcase_add_test(tc, test_half_read);
	tcase_add_test(tc, test_sequence);
	tcase_add_test(tc, test_number_reused);
	tcase_add_test(tc, test_same_name);
	tcase_add_test(tc, test_store_stalled);
	tcase_add_test(tc, test_store_bound);
	tcase_add_test(tc, test_rename_lost);
	tcase_add_test(tc, test_client_twice);
	return (s);
}

int
main(void)
{
	return (t_run(crash_suite()));
}
