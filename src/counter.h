/*
 * counter.c: the one table of a VM's counters, and what each place that
 * shows them (query-vm, the dump and its log line, the metrics, the
 * state document) walks.
 */
#ifndef COUNTER_H
#define COUNTER_H

#include <stddef.h>
#include <stdint.h>

#define COUNTER_NBUCKETS	15	/* of a histogram, +Inf apart */

/* A histogram: its observations by bucket (+Inf in count only). */
struct counter_hist {
	uint64_t		 buckets[COUNTER_NBUCKETS];
	uint64_t		 count;
	double			 sum;
};

enum counter_type {
	COUNTER_COUNTER,
	COUNTER_GAUGE,
	COUNTER_HISTOGRAM,
};

/* The places a counter is shown in, and its place in the order of some. */
#define COUNTER_JSON		0x01	/* query-vm and the dump: counters */
#define COUNTER_LOG		0x02	/* the dump's line in the log */
#define COUNTER_METRICS		0x04	/* the Prometheus text */
#define COUNTER_STATE		0x08	/* the state document, and read back */
#define COUNTER_METRICS_LATE	0x10	/* in the metrics, after the others */
#define COUNTER_STATE_LATE	0x20	/* in the state, after the others */
/* Where a counter of struct vm_stats is: every place but the log. */
#define COUNTER_SHOWN		(COUNTER_JSON | COUNTER_METRICS | COUNTER_STATE)

struct vm;
struct vm_stats;

/*
 * A counter: where it is kept (off into struct vm_stats, or get for one
 * derived from the VM) and what each place calls it.
 */
struct counter {
	const char		*name;		/* query-vm, the dump, the log */
	const char		*state;		/* its key in the state */
	const char		*metric;	/* its family in the metrics */
	const char		*label;		/* its series there, or NULL */
	const char		*help;		/* NULL: the family before's */
	enum counter_type	 type;
	unsigned int		 places;
	size_t			 off;
	uint64_t		(*get)(const struct vm *);
};

extern const struct counter	counter_table[];
extern const size_t		counter_count;
extern const double		counter_bounds[COUNTER_NBUCKETS];

const struct counter *counter_next(const struct counter *, unsigned int);
uint64_t	 counter_value(const struct counter *, const struct vm *);
const struct counter_hist *counter_hist_of(const struct counter *,
		    const struct vm *);
uint64_t	*counter_ptr(const struct counter *, struct vm_stats *);
struct counter_hist *counter_hist(const struct counter *, struct vm_stats *);
void		 counter_observe(struct counter_hist *, double);

/* Each counter of the places in mask, in their order. */
#define COUNTER_FOREACH(c, mask)					\
	for ((c) = counter_next(NULL, (mask)); (c) != NULL;		\
	    (c) = counter_next((c), (mask)))

#endif
