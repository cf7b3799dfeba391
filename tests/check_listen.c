/*
 * The proxy's sockets: paths, readiness, stale sockets.  A socket path
 * that does not fit in a unix socket address is refused where it is
 * given, never cut short; a stale socket is replaced and a live one is
 * not, without blocking on a listener that does not accept.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
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
 * The longest path a unix socket can have, 107 bytes, works for both
 * sockets: the real QEMU listens on a 107-byte path, qmpmuxd connects
 * to it and listens on another 107-byte path, and a client reaches QEMU
 * through it.
 */
START_TEST(test_path_107_works)
{
	char	*up = path_of_length('u', SUN_PATH_MAX);
	char	*lp = path_of_length('l', SUN_PATH_MAX);
	char	*r;
	struct t_client	*c;

	qemu_pid = t_qemu(up);
	proxy_pid = spawn_qmpmuxd("qmpmuxd.log", up, lp, "0600");
	ck_assert_msg(t_wait_socket(lp, T_WAIT_MS) == 0,
	    "no listener at a 107-byte path; see %s/qmpmuxd.log", t_dir());
	ck_assert_ptr_nonnull(c = t_client_ready(lp));
	r = t_cmd(c, "{\"execute\": \"query-status\", \"id\": 7}");
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(strstr(r, "\"status\": \"") != NULL &&
	    strstr(r, "\"id\": 7") != NULL, "got %s", r);
	free(r);
	t_client_free(c);
	free(up);
	free(lp);
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
	struct stat	 before, after;

	proxy_pid = spawn_qmpmuxd("qmpmuxd.log", none, psock, "0600");
	ck_assert_int_eq(t_wait_socket(psock, T_WAIT_MS), 0);
	ck_assert_int_eq(lstat(psock, &before), 0);

	other_pid = spawn_qmpmuxd("other.log", none, psock, "0600");
	assert_exit_1(other_pid, "a second qmpmuxd");
	other_pid = -1;
	ck_assert_msg(t_log_count("other.log", "another process is listening "
	    "on it") == 1, "no message in %s/other.log", t_dir());
	ck_assert_int_eq(lstat(psock, &after), 0);
	ck_assert(before.st_ino == after.st_ino);
	ck_assert_int_eq(connect_once(psock), 0);
	ck_assert_int_eq(count_others("proxy.sock"), 0);
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
	struct stat		 before, after;
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
	ck_assert_int_eq(lstat(psock, &before), 0);

	proxy_pid = spawn_qmpmuxd("qmpmuxd.log", none, psock, "0600");
	assert_exit_1(proxy_pid, "a full backlog");
	proxy_pid = -1;
	ck_assert_msg(t_log_count("qmpmuxd.log", "another process is "
	    "listening on it") == 1, "no message in %s/qmpmuxd.log", t_dir());
	ck_assert_int_eq(lstat(psock, &after), 0);
	ck_assert(before.st_ino == after.st_ino);
	ck_assert_int_eq(count_others("proxy.sock"), 0);
	for (i = 0; i < n; i++)
		close(fds[i]);
	close(lfd);
}
END_TEST

static Suite *
listen_suite(void)
{
	Suite	*s = suite_create("listen");
	TCase	*tc = tcase_create("listen");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_path_107_works);
	tcase_add_loop_test(tc, test_path_108_refused, 0, 2);
	tcase_add_test(tc, test_stale_replaced);
	tcase_add_test(tc, test_live_refused);
	tcase_add_test(tc, test_full_backlog_live);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (t_run(listen_suite()));
}
