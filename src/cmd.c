/*
 * The command queue of a VM.
 *
 * Every command forwarded to QEMU carries an id of the proxy's (a
 * decimal counter); the client's id is kept as QEMU writes it back (see
 * qmp_msg_id_text) and put into the reply.  In-band commands wait in the
 * VM's queue and go to QEMU at most max_inflight unanswered at once, by
 * class (cmd_next): when QEMU has room, the best class with a command
 * waiting sends (a listener's priority: manager, normal, background),
 * and within a class the clients with one waiting take turns, one
 * command each, each client's in its own order, the one that last had
 * one sent longest ago first (cmd_enqueue).  A lower class whose
 * oldest command has waited priority_relief gets one slot, at most once
 * a priority_relief, so no class starves.  A command already at QEMU
 * cannot be overtaken: a manager's waits for at most the ones in
 * flight.  So what QEMU takes long on is kept from being one: its
 * replies fixed for QEMU's life go to other classes from cache.c, and
 * a background command that costs more than one (conf_vm_cost) waits
 * until the manager class has had nothing queued or at QEMU for
 * manager_quiet (relief excepted).  A listener's rate_limit gives each
 * client a bucket of rate_burst tokens, refilled rate_limit a second:
 * a command goes when the bucket holds its cost (or the whole burst,
 * for one that costs more), and takes its cost; until then its client
 * is passed over in its class's turn, never refused.  A timer (wake)
 * runs cmd_pump when the first held back of these may go.
 * max_queued_commands bounds each class's queue apart, so that no
 * class can fill another's.
 * A command's deadline runs from its arrival: expired before it was
 * sent, it leaves the queue and is never sent; expired after, its
 * caller gets an error at once but the command keeps its slot until
 * QEMU answers, since QEMU is still working on it, and that late reply
 * is dropped.
 *
 * Each client also has its order: its commands as they came.  QEMU
 * answers all in-band input in order, parse errors included, and runs
 * an exec-oob as it reads it, before what follows; so a reply the
 * proxy makes itself (to invalid input, to a second qmp_capabilities)
 * is held by client.c until the client's commands before it, exec-oob
 * included, are answered.  Timeout errors and the refusal of a full
 * queue do not wait: they exist to answer at once.  Nothing here
 * writes to a client: its replies go through client.c.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "qmpmux.h"

static void	cmd_deadline_cb(int, short, void *);
static void	cmd_expire(struct cmd *);
static void	cmd_wake_cb(int, short, void *);
static struct cmd_flight *cmd_flight_find(struct vm *, unsigned int,
		    uint64_t);
static void	cmd_flight_tell(struct cmd_flight *, int);
static void	cmd_flight_free(struct cmd_flight *);

/*
 * Tell the layer above of a command sent to QEMU (vm_tell, VM_SENT): as
 * it goes, when its deadline answers it, and once it is answered by
 * QEMU or forgotten (how, -1), so that a qmpmuxd started after a crash
 * keeps its deadline and drops its late reply.
 */
static void
cmd_tell_sent(struct cmd *cmd, int how)
{
	struct vm_sent	 s;

	s.epoch = cmd->epoch;
	s.seq = cmd->upstream_id;
	s.client = cmd->owner;
	s.id = cmd->client_id;
	s.idlen = cmd->client_id_len;
	s.name = cmd->name;
	s.arrived = (double)cmd->arrived.tv_sec + cmd->arrived.tv_usec / 1e6;
	s.timeout = cmd->timeout;
	s.expired = cmd->expired;
	s.at = cmd->at;
	vm_tell(cmd->vm, VM_SENT, &s, how);
}

/*
 * The command no longer needs its bytes in its client's ring: it is
 * sent (and kept in the table of commands sent), or answered.
 */
static void
cmd_span_release(struct cmd *cmd)
{
	struct client_span	*span = cmd->span;

	cmd->span = NULL;
	if (span != NULL && cmd->client != NULL)
		client_in_release(cmd->client, span);
}

/* Free a command; it must be off both lists. */
static void
cmd_free(struct cmd *cmd)
{
	if (cmd == NULL)
		return;
	if (cmd->sent)
		cmd_tell_sent(cmd, -1);
	if (cmd->deadline != NULL)
		event_free(cmd->deadline);
	if (cmd->wire != NULL)
		evbuffer_free(cmd->wire);
	free(cmd->client_id);
	free(cmd->lock_reason);
	free(cmd);
}

/*
 * The command is answered for its client: one less in its pipeline, and
 * the replies of the proxy's that waited for it go out (client.c).
 */
static void
cmd_done(struct cmd *cmd)
{
	struct client	*c = cmd->client;

	cmd->answered = 1;
	/*
	 * Its reply is committed with its message's leaving the client's
	 * ring; one sent has left it, and its reply is committed now,
	 * before the table of commands sent forgets it (cmd_free).
	 */
	if (cmd->span == NULL && c != NULL)
		client_out_commit(c);
	cmd_span_release(cmd);
	cmd->client = NULL;
	if (c != NULL)
		client_command_done(c, cmd);
}

/* Send an error to the command's client, with its id, at once. */
static void
cmd_error(struct cmd *cmd, const char *class, const char *desc)
{
	struct client	*c = cmd->client;

	if (c == NULL || cmd->answered)
		return;
	client_error(c, CLIENT_NOW, cmd->client_id, cmd->client_id_len,
	    class, "%s", desc);
	cmd_done(cmd);
}

/* Put the command on the wire. */
static void
cmd_send(struct vm *vm, struct cmd *cmd)
{
	cmd->sent = 1;
	/* kept before QEMU can answer it, and then out of the ring */
	cmd_tell_sent(cmd, 1);
	cmd_span_release(cmd);
	if (TRACE_ON(vm))
		trace_message(vm, TRACE_QEMU_OUT, cmd->client,
		    (const char *)evbuffer_pullup(cmd->wire, -1),
		    evbuffer_get_length(cmd->wire), NULL);
	monitor_send(vm->mon, cmd->wire);
	evbuffer_free(cmd->wire);
	cmd->wire = NULL;
	TAILQ_INSERT_TAIL(&vm->inflight, cmd, entry);
	if (!cmd->oob)
		vm->ninflight++;
	vm_log(vm, LOG_DEBUG, "sent %s%s (id %llu)", cmd->name,
	    cmd->oob ? " out of band" : "",
	    (unsigned long long)cmd->upstream_id);
}

/*
 * A command waits: at the end of the VM's queue, of its class's and of
 * its client's, and the client in its class's ring if it was not.  The
 * ring is in the order in which its clients last had a command sent,
 * the longest ago first (never, first of all): a client that comes back
 * after a pause goes before those that kept sending, which pipeline,
 * so that an interactive caller waits for the command at QEMU and not
 * for one of each of theirs; those take turns among themselves.
 */
static void
cmd_enqueue(struct vm *vm, struct cmd *cmd, struct client *c)
{
	struct client	*at;

	cmd->queued_by = c;
	cmd->prio = c->listener->conf->priority;
	TAILQ_INSERT_TAIL(&vm->queue, cmd, entry);
	TAILQ_INSERT_TAIL(&vm->class_queue[cmd->prio], cmd, class_entry);
	TAILQ_INSERT_TAIL(&c->queued, cmd, client_entry);
	if (!c->in_ring) {
		TAILQ_FOREACH(at, &vm->ring[cmd->prio], ring_entry) {
			if (timercmp(&at->served, &c->served, >))
				break;
		}
		if (at != NULL)
			TAILQ_INSERT_BEFORE(at, c, ring_entry);
		else
			TAILQ_INSERT_TAIL(&vm->ring[cmd->prio], c, ring_entry);
		c->in_ring = 1;
	}
	vm->nqueued++;
	vm->nclass_queued[cmd->prio]++;
	if (cmd->lock_op != LOCK_OP_NONE)
		vm->lock.nqueued++;
	if (cmd->lock_op == LOCK_OP_ACQUIRE)
		vm->lock.nacquires++;
}

/* A command leaves the queue, sent or not; its client, the ring if done. */
static void
cmd_unqueue(struct vm *vm, struct cmd *cmd)
{
	struct client	*c = cmd->queued_by;

	TAILQ_REMOVE(&vm->queue, cmd, entry);
	TAILQ_REMOVE(&vm->class_queue[cmd->prio], cmd, class_entry);
	TAILQ_REMOVE(&c->queued, cmd, client_entry);
	if (TAILQ_EMPTY(&c->queued) && c->in_ring) {
		TAILQ_REMOVE(&vm->ring[cmd->prio], c, ring_entry);
		c->in_ring = 0;
	}
	cmd->queued_by = NULL;
	vm->nqueued--;
	vm->nclass_queued[cmd->prio]--;
	if (cmd->lock_op != LOCK_OP_NONE)
		vm->lock.nqueued--;
	if (cmd->lock_op == LOCK_OP_ACQUIRE)
		vm->lock.nacquires--;
	if (cmd->lock_blocked)
		vm->lock.nblocked--;
}

/*
 * Whether an in-band command of the manager class (manager), or of a
 * class below it (!manager), is at QEMU.
 */
static int
cmd_at_qemu(const struct vm *vm, int manager)
{
	const struct cmd	*cmd;

	TAILQ_FOREACH(cmd, &vm->inflight, entry) {
		if (!cmd->oob && (cmd->prio == PRIO_MANAGER) == manager)
			return (1);
	}
	return (0);
}

/*
 * Whether a command of the manager class waits that could be sent: one
 * the lock holds back does not count, or a holder of the background
 * class would wait for the manager as the manager waits for it.
 */
static int
cmd_manager_waits(const struct vm *vm)
{
	const struct cmd	*cmd;

	if (vm->nclass_queued[PRIO_MANAGER] == 0)
		return (0);
	TAILQ_FOREACH(cmd, &vm->class_queue[PRIO_MANAGER], class_entry) {
		if (!lock_holds(vm, cmd))
			return (1);
	}
	return (0);
}

/*
 * Seconds until c's bucket (its listener's rate_limit) holds what cmd
 * costs, or the whole burst if it costs more: 0 if it does now, or
 * there is no limit.  The bucket is refilled first.
 */
static double
cmd_bucket_wait(struct client *c, const struct cmd *cmd)
{
	const struct listener_conf	*lc = c->listener->conf;
	double				 burst, need;

	if (lc->rate_limit == 0)
		return (0);
	burst = lc->rate_burst > 0 ? lc->rate_burst : lc->rate_limit;
	if (!timerisset(&c->tokens_at))
		c->tokens = burst;
	else {
		c->tokens += util_elapsed(&c->tokens_at) * lc->rate_limit;
		if (c->tokens > burst)
			c->tokens = burst;
	}
	util_now(&c->tokens_at);
	need = cmd->cost < burst ? cmd->cost : burst;
	if (c->tokens >= need)
		return (0);
	return ((need - c->tokens) / lc->rate_limit);
}

/* The command goes: its cost leaves its client's bucket. */
static void
cmd_bucket_take(struct client *c, const struct cmd *cmd)
{
	if (c->listener->conf->rate_limit == 0)
		return;
	(void)cmd_bucket_wait(c, cmd);
	c->tokens -= cmd->cost;
}

/*
 * Seconds until a queued command, its client's first, may go: 0 now;
 * -1 while the VM's lock holds it (lock.c, which pumps when it lets
 * go), or while a manager's is queued or at QEMU (its reply pumps
 * again).  Relief passes manager_quiet, not the lock or a rate limit.
 */
static double
cmd_wait(struct vm *vm, struct cmd *cmd, int relief)
{
	double	w;

	if (lock_blocks(vm, cmd))
		return (-1);
	if ((w = cmd_bucket_wait(cmd->queued_by, cmd)) > 0) {
		if (!cmd->rate_delayed) {
			cmd->rate_delayed = 1;
			vm->stats.rate_delayed++;
		}
		return (w);
	}
	if (relief || cmd->prio != PRIO_BACKGROUND || cmd->cost <= 1 ||
	    vm->conf.manager_quiet <= 0)
		return (0);
	if (cmd_manager_waits(vm) || cmd_at_qemu(vm, 1))
		return (-1);
	w = vm->conf.manager_quiet - util_elapsed(&vm->manager_seen);
	return (w > 0 ? w : 0);
}

/*
 * Run cmd_pump in seconds: the soonest wait of every command held back
 * (cmd_next sees them all when none may go), so it replaces the last.
 */
static void
cmd_wake(struct vm *vm, double seconds)
{
	struct timeval	 tv;

	if (vm->wake == NULL &&
	    (vm->wake = evtimer_new(vm->base, cmd_wake_cb, vm)) == NULL)
		fatalx("%s: evtimer_new failed", __func__);
	if (util_timeval(seconds, &tv) == -1)
		fatalx("%s: bad wait %g", __func__, seconds);
	evtimer_add(vm->wake, &tv);
}

static void
cmd_wake_cb(int fd, short events, void *arg)
{
	cmd_pump(arg);
}

/*
 * Look at the queue again from the loop: something that held commands
 * back has gone (lock.c), wherever that was found.
 */
void
cmd_pump_soon(struct vm *vm)
{
	cmd_wake(vm, 0);
}

/*
 * The lock's own commands (an acquire, a release) whose turn has come,
 * the client's commands before each answered: lock_run does each that
 * may be done now, and it leaves the queue.  They never reach QEMU.
 */
static void
cmd_pump_lock(struct vm *vm)
{
	struct cmd	*cmd;

again:
	if (vm->lock.nqueued == 0)
		return;
	TAILQ_FOREACH(cmd, &vm->queue, entry) {
		if (cmd->lock_op == LOCK_OP_NONE ||
		    TAILQ_FIRST(&cmd->queued_by->order) != cmd ||
		    lock_run(vm, cmd) == 0)
			continue;
		/* answered: the walk begins again, the queue has changed */
		cmd_unqueue(vm, cmd);
		cmd_done(cmd);
		cmd_free(cmd);
		goto again;
	}
}

/*
 * The first client of class p's ring whose next command may go now, or
 * NULL; *wake is lowered to the soonest wait of those that may not.
 */
static struct client *
cmd_turn(struct vm *vm, int p, double *wake)
{
	struct client	*c;
	double		 w;

	TAILQ_FOREACH(c, &vm->ring[p], ring_entry) {
		if ((w = cmd_wait(vm, TAILQ_FIRST(&c->queued), 0)) == 0)
			return (c);
		if (w > 0 && (*wake < 0 || w < *wake))
			*wake = w;
	}
	return (NULL);
}

/*
 * The command that goes next, still queued: the oldest of a lower class
 * whose relief is due (its class in *relief_of, for cmd_pump to count
 * once it goes), else the next of the best class with one that may go,
 * from the first client of its ring that may.  NULL if none may: the
 * wake timer is set for the first that will.
 */
static struct cmd *
cmd_next(struct vm *vm, int *relief_of)
{
	double		 relief = vm->conf.priority_relief, wake = -1;
	double		 due;
	struct client	*c = NULL;
	struct cmd	*cmd;
	int		 best, p;

	*relief_of = -1;
	for (best = 0; best < PRIO_N; best++) {
		if ((c = cmd_turn(vm, best, &wake)) != NULL)
			break;
	}
	/* below the class that goes; or any but the manager's, none going */
	for (p = PRIO_N - 1; relief > 0 &&
	    p > (c != NULL ? best : PRIO_MANAGER); p--) {
		if ((cmd = TAILQ_FIRST(&vm->class_queue[p])) == NULL)
			continue;
		due = relief - util_elapsed(&cmd->arrived);
		if (timerisset(&vm->relieved[p]) &&
		    relief - util_elapsed(&vm->relieved[p]) > due)
			due = relief - util_elapsed(&vm->relieved[p]);
		/* with none going, nothing may pump when it is due */
		if (due > 0 && (wake < 0 || due < wake))
			wake = due;
		if (due > 0)
			continue;
		/*
		 * The oldest that may go, of those that waited as long,
		 * each its client's first: one the lock or a bucket holds
		 * back does not take its class's relief away.
		 */
		for (; cmd != NULL && util_elapsed(&cmd->arrived) >= relief;
		    cmd = TAILQ_NEXT(cmd, class_entry)) {
			if (TAILQ_FIRST(&cmd->queued_by->queued) == cmd &&
			    cmd_wait(vm, cmd, 1) == 0)
				break;
		}
		if (cmd == NULL || util_elapsed(&cmd->arrived) < relief)
			continue;
		*relief_of = p;
		return (cmd);
	}
	if (c == NULL) {
		if (wake > 0)
			cmd_wake(vm, wake);
		return (NULL);
	}
	return (TAILQ_FIRST(&c->queued));
}

/* Send queued commands while QEMU has room for them. */
void
cmd_pump(struct vm *vm)
{
	struct client	*c;
	struct cmd	*cmd;
	char		 desc[256];
	int		 relief_of;

	cmd_pump_lock(vm);
	while (monitor_ready(vm->mon) &&
	    vm->ninflight < vm->conf.max_inflight &&
	    (cmd = cmd_next(vm, &relief_of)) != NULL) {
		/* its client may have hung up while it waited: then it goes */
		if (cmd->waited && cmd->client != NULL &&
		    client_gone(cmd->client))
			continue;
		/* relief is spent only on a command that goes */
		if (relief_of != -1) {
			util_now(&vm->relieved[relief_of]);
			vm->stats.relieved++;
		}
		counter_observe(&vm->stats.waited[cmd->prio],
		    util_elapsed(&cmd->arrived));
		if (cmd->behind)
			counter_observe(&vm->stats.behind_lower,
			    util_elapsed(&cmd->arrived));
		c = cmd->queued_by;
		if (cmd->mutation && lock_lost(c, desc, sizeof(desc))) {
			cmd_unqueue(vm, cmd);
			cmd_error(cmd, "GenericError", desc);
			cmd_free(cmd);
			continue;
		}
		cmd_bucket_take(c, cmd);
		/* its turn is taken: to the ring's end, the last served */
		util_now(&c->served);
		if (c->in_ring) {
			TAILQ_REMOVE(&vm->ring[cmd->prio], c, ring_entry);
			TAILQ_INSERT_TAIL(&vm->ring[cmd->prio], c, ring_entry);
		}
		cmd_unqueue(vm, cmd);
		cmd_send(vm, cmd);
	}
}

/*
 * The id a command goes to QEMU with, a string that says whose it is
 * without the queue: "EPOCH.SEQ.CLIENT.HEX", the server's epoch (new
 * each time qmpmuxd starts afresh, kept across a restart in place), the
 * VM's command number, the client's number and the client's own id
 * bytes in hex ("-": it sent none; "~": too long to carry).  A qmpmuxd
 * started again after a crash has no queue, but can still give a reply
 * of QEMU's to the client that asked, with its own id (cmd_orphan).
 * Made in one buffer and added at once, without a printf: it is on the
 * path of every command.
 */
void
cmd_upstream_id(struct evbuffer *b, const struct cmd *cmd)
{
	char			 buf[2 * CMD_ID_CARRIED + 64], num[24], *q;
	unsigned char		 e[4];
	size_t			 off = 0;
	unsigned long long	 v;
	int			 k;

	/* the epoch, 8 hex digits: its bytes, the most significant first */
	for (k = 0; k < 4; k++)
		e[k] = (unsigned char)(cmd->vm->server->epoch >> (24 - 8 * k));
	buf[off++] = '"';
	util_hex_encode(buf + off, e, sizeof(e));
	off += 2 * sizeof(e);
	buf[off++] = '.';
	for (k = 0; k < 2; k++) {
		v = k == 0 ? (unsigned long long)cmd->upstream_id :
		    (unsigned long long)(cmd->owner < 0 ? 0 : cmd->owner);
		q = num + sizeof(num);
		do {
			*--q = (char)('0' + v % 10);
			v /= 10;
		} while (v != 0);
		memcpy(buf + off, q, (size_t)(num + sizeof(num) - q));
		off += (size_t)(num + sizeof(num) - q);
		buf[off++] = '.';
	}
	if (cmd->client_id == NULL)
		buf[off++] = '-';
	else if (cmd->client_id_len > CMD_ID_CARRIED)
		buf[off++] = '~';
	else {
		util_hex_encode(buf + off, cmd->client_id, cmd->client_id_len);
		off += 2 * cmd->client_id_len;
	}
	buf[off++] = '"';
	evbuffer_add(b, buf, off);
}

/*
 * The command as it goes to QEMU: the client's bytes with the id's value
 * replaced by the proxy's, or an id inserted after the opening brace.
 */
static void
cmd_wire(struct cmd *cmd, const struct qmp_msg *msg)
{
	struct qmp_span	 id = qmp_msg_id(msg);

	if ((cmd->wire = evbuffer_new()) == NULL)
		fatal("%s", __func__);
	if (id.len > 0) {
		evbuffer_add(cmd->wire, msg->buf, id.off);
		cmd_upstream_id(cmd->wire, cmd);
		evbuffer_add(cmd->wire, msg->buf + id.off + id.len,
		    msg->len - id.off - id.len);
	} else {
		evbuffer_add(cmd->wire, "{\"id\": ", 7);
		cmd_upstream_id(cmd->wire, cmd);
		evbuffer_add(cmd->wire, ", ", 2);
		evbuffer_add(cmd->wire, msg->buf + 1, msg->len - 1);
	}
	evbuffer_add(cmd->wire, "\r\n", 2);
}

/*
 * A decimal number of at most max as cmd_upstream_id writes it (no
 * sign, no space, no leading 0) from p, before end: where it ends, or
 * NULL if there is none.
 */
static const char *
cmd_id_decimal(const char *p, const char *end, unsigned long long max,
    unsigned long long *v)
{
	const char		*s = p;
	unsigned long long	 n = 0, d;

	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		d = (unsigned long long)(*p - '0');
		if (n > (max - d) / 10)
			return (NULL);
		n = n * 10 + d;
	}
	if (p == s || (*s == '0' && p - s > 1))
		return (NULL);
	*v = n;
	return (p);
}

/*
 * The parts of an id of cmd_upstream_id as QEMU gives it back; -1 if
 * it is not exactly one that cmd_upstream_id writes, so that no other
 * id is taken for a command of ours.  hex points into the message,
 * hexlen long: "-", "~" or the client's id bytes in lowercase hex.
 */
int
cmd_parse_id(const struct qmp_msg *msg, unsigned int *epoch, uint64_t *seq,
    int *client, const char **hex, size_t *hexlen)
{
	struct qmp_span		 span = qmp_msg_id(msg);
	const char		*p = msg->buf + span.off, *end;
	unsigned long long	 n, c;
	unsigned char		 e[4];
	size_t			 len;

	if (span.len < 2 || p[0] != '"' || p[span.len - 1] != '"')
		return (-1);
	end = p + span.len - 1;
	p++;
	/* the epoch: 8 hex digits, the most significant first */
	if (end - p < 9 || util_hex_decode(e, p, sizeof(e)) == -1 ||
	    p[8] != '.')
		return (-1);
	p += 9;
	if ((p = cmd_id_decimal(p, end, UINT64_MAX, &n)) == NULL ||
	    p == end || *p != '.')
		return (-1);
	if ((p = cmd_id_decimal(p + 1, end, INT_MAX, &c)) == NULL ||
	    p == end || *p != '.')
		return (-1);
	p++;
	len = (size_t)(end - p);
	if (len == 0 || (len == 1 && *p != '-' && *p != '~'))
		return (-1);
	/* the hex ends at the closing quote, which is no hex digit */
	if (len > 1 && (len % 2 != 0 || len > 2 * CMD_ID_CARRIED ||
	    strspn(p, "0123456789abcdef") != len))
		return (-1);
	*epoch = (unsigned int)e[0] << 24 | (unsigned int)e[1] << 16 |
	    (unsigned int)e[2] << 8 | e[3];
	*seq = n;
	*client = (int)c;
	*hex = p;
	*hexlen = (size_t)(end - p);
	return (0);
}

/*
 * Take a checked command from a negotiated client.  Returns 0, or -1 if
 * it was refused (the client has its error).
 */
int
cmd_submit(struct client *c, const struct qmp_msg *msg)
{
	struct vm	*vm = c->vm;
	struct cmd	*cmd;
	struct timeval	 tv;
	double		 timeout;
	const char	*id;
	size_t		 idlen;
	enum prio	 prio = c->listener->conf->priority;
	enum lock_op	 op = lock_op(msg->name);
	const struct qmp_msg *fixed;
	struct lock_args a;
	int		 wait;

	reply_id(msg, &id, &idlen);
	memset(&a, 0, sizeof(a));
	/* the lock's own, answered here or queued for their turn */
	if (msg->m_exec_oob != -1)
		op = LOCK_OP_NONE;
	if (op != LOCK_OP_NONE && lock_submit(c, msg, op, &a) == 1)
		return (0);
	if (lock_fenced(c, msg))
		return (-1);
	/* a reply fixed for QEMU's life, to any but the manager's */
	if (op == LOCK_OP_NONE && prio != PRIO_MANAGER && cache_fixed(msg) &&
	    (fixed = cache_find(vm, msg->name)) != NULL) {
		vm->stats.commands++;
		vm->stats.cached++;
		client_reply(c, CLIENT_IN_ORDER, fixed, id, idlen);
		return (0);
	}
	wait = msg->m_exec_oob == -1 &&
	    (vm->ninflight >= vm->conf.max_inflight ||
	    !TAILQ_EMPTY(&vm->queue));
	/* only a command that has to wait counts, against its class's */
	if (wait && op == LOCK_OP_NONE &&
	    vm->nclass_queued[prio] >= vm->conf.max_queued_commands) {
		vm->stats.refused++;
		vm->stats.refused_by[prio]++;
		/* a client that resends at once must not flood the log */
		if (timerisset(&vm->refused_logged) &&
		    util_elapsed(&vm->refused_logged) < 1)
			vm->refused_unlogged++;
		else {
			client_log(c, LOG_ERR, "%s refused: %u %s commands "
			    "queued (and %llu more refused in the last second "
			    "unlogged)", msg->name, vm->nclass_queued[prio],
			    conf_prio_name(prio),
			    (unsigned long long)vm->refused_unlogged);
			vm->refused_unlogged = 0;
			util_now(&vm->refused_logged);
		}
		client_error(c, CLIENT_NOW, id, idlen,
		    "GenericError", "qmpmux: too many commands queued for VM "
		    "%s", vm->name);
		return (-1);
	}

	if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
		fatal("%s", __func__);
	cmd->vm = vm;
	cmd->client = c;
	cmd->owner = c->id;
	/* its bytes stay in the client's ring until it is sent or answered */
	cmd->at = -1;
	if ((cmd->span = c->span_cur) != NULL) {
		cmd->span->owners++;
		cmd->at = cmd->span->at;
	}
	cmd->upstream_id = ++vm->next_cmd_id;
	cmd->epoch = vm->server->epoch;
	cmd->oob = msg->m_exec_oob != -1;
	cmd->waited = wait;
	cmd->prio = prio;
	memcpy(cmd->name, msg->name, sizeof(cmd->name));
	cmd->cost = conf_vm_cost(&vm->conf, cmd->name);
	cmd->cacheable = cache_fixed(msg);
	cmd->mutation = !cmd->oob && op == LOCK_OP_NONE &&
	    !lock_is_read(cmd->name);
	cmd->lock_op = op;
	cmd->lock_hold = a.hold;
	cmd->lock_reason = a.reason;
	cmd->lock_token = a.token;
	if (prio == PRIO_MANAGER && !cmd->oob) {
		util_now(&vm->manager_seen);
		cmd->behind = cmd_at_qemu(vm, 0);
	}
	if (id != NULL) {
		if ((cmd->client_id = malloc(idlen)) == NULL)
			fatal("%s", __func__);
		memcpy(cmd->client_id, id, idlen);
		cmd->client_id_len = idlen;
	}
	util_now(&cmd->arrived);
	c->ncmds++;
	if (op == LOCK_OP_NONE) {
		cmd_wire(cmd, msg);
		vm->stats.commands++;
	}

	/* a reload may change the VM's; this one keeps its own */
	if (op != LOCK_OP_NONE)
		timeout = cmd->timeout = a.timeout;
	else
		timeout = cmd->timeout = conf_vm_timeout(&vm->conf,
		    cmd->name);
	if (timeout > 0 && util_timeval(timeout, &tv) == 0) {
		cmd->deadline = evtimer_new(vm->base, cmd_deadline_cb, cmd);
		if (cmd->deadline == NULL)
			fatalx("%s: evtimer_new failed", __func__);
		evtimer_add(cmd->deadline, &tv);
	}

	/* what the proxy answers after this waits for its reply */
	TAILQ_INSERT_TAIL(&c->order, cmd, order);
	if (cmd->oob) {
		/* out of band: past the queue, and never counted in it */
		cmd_bucket_take(c, cmd);
		cmd_send(vm, cmd);
		return (0);
	}
	cmd_enqueue(vm, cmd, c);
	cmd_pump(vm);
	return (0);
}

/*
 * A restart (state-restore.c): a command of the process before, its
 * fields filled in by the caller, goes back where it was: an unsent
 * command at the end of the queue, a sent one at the end of the
 * in-flight list (the caller puts it in its client's order).  A
 * deadline still to come is armed for what is left of it, at least a
 * moment: one that passed during the restart fires at once.
 */
void
cmd_adopt(struct cmd *cmd, double left)
{
	struct vm	*vm = cmd->vm;
	struct timeval	 tv;

	cmd->epoch = vm->server->epoch;
	if (!cmd->answered && cmd->timeout > 0) {
		if (util_timeval(left > 0.001 ? left : 0.001, &tv) == -1)
			fatalx("%s: bad deadline", __func__);
		cmd->deadline = evtimer_new(vm->base, cmd_deadline_cb, cmd);
		if (cmd->deadline == NULL)
			fatalx("%s: evtimer_new failed", __func__);
		evtimer_add(cmd->deadline, &tv);
	}
	cmd->cost = conf_vm_cost(&vm->conf, cmd->name);
	if (!cmd->sent) {
		cmd_enqueue(vm, cmd, cmd->client);
		/* counted once, when the lock first held it back */
		if (cmd->lock_blocked)
			vm->lock.nblocked++;
		return;
	}
	/* one whose client has gone is nobody's: not the manager's */
	cmd->prio = cmd->client != NULL ?
	    cmd->client->listener->conf->priority : PRIO_BACKGROUND;
	TAILQ_INSERT_TAIL(&vm->inflight, cmd, entry);
	if (!cmd->oob)
		vm->ninflight++;
	cmd_tell_sent(cmd, 1);
}

/* Whether a's deadline is not later than b's. */
static int
cmd_due_by(const struct cmd *a, const struct cmd *b)
{
	double	 da, db;

	da = (double)a->arrived.tv_sec + a->arrived.tv_usec / 1e6 + a->timeout;
	db = (double)b->arrived.tv_sec + b->arrived.tv_usec / 1e6 + b->timeout;
	return (da <= db + 1e-6);
}

/*
 * The deadline of a command has passed.  QEMU answers a client's
 * commands in order, and timers due at the same instant fire in no set
 * order: the client's commands before this one whose deadlines are not
 * later are answered first.
 */
static void
cmd_deadline_cb(int fd, short events, void *arg)
{
	struct cmd	*cmd = arg, *prev;

again:
	if (cmd->client != NULL) {
		TAILQ_FOREACH(prev, &cmd->client->order, order) {
			if (prev == cmd)
				break;
			if (prev->deadline != NULL && !prev->answered &&
			    evtimer_pending(prev->deadline, NULL) &&
			    cmd_due_by(prev, cmd)) {
				evtimer_del(prev->deadline);
				cmd_expire(prev);
				goto again;
			}
		}
	}
	cmd_expire(cmd);
}

/* The deadline of a command has passed: it is answered with an error. */
static void
cmd_expire(struct cmd *cmd)
{
	struct vm	*vm = cmd->vm;
	double		 limit = cmd->timeout;
	char		 desc[512];

	if (!cmd->sent) {
		vm->stats.timeouts_unsent++;
		vm_log(vm, LOG_ERR,
		    "%s expired after %gs in the queue, not sent", cmd->name,
		    limit);
		if (cmd->lock_op != LOCK_OP_NONE || cmd->lock_blocked)
			lock_timeout_desc(vm, cmd, desc, sizeof(desc));
		else
			snprintf(desc, sizeof(desc), "qmpmux: command %s "
			    "timed out after %gs waiting for QEMU and was not "
			    "sent to QEMU", cmd->name, limit);
		cmd_unqueue(vm, cmd);
		cmd_error(cmd, "GenericError", desc);
		cmd_free(cmd);
		/* what it held back (its client's next, the lock's) may go */
		cmd_pump_soon(vm);
		return;
	}
	vm->stats.timeouts_sent++;
	vm_log(vm, LOG_ERR, "QEMU did not reply to %s (id %llu) within %gs; "
	    "stalled until it does", cmd->name,
	    (unsigned long long)cmd->upstream_id, limit);
	snprintf(desc, sizeof(desc), "qmpmux: QEMU did not reply to %s "
	    "within %gs; it was sent and may still complete", cmd->name, limit);
	cmd_error(cmd, "GenericError", desc);
	/* stalled even if the caller has gone and had no error */
	cmd->answered = 1;
	cmd->expired = 1;
	cmd_tell_sent(cmd, 1);
	lock_answered(vm, cmd);
	/* answered: its client's next (an acquire, a release) may go */
	cmd_pump_soon(vm);
	if (!vm->stalled) {
		vm->stalled = 1;
		util_now(&vm->stalled_since);
	}
}

/* Whether a sent command is past its deadline: the VM is stalled. */
int
cmd_stalled(struct vm *vm)
{
	struct cmd	*cmd;

	TAILQ_FOREACH(cmd, &vm->inflight, entry) {
		if (cmd->expired)
			return (1);
	}
	return (0);
}

/*
 * Find the in-flight command a reply answers.  QEMU copies the id the
 * proxy gave; a reply without one (QEMU's own parse errors) answers the
 * oldest in-band command, since QEMU answers those in order.
 */
static struct cmd *
cmd_find(struct vm *vm, const struct qmp_msg *msg)
{
	struct cmd	*cmd;
	unsigned int	 epoch;
	uint64_t	 seq;
	const char	*hex;
	size_t		 hexlen;
	int		 client;

	if (msg->m_id == -1) {
		TAILQ_FOREACH(cmd, &vm->inflight, entry) {
			if (!cmd->oob)
				return (cmd);
		}
		return (NULL);
	}
	if (cmd_parse_id(msg, &epoch, &seq, &client, &hex, &hexlen) == -1)
		return (NULL);
	TAILQ_FOREACH(cmd, &vm->inflight, entry) {
		if (cmd->upstream_id == seq && cmd->epoch == epoch)
			return (cmd);
	}
	return (NULL);
}

/* Whether buf holds exactly one JSON value, as a client's id is. */
static int
cmd_one_value(struct vm *vm, const char *buf, size_t len)
{
	struct qmp_reader	*r;
	struct evbuffer		*b;
	struct qmp_msg		 msg;
	int			 one = 0;

	/* as the value of a member of an object, the way it was read */
	if ((r = qmp_reader_new(len + 16, vm->conf.max_json_depth, 0)) ==
	    NULL || (b = evbuffer_new()) == NULL)
		fatalx("%s: out of memory", __func__);
	evbuffer_add(b, "{\"id\": ", 7);
	evbuffer_add(b, buf, len);
	evbuffer_add(b, "}", 1);
	if (qmp_reader_next(r, b, &msg) == QMP_MESSAGE) {
		one = evbuffer_get_length(b) == 0 && msg.m_id != -1 &&
		    msg.nmembers == 1;
		qmp_msg_clear(&msg);
	}
	evbuffer_free(b);
	qmp_reader_free(r);
	return (one);
}

/*
 * A reply to a command of a qmpmuxd of another epoch: one that crashed,
 * whose successor took its sockets from the service manager's fd store
 * (fdstore.c) but not its queue.  The id says whose it is: it goes to
 * that client, with the client's own id, if the client is still there.
 * 1 if it went, 0 if there is nobody to give it to.
 */
static int
cmd_orphan(struct vm *vm, const struct qmp_msg *msg)
{
	struct client	*c;
	unsigned int	 epoch;
	uint64_t	 seq;
	const char	*hex;
	char		*id = NULL;
	size_t		 hexlen;
	int		 owner, expired;
	struct cmd_flight *f;

	if (msg->m_id == -1 || cmd_parse_id(msg, &epoch, &seq, &owner, &hex,
	    &hexlen) == -1)
		return (0);
	/* one whose deadline answered it, before the crash or since */
	if ((f = cmd_flight_find(vm, epoch, seq)) != NULL) {
		expired = f->s.expired;
		TAILQ_REMOVE(&vm->flights, f, entry);
		cmd_flight_tell(f, -1);
		cmd_flight_free(f);
		if (expired) {
			vm->stats.late_replies++;
			vm_log(vm, LOG_INFO, "late reply to command %llu of the "
			    "qmpmuxd before a crash dropped",
			    (unsigned long long)seq);
			return (1);
		}
	} else if (!vm->orphans || epoch != vm->orphan_epoch)
		return (0);
	/*
	 * Only to a client of before the crash: a number may have been
	 * given again, to one that never asked.  One taken over in
	 * capabilities negotiation had negotiated, since it sent this:
	 * its rename died with the process (client_recovered_ready).
	 */
	TAILQ_FOREACH(c, &vm->clients, entry) {
		if (c->id == owner && c->recovered &&
		    (c->state == CLIENT_READY || c->state == CLIENT_CAPS))
			break;
	}
	if (c == NULL || hexlen == 0 || (hexlen == 1 && hex[0] == '~') ||
	    (hexlen % 2 != 0 && !(hexlen == 1 && hex[0] == '-')))
		return (0);
	if (hex[0] != '-') {
		if ((id = malloc(hexlen / 2 + 1)) == NULL)
			fatal("%s", __func__);
		if (util_hex_decode(id, hex, hexlen / 2) == -1) {
			free(id);
			return (0);
		}
		/* QEMU wrote it: it must be one JSON value, and nothing else */
		if (!cmd_one_value(vm, id, hexlen / 2)) {
			vm_log(vm, LOG_WARNING, "reply with an id that is no "
			    "client's dropped");
			free(id);
			return (0);
		}
	}
	if (c->state == CLIENT_CAPS)
		client_recovered_ready(c, 0, "QEMU replied to its command");
	vm->stats.replies++;
	client_log(c, LOG_INFO, "reply to command %llu of the qmpmuxd before "
	    "a crash given to it", (unsigned long long)seq);
	client_reply(c, CLIENT_NOW, msg, id, id != NULL ? hexlen / 2 : 0);
	free(id);
	return (1);
}

/* The command of before a crash a reply is for, or NULL. */
static struct cmd_flight *
cmd_flight_find(struct vm *vm, unsigned int epoch, uint64_t seq)
{
	struct cmd_flight	*f;

	TAILQ_FOREACH(f, &vm->flights, entry) {
		if (f->s.epoch == epoch && f->s.seq == seq)
			return (f);
	}
	return (NULL);
}

/*
 * Whether a command of before a crash, sent to QEMU, was the message of
 * client that ends at at in its ring: its reply comes by its flight,
 * and the message is not sent again.
 */
int
cmd_flight_at(struct vm *vm, int client, int64_t at)
{
	struct cmd_flight	*f;

	TAILQ_FOREACH(f, &vm->flights, entry) {
		if (f->s.client == client && f->s.at == at && at != -1) {
			/* once: a later message may end there too */
			f->s.at = -1;
			return (1);
		}
	}
	return (0);
}

/* As a command kept across a crash is, for the layer above (cmd_tell_sent). */
static void
cmd_flight_tell(struct cmd_flight *f, int how)
{
	vm_tell(f->vm, VM_SENT, &f->s, how);
}

/*
 * Its client, if it came back from before the crash and is still here:
 * one taken over in capabilities negotiation had negotiated, since it
 * sent this (client_recovered_ready, as cmd_orphan).
 */
static struct client *
cmd_flight_client(struct cmd_flight *f)
{
	struct client	*c;

	TAILQ_FOREACH(c, &f->vm->clients, entry) {
		if (c->id == f->s.client && c->recovered &&
		    (c->state == CLIENT_READY || c->state == CLIENT_CAPS)) {
			if (c->state == CLIENT_CAPS)
				client_recovered_ready(c, 0, "a command it "
				    "sent before the crash is answered");
			return (c);
		}
	}
	return (NULL);
}

static void
cmd_flight_free(struct cmd_flight *f)
{
	if (f->deadline != NULL)
		event_free(f->deadline);
	free(f->id);
	free(f);
}

/*
 * The deadline of a command of before a crash has passed: its client,
 * if it came back, is answered as cmd_deadline_cb answers, and QEMU's
 * late reply will be dropped.
 */
static void
cmd_flight_cb(int fd, short events, void *arg)
{
	struct cmd_flight	*f = arg;
	struct vm		*vm = f->vm;
	struct client		*c;

	f->s.expired = 1;
	cmd_flight_tell(f, 1);
	vm->stats.timeouts_sent++;
	vm_log(vm, LOG_ERR, "QEMU did not reply to %s (id %llu, sent before "
	    "a crash) within %gs", f->name, (unsigned long long)f->s.seq,
	    f->s.timeout);
	if ((c = cmd_flight_client(f)) != NULL)
		client_error(c, CLIENT_NOW, f->id, f->s.idlen, "GenericError",
		    "qmpmux: QEMU did not reply to %s within %gs; it was sent "
		    "and may still complete", f->name, f->s.timeout);
}

/*
 * A take-over after a crash: a command the process before had sent
 * (state-restore.c), whose deadline keeps running from its arrival.
 */
void
cmd_flight_adopt(struct vm *vm, const struct vm_sent *s)
{
	struct cmd_flight	*f;
	struct timeval		 tv, now;
	double			 left;

	/* the table is hostile input: its id goes into a client's reply */
	if (s->id != NULL && s->idlen > 0 && !cmd_one_value(vm, s->id,
	    s->idlen)) {
		vm_log(vm, LOG_WARNING, "command %llu sent before the crash "
		    "has an id that is not one JSON value: its deadline is "
		    "dropped", (unsigned long long)s->seq);
		return;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		fatal("%s", __func__);
	f->vm = vm;
	f->s = *s;
	/* its own copies of what s points to */
	f->s.id = NULL;
	f->s.idlen = 0;
	if (s->id != NULL && s->idlen > 0) {
		if ((f->id = malloc(s->idlen)) == NULL)
			fatal("%s", __func__);
		memcpy(f->id, s->id, s->idlen);
		f->s.id = f->id;
		f->s.idlen = s->idlen;
	}
	snprintf(f->name, sizeof(f->name), "%s", s->name);
	f->s.name = f->name;
	if (!f->s.expired && f->s.timeout > 0) {
		util_now(&now);
		left = f->s.timeout - ((double)now.tv_sec + now.tv_usec / 1e6 -
		    f->s.arrived);
		if (util_timeval(left > 0.001 ? left : 0.001, &tv) == -1)
			fatalx("%s: bad deadline", __func__);
		if ((f->deadline = evtimer_new(vm->base, cmd_flight_cb, f)) ==
		    NULL)
			fatalx("%s: evtimer_new failed", __func__);
		evtimer_add(f->deadline, &tv);
	}
	TAILQ_INSERT_TAIL(&vm->flights, f, entry);
	cmd_flight_tell(f, 1);
}

/*
 * QEMU is gone: the commands of before a crash that no deadline
 * answered get desc, as cmd_fail_all's do, and are forgotten.
 */
void
cmd_flights_lost(struct vm *vm, const char *desc)
{
	struct cmd_flight	*f;
	struct client		*c;

	while ((f = TAILQ_FIRST(&vm->flights)) != NULL) {
		TAILQ_REMOVE(&vm->flights, f, entry);
		if (!f->s.expired && (c = cmd_flight_client(f)) != NULL)
			client_error(c, CLIENT_NOW, f->id, f->s.idlen,
			    "GenericError", "%s", desc);
		cmd_flight_tell(f, -1);
		cmd_flight_free(f);
	}
}

/* The VM goes: its commands of before a crash with it, untold. */
void
cmd_flights_free(struct vm *vm)
{
	struct cmd_flight	*f;

	while ((f = TAILQ_FIRST(&vm->flights)) != NULL) {
		TAILQ_REMOVE(&vm->flights, f, entry);
		cmd_flight_free(f);
	}
}

/* A return or error from QEMU: route it to the client that asked. */
void
cmd_reply(struct vm *vm, struct qmp_msg *msg)
{
	struct cmd	*cmd;

	cmd = cmd_find(vm, msg);
	trace_message(vm, TRACE_QEMU_IN, cmd != NULL ? cmd->client : NULL,
	    msg->buf, msg->len, NULL);
	if (cmd == NULL && cmd_orphan(vm, msg))
		return;
	if (cmd == NULL) {
		vm->stats.unknown_replies++;
		vm_log(vm, LOG_ERR, "reply matching no command dropped: %.*s",
		    (int)(msg->len > 200 ? 200 : msg->len), msg->buf);
		return;
	}
	TAILQ_REMOVE(&vm->inflight, cmd, entry);
	if (!cmd->oob)
		vm->ninflight--;
	lock_answered(vm, cmd);
	if (cmd->answered) {
		vm->stats.late_replies++;
		if (vm->stalled && !cmd_stalled(vm))
			vm->stalled = 0;
		vm_log(vm, LOG_INFO, "late reply to %s after %.3fs dropped%s",
		    cmd->name, util_elapsed(&cmd->arrived),
		    vm->stalled ? "" : "; no longer stalled");
	} else {
		/* a round trip: QEMU answered before the deadline */
		counter_observe(&vm->stats.duration,
		    util_elapsed(&cmd->arrived));
	}
	if (cmd->prio == PRIO_MANAGER)
		util_now(&vm->manager_seen);
	if (!cmd->answered && cmd->client != NULL) {
		vm->stats.replies++;
		client_reply(cmd->client, CLIENT_NOW, msg, cmd->client_id,
		    cmd->client_id_len);
		cmd_done(cmd);
	}
	/* last: it takes the message's bytes */
	if (cmd->cacheable)
		cache_fill(vm, cmd->name, msg);
	cmd_free(cmd);
	cmd_pump(vm);
}

/*
 * Answer every command with an error now, the oldest first so that each
 * client's order holds, and empty the queue.  The sent ones keep their
 * slots, as past a deadline, so that the replies QEMU may still send
 * for them are dropped: the VM stops with QEMU still there.
 */
void
cmd_answer_all(struct vm *vm, const char *desc)
{
	struct cmd	*cmd;

	TAILQ_FOREACH(cmd, &vm->inflight, entry) {
		cmd_error(cmd, "GenericError", desc);
		cmd->answered = 1;
	}
	while ((cmd = TAILQ_FIRST(&vm->queue)) != NULL) {
		cmd_unqueue(vm, cmd);
		cmd_error(cmd, "GenericError", desc);
		cmd_free(cmd);
	}
}

/* QEMU is gone: answer every command with an error and forget them. */
void
cmd_fail_all(struct vm *vm, const char *desc)
{
	struct cmd	*cmd;

	cmd_answer_all(vm, desc);
	while ((cmd = TAILQ_FIRST(&vm->inflight)) != NULL) {
		TAILQ_REMOVE(&vm->inflight, cmd, entry);
		cmd_free(cmd);
	}
	cmd_flights_lost(vm, desc);
	vm->ninflight = 0;
	vm->stalled = 0;
	/* the next connection may be another QEMU, or there is none */
	cache_drop(vm);
	lock_vm_gone(vm);
	if (vm->wake != NULL)
		event_free(vm->wake);
	vm->wake = NULL;
}

/*
 * A client lost the lock it held (lock.c): its commands that wait and
 * are not reads were sent under the lock, and are answered at once that
 * it was lost (desc), as a deadline answers, never sent.
 */
void
cmd_fence(struct client *c, const char *desc)
{
	struct vm	*vm = c->vm;
	struct cmd	*cmd, *next;

	TAILQ_FOREACH_SAFE(cmd, &c->queued, client_entry, next) {
		if (!cmd->mutation)
			continue;
		vm->stats.lock_fenced++;
		cmd_unqueue(vm, cmd);
		cmd_error(cmd, "GenericError", desc);
		cmd_free(cmd);
	}
}

/*
 * A client has gone.  Its unsent commands leave the queue, as QEMU drops
 * a closed monitor's queue; the sent ones keep their slots, and their
 * replies will be dropped.
 */
void
cmd_client_gone(struct client *c)
{
	struct vm	*vm = c->vm;
	struct cmd	*cmd;

	lock_client_gone(c);
	TAILQ_INIT(&c->order);
	if (!TAILQ_EMPTY(&c->queued))
		/* what its commands held back (the lock, manager_quiet) */
		cmd_pump_soon(vm);
	while ((cmd = TAILQ_FIRST(&c->queued)) != NULL) {
		cmd_unqueue(vm, cmd);
		cmd_free(cmd);
	}
	TAILQ_FOREACH(cmd, &vm->inflight, entry) {
		if (cmd->client == c)
			cmd->client = NULL;
		/* an answered one is c's until c goes: the dump shows it */
		if (cmd->owner == c->id)
			cmd->owner = 0;
	}
	c->ncmds = 0;
}
