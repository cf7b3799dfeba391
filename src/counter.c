/*
 * The counters of a VM, in one table: what each is called in query-vm
 * and the dump (and, with its underscores as spaces, in the dump's log
 * line), in the state document and in the metrics, its type and its
 * metrics' help, and where it is kept: in struct vm_stats, or derived
 * from the VM when it is read.  Every place that shows counters walks
 * this table, so adding one is a line here and its field in struct
 * vm_stats.  Its flags say in which places each is shown; a place shows
 * its counters in the table's order, but for those marked late for it,
 * which come after the others (the order each place had before the
 * table, kept as it is an interface).
 *
 * The histogram of commands' round trips is counted here too
 * (counter_observe, from cmd.c), with the bounds of its buckets.
 */
#include "config.h"

#include <sys/queue.h>
#include <stddef.h>
#include <stdint.h>

#include "qmpmux.h"

/* The upper bounds of the buckets of every histogram, in seconds. */
const double counter_bounds[COUNTER_NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	2.5, 5, 10, 30,
};

static uint64_t	counter_timeouts(const struct vm *);
static uint64_t	counter_up(const struct vm *);
static uint64_t	counter_stalled(const struct vm *);
static uint64_t	counter_reads_paused(const struct vm *);
static uint64_t	counter_backlog_events(const struct vm *);
static uint64_t	counter_backlog_bytes(const struct vm *);
static uint64_t	counter_in_flight(const struct vm *);
static uint64_t	counter_queued(const struct vm *);
static uint64_t	counter_clients(const struct vm *);
static uint64_t	counter_lock_held(const struct vm *);
static uint64_t	counter_lock_waiters(const struct vm *);

#define C	COUNTER_COUNTER
#define G	COUNTER_GAUGE
#define H	COUNTER_HISTOGRAM
#define SHOWN	COUNTER_SHOWN
#define LOG	COUNTER_LOG
#define M_LATE	(COUNTER_METRICS | COUNTER_METRICS_LATE)
#define S_LATE	COUNTER_STATE_LATE
#define AT(f)	offsetof(struct vm_stats, f), NULL
#define GET(f)	0, (f)

const struct counter counter_table[] = {
	{ "commands", "commands", "qmpmux_commands_total", NULL,
	    "Commands taken from clients, to be sent to QEMU.",
	    C, SHOWN | LOG, AT(commands) },
	{ "replies", "replies", "qmpmux_replies_total", NULL,
	    "Replies of QEMU passed to the client that asked.",
	    C, SHOWN, AT(replies) },
	{ "timeouts_unsent", "timeouts_unsent",
	    "qmpmux_command_timeouts_total", "when=\"unsent\"",
	    "Commands past their deadline, before or after they were sent.",
	    C, SHOWN, AT(timeouts_unsent) },
	{ "timeouts_sent", "timeouts_sent", "qmpmux_command_timeouts_total",
	    "when=\"sent\"", NULL,
	    C, SHOWN, AT(timeouts_sent) },
	{ "timeouts", NULL, NULL, NULL, NULL,
	    C, LOG, GET(counter_timeouts) },
	{ "late_replies_dropped", "late_replies",
	    "qmpmux_late_replies_dropped_total", NULL,
	    "Replies of QEMU to commands past their deadline, dropped.",
	    C, SHOWN | LOG, AT(late_replies) },
	{ "unknown_replies_dropped", "unknown_replies",
	    "qmpmux_unknown_replies_dropped_total", NULL,
	    "Replies of QEMU that matched no command, dropped.",
	    C, SHOWN, AT(unknown_replies) },
	{ "commands_refused", "refused", "qmpmux_commands_refused_total", NULL,
	    "Commands refused because max_queued_commands already waited.",
	    C, SHOWN | M_LATE, AT(refused) },
	{ "events", "events", "qmpmux_events_total", NULL,
	    "Events read from QEMU.",
	    C, SHOWN | LOG, AT(events) },
	{ "event_bytes", "event_bytes", "qmpmux_event_bytes_total", NULL,
	    "Bytes of the events read from QEMU.",
	    C, SHOWN, AT(event_bytes) },
	{ "bytes_from_qemu", "bytes_from_qemu", "qmpmux_upstream_bytes_total",
	    "direction=\"from_qemu\"",
	    "Bytes of the messages read from and written to QEMU.",
	    C, SHOWN | S_LATE, AT(bytes_from_qemu) },
	{ "bytes_to_qemu", "bytes_to_qemu", "qmpmux_upstream_bytes_total",
	    "direction=\"to_qemu\"", NULL,
	    C, SHOWN | S_LATE, AT(bytes_to_qemu) },
	{ "reconnects", "reconnects", "qmpmux_reconnects_total", NULL,
	    "Times the upstream was lost and QEMU reached again.",
	    C, SHOWN | LOG, AT(reconnects) },
	{ "clients", "clients", "qmpmux_clients_total", NULL,
	    "Clients accepted.",
	    C, SHOWN, AT(clients) },
	{ "clients_refused", "clients_refused", "qmpmux_clients_refused_total",
	    NULL, "Connections refused: a uid that allowed_uids does not list.",
	    C, SHOWN, AT(clients_refused) },
	{ "commands_relieved", "relieved", "qmpmux_commands_relieved_total",
	    NULL, "Commands of a lower class sent ahead of a better one's, "
	    "after priority_relief.",
	    C, SHOWN, AT(relieved) },
	{ "commands_refused_manager", "refused_manager",
	    "qmpmux_commands_refused_by_priority_total", "priority=\"manager\"",
	    "Commands refused because max_queued_commands of their priority "
	    "class already waited, by class.",
	    C, SHOWN, AT(refused_by[PRIO_MANAGER]) },
	{ "commands_refused_normal", "refused_normal",
	    "qmpmux_commands_refused_by_priority_total", "priority=\"normal\"",
	    NULL, C, SHOWN, AT(refused_by[PRIO_NORMAL]) },
	{ "commands_refused_background", "refused_background",
	    "qmpmux_commands_refused_by_priority_total",
	    "priority=\"background\"", NULL,
	    C, SHOWN, AT(refused_by[PRIO_BACKGROUND]) },
	{ "commands_cached", "cached", "qmpmux_commands_cached_total", NULL,
	    "Commands answered from the introspection cache, not sent to "
	    "QEMU.",
	    C, SHOWN, AT(cached) },
	{ "commands_rate_delayed", "rate_delayed",
	    "qmpmux_commands_rate_delayed_total", NULL,
	    "Commands held back by their listener's rate_limit while QEMU had "
	    "room for them.",
	    C, SHOWN, AT(rate_delayed) },
	{ "lock_acquired", "lock_acquired", "qmpmux_lock_acquired_total",
	    NULL, "Grants of the VM's advisory lock.",
	    C, SHOWN, AT(lock_acquired) },
	{ "lock_expired", "lock_expired", "qmpmux_lock_lost_total",
	    "why=\"expired\"",
	    "Locks lost by their holder, fenced after: its lease ran out, or "
	    "break-lock.",
	    C, SHOWN, AT(lock_expired) },
	{ "lock_broken", "lock_broken", "qmpmux_lock_lost_total",
	    "why=\"broken\"", NULL,
	    C, SHOWN, AT(lock_broken) },
	{ "lock_waited", "lock_waited", "qmpmux_lock_waited_total", NULL,
	    "Commands held back by another client's lock.",
	    C, SHOWN, AT(lock_waited) },
	{ "lock_fenced", "lock_fenced", "qmpmux_lock_fenced_total", NULL,
	    "Commands refused because their client had lost the lock.",
	    C, SHOWN, AT(lock_fenced) },
	{ "up", NULL, "qmpmux_vm_up", NULL,
	    "1 when the upstream is ready (stalled included), else 0.",
	    G, M_LATE, GET(counter_up) },
	{ "stalled", NULL, "qmpmux_vm_stalled", NULL,
	    "1 when a sent command is past its deadline and QEMU has not "
	    "answered it.",
	    G, M_LATE, GET(counter_stalled) },
	{ "reads_paused", NULL, "qmpmux_reads_paused", NULL,
	    "1 when reads from QEMU are paused at the event backlog's bounds.",
	    G, M_LATE, GET(counter_reads_paused) },
	{ "backlog_events", NULL, "qmpmux_backlog_events", NULL,
	    "Events read from QEMU and not yet written to every client.",
	    G, M_LATE, GET(counter_backlog_events) },
	{ "backlog_bytes", NULL, "qmpmux_backlog_bytes", NULL,
	    "Bytes of the events in the backlog.",
	    G, M_LATE, GET(counter_backlog_bytes) },
	{ "in_flight", NULL, "qmpmux_commands_in_flight", NULL,
	    "In-band commands sent to QEMU and not answered by it.",
	    G, M_LATE, GET(counter_in_flight) },
	{ "queued", NULL, "qmpmux_commands_queued", NULL,
	    "Commands waiting to be sent to QEMU.",
	    G, M_LATE, GET(counter_queued) },
	{ "lock_held", NULL, "qmpmux_lock_held", NULL,
	    "1 while the VM's advisory lock is held.",
	    G, M_LATE, GET(counter_lock_held) },
	{ "lock_waiters", NULL, "qmpmux_lock_waiters", NULL,
	    "Commands waiting for the VM's advisory lock.",
	    G, M_LATE, GET(counter_lock_waiters) },
	{ "clients_connected", NULL, "qmpmux_clients", NULL,
	    "Clients connected.",
	    G, M_LATE, GET(counter_clients) },
	{ "duration", "duration", "qmpmux_command_duration_seconds", NULL,
	    "Round trip of the commands QEMU answered, from their arrival "
	    "to QEMU's reply, in seconds.",
	    H, M_LATE | COUNTER_STATE | S_LATE, AT(duration) },
	{ "waited_manager", "waited_manager", "qmpmux_command_wait_seconds",
	    "priority=\"manager\"",
	    "Time in-band commands waited in the queue before they were sent "
	    "to QEMU, by priority class, in seconds.",
	    H, M_LATE | COUNTER_STATE | S_LATE, AT(waited[PRIO_MANAGER]) },
	{ "waited_normal", "waited_normal", "qmpmux_command_wait_seconds",
	    "priority=\"normal\"", NULL,
	    H, M_LATE | COUNTER_STATE | S_LATE, AT(waited[PRIO_NORMAL]) },
	{ "waited_background", "waited_background",
	    "qmpmux_command_wait_seconds", "priority=\"background\"", NULL,
	    H, M_LATE | COUNTER_STATE | S_LATE, AT(waited[PRIO_BACKGROUND]) },
	{ "manager_behind_lower", "behind_lower",
	    "qmpmux_manager_behind_lower_seconds", NULL,
	    "Time the manager's commands that came while a lower class's was "
	    "at QEMU waited before they were sent, in seconds.",
	    H, M_LATE | COUNTER_STATE | S_LATE, AT(behind_lower) },
};
const size_t counter_count = sizeof(counter_table) / sizeof(counter_table[0]);

#undef C
#undef G
#undef H
#undef SHOWN
#undef LOG
#undef M_LATE
#undef S_LATE
#undef AT
#undef GET

/* The timeouts of a VM's commands, sent or not: the log shows one sum. */
static uint64_t
counter_timeouts(const struct vm *vm)
{
	return (vm->stats.timeouts_sent + vm->stats.timeouts_unsent);
}

/*
 * 1 when the upstream is ready, stalled or not, and the VM is not
 * stopping: the states "ready" and "stalled" of dump_vm_state.
 */
static uint64_t
counter_up(const struct vm *vm)
{
	return (vm->stop == NULL && vm->mon->state == MONITOR_READY);
}

/* 1 when a sent command is past its deadline, unanswered. */
static uint64_t
counter_stalled(const struct vm *vm)
{
	return (vm->stalled != 0);
}

/* 1 when reads from QEMU are paused at the backlog's bounds. */
static uint64_t
counter_reads_paused(const struct vm *vm)
{
	return (vm->reads_paused != 0);
}

/* The events of the backlog, not yet written to every client. */
static uint64_t
counter_backlog_events(const struct vm *vm)
{
	return (vm->backlog_events);
}

/* The bytes of those events. */
static uint64_t
counter_backlog_bytes(const struct vm *vm)
{
	return (vm->backlog_bytes);
}

/* The in-band commands sent and not answered. */
static uint64_t
counter_in_flight(const struct vm *vm)
{
	return (vm->ninflight);
}

/* The commands waiting to be sent. */
static uint64_t
counter_queued(const struct vm *vm)
{
	return (vm->nqueued);
}

/* The clients connected now, which the VM does not count as it goes. */
static uint64_t
counter_clients(const struct vm *vm)
{
	const struct client	*c;
	uint64_t		 n = 0;

	TAILQ_FOREACH(c, &vm->clients, entry)
		n++;
	return (n);
}

/*
 * The counter after c (the first if c is NULL) of those shown in the
 * places of mask, in their order: the table's, those marked late for
 * one of them after the others.  NULL after the last.  The places of a
 * mask walked together must have one order (the dump's JSON and log).
 */
const struct counter *
counter_next(const struct counter *c, unsigned int mask)
{
	unsigned int	 late = 0;
	size_t		 i;
	int		 pass;

	if (mask & COUNTER_METRICS)
		late |= COUNTER_METRICS_LATE;
	if (mask & COUNTER_STATE)
		late |= COUNTER_STATE_LATE;
	i = c == NULL ? 0 : (size_t)(c - counter_table) + 1;
	pass = c != NULL && (c->places & late) != 0;
	for (;;) {
		for (; i < counter_count; i++) {
			c = &counter_table[i];
			if ((c->places & mask) != 0 &&
			    ((c->places & late) != 0) == pass)
				return (c);
		}
		if (pass || late == 0)
			return (NULL);
		pass = 1;
		i = 0;
	}
}

/* The value of a counter or gauge of a VM. */
uint64_t
counter_value(const struct counter *c, const struct vm *vm)
{
	if (c->get != NULL)
		return (c->get(vm));
	if (c->type == COUNTER_HISTOGRAM)
		return (counter_hist_of(c, vm)->count);
	return (*(const uint64_t *)(const void *)((const char *)&vm->stats +
	    c->off));
}

/* The histogram of a VM that c is. */
const struct counter_hist *
counter_hist_of(const struct counter *c, const struct vm *vm)
{
	return ((const struct counter_hist *)(const void *)
	    ((const char *)&vm->stats + c->off));
}

/* Where a counter kept in stats is, for its reader to set it. */
uint64_t *
counter_ptr(const struct counter *c, struct vm_stats *stats)
{
	return ((uint64_t *)(void *)((char *)stats + c->off));
}

/* Where a histogram kept in stats is, for its reader to set it. */
struct counter_hist *
counter_hist(const struct counter *c, struct vm_stats *stats)
{
	return ((struct counter_hist *)(void *)((char *)stats + c->off));
}

/* Count an observation, in seconds, in its bucket (if any) and in all. */
void
counter_observe(struct counter_hist *h, double seconds)
{
	int	 i;

	for (i = 0; i < COUNTER_NBUCKETS; i++) {
		if (seconds <= counter_bounds[i]) {
			h->buckets[i]++;
			break;
		}
	}
	h->count++;
	h->sum += seconds;
}

/* Whether the VM's lock is held. */
static uint64_t
counter_lock_held(const struct vm *vm)
{
	return (vm->lock.held);
}

/* The commands that wait for the VM's lock. */
static uint64_t
counter_lock_waiters(const struct vm *vm)
{
	return (vm->lock.nacquires + vm->lock.nblocked);
}
