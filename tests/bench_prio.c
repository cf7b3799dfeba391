/*
 * Benchmark, section prio: what the priority classes of qmpmuxd.conf(5)
 * give a manager beside a load on the same VM, side by side in one run,
 * against the real QEMU.
 *
 * One qmpmuxd serves four VMs, each on a QEMU of its own: "a", with a
 * manager listener and a background one; "normal", whose listeners are
 * all normal, as every listener was before the classes; "b", the other
 * VM; and "d", on the first of the two QMP monitors of its QEMU.  Each
 * VM has the default keys: max_inflight 1, priority_relief 1.  A
 * measured client sends query-status one at a time, every BP_PERIOD_US,
 * and counts its round trips and its refusals (error replies), in these
 * runs:
 *
 *  mgr.alone       on a's manager listener, no load;
 *  mgr.classes     the same, the load on a's background listener;
 *  mgr.all_normal  on normal's first listener, the load on its second;
 *  mgr.other_vm    on a's manager listener, the load on b: the isolation
 *                  a QEMU of its own gives, the floor;
 *  mgr.qemu_mon2   directly on d's QEMU's second monitor, the load on d
 *                  through qmpmuxd: what QEMU itself gives a second
 *                  client;
 *  normal.same     on normal's second listener, beside 4 clients
 *                  pipelining on that listener;
 *  normal.other_vm the same 4 on b instead.
 *
 * The manager's load is 6 clients keeping BP_DEPTH query-status each in
 * flight and one looping query-qmp-schema (some 20 ms and 200 KB in
 * QEMU each); it runs in a process of its own, so that reading it never
 * delays a measured reply.  The runs take turns in parts, in alternate
 * order, so that the machine's noise falls on all of them alike.
 */
#include "config.h"

#include <sys/stat.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "bench.h"

#define BP_PERIOD_US	5000	/* a measured client's pace */
#define BP_DEPTH	8	/* a pipelining client's commands in flight */
#define BP_MAXLOAD	8	/* clients of a load, at most */
#define BP_WARM		10	/* round trips of each client before a run */

/*
 * The VMs of the one qmpmuxd, in order; keys are the lines a VM has
 * beyond the defaults, written into its section of the configuration.
 */
static const struct bp_vm {
	const char	*name;
	const char	*keys;
} bp_vms[] = {
	{ "a", "" },
	/* qmpmuxd as it was before the classes: no cache either */
	{ "normal", "introspection_cache = 0\n" },
	{ "b", "" },
	/* on its QEMU's first monitor: the load must reach that QEMU */
	{ "d", "introspection_cache = 0\n" },
};
#define BP_NVMS		((int)(sizeof(bp_vms) / sizeof(bp_vms[0])))
#define BP_VM_D		3

/* The listeners, LDIR/I.sock: their VM and priority class. */
enum {
	BP_A_MGR,
	BP_A_BG,
	BP_N_MGR,
	BP_N_LOAD,
	BP_B_BG,
	BP_B_NORMAL,
	BP_D_BG,
	BP_NLISTENERS
};
static const struct bp_listener {
	int		 vm;
	const char	*priority;
} bp_listeners[BP_NLISTENERS] = {
	[BP_A_MGR] = { 0, "manager" },
	[BP_A_BG] = { 0, "background" },
	[BP_N_MGR] = { 1, "normal" },
	[BP_N_LOAD] = { 1, "normal" },
	[BP_B_BG] = { 2, "background" },
	[BP_B_NORMAL] = { 2, "normal" },
	[BP_D_BG] = { BP_VM_D, "background" },
};
#define BP_MON2		(-1)	/* the second monitor of d's QEMU */
#define BP_NONE		(-1)	/* no load */

/* A run: where its measured client and its load go. */
static const struct bp_run {
	const char	*name;		/* its figures' prio.NAME */
	int		 mon;		/* the measured client's listener */
	int		 load;		/* the load's */
	int		 npipe;		/* pipelining clients of the load */
	int		 schema;	/* and a client looping the schema */
} bp_runs[] = {
	{ "mgr.alone", BP_A_MGR, BP_NONE, 0, 0 },
	{ "mgr.classes", BP_A_MGR, BP_A_BG, 6, 1 },
	{ "mgr.all_normal", BP_N_MGR, BP_N_LOAD, 6, 1 },
	{ "mgr.other_vm", BP_A_MGR, BP_B_BG, 6, 1 },
	{ "mgr.qemu_mon2", BP_MON2, BP_D_BG, 6, 1 },
	{ "normal.same", BP_N_LOAD, BP_N_LOAD, 4, 0 },
	{ "normal.other_vm", BP_N_LOAD, BP_B_NORMAL, 4, 0 },
};
#define BP_NRUNS	((int)(sizeof(bp_runs) / sizeof(bp_runs[0])))

/* What a run measured, over its parts. */
struct bp_result {
	struct lc	*c;		/* the measured client */
	double		*us;		/* its round trips */
	long		 n;
	long		 refused;
	long		 load_done;	/* the load's replies, while it ran */
	long		 load_refused;
	double		 load_secs;
};

/* What a load's process says when it is done. */
struct bp_counts {
	long		 done;
	long		 refused;
	double		 secs;
};

/* A load's process, and the pipes that stop it and carry its counts. */
struct bp_load {
	pid_t		 pid;
	int		 ctl;		/* closed to stop the load */
	int		 res;		/* "r" once it runs, then its counts */
};

static const char	 bp_status[] = "{\"execute\":\"query-status\"}\n";
static const char	 bp_schema[] = "{\"execute\":\"query-qmp-schema\"}\n";

/*
 * The load's process: npipe clients of path keeping BP_DEPTH
 * query-status in flight each, and with schema one more looping
 * query-qmp-schema, until ctl closes; then it takes the replies still
 * due and writes its counts to res.  It never returns.
 */
static void
bp_load_run(const char *path, int npipe, int schema, int ctl, int res)
{
	struct pollfd		 pfd[BP_MAXLOAD + 1];
	struct lc		*c[BP_MAXLOAD];
	struct bp_counts	 k;
	const char		*cmd;
	double			 t0;
	size_t			 len;
	char			*m;
	int			 n = npipe + schema, i, stopping = 0;
	long			 inflight = 0;

	memset(&k, 0, sizeof(k));
	for (i = 0; i < n; i++)
		if ((c[i] = lc_ready(path)) == NULL)
			_exit(1);
	for (i = 0; i < n; i++) {
		cmd = i < npipe ? bp_status : bp_schema;
		for (c[i]->inflight = 0; c[i]->inflight < (i < npipe ?
		    BP_DEPTH : 1); c[i]->inflight++, inflight++)
			if (lc_send(c[i], cmd, strlen(cmd)) == -1)
				_exit(1);
	}
	t0 = b_us();
	if (write(res, "r", 1) != 1)
		_exit(1);
	while (inflight > 0) {
		for (i = 0; i < n; i++) {
			pfd[i].fd = c[i]->fd;
			pfd[i].events = POLLIN;
		}
		pfd[n].fd = stopping ? -1 : ctl;
		pfd[n].events = POLLIN;
		if (poll(pfd, (nfds_t)n + 1, T_WAIT_MS) <= 0)
			_exit(1);
		if (pfd[n].revents != 0) {
			stopping = 1;
			k.secs = (b_us() - t0) / 1e6;
		}
		for (i = 0; i < n; i++) {
			if (pfd[i].revents == 0)
				continue;
			if (lc_read(c[i]) == -1)
				_exit(1);
			while ((m = lc_next(c[i], &len)) != NULL) {
				if (lc_is_event(m, len))
					continue;
				if (!lc_is_return(m, len))
					k.refused++;
				if (!stopping)
					k.done++;
				c[i]->inflight--;
				inflight--;
				if (stopping)
					continue;
				cmd = i < npipe ? bp_status : bp_schema;
				if (lc_send(c[i], cmd, strlen(cmd)) == -1)
					_exit(1);
				c[i]->inflight++;
				inflight++;
			}
		}
	}
	if (write(res, &k, sizeof(k)) != (ssize_t)sizeof(k))
		_exit(1);
	_exit(0);
}

/* Wait up to T_WAIT_MS for len bytes of fd, in one read: 0 when they came. */
static int
bp_read_all(int fd, void *buf, size_t len)
{
	struct pollfd	 pfd;

	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, T_WAIT_MS) <= 0)
		return (-1);
	return (read(fd, buf, len) == (ssize_t)len ? 0 : -1);
}

/* Start a load on path in a process of its own; 0 once it runs. */
static int
bp_load_start(struct bp_load *l, const char *path, int npipe, int schema)
{
	int	 ctl[2], res[2];
	char	 r;

	if (pipe(ctl) == -1 || pipe(res) == -1)
		abort();
	fflush(stderr);
	if ((l->pid = fork()) == -1)
		abort();
	if (l->pid == 0) {
		close(ctl[1]);
		close(res[0]);
		bp_load_run(path, npipe, schema, ctl[0], res[1]);
	}
	close(ctl[0]);
	close(res[1]);
	l->ctl = ctl[1];
	l->res = res[0];
	if (bp_read_all(l->res, &r, 1) == -1 || r != 'r') {
		fprintf(stderr, "bench: the load on %s did not start\n", path);
		return (-1);
	}
	return (0);
}

/* Stop a load, and add its counts to the run's; 0 when it ended well. */
static int
bp_load_stop(struct bp_load *l, struct bp_result *res)
{
	struct bp_counts	 k;
	int			 ok;

	close(l->ctl);
	ok = bp_read_all(l->res, &k, sizeof(k)) == 0;
	close(l->res);
	if (t_wait_exit(l->pid, T_WAIT_MS) != 0) {
		t_stop(l->pid, SIGKILL);
		ok = 0;
	}
	if (!ok) {
		fprintf(stderr, "bench: a load failed\n");
		return (-1);
	}
	res->load_done += k.done;
	res->load_refused += k.refused;
	res->load_secs += k.secs;
	return (0);
}

/*
 * n round trips of query-status on the run's client, one at a time, on
 * ticks BP_PERIOD_US apart: a tick that comes while the one before is
 * unanswered is skipped, so that a command is never sent in step with
 * the load (right after a long wait, when QEMU has just finished the
 * load's longest command).  A pace, not a wait for readiness.  An error
 * reply is a refusal, counted and not timed.
 */
static int
bp_paced(struct bp_result *res, int n)
{
	struct timespec	 ts;
	double		 next = b_us(), t0;
	size_t		 len;
	char		*m;
	int		 k;

	for (k = 0; k < n; k++) {
		ts.tv_sec = (time_t)(next / 1e6);
		ts.tv_nsec = (long)((next - (double)ts.tv_sec * 1e6) * 1e3);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
		    NULL) == EINTR)
			;
		t0 = b_us();
		if (lc_send(res->c, bp_status, sizeof(bp_status) - 1) == -1)
			return (-1);
		while ((m = lc_line(res->c, T_WAIT_MS, &len)) != NULL &&
		    lc_is_event(m, len))
			;
		if (m == NULL) {
			fprintf(stderr, "bench: no reply\n");
			return (-1);
		}
		if (lc_is_return(m, len))
			res->us[res->n++] = b_us() - t0;
		else
			res->refused++;
		do
			next += BP_PERIOD_US;
		while (next < b_us());
	}
	return (0);
}

/* The configuration of the one qmpmuxd: the VMs on q, listeners in ldir. */
static char *
bp_conf(char *const *q, const char *ldir)
{
	char	*path = b_path("qmpmuxd-prio.conf");
	FILE	*f;
	int	 i;

	mkdir(ldir, 0700);
	if ((f = fopen(path, "w")) == NULL)
		abort();
	fprintf(f, "[global]\ncontrol = none\n");
	for (i = 0; i < BP_NVMS; i++)
		fprintf(f, "[vm %s]\nupstream = connect:%s\n%s", bp_vms[i].name,
		    q[i], bp_vms[i].keys);
	for (i = 0; i < BP_NLISTENERS; i++)
		fprintf(f, "[listener %s %s/%d.sock]\npriority = %s\n",
		    bp_vms[bp_listeners[i].vm].name, ldir, i,
		    bp_listeners[i].priority);
	fclose(f);
	return (path);
}

/* One part of a run: samples round trips, under its load if it has one. */
static void
bp_part(const struct bp_run *run, struct bp_result *res, const char *ldir,
    int samples)
{
	struct bp_load	 l;
	char		*path;

	memset(&l, 0, sizeof(l));
	if (run->load != BP_NONE) {
		if (asprintf(&path, "%s/%d.sock", ldir, run->load) == -1)
			abort();
		if (bp_load_start(&l, path, run->npipe, run->schema) == -1)
			exit(1);
		free(path);
	}
	if (bp_paced(res, samples) == -1) {
		fprintf(stderr, "bench: the round trips of prio.%s failed\n",
		    run->name);
		exit(1);
	}
	if (run->load != BP_NONE && bp_load_stop(&l, res) == -1)
		exit(1);
}

/* Record a run's figures: round trips, refusals, the load's rate. */
static void
bp_figs(const struct bp_run *run, struct bp_result *res)
{
	char	 name[64];
	double	 med, p99;

	b_stats(res->us, res->n, &med, &p99);
	snprintf(name, sizeof(name), "prio.%s", run->name);
	fig(name, med, p99, "us");
	snprintf(name, sizeof(name), "prio.%s.refused", run->name);
	fig(name, (double)res->refused, NAN, "replies");
	if (run->load == BP_NONE)
		return;
	snprintf(name, sizeof(name), "prio.%s.load", run->name);
	fig(name, res->load_secs > 0 ? (double)res->load_done /
	    res->load_secs : NAN, NAN, "cmd/s");
}

/* A ratio of two runs' figures, median and p99, as figure prio.A/B. */
static void
bp_ratio(const char *a, const char *b)
{
	char	 name[64], fa[64], fb[64];

	snprintf(name, sizeof(name), "prio.%s/%s", a, strchr(b, '.') + 1);
	snprintf(fa, sizeof(fa), "prio.%s", a);
	snprintf(fb, sizeof(fb), "prio.%s", b);
	fig(name, fig_get(fa, 0) / fig_get(fb, 0), fig_get(fa, 1) /
	    fig_get(fb, 1), "x");
}

/*
 * The section: samples round trips in each run, in parts; the runs take
 * turns, forward in even parts and backward in odd ones.
 */
void
bp_all(int samples, int parts)
{
	struct bp_result	 res[BP_NRUNS];
	char			*q[BP_NVMS], *q2, *ldir, *conf, *path;
	pid_t			 qemu[BP_NVMS], proxy;
	long			 loads = 0;
	int			 i, k, part, r, each;

	b_section = "priority classes, real QEMU";
	memset(res, 0, sizeof(res));
	for (i = 0; i < BP_NVMS; i++)
		q[i] = b_path("prio-qemu-%s.qmp", bp_vms[i].name);
	q2 = b_path("prio-qemu-d2.qmp");
	for (i = 0; i < BP_NVMS; i++)
		qemu[i] = i == BP_VM_D ? t_qemu_two(q[i], q2) : t_qemu(q[i]);
	ldir = b_path("prio-l");
	conf = bp_conf(q, ldir);
	proxy = b_qmpmuxd_conf(conf, BP_NLISTENERS, ldir, "qmpmuxd-prio.log");
	for (r = 0; r < BP_NRUNS; r++) {
		if (bp_runs[r].mon == BP_MON2)
			path = strdup(q2);
		else if (asprintf(&path, "%s/%d.sock", ldir,
		    bp_runs[r].mon) == -1)
			path = NULL;
		if (path == NULL)
			abort();
		if ((res[r].c = lc_ready(path)) == NULL)
			exit(1);
		free(path);
		if ((res[r].us = calloc((size_t)samples, sizeof(double))) ==
		    NULL)
			abort();
		for (k = 0; k < BP_WARM; k++)
			if (lc_rtt(res[r].c) < 0)
				exit(1);
	}
	for (part = 0; part < parts; part++) {
		each = part < parts - 1 ? samples / parts :
		    samples - (parts - 1) * (samples / parts);
		for (k = 0; k < BP_NRUNS; k++) {
			r = part % 2 == 0 ? k : BP_NRUNS - 1 - k;
			bp_part(&bp_runs[r], &res[r], ldir, each);
		}
	}
	for (r = 0; r < BP_NRUNS; r++) {
		bp_figs(&bp_runs[r], &res[r]);
		loads += res[r].load_refused;
	}
	fig("prio.load.refused", (double)loads, NAN, "replies");
	bp_ratio("mgr.classes", "mgr.other_vm");
	bp_ratio("mgr.all_normal", "mgr.other_vm");
	bp_ratio("mgr.qemu_mon2", "mgr.other_vm");
	bp_ratio("normal.same", "normal.other_vm");
	for (r = 0; r < BP_NRUNS; r++) {
		lc_free(res[r].c);
		free(res[r].us);
	}
	b_stop(proxy);
	for (i = 0; i < BP_NVMS; i++) {
		t_stop(qemu[i], SIGKILL);
		free(q[i]);
	}
	free(q2);
	free(ldir);
	free(conf);
}

/* Judge the section's targets from its figures. */
void
bp_targets(void)
{
	char	 name[64];
	double	 a, b, refused = 0;
	int	 r;

	for (r = 0; r < BP_NRUNS; r++) {
		snprintf(name, sizeof(name), "prio.%s.refused",
		    bp_runs[r].name);
		refused += fig_get(name, 0);
	}
	a = fig_get("prio.load.refused", 0);
	target("prio: no command refused", refused + a, 0,
	    "%.0f of the measured clients', %.0f of the loads'", refused, a);
	a = fig_get("prio.mgr.classes", 1);
	b = fig_get("prio.mgr.other_vm", 1);
	target("manager p99, load on own VM <= 1.2x on another", a / b, 1.2,
	    "%.2fx: %.0f vs %.0f us", a / b, a, b);
	a = fig_get("prio.normal.same", 1);
	b = fig_get("prio.normal.other_vm", 1);
	target("normal p99 beside pipelining <= 1.2x on another VM", a / b,
	    1.2, "%.2fx: %.0f vs %.0f us", a / b, a, b);
}
