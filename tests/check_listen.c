/*
 * The proxy's sockets: paths, readiness, stale sockets.  A socket path
 * that does not fit in a unix socket address is refused where it is
 * given, never cut short; a listener's path appears only once it
 * listens with its mode; a stale socket is replaced and a live one is
 * not, without blocking on a listener that does not accept.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

#define SUN_PATH_MAX	107	/* sizeof(sun_path) - 1 on Linux */

static char	*rundir, *psock, *none;
static pid_t	 qemu_pid, proxy_pid, other_pid;

static void
setup(void)
{
	rundir = t_path("run");
	if (mkdir(rundir, 0755) == -1)
		abort();
	if (asprintf(&psock, "%s/proxy.sock", rundir) == -1)
		abort();
	none = t_path("none.sock");
	qemu_pid = proxy_pid = other_pid = -1;
}

static void
teardown(void)
{
	t_stop(other_pid, SIGTERM);
	t_stop(proxy_pid, SIGTERM);
	t_stop(qemu_pid, SIGTERM);
	free(rundir);
	free(psock);
	free(none);
}

/* A path in the test's directory exactly len bytes long: DIR/cccc... */
static char *
path_of_length(char c, size_t len)
{
	char	*p, *name;
	size_t	 dirlen = strlen(t_dir()) + 1;

	ck_assert_uint_gt(len, dirlen);
	if ((name = malloc(len - dirlen + 1)) == NULL)
		abort();
	memset(name, c, len - dirlen);
	name[len - dirlen] = '\0';
	p = t_path(name);
	free(name);
	ck_assert_uint_eq(strlen(p), len);
	return (p);
}

/* Start qmpmuxd -d with argv after the binary; the caller waits. */
static pid_t
spawn_qmpmuxd(const char *log, const char *upstream, const char *listen,
    const char *mode)
{
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "--upstream",
			    upstream, "--mode", mode, "--listen", listen,
			    NULL };

	return (t_spawn(argv, log));
}

/* Wait for pid to exit with status 1; the reason is in the failure. */
static void
assert_exit_1(pid_t pid, const char *what)
{
	int	 status;

	status = t_wait_exit(pid, T_WAIT_MS);
	ck_assert_msg(status != -1, "%s: qmpmuxd still runs after %d ms",
	    what, T_WAIT_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	    "%s: status %d", what, status);
}

/*
 * Wait up to T_WAIT_MS for a or b to exit, through their pidfds; the
 * other one, still running, with the exit status in *status, or -1.
 * Without pidfds (under valgrind) it looks every 10 ms.
 */
static pid_t
wait_either(pid_t a, pid_t b, int *status)
{
	struct pollfd	 pfd[2];
	long long	 end = t_clock_ms() + T_WAIT_MS;
	pid_t		 gone = -1;

	pfd[0].fd = (int)syscall(SYS_pidfd_open, a, 0);
	pfd[1].fd = (int)syscall(SYS_pidfd_open, b, 0);
	pfd[0].events = pfd[1].events = POLLIN;
	if (pfd[0].fd != -1 && pfd[1].fd != -1)
		poll(pfd, 2, T_WAIT_MS);
	for (;;) {
		if (waitpid(a, status, WNOHANG) == a)
			gone = a;
		else if (waitpid(b, status, WNOHANG) == b)
			gone = b;
		if (gone != -1 || (pfd[0].fd != -1 && pfd[1].fd != -1) ||
		    t_clock_ms() >= end)
			break;
		poll(NULL, 0, 10);
	}
	if (pfd[0].fd != -1)
		close(pfd[0].fd);
	if (pfd[1].fd != -1)
		close(pfd[1].fd);
	if (gone == -1)
		return (-1);
	return (gone == a ? b : a);
}

/* Connect to path once, without retrying; errno when it fails. */
static int
connect_once(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd, rc, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(path), sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		abort();
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	close(fd);
	return (rc == 0 ? 0 : saved);
}

/*
 * What a client sees the moment path appears, found within T_WAIT_MS by
 * a tight loop, since waking on inotify takes longer than the moments
 * between a bind and a listen.  By connect (by_stat 0): the first
 * connect not refused with ENOENT, whose errno is in *err, then the
 * mode.  By lstat (by_stat 1): the mode at the first lstat that finds
 * it, then a connect.  -1 if the path never appears.
 */
static int
when_it_appears(const char *path, int by_stat, int *err, mode_t *mode)
{
	struct stat	 st;
	long long	 end = t_clock_ms() + T_WAIT_MS;

	for (;;) {
		if (by_stat && lstat(path, &st) == 0)
			break;
		if (!by_stat && (*err = connect_once(path)) != ENOENT)
			break;
		if (t_clock_ms() > end)
			return (-1);
	}
	if (by_stat)
		*err = connect_once(path);
	else if (lstat(path, &st) == -1)
		return (-1);
	*mode = st.st_mode & 07777;
	return (0);
}

/* The names in the run directory other than keep: none may be left. */
static int
count_others(const char *keep)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir(rundir)) == NULL)
		abort();
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    (keep != NULL && strcmp(de->d_name, keep) == 0))
			continue;
		fprintf(stderr, "left in %s: %s\n", rundir, de->d_name);
		n++;
	}
	closedir(d);
	return (n);
}

/*
 * Start qmpmuxd on psock, where a live socket listens: it must exit 1
 * saying so, and leave that socket as it was and no temporary name.
 */
static void
assert_live_kept(const char *log, const char *what)
{
	struct stat	 before, after;

	ck_assert_int_eq(lstat(psock, &before), 0);
	other_pid = spawn_qmpmuxd(log, none, psock, "0600");
	assert_exit_1(other_pid, what);
	other_pid = -1;
	ck_assert_msg(t_log_count(log, "another process is listening on it")
	    == 1, "%s: no message in %s/%s", what, t_dir(), log);
	ck_assert_int_eq(lstat(psock, &after), 0);
	ck_assert(before.st_ino == after.st_ino);
	ck_assert_int_eq(count_others("proxy.sock"), 0);
}

/*
 * The longest path a unix socket can have, 107 bytes, works for both
 * sockets: the real QEMU listens on a 107-byte path, and qmpmuxd
 * connects to it and listens on two more, one with a long name and one
 * in a directory so deep that no temporary name would fit beside it.
 * A client reaches QEMU through each.
 */
START_TEST(test_path_107_works)
{
	char		*up = path_of_length('u', SUN_PATH_MAX);
	char		*lp = path_of_length('l', SUN_PATH_MAX);
	char		*deep = path_of_length('d', SUN_PATH_MAX - 3), *dp;
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "--upstream", up,
			    "--listen", lp, "--listen", NULL, NULL };
	const char	*socks[2];
	struct t_client	*c;
	char		*r;
	int		 i;

	ck_assert_int_eq(mkdir(deep, 0755), 0);
	if (asprintf(&dp, "%s/sk", deep) == -1)
		abort();
	ck_assert_uint_eq(strlen(dp), SUN_PATH_MAX);
	argv[7] = socks[1] = dp;
	socks[0] = lp;
	qemu_pid = t_qemu(up);
	proxy_pid = t_spawn(argv, "qmpmuxd.log");
	for (i = 0; i < 2; i++) {
		ck_assert_msg(t_wait_socket(socks[i], T_WAIT_MS) == 0,
		    "no listener at %s; see %s/qmpmuxd.log", socks[i],
		    t_dir());
		ck_assert_ptr_nonnull(c = t_client_ready(socks[i]));
		r = t_cmd(c, "{\"execute\": \"query-status\", \"id\": 7}");
		ck_assert_ptr_nonnull(r);
		ck_assert_msg(strstr(r, "\"status\": \"") != NULL &&
		    strstr(r, "\"id\": 7") != NULL, "got %s", r);
		free(r);
		t_client_free(c);
	}
	free(up);
	free(lp);
	free(deep);
	free(dp);
}
END_TEST

/*
 * One byte more, 108, cannot be a unix socket's path: it is refused at
 * start-up with status 1 and a message naming the option, the path and
 * the limit, for --listen (_i 0) and for --upstream (_i 1).  Cut to 107
 * bytes it would name another socket, so nothing may appear there.
 */
START_TEST(test_path_108_refused)
{
	const char	*opt = _i == 0 ? "--listen" : "--upstream";
	char		*lp, *up, *cut, want[512];
	struct stat	 st;

	lp = _i == 0 ? path_of_length('l', SUN_PATH_MAX + 1) : strdup(psock);
	up = _i == 1 ? path_of_length('u', SUN_PATH_MAX + 1) : strdup(none);
	proxy_pid = spawn_qmpmuxd("qmpmuxd.log", up, lp, "0600");
	assert_exit_1(proxy_pid, opt);
	proxy_pid = -1;
	snprintf(want, sizeof(want), "qmpmuxd: %s %s: the path is %d bytes "
	    "long, and a unix socket path can be at most %d bytes", opt,
	    _i == 0 ? lp : up, SUN_PATH_MAX + 1, SUN_PATH_MAX);
	ck_assert_msg(t_log_count("qmpmuxd.log", want) == 1,
	    "no \"%s\" in %s/qmpmuxd.log", want, t_dir());
	cut = strndup(_i == 0 ? lp : up, SUN_PATH_MAX);
	ck_assert_int_eq(lstat(cut, &st), -1);
	ck_assert_int_eq(lstat(lp, &st), -1);
	free(cut);
	free(lp);
	free(up);
}
END_TEST

/*
 * A client that connects the instant the listener's path appears, as a
 * supervisor waiting for the socket does, is accepted every time, and
 * the socket already has its configured mode: over twenty starts.
 */
START_TEST(test_ready_when_it_appears)
{
	mode_t	 mode;
	int	 i, err, bad = 0;

	for (i = 0; i < 20; i++) {
		proxy_pid = spawn_qmpmuxd("qmpmuxd.log", none, psock, "0660");
		ck_assert_msg(when_it_appears(psock, i % 2, &err, &mode) == 0,
		    "start %d: no listener; see %s/qmpmuxd.log", i, t_dir());
		if (err != 0 || mode != 0660) {
			fprintf(stderr, "start %d (by %s): connect: %s, mode "
			    "%04o\n", i, i % 2 ? "lstat" : "connect",
			    err != 0 ? strerror(err) : "ok",
			    (unsigned int)mode);
			bad++;
		}
		ck_assert_int_eq(t_stop(proxy_pid, SIGTERM), 0);
		proxy_pid = -1;
		ck_assert_int_eq(count_others(NULL), 0);
	}
	ck_assert_msg(bad == 0, "%d of 20 starts showed the path before it "
	    "was ready", bad);
}
END_TEST

/*
 * Two daemons started at once on one path: exactly one listens there,
 * the other exits 1 saying so, and neither leaves a temporary name
 * behind.  Ten rounds, so that both orders of the race are likely seen.
 */
START_TEST(test_two_daemons_one_path)
{
	pid_t	 winner;
	int	 i, status;

	for (i = 0; i < 10; i++) {
		proxy_pid = spawn_qmpmuxd("qmpmuxd.log", none, psock, "0600");
		other_pid = spawn_qmpmuxd("other.log", none, psock, "0600");
		winner = wait_either(proxy_pid, other_pid, &status);
		ck_assert_msg(winner != -1, "round %d: both still run", i);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
		    "round %d: the loser's status %d", i, status);
		ck_assert_msg(t_wait_exit(winner, 0) == -1,
		    "round %d: both exited", i);
		ck_assert_int_eq(t_wait_socket(psock, T_WAIT_MS), 0);
		ck_assert_int_eq(connect_once(psock), 0);
		ck_assert_int_eq(count_others("proxy.sock"), 0);
		ck_assert_int_eq(t_stop(winner, SIGTERM), 0);
		proxy_pid = other_pid = -1;
		ck_assert_int_eq(count_others(NULL), 0);
	}
}
END_TEST

/*
 * The socket a SIGKILLed qmpmuxd leaves behind is stale: nothing
 * listens on it.  The next qmpmuxd replaces it, says so, and listens.
 */
START_TEST(test_stale_replaced)
{
	struct stat	 st;
	char		*log;

	proxy_pid = spawn_qmpmuxd("qmpmuxd.log", none, psock, "0600");
	ck_assert_int_eq(t_wait_socket(psock, T_WAIT_MS), 0);
	t_stop(proxy_pid, SIGKILL);
	proxy_pid = -1;
	ck_assert_int_eq(lstat(psock, &st), 0);
	ck_assert_int_eq(connect_once(psock), ECONNREFUSED);

	/* the log exists before qmpmuxd does, for t_wait_log to watch */
	log = t_path("again.log");
	fclose(fopen(log, "a"));
	free(log);
	proxy_pid = spawn_qmpmuxd("again.log", none, psock, "0600");
	ck_assert_int_eq(t_wait_log("again.log", " started", T_WAIT_MS), 0);
	ck_assert_int_eq(t_log_count("again.log", "removed stale socket "), 1);
	ck_assert_int_eq(connect_once(psock), 0);
	ck_assert_int_eq(count_others("proxy.sock"), 0);
}
END_TEST

/*
 * A live socket, on which another qmpmuxd listens, is not taken over:
 * the second exits 1 saying why, and the first still listens there.
 */
START_TEST(test_live_refused)
{
	proxy_pid = spawn_qmpmuxd("qmpmuxd.log", none, psock, "0600");
	ck_assert_int_eq(t_wait_socket(psock, T_WAIT_MS), 0);
	assert_live_kept("other.log", "a second qmpmuxd");
	ck_assert_int_eq(connect_once(psock), 0);
}
END_TEST

/*
 * A listener that never accepts, its backlog full, is still live: a
 * connect to it would wait for an accept that never comes, and the
 * probe must not.  qmpmuxd exits 1 at once, and the socket stays.
 */
START_TEST(test_full_backlog_live)
{
	struct sockaddr_un	 sun;
	int			 lfd, fds[64], n, i;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, psock, strlen(psock));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(lfd, -1);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	/* fill the backlog: the connect that would wait is refused */
	for (n = 0; n < 64; n++) {
		fds[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (connect(fds[n], (struct sockaddr *)&sun,
		    sizeof(sun)) == -1) {
			ck_assert_int_eq(errno, EAGAIN);
			close(fds[n]);
			break;
		}
	}
	ck_assert_int_lt(n, 64);
	assert_live_kept("qmpmuxd.log", "a full backlog");
	for (i = 0; i < n; i++)
		close(fds[i]);
	close(lfd);
}
END_TEST

static Suite *
listen_suite(void)
{
	Suite	*s = suite_create("listen");
	TCase	*tc = t_tcase_with(s, "listen", 60, setup, teardown);

	tcase_add_test(tc, test_path_107_works);
	tcase_add_loop_test(tc, test_path_108_refused, 0, 2);
	tcase_add_test(tc, test_ready_when_it_appears);
	tcase_add_test(tc, test_two_daemons_one_path);
	tcase_add_test(tc, test_stale_replaced);
	tcase_add_test(tc, test_live_refused);
	tcase_add_test(tc, test_full_backlog_live);
	return (s);
}

int
main(void)
{
	return (t_run(listen_suite()));
}
