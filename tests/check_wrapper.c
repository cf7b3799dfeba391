/*
 * qmpmux-qemu, the emulator libvirt runs, with the test in libvirt's
 * part: it makes and binds the domain's monitor socket, runs the
 * wrapper with libvirt's arguments and the listening socket inherited
 * as fd=N, and connects to the monitor's path, with a real qmpmuxd on
 * its control socket and the real QEMU behind.  Also: no qmpmuxd, a
 * qmpmuxd that refuses (a name taken, a name of control bytes, which
 * the wrapper's line shows escaped), one that never answers, -version,
 * the read-only listener of QMPMUX_LISTEN_DIR, and QEMU's option syntax.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

#define STATUS	"{\"execute\":\"query-status\",\"id\":1}"
#define RUNNING	"{\"return\": {\"status\": \"running\", \"singlestep\": " \
		"false, \"running\": true}, \"id\": 1}"
#define PAUSED	"{\"return\": {\"status\": \"paused\", \"singlestep\": " \
		"false, \"running\": false}, \"id\": 1}"
#define OK(id)	"{\"return\": {}, \"id\": " id "}"
#define SERVED	"the monitor is served by qmpmuxd at "

static char	*ctl;		/* the control socket's path */

/* The real QEMU's absolute path: QMPMUX_QEMU is exec'd as it is. */
static char *
qemu_path(void)
{
	const char	*bin = t_bin("QEMU"), *path = getenv("PATH");
	char		*dirs, *dir, *save = NULL, *full, *real = NULL;

	if (strchr(bin, '/') != NULL)
		return (realpath(bin, NULL));
	ck_assert_ptr_nonnull(path);
	ck_assert_ptr_nonnull(dirs = strdup(path));
	for (dir = strtok_r(dirs, ":", &save); dir != NULL && real == NULL;
	    dir = strtok_r(NULL, ":", &save)) {
		if (asprintf(&full, "%s/%s", dir, bin) == -1)
			abort();
		if (access(full, X_OK) == 0)
			real = realpath(full, NULL);
		free(full);
	}
	free(dirs);
	ck_assert_msg(real != NULL, "%s is not in PATH", bin);
	return (real);
}

/* Start qmpmuxd with no VM and its control socket; wait for it. */
static void
start_qmpmuxd(void)
{
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "-f", NULL,
			    "--control", NULL, NULL };
	char		*conf = t_path("empty.conf");
	FILE		*f;

	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	ck_assert_int_eq(fclose(f), 0);
	argv[3] = conf;
	argv[5] = ctl;
	t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
	ck_assert_int_eq(t_wait_socket(ctl, T_WAIT_MS), 0);
	free(conf);
}

/* A listening unix socket at path, inherited by what is spawned. */
static int
listen_at(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(path), sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path));
	ck_assert_int_ne(fd = socket(AF_UNIX, SOCK_STREAM, 0), -1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	return (fd);
}

/* The inode of a socket, as /proc/PID/fd shows it: socket:[INO]. */
static unsigned long
sock_ino(int fd)
{
	struct stat	 st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	return ((unsigned long)st.st_ino);
}

/* /proc/PID/cmdline as one string, its arguments joined by '|'. */
static char *
cmdline(pid_t pid)
{
	char	 path[64], buf[8192];
	FILE	*f;
	size_t	 n, i;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	ck_assert_uint_gt(n, 0);
	for (i = 0; i + 1 < n; i++)
		if (buf[i] == '\0')
			buf[i] = '|';
	buf[n - 1] = '\0';
	return (strdup(buf));
}

/* Whether pid runs the real QEMU: /proc/PID/exe. */
static void
assert_is_qemu(pid_t pid)
{
	char	 path[64], exe[PATH_MAX];
	char	*qemu = qemu_path();
	ssize_t	 n;

	snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
	ck_assert_int_gt(n = readlink(path, exe, sizeof(exe) - 1), 0);
	exe[n] = '\0';
	ck_assert_str_eq(exe, qemu);
	free(qemu);
}

/* The last arguments run_wrapper gave, as cmdline joins them. */
static char	*probe_args;

/*
 * Run the wrapper as libvirt runs the emulator: the monitor's listening
 * socket lfd inherited and named in the charmonitor chardev, the other
 * arguments libvirt's, name the VM's.  control is QMPMUX_CONTROL, and
 * listen_dir QMPMUX_LISTEN_DIR unless NULL.  The test's own copy of lfd
 * is closed, as libvirt closes its own.  The pid libvirt would see,
 * once QEMU is past its start: a probe monitor (testlib's t_probe) is
 * among the arguments the wrapper passes on, so that a client of
 * QEMU's own monitor never connects while QEMU 7.2 sets it up.
 */
static pid_t
run_wrapper(int lfd, const char *name, const char *control,
    const char *listen_dir, const char *log)
{
	const char	*argv[] = { t_bin("QMPMUXQEMU"), "-name", NULL,
			    "-machine", "none", "-nodefaults", "-display",
			    "none", "-chardev", NULL, "-mon",
			    "chardev=charmonitor,id=monitor,mode=control",
			    "-chardev", NULL, "-mon", T_PROBE_MON, NULL };
	struct t_probe	 probe;
	char		*qemu = qemu_path(), *guest, *chardev;
	pid_t		 pid;

	if (asprintf(&guest, "guest=%s,debug-threads=on", name) == -1 ||
	    asprintf(&chardev, "socket,id=charmonitor,fd=%d,server=on,"
	    "wait=off", lfd) == -1)
		abort();
	t_probe_init(&probe);
	argv[2] = guest;
	argv[9] = chardev;
	argv[13] = probe.chardev;
	free(probe_args);
	if (asprintf(&probe_args, "|-chardev|%s|-mon|%s", probe.chardev,
	    T_PROBE_MON) == -1)
		abort();
	ck_assert_int_eq(setenv("QMPMUX_QEMU", qemu, 1), 0);
	ck_assert_int_eq(setenv("QMPMUX_CONTROL", control, 1), 0);
	if (listen_dir != NULL)
		ck_assert_int_eq(setenv("QMPMUX_LISTEN_DIR", listen_dir, 1), 0);
	else
		ck_assert_int_eq(unsetenv("QMPMUX_LISTEN_DIR"), 0);
	pid = t_spawn(argv, log);
	close(lfd);
	t_probe_wait(&probe, pid);
	free(qemu);
	free(guest);
	free(chardev);
	return (pid);
}

/* A negotiated control client. */
static struct t_client *
ctl_client(void)
{
	struct t_client	*c;

	ck_assert_ptr_nonnull(c = t_client_new(ctl));
	free(t_recv(c, T_WAIT_MS));
	t_cmd_eq(c, "{\"execute\": \"qmp_capabilities\", \"id\": 0}",
	    OK("0"));
	return (c);
}

/* Wait until query-vms has needle (present) or not, within the bound. */
static char *
wait_vms(struct t_client *c, const char *needle, int present)
{
	long long	 end = t_clock_ms() + T_WAIT_MS;
	char		*m;

	for (;;) {
		ck_assert_ptr_nonnull(m = t_cmd(c, "{\"execute\": "
		    "\"query-vms\"}"));
		if ((strstr(m, needle) != NULL) == present)
			return (m);
		ck_assert_msg(t_clock_ms() < end, "query-vms: %s %s in %s",
		    needle, present ? "never came" : "never went", m);
		free(m);
	}
}

/* QEMU's own greeting, not qmpmuxd's: a client negotiated on path. */
static struct t_client *
qemu_client(const char *path)
{
	struct t_client	*c;
	char		*m;

	ck_assert_msg((c = t_client_new(path)) != NULL, "connect %s", path);
	/*
	 * Where the wrapper gave QEMU its socket unchanged, a client that
	 * connects while QEMU starts can be sent the RESUME of its start
	 * before the greeting (qmpmuxd drops it; libvirt takes events at
	 * any time, and starts QEMU with -S, which sends none).
	 */
	while ((m = t_recv(c, T_WAIT_MS)) != NULL &&
	    strncmp(m, "{\"timestamp\": ", 14) == 0)
		free(m);
	ck_assert_msg(m != NULL && strncmp(m, "{\"QMP\": {\"version\": "
	    "{\"qemu\": ", 20) == 0 && strstr(m, "qmpmuxd") == NULL,
	    "greeting on %s: %s", path, m != NULL ? m : "(nothing or EOF)");
	free(m);
	t_cmd_eq(c, "{\"execute\": \"qmp_capabilities\", \"id\": 0}",
	    OK("0"));
	return (c);
}

/* Whether a connection to path is refused: nothing listens there. */
static int
refused(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd, rv;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	ck_assert_int_ne(fd = socket(AF_UNIX, SOCK_STREAM, 0), -1);
	rv = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 &&
	    errno == ECONNREFUSED;
	close(fd);
	return (rv);
}

/* qmpmuxctl list's line of the VM name, or NULL. */
static char *
ctl_list_line(const char *name)
{
	char	*cmd, line[1024], *found = NULL;
	FILE	*p;

	if (asprintf(&cmd, "'%s' --control '%s' list", t_bin("QMPMUXCTL"),
	    ctl) == -1)
		abort();
	ck_assert_ptr_nonnull(p = popen(cmd, "r"));
	while (fgets(line, sizeof(line), p) != NULL) {
		if (strncmp(line, name, strlen(name)) == 0 &&
		    line[strlen(name)] == ' ')
			found = strdup(line);
	}
	ck_assert_int_eq(pclose(p), 0);
	free(cmd);
	return (found);
}

/*
 * The whole hand-over, as libvirt sees it: the monitor's path greets
 * with QEMU's greeting through qmpmuxd; the pid is QEMU's, which has
 * its arguments but the chardev, and not the listening socket; the VM
 * is in query-vms and qmpmuxctl list; two clients at once, each greeted
 * and negotiated; one going leaves the VM, and a new one is served;
 * QEMU killed removes the VM, its clients get EOF, and nothing listens
 * on the path any more.
 */
START_TEST(test_hand_over)
{
	struct t_client	*c, *a, *b, *d;
	unsigned long	 ino;
	char		*mon = t_path("dom1.monitor"), *m, *want, *line;
	char		*qemu = qemu_path();
	int		 lfd, fd, status;

	ctl = t_path("control.sock");
	start_qmpmuxd();
	c = ctl_client();
	lfd = listen_at(mon);
	ino = sock_ino(lfd);
	t_qemu_pid = run_wrapper(lfd, "dom1", ctl, NULL, "wrapper.log");

	a = qemu_client(mon);
	t_cmd_eq(a, STATUS, RUNNING);
	assert_is_qemu(t_qemu_pid);
	ck_assert_msg(!t_proc_holds(t_qemu_pid, ino), "QEMU holds the "
	    "monitor's listening socket");
	ck_assert(t_proc_holds(t_proxy_pid, ino));
	m = cmdline(t_qemu_pid);
	ck_assert_int_eq(sscanf(m, "%*[^|]|-name|guest=dom1,debug-threads=on|"
	    "-machine|none|-nodefaults|-display|none|-chardev|socket,"
	    "id=charmonitor,fd=%d,server=off|", &fd), 1);
	if (asprintf(&want, "%s|-name|guest=dom1,debug-threads=on|-machine|"
	    "none|-nodefaults|-display|none|-chardev|socket,id=charmonitor,"
	    "fd=%d,server=off|-mon|chardev=charmonitor,id=monitor,"
	    "mode=control%s", qemu, fd, probe_args) == -1)
		abort();
	ck_assert_str_eq(m, want);
	free(m);
	free(want);
	free(qemu);
	ck_assert_int_eq(t_wait_log("wrapper.log", "qmpmux-qemu: vm dom1: "
	    SERVED, T_WAIT_MS), 0);

	m = wait_vms(c, "\"clients\":1", 1);
	ck_assert_ptr_nonnull(strstr(m, "\"name\":\"dom1\""));
	ck_assert_ptr_nonnull(strstr(m, "\"mode\":\"fd\""));
	free(m);
	/* libvirtd's listener is the manager's */
	m = t_cmd(c, "{\"execute\": \"query-vm\", \"arguments\": "
	    "{\"name\": \"dom1\"}}");
	ck_assert_msg(m != NULL && strstr(m, "\"priority\":\"manager\"") !=
	    NULL, "query-vm dom1: %s", m);
	free(m);
	ck_assert_ptr_nonnull(line = ctl_list_line("dom1"));
	ck_assert_msg(strstr(line, " ready ") != NULL &&
	    strstr(line, "fd:(fd)") != NULL, "qmpmuxctl list: %s", line);
	free(line);

	/* a second connection at the same time: its own greeting */
	b = qemu_client(mon);
	t_cmd_eq(b, STATUS, RUNNING);
	t_cmd_eq(a, STATUS, RUNNING);
	free(wait_vms(c, "\"clients\":2", 1));

	/* libvirt's connection going is not QEMU going */
	t_client_free(a);
	free(wait_vms(c, "\"clients\":1", 1));
	t_cmd_eq(b, STATUS, RUNNING);
	d = qemu_client(mon);
	t_cmd_eq(d, STATUS, RUNNING);

	/* QEMU going is the VM going */
	kill(t_qemu_pid, SIGKILL);
	ck_assert_int_eq(waitpid(t_qemu_pid, &status, 0), t_qemu_pid);
	t_qemu_pid = 0;
	ck_assert(t_eof(b, T_WAIT_MS));
	ck_assert(t_eof(d, T_WAIT_MS));
	free(wait_vms(c, "dom1", 0));
	ck_assert(refused(mon));
	ck_assert_ptr_null(ctl_list_line("dom1"));
	t_client_free(b);
	t_client_free(d);
	t_client_free(c);
	free(mon);
}
END_TEST

/*
 * With no qmpmuxd, QEMU runs unchanged: it holds the monitor's socket
 * and greets on it itself, one client at a time, and the reason is in
 * the domain's log.
 */
START_TEST(test_no_qmpmuxd)
{
	struct t_client	*a, *b;
	unsigned long	 ino;
	char		*mon = t_path("dom1.monitor"), *m, *want;
	int		 lfd, n;

	ctl = t_path("control.sock");
	lfd = listen_at(mon);
	ino = sock_ino(lfd);
	t_qemu_pid = run_wrapper(lfd, "dom1", ctl, NULL, "wrapper.log");
	if (asprintf(&want, "%s|-name|guest=dom1,debug-threads=on|-machine|"
	    "none|-nodefaults|-display|none|-chardev|socket,id=charmonitor,"
	    "fd=%d,server=on,wait=off|-mon|chardev=charmonitor,id=monitor,"
	    "mode=control%s", (m = qemu_path()), lfd, probe_args) == -1)
		abort();
	free(m);

	a = qemu_client(mon);
	t_cmd_eq(a, STATUS, RUNNING);
	assert_is_qemu(t_qemu_pid);
	ck_assert(t_proc_holds(t_qemu_pid, ino));
	m = cmdline(t_qemu_pid);
	ck_assert_str_eq(m, want);
	free(m);
	free(want);
	n = t_log_count("wrapper.log", "qmpmux-qemu: vm dom1: QEMU keeps its "
	    "own monitor: qmpmuxd cannot be reached at ");
	ck_assert_int_eq(n, 1);

	/* QEMU's own monitor serves one client at a time */
	ck_assert_ptr_nonnull(b = t_client_new(mon));
	ck_assert_int_eq(t_quiet(b, 500), T_SILENT);
	t_client_free(a);
	t_recv_greeting(b);
	t_client_free(b);
	free(mon);
}
END_TEST

/*
 * A qmpmuxd that refuses the VM (its name is taken) leaves QEMU its own
 * monitor, and keeps none of the fds it was passed.
 */
START_TEST(test_refused)
{
	struct t_client	*c, *a, *b;
	char		*mon1 = t_path("one.monitor"), *mon2 = t_path("two."
			    "monitor"), *m;
	pid_t		 second;
	int		 lfd, before;

	ctl = t_path("control.sock");
	start_qmpmuxd();
	c = ctl_client();
	t_qemu_pid = run_wrapper(listen_at(mon1), "dom1", ctl, NULL,
	    "one.log");
	a = qemu_client(mon1);
	free(wait_vms(c, "\"clients\":1", 1));
	before = t_proc_fds(t_proxy_pid, NULL);

	lfd = listen_at(mon2);
	second = run_wrapper(lfd, "dom1", ctl, NULL, "two.log");
	b = qemu_client(mon2);
	t_cmd_eq(b, STATUS, RUNNING);
	assert_is_qemu(second);
	ck_assert_int_eq(t_log_count("two.log", "qmpmux-qemu: vm dom1: QEMU "
	    "keeps its own monitor: qmpmuxd refused add-vm: qmpmux: a VM "
	    "named dom1 already runs"), 1);
	t_wait_fds(t_proxy_pid, before);
	m = wait_vms(c, "\"clients\":1", 1);
	ck_assert_ptr_null(strstr(m, mon2));
	free(m);
	t_cmd_eq(a, STATUS, RUNNING);

	t_client_free(b);
	t_stop(second, SIGKILL);
	t_client_free(a);
	t_client_free(c);
	free(mon1);
	free(mon2);
}
END_TEST

/*
 * A VM named with control bytes (libvirt's -name guest=) is refused by
 * qmpmuxd, and QEMU keeps its monitor; the line that says so, which
 * quotes the name twice, is one line with the name escaped.
 */
START_TEST(test_refused_name)
{
	struct t_client	*b;
	char		*mon = t_path("evil.monitor");

	ctl = t_path("control.sock");
	start_qmpmuxd();
	t_qemu_pid = run_wrapper(listen_at(mon), "dom\x1b]0;PWNED\x07", ctl,
	    NULL, "wrapper.log");
	b = qemu_client(mon);
	t_cmd_eq(b, STATUS, RUNNING);
	ck_assert_int_eq(t_log_count("wrapper.log", "qmpmux-qemu: vm "
	    "dom\\x1b]0;PWNED\\x07: QEMU keeps its own monitor: qmpmuxd "
	    "refused add-vm: qmpmux: name = dom\\x1b]0;PWNED\\x07: expected "
	    "at most 64 printable bytes, "), 1);
	ck_assert_int_eq(t_log_count("wrapper.log", "\x1b"), 0);
	ck_assert_int_eq(t_log_count("wrapper.log", "\x07"), 0);
	t_client_free(b);
	free(mon);
}
END_TEST

/*
 * A control socket that never answers (it listens, and nobody accepts)
 * holds the start for 5 s and no longer; then QEMU runs unchanged.
 */
START_TEST(test_hung_qmpmuxd)
{
	struct t_client	*a;
	char		*mon = t_path("dom1.monitor");
	long long	 start, took;
	int		 hung;

	ctl = t_path("control.sock");
	hung = listen_at(ctl);
	start = t_clock_ms();
	t_qemu_pid = run_wrapper(listen_at(mon), "dom1", ctl, NULL,
	    "wrapper.log");
	a = qemu_client(mon);
	took = t_clock_ms() - start;
	ck_assert_msg(took >= 5000 && took < 8000 * t_slow(), "QEMU greeted "
	    "after %lld ms", took);
	t_cmd_eq(a, STATUS, RUNNING);
	ck_assert_int_eq(t_log_count("wrapper.log", "qmpmux-qemu: vm dom1: "
	    "QEMU keeps its own monitor: qmpmuxd did not answer within 5000 "
	    "ms"), 1);
	t_client_free(a);
	close(hung);
	free(mon);
}
END_TEST

/* -version has no monitor: QEMU's output, byte for byte, and status 0. */
START_TEST(test_version)
{
	const char	*wargv[] = { t_bin("QMPMUXQEMU"), "-version", NULL };
	const char	*qargv[] = { NULL, "-version", NULL };
	char		*qemu = qemu_path(), *wlog = t_path("wrapper.log"),
			*qlog = t_path("qemu.log"), wbuf[4096], qbuf[4096];
	size_t		 wn, qn;
	FILE		*f;

	ctl = t_path("control.sock");
	start_qmpmuxd();
	ck_assert_int_eq(setenv("QMPMUX_QEMU", qemu, 1), 0);
	ck_assert_int_eq(setenv("QMPMUX_CONTROL", ctl, 1), 0);
	qargv[0] = qemu;
	ck_assert(t_exited(t_wait_exit(t_spawn(wargv, "wrapper.log"),
	    T_WAIT_MS), 0));
	ck_assert(t_exited(t_wait_exit(t_spawn(qargv, "qemu.log"),
	    T_WAIT_MS), 0));
	ck_assert_ptr_nonnull(f = fopen(wlog, "r"));
	wn = fread(wbuf, 1, sizeof(wbuf), f);
	fclose(f);
	ck_assert_ptr_nonnull(f = fopen(qlog, "r"));
	qn = fread(qbuf, 1, sizeof(qbuf), f);
	fclose(f);
	ck_assert_uint_gt(qn, 0);
	ck_assert_uint_eq(wn, qn);
	ck_assert(memcmp(wbuf, qbuf, qn) == 0);
	free(qemu);
	free(wlog);
	free(qlog);
}
END_TEST

/*
 * QMPMUX_LISTEN_DIR: a read-only listener at DIR/NAME.sock next to
 * libvirt's, refusing stop with QEMU's error where libvirt's stops.
 */
START_TEST(test_listen_dir)
{
	struct t_client	*a, *r;
	char		*mon = t_path("dom1.monitor"), *ro = t_path("dom1.sock");

	ctl = t_path("control.sock");
	start_qmpmuxd();
	t_qemu_pid = run_wrapper(listen_at(mon), "dom1", ctl, t_dir(),
	    "wrapper.log");
	a = qemu_client(mon);
	r = qemu_client(ro);
	t_cmd_eq(r, STATUS, RUNNING);
	t_cmd_eq(r, "{\"execute\": \"stop\", \"id\": 2}", "{\"id\": 2, "
	    "\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The "
	    "command stop has been disabled for this instance\"}}");
	t_cmd_eq(r, STATUS, RUNNING);
	t_cmd_eq(a, "{\"execute\": \"stop\", \"id\": 3}", OK("3"));
	t_cmd_eq(r, STATUS, PAUSED);

	/* qmpmuxd made it, and removes it with the VM */
	kill(t_qemu_pid, SIGKILL);
	ck_assert(t_eof(r, T_WAIT_MS));
	ck_assert(t_eof(a, T_WAIT_MS));
	waitpid(t_qemu_pid, NULL, 0);
	t_qemu_pid = 0;
	t_client_free(a);
	t_client_free(r);
	free(mon);
	free(ro);
}
END_TEST

/*
 * QEMU's syntax: --chardev and --name as -chardev and -name, the name
 * implied without guest= and ",," a comma in it, the backend given by
 * its key, and the last -name's guest winning.
 */
START_TEST(test_syntax)
{
	const char	*argv[] = { t_bin("QMPMUXQEMU"), "-name", "guest=first",
			    "--name", "a,,b,debug-threads=on", "-machine",
			    "none", "-nodefaults", "-display", "none",
			    "--chardev", NULL, "--mon",
			    "chardev=charmonitor,id=monitor,mode=control",
			    NULL };
	struct t_client	*c, *a;
	char		*mon = t_path("dom1.monitor"), *qemu = qemu_path();
	char		*chardev, *m;
	int		 lfd;

	ctl = t_path("control.sock");
	start_qmpmuxd();
	c = ctl_client();
	lfd = listen_at(mon);
	/* QEMU takes a chardev's first id and ignores the others */
	if (asprintf(&chardev, "backend=socket,server=on,fd=%d,"
	    "id=charmonitor,wait=off,id=ignored", lfd) == -1)
		abort();
	argv[11] = chardev;
	ck_assert_int_eq(setenv("QMPMUX_QEMU", qemu, 1), 0);
	ck_assert_int_eq(setenv("QMPMUX_CONTROL", ctl, 1), 0);
	t_qemu_pid = t_spawn(argv, "wrapper.log");
	close(lfd);
	a = qemu_client(mon);
	t_cmd_eq(a, STATUS, RUNNING);
	m = wait_vms(c, "\"clients\":1", 1);
	ck_assert_msg(strstr(m, "\"name\":\"a,b\"") != NULL, "%s", m);
	free(m);
	t_client_free(a);
	t_client_free(c);
	free(chardev);
	free(qemu);
	free(mon);
}
END_TEST

static Suite *
wrapper_suite(void)
{
	Suite	*s = suite_create("wrapper");
	TCase	*tc = t_tcase(s, "wrapper", 60);

	tcase_add_test(tc, test_hand_over);
	tcase_add_test(tc, test_no_qmpmuxd);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_refused_name);
	tcase_add_test(tc, test_hung_qmpmuxd);
	tcase_add_test(tc, test_version);
	tcase_add_test(tc, test_listen_dir);
	tcase_add_test(tc, test_syntax);
	return (s);
}

int
main(void)
{
	return (t_run(wrapper_suite()));
}
