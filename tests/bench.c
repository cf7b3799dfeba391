/*
 * Benchmark: figures side by side in one run, never asserted.
 *
 * 1. query-status round trip against the real QEMU: direct on QEMU's
 *    socket, through qmpmuxd, and through socat as a plain relay.  Each
 *    path has a QEMU of its own, since QEMU serves one client a monitor.
 * 2. Event throughput: the fake QEMU floods N events; a client reads them
 *    directly and through qmpmuxd.
 *
 * Usage (from a build directory): make bench, or
 *   QMPMUXD=... QEMU=... FAKEQEMU=... tests/bench [ROUNDS] [EVENTS]
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

/* Microseconds of the monotonic clock. */
static double
bench_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3);
}

static int
bench_cmp(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return ((x > y) - (x < y));
}

/* Time rounds of query-status on a negotiated client; fill sorted us[]. */
static int
bench_rounds(struct t_client *c, double *us, int rounds)
{
	char	*m;
	double	 t0;
	int	 i;

	for (i = -100; i < rounds; i++) {
		t0 = bench_us();
		m = t_cmd(c, "{\"execute\":\"query-status\",\"id\":%d}", i);
		if (m == NULL || strstr(m, "\"return\"") == NULL) {
			fprintf(stderr, "bench: bad reply: %s\n",
			    m != NULL ? m : "(none)");
			free(m);
			return (-1);
		}
		free(m);
		if (i >= 0)
			us[i] = bench_us() - t0;
	}
	qsort(us, (size_t)rounds, sizeof(*us), bench_cmp);
	return (0);
}

/* Print one latency row. */
static void
bench_row(const char *name, const double *us, int rounds, double base)
{
	double	 med = us[rounds / 2];

	printf("  %-10s %9.1f %9.1f %9.1f %9.1f   %6.2fx\n", name, us[0], med,
	    us[rounds * 9 / 10], us[rounds * 99 / 100],
	    base > 0 ? med / base : 1.0);
}

/* Read n FLOOD events from c; return events per second, or -1. */
static double
bench_drain(struct t_client *c, long n)
{
	char	*m;
	double	 t0 = 0;
	long	 got = 0;

	while (got < n) {
		if ((m = t_recv(c, T_WAIT_MS)) == NULL)
			return (-1);
		if (strstr(m, "\"FLOOD\"") != NULL) {
			if (got++ == 0)
				t0 = bench_us();
		}
		free(m);
	}
	return ((double)(n - 1) / ((bench_us() - t0) / 1e6));
}

int
main(int argc, char *argv[])
{
	int		 rounds = argc > 1 ? atoi(argv[1]) : 2000;
	long		 events = argc > 2 ? atol(argv[2]) : 200000;
	char		*q1 = t_path("direct.qmp"), *q2 = t_path("proxied.qmp");
	char		*q3 = t_path("relayed.qmp"), *p2 = t_path("proxy.sock");
	char		*p3 = t_path("socat.sock"), *fq = t_path("fake.qmp");
	char		*fp = t_path("fakeproxy.sock"), *l1, *l2;
	char		 nbuf[32];
	const char	*socat[5], *fargs[5];
	pid_t		 qa, qb, qc, proxy, relay, fake, fproxy;
	struct t_client	*c1, *c2, *c3, *ce;
	double		*d, *p, *s, direct_eps, proxy_eps;
	long		 rss;

	if (rounds < 100)
		rounds = 100;
	d = calloc((size_t)rounds, sizeof(*d));
	p = calloc((size_t)rounds, sizeof(*p));
	s = calloc((size_t)rounds, sizeof(*s));
	qa = t_qemu(q1);
	qb = t_qemu(q2);
	qc = t_qemu(q3);
	proxy = t_qmpmuxd(q2, p2, NULL);
	if (asprintf(&l1, "UNIX-LISTEN:%s,fork", p3) == -1 ||
	    asprintf(&l2, "UNIX-CONNECT:%s", q3) == -1)
		return (1);
	socat[0] = "socat";
	socat[1] = l1;
	socat[2] = l2;
	socat[3] = NULL;
	relay = t_spawn(socat, "socat.log");
	if (t_wait_socket(p3, T_WAIT_MS) == -1) {
		fprintf(stderr, "bench: socat did not start\n");
		return (1);
	}
	c1 = t_client_ready(q1);
	c2 = t_client_ready(p2);
	c3 = t_client_ready(p3);
	if (c1 == NULL || c2 == NULL || c3 == NULL) {
		fprintf(stderr, "bench: a client could not negotiate\n");
		return (1);
	}

	/* interleave the three so machine noise hits them alike */
	if (bench_rounds(c1, d, rounds) == -1 ||
	    bench_rounds(c2, p, rounds) == -1 ||
	    bench_rounds(c3, s, rounds) == -1)
		return (1);
	printf("query-status round trip, %d rounds each, microseconds:\n",
	    rounds);
	printf("  %-10s %9s %9s %9s %9s   %s\n", "path", "min", "median",
	    "p90", "p99", "median/direct");
	bench_row("direct", d, rounds, d[rounds / 2]);
	bench_row("qmpmuxd", p, rounds, d[rounds / 2]);
	bench_row("socat", s, rounds, d[rounds / 2]);
	printf("  qmpmuxd/socat median: %.2fx\n",
	    p[rounds / 2] / s[rounds / 2]);
	rss = t_proc_kb(proxy, "VmRSS");
	printf("  qmpmuxd RSS after the rounds: %ld kB\n", rss);
	t_client_free(c1);
	t_client_free(c2);
	t_client_free(c3);
	t_stop(relay, SIGTERM);
	t_stop(proxy, SIGTERM);
	t_stop(qa, SIGKILL);
	t_stop(qb, SIGKILL);
	t_stop(qc, SIGKILL);

	/* events: the fake floods, first read directly, then via qmpmuxd */
	snprintf(nbuf, sizeof(nbuf), "%ld", events);
	/* the flood starts on a command, once the client is there */
	fargs[0] = "--flood";
	fargs[1] = nbuf;
	fargs[2] = "--trigger";
	fargs[3] = "flood";
	fargs[4] = NULL;
	fake = t_fakeqemu(fq, fargs);
	ce = t_client_ready(fq);
	if (ce != NULL)
		t_send(ce, "{\"execute\":\"flood\"}\n");
	direct_eps = ce != NULL ? bench_drain(ce, events) : -1;
	t_client_free(ce);
	t_stop(fake, SIGTERM);
	unlink(fq);

	fake = t_fakeqemu(fq, fargs);
	fproxy = t_qmpmuxd(fq, fp, NULL);
	ce = t_client_ready(fp);
	if (ce != NULL)
		t_send(ce, "{\"execute\":\"flood\"}\n");
	proxy_eps = ce != NULL ? bench_drain(ce, events) : -1;
	rss = t_proc_kb(fproxy, "VmRSS");
	t_client_free(ce);
	printf("event throughput, %ld events from the fake QEMU:\n", events);
	printf("  direct   %12.0f events/s\n", direct_eps);
	printf("  qmpmuxd  %12.0f events/s   (%.2fx of direct)\n", proxy_eps,
	    direct_eps > 0 ? proxy_eps / direct_eps : 0);
	printf("  qmpmuxd RSS after the flood: %ld kB\n", rss);
	t_stop(fproxy, SIGTERM);
	t_stop(fake, SIGTERM);
	return (0);
}
