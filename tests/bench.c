/*
 * Benchmark: figures side by side in one run, never asserted.
 *
 * Everything runs on loopback unix sockets, in a private directory, and
 * every comparison is made in the same run, so that the noise of a
 * shared machine hits each path alike.  Each figure is a median over
 * many samples, with its p99.  The sections:
 *
 *  rtt    query-status round trips: directly on the monitor, through
 *         socat (a relay that parses nothing) and through qmpmuxd,
 *         against the fake QEMU (which answers at once: the proxy's own
 *         cost) and against the real QEMU; the CPU each relay spends.
 *  pipe   pipelined commands of 1, 4 and 16 clients, 4 in flight each.
 *  events a flooding fake QEMU read by 1, 4 and 16 clients; qmpmuxd's
 *         CPU per million events.
 *  mem    peak RSS under a flood with a client that stalls; RSS per
 *         idle VM at 1, 100 and 1000 VMs.
 *  iso    healthy VMs' round trips while 10% of 1000 VMs are stopped
 *         (SIGSTOP) or flooding, against all 1000 healthy.
 *  start  time until every healthy VM of 1000 (10% never greeting)
 *         serves, from qmpmuxd's start.
 *  prio   a manager's query-status every 5 ms, against the real QEMU,
 *         alone and beside a load (pipelining clients and a loop of
 *         query-qmp-schema): on the background listener of its VM
 *         (priority classes), on a VM whose listeners are all normal,
 *         on another VM, and on QEMU's own second monitor; a normal
 *         client beside pipelining peers on its listener, and with them
 *         on another VM (tests/bench_prio.c).
 *  instr  instructions per round trip and per event (callgrind), which
 *         the noise of a shared machine does not move.
 *
 * The CPU time of a process is read from /proc/PID/schedstat, in
 * nanoseconds.  It prints one table and writes every figure to a JSON
 * file, with the targets of issue 13 and whether each is met.
 *
 * Usage (from a build directory): make bench, or
 *   QMPMUXD=... QEMU=... FAKEQEMU=... tests/bench [--quick] [--json FILE]
 *       [--only SECTION,...]
 * --quick (or BENCH_QUICK=1) is the CI's run of a few seconds: the
 * same code with small counts and 100 VMs.  --only runs the sections
 * named (rtt, pipe, events, mem, iso, start, prio, instr), for one
 * figure before and after a change: make bench BENCH_ARGS="--only instr".
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "testlib.h"
#include "bench.h"

#define B_MAXC		16		/* clients at most, in one run */
#define B_MAXP		B_MAXC		/* relay processes of a path */

/* The sizes of a run: the full one, or --quick's. */
static struct {
	int	 quick;
	int	 rtt_fake;	/* round trips per path, fake QEMU */
	int	 rtt_qemu;	/* and real QEMU */
	long	 pipe_cmds;	/* commands per pipelined run */
	long	 events;	/* events per flood run */
	int	 event_reps;	/* flood runs per path */
	long	 mem_flood;	/* events of the stalled flood */
	int	 vms;		/* the host's VMs: 1000 */
	int	 iso_rounds;	/* healthy round trips per variant and run */
	int	 iso_reps;	/* runs of each variant */
	int	 start_reps;
	int	 cg_rounds;	/* under callgrind */
	long	 cg_events;
	int	 prio_samples;	/* a measured client's round trips per run */
	int	 prio_parts;	/* the turns the runs take */
} p;

/* valgrind cannot run a program built with AddressSanitizer. */
#if defined(__SANITIZE_ADDRESS__)
static const int	 b_sanitized = 1;
#else
static const int	 b_sanitized = 0;
#endif

/* One figure: a median and a p99 (NAN when it has none), in unit. */
struct fig {
	const char	*section;
	char		 name[64];
	double		 med;
	double		 p99;
	const char	*unit;
};
static struct fig	 figs[256];
static int		 nfigs;

/* One target of the issue and the figures that judge it. */
struct target {
	char		 text[128];
	char		 measured[128];
	int		 met;		/* -1: not measured */
};
static struct target	 targets[32];
static int		 ntargets;

const char		*b_section = "";
static int		 b_rtt_cpu = -1;	/* the round trips' one CPU */

/* Microseconds of the monotonic clock. */
double
b_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3);
}

static int
b_cmp(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return ((x > y) - (x < y));
}

/* Sort v and give its median and p99. */
void
b_stats(double *v, long n, double *med, double *p99)
{
	if (n <= 0) {
		*med = *p99 = NAN;
		return;
	}
	qsort(v, (size_t)n, sizeof(*v), b_cmp);
	*med = v[n / 2];
	*p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
}

/* Record a figure, and say it at once on stderr (the run's progress). */
void
fig(const char *name, double med, double p99, const char *unit)
{
	struct fig	*f;

	if (nfigs == (int)(sizeof(figs) / sizeof(figs[0])))
		abort();
	f = &figs[nfigs++];
	f->section = b_section;
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->med = med;
	f->p99 = p99;
	f->unit = unit;
	fprintf(stderr, "bench: %-40s %12.2f %12.2f %s\n", name, med, p99,
	    unit);
}

/* A figure recorded before, by name; NAN when it was not. */
double
fig_get(const char *name, int want_p99)
{
	int	 i;

	for (i = 0; i < nfigs; i++) {
		if (strcmp(figs[i].name, name) == 0)
			return (want_p99 ? figs[i].p99 : figs[i].med);
	}
	return (NAN);
}

/* Judge a target: met is whether have <= limit, with the figures said. */
void
target(const char *text, double have, double limit, const char *fmt, ...)
{
	struct target	*t = &targets[ntargets++];
	va_list		 ap;

	snprintf(t->text, sizeof(t->text), "%s", text);
	va_start(ap, fmt);
	vsnprintf(t->measured, sizeof(t->measured), fmt, ap);
	va_end(ap);
	t->met = isnan(have) || isnan(limit) ? -1 : have <= limit;
}

/* The CPU time pid has had, in seconds: /proc/PID/schedstat, in ns. */
static double
b_cpu(pid_t pid)
{
	char		 path[64];
	unsigned long long ns = 0;
	FILE		*f;

	snprintf(path, sizeof(path), "/proc/%ld/schedstat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (NAN);
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ((double)ns / 1e9);
}

/* The CPU time of several processes together. */
static double
b_cpu_sum(const pid_t *pids, int n)
{
	double	 s = 0;
	int	 i;

	for (i = 0; i < n; i++)
		s += b_cpu(pids[i]);
	return (s);
}

/* Connect to a unix socket; the fd is non-blocking once connected. */
static struct lc *
lc_connect(const char *path, int quiet)
{
	struct sockaddr_un	 sun;
	struct lc		*c;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		abort();
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (!quiet)
			fprintf(stderr, "bench: connect %s: %s\n", path,
			    strerror(errno));
		close(fd);
		return (NULL);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->buf = malloc(B_BUF)) == NULL)
		abort();
	c->fd = fd;
	return (c);
}

void
lc_free(struct lc *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c->buf);
	free(c);
}

/* Read what the socket has; -1 at its end. */
int
lc_read(struct lc *c)
{
	ssize_t	 n;

	if (c->off == c->len)
		c->off = c->len = 0;
	else if (c->off > B_BUF / 2 || c->len == B_BUF) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == B_BUF)
		abort();		/* a line of a megabyte: not ours */
	n = read(c->fd, c->buf + c->len, B_BUF - c->len);
	if (n > 0) {
		c->len += (size_t)n;
		return (0);
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return (0);
	c->eof = 1;
	return (-1);
}

/* The next whole line in the buffer, without its end, or NULL. */
char *
lc_next(struct lc *c, size_t *lenp)
{
	char	*s = c->buf + c->off, *nl;

	if ((nl = memchr(s, '\n', c->len - c->off)) == NULL)
		return (NULL);
	c->off = (size_t)(nl + 1 - c->buf);
	*lenp = (size_t)(nl - s);
	if (*lenp > 0 && s[*lenp - 1] == '\r')
		(*lenp)--;
	return (s);
}

/* The next line, waiting up to ms; NULL at the end or the bound. */
char *
lc_line(struct lc *c, int ms, size_t *lenp)
{
	struct pollfd	 pfd;
	double		 end = b_us() + ms * 1e3;
	char		*m;
	int		 left;

	for (;;) {
		if ((m = lc_next(c, lenp)) != NULL)
			return (m);
		if (c->eof || (left = (int)((end - b_us()) / 1e3)) <= 0)
			return (NULL);
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left) > 0)
			lc_read(c);
	}
}

/* Write all of buf. */
int
lc_send(struct lc *c, const char *buf, size_t len)
{
	struct pollfd	 pfd;
	ssize_t		 n;

	while (len > 0) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno != EAGAIN && errno != EINTR)
			return (-1);
		pfd.fd = c->fd;
		pfd.events = POLLOUT;
		poll(&pfd, 1, T_WAIT_MS);
	}
	return (0);
}

/* Whether a line is an event, as QEMU writes one. */
int
lc_is_event(const char *m, size_t len)
{
	return (len > 12 && memcmp(m, "{\"timestamp\"", 12) == 0);
}

/* Whether a line is a successful reply. */
int
lc_is_return(const char *m, size_t len)
{
	return (len > 10 && memmem(m, len, "\"return\"", 8) != NULL);
}

static const char	 b_caps[] = "{\"execute\":\"qmp_capabilities\"}\n";

/* Connect, take the greeting and negotiate; NULL on a failure. */
struct lc *
lc_ready(const char *path)
{
	struct lc	*c;
	char		*m;
	size_t		 len;

	if ((c = lc_connect(path, 0)) == NULL)
		return (NULL);
	if ((m = lc_line(c, T_WAIT_MS, &len)) == NULL ||
	    memmem(m, len, "\"QMP\"", 5) == NULL)
		goto fail;
	if (lc_send(c, b_caps, sizeof(b_caps) - 1) == -1 ||
	    (m = lc_line(c, T_WAIT_MS, &len)) == NULL ||
	    !lc_is_return(m, len))
		goto fail;
	return (c);
fail:
	fprintf(stderr, "bench: %s: no greeting or negotiation\n", path);
	lc_free(c);
	return (NULL);
}

/* One query-status round trip, in microseconds; -1 on a failure. */
double
lc_rtt(struct lc *c)
{
	char	 cmd[64], *m;
	size_t	 len;
	double	 t0;
	int	 n;

	n = snprintf(cmd, sizeof(cmd),
	    "{\"execute\":\"query-status\",\"id\":%ld}\n", c->nsent++);
	t0 = b_us();
	if (lc_send(c, cmd, (size_t)n) == -1)
		return (-1);
	while ((m = lc_line(c, T_WAIT_MS, &len)) != NULL) {
		if (lc_is_event(m, len))
			continue;
		if (!lc_is_return(m, len)) {
			fprintf(stderr, "bench: bad reply: %.*s\n", (int)len,
			    m);
			return (-1);
		}
		return (b_us() - t0);
	}
	fprintf(stderr, "bench: no reply\n");
	return (-1);
}

/*
 * Raise the soft limit of open files to the hard one: a thousand VMs
 * are three thousand sockets in qmpmuxd, and as many here.
 */
static void
b_nofile(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)p.vms * 4 + 64)
		fprintf(stderr, "bench: only %llu open files: the runs of "
		    "%d VMs may fail\n", (unsigned long long)rl.rlim_cur,
		    p.vms);
}

/*
 * Where the sockets and their directories go.  A host keeps them in
 * /run, a tmpfs; where /tmp is a disk's file system, each bind of a
 * thousand sockets is an inode to allocate (ext4 spent 80% of a
 * 1000-VM start-up there, in bind), which would be measured as
 * qmpmuxd's.  So they go in a directory of /dev/shm when it is a
 * tmpfs, removed at exit; the logs stay in t_dir().
 */
static char	 b_sockdir[64];
static pid_t	 b_sockdir_owner;

static int
b_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return (0);
}

static void
b_sockdir_atexit(void)
{
	if (b_sockdir_owner == getpid())
		nftw(b_sockdir, b_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void
b_sockdir_init(void)
{
	struct statfs	 sf;

	snprintf(b_sockdir, sizeof(b_sockdir), "/dev/shm/qmpmux-bench.XXXXXX");
	if (statfs("/dev/shm", &sf) == 0 && sf.f_type == TMPFS_MAGIC &&
	    mkdtemp(b_sockdir) != NULL) {
		b_sockdir_owner = getpid();
		atexit(b_sockdir_atexit);
	} else
		snprintf(b_sockdir, sizeof(b_sockdir), "%s", t_dir());
	fprintf(stderr, "bench: sockets in %s\n", b_sockdir);
}

/* A path of the run's socket directory, made of a format. */
char *
b_path(const char *fmt, ...)
{
	char	 name[128], *path;
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	if (asprintf(&path, "%s/%s", b_sockdir, name) == -1)
		abort();
	return (path);
}

/*
 * Make a log of the run's directory before the process that writes it
 * starts, so that a wait on it (inotify) has a file to watch.
 */
static void
b_touch(const char *log)
{
	char	*path = t_path(log);
	FILE	*f;

	if ((f = fopen(path, "a")) == NULL)
		abort();
	fclose(f);
	free(path);
}

/* Wait for a socket, or give up the whole run. */
static void
b_wait_socket(const char *path)
{
	if (t_wait_socket(path, T_WAIT_MS) == -1) {
		fprintf(stderr, "bench: %s did not appear; see %s\n", path,
		    t_dir());
		exit(1);
	}
}

/*
 * The fake QEMU: n monitors in one process, DIR/0.sock to DIR/n-1.sock,
 * with extra options; it answers without a log line per command.
 */
static pid_t
b_fake(const char *dir, int n, const char *log, const char *const *extra)
{
	const char	*argv[32];
	char		 nbuf[16], *last;
	pid_t		 pid;
	int		 i = 0;

	mkdir(dir, 0700);
	snprintf(nbuf, sizeof(nbuf), "%d", n);
	argv[i++] = t_bin("FAKEQEMU");
	argv[i++] = "--quiet";
	argv[i++] = "--many";
	argv[i++] = nbuf;
	while (extra != NULL && *extra != NULL && i < 30)
		argv[i++] = *extra++;
	argv[i++] = dir;
	argv[i] = NULL;
	pid = t_spawn(argv, log);
	if (asprintf(&last, "%s/%d.sock", dir, n - 1) == -1)
		abort();
	b_wait_socket(last);
	free(last);
	return (pid);
}

/*
 * socat from a listening socket to an upstream, for one connection.
 * socat makes its socket's path when it binds, before it listens, so
 * the path is no sign of readiness: its own "listening on" line is.
 */
static pid_t
b_socat(const char *listen, const char *upstream)
{
	const char	*argv[6], *base;
	char		*l, *u, log[128];
	pid_t		 pid;

	if (asprintf(&l, "UNIX-LISTEN:%s", listen) == -1 ||
	    asprintf(&u, "UNIX-CONNECT:%s", upstream) == -1)
		abort();
	base = strrchr(listen, '/') != NULL ? strrchr(listen, '/') + 1 :
	    listen;
	snprintf(log, sizeof(log), "socat-%s.log", base);
	argv[0] = "socat";
	argv[1] = "-d";
	argv[2] = "-d";
	argv[3] = l;
	argv[4] = u;
	argv[5] = NULL;
	b_touch(log);
	pid = t_spawn(argv, log);
	if (t_wait_log(log, "listening on", T_WAIT_MS) == -1) {
		fprintf(stderr, "bench: socat on %s did not listen; see %s/%s"
		    "\n", listen, t_dir(), log);
		exit(1);
	}
	free(l);
	free(u);
	return (pid);
}

/*
 * Write a configuration of n VMs, vmI, each with one listener,
 * LDIR/I.sock: the first h on the monitors of dira, the others on those
 * of dirb.
 */
static char *
b_conf(int n, int h, const char *dira, const char *dirb, const char *ldir,
    const char *extra)
{
	char	*path = b_path("qmpmuxd-%d.conf", n);
	FILE	*f;
	int	 i;

	mkdir(ldir, 0700);
	if ((f = fopen(path, "w")) == NULL)
		abort();
	fprintf(f, "[global]\ncontrol = none\n%s\n", extra != NULL ? extra :
	    "");
	for (i = 0; i < n; i++) {
		fprintf(f, "[vm vm%d]\nupstream = connect:%s/%d.sock\n", i,
		    i < h ? dira : dirb, i < h ? i : i - h);
		fprintf(f, "[listener vm%d %s/%d.sock]\n", i, ldir, i);
	}
	fclose(f);
	return (path);
}

/* qmpmuxd on a configuration; waits for every listener of it. */
pid_t
b_qmpmuxd_conf(const char *conf, int n, const char *ldir, const char *log)
{
	const char	*argv[5];
	char		*s;
	pid_t		 pid;
	int		 i;

	argv[0] = t_bin("QMPMUXD");
	argv[1] = "-d";
	argv[2] = "-f";
	argv[3] = conf;
	argv[4] = NULL;
	pid = t_spawn(argv, log);
	for (i = 0; i < n; i++) {
		if (asprintf(&s, "%s/%d.sock", ldir, i) == -1)
			abort();
		b_wait_socket(s);
		free(s);
	}
	return (pid);
}

/*
 * Wait up to ms for n lines holding text in the log DIR/log: read as it
 * grows (inotify), counting only what is new.  0 when there are.
 */
static int
b_wait_lines(const char *log, const char *text, int n, int ms)
{
	char		*path = t_path(log), buf[65536], ev[4096], *nl, *s;
	double		 end = b_us() + ms * 1e3;
	size_t		 have = 0;
	struct pollfd	 pfd;
	ssize_t		 r;
	int		 fd, in, count = 0, left;

	if ((fd = open(path, O_RDONLY)) == -1 ||
	    (in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    inotify_add_watch(in, path, IN_MODIFY) == -1)
		abort();
	for (;;) {
		while ((r = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
			have += (size_t)r;
			buf[have] = '\0';
			s = buf;
			while ((nl = strchr(s, '\n')) != NULL) {
				*nl = '\0';
				if (strstr(s, text) != NULL)
					count++;
				s = nl + 1;
			}
			have -= (size_t)(s - buf);
			memmove(buf, s, have);
			if (have == sizeof(buf) - 1)
				have = 0;	/* a line too long: not ours */
		}
		if (count >= n || (left = (int)((end - b_us()) / 1e3)) <= 0)
			break;
		pfd.fd = in;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left) > 0)
			while (read(in, ev, sizeof(ev)) > 0)
				;
	}
	close(in);
	close(fd);
	free(path);
	if (count < n)
		fprintf(stderr, "bench: %d of %d \"%s\" in %s/%s\n", count, n,
		    text, t_dir(), log);
	return (count >= n ? 0 : -1);
}

/* Stop a process of ours; qmpmuxd and the fake exit on SIGTERM. */
void
b_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGCONT);
		t_stop(pid, SIGTERM);
	}
}

/* A path to compare: its clients and the relays whose CPU counts. */
struct path {
	const char	*name;
	struct lc	*c[B_MAXC];
	int		 nc;
	pid_t		 relay[B_MAXP];
	int		 nrelay;
	double		*us;
	long		 n;
	double		 cpu;
};

/*
 * Pin this process, and the processes it starts from now on, to one CPU,
 * or undo it.  A round trip wakes its processes one after the other;
 * spread over the CPUs of a virtual machine, each wake-up across CPUs is
 * an interprocessor interrupt, which a hypervisor makes cost tens of
 * microseconds, and which of the three paths gets them changes from run
 * to run (a full run once put socat at 120 us and qmpmuxd at 19 us, the
 * next both at 130 us).  On one CPU a round trip measures the paths
 * themselves.  Returns the CPU, or -1.
 */
static cpu_set_t	 b_cpus_saved;
static int		 b_pinned = -1;

static int
b_pin(int on)
{
	cpu_set_t	 one;
	int		 cpu;

	if (!on) {
		if (b_pinned != -1)
			sched_setaffinity(0, sizeof(b_cpus_saved),
			    &b_cpus_saved);
		b_pinned = -1;
		return (-1);
	}
	if (sched_getaffinity(0, sizeof(b_cpus_saved), &b_cpus_saved) == -1)
		return (-1);
	for (cpu = CPU_SETSIZE - 1; cpu >= 0; cpu--)
		if (CPU_ISSET(cpu, &b_cpus_saved))
			break;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (cpu < 0 || sched_setaffinity(0, sizeof(one), &one) == -1)
		return (-1);
	return (b_pinned = cpu);
}

/*
 * Round trips on each path, one client each, interleaved a hundred at a
 * time so that the machine's noise hits the paths alike; after a warm-up
 * of a hundred each.
 */
static int
b_rtt_paths(struct path *pa, int npa, int rounds)
{
	double	 t, cpu0[8];
	int	 i, j, k;

	for (i = 0; i < npa; i++) {
		for (k = 0; k < 100; k++)
			if (lc_rtt(pa[i].c[0]) < 0)
				return (-1);
		if ((pa[i].us = calloc((size_t)rounds, sizeof(double))) ==
		    NULL)
			abort();
		pa[i].n = 0;
		cpu0[i] = b_cpu_sum(pa[i].relay, pa[i].nrelay);
	}
	for (j = 0; j < rounds; j += 100) {
		for (i = 0; i < npa; i++) {
			for (k = j; k < j + 100 && k < rounds; k++) {
				if ((t = lc_rtt(pa[i].c[0])) < 0)
					return (-1);
				pa[i].us[pa[i].n++] = t;
			}
		}
	}
	for (i = 0; i < npa; i++)
		pa[i].cpu = b_cpu_sum(pa[i].relay, pa[i].nrelay) - cpu0[i];
	return (0);
}

/* Record a path's round trips as figures PREFIX.NAME and its CPU. */
static void
b_rtt_figs(const char *prefix, struct path *pa, int npa)
{
	char	 name[64];
	double	 med, p99;
	int	 i;

	for (i = 0; i < npa; i++) {
		b_stats(pa[i].us, pa[i].n, &med, &p99);
		snprintf(name, sizeof(name), "%s.%s", prefix, pa[i].name);
		fig(name, med, p99, "us");
		if (pa[i].nrelay > 0) {
			snprintf(name, sizeof(name), "%s.%s.cpu", prefix,
			    pa[i].name);
			fig(name, pa[i].cpu / (double)pa[i].n * 1e6, NAN,
			    "us CPU/rtt");
		}
		free(pa[i].us);
		pa[i].us = NULL;
	}
}

/* Close a path's clients and stop its relays. */
static void
b_path_close(struct path *pa)
{
	int	 i;

	for (i = 0; i < pa->nc; i++)
		lc_free(pa->c[i]);
	for (i = 0; i < pa->nrelay; i++)
		b_stop(pa->relay[i]);
	pa->nc = pa->nrelay = 0;
}

/* 1. Round trips against the fake QEMU: direct, socat, qmpmuxd. */
static void
b_rtt_fake(void)
{
	char		*fdir = b_path("rtt"), *s, *q, *l;
	struct path	 pa[3];
	pid_t		 fake;
	double		 dm, sm, qm;

	b_section = "round trip, fake QEMU, all on one CPU";
	memset(pa, 0, sizeof(pa));
	fake = b_fake(fdir, 3, "fake-rtt.log", NULL);
	pa[0].name = "direct";
	s = b_path("rtt/0.sock");
	pa[0].c[pa[0].nc++] = lc_ready(s);
	free(s);

	pa[1].name = "socat";
	s = b_path("rtt-socat.sock");
	q = b_path("rtt/1.sock");
	pa[1].relay[pa[1].nrelay++] = b_socat(s, q);
	pa[1].c[pa[1].nc++] = lc_ready(s);
	free(s);
	free(q);

	pa[2].name = "qmpmuxd";
	q = b_path("rtt/2.sock");
	l = b_path("rtt-qmpmuxd.sock");
	pa[2].relay[pa[2].nrelay++] = t_qmpmuxd(q, l, NULL);
	pa[2].c[pa[2].nc++] = lc_ready(l);
	free(q);
	free(l);
	if (pa[0].c[0] == NULL || pa[1].c[0] == NULL || pa[2].c[0] == NULL ||
	    b_rtt_paths(pa, 3, p.rtt_fake) == -1) {
		fprintf(stderr, "bench: round trips on the fake failed\n");
		exit(1);
	}
	b_rtt_figs("rtt.fake", pa, 3);
	dm = fig_get("rtt.fake.direct", 0);
	sm = fig_get("rtt.fake.socat", 0);
	qm = fig_get("rtt.fake.qmpmuxd", 0);
	fig("rtt.fake.qmpmuxd/socat", qm / sm,
	    fig_get("rtt.fake.qmpmuxd", 1) / fig_get("rtt.fake.socat", 1),
	    "x");
	fig("rtt.fake.qmpmuxd/direct", qm / dm,
	    fig_get("rtt.fake.qmpmuxd", 1) / fig_get("rtt.fake.direct", 1),
	    "x");
	b_path_close(&pa[0]);
	b_path_close(&pa[1]);
	b_path_close(&pa[2]);
	b_stop(fake);
	free(fdir);
}

/*
 * 1. Round trips against the real QEMU; a QEMU of its own for each path,
 * since QEMU serves one client a monitor.
 */
static void
b_rtt_qemu(void)
{
	char		*q[3], *s, *l;
	struct path	 pa[3];
	pid_t		 qemu[3];
	double		 dm, sm, qm;
	int		 i;

	b_section = "round trip, real QEMU, all on one CPU";
	memset(pa, 0, sizeof(pa));
	for (i = 0; i < 3; i++) {
		q[i] = b_path("qemu%d.qmp", i);
		/* past its start (t_qemu): every client sees QEMU greet first */
		qemu[i] = t_qemu(q[i]);
	}
	pa[0].name = "direct";
	pa[0].c[pa[0].nc++] = lc_ready(q[0]);
	pa[1].name = "socat";
	s = b_path("qemu-socat.sock");
	pa[1].relay[pa[1].nrelay++] = b_socat(s, q[1]);
	pa[1].c[pa[1].nc++] = lc_ready(s);
	free(s);
	pa[2].name = "qmpmuxd";
	l = b_path("qemu-qmpmuxd.sock");
	pa[2].relay[pa[2].nrelay++] = t_qmpmuxd(q[2], l, NULL);
	pa[2].c[pa[2].nc++] = lc_ready(l);
	free(l);
	if (pa[0].c[0] == NULL || pa[1].c[0] == NULL || pa[2].c[0] == NULL ||
	    b_rtt_paths(pa, 3, p.rtt_qemu) == -1) {
		fprintf(stderr, "bench: round trips on QEMU failed\n");
		exit(1);
	}
	b_rtt_figs("rtt.qemu", pa, 3);
	dm = fig_get("rtt.qemu.direct", 0);
	sm = fig_get("rtt.qemu.socat", 0);
	qm = fig_get("rtt.qemu.qmpmuxd", 0);
	fig("rtt.qemu.qmpmuxd/socat", qm / sm,
	    fig_get("rtt.qemu.qmpmuxd", 1) / fig_get("rtt.qemu.socat", 1),
	    "x");
	fig("rtt.qemu.qmpmuxd/direct", qm / dm,
	    fig_get("rtt.qemu.qmpmuxd", 1) / fig_get("rtt.qemu.direct", 1),
	    "x");
	for (i = 0; i < 3; i++) {
		b_path_close(&pa[i]);
		t_stop(qemu[i], SIGKILL);
		free(q[i]);
	}
}

/* Send a client's next pipelined command. */
static int
lc_pipe_send(struct lc *c)
{
	char	 cmd[64];
	int	 n;

	n = snprintf(cmd, sizeof(cmd),
	    "{\"execute\":\"query-status\",\"id\":%ld}\n", c->nsent++);
	c->sent[(c->head + c->inflight) % B_DEPTH] = b_us();
	c->inflight++;
	return (lc_send(c, cmd, (size_t)n));
}

/*
 * Pipelined commands on a path's clients, B_DEPTH in flight each, total
 * in all: fills pa->us with each command's latency.  Commands per second.
 */
static double
b_pipe(struct path *pa, long total)
{
	struct pollfd	 pfd[B_MAXC];
	struct lc	*c;
	double		 t0, cpu0, t;
	long		 sent = 0, got = 0;
	size_t		 len;
	char		*m;
	int		 i, k;

	if ((pa->us = calloc((size_t)total, sizeof(double))) == NULL)
		abort();
	pa->n = 0;
	cpu0 = b_cpu_sum(pa->relay, pa->nrelay);
	t0 = b_us();
	for (i = 0; i < pa->nc; i++) {
		c = pa->c[i];
		c->inflight = c->head = 0;
		for (k = 0; k < B_DEPTH && sent < total; k++, sent++)
			lc_pipe_send(c);
	}
	while (got < total) {
		for (i = 0; i < pa->nc; i++) {
			pfd[i].fd = pa->c[i]->fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)pa->nc, T_WAIT_MS) <= 0) {
			fprintf(stderr, "bench: pipelined replies stopped at "
			    "%ld of %ld\n", got, total);
			return (-1);
		}
		for (i = 0; i < pa->nc; i++) {
			c = pa->c[i];
			if (pfd[i].revents == 0)
				continue;
			if (lc_read(c) == -1)
				return (-1);
			while ((m = lc_next(c, &len)) != NULL) {
				if (lc_is_event(m, len))
					continue;
				if (!lc_is_return(m, len))
					c->nerrors++;
				t = b_us();
				pa->us[pa->n++] = t - c->sent[c->head];
				c->head = (c->head + 1) % B_DEPTH;
				c->inflight--;
				got++;
				if (sent < total) {
					lc_pipe_send(c);
					sent++;
				}
			}
		}
	}
	t = b_us() - t0;
	pa->cpu = b_cpu_sum(pa->relay, pa->nrelay) - cpu0;
	return ((double)total / (t / 1e6));
}

/*
 * 2. Pipelined throughput of 1, 4 and 16 clients.  A monitor serves one
 * client, so directly and through socat each client has a monitor of
 * its own (and socat a process for each).  Through qmpmuxd they share
 * the one monitor of one VM, which is what qmpmuxd is for, and in which
 * QEMU's commands run one at a time (max_inflight 1); and, like for
 * like with socat, each client on a VM of its own ("qmpmuxd-vms", one
 * qmpmuxd for all of them).
 */
#define B_NPIPE	4
static void
b_pipe_all(void)
{
	static const int	 ns[] = { 1, 4, 16 };
	char			*fdir = b_path("pipe"), *s, *q, name[64];
	char			*vdir, *ldir, *conf, log[64];
	struct path		 pa[B_NPIPE];
	pid_t			 fake, vfake;
	double			*all[B_NPIPE], cpu[B_NPIPE], secs[B_NPIPE];
	double			 med, p99, r;
	long			 nall[B_NPIPE], err;
	int			 k, i, j, n, npa, part;

	b_section = "pipelined throughput";
	fake = b_fake(fdir, 2 * B_MAXC + 1, "fake-pipe.log", NULL);
	for (k = 0; k < 3; k++) {
		n = ns[k];
		memset(pa, 0, sizeof(pa));
		pa[0].name = "direct";
		pa[1].name = "socat";
		pa[2].name = "qmpmuxd";
		pa[3].name = "qmpmuxd-vms";
		npa = n > 1 ? 4 : 3;
		for (i = 0; i < n; i++) {
			s = b_path("pipe/%d.sock", i);
			pa[0].c[pa[0].nc++] = lc_ready(s);
			free(s);
		}
		/* socat: a process for each client, on a monitor each */
		for (i = 0; i < n; i++) {
			s = b_path("pipe-socat-%d-%d.sock", n, i);
			q = b_path("pipe/%d.sock", B_MAXC + i);
			pa[1].relay[pa[1].nrelay++] = b_socat(s, q);
			pa[1].c[pa[1].nc++] = lc_ready(s);
			free(s);
			free(q);
		}
		q = b_path("pipe/%d.sock", 2 * B_MAXC);
		s = b_path("pipe-qmpmuxd-%d.sock", n);
		pa[2].relay[pa[2].nrelay++] = t_qmpmuxd(q, s, NULL);
		for (i = 0; i < n; i++)
			pa[2].c[pa[2].nc++] = lc_ready(s);
		free(q);
		free(s);
		vfake = 0;
		if (npa == 4) {
			vdir = b_path("pipevms%d", n);
			ldir = b_path("pipevms%d-l", n);
			snprintf(log, sizeof(log), "qmpmuxd-pipevms%d.log", n);
			vfake = b_fake(vdir, n, "fake-pipevms.log", NULL);
			conf = b_conf(n, n, vdir, vdir, ldir, NULL);
			pa[3].relay[pa[3].nrelay++] = b_qmpmuxd_conf(conf, n,
			    ldir, log);
			for (i = 0; i < n; i++) {
				s = b_path("pipevms%d-l/%d.sock", n, i);
				pa[3].c[pa[3].nc++] = lc_ready(s);
				free(s);
			}
			free(vdir);
			free(ldir);
			free(conf);
		}
		for (j = 0; j < npa; j++)
			for (i = 0; i < pa[j].nc; i++)
				if (pa[j].c[i] == NULL) {
					fprintf(stderr, "bench: pipelined "
					    "clients failed\n");
					exit(1);
				}
		/* interleaved in four parts, for the noise */
		for (j = 0; j < npa; j++) {
			nall[j] = 0;
			cpu[j] = secs[j] = 0;
			if ((all[j] = calloc((size_t)p.pipe_cmds,
			    sizeof(double))) == NULL)
				abort();
		}
		for (part = 0; part < 4; part++) {
			for (j = 0; j < npa; j++) {
				if ((r = b_pipe(&pa[j], p.pipe_cmds / 4)) < 0)
					exit(1);
				secs[j] += (double)(p.pipe_cmds / 4) / r;
				cpu[j] += pa[j].cpu;
				memcpy(all[j] + nall[j], pa[j].us,
				    (size_t)pa[j].n * sizeof(double));
				nall[j] += pa[j].n;
				free(pa[j].us);
				pa[j].us = NULL;
			}
		}
		for (j = 0; j < npa; j++) {
			b_stats(all[j], nall[j], &med, &p99);
			snprintf(name, sizeof(name), "pipe.%d.%s.latency", n,
			    pa[j].name);
			fig(name, med, p99, "us");
			snprintf(name, sizeof(name), "pipe.%d.%s.rate", n,
			    pa[j].name);
			fig(name, (double)nall[j] / secs[j], NAN, "cmd/s");
			if (pa[j].nrelay > 0) {
				snprintf(name, sizeof(name), "pipe.%d.%s.cpu",
				    n, pa[j].name);
				fig(name, cpu[j] / (double)nall[j] * 1e6, NAN,
				    "us CPU/cmd");
			}
			free(all[j]);
		}
		err = 0;
		for (j = 0; j < npa; j++)
			for (i = 0; i < pa[j].nc; i++)
				err += pa[j].c[i]->nerrors;
		if (err > 0)
			fprintf(stderr, "bench: %ld pipelined commands got "
			    "an error\n", err);
		for (j = 0; j < npa; j++)
			b_path_close(&pa[j]);
		b_stop(vfake);
	}
	b_stop(fake);
	free(fdir);
}

/*
 * Read a flood at the clients of pa until each has n events; the first
 * client triggers it.  Events per second, from the first to the last.
 */
static double
b_flood(struct path *pa, long n)
{
	static const char	 trigger[] = "{\"execute\":\"flood\"}\n";
	struct pollfd		 pfd[B_MAXC];
	struct lc		*c;
	double			 t0 = 0, cpu0;
	size_t			 len;
	char			*m;
	int			 i, left = pa->nc;

	for (i = 0; i < pa->nc; i++)
		pa->c[i]->nevents = 0;
	cpu0 = b_cpu_sum(pa->relay, pa->nrelay);
	t0 = b_us();
	if (lc_send(pa->c[0], trigger, sizeof(trigger) - 1) == -1)
		return (-1);
	while (left > 0) {
		for (i = 0; i < pa->nc; i++) {
			pfd[i].fd = pa->c[i]->fd;
			pfd[i].events = pa->c[i]->nevents < n ? POLLIN : 0;
		}
		if (poll(pfd, (nfds_t)pa->nc, T_WAIT_MS) <= 0) {
			fprintf(stderr, "bench: the flood stopped\n");
			return (-1);
		}
		for (i = 0; i < pa->nc; i++) {
			c = pa->c[i];
			if (pfd[i].revents == 0)
				continue;
			if (lc_read(c) == -1)
				return (-1);
			while ((m = lc_next(c, &len)) != NULL)
				if (lc_is_event(m, len) && ++c->nevents == n)
					left--;
		}
	}
	pa->cpu = b_cpu_sum(pa->relay, pa->nrelay) - cpu0;
	return ((double)n / ((b_us() - t0) / 1e6));
}

/*
 * 3. Events from a flooding fake QEMU: directly and through socat to
 * one client, through qmpmuxd to 1, 4 and 16.  Each run is a flood of
 * its own (a monitor of its own, whose first "flood" starts it), and
 * the runs of the paths alternate.
 */
static void
b_events(void)
{
	static const int	 ns[] = { 1, 4, 16 };
	const char		*fargs[6];
	char			*fdir = b_path("flood"), *s, *q, name[64];
	char			 nbuf[32];
	double			 rate[5][16], cpu[5][16], med, p99;
	struct path		 pa;
	pid_t			 fake;
	int			 r, j, i, mon = 0, nmon;

	b_section = "events";
	snprintf(nbuf, sizeof(nbuf), "%ld", p.events);
	fargs[0] = "--flood";
	fargs[1] = nbuf;
	fargs[2] = "--trigger";
	fargs[3] = "flood";
	fargs[4] = NULL;
	nmon = p.event_reps * 5;
	fake = b_fake(fdir, nmon, "fake-flood.log", fargs);
	for (r = 0; r < p.event_reps; r++) {
		for (j = 0; j < 5; j++) {
			memset(&pa, 0, sizeof(pa));
			q = b_path("flood/%d.sock", mon++);
			if (j == 0)
				pa.c[pa.nc++] = lc_ready(q);
			else if (j == 1) {
				s = b_path("flood-socat-%d.sock", r);
				pa.relay[pa.nrelay++] = b_socat(s, q);
				pa.c[pa.nc++] = lc_ready(s);
				free(s);
			} else {
				s = b_path("flood-qmpmuxd-%d-%d.sock", r, j);
				pa.relay[pa.nrelay++] = t_qmpmuxd(q, s, NULL);
				for (i = 0; i < ns[j - 2]; i++)
					pa.c[pa.nc++] = lc_ready(s);
				free(s);
			}
			free(q);
			for (i = 0; i < pa.nc; i++)
				if (pa.c[i] == NULL)
					exit(1);
			if ((rate[j][r] = b_flood(&pa, p.events)) < 0)
				exit(1);
			cpu[j][r] = pa.nrelay > 0 ? pa.cpu /
			    (double)p.events * 1e6 : NAN;
			b_path_close(&pa);
		}
	}
	for (j = 0; j < 5; j++) {
		if (j < 2)
			snprintf(name, sizeof(name), "events.1.%s",
			    j == 0 ? "direct" : "socat");
		else
			snprintf(name, sizeof(name), "events.%d.qmpmuxd",
			    ns[j - 2]);
		b_stats(rate[j], p.event_reps, &med, &p99);
		/* the p99 of a rate is its worst: the lowest of the runs */
		fig(name, med, rate[j][0], "events/s");
		if (j == 0)
			continue;
		strncat(name, ".cpu", sizeof(name) - strlen(name) - 1);
		b_stats(cpu[j], p.event_reps, &med, &p99);
		fig(name, med, p99, "CPU s/M events");
	}
	fig("events.1.qmpmuxd/direct", fig_get("events.1.qmpmuxd", 0) /
	    fig_get("events.1.direct", 0), NAN, "x");
	fig("events.16/1.qmpmuxd.cpu", fig_get("events.16.qmpmuxd.cpu", 0) /
	    fig_get("events.1.qmpmuxd.cpu", 0), NAN, "x");
	b_stop(fake);
	free(fdir);
}

/*
 * 4. Peak RSS under a long flood with a client that stalls: a reader on
 * a block listener reads every event, and a client on a disconnect
 * listener reads none, so the backlog fills to its bounds and stays
 * there until that client is cut off.  The bound is the backlog's
 * bytes and the output of the two clients.
 */
static void
b_mem_flood(void)
{
	const char		*fargs[6], *opts[12];
	char			*fdir = b_path("memflood"), *q, *r, *s;
	char			 nbuf[32];
	struct path		 pa;
	struct lc		*stall;
	pid_t			 fake, proxy;
	long			 idle, peak;
	double			 bound, t0;

	b_section = "memory";
	snprintf(nbuf, sizeof(nbuf), "%ld", p.mem_flood);
	fargs[0] = "--flood";
	fargs[1] = nbuf;
	fargs[2] = "--trigger";
	fargs[3] = "flood";
	fargs[4] = NULL;
	fake = b_fake(fdir, 1, "fake-memflood.log", fargs);
	q = b_path("memflood/0.sock");
	r = b_path("memflood-reader.sock");
	s = b_path("memflood-stall.sock");
	opts[0] = "--max-queued-bytes";
	opts[1] = "4M";
	opts[2] = "--max-client-output";
	opts[3] = "1M";
	opts[4] = "--slow-client";
	opts[5] = "disconnect";
	opts[6] = "--slow-client-timeout";
	opts[7] = "1";
	opts[8] = "--listen";
	opts[9] = s;
	opts[10] = NULL;
	proxy = t_qmpmuxd(q, r, opts);
	bound = 4.0 * 1024 + 2 * 1024.0;	/* KiB */
	memset(&pa, 0, sizeof(pa));
	pa.c[pa.nc++] = lc_ready(r);
	stall = lc_ready(s);
	if (pa.c[0] == NULL || stall == NULL)
		exit(1);
	idle = t_proc_kb(proxy, "VmRSS");
	t0 = b_us();
	/* b_flood sends the trigger; the staller never reads */
	if (b_flood(&pa, p.mem_flood) < 0)
		exit(1);
	peak = t_proc_kb(proxy, "VmHWM");
	fig("mem.flood.idle_rss", (double)idle, NAN, "KiB");
	fig("mem.flood.peak_rss", (double)peak, NAN, "KiB");
	fig("mem.flood.bounds", bound, NAN, "KiB");
	fig("mem.flood.seconds", (b_us() - t0) / 1e6, NAN, "s");
	lc_free(stall);
	b_path_close(&pa);
	b_stop(proxy);
	b_stop(fake);
	free(q);
	free(r);
	free(s);
	free(fdir);
}

/* qmpmuxd on n idle VMs, all negotiated with QEMU: its RSS in KiB. */
static long
b_idle_rss(int n)
{
	char	*fdir = b_path("idle%d", n), *ldir = b_path("idle%d-l", n);
	char	*conf, log[64];
	pid_t	 fake, proxy;
	long	 rss;

	snprintf(log, sizeof(log), "qmpmuxd-idle%d.log", n);
	fake = b_fake(fdir, n, "fake-idle.log", NULL);
	conf = b_conf(n, n, fdir, fdir, ldir, NULL);
	proxy = b_qmpmuxd_conf(conf, n, ldir, log);
	if (b_wait_lines(log, "upstream ready", n, 30000) == -1)
		exit(1);
	rss = t_proc_kb(proxy, "VmRSS");
	b_stop(proxy);
	b_stop(fake);
	free(conf);
	free(fdir);
	free(ldir);
	return (rss);
}

/* 4. RSS per idle VM at 1, 100 and 1000 VMs. */
static void
b_mem_idle(void)
{
	long	 r1, r100, rn;
	char	 name[64];

	b_section = "memory";
	r1 = b_idle_rss(1);
	r100 = b_idle_rss(100);
	rn = p.vms > 100 ? b_idle_rss(p.vms) : r100;
	fig("mem.idle.1vm_rss", (double)r1, NAN, "KiB");
	fig("mem.idle.100vm_rss", (double)r100, NAN, "KiB");
	snprintf(name, sizeof(name), "mem.idle.%dvm_rss", p.vms);
	if (p.vms > 100)
		fig(name, (double)rn, NAN, "KiB");
	fig("mem.idle.per_vm_100", (double)(r100 - r1) / 99, NAN, "KiB/VM");
	if (p.vms > 100) {
		snprintf(name, sizeof(name), "mem.idle.per_vm_%d", p.vms);
		fig(name, (double)(rn - r1) / (p.vms - 1), NAN, "KiB/VM");
	}
}

/* The samples of a variant of the isolation run, over its repetitions. */
struct iso {
	const char	*variant;
	double		*us;		/* healthy VMs' round trips */
	long		 n;
	double		*socat;		/* socat's, side by side */
	long		 ns;
};

/*
 * 5. Round trips of the healthy VMs of p.vms while the last 10% are as
 * the variant says: "healthy", "stopped" (SIGSTOP, with a command of a
 * client of each waiting on it) or "flooding" (events as fast as
 * qmpmuxd reads them, with no client).  One client on each healthy VM,
 * a round trip on each in turn; and, ten at a time in between, round
 * trips through socat to a monitor of the same fake, so that qmpmuxd at
 * 1000 VMs is compared with a plain relay under the same load.
 */
static void
b_iso(struct iso *iso, int rep)
{
	const char	*variant = iso->variant;
	const char	*fargs[4] = { NULL, NULL, NULL, NULL };
	char		*adir = b_path("iso-%s-%d-a", variant, rep);
	char		*bdir = b_path("iso-%s-%d-b", variant, rep);
	char		*ldir = b_path("iso-%s-%d-l", variant, rep), *conf, *s;
	char		*q;
	char		 log[64], flog[64];
	struct lc	**c, **sc, *relay;
	int		 n = p.vms, h = n - n / 10, i, k, j;
	pid_t		 fa, fb, proxy, socat;
	double		 t;
	static const char stuck_cmd[] =
	    "{\"execute\":\"query-status\",\"id\":\"stuck\"}\n";

	if (strcmp(variant, "flooding") == 0) {
		fargs[0] = "--flood";
		fargs[1] = "2000000000";
	}
	snprintf(log, sizeof(log), "qmpmuxd-iso-%s-%d.log", variant, rep);
	snprintf(flog, sizeof(flog), "fake-iso-%s-%d.log", variant, rep);
	/* the healthy VMs' monitors, and one more for socat */
	fa = b_fake(adir, h + 1, flog, NULL);
	fb = b_fake(bdir, n - h, flog, fargs);
	conf = b_conf(n, h, adir, bdir, ldir, NULL);
	proxy = b_qmpmuxd_conf(conf, n, ldir, log);
	if (b_wait_lines(log, "upstream ready", n, 30000) == -1)
		exit(1);
	s = b_path("iso-%s-%d-socat.sock", variant, rep);
	q = b_path("iso-%s-%d-a/%d.sock", variant, rep, h);
	socat = b_socat(s, q);
	if ((relay = lc_ready(s)) == NULL)
		exit(1);
	free(s);
	free(q);
	if ((c = calloc((size_t)n, sizeof(*c))) == NULL)
		abort();
	sc = c + h;
	for (i = 0; i < n; i++) {
		s = b_path("iso-%s-%d-l/%d.sock", variant, rep, i);
		if ((c[i] = lc_ready(s)) == NULL)
			exit(1);
		free(s);
	}
	if (strcmp(variant, "stopped") == 0) {
		if (t_sigstop(fb, T_WAIT_MS) == -1)
			exit(1);
		for (i = 0; i < n - h; i++)
			lc_send(sc[i], stuck_cmd, sizeof(stuck_cmd) - 1);
	}
	/* a warm-up round over every healthy VM */
	for (i = 0; i < h; i++)
		if (lc_rtt(c[i]) < 0)
			exit(1);
	for (k = 0; k < p.iso_rounds; k += 10) {
		for (j = k; j < k + 10 && j < p.iso_rounds; j++) {
			if ((t = lc_rtt(c[j % h])) < 0)
				exit(1);
			iso->us[iso->n++] = t;
		}
		for (j = k; j < k + 10 && j < p.iso_rounds; j++) {
			if ((t = lc_rtt(relay)) < 0)
				exit(1);
			iso->socat[iso->ns++] = t;
		}
	}
	for (i = 0; i < n; i++)
		lc_free(c[i]);
	free(c);
	lc_free(relay);
	b_stop(socat);
	b_stop(proxy);
	b_stop(fa);
	b_stop(fb);
	free(conf);
	free(adir);
	free(bdir);
	free(ldir);
}

/*
 * 5. Isolation at scale: the variants in turn, repeated, so that a
 * burst of the machine's noise falls on all of them alike; each
 * variant's samples pooled over its repetitions.
 */
static void
b_iso_all(void)
{
	static const char *variants[3] = { "healthy", "stopped", "flooding" };
	struct iso	 iso[3];
	char		 name[64];
	double		 med, p99;
	int		 r, v;

	b_section = "isolation at scale";
	memset(iso, 0, sizeof(iso));
	for (v = 0; v < 3; v++) {
		iso[v].variant = variants[v];
		iso[v].us = calloc((size_t)(p.iso_rounds * p.iso_reps),
		    sizeof(double));
		iso[v].socat = calloc((size_t)(p.iso_rounds * p.iso_reps),
		    sizeof(double));
		if (iso[v].us == NULL || iso[v].socat == NULL)
			abort();
	}
	for (r = 0; r < p.iso_reps; r++)
		for (v = 0; v < 3; v++)
			b_iso(&iso[v], r);
	for (v = 0; v < 3; v++) {
		b_stats(iso[v].us, iso[v].n, &med, &p99);
		snprintf(name, sizeof(name), "iso.%s", iso[v].variant);
		fig(name, med, p99, "us");
		b_stats(iso[v].socat, iso[v].ns, &med, &p99);
		snprintf(name, sizeof(name), "iso.%s.socat", iso[v].variant);
		fig(name, med, p99, "us");
		free(iso[v].us);
		free(iso[v].socat);
	}
	/* each against socat in the same run: the machine's noise cancels */
	for (v = 0; v < 3; v++) {
		char	 a[64], b[64];

		snprintf(a, sizeof(a), "iso.%s", variants[v]);
		snprintf(b, sizeof(b), "iso.%s.socat", variants[v]);
		snprintf(name, sizeof(name), "iso.%s.qmpmuxd/socat",
		    variants[v]);
		fig(name, fig_get(a, 0) / fig_get(b, 0), fig_get(a, 1) /
		    fig_get(b, 1), "x");
	}
	fig("iso.stopped/healthy", fig_get("iso.stopped", 0) /
	    fig_get("iso.healthy", 0), fig_get("iso.stopped", 1) /
	    fig_get("iso.healthy", 1), "x");
	fig("iso.flooding/healthy", fig_get("iso.flooding", 0) /
	    fig_get("iso.healthy", 0), fig_get("iso.flooding", 1) /
	    fig_get("iso.healthy", 1), "x");
}

/* Connect the start-up run's client of healthy VM i and send its hello. */
static int
b_start_connect(struct lc **c, int i, const char *ldir, int ep)
{
	static const char	 hello[] = "{\"execute\":\"qmp_capabilities\"}"
				    "\n{\"execute\":\"query-status\",\"id\":1}\n";
	struct epoll_event	 ev;
	char			 path[160];

	snprintf(path, sizeof(path), "%s/%d.sock", ldir, i);
	if ((c[i] = lc_connect(path, 1)) == NULL)
		return (-1);
	lc_send(c[i], hello, sizeof(hello) - 1);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = (uint32_t)i;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c[i]->fd, &ev) == -1)
		abort();
	return (0);
}

/*
 * 6. Start-up: with the fake's monitors listening, 10% of them silent,
 * qmpmuxd starts on p.vms VMs, and a client of each healthy VM connects
 * the moment inotify names its listener, negotiates and sends
 * query-status in one write.  The time from the start of qmpmuxd to
 * each reply; all of them must come.  Milliseconds.  The clients are
 * on epoll and each listener is tried once it appears, so that the
 * bench's own work stays linear in the VMs.
 */
static void
b_start(int rep, double *all_ms, double *med_ms)
{
	char			*fdir = b_path("start%d", rep), *ldir, *m;
	char			*conf, log[64], kbuf[16];
	char			 evb[65536] __attribute__((aligned(8)));
	const char		*fargs[3], *argv[5];
	struct inotify_event	*ie;
	struct epoll_event	 evs[256], ev;
	struct lc		**c;
	double			 t0, *ms;
	int			 n = p.vms, h = n - n / 10, i, k, in, ep;
	int			 done = 0, nev, missing;
	pid_t			 fake, proxy;
	ssize_t			 r;
	size_t			 len;
	char			*end;
	long			 idx;

	ldir = b_path("start%d-l", rep);
	snprintf(kbuf, sizeof(kbuf), "%d", h);
	fargs[0] = "--silent-from";
	fargs[1] = kbuf;
	fargs[2] = NULL;
	fake = b_fake(fdir, n, "fake-start.log", fargs);
	conf = b_conf(n, n, fdir, fdir, ldir, NULL);
	snprintf(log, sizeof(log), "qmpmuxd-start%d.log", rep);
	if ((c = calloc((size_t)h, sizeof(*c))) == NULL ||
	    (ms = calloc((size_t)h, sizeof(*ms))) == NULL)
		abort();
	if ((in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    inotify_add_watch(in, ldir, IN_CREATE | IN_MOVED_TO) == -1 ||
	    (ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		abort();
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = UINT32_MAX;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev) == -1)
		abort();
	argv[0] = t_bin("QMPMUXD");
	argv[1] = "-d";
	argv[2] = "-f";
	argv[3] = conf;
	argv[4] = NULL;
	t0 = b_us();
	proxy = t_spawn(argv, log);
	missing = h;
	while (done < h && b_us() - t0 < 30e6) {
		/*
		 * A listener made under its own name (not renamed into
		 * place) may refuse for a moment: those are tried again
		 * on each wake, and at least every 10 ms.
		 */
		nev = epoll_wait(ep, evs, 256, missing > 0 ? 10 : 1000);
		for (k = 0; k < nev; k++) {
			if (evs[k].data.u32 == UINT32_MAX) {
				while ((r = read(in, evb, sizeof(evb))) > 0) {
					for (m = evb; m < evb + r; m +=
					    sizeof(*ie) + ie->len) {
						ie = (struct inotify_event *)
						    (void *)m;
						idx = strtol(ie->name, &end,
						    10);
						if (ie->len == 0 ||
						    strcmp(end, ".sock") != 0 ||
						    idx < 0 || idx >= h ||
						    c[idx] != NULL)
							continue;
						if (b_start_connect(c,
						    (int)idx, ldir, ep) == 0)
							missing--;
					}
				}
				continue;
			}
			i = (int)evs[k].data.u32;
			lc_read(c[i]);
			while (c[i]->done == 0 &&
			    (m = lc_next(c[i], &len)) != NULL) {
				if (!lc_is_return(m, len) ||
				    memmem(m, len, "\"id\"", 4) == NULL)
					continue;
				c[i]->done = b_us();
				ms[done++] = (c[i]->done - t0) / 1e3;
				epoll_ctl(ep, EPOLL_CTL_DEL, c[i]->fd, NULL);
			}
		}
		if (missing > 0 && nev == 0) {
			char	 path[160];

			for (i = 0; i < h; i++) {
				snprintf(path, sizeof(path), "%s/%d.sock",
				    ldir, i);
				if (c[i] == NULL && t_is_socket(path) &&
				    b_start_connect(c, i, ldir, ep) == 0)
					missing--;
			}
		}
	}
	if (done < h) {
		fprintf(stderr, "bench: only %d of %d healthy VMs served\n",
		    done, h);
		exit(1);
	}
	b_stats(ms, h, med_ms, all_ms);
	*all_ms = ms[h - 1];
	for (i = 0; i < h; i++)
		lc_free(c[i]);
	close(in);
	close(ep);
	b_stop(proxy);
	b_stop(fake);
	free(c);
	free(ms);
	free(conf);
	free(fdir);
	free(ldir);
}

/* 6. Start-up, repeated. */
static void
b_start_all(void)
{
	double	 all[16], med[16], a, m, x;
	int	 r;

	b_section = "start-up";
	for (r = 0; r < p.start_reps; r++)
		b_start(r, &all[r], &med[r]);
	b_stats(med, p.start_reps, &m, &x);
	fig("start.vm_serves", m, NAN, "ms");
	b_stats(all, p.start_reps, &a, &x);
	fig("start.all_serve", a, x, "ms");
}

/* The instructions a callgrind output file counts, or -1. */
static double
b_cg_total(const char *file)
{
	char		 line[512];
	double		 v = -1;
	FILE		*f;

	if ((f = fopen(file, "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "summary:", 8) == 0 ||
		    strncmp(line, "totals:", 7) == 0)
			v = strtod(line + (line[0] == 's' ? 8 : 7), NULL);
	}
	fclose(f);
	return (v);
}

/*
 * A relay ("qmpmuxd" or "socat") under callgrind, on the fake's monitor
 * mon: one client, rounds round trips, then the flood if events;
 * returns the instructions the relay ran in all.
 */
static double
b_cg_run(const char *relay, const char *fdir, int mon, int rounds,
    long events)
{
	char		*out = b_path("callgrind.%s.%d", relay, mon);
	char		*q = b_path("%s/%d.sock", fdir, mon);
	char		*l = b_path("cg-%s-%d.sock", relay, mon), *opt;
	char		*u = NULL, *u2 = NULL;
	char		 log[64];
	const char	*argv[16];
	struct path	 pa;
	pid_t		 pid;
	int		 i = 0, k;
	double		 ir;

	if (asprintf(&opt, "--callgrind-out-file=%s", out) == -1)
		abort();
	argv[i++] = "valgrind";
	argv[i++] = "--tool=callgrind";
	argv[i++] = opt;
	if (strcmp(relay, "socat") == 0) {
		if (asprintf(&u, "UNIX-LISTEN:%s", l) == -1)
			abort();
		argv[i++] = "socat";
		argv[i++] = "-d";
		argv[i++] = "-d";
		argv[i++] = u;
		if (asprintf(&u2, "UNIX-CONNECT:%s", q) == -1)
			abort();
		argv[i++] = u2;
	} else {
		argv[i++] = t_bin("QMPMUXD");
		argv[i++] = "-d";
		argv[i++] = "--control";
		argv[i++] = "none";
		argv[i++] = "--upstream";
		argv[i++] = q;
		argv[i++] = "--listen";
		argv[i++] = l;
	}
	argv[i] = NULL;
	snprintf(log, sizeof(log), "callgrind-%s-%d.log", relay, mon);
	b_touch(log);
	pid = t_spawn(argv, log);
	/* socat's path is there before it listens; its line says when */
	if ((strcmp(relay, "socat") == 0 ? t_wait_log(log, "listening on",
	    60000) : t_wait_socket(l, 60000)) == -1) {
		fprintf(stderr, "bench: %s under callgrind did not listen; see "
		    "%s/%s\n", relay, t_dir(), log);
		exit(1);
	}
	memset(&pa, 0, sizeof(pa));
	if ((pa.c[pa.nc++] = lc_ready(l)) == NULL)
		exit(1);
	for (k = 0; k < rounds; k++)
		if (lc_rtt(pa.c[0]) < 0)
			exit(1);
	if (events > 0 && b_flood(&pa, events) < 0)
		exit(1);
	b_path_close(&pa);
	/* socat ends with its client; qmpmuxd on SIGTERM */
	if (t_wait_exit(pid, strcmp(relay, "socat") == 0 ? 60000 : 0) == -1)
		t_stop(pid, SIGTERM);
	ir = b_cg_total(out);
	free(out);
	free(q);
	free(l);
	free(opt);
	free(u);
	free(u2);
	return (ir);
}

/*
 * 7. Instructions per round trip and per event, under callgrind: each
 * relay run three times, with 1 round trip, with 1 + cg_rounds, and
 * with 1 and a flood; the differences over the counts.
 */
static void
b_instr(void)
{
	static const char	*relays[] = { "socat", "qmpmuxd" };
	const char		*fargs[6];
	char			*fdir = b_path("cg"), nbuf[32], name[64];
	double			 base, rt, ev;
	pid_t			 fake;
	int			 r, mon = 0;

	b_section = "instructions (callgrind)";
	snprintf(nbuf, sizeof(nbuf), "%ld", p.cg_events);
	fargs[0] = "--flood";
	fargs[1] = nbuf;
	fargs[2] = "--trigger";
	fargs[3] = "flood";
	fargs[4] = NULL;
	fake = b_fake(fdir, 6, "fake-cg.log", fargs);
	for (r = 0; r < 2; r++) {
		base = b_cg_run(relays[r], "cg", mon++, 1, 0);
		rt = b_cg_run(relays[r], "cg", mon++, 1 + p.cg_rounds, 0);
		ev = b_cg_run(relays[r], "cg", mon++, 1, p.cg_events);
		if (base < 0 || rt < 0 || ev < 0) {
			fprintf(stderr, "bench: callgrind gave no count for "
			    "%s\n", relays[r]);
			continue;
		}
		snprintf(name, sizeof(name), "instr.%s.rtt", relays[r]);
		fig(name, (rt - base) / p.cg_rounds, NAN, "instr/rtt");
		snprintf(name, sizeof(name), "instr.%s.event", relays[r]);
		fig(name, (ev - base) / (double)p.cg_events, NAN,
		    "instr/event");
	}
	b_stop(fake);
	free(fdir);
}

/* The sections asked for (--only), all when NULL. */
static const char	*b_only;

/* Whether the section name is to run: --only's list has it, or is none. */
static int
b_run(const char *name)
{
	const char	*s = b_only;
	size_t		 len = strlen(name);

	if (s == NULL)
		return (1);
	while ((s = strstr(s, name)) != NULL) {
		if ((s == b_only || s[-1] == ',') &&
		    (s[len] == '\0' || s[len] == ','))
			return (1);
		s += len;
	}
	return (0);
}

/* Whether a program runs: valgrind, for the instruction counts. */
static int
b_have(const char *prog)
{
	char	 cmd[128];

	snprintf(cmd, sizeof(cmd), "%s --version >/dev/null 2>&1", prog);
	return (system(cmd) == 0);
}

/* Judge the targets of issue 13 from the figures. */
static void
b_targets(void)
{
	double	 a, b, c, d;
	char	 name[64], name2[64];

	a = fig_get("rtt.fake.qmpmuxd", 0);
	b = fig_get("rtt.fake.socat", 0);
	target("round trip median <= socat's (fake QEMU)", a, b,
	    "%.1f us vs %.1f us", a, b);
	a = fig_get("rtt.fake.qmpmuxd", 1);
	b = fig_get("rtt.fake.socat", 1);
	target("round trip p99 <= socat's (fake QEMU)", a, b,
	    "%.1f us vs %.1f us", a, b);
	a = fig_get("rtt.qemu.qmpmuxd", 0);
	b = fig_get("rtt.qemu.socat", 0);
	target("round trip median <= socat's (real QEMU)", a, b,
	    "%.1f us vs %.1f us", a, b);
	a = fig_get("rtt.qemu.qmpmuxd", 1);
	b = fig_get("rtt.qemu.socat", 1);
	target("round trip p99 <= socat's (real QEMU)", a, b,
	    "%.1f us vs %.1f us", a, b);
	a = fig_get("pipe.16.qmpmuxd-vms.latency", 0);
	b = fig_get("pipe.16.socat.latency", 0);
	c = fig_get("pipe.16.qmpmuxd-vms.latency", 1);
	d = fig_get("pipe.16.socat.latency", 1);
	target("16 clients pipelining, a VM each: <= socat's",
	    fmax(a / b, c / d), 1, "median %.0f vs %.0f us, p99 %.0f vs "
	    "%.0f us", a, b, c, d);
	a = fig_get("pipe.16.qmpmuxd.latency", 0);
	c = fig_get("pipe.16.qmpmuxd.latency", 1);
	target("16 clients pipelining, one VM: <= socat's",
	    fmax(a / b, c / d), 1, "median %.0f vs %.0f us, p99 %.0f vs "
	    "%.0f us", a, b, c, d);
	snprintf(name, sizeof(name), "%d VMs: healthy round trip <= socat's",
	    p.vms);
	a = fig_get("iso.healthy", 0);
	b = fig_get("iso.healthy.socat", 0);
	c = fig_get("iso.healthy", 1);
	d = fig_get("iso.healthy.socat", 1);
	target(name, fmax(a / b, c / d), 1, "median %.1f vs %.1f us, p99 "
	    "%.1f vs %.1f us", a, b, c, d);
	a = fig_get("rtt.fake.qmpmuxd.cpu", 0);
	b = fig_get("rtt.fake.socat.cpu", 0);
	target("CPU per round trip <= socat's", a, b, "%.1f vs %.1f us",
	    a, b);
	a = fig_get("events.1.qmpmuxd/direct", 0);
	target("events to 1 client >= 0.8x direct", 0.8, a, "%.2fx", a);
	a = fig_get("events.16/1.qmpmuxd.cpu", 0);
	target("16-way fan-out < 3x the CPU of 1 client", a, 3, "%.2fx", a);
	a = fig_get("events.1.qmpmuxd.cpu", 0);
	target("< 1 CPU s per million events (1 client)", a, 1, "%.2f s", a);
	a = fig_get("mem.flood.peak_rss", 0);
	b = fig_get("mem.flood.bounds", 0) + 8192;
	target("flood peak RSS <= bounds + 8 MiB", a, b, "%.0f KiB vs %.0f "
	    "KiB", a, b);
	snprintf(name2, sizeof(name2), "mem.idle.per_vm_%d", p.vms);
	a = fig_get(p.vms > 100 ? name2 : "mem.idle.per_vm_100", 0);
	target("idle VM < 16 KiB", a, 16, "%.1f KiB", a);
	a = fig_get("iso.stopped/healthy", 1);
	snprintf(name, sizeof(name), "10%% of %d VMs stopped: healthy p99 "
	    "<= 1.2x", p.vms);
	target(name, a, 1.2, "%.2fx", a);
	a = fig_get("iso.flooding/healthy", 1);
	snprintf(name, sizeof(name), "10%% of %d VMs flooding: healthy p99 "
	    "<= 1.2x", p.vms);
	target(name, a, 1.2, "%.2fx", a);
	a = fig_get("start.all_serve", 0);
	snprintf(name, sizeof(name), "all healthy of %d VMs serve within "
	    "200 ms", p.vms);
	target(name, a, 200, "%.0f ms", a);
	bp_targets();
}

/* The machine, for the table's head and the JSON. */
static void
b_machine(char *cpu, size_t cpulen, char *kernel, size_t klen)
{
	struct utsname	 u;
	char		 line[256], *v;
	FILE		*f;

	snprintf(cpu, cpulen, "unknown");
	if ((f = fopen("/proc/cpuinfo", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strncmp(line, "model name", 10) != 0 ||
			    (v = strchr(line, ':')) == NULL)
				continue;
			v += 2;
			v[strcspn(v, "\n")] = '\0';
			snprintf(cpu, cpulen, "%s", v);
			break;
		}
		fclose(f);
	}
	uname(&u);
	snprintf(kernel, klen, "%s %s %s", u.sysname, u.release, u.machine);
}

/* A number for JSON: null for NAN. */
static void
b_json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "null");
	else
		fprintf(f, "%.6g", v);
}

/* Print the table, and write the JSON. */
static void
b_report(const char *json, double secs)
{
	const char	*last = NULL;
	char		 cpu[128], kernel[256];
	FILE		*f;
	int		 i;

	b_machine(cpu, sizeof(cpu), kernel, sizeof(kernel));
	printf("qmpmux benchmark (%s run, %.0f s): %ld CPUs, %s, %s; "
	    "sockets in %s\n", p.quick ? "quick" : "full", secs,
	    sysconf(_SC_NPROCESSORS_ONLN), cpu, kernel, b_sockdir);
	printf("%-34s %12s %12s  %s\n", "figure", "median", "p99", "unit");
	for (i = 0; i < nfigs; i++) {
		if (last == NULL || strcmp(last, figs[i].section) != 0) {
			printf("-- %s\n", figs[i].section);
			last = figs[i].section;
		}
		printf("%-34s %12.2f ", figs[i].name, figs[i].med);
		if (isnan(figs[i].p99))
			printf("%12s", "");
		else
			printf("%12.2f", figs[i].p99);
		printf("  %s\n", figs[i].unit);
	}
	printf("-- targets\n");
	for (i = 0; i < ntargets; i++)
		printf("%-4s %-52s %s\n", targets[i].met == 1 ? "met" :
		    targets[i].met == 0 ? "MISS" : "n/a", targets[i].text,
		    targets[i].measured);

	if ((f = fopen(json, "w")) == NULL) {
		fprintf(stderr, "bench: %s: %s\n", json, strerror(errno));
		return;
	}
	fprintf(f, "{\n  \"machine\": {\"nproc\": %ld, \"cpu\": \"%s\", "
	    "\"kernel\": \"%s\"},\n", sysconf(_SC_NPROCESSORS_ONLN), cpu,
	    kernel);
	fprintf(f, "  \"sockets\": \"%s\",\n  \"rtt_cpu\": %d,\n",
	    b_sockdir, b_rtt_cpu);
	fprintf(f, "  \"run\": {\"quick\": %s, \"seconds\": %.1f, \"vms\": "
	    "%d, \"rtt_rounds_fake\": %d, \"rtt_rounds_qemu\": %d, "
	    "\"pipe_cmds\": %ld, \"events\": %ld, \"event_reps\": %d, "
	    "\"mem_flood\": %ld, \"iso_rounds\": %d, \"iso_reps\": %d, "
	    "\"start_reps\": %d, \"prio_samples\": %d, \"prio_parts\": "
	    "%d},\n",
	    p.quick ? "true" : "false", secs, p.vms, p.rtt_fake, p.rtt_qemu,
	    p.pipe_cmds, p.events, p.event_reps, p.mem_flood, p.iso_rounds,
	    p.iso_reps, p.start_reps, p.prio_samples, p.prio_parts);
	fprintf(f, "  \"figures\": {\n");
	for (i = 0; i < nfigs; i++) {
		fprintf(f, "    \"%s\": {\"median\": ", figs[i].name);
		b_json_num(f, figs[i].med);
		fprintf(f, ", \"p99\": ");
		b_json_num(f, figs[i].p99);
		fprintf(f, ", \"unit\": \"%s\"}%s\n", figs[i].unit,
		    i + 1 < nfigs ? "," : "");
	}
	fprintf(f, "  },\n  \"targets\": [\n");
	for (i = 0; i < ntargets; i++)
		fprintf(f, "    {\"target\": \"%s\", \"measured\": \"%s\", "
		    "\"met\": %s}%s\n", targets[i].text, targets[i].measured,
		    targets[i].met == 1 ? "true" : targets[i].met == 0 ?
		    "false" : "null", i + 1 < ntargets ? "," : "");
	fprintf(f, "  ]\n}\n");
	fclose(f);
	printf("figures written to %s\n", json);
}

int
main(int argc, char *argv[])
{
	const char	*json = "bench.json", *e;
	double		 t0 = b_us();
	int		 i;

	if ((e = getenv("BENCH_QUICK")) != NULL && *e != '\0' &&
	    strcmp(e, "0") != 0)
		p.quick = 1;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			p.quick = 1;
		else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
			json = argv[++i];
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			b_only = argv[++i];
		else {
			fprintf(stderr, "usage: bench [--quick] [--json FILE] "
			    "[--only rtt,pipe,events,mem,iso,start,prio,instr]"
			    "\n");
			return (1);
		}
	}
	if (p.quick) {
		p.rtt_fake = 300;
		p.rtt_qemu = 200;
		p.pipe_cmds = 2000;
		p.events = 20000;
		p.event_reps = 1;
		p.mem_flood = 50000;
		p.vms = 100;
		p.iso_rounds = 500;
		p.iso_reps = 1;
		p.start_reps = 1;
		p.cg_rounds = 50;
		p.cg_events = 2000;
		p.prio_samples = 50;
		p.prio_parts = 2;
	} else {
		p.rtt_fake = 5000;
		p.rtt_qemu = 3000;
		p.pipe_cmds = 40000;
		p.events = 200000;
		p.event_reps = 5;
		p.mem_flood = 10000000;
		p.vms = 1000;
		p.iso_rounds = 6000;
		p.iso_reps = 3;
		p.start_reps = 5;
		p.cg_rounds = 2000;
		p.cg_events = 50000;
		p.prio_samples = 1000;
		p.prio_parts = 5;
	}
	signal(SIGPIPE, SIG_IGN);
	b_nofile();
	/* an RSS must measure qmpmuxd, not a sanitizer's quarantine */
	t_small_quarantine();
	b_sockdir_init();
	fprintf(stderr, "bench: %s run in %s\n", p.quick ? "quick" : "full",
	    t_dir());

	if (b_run("rtt")) {
		b_rtt_cpu = b_pin(1);
		b_rtt_fake();
		b_rtt_qemu();
		b_pin(0);
	}
	if (b_run("pipe"))
		b_pipe_all();
	if (b_run("events"))
		b_events();
	if (b_run("mem"))
		b_mem_flood();
	if (b_run("mem"))
		b_mem_idle();
	if (b_run("iso"))
		b_iso_all();
	if (b_run("start"))
		b_start_all();
	if (b_run("prio"))
		bp_all(p.prio_samples, p.prio_parts);
	if (b_run("instr")) {
		if (b_sanitized)
			fprintf(stderr, "bench: a sanitizer build: no "
			    "instruction counts\n");
		else if (b_have("valgrind"))
			b_instr();
		else
			fprintf(stderr, "bench: no valgrind: no instruction "
			    "counts\n");
	}
	b_targets();
	b_report(json, (b_us() - t0) / 1e6);
	return (0);
}
