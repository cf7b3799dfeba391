/*
 * The benchmark's shared parts, from tests/bench.c: its line client, its
 * figures and targets, and the processes of a run, for the sections that
 * have a file of their own (tests/bench_prio.c).
 */
#ifndef QMPMUX_BENCH_H
#define QMPMUX_BENCH_H

#include <sys/types.h>
#include <stddef.h>

#define B_BUF		(1 << 20)	/* a client's input buffer */
#define B_DEPTH		4		/* commands in flight, pipelined */

/* A client that reads lines, cheaply, so that it is never the bottleneck. */
struct lc {
	int		 fd;
	char		*buf;
	size_t		 off;		/* buf[off, len) is unread */
	size_t		 len;
	int		 eof;
	double		 sent[B_DEPTH];	/* send times of those in flight */
	int		 head;
	int		 inflight;
	long		 nsent;
	long		 nrecv;
	long		 nevents;
	long		 nerrors;
	int		 state;		/* for the start-up run */
	double		 done;
};

/* The title of the figures recorded from now on. */
extern const char	*b_section;

double		 b_us(void);
void		 b_stats(double *, long, double *, double *);
void		 fig(const char *, double, double, const char *);
double		 fig_get(const char *, int);
void		 target(const char *, double, double, const char *, ...)
		    __attribute__((format(printf, 4, 5)));

struct lc	*lc_ready(const char *);
void		 lc_free(struct lc *);
int		 lc_read(struct lc *);
char		*lc_next(struct lc *, size_t *);
char		*lc_line(struct lc *, int, size_t *);
int		 lc_send(struct lc *, const char *, size_t);
int		 lc_is_event(const char *, size_t);
int		 lc_is_return(const char *, size_t);
double		 lc_rtt(struct lc *);

char		*b_path(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
pid_t		 b_qmpmuxd_conf(const char *, int, const char *, const char *);
void		 b_stop(pid_t);

/* tests/bench_prio.c */
void		 bp_all(int, int);
void		 bp_targets(void);

#endif
