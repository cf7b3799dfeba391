/*
 * What a spool (src/spool.c) costs a relay, side by side: a client
 * sends a QMP-sized command and waits for a reply of QEMU's size from
 * an echo server behind a relay, one at a time, and the round trip is
 * timed with the relay a plain read and write one, one that moves every
 * byte through spools (splice into a ring, a transaction into another,
 * sendfile out: what a crash would keep), or socat; and with no relay.
 * Also the relay's CPU per round trip, and 2 MB of events one way.
 *
 * usage: bench_spool [ROUNDS]
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qmpmux.h"

static const char	 cmd[] =
    "{\"execute\": \"query-status\", \"id\": \"libvirt-413\"}\r\n";
static const char	 reply[] = "{\"return\": {\"status\": \"running\", "
    "\"singlestep\": false, \"running\": true}, \"id\": \"libvirt-413\"}\r\n";
static const char	 event[] = "{\"timestamp\": {\"seconds\": 1700000000, "
    "\"microseconds\": 123456}, \"event\": \"BALLOON_CHANGE\", \"data\": "
    "{\"actual\": 1073741824}}\r\n";

static double
now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec * 1e6 + ts.tv_nsec / 1e3);
}

static void
nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Read exactly len bytes (blocking). */
static int
read_all(int fd, char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = read(fd, buf, len)) <= 0)
			return (-1);
		buf += n;
		len -= (size_t)n;
	}
	return (0);
}

/* QEMU's part: a reply for each command, or events without end. */
static void
echo(int fd, int events)
{
	char	 buf[4096];
	size_t	 clen = sizeof(cmd) - 1;
	int	 i;

	if (events) {
		char	 many[64 * sizeof(event)];
		size_t	 len = 0;

		for (i = 0; i < 64; i++) {
			memcpy(many + len, event, sizeof(event) - 1);
			len += sizeof(event) - 1;
		}
		for (;;) {
			if (write(fd, many, len) <= 0)
				_exit(0);
		}
	}
	for (;;) {
		if (read_all(fd, buf, clen) == -1)
			_exit(0);
		if (write(fd, reply, sizeof(reply) - 1) <= 0)
			_exit(0);
	}
}

/* A relay that reads and writes, the way the proxy does today. */
static void
relay_plain(int a, int b)
{
	struct pollfd	 pfd[2];
	char		 buf[65536];
	ssize_t		 n;
	int		 i;

	pfd[0].fd = a;
	pfd[1].fd = b;
	pfd[0].events = pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) == -1)
			continue;
		for (i = 0; i < 2; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP)))
				continue;
			if ((n = read(pfd[i].fd, buf, sizeof(buf))) <= 0)
				_exit(0);
			if (write(pfd[1 - i].fd, buf, (size_t)n) != n)
				_exit(1);
		}
	}
}

/*
 * A relay through spools: each direction a ring read into and a ring
 * sent from, each piece moved between them in a transaction, as the
 * proxy would move a message it has read.
 */
static void
relay_spool(int a, int b)
{
	size_t		 caps[4] = { 1 << 20, 1 << 20, 1 << 20, 1 << 20 };
	int		 out[4] = { 0, 1, 0, 1 };
	struct spool	*sp;
	struct pollfd	 pfd[2];
	struct iovec	 iov[2];
	size_t		 n;
	int		 i;

	if ((sp = spool_create(4, caps, out)) == NULL)
		_exit(1);
	nonblock(a);
	nonblock(b);
	pfd[0].fd = a;
	pfd[1].fd = b;
	for (;;) {
		for (i = 0; i < 2; i++) {
			pfd[i].events = POLLIN;
			/* ring 2i + 1 is sent to the other side */
			if (spool_used(sp, 2 * (1 - i) + 1) > 0)
				pfd[i].events |= POLLOUT;
		}
		if (poll(pfd, 2, -1) == -1)
			continue;
		for (i = 0; i < 2; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP)))
				continue;
			if (spool_recv(sp, 2 * i, pfd[i].fd) == 0)
				_exit(0);
			n = spool_peek(sp, 2 * i, iov);
			if (n > spool_room(sp, 2 * i + 1))
				n = spool_room(sp, 2 * i + 1);
			if (iov[0].iov_len > n)
				iov[0].iov_len = n;
			iov[1].iov_len = n - iov[0].iov_len;
			if (spool_put(sp, 2 * i + 1, iov, 2) == -1 ||
			    spool_take(sp, 2 * i, n) == -1 ||
			    spool_commit(sp) == -1)
				_exit(1);
			spool_send(sp, 2 * i + 1, pfd[1 - i].fd);
		}
		for (i = 0; i < 2; i++) {
			if (pfd[i].revents & POLLOUT)
				spool_send(sp, 2 * (1 - i) + 1, pfd[i].fd);
		}
	}
}

static void
relay_socat(int a, int b)
{
	char	 fa[32], fb[32];

	snprintf(fa, sizeof(fa), "FD:%d", a);
	snprintf(fb, sizeof(fb), "FD:%d", b);
	execlp("socat", "socat", "-b65536", fa, fb, (char *)NULL);
	_exit(127);
}

/*
 * QEMU's side (echo, events or replies), and the relay between it and
 * the client (none: the client talks to QEMU's side at once); the
 * client's socket, the pids in *qp and *rp (-1: no relay).
 */
static int
start(void (*relay)(int, int), int events, pid_t *qp, pid_t *rp)
{
	int	 q[2], c[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, q) == -1 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, c) == -1)
		exit(1);
	if ((*qp = fork()) == 0) {
		close(q[0]);
		close(c[0]);
		close(c[1]);
		echo(q[1], events);
	}
	close(q[1]);
	*rp = -1;
	if (relay == NULL) {
		close(c[0]);
		close(c[1]);
		return (q[0]);
	}
	if ((*rp = fork()) == 0) {
		close(c[0]);
		relay(c[1], q[0]);
	}
	close(c[1]);
	close(q[0]);
	return (c[0]);
}

static int
cmp(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return (x < y ? -1 : x > y);
}

/*
 * One run: QEMU's side, the relay (none: the client talks to QEMU's
 * side at once), and the client's round trips; median, p99 and the
 * relay's CPU per round trip, in microseconds.
 */
static void
run(const char *name, void (*relay)(int, int), int rounds)
{
	int		 c, i;
	pid_t		 qp, rp;
	double		*t, t0, med, p99, cpu = 0;
	char		 buf[256];
	struct rusage	 ru;
	int		 status;

	c = start(relay, 0, &qp, &rp);
	if ((t = calloc((size_t)rounds, sizeof(*t))) == NULL)
		exit(1);
	for (i = 0; i < rounds; i++) {
		t0 = now_us();
		if (write(c, cmd, sizeof(cmd) - 1) != sizeof(cmd) - 1 ||
		    read_all(c, buf, sizeof(reply) - 1) == -1) {
			fprintf(stderr, "%s: round %d failed\n", name, i);
			exit(1);
		}
		t[i] = now_us() - t0;
	}
	close(c);
	if (rp != -1) {
		getrusage(RUSAGE_CHILDREN, &ru);
		cpu = -(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 -
		    ru.ru_utime.tv_usec - ru.ru_stime.tv_usec;
		waitpid(rp, &status, 0);
		getrusage(RUSAGE_CHILDREN, &ru);
		cpu += (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
		    ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
	}
	kill(qp, SIGKILL);
	waitpid(qp, &status, 0);
	qsort(t, (size_t)rounds, sizeof(*t), cmp);
	med = t[rounds / 2];
	p99 = t[rounds * 99 / 100];
	free(t);
	printf("%-8s round trip: median %7.1f us, p99 %7.1f us", name, med, p99);
	if (rp != -1)
		printf(", relay CPU %5.1f us", cpu / rounds);
	printf("\n");
}

/* Events one way through the relay: messages a second. */
static void
run_events(const char *name, void (*relay)(int, int), long want)
{
	int		 c;
	pid_t		 qp, rp;
	static char	 buf[1 << 16];
	long		 bytes = 0, need = want * (long)(sizeof(event) - 1);
	double		 t0;
	ssize_t		 n;
	int		 status;

	c = start(relay, 1, &qp, &rp);
	t0 = now_us();
	while (bytes < need && (n = read(c, buf, sizeof(buf))) > 0)
		bytes += n;
	t0 = now_us() - t0;
	close(c);
	kill(qp, SIGKILL);
	waitpid(qp, &status, 0);
	if (rp != -1) {
		kill(rp, SIGKILL);
		waitpid(rp, &status, 0);
	}
	printf("%-8s events: %.2f M/s\n", name,
	    (double)bytes / (sizeof(event) - 1) / t0);
}

int
main(int argc, char *argv[])
{
	int	 rounds = argc > 1 ? atoi(argv[1]) : 20000;
	int	 rep;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 2 && strcmp(argv[2], "events") == 0) {
		run_events("spool", relay_spool, 2000000);
		return (0);
	}
	for (rep = 0; rep < 3; rep++) {
		run("direct", NULL, rounds);
		run("socat", relay_socat, rounds);
		run("plain", relay_plain, rounds);
		run("spool", relay_spool, rounds);
	}
	for (rep = 0; rep < 2; rep++) {
		run_events("direct", NULL, 2000000);
		run_events("socat", relay_socat, 2000000);
		run_events("plain", relay_plain, 2000000);
		run_events("spool", relay_spool, 2000000);
	}
	return (0);
}
