/*
 * The upstream modes other than connect, with the real QEMU.
 *
 * listen: qmpmuxd listens at a path and QEMU dials in, with
 * -chardev socket,path=PATH,reconnect=1; either side restarts and the
 * other finds it again, and nobody else can take QEMU's place while it
 * is connected.  fd: a socket already connected to QEMU is handed to
 * the server (here by the test, in a forked child that links the
 * library, since no control socket hands one over yet); when QEMU goes
 * the VM goes with it, and the fd is closed exactly once.  And a
 * reload that moves a VM from connect to listen, and to a new path.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "qmpmux.h"
#include "testlib.h"

#define RUNNING	"{\"return\": {\"status\": \"running\", \"singlestep\": " \
		"false, \"running\": true}, \"id\": 1}"
#define PAUSED	"{\"return\": {\"status\": \"paused\", \"singlestep\": " \
		"false, \"running\": false}, \"id\": 1}"
#define STATUS	"{\"execute\":\"query-status\",\"id\":1}"

/* A command that times out, sent (query-status=0.3), and one behind it. */
#define PROBE	"{\"execute\":\"query-status\",\"id\":\"probe\"}\n" \
		"{\"execute\":\"query-name\",\"id\":\"lost\"}\n"
#define PROBED	"{\"id\": \"probe\", \"error\": {\"class\": " \
		"\"GenericError\", \"desc\": \"qmpmux: QEMU did not reply " \
		"to query-status within 0.3s; it was sent and may still " \
		"complete\"}}"
#define LOST	"{\"id\": \"lost\", \"error\": {\"class\": " \
		"\"GenericError\", \"desc\": \"qmpmux: connection to QEMU " \
		"lost\"}}"

static char	*upsock, *confpath;

/*
 * close(2), watched: the child of test_fd_closed_once counts the closes
 * of the upstream's fd number.  After the first, /dev/null takes the
 * number at once, so nothing else can be given it: any later close of
 * that number is the same fd closed twice.  Everywhere else this is
 * close(2).  Defined in the test program, it is the close the library
 * and libevent call.
 */
static int	 watch_fd = -1;
static int	 watch_closes;

int
close(int fd)
{
	int	 rv, saved, null;

	rv = (int)syscall(SYS_close, fd);
	saved = errno;
	if (watch_fd != -1 && fd == watch_fd && ++watch_closes == 1 &&
	    (null = open("/dev/null", O_RDONLY | O_CLOEXEC)) != -1 &&
	    null != fd) {
		dup2(null, fd);
		syscall(SYS_close, null);
	}
	errno = saved;
	return (rv);
}

static void
setup(void)
{
	t_setup();
	upsock = t_path("up.sock");
	confpath = t_path("qmpmuxd.conf");
}

static void
teardown(void)
{
	t_teardown();
	free(upsock);
	free(confpath);
}

/*
 * Write the config file: vm t with upstream, its listener at t_psock,
 * and the per-command timeout the probe needs.  Paths are relative, the
 * file's directory's: inih cuts a section header past 49 bytes, and
 * the listener's path is in one.  The listener has a key because
 * conf.c builds no listener from a [listener] section that has none.
 * Written aside and renamed, so a reload never reads half.
 */
static void
write_conf(const char *upstream)
{
	char	*tmp = t_path("qmpmuxd.conf.new");
	FILE	*f;

	ck_assert_ptr_nonnull(f = fopen(tmp, "w"));
	fprintf(f, "[vm t]\nupstream = %s\ntimeout.query-status = 0.3\n\n"
	    "[listener t proxy.sock]\nmode = 0600\n", upstream);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, confpath), 0);
	free(tmp);
}

/*
 * Start qmpmuxd -d -f FILE with its log in DIR/log, and wait for its
 * documented "started" line: every socket it makes, the listener and an
 * upstream socket, is ready by then.
 */
static pid_t
start_proxy(const char *log)
{
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "-f", confpath,
			    NULL };
	char		*path = t_path(log);
	pid_t		 pid;

	/* the log exists before qmpmuxd does, for t_wait_log to watch */
	fclose(fopen(path, "a"));
	free(path);
	pid = t_spawn(argv, log);
	ck_assert_msg(t_wait_log(log, "qmpmuxd " PACKAGE_VERSION " started",
	    T_WAIT_MS) == 0, "qmpmuxd did not start; see %s/%s", t_dir(), log);
	return (pid);
}

/* Whether pid still runs (it has not exited, nor been reaped). */
static int
running(pid_t pid)
{
	return (t_wait_exit(pid, 0) == -1 && kill(pid, 0) == 0);
}

/* Whether nothing is at path. */
static int
gone(const char *path)
{
	struct stat	 st;

	return (lstat(path, &st) == -1 && errno == ENOENT);
}

/*
 * QEMU stops, with client a's two commands sent (the probe's timeout
 * shows the proxy read both), and is killed: a gets the lost path, its
 * queued command's error and then EOF, and is freed.
 */
static void
qemu_killed_under(struct t_client *a)
{
	ck_assert_int_eq(kill(t_qemu_pid, SIGSTOP), 0);
	t_send(a, PROBE);
	t_recv_eq(a, PROBED);
	t_stop(t_qemu_pid, SIGKILL);
	t_qemu_pid = 0;
	t_recv_eq(a, LOST);
	ck_assert(t_eof(a, T_WAIT_MS));
	t_client_free(a);
}

/*
 * Listen mode: qmpmuxd first, its upstream socket a 0600 unix socket; a
 * client that connects before QEMU waits for the greeting; QEMU dials
 * in and both that client and a new one are served.
 */
START_TEST(test_listen)
{
	struct t_client	*early, *b;
	struct stat	 st;

	write_conf("listen:up.sock");
	t_proxy_pid = start_proxy("qmpmuxd.log");
	ck_assert_int_eq(lstat(upsock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0600);

	/* no QEMU yet: the client is held, without a greeting */
	ck_assert_ptr_nonnull(early = t_client_new(t_psock));
	ck_assert_int_eq(t_quiet(early, 300), T_SILENT);

	t_qemu_pid = t_qemu_dial(upsock);
	t_recv_greeting(early);
	t_cmd_eq(early, "{\"execute\":\"qmp_capabilities\"}",
	    "{\"return\": {}}");
	t_cmd_eq(early, STATUS, RUNNING);
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_cmd_eq(b, STATUS, RUNNING);
	t_client_free(early);
	t_client_free(b);
}
END_TEST

/*
 * QEMU restarts: the client of the old one has the connection-lost
 * path (its command behind one QEMU never answered gets the error, then
 * EOF), the upstream socket stays, and a new QEMU dialling the same
 * path is served.
 */
START_TEST(test_listen_qemu_restart)
{
	struct t_client	*a, *b;

	write_conf("listen:up.sock");
	t_proxy_pid = start_proxy("qmpmuxd.log");
	t_qemu_pid = t_qemu_dial(upsock);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));

	qemu_killed_under(a);

	ck_assert(t_is_socket(upsock));
	t_qemu_pid = t_qemu_dial(upsock);
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_cmd_eq(b, STATUS, RUNNING);
	t_client_free(b);
}
END_TEST

/*
 * qmpmuxd restarts: its sockets go when it stops, and the same QEMU,
 * never restarted, dials the new one in (reconnect=1).  The QEMU that
 * answers is the one that was stopped before: paused, where a new one
 * would run.
 */
START_TEST(test_listen_proxy_restart)
{
	struct t_client	*a, *b;
	pid_t		 qemu;
	int		 status;

	write_conf("listen:up.sock");
	t_proxy_pid = start_proxy("qmpmuxd.log");
	/* the one QEMU of the test: none other is started */
	qemu = t_qemu_pid = t_qemu_dial(upsock);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	t_cmd_eq(a, "{\"execute\":\"stop\",\"id\":1}",
	    "{\"return\": {}, \"id\": 1}");
	t_cmd_eq(a, STATUS, PAUSED);

	status = t_stop(t_proxy_pid, SIGTERM);
	t_proxy_pid = 0;
	ck_assert_msg(t_exited(status, 0), "qmpmuxd: status %d", status);
	ck_assert(t_eof(a, T_WAIT_MS));
	t_client_free(a);
	ck_assert_msg(gone(upsock), "%s left behind", upsock);
	ck_assert_msg(gone(t_psock), "%s left behind", t_psock);
	ck_assert(running(qemu));

	t_proxy_pid = start_proxy("qmpmuxd2.log");
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_cmd_eq(b, STATUS, PAUSED);
	ck_assert(running(qemu));
	t_client_free(b);
}
END_TEST

/*
 * While QEMU is connected, a second connection to the upstream socket
 * is closed without a word, even one that greets as QEMU does; QEMU's
 * clients go on as before and new ones still get QEMU's greeting.
 */
START_TEST(test_listen_surplus)
{
	struct t_client	*a, *x, *c;
	char		*m;

	write_conf("listen:up.sock");
	t_proxy_pid = start_proxy("qmpmuxd.log");
	t_qemu_pid = t_qemu_dial(upsock);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	t_cmd_eq(a, STATUS, RUNNING);

	ck_assert_ptr_nonnull(x = t_client_new(upsock));
	t_send(x, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, "
	    "\"minor\": 0, \"major\": 1}, \"package\": \"\"}, "
	    "\"capabilities\": []}}\r\n");
	ck_assert_int_eq(t_quiet(x, T_WAIT_MS), T_EOF);
	t_client_free(x);

	ck_assert_int_eq(t_quiet(a, 200), T_SILENT);
	t_cmd_eq(a, STATUS, RUNNING);
	ck_assert_ptr_nonnull(c = t_client_new(t_psock));
	m = t_recv(c, T_WAIT_MS);
	ck_assert_msg(m != NULL && strstr(m, "\"major\": 7") != NULL,
	    "not QEMU's greeting: %s", m != NULL ? m : "(nothing)");
	free(m);
	t_client_free(c);
	t_client_free(a);
}
END_TEST

/*
 * The upstream socket is made as the listeners are: a stale socket at
 * its path is replaced; a live one is not taken over, and a second
 * qmpmuxd that would exits 1, the first serving on.
 */
START_TEST(test_listen_stale_live)
{
	struct sockaddr_un	 sun;
	struct t_client		*a;
	const char		*argv[] = { t_bin("QMPMUXD"), "-d", "-f",
				    NULL, NULL };
	char			*other, *psock2, *want;
	FILE			*f;
	pid_t			 pid;
	int			 fd, status;

	/* bound, never listening, closed: what a SIGKILL leaves */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, upsock, sizeof(sun.sun_path) - 1);
	ck_assert_int_ne(fd = socket(AF_UNIX, SOCK_STREAM, 0), -1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);

	write_conf("listen:up.sock");
	t_proxy_pid = start_proxy("qmpmuxd.log");
	if (asprintf(&want, "removed stale socket %s", upsock) == -1)
		abort();
	ck_assert_int_eq(t_log_count("qmpmuxd.log", want), 1);
	free(want);
	t_qemu_pid = t_qemu_dial(upsock);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));

	other = t_path("other.conf");
	psock2 = t_path("proxy2.sock");
	ck_assert_ptr_nonnull(f = fopen(other, "w"));
	fprintf(f, "[vm t]\nupstream = listen:up.sock\n\n"
	    "[listener t proxy2.sock]\nmode = 0600\n");
	ck_assert_int_eq(fclose(f), 0);
	argv[3] = other;
	pid = t_spawn(argv, "other.log");
	status = t_wait_exit(pid, T_WAIT_MS);
	ck_assert_msg(t_exited(status, 1), "a second qmpmuxd on a live "
	    "upstream socket: status %d", status);
	ck_assert(gone(psock2));
	ck_assert(t_is_socket(upsock));
	t_cmd_eq(a, STATUS, RUNNING);
	t_client_free(a);
	free(other);
	free(psock2);
}
END_TEST

/*
 * A reload moves the VM from connect to listen: the client of the old
 * upstream has the connection-lost path, the upstream socket appears,
 * and a QEMU dialling it is served.  Then to another listen path: the
 * old socket goes before the new one appears, and a QEMU dialling the
 * new one is served.
 */
START_TEST(test_reload_connect_to_listen)
{
	struct t_client	*a, *b, *c;
	char		*up2 = t_path("up2.sock");
	pid_t		 q2, q3;

	t_qemu_pid = t_qemu(t_qsock);
	write_conf("connect:qemu.sock");
	t_proxy_pid = start_proxy("qmpmuxd.log");
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	/* the QEMU of connect mode is the paused one */
	t_cmd_eq(a, "{\"execute\":\"stop\",\"id\":1}",
	    "{\"return\": {}, \"id\": 1}");
	ck_assert(gone(upsock));

	write_conf("listen:up.sock");
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert_int_eq(t_wait_socket(upsock, T_WAIT_MS), 0);
	ck_assert(t_eof(a, T_WAIT_MS));
	t_client_free(a);
	q2 = t_qemu_dial(upsock);
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_cmd_eq(b, STATUS, RUNNING);

	write_conf("listen:up2.sock");
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert_int_eq(t_wait_socket(up2, T_WAIT_MS), 0);
	ck_assert_msg(gone(upsock), "%s left behind", upsock);
	ck_assert(t_eof(b, T_WAIT_MS));
	t_client_free(b);
	q3 = t_qemu_dial(up2);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	t_cmd_eq(c, STATUS, RUNNING);
	t_client_free(c);
	t_stop(q2, SIGKILL);
	t_stop(q3, SIGKILL);
	free(up2);
}
END_TEST

/*
 * Add a VM of fd mode on fd, with a listener at path: what the control
 * socket will do.  host_add's result.
 */
static int
fd_add(struct server *s, const char *name, int fd, const char *path)
{
	struct vm_conf		*vc;
	struct listener_conf	*lc;
	char			 err[CONF_ERR_MAX];
	int			 rv;

	ck_assert_ptr_nonnull(vc = malloc(sizeof(*vc)));
	conf_vm_init(vc);
	ck_assert_ptr_nonnull(vc->name = strdup(name));
	vc->upstream_mode = UPSTREAM_FD;
	vc->upstream_fd = fd;
	ck_assert_msg(conf_set_vm(vc, "timeout.query-status", "0.3", err,
	    sizeof(err)) == 0, "%s", err);
	lc = conf_listener_new(path);
	TAILQ_INSERT_TAIL(&vc->listeners, lc, entry);
	/* what the conf holds is taken over; the struct stays the caller's */
	rv = host_add(s, vc);
	free(vc);
	return (rv);
}

/* The child's server, for its callbacks. */
static struct event_base	*fd_base;
static int			 fd_status = -1;

/* Every VM is freed (host_vm_stopped): tell the test how the fd is. */
static void
fd_removed_cb(void *arg)
{
	char	 c = watch_closes == 1 ? 'R' : 'N';

	log_info("test: vm removed; its fd closed %d times", watch_closes);
	if (write(fd_status, &c, 1) != 1)
		abort();
}

/* SIGTERM: the test is done with the child. */
static void
fd_term_cb(int sig, short events, void *arg)
{
	event_base_loopexit(fd_base, NULL);
}

/*
 * The child of test_fd_closed_once: a server, as the control socket
 * will make one, with one VM of fd mode on upfd; it says on status when
 * the VM has been removed and freed, runs until SIGTERM, frees it all,
 * and exits 0 if upfd was closed exactly once.  exit, not _exit: the
 * leak check runs at exit.  Its log is given: t_path would make the
 * child a directory of its own.
 */
static void __attribute__((noreturn))
fd_child(int upfd, int status, const char *log)
{
	struct conf_entries	 none;
	struct server		*s;
	struct event		*term;
	int			 fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0644)) == -1 || dup2(fd, 2) == -1)
		exit(2);
	syscall(SYS_close, fd);
	log_init(1, 0);
	signal(SIGPIPE, SIG_IGN);
	fd_status = status;
	if ((fd_base = event_base_new()) == NULL ||
	    (term = evsignal_new(fd_base, SIGTERM, fd_term_cb, NULL)) ==
	    NULL || evsignal_add(term, NULL) == -1)
		exit(2);
	TAILQ_INIT(&none);
	s = server_new(fd_base, NULL, &none);
	/* the hook the server calls once its last VM is freed */
	s->shutdown_done = fd_removed_cb;
	watch_fd = upfd;
	if (fd_add(s, "fd", upfd, t_psock) == -1)
		exit(3);
	event_base_dispatch(fd_base);
	server_free(s);
	event_free(term);
	event_base_free(fd_base);
	log_info("test: exiting; the fd was closed %d times", watch_closes);
	exit(watch_closes == 1 ? 0 : 4);
}

/*
 * fd mode: a socketpair, one end QEMU's monitor (-chardev
 * socket,fd=N,server=off: QEMU 7.2 takes a connected socket so), the
 * other handed to a server in a child.  A client is served; when QEMU
 * is killed, its command behind one QEMU never answered gets the
 * connection-lost error, then EOF; the VM is removed (its listener's
 * socket goes) and freed; the child then holds two sockets fewer, the
 * listener's and QEMU's, and closed the fd exactly once.
 */
START_TEST(test_fd_closed_once)
{
	const char	*argv[] = { t_bin("QEMU"), "-M", "none", "-nodefaults",
			    "-display", "none", "-chardev", NULL, "-mon",
			    "chardev=m,mode=control", NULL };
	struct t_client	*a;
	struct pollfd	 pfd;
	struct stat	 st;
	char		*chardev, *log = t_path("server.log"), c = 0;
	pid_t		 child;
	int		 sv[2], sp[2], before, status;

	/* sv[0] is QEMU's, inherited; the rest is closed at its exec */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFD, FD_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(sp, O_CLOEXEC), 0);
	ck_assert_int_eq(fstat(sv[1], &st), 0);
	if (asprintf(&chardev, "socket,id=m,fd=%d,server=off", sv[0]) == -1)
		abort();
	argv[7] = chardev;
	t_qemu_pid = t_spawn(argv, "qemu.log");
	free(chardev);

	fflush(NULL);
	if ((child = fork()) == -1)
		abort();
	if (child == 0) {
		close(sv[0]);
		close(sp[0]);
		fd_child(sv[1], sp[1], log);
	}
	/* QEMU's end is QEMU's alone, or its death would show no EOF */
	close(sv[0]);
	close(sv[1]);
	close(sp[1]);

	ck_assert_int_eq(t_wait_socket(t_psock, T_WAIT_MS), 0);
	ck_assert(t_proc_holds(child, st.st_ino));
	before = t_proc_fds(child, "socket:");
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	t_cmd_eq(a, STATUS, RUNNING);

	qemu_killed_under(a);

	pfd.fd = sp[0];
	pfd.events = POLLIN;
	ck_assert_msg(poll(&pfd, 1, T_WAIT_MS) == 1 && read(sp[0], &c, 1) == 1,
	    "the VM was not removed; see %s/server.log", t_dir());
	ck_assert_msg(c == 'R', "the fd was not closed once by the time the "
	    "VM was freed; see %s/server.log", t_dir());
	close(sp[0]);
	ck_assert(gone(t_psock));
	ck_assert(!t_proc_holds(child, st.st_ino));
	ck_assert_int_eq(t_proc_fds(child, "socket:"), before - 2);

	ck_assert_int_eq(kill(child, SIGTERM), 0);
	status = t_wait_exit(child, T_WAIT_MS);
	ck_assert_msg(t_exited(status, 0), "the server's child: status %d; "
	    "see %s/server.log", status, t_dir());
	free(log);
}
END_TEST

/* Watch fd, and add a VM of fd mode on it: 0 if added. */
static int
watched_add(struct server *s, const char *name, int fd, const char *path)
{
	watch_fd = fd;
	watch_closes = 0;
	return (fd_add(s, name, fd, path));
}

/*
 * The fd handed to host_add is the VM's whatever happens: closed
 * once when the VM cannot be added (its name taken, its listener not
 * made) and once when the server is freed with the VM running.
 */
START_TEST(test_fd_ownership)
{
	struct event_base	*base;
	struct conf_entries	 none;
	struct server		*s;
	char			*bad = t_path("nodir/x.sock");
	int			 sv[2], i, fd, kept = -1;

	log_init(1, 0);
	ck_assert_ptr_nonnull(base = event_base_new());
	TAILQ_INIT(&none);
	s = server_new(base, NULL, &none);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM |
		    SOCK_CLOEXEC, 0, sv), 0);
		close(sv[1]);
		fd = sv[0];
		switch (i) {
		case 0:
			ck_assert_int_eq(watched_add(s, "a", fd, t_psock), 0);
			ck_assert_int_eq(watch_closes, 0);
			ck_assert_int_ne(fcntl(fd, F_GETFD), -1);
			kept = fd;
			break;
		case 1:
			/* the name is a's: this fd is closed, a's kept */
			ck_assert_int_eq(watched_add(s, "a", fd, t_psock), -1);
			ck_assert_int_eq(watch_closes, 1);
			break;
		case 2:
			/* the listener cannot be made */
			ck_assert_int_eq(watched_add(s, "b", fd, bad), -1);
			ck_assert_int_eq(watch_closes, 1);
			break;
		}
		watch_fd = -1;
		/* the number holds /dev/null now: give it back */
		if (i > 0)
			close(fd);
	}
	ck_assert_ptr_nonnull(host_find(s, "a"));
	ck_assert_ptr_null(host_find(s, "b"));
	ck_assert_int_ne(fcntl(kept, F_GETFD), -1);
	/* libevent closes a freed bufferevent's fd with its finalizers */
	watch_fd = kept;
	watch_closes = 0;
	server_free(s);
	event_base_free(base);
	ck_assert_int_eq(watch_closes, 1);
	watch_fd = -1;
	close(kept);
	free(bad);
}
END_TEST

static Suite *
modes_suite(void)
{
	Suite	*s = suite_create("modes");
	TCase	*tc;

	tc = t_tcase_with(s, "listen", 60, setup, teardown);
	tcase_add_test(tc, test_listen);
	tcase_add_test(tc, test_listen_qemu_restart);
	tcase_add_test(tc, test_listen_proxy_restart);
	tcase_add_test(tc, test_listen_surplus);
	tcase_add_test(tc, test_listen_stale_live);
	tc = t_tcase_with(s, "reload", 60, setup, teardown);
	tcase_add_test(tc, test_reload_connect_to_listen);
	tc = t_tcase_with(s, "fd", 60, setup, teardown);
	tcase_add_test(tc, test_fd_closed_once);
	tcase_add_test(tc, test_fd_ownership);
	return (s);
}

int
main(void)
{
	return (t_run(modes_suite()));
}
