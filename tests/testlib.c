/* Test helpers; see testlib.h. */
#include "config.h"

#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "qmp.h"
#include "qmpmux.h"
#include "testlib.h"

struct t_client {
	int			 fd;
	int			 eof;
	int			 bad;		/* unparseable input came */
	size_t			 nread;		/* read, in all */
	struct evbuffer		*in;
	struct qmp_reader	*reader;
};

/*
 * The files of the tests.  t_run makes a directory for the run, t_base;
 * each test process (Check forks one per test) makes its own in it, the
 * first time it asks for t_dir, and removes it when that process exits
 * normally: a test that fails exits with _exit (or is killed, or aborts),
 * so its directory stays.  Once every test has run, t_run removes the
 * run's directory if all passed, and otherwise keeps it, with the
 * directories of the failed tests in it, and says where it is.  A
 * program that does not use t_run (the benchmark) gets a directory of
 * its own in /tmp, removed when it exits normally.
 */
static char	 t_base[64];
static char	 t_dirbuf[96];
static pid_t	 t_dir_owner;
static int	 t_keep;		/* a test failed: remove nothing */

/* The common fixture; see t_setup. */
char		*t_qsock, *t_fsock, *t_psock;
pid_t		 t_qemu_pid, t_fake_pid, t_proxy_pid;

/* Milliseconds of the monotonic clock, for waits and timed bounds. */
long long
t_clock_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Remove one entry of a tree, from the bottom up. */
static int
t_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (remove(path) == -1 && errno != ENOENT)
		fprintf(stderr, "testlib: remove %s: %s\n", path,
		    strerror(errno));
	return (0);
}

/*
 * A failed test's logs, the last lines of each, into the test's output:
 * CI keeps that output, not the directory, and a failure that does not
 * come back on demand must be explained by what it left.
 */
#define T_SHOW_LINES	40
#define T_SHOW_FILES	16

static int	 t_shown;

static int
t_show_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char	*lines[T_SHOW_LINES], *line = NULL;
	size_t	 cap = 0, len = strlen(path), n = 0, i;
	FILE	*f;

	if (flag != FTW_F || len < 4 || strcmp(path + len - 4, ".log") != 0)
		return (0);
	if (t_shown++ == T_SHOW_FILES) {
		fprintf(stderr, "testlib: more logs in %s\n", t_base);
		return (1);
	}
	if ((f = fopen(path, "r")) == NULL)
		return (0);
	memset(lines, 0, sizeof(lines));
	while (getline(&line, &cap, f) != -1) {
		free(lines[n % T_SHOW_LINES]);
		lines[n++ % T_SHOW_LINES] = line;
		line = NULL;
		cap = 0;
	}
	free(line);
	fclose(f);
	fprintf(stderr, "---- %s (%zu lines%s) ----\n", path, n,
	    n > T_SHOW_LINES ? ", the last ones" : "");
	for (i = n > T_SHOW_LINES ? n - T_SHOW_LINES : 0; i < n; i++) {
		line = lines[i % T_SHOW_LINES];
		fprintf(stderr, "%s%s", line,
		    line[strlen(line) - 1] == '\n' ? "" : "\n");
		free(line);
	}
	return (0);
}

/* Remove a directory and everything in it. */
static void
t_rm_tree(const char *dir)
{
	nftw(dir, t_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* At a normal exit of the process that made it: remove its directory. */
static void
t_dir_atexit(void)
{
	if (t_dir_owner == getpid() && !t_keep)
		t_rm_tree(t_dirbuf);
}

/* The private directory of this process (each Check test forks). */
const char *
t_dir(void)
{
	if (t_dir_owner != getpid()) {
		if (t_base[0] != '\0')
			snprintf(t_dirbuf, sizeof(t_dirbuf), "%s/t.XXXXXX",
			    t_base);
		else
			snprintf(t_dirbuf, sizeof(t_dirbuf),
			    "/tmp/qmpmux-t.XXXXXX");
		if (mkdtemp(t_dirbuf) == NULL) {
			perror("mkdtemp");
			abort();
		}
		/* the handler is inherited by forks; it checks the owner */
		if (t_dir_owner == 0)
			atexit(t_dir_atexit);
		t_dir_owner = getpid();
	}
	return (t_dirbuf);
}

/* A path in the private directory; the caller frees it. */
char *
t_path(const char *name)
{
	char	*p;

	if (asprintf(&p, "%s/%s", t_dir(), name) == -1)
		abort();
	return (p);
}

/* QMPMUX_TEST_SLOW, the factor of the waits' bounds; 1 by default. */
int
t_slow(void)
{
	static int	 slow;
	const char	*v;

	if (slow == 0) {
		v = getenv("QMPMUX_TEST_SLOW");
		slow = v != NULL ? atoi(v) : 1;
		if (slow < 1)
			slow = 1;
	}
	return (slow);
}

/*
 * Whether a qmpmuxd's RSS is its own: not under make check-valgrind,
 * where memcheck's shadow memory and its own heap are in it.  A bound
 * on RSS holds in make check, under ASan; memcheck checks the accesses.
 */
int
t_rss_is_qmpmuxd(void)
{
	return (getenv("QMPMUX_VALGRIND_LOGS") == NULL);
}

/* The binary named by an environment variable, e.g. QMPMUXD. */
const char *
t_bin(const char *var)
{
	const char	*v = getenv(var);

	if (v == NULL || *v == '\0') {
		fprintf(stderr, "testlib: %s is not set (run under make check)\n",
		    var);
		abort();
	}
	return (v);
}

/*
 * Start a program with its standard output in DIR/out and its standard
 * error in DIR/err (the same file when they are the same).  It is
 * killed if the test process dies, so a failed test leaves nothing
 * running.
 */
/* What t_spawn_split adds; exec takes char *, not string literals. */
static char	 t_opt_control[] = "--control", t_opt_none[] = "none";

/*
 * Whether argv runs qmpmuxd without --control: then the test does not
 * use the control socket, and qmpmuxd is given --control none, since
 * its default is the host's own (/run/qmpmux/control.sock), which a
 * test must not take, nor two tests at once.
 */
static int
t_no_control(const char *const *argv)
{
	const char	*bin = getenv("QMPMUXD");
	size_t		 i;

	if (bin == NULL || strcmp(argv[0], bin) != 0)
		return (0);
	for (i = 1; argv[i] != NULL; i++) {
		if (strncmp(argv[i], "--control", 9) == 0)
			return (0);
	}
	return (1);
}

pid_t
t_spawn_split(const char *const *argv, const char *out, const char *err)
{
	pid_t	 pid, parent = getpid();
	char	*opath = t_path(out), *epath = t_path(err);
	int	 fd;

	if ((pid = fork()) == -1)
		abort();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		fd = open(opath, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd != -1)
			dup2(fd, 1);
		if (strcmp(out, err) == 0)
			dup2(1, 2);
		else if ((fd = open(epath, O_WRONLY | O_CREAT | O_APPEND,
		    0644)) != -1)
			dup2(fd, 2);
		if ((fd = open("/dev/null", O_RDONLY)) != -1)
			dup2(fd, 0);
		/* exec takes char *const[]; copy the pointers, not the strings */
		{
			char	*av[64];
			size_t	 n = 0;

			while (argv[n] != NULL && n < 61)
				n++;
			memcpy(av, argv, n * sizeof(av[0]));
			av[n] = NULL;
			if (t_no_control(argv)) {
				/* after argv[0]: "--control none" */
				memmove(av + 3, av + 1, n * sizeof(av[0]));
				av[1] = t_opt_control;
				av[2] = t_opt_none;
			}
			execvp(av[0], av);
		}
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	free(opath);
	free(epath);
	return (pid);
}

/* A binary copied into the test's directory, executable. */
char *
t_copy_bin(const char *from, const char *name)
{
	char	*to = t_path(name), *tmp, buf[65536];
	int	 in, out;
	ssize_t	 n;

	ck_assert_int_ne(asprintf(&tmp, "%s.new", to), -1);
	ck_assert_int_ne(in = open(from, O_RDONLY), -1);
	ck_assert_int_ne(out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0755),
	    -1);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	ck_assert_int_eq(close(out), 0);
	/* put in place as a package manager does: a new inode, renamed */
	ck_assert_int_eq(rename(tmp, to), 0);
	free(tmp);
	return (to);
}

/* The path of VM i's socket of a kind: "q" QEMU's, "v" a listener. */
char *
t_vm_path(const char *kind, int i)
{
	char	 name[32];

	snprintf(name, sizeof(name), "%s%d.sock", kind, i);
	return (t_path(name));
}

/* Start a program with its output, both streams, in DIR/log. */
pid_t
t_spawn(const char *const *argv, const char *log)
{
	return (t_spawn_split(argv, log, log));
}

/*
 * Wait up to ms for done(arg), checked again at each change inotify
 * reports on watch (for mask), so the wait ends the moment it is true.
 * 0 when it is.
 */
static int
t_wait_change(const char *watch, uint32_t mask, int (*done)(const void *),
    const void *arg, int ms)
{
	struct pollfd	 pfd;
	long long	 end = t_clock_ms() + ms;
	char		 buf[4096];
	int		 fd, left, ok;

	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd == -1 || inotify_add_watch(fd, watch, mask) == -1)
		abort();
	while (!(ok = done(arg)) && (left = (int)(end - t_clock_ms())) > 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left) > 0)
			while (read(fd, buf, sizeof(buf)) > 0)
				;
	}
	close(fd);
	return (ok ? 0 : -1);
}

/* For t_wait_change: whether the path arg is a unix socket. */
static int
t_is_socket_cb(const void *arg)
{
	return (t_is_socket(arg));
}

/*
 * Wait for a socket file to appear: inotify on the directory, so the
 * wait ends the moment it is created.
 */
int
t_wait_socket(const char *path, int ms)
{
	char	*dir, *slash;
	int	 r;

	if ((dir = strdup(path)) == NULL)
		abort();
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	r = t_wait_change(slash != NULL ? dir : ".", IN_CREATE | IN_MOVED_TO,
	    t_is_socket_cb, path, ms);
	free(dir);
	return (r);
}

/* Spawn a process that listens on sock, and wait for the socket. */
static pid_t
t_spawn_listening(const char *const *argv, const char *log, const char *sock)
{
	pid_t	 pid = t_spawn(argv, log);

	if (t_wait_socket(sock, T_WAIT_MS) == -1) {
		fprintf(stderr, "%s: socket %s did not appear; see %s/%s\n",
		    argv[0], sock, t_dir(), log);
		abort();
	}
	return (pid);
}

/*
 * A probe monitor for a QEMU about to start, to tell when it is past
 * its start.  QEMU 7.2 sets a monitor up in its monitor thread, and can
 * take a connection in its main thread meanwhile (a race QEMU's upstream
 * has since taken up): such a connection may be sent the RESUME of
 * QEMU's start before the greeting, no greeting at all, or have its
 * input read by both threads at once, which garbles commands.  So
 * nothing may connect to a QEMU's monitor before the setup is done, and
 * what says it is done is this second monitor, on a connected
 * socketpair, set up after the first (its -chardev and -mon come after
 * the first's): QEMU opens such a chardev as it makes it, so it greets
 * as soon as the monitor thread has set the probe up, in the same batch
 * of work as the first monitor or after it; a reply to input that
 * thread reads once the batch is done says both are set up.  The input
 * is a stray "}", whose error QEMU gives without tracing a request.
 */
void
t_probe_init(struct t_probe *p)
{
	/* not close-on-exec: QEMU inherits fd[1] */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd) == -1 ||
	    fcntl(p->fd[0], F_SETFD, FD_CLOEXEC) == -1 ||
	    asprintf(&p->chardev, "socket,id=probe,fd=%d,server=off",
	    p->fd[1]) == -1)
		abort();
}

/* Once QEMU pid is spawned: wait until it is past its start. */
void
t_probe_wait(struct t_probe *p, pid_t pid)
{
	struct t_client	*probe;
	char		*m;
	long long	 end = t_clock_ms() + T_WAIT_MS;
	int		 left, step = 0;

	close(p->fd[1]);
	probe = t_client_on(p->fd[0]);
	while (step < 2 && (left = (int)(end - t_clock_ms())) > 0 &&
	    (m = t_recv(probe, left)) != NULL) {
		if (step == 0 && strncmp(m, "{\"QMP\": ", 8) == 0) {
			step = 1;
			t_send(probe, "}\n");
		} else if (step == 1 && strncmp(m, "{\"error\"", 8) == 0)
			step = 2;
		free(m);
	}
	t_client_free(probe);
	free(p->chardev);
	if (step < 2) {
		fprintf(stderr, "testlib: qemu %d did not start; see %s\n",
		    (int)pid, t_dir());
		abort();
	}
}

/* How many options t_qemu_args may add to QEMU's command line. */
#define T_QEMU_EXTRA	8

/*
 * Start a real QEMU, -M none, its QMP monitor on the chardev given (and
 * a second on chardev2, id qmp2, unless it is NULL), and return once it
 * is past its start (t_probe_wait): the probe's monitor comes after
 * both.  With trace, QEMU
 * logs to DIR/trace each QMP request it handles, as it parsed it: what
 * reached QEMU, seen by QEMU.  extra (NULL-terminated, or NULL) adds
 * options, such as objects for a test to change.
 */
static pid_t
t_qemu_spawn(const char *chardev, const char *chardev2, const char *trace,
    const char *const *extra)
{
	struct t_probe	 probe;
	const char	*argv[24 + T_QEMU_EXTRA];
	char		*path = NULL, *opt = NULL;
	pid_t		 pid;
	int		 i = 0, j;

	t_probe_init(&probe);
	argv[i++] = t_bin("QEMU");
	argv[i++] = "-M";
	argv[i++] = "none";
	argv[i++] = "-nodefaults";
	argv[i++] = "-display";
	argv[i++] = "none";
	argv[i++] = "-chardev";
	argv[i++] = chardev;
	argv[i++] = "-mon";
	argv[i++] = "chardev=qmp,mode=control";
	if (chardev2 != NULL) {
		argv[i++] = "-chardev";
		argv[i++] = chardev2;
		argv[i++] = "-mon";
		argv[i++] = "chardev=qmp2,mode=control";
	}
	argv[i++] = "-chardev";
	argv[i++] = probe.chardev;
	argv[i++] = "-mon";
	argv[i++] = T_PROBE_MON;
	if (trace != NULL) {
		path = t_path(trace);
		if (asprintf(&opt, "enable=handle_qmp_command,file=%s",
		    path) == -1)
			abort();
		argv[i++] = "-trace";
		argv[i++] = opt;
	}
	for (j = 0; extra != NULL && extra[j] != NULL; j++) {
		if (j == T_QEMU_EXTRA)
			abort();
		argv[i++] = extra[j];
	}
	argv[i] = NULL;
	pid = t_spawn(argv, "qemu.log");
	t_probe_wait(&probe, pid);
	free(path);
	free(opt);
	return (pid);
}

/*
 * Bind a unix socket for sock at a name of its own beside it (or, where
 * no other name fits, at sock itself), to be renamed to sock once what
 * may connect to it can: *tmp says where.  Listening, not close-on-exec.
 */
static int
t_bind_aside(const char *sock, char **tmp)
{
	struct sockaddr_un	 sun;
	static int		 seq;
	const char		*slash = strrchr(sock, '/');
	int			 fd;

	if (util_sun_path(&sun, sock) == -1 ||
	    asprintf(tmp, "%.*s.q%d.%d", slash != NULL ?
	    (int)(slash - sock + 1) : 0, sock, (int)getpid(), seq++) == -1)
		abort();
	if (util_sun_path(&sun, *tmp) == -1) {
		free(*tmp);
		if ((*tmp = strdup(sock)) == NULL ||
		    util_sun_path(&sun, *tmp) == -1)
			abort();
	}
	unlink(*tmp);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 16) == -1)
		abort();
	return (fd);
}

/*
 * A QEMU that listens on sock, and on sock2 with a second QMP monitor
 * unless it is NULL: each socket is made here, listening before its path
 * appears, and handed over as libvirt does (fd=N); the paths appear once
 * QEMU is past its start.
 */
static pid_t
t_qemu_trace(const char *sock, const char *sock2, const char *trace,
    const char *const *extra)
{
	char	*chardev, *chardev2 = NULL, *tmp, *tmp2 = NULL;
	pid_t	 pid;
	int	 fd, fd2 = -1;

	fd = t_bind_aside(sock, &tmp);
	if (asprintf(&chardev, "socket,id=qmp,fd=%d,server=on,wait=off",
	    fd) == -1)
		abort();
	if (sock2 != NULL) {
		fd2 = t_bind_aside(sock2, &tmp2);
		if (asprintf(&chardev2, "socket,id=qmp2,fd=%d,server=on,"
		    "wait=off", fd2) == -1)
			abort();
	}
	pid = t_qemu_spawn(chardev, chardev2, trace, extra);
	close(fd);
	if (fd2 != -1)
		close(fd2);
	if (rename(tmp, sock) == -1 ||
	    (tmp2 != NULL && rename(tmp2, sock2) == -1))
		abort();
	free(tmp);
	free(tmp2);
	free(chardev);
	free(chardev2);
	return (pid);
}

/*
 * A QEMU that dials its monitor's socket at path, and again a second
 * after it lost it (reconnect=1), as in qmpmuxd's listen mode.  Whatever
 * listens there is moved aside while QEMU starts, and put back once it
 * is past its start: QEMU's first dial fails, and the next one, a
 * second later, is made by a QEMU that is ready for it.
 */
pid_t
t_qemu_dial(const char *path)
{
	char	*chardev, *aside;
	pid_t	 pid;
	int	 moved;

	if (asprintf(&chardev, "socket,id=qmp,path=%s,reconnect=1",
	    path) == -1 || asprintf(&aside, "%s.aside", path) == -1)
		abort();
	moved = rename(path, aside) == 0;
	pid = t_qemu_spawn(chardev, NULL, NULL, NULL);
	if (moved && rename(aside, path) == -1)
		abort();
	free(aside);
	free(chardev);
	return (pid);
}

/* Start a real QEMU with its QMP socket at sock. */
pid_t
t_qemu(const char *sock)
{
	return (t_qemu_trace(sock, NULL, NULL, NULL));
}

/*
 * A real QEMU with two QMP monitors, on sock and sock2: a client of the
 * second is served beside the first's, by QEMU itself.
 */
pid_t
t_qemu_two(const char *sock, const char *sock2)
{
	return (t_qemu_trace(sock, sock2, NULL, NULL));
}

/* The same, with each QMP request QEMU handles logged to DIR/trace. */
pid_t
t_qemu_traced(const char *sock, const char *trace)
{
	return (t_qemu_trace(sock, NULL, trace, NULL));
}

/*
 * The same, traced to DIR/trace unless it is NULL, with QEMU's options
 * extra (NULL-terminated) added: objects a test reads and changes.
 */
pid_t
t_qemu_args(const char *sock, const char *trace, const char *const *extra)
{
	return (t_qemu_trace(sock, NULL, trace, extra));
}

/*
 * A differential test's two QEMUs, side by side: one its clients reach
 * directly, one behind qmpmuxd.
 */
void
t_diff_start(struct t_diff *d)
{
	d->dsock = t_path("direct.sock");
	d->qsock = t_path("qemu.sock");
	d->psock = t_path("proxy.sock");
	d->direct = t_qemu(d->dsock);
	d->qemu = t_qemu(d->qsock);
	d->proxy = t_qmpmuxd(d->qsock, d->psock, NULL);
}

/* Stop both QEMUs and qmpmuxd. */
void
t_diff_stop(struct t_diff *d)
{
	t_stop(d->proxy, SIGTERM);
	t_stop(d->qemu, SIGKILL);
	t_stop(d->direct, SIGKILL);
	free(d->dsock);
	free(d->qsock);
	free(d->psock);
}

/*
 * Whether QEMU's message q and the proxy's p match, as a differential
 * test compares them: as text, ids too, but events by name (their
 * timestamps differ).
 */
int
t_diff_same(const char *q, const char *p)
{
	yajl_val	 vq, vp;
	const char	*eq, *ep;
	int		 ok;

	if (strcmp(q, p) == 0)
		return (1);
	vq = t_json(q);
	vp = t_json(p);
	eq = t_get_str(vq, "event", NULL);
	ep = t_get_str(vp, "event", NULL);
	ok = eq != NULL && ep != NULL && strcmp(eq, ep) == 0;
	yajl_tree_free(vq);
	yajl_tree_free(vp);
	return (ok);
}

/* Print a differential test's input, control and non-ASCII bytes escaped. */
void
t_diff_print(FILE *f, const char *in, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if ((unsigned char)in[i] < 0x20 || (unsigned char)in[i] >= 0x7f)
			fprintf(f, "\\x%02x", (unsigned char)in[i]);
		else
			fputc(in[i], f);
	}
}

/*
 * Write the file of n VMs, vI with its QEMU at DIR/qI.sock (connect
 * mode) and a listener at DIR/vI.sock, after [global]'s dump_file in
 * DIR and the keys of global: the restart tests' VMs, alike so that
 * what one test learns of them holds for the other.
 */
void
t_conf_vms(const char *path, const char *global, int n)
{
	char	*q, *v;
	FILE	*f;
	int	 i;

	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "[global]\ndump_file = %s/dump.json\n%s", t_dir(), global);
	for (i = 0; i < n; i++) {
		q = t_vm_path("q", i);
		v = t_vm_path("v", i);
		fprintf(f, "[vm v%d]\nupstream = connect:%s\n"
		    "[listener v%d %s]\n", i, q, i, v);
		free(v);
		free(q);
	}
	ck_assert_int_eq(fclose(f), 0);
}

/*
 * Free n VMs' clients, nclients a row of clients, and kill their QEMUs,
 * stopped (SIGSTOP) or not.
 */
void
t_vms_stop(pid_t *qemus, struct t_client **clients, int n, int nclients)
{
	int	 i;

	for (i = 0; i < n; i++) {
		t_clients_free(clients + i * nclients, nclients);
		kill(qemus[i], SIGCONT);
		t_stop(qemus[i], SIGKILL);
	}
}

/*
 * Start qmpmuxd -d with extra options, and wait for its listener.  It
 * runs without -v: its log holds what an operator's does, so that a test
 * can only rely on the lines qmpmuxd(8) documents, never on debug detail.
 */
pid_t
t_qmpmuxd(const char *upstream, const char *listen, const char *const *extra)
{
	const char	*argv[64];
	int		 i = 0;

	argv[i++] = t_bin("QMPMUXD");
	argv[i++] = "-d";
	argv[i++] = "--name";
	argv[i++] = "test";
	argv[i++] = "--upstream";
	argv[i++] = upstream;
	while (extra != NULL && *extra != NULL && i < 60)
		argv[i++] = *extra++;
	argv[i++] = "--listen";
	argv[i++] = listen;
	argv[i] = NULL;
	return (t_spawn_listening(argv, "qmpmuxd.log", listen));
}

/* Start the fake QEMU with a script and options; wait for its socket. */
pid_t
t_fakeqemu(const char *sock, const char *const *args)
{
	const char	*argv[64];
	int		 i = 0;

	argv[i++] = t_bin("FAKEQEMU");
	argv[i++] = sock;
	while (args != NULL && *args != NULL && i < 62)
		argv[i++] = *args++;
	argv[i] = NULL;
	return (t_spawn_listening(argv, "fakeqemu.log", sock));
}

/*
 * Wait up to ms for pid to exit, through a pidfd so the wait ends when
 * it does.  Returns its wait status, or -1 if it is still running.
 * Where there is no pidfd (valgrind's syscalls have none), it looks
 * every 10 ms instead: not looking at all would call a process that
 * takes a moment to exit still running.
 */
int
t_wait_exit(pid_t pid, int ms)
{
	struct pollfd	 pfd;
	long long	 end = t_clock_ms() + ms;
	int		 status, fd;

	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd != -1) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		poll(&pfd, 1, ms);
		close(fd);
	}
	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return (status);
		if (fd != -1 || t_clock_ms() >= end)
			return (-1);
		poll(NULL, 0, 10);
	}
}

/*
 * Stop pid, a child of this process, with SIGSTOP, and wait up to ms for
 * it to have stopped: kill returns before every thread of a process has
 * stopped, and until then it can still read its input.  The stop is
 * reported to the parent (SIGCHLD, read here from a signalfd), so the
 * wait ends when it comes.  0 when pid has stopped.
 */
int
t_sigstop(pid_t pid, int ms)
{
	struct signalfd_siginfo	 si;
	struct pollfd		 pfd;
	siginfo_t		 info;
	sigset_t		 chld, old;
	long long		 end = t_clock_ms() + ms;
	int			 fd, left, r = -1;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, &old) == -1 ||
	    (fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		abort();
	if (kill(pid, SIGSTOP) == 0) {
		for (;;) {
			memset(&info, 0, sizeof(info));
			if (waitid(P_PID, (id_t)pid, &info, WSTOPPED |
			    WNOHANG) == -1)
				break;
			if (info.si_pid == pid) {
				r = 0;
				break;
			}
			if ((left = (int)(end - t_clock_ms())) <= 0)
				break;
			pfd.fd = fd;
			pfd.events = POLLIN;
			if (poll(&pfd, 1, left) > 0)
				while (read(fd, &si, sizeof(si)) > 0)
					;
		}
	}
	close(fd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return (r);
}

/* Signal pid and reap it; SIGKILL if it outlives the bound. */
int
t_stop(pid_t pid, int sig)
{
	int	 status;

	if (pid <= 0)
		return (-1);
	kill(pid, sig);
	if ((status = t_wait_exit(pid, T_WAIT_MS)) != -1)
		return (status);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return (-1);
}

/* A line of /proc/PID/status, in kB: VmRSS, or VmHWM for the peak. */
long
t_proc_kb(pid_t pid, const char *field)
{
	char	 path[64], line[256];
	FILE	*f;
	long	 kb = -1;
	size_t	 len = strlen(field);

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, field, len) == 0 && line[len] == ':')
			kb = strtol(line + len + 1, NULL, 10);
	}
	fclose(f);
	return (kb);
}

/*
 * Connect to a QMP socket, once: what testlib starts listens before its
 * path appears, so a refusal is a failure, never a race to retry.
 */
struct t_client *
t_client_new(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		abort();
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "t_client_new: connect %s: %s\n", path,
		    strerror(errno));
		close(fd);
		return (NULL);
	}
	return (t_client_on(fd));
}

/* A client on a connected socket, which it now owns. */
struct t_client *
t_client_on(int fd)
{
	struct t_client	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		abort();
	c->fd = fd;
	c->in = evbuffer_new();
	c->reader = qmp_reader_new(64 << 20, 4096, 0);
	return (c);
}

/* The next message must be a greeting. */
void
t_recv_greeting(struct t_client *c)
{
	char	*m = t_recv(c, T_WAIT_MS);

	ck_assert_msg(m != NULL && strncmp(m, "{\"QMP\": ", 8) == 0,
	    "greeting: %s", m != NULL ? m : "(nothing or EOF)");
	free(m);
}

/* Connect and take QEMU's greeting, which must come; the caller frees. */
struct t_client *
t_client_greeted(const char *path)
{
	struct t_client	*c;

	ck_assert_msg((c = t_client_new(path)) != NULL, "connect %s", path);
	t_recv_greeting(c);
	return (c);
}

/* Connect n negotiated clients, which must all succeed. */
void
t_clients_ready(struct t_client **c, int n, const char *path)
{
	int	 i;

	for (i = 0; i < n; i++)
		ck_assert_msg((c[i] = t_client_ready(path)) != NULL,
		    "client %d of %s not ready", i, path);
}

/*
 * Once the listener at path is there: n clients, all negotiated but the
 * last, which has only its greeting (a client a restart finds there).
 */
void
t_clients_row(struct t_client **c, int n, const char *path)
{
	ck_assert_int_eq(t_wait_socket(path, T_WAIT_MS), 0);
	t_clients_ready(c, n - 1, path);
	ck_assert_ptr_nonnull(c[n - 1] = t_client_greeted(path));
}

/* Free n clients, and forget them. */
void
t_clients_free(struct t_client **c, int n)
{
	int	 i;

	for (i = 0; i < n; i++) {
		t_client_free(c[i]);
		c[i] = NULL;
	}
}

/* Connect, take the greeting, negotiate with caps; NULL on a failure. */
static struct t_client *
t_client_caps(const char *path, const char *caps)
{
	struct t_client	*c;
	char		*m;

	if ((c = t_client_new(path)) == NULL)
		return (NULL);
	if ((m = t_recv(c, T_WAIT_MS)) == NULL || strstr(m, "\"QMP\"") == NULL)
		goto fail;
	free(m);
	t_send(c, "%s\n", caps);
	if ((m = t_recv(c, T_WAIT_MS)) == NULL ||
	    strcmp(m, "{\"return\": {}}") != 0)
		goto fail;
	free(m);
	return (c);
fail:
	fprintf(stderr, "t_client_caps %s: got %s\n", path,
	    m != NULL ? m : "(nothing)");
	free(m);
	t_client_free(c);
	return (NULL);
}

/*
 * Start qmpmuxd (t_proxy_pid) on the configuration file conf, with its
 * control socket in the test's directory, and wait for that socket,
 * made after the VMs' listeners: its path, the caller's to free.
 */
char *
t_qmpmuxd_conf(const char *conf)
{
	char		*ctl = t_path("control.sock");
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "-f", conf,
			    "--control", ctl, NULL };

	t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
	ck_assert_msg(t_wait_socket(ctl, T_WAIT_MS) == 0,
	    "%s did not appear; see %s/qmpmuxd.log", ctl, t_dir());
	return (ctl);
}

/* A client negotiated, on the socket name of the test's directory. */
struct t_client *
t_client_here(const char *name)
{
	struct t_client	*c;
	char		*path = t_path(name);

	ck_assert_ptr_nonnull(c = t_client_ready(path));
	free(path);
	return (c);
}

/* A client negotiated without capabilities. */
struct t_client *
t_client_ready(const char *path)
{
	return (t_client_caps(path, "{\"execute\": \"qmp_capabilities\"}"));
}

/* A client negotiated with oob. */
struct t_client *
t_client_ready_oob(const char *path)
{
	return (t_client_caps(path, "{\"execute\": \"qmp_capabilities\", "
	    "\"arguments\": {\"enable\": [\"oob\"]}}"));
}

/* Close and free a client; NULL is allowed. */
void
t_client_free(struct t_client *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	evbuffer_free(c->in);
	qmp_reader_free(c->reader);
	free(c);
}

/* The socket, for tests that need to shut it down or stop reading. */
int
t_client_fd(struct t_client *c)
{
	return (c->fd);
}

/* The bytes c has read from its socket, in all. */
size_t
t_client_nread(struct t_client *c)
{
	return (c->nread);
}

/* Write all of buf. */
void
t_send_raw(struct t_client *c, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void	t_vsend(struct t_client *, int, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

/* Write a formatted message, and a newline after it if asked. */
static void
t_vsend(struct t_client *c, int newline, const char *fmt, va_list ap)
{
	char	*s;
	int	 n;

	if ((n = vasprintf(&s, fmt, ap)) == -1)
		abort();
	t_send_raw(c, s, (size_t)n);
	if (newline)
		t_send_raw(c, "\n", 1);
	free(s);
}

/* Write a formatted message. */
void
t_send(struct t_client *c, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	t_vsend(c, 0, fmt, ap);
	va_end(ap);
}

/* Read once what c's socket has, which must not block; EOF is noted. */
static void
t_read(struct t_client *c)
{
	int	 n;

	n = evbuffer_read(c->in, c->fd, 1 << 16);
	if (n <= 0)
		c->eof = 1;
	else
		c->nread += (size_t)n;
}

/*
 * The next whole message, without its line ending, or NULL after ms or
 * at EOF.  The caller frees it.
 */
char *
t_recv(struct t_client *c, int ms)
{
	struct qmp_msg	 msg;
	struct pollfd	 pfd;
	long long	 end = t_clock_ms() + ms;
	int		 left;

	for (;;) {
		switch (qmp_reader_next(c->reader, c->in, &msg)) {
		case QMP_MESSAGE:
			return (qmp_msg_steal(&msg));
		case QMP_NEED_MORE:
			break;
		default:
			fprintf(stderr, "t_recv: bad input: %s\n",
			    qmp_reader_error(c->reader));
			c->bad = 1;
			return (NULL);
		}
		if (c->eof || (left = (int)(end - t_clock_ms())) <= 0)
			return (NULL);
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left) <= 0)
			continue;
		t_read(c);
	}
}

/*
 * The next whole message if it is already here, in c's buffer or its
 * socket, read without waiting; else NULL.  For a test that polls many
 * clients at once.  The caller frees it.
 */
char *
t_recv_now(struct t_client *c)
{
	struct pollfd	 pfd;
	char		*m;

	pfd.fd = c->fd;
	pfd.events = POLLIN;
	while ((m = t_recv(c, 0)) == NULL && !c->eof && !c->bad &&
	    poll(&pfd, 1, 0) > 0)
		t_read(c);
	return (m);
}

/* The next reply (return or error); events before it are passed over. */
char *
t_recv_reply(struct t_client *c, int ms)
{
	long long	 end = t_clock_ms() + ms;
	char		*m;
	int		 left;

	while ((left = (int)(end - t_clock_ms())) > 0 &&
	    (m = t_recv(c, left)) != NULL) {
		if (strstr(m, "\"event\"") == NULL ||
		    strncmp(m, "{\"timestamp\"", 12) != 0)
			return (m);
		free(m);
	}
	return (NULL);
}

/*
 * The next message must be exactly want; where says whose it is (for
 * t_recv_eq, the caller's file and line).  An unexpected message may be
 * huge: its start is shown.
 */
void
t_recv_eq_at(const char *where, struct t_client *c, const char *want)
{
	char	*m = t_recv(c, T_WAIT_MS);

	ck_assert_msg(m != NULL && strcmp(m, want) == 0,
	    "%s: expected\n  %s\ngot\n  %.300s (%zu bytes)", where, want,
	    m != NULL ? m : "(nothing or EOF)", m != NULL ? strlen(m) : 0);
	free(m);
}

/* Whether the peer closes within ms; messages before EOF are dropped. */
int
t_eof(struct t_client *c, int ms)
{
	long long	 end = t_clock_ms() + ms;
	char		*m;
	int		 left;

	while ((left = (int)(end - t_clock_ms())) > 0) {
		if ((m = t_recv(c, left)) != NULL) {
			free(m);
			continue;
		}
		return (c->eof);
	}
	return (c->eof);
}

/* The next message of c that is not an event, which must be want. */
void
t_reply_is(struct t_client *c, const char *want)
{
	char	*m = t_recv_reply(c, T_WAIT_MS);

	ck_assert_msg(m != NULL && strcmp(m, want) == 0, "expected %s, got "
	    "%s", want, m != NULL ? m : "(nothing or EOF)");
	free(m);
}

/* The next message of c, which must be the event name. */
void
t_event_is(struct t_client *c, const char *name)
{
	char	*m = t_recv(c, T_WAIT_MS), want[64];

	snprintf(want, sizeof(want), "\"event\": \"%s\"", name);
	ck_assert_msg(m != NULL && strstr(m, want) != NULL, "expected event "
	    "%s, got %s", name, m != NULL ? m : "(nothing or EOF)");
	free(m);
}

/*
 * What a client hears within ms, where it should hear nothing: T_SILENT
 * only if the connection stayed open and nothing came for the whole
 * wait.  An end of stream, a message or bytes that are no message are
 * each told apart, and said on stderr, so that a test asserting silence
 * does not pass because the proxy closed the client.
 */
enum t_heard
t_quiet(struct t_client *c, int ms)
{
	char	*m;

	if ((m = t_recv(c, ms)) != NULL) {
		fprintf(stderr, "t_quiet: got %s\n", m);
		free(m);
		return (T_MESSAGE);
	}
	if (c->bad)
		return (T_GARBAGE);
	if (c->eof) {
		fprintf(stderr, "t_quiet: end of stream\n");
		return (T_EOF);
	}
	return (T_SILENT);
}

/* Parse a message; the caller frees it with yajl_tree_free. */
yajl_val
t_json(const char *text)
{
	char	 err[256];

	if (text == NULL)
		return (NULL);
	return (yajl_tree_parse(text, err, sizeof(err)));
}

/* A string at v[k1][k2] (k2 may be NULL), or NULL. */
const char *
t_get_str(yajl_val v, const char *k1, const char *k2)
{
	const char	*path[3] = { k1, k2, NULL };

	return (YAJL_GET_STRING(yajl_tree_get(v, path, yajl_t_string)));
}

/* A whole number at v[k1][k2] (k2 may be NULL), or -1. */
long long
t_get_int(yajl_val v, const char *k1, const char *k2)
{
	const char	*path[3] = { k1, k2, NULL };
	yajl_val	 n = yajl_tree_get(v, path, yajl_t_number);

	return (n != NULL && YAJL_IS_INTEGER(n) ? YAJL_GET_INTEGER(n) : -1);
}

/* Send a command and return its reply text; events are passed over. */
char *
t_cmd(struct t_client *c, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	t_vsend(c, 1, fmt, ap);
	va_end(ap);
	return (t_recv_reply(c, T_WAIT_MS));
}

/*
 * Take the VM's lock for hold seconds, waiting at most timeout for it:
 * the token of the grant, which must come.
 */
long long
t_lock_acquire(struct t_client *c, double hold, double timeout)
{
	char		*m;
	yajl_val	 v;
	long long	 token;

	m = t_cmd(c, "{\"execute\": \"__org.qmpmux_x-lock-acquire\", "
	    "\"arguments\": {\"hold\": %g, \"timeout\": %g, \"reason\": "
	    "\"test\"}, \"id\": \"acq\"}", hold, timeout);
	ck_assert_msg(m != NULL && (v = t_json(m)) != NULL, "%s", m);
	token = t_get_int(v, "return", "token");
	ck_assert_msg(token > 0, "no grant: %s", m);
	yajl_tree_free(v);
	free(m);
	return (token);
}

/* Release the VM's lock held with token, which must go. */
void
t_lock_release(struct t_client *c, long long token)
{
	char	*m;

	ck_assert_int_ne(asprintf(&m, "{\"execute\": "
	    "\"__org.qmpmux_x-lock-release\", \"arguments\": {\"token\": "
	    "%lld}, \"id\": \"r\"}", token), -1);
	t_cmd_eq(c, m, "{\"return\": {}, \"id\": \"r\"}");
	free(m);
}

/* What x-query-lock says of the VM's lock; free l->waiters after. */
void
t_lock_query(struct t_client *c, struct t_lock *l)
{
	const char	*held[] = { "return", "held", NULL };
	const char	*exp[] = { "return", "expires", NULL };
	const char	*cl[] = { "return", "holder", "client", NULL };
	char		*m, *w;
	yajl_val	 v, x;

	m = t_cmd(c, "{\"execute\": \"__org.qmpmux_x-query-lock\", "
	    "\"id\": \"ql\"}");
	ck_assert_msg(m != NULL && (v = t_json(m)) != NULL, "%s", m);
	memset(l, 0, sizeof(*l));
	l->held = YAJL_IS_TRUE(yajl_tree_get(v, held, yajl_t_true));
	l->token = t_get_int(v, "return", "token");
	if (l->held) {
		l->client = YAJL_GET_INTEGER(yajl_tree_get(v, cl,
		    yajl_t_number));
		x = yajl_tree_get(v, exp, yajl_t_number);
		ck_assert_ptr_nonnull(x);
		l->expires = YAJL_GET_DOUBLE(x);
	}
	ck_assert_ptr_nonnull(w = strstr(m, "\"waiters\": "));
	ck_assert_ptr_nonnull(l->waiters = strdup(w + 12));
	yajl_tree_free(v);
	free(m);
}

/*
 * Wait, within the bound, until x-query-lock lists a waiter of the
 * command name (another client's, which may not have been read yet);
 * what it says then in l.
 */
void
t_lock_waiting(struct t_client *c, const char *name, struct t_lock *l)
{
	long long	 end = t_clock_ms() + T_WAIT_MS;
	char		 want[128];

	snprintf(want, sizeof(want), "\"command\": \"%s\"", name);
	for (;;) {
		t_lock_query(c, l);
		if (strstr(l->waiters, want) != NULL)
			return;
		ck_assert_msg(t_clock_ms() < end, "no waiter of %s: %s", name,
		    l->waiters);
		free(l->waiters);
		poll(NULL, 0, 1);
	}
}

/*
 * Send a command; its reply, events passed over, must be exactly want.
 * where says whose it is (for t_cmd_eq, the caller's file and line).
 */
void
t_cmd_eq_at(const char *where, struct t_client *c, const char *cmd,
    const char *want)
{
	char	*m = t_cmd(c, "%s", cmd);

	ck_assert_msg(m != NULL && strcmp(m, want) == 0,
	    "%s: %s: expected\n  %s\ngot\n  %.300s", where, cmd, want,
	    m != NULL ? m : "(nothing or EOF)");
	free(m);
}

/*
 * The one reader of the logs in DIR: the lines of DIR/log that hold text.
 * Returns how many there are, -1 if the log cannot be read.  For the
 * nth of them (from 1; -1 for the last), *lineno is its line number
 * (from 1) and *num the number that follows text on it; -1 where there
 * is no such line or number.  Either may be NULL.
 */
int
t_log_scan(const char *log, const char *text, int nth, int *lineno,
    long *num)
{
	char	*path = t_path(log), *line = NULL, *p, *end;
	size_t	 size = 0;
	FILE	*f;
	int	 n = 0, at = 0;

	if (lineno != NULL)
		*lineno = -1;
	if (num != NULL)
		*num = -1;
	f = fopen(path, "r");
	free(path);
	if (f == NULL)
		return (-1);
	while (getline(&line, &size, f) != -1) {
		at++;
		if ((p = strstr(line, text)) == NULL)
			continue;
		if (++n != nth && nth != -1)
			continue;
		if (lineno != NULL)
			*lineno = at;
		if (num != NULL) {
			*num = strtol(p + strlen(text), &end, 10);
			if (end == p + strlen(text))
				*num = -1;
		}
	}
	free(line);
	fclose(f);
	return (n);
}

/* How many lines of DIR/log hold text; -1 if it cannot be read. */
int
t_log_count(const char *log, const char *text)
{
	return (t_log_scan(log, text, 0, NULL, NULL));
}

/*
 * How many qmpmuxd processes of this version began in DIR/log: each
 * logs "qmpmuxd VERSION started" or "qmpmuxd VERSION took over" once
 * as it begins (qmpmuxd(8)), and no other line names it so.  A restart
 * that happened counts one more, whatever its line says after that.
 */
int
t_log_begun(const char *log)
{
	return (t_log_count(log, "qmpmuxd " PACKAGE_VERSION " "));
}

/*
 * query-vm of vm on the control socket ctl, read as a tree; the reply's
 * text in *text, for messages.  The caller frees both.
 */
static yajl_val
t_query_vm(const char *ctl, const char *vm, char **text)
{
	struct t_client	*c;
	yajl_val	 v;

	ck_assert_msg((c = t_client_ready(ctl)) != NULL, "control %s", ctl);
	*text = t_cmd(c, "{\"execute\": \"query-vm\", \"arguments\": "
	    "{\"name\": \"%s\"}}", vm);
	ck_assert_msg((v = t_json(*text)) != NULL, "query-vm %s: %s", vm,
	    *text != NULL ? *text : "(nothing)");
	t_client_free(c);
	return (v);
}

/*
 * A VM's counter (query-vm's counters.NAME) on the control socket ctl:
 * what a test asserts of an event that must not have happened, which a
 * log line reworded would not show.
 */
long long
t_vm_counter(const char *ctl, const char *vm, const char *name)
{
	const char	*path[] = { "return", "counters", name, NULL };
	yajl_val	 v, n;
	long long	 count;
	char		*m;

	v = t_query_vm(ctl, vm, &m);
	n = yajl_tree_get(v, path, yajl_t_number);
	ck_assert_msg(n != NULL && YAJL_IS_INTEGER(n), "query-vm %s has no "
	    "counters.%s: %s", vm, name, m);
	count = YAJL_GET_INTEGER(n);
	yajl_tree_free(v);
	free(m);
	return (count);
}

/* A log, a text and how many lines must hold it, for t_wait_change. */
struct t_log_text {
	const char	*log;
	const char	*text;
	int		 n;
};

/* For t_wait_change: whether n lines of the log hold the text. */
static int
t_log_has_cb(const void *arg)
{
	const struct t_log_text	*lt = arg;

	return (t_log_scan(lt->log, lt->text, 0, NULL, NULL) >= lt->n);
}

/*
 * Wait up to ms for n lines with text to be in DIR/log (a process's log,
 * e.g. fakeqemu.log, or QEMU's trace); inotify wakes the wait on each
 * write.  0 when they are.
 */
int
t_wait_log_n(const char *log, const char *text, int n, int ms)
{
	struct t_log_text	 lt = { log, text, n };
	char			*path = t_path(log);
	int			 r;

	r = t_wait_change(path, IN_MODIFY, t_log_has_cb, &lt, ms);
	free(path);
	return (r);
}

/* Wait up to ms for a line with text to appear in DIR/log; 0 when found. */
int
t_wait_log(const char *log, const char *text, int ms)
{
	return (t_wait_log_n(log, text, 1, ms));
}

/* Whether a wait status is an exit with code. */
int
t_exited(int status, int code)
{
	return (status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == code);
}

/* Whether path is a unix socket right now. */
int
t_is_socket(const char *path)
{
	struct stat	 st;

	return (stat(path, &st) == 0 && S_ISSOCK(st.st_mode));
}

/*
 * The common fixture, run in each test's process: the paths of the
 * sockets, in the test's directory, and no process yet.  A test starts
 * what it needs (t_start_qemu, t_start_fake, or its own); t_teardown
 * stops whatever is left.
 */
void
t_setup(void)
{
	t_qsock = t_path("qemu.sock");
	t_fsock = t_path("fake.sock");
	t_psock = t_path("proxy.sock");
	t_qemu_pid = t_fake_pid = t_proxy_pid = 0;
}

/*
 * Stop what the test left running: qmpmuxd and the fake must end with
 * status 0 on SIGTERM, so that a sanitizer's finding at their exit fails
 * the test.  A test that stopped one itself sets its pid to 0.
 */
void
t_teardown(void)
{
	int	 status;

	if (t_proxy_pid > 0) {
		status = t_stop(t_proxy_pid, SIGTERM);
		ck_assert_msg(t_exited(status, 0), "qmpmuxd: status %d on "
		    "SIGTERM; see %s/qmpmuxd.log", status, t_dir());
	}
	if (t_fake_pid > 0) {
		status = t_stop(t_fake_pid, SIGTERM);
		ck_assert_msg(t_exited(status, 0), "fake QEMU: status %d on "
		    "SIGTERM; see %s/fakeqemu.log", status, t_dir());
	}
	if (t_qemu_pid > 0) {
		kill(t_qemu_pid, SIGCONT);
		t_stop(t_qemu_pid, SIGKILL);
	}
	t_qemu_pid = t_fake_pid = t_proxy_pid = 0;
	free(t_qsock);
	free(t_fsock);
	free(t_psock);
}

/* Start QEMU, then qmpmuxd with opts in front of it. */
void
t_start_qemu(const char *const *opts)
{
	t_qemu_pid = t_qemu(t_qsock);
	t_proxy_pid = t_qmpmuxd(t_qsock, t_psock, opts);
}

/* Start the fake QEMU with its script, then qmpmuxd with opts. */
void
t_start_fake(const char *const *args, const char *const *opts)
{
	t_fake_pid = t_fakeqemu(t_fsock, args);
	t_proxy_pid = t_qmpmuxd(t_fsock, t_psock, opts);
}

/* Whether qmpmuxd still runs and its listener is still there. */
int
t_proxy_alive(void)
{
	return (t_wait_exit(t_proxy_pid, 0) == -1 && t_is_socket(t_psock));
}

/* A test case of s with the common fixture and a timeout in seconds. */
TCase *
t_tcase(Suite *s, const char *name, int timeout)
{
	return (t_tcase_with(s, name, timeout, t_setup, t_teardown));
}

/* A test case of s with a fixture of its file's own. */
TCase *
t_tcase_with(Suite *s, const char *name, int timeout, void (*setup)(void),
    void (*teardown)(void))
{
	TCase	*tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return (tc);
}

/*
 * Run a test program's suite in a directory of its own; the exit status
 * is make check's verdict.  The directory goes if every test passed.
 */
int
t_run(Suite *s)
{
	SRunner	*sr;
	int	 failed;

	snprintf(t_base, sizeof(t_base), "/tmp/qmpmux-t.XXXXXX");
	if (mkdtemp(t_base) == NULL) {
		perror("mkdtemp");
		abort();
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed == 0)
		t_rm_tree(t_base);
	else {
		t_keep = 1;
		nftw(t_base, t_show_cb, 16, FTW_PHYS);
		fprintf(stderr, "testlib: the files of the failed tests are "
		    "kept in %s\n", t_base);
	}
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}

/*
 * ASan keeps freed memory in a quarantine of up to 256 MiB to catch use
 * after free; a flood of a million events passes all of it through
 * there, and an RSS would measure ASan instead of qmpmuxd.  A 1 MiB
 * quarantine still catches a use soon after a free.  Options the caller
 * set are kept; the processes started after this inherit it.
 */
void
t_small_quarantine(void)
{
	const char	*old = getenv("ASAN_OPTIONS");
	char		 opts[512];

	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=1",
	    old != NULL ? old : "", old != NULL && *old != '\0' ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
}

/* Start reading the fake QEMU's FLOOD events at c. */
void
t_flood_init(struct t_flood *f, struct t_client *c)
{
	memset(f, 0, sizeof(*f));
	f->c = c;
}

/*
 * Read FLOOD events at f's client, passing over other messages, until f
 * has n events or bytes bytes of them.  Each must be the next in order
 * (the test fails if not).  0 when reached; -1 if the next did not come
 * within T_WAIT_MS or the stream ended first.
 */
int
t_flood_read(struct t_flood *f, long n, size_t bytes)
{
	char	*m, want[64];
	size_t	 len;

	while (f->n < n && f->bytes < bytes) {
		if ((m = t_recv(f->c, T_WAIT_MS)) == NULL)
			return (-1);
		if (strstr(m, "\"event\": \"FLOOD\"") == NULL) {
			f->other++;
			free(m);
			continue;
		}
		snprintf(want, sizeof(want), "\"data\": {\"n\": %ld}}", f->n);
		ck_assert_msg(strstr(m, want) != NULL, "FLOOD event %ld out of "
		    "order: %.200s", f->n, m);
		/* as qmpmuxd counts it in its backlog: with "\r\n" */
		len = strlen(m) + 2;
		f->bytes += len;
		f->last = len;
		if (len > f->maxlen)
			f->maxlen = len;
		f->n++;
		free(m);
	}
	return (0);
}

/*
 * Read n FLOOD events of the fake QEMU, numbered from 0, in order,
 * passing over other messages; 0 when all came.  *maxlen, if given, is
 * raised to the longest as qmpmuxd counts it: the message and "\r\n".
 */
int
t_read_flood(struct t_client *c, long n, size_t *maxlen)
{
	struct t_flood	 f;
	int		 r;

	t_flood_init(&f, c);
	r = t_flood_read(&f, n, SIZE_MAX);
	if (maxlen != NULL && f.maxlen > *maxlen)
		*maxlen = f.maxlen;
	return (r);
}

/*
 * Make qmpmuxd hold every event it reads from now on for c, and none in
 * c's socket: send enough invalid lines, "[]", that their replies, which
 * c does not read, fill the socket and queue up behind it, then line in
 * the same write.  qmpmuxd answers in order, so when line runs, replies
 * already wait in c's output and every later event waits behind them,
 * in the backlog.  The replies must stay under --max-client-output (the
 * default 1M), or qmpmuxd would not read line.  Returns how many replies
 * c will get before line's.
 */
long
t_clog(struct t_client *c, const char *line)
{
	/* the error qmpmuxd gives "[]", with "\r\n" */
	static const char	 reply[] = "{\"error\": {\"class\": "
				    "\"GenericError\", \"desc\": "
				    "\"QMP input must be a JSON object\"}}\r\n";
	long			 sndbuf = 212992, n, i;
	size_t			 len = strlen(line);
	char			*buf;
	FILE			*f;

	/* a unix socket holds at most its sender's buffer, wmem_default */
	if ((f = fopen("/proc/sys/net/core/wmem_default", "r")) != NULL) {
		if (fscanf(f, "%ld", &sndbuf) != 1)
			sndbuf = 212992;
		fclose(f);
	}
	n = (2 * sndbuf + 65536) / (long)(sizeof(reply) - 1) + 1;
	ck_assert_msg(n * (long)(sizeof(reply) - 1) < (1L << 20) - 65536,
	    "t_clog: %ld replies would pass max_client_output", n);
	if ((buf = malloc((size_t)n * 3 + len + 1)) == NULL)
		abort();
	for (i = 0; i < n; i++)
		memcpy(buf + i * 3, "[]\n", 3);
	memcpy(buf + n * 3, line, len);
	buf[n * 3 + len] = '\n';
	t_send_raw(c, buf, (size_t)n * 3 + len + 1);
	free(buf);
	return (n);
}

/*
 * With the fake QEMU flooding on the command "flood" behind qmpmuxd:
 * clog holder (t_clog) and set the flood off behind it, then read at
 * r until max_events events or max_bytes bytes, the backlog bounds
 * qmpmuxd was given.  Every event qmpmuxd reads waits for holder, so
 * the backlog holds just what r got: qmpmuxd has now paused its reads
 * from QEMU, and r has every event it read.  Both clients must have
 * negotiated before.
 */
void
t_flood_hold(struct t_client *holder, struct t_flood *r, long max_events,
    size_t max_bytes)
{
	t_clog(holder, "{\"execute\":\"flood\",\"id\":\"flood\"}");
	ck_assert_msg(t_flood_read(r, max_events, max_bytes) == 0,
	    "the flood stopped at %ld events, %zu bytes, short of the "
	    "backlog's bounds", r->n, r->bytes);
}

/*
 * Start the fake with fargs (a flood on the trigger "flood") and qmpmuxd
 * with opts, then pause qmpmuxd's reads from QEMU with t_flood_hold: r
 * reads, and has then got exactly the backlog, up to the bound qmpmuxd
 * was given, max_events or max_bytes.  Returns the client that holds
 * the events; *base_kb, if asked for, is qmpmuxd's RSS just before the
 * flood.
 */
struct t_client *
t_flood_start(const char *const *fargs, const char *const *opts,
    long max_events, size_t max_bytes, struct t_flood *r, long *base_kb)
{
	struct t_client	*c, *reader;

	t_start_fake(fargs, opts);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(reader = t_client_ready(t_psock));
	if (base_kb != NULL)
		*base_kb = t_proc_kb(t_proxy_pid, "VmRSS");
	t_flood_init(r, reader);
	t_flood_hold(c, r, max_events, max_bytes);
	return (c);
}

/* Whether a read of c would not block: input buffered or waiting. */
int
t_ready(struct t_client *c)
{
	struct pollfd	 pfd;

	if (evbuffer_get_length(c->in) > 0 || c->eof)
		return (1);
	pfd.fd = c->fd;
	pfd.events = POLLIN;
	return (poll(&pfd, 1, 0) > 0);
}

/*
 * Whether the peer of c has closed the connection, within ms, without
 * reading what it sent: a hang-up shows while the data waits unread.
 */
int
t_hungup(struct t_client *c, int ms)
{
	struct pollfd	 pfd;

	if (c->eof)
		return (1);
	pfd.fd = c->fd;
	pfd.events = POLLRDHUP;
	return (poll(&pfd, 1, ms) > 0 &&
	    (pfd.revents & (POLLRDHUP | POLLHUP)) != 0);
}

/*
 * Whether c's peer has left unread some of what c sent it.  (The kernel
 * counts a unix socket's queue with its own overhead, so only whether
 * it is empty is exact.)
 */
int
t_peer_unread(struct t_client *c)
{
	int	 queued = 0;

	if (ioctl(c->fd, SIOCOUTQ, &queued) == -1)
		abort();
	return (queued > 0);
}

/*
 * The bytes waiting unread in the connections accepted on the unix socket
 * at path (QEMU's QMP socket): their receive queues, as the kernel's
 * sock_diag gives them (ss -x shows them as Recv-Q).  An accepted
 * connection shares its listener's file, whose inode says which it is:
 * its name is where it was bound, which need not be path (t_qemu binds
 * aside and renames).  -1 if the kernel cannot be asked.
 */
long
t_unread(const char *path)
{
	struct {
		struct nlmsghdr		nlh;
		struct unix_diag_req	req;
	} q;
	struct sockaddr_nl	 nl;
	struct nlmsghdr		*h;
	struct unix_diag_msg	*m;
	struct rtattr		*a;
	struct stat		 st;
	char			 buf[32768];
	long			 total = 0, rq;
	ssize_t			 n;
	int			 fd, alen, ours, done = 0;

	if (stat(path, &st) == -1)
		return (-1);
	memset(&q, 0, sizeof(q));
	q.nlh.nlmsg_len = sizeof(q);
	q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q.req.sdiag_family = AF_UNIX;
	q.req.udiag_states = 1 << TCP_ESTABLISHED;
	q.req.udiag_show = UDIAG_SHOW_VFS | UDIAG_SHOW_RQLEN;
	memset(&nl, 0, sizeof(nl));
	nl.nl_family = AF_NETLINK;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd == -1 || sendto(fd, &q, sizeof(q), 0, (struct sockaddr *)&nl,
	    sizeof(nl)) != (ssize_t)sizeof(q)) {
		if (fd != -1)
			close(fd);
		return (-1);
	}
	while (!done && (n = recv(fd, buf, sizeof(buf), 0)) > 0) {
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, n);
		    h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE ||
			    h->nlmsg_type == NLMSG_ERROR) {
				if (h->nlmsg_type == NLMSG_ERROR)
					total = -1;
				done = 1;
				break;
			}
			m = NLMSG_DATA(h);
			a = (struct rtattr *)(m + 1);
			alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			ours = 0;
			rq = 0;
			for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
				if (a->rta_type == UNIX_DIAG_VFS)
					ours = ((struct unix_diag_vfs *)
					    RTA_DATA(a))->udiag_vfs_ino ==
					    st.st_ino;
				else if (a->rta_type == UNIX_DIAG_RQLEN)
					rq = ((struct unix_diag_rqlen *)
					    RTA_DATA(a))->udiag_rqueue;
			}
			if (ours)
				total += rq;
		}
	}
	close(fd);
	return (done ? total : -1);
}

/*
 * Wait up to ms for the connections accepted on the unix socket testlib
 * bound at path to hold more than held bytes unread (t_unread before): a
 * stopped QEMU's socket, once qmpmuxd has written a command to it.  A
 * QEMU may stop before it has read the "\r\n" after the last command,
 * hence held.  Nothing wakes a process for input that arrives at
 * another's socket, so the kernel is asked again every millisecond until
 * it is so.  0 when it holds more.
 */
int
t_wait_unread(const char *path, long held, int ms)
{
	long long	 end = t_clock_ms() + ms;
	long		 n;

	while ((n = t_unread(path)) != -1 && n <= held &&
	    t_clock_ms() < end)
		poll(NULL, 0, 1);
	if (n == -1)
		fprintf(stderr, "t_wait_unread: the kernel's sock_diag did "
		    "not answer for %s\n", path);
	return (n > held ? 0 : -1);
}

/*
 * What query-vm on the control socket ctl says of the VM's commands:
 * how many it has taken from its clients (counters.commands) and how
 * many of them wait unsent (commands.queued).
 */
static void
t_vm_commands(const char *ctl, const char *vm, long long *taken,
    long long *queued)
{
	static const char	*tpath[] = { "return", "counters", "commands",
				    NULL };
	static const char	*qpath[] = { "return", "commands", "queued",
				    NULL };
	yajl_val		 v, n;
	char			*m;

	v = t_query_vm(ctl, vm, &m);
	n = yajl_tree_get(v, tpath, yajl_t_number);
	*taken = n != NULL && YAJL_IS_INTEGER(n) ? YAJL_GET_INTEGER(n) : -1;
	n = yajl_tree_get(v, qpath, yajl_t_number);
	*queued = n != NULL && YAJL_IS_INTEGER(n) ? YAJL_GET_INTEGER(n) : -1;
	ck_assert_msg(*taken >= 0 && *queued >= 0, "query-vm %s: %s", vm, m);
	yajl_tree_free(v);
	free(m);
}

/*
 * Wait up to ms until query-vm on ctl says the VM's counter name is n,
 * asking every millisecond.  0 when it does.
 */
int
t_wait_vm_counter(const char *ctl, const char *vm, const char *name,
    long long n, int ms)
{
	long long	 end = t_clock_ms() + ms;

	for (;;) {
		if (t_vm_counter(ctl, vm, name) == n)
			return (0);
		if (t_clock_ms() >= end)
			return (-1);
		poll(NULL, 0, 1);
	}
}

/*
 * Wait up to ms until the VM has exactly n commands queued in qmpmuxd,
 * unsent, asking the control socket every millisecond.  0 when it has.
 */
int
t_wait_vm_queued(const char *ctl, const char *vm, long long n, int ms)
{
	long long	 end = t_clock_ms() + ms, taken, queued;

	for (;;) {
		t_vm_commands(ctl, vm, &taken, &queued);
		if (queued == n)
			return (0);
		if (t_clock_ms() >= end)
			return (-1);
		poll(NULL, 0, 1);
	}
}

/* How many commands the VM has taken from its clients so far. */
long long
t_vm_taken(const char *ctl, const char *vm)
{
	long long	 taken, queued;

	t_vm_commands(ctl, vm, &taken, &queued);
	return (taken);
}

/*
 * Wait up to ms until the VM has taken n commands (t_vm_taken's count,
 * from before they were sent) and has none left unsent: each has been
 * written to QEMU.  Nothing tells a test when, so the control socket is
 * asked every millisecond until it is so.  0 when it is.
 */
int
t_wait_vm_sent(const char *ctl, const char *vm, long long n, int ms)
{
	long long	 end = t_clock_ms() + ms, taken, queued;

	for (;;) {
		t_vm_commands(ctl, vm, &taken, &queued);
		if (taken >= n && queued == 0)
			return (0);
		if (t_clock_ms() >= end)
			return (-1);
		poll(NULL, 0, 1);
	}
}

/*
 * How many times text occurs in what c has been sent and has not read:
 * its input buffer and, peeked at, its socket.
 */
long
t_count_unread(struct t_client *c, const char *text)
{
	size_t	 have = evbuffer_get_length(c->in), tlen = strlen(text);
	char	*buf, *p;
	int	 queued = 0;
	ssize_t	 n = 0;
	long	 count = 0;

	if (ioctl(c->fd, FIONREAD, &queued) == -1)
		queued = 0;
	if ((buf = malloc(have + (size_t)queued + 1)) == NULL)
		abort();
	evbuffer_copyout(c->in, buf, have);
	if (queued > 0 && (n = recv(c->fd, buf + have, (size_t)queued,
	    MSG_PEEK | MSG_DONTWAIT)) == -1)
		n = 0;
	buf[have + (size_t)n] = '\0';
	for (p = buf; (p = memmem(p, have + (size_t)n - (size_t)(p - buf),
	    text, tlen)) != NULL; p += tlen)
		count++;
	free(buf);
	return (count);
}

/*
 * Send copies of line for as long as the peer takes them, up to max
 * bytes, without ever blocking; stop once nothing more has been taken
 * for ms.  Returns the bytes sent: what a peer that has stopped reading
 * still took.
 */
size_t
t_send_while_taken(struct t_client *c, const char *line, size_t max, int ms)
{
	struct pollfd	 pfd;
	size_t		 len = strlen(line), sent = 0, off = 0;
	ssize_t		 n;

	while (sent < max) {
		n = send(c->fd, line + off, len - off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			sent += (size_t)n;
			off = (off + (size_t)n) % len;
			continue;
		}
		if (n == -1 && errno != EAGAIN && errno != EINTR)
			break;
		pfd.fd = c->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, ms) <= 0)
			break;
	}
	return (sent);
}

/*
 * How many fds pid has open whose link starts with prefix (every fd if
 * prefix is NULL): "socket:" counts its sockets.
 */
int
t_proc_fds(pid_t pid, const char *prefix)
{
	char		 dir[64], path[320], link[128];
	struct dirent	*de;
	DIR		*d;
	ssize_t		 n;
	int		 count = 0;

	snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
	ck_assert_ptr_nonnull(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (prefix == NULL) {
			count++;
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((n = readlink(path, link, sizeof(link) - 1)) <= 0)
			continue;
		link[n] = '\0';
		if (strncmp(link, prefix, strlen(prefix)) == 0)
			count++;
	}
	closedir(d);
	return (count);
}

/*
 * The RLIMIT_NOFILE that leaves pid room for just n more fds: the fds
 * below it that pid does not hold.  An fd it holds above it stays open.
 */
int
t_proc_fd_room(pid_t pid, int n)
{
	char		 path[64];
	struct stat	 st;
	int		 fd;

	for (fd = 0; n > 0; fd++) {
		snprintf(path, sizeof(path), "/proc/%ld/fd/%d", (long)pid, fd);
		if (lstat(path, &st) == -1) {
			ck_assert_int_eq(errno, ENOENT);
			n--;
		}
	}
	return (fd);
}

/*
 * The CPU time a process has used, user and system, in milliseconds: a
 * loop that spins shows here.
 */
long long
t_cpu_ms(pid_t pid)
{
	char			 path[64], buf[1024], *p;
	unsigned long long	 ut, st;
	FILE			*f;
	int			 ok;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	/* after the command's name, in parentheses: fields 3 on; 14, 15 */
	ck_assert(ok && (p = strrchr(buf, ')')) != NULL);
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %llu %llu", &ut, &st), 2);
	return ((long long)(ut + st) * 1000 / sysconf(_SC_CLK_TCK));
}

/* Whether pid holds the socket of inode ino (fstat's st_ino). */
int
t_proc_holds(pid_t pid, unsigned long ino)
{
	char	 want[64];

	snprintf(want, sizeof(want), "socket:[%lu]", ino);
	return (t_proc_fds(pid, want) > 0);
}

/* Whether pid holds the file st is of (any kind: a memfd, a pipe). */
int
t_proc_holds_file(pid_t pid, const struct stat *st)
{
	char		 dir[64], path[320];
	struct dirent	*de;
	struct stat	 sb;
	DIR		*d;
	int		 found = 0;

	snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
	ck_assert_ptr_nonnull(d = opendir(dir));
	while (!found && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		found = stat(path, &sb) == 0 && sb.st_dev == st->st_dev &&
		    sb.st_ino == st->st_ino;
	}
	closedir(d);
	return (found);
}

/*
 * Wait until pid has n fds open: a daemon closes from its loop, after it
 * answered.  No event tells another process's fd table, so it is read
 * every millisecond, within the bound.
 */
void
t_wait_fds(pid_t pid, int n)
{
	long long	 end = t_clock_ms() + T_WAIT_MS;
	int		 now;

	while ((now = t_proc_fds(pid, NULL)) != n && t_clock_ms() < end)
		poll(NULL, 0, 1);
	ck_assert_msg(now == n, "pid %ld holds %d fds, expected %d",
	    (long)pid, now, n);
}

/* A file's whole text, NUL-terminated; its length in *len if not NULL. */
char *
t_slurp(const char *path, size_t *len)
{
	FILE	*f;
	char	*text;
	long	 n;

	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	ck_assert_int_ge(n = ftell(f), 0);
	rewind(f);
	ck_assert_ptr_nonnull(text = calloc(1, (size_t)n + 1));
	ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	if (len != NULL)
		*len = (size_t)n;
	return (text);
}

/* text with every from replaced by to; text is freed. */
char *
t_replace(char *text, const char *from, const char *to)
{
	struct evbuffer	*b;
	const char	*p, *q;
	char		*out;
	size_t		 len;

	ck_assert_ptr_nonnull(b = evbuffer_new());
	for (p = text; (q = strstr(p, from)) != NULL; p = q + strlen(from)) {
		evbuffer_add(b, p, (size_t)(q - p));
		evbuffer_add(b, to, strlen(to));
	}
	evbuffer_add(b, p, strlen(p) + 1);
	len = evbuffer_get_length(b);
	ck_assert_ptr_nonnull(out = malloc(len));
	evbuffer_remove(b, out, len);
	evbuffer_free(b);
	free(text);
	return (out);
}

/*
 * The sockets restart state documents name (tests/state-v1.json's, and
 * check_state's), by their fd numbers there: listening, or one end of a
 * connection whose other end the test keeps.
 */
static const struct {
	int	 num;
	int	 listening;
} t_state_fds[] = {
	{ 6, 1 },	/* vm1's listener */
	{ 7, 0 },	/* vm1's upstream, QEMU at the peer */
	{ 8, 1 },	/* the control socket */
	{ 9, 0 },	/* vm1's client 1 */
	{ 10, 0 },	/* the control client */
	{ 11, 0 },	/* vm1's client 3 */
	{ 12, 0 },	/* an fd the control client passed */
	{ 13, 1 },	/* vm1's listen mode socket */
	{ 14, 0 },	/* vm1's client 2 */
};
#define T_STATE_NFDS	(sizeof(t_state_fds) / sizeof(t_state_fds[0]))

/*
 * Make them, each at T_STATE_FD(its number) and a connection's peer at
 * T_STATE_PEER(it), non-blocking: far above any fd a test opens
 * otherwise, so that a number a test makes up names none of its own.
 * Not closed on exec: a qmpmuxd --check-state the test runs has them.
 */
void
t_state_sockets(void)
{
	struct sockaddr_un	 sun;
	size_t			 i;
	int			 fd, sp[2], num;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	for (i = 0; i < T_STATE_NFDS; i++) {
		num = t_state_fds[i].num;
		if (t_state_fds[i].listening) {
			ck_assert_int_ne(fd = socket(AF_UNIX, SOCK_STREAM |
			    SOCK_CLOEXEC, 0), -1);
			/* bound to an address of the kernel's choosing */
			ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun,
			    sizeof(sa_family_t)), 0);
			ck_assert_int_eq(listen(fd, 8), 0);
			ck_assert_int_eq(dup2(fd, T_STATE_FD(num)),
			    T_STATE_FD(num));
			close(fd);
			continue;
		}
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM |
		    SOCK_CLOEXEC, 0, sp), 0);
		ck_assert_int_eq(dup2(sp[0], T_STATE_FD(num)), T_STATE_FD(num));
		ck_assert_int_eq(dup2(sp[1], T_STATE_PEER(num)),
		    T_STATE_PEER(num));
		close(sp[0]);
		close(sp[1]);
		ck_assert_int_ne(fcntl(T_STATE_PEER(num), F_SETFL, O_NONBLOCK),
		    -1);
	}
}

/* Close whatever is left of them, on both sides. */
void
t_state_sockets_close(void)
{
	size_t	 i;

	for (i = 0; i < T_STATE_NFDS; i++) {
		close(T_STATE_FD(t_state_fds[i].num));
		close(T_STATE_PEER(t_state_fds[i].num));
	}
}

/*
 * A restart state document as this process has its sockets: each fd of
 * it (an "fd" or "listen_fd" member) at T_STATE_FD, its paths in
 * /run/qmpmux/ in the test's directory.  text is freed.
 */
char *
t_state_here(char *text)
{
	char	 from[32], to[32], *dir;
	size_t	 i, j;

	for (i = 0; i < T_STATE_NFDS; i++) {
		for (j = 0; j < 4; j++) {
			snprintf(from, sizeof(from), "\"%s\": %d%c",
			    j < 2 ? "fd" : "listen_fd", t_state_fds[i].num,
			    ",}"[j % 2]);
			snprintf(to, sizeof(to), "\"%s\": %d%c",
			    j < 2 ? "fd" : "listen_fd",
			    T_STATE_FD(t_state_fds[i].num), ",}"[j % 2]);
			text = t_replace(text, from, to);
		}
	}
	dir = t_path("");
	text = t_replace(text, "/run/qmpmux/", dir);
	free(dir);
	return (text);
}
