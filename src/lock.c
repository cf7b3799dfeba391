/*
 * The advisory lock of a VM: QMP downstream extensions (QEMU's rule for
 * names: __RFQDN_, and x- while experimental) that let writers that
 * share a monitor do a read-modify-write without losing each other's
 * updates.  qmpmuxd is the one path to the monitor, so every client's
 * commands respect it without knowing of it:
 *
 *  - reads (query-*, qom-get, qom-list) are never held;
 *  - while a client holds the lock, every other client's other in-band
 *    commands wait in the queue (cmd.c asks lock_blocks), never refused,
 *    their deadlines running; the manager's too, which is why a lease
 *    is bounded (lock_max_hold) and cannot be renewed while a manager's
 *    command waits;
 *  - an acquire waits in the queue too, its client's later commands
 *    behind it, and is granted at its turn in arrival order: after the
 *    other clients' commands that came before it and want the lock to
 *    be free, before those that came after (lock_run);
 *  - a release takes effect after the holder's commands before it;
 *  - the holder's disconnect releases once its commands at QEMU are
 *    answered; a lease that runs out, or the control socket's
 *    break-lock, releases and fences the holder: its next commands that
 *    are not reads are refused until it acquires again;
 *  - a QEMU that goes, or the VM's end, releases (vm-gone).
 *
 * Only a client that sends one of these names sees anything new: the
 * events of the lock go to those alone, and nothing changes in the
 * greeting or the capabilities.  The token of a grant is a number per
 * VM that only grows, so that a writer can fence its own writes.
 */
#include "config.h"

#include <sys/queue.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"

static const struct {
	const char	*name;
	enum lock_op	 op;
} lock_cmds[] = {
	{ LOCK_PREFIX "x-lock-acquire", LOCK_OP_ACQUIRE },
	{ LOCK_PREFIX "x-lock-release", LOCK_OP_RELEASE },
	{ LOCK_PREFIX "x-lock-renew", LOCK_OP_RENEW },
	{ LOCK_PREFIX "x-query-lock", LOCK_OP_QUERY },
};

static const char *const lock_whys[] = {
	[LOCK_WHY_RELEASE] = "release",
	[LOCK_WHY_DISCONNECT] = "disconnect",
	[LOCK_WHY_EXPIRED] = "expired",
	[LOCK_WHY_BROKEN] = "broken",
	[LOCK_WHY_VM_GONE] = "vm-gone",
};

static void	lock_lease_cb(int, short, void *);

/* Which of the lock's commands a name is, or LOCK_OP_NONE. */
enum lock_op
lock_op(const char *name)
{
	size_t	i;

	if (strncmp(name, LOCK_PREFIX, sizeof(LOCK_PREFIX) - 1) != 0)
		return (LOCK_OP_NONE);
	for (i = 0; i < sizeof(lock_cmds) / sizeof(lock_cmds[0]); i++) {
		if (strcmp(lock_cmds[i].name, name) == 0)
			return (lock_cmds[i].op);
	}
	return (LOCK_OP_NONE);
}

/* Why a lock was let go, as its event and the log say it. */
const char *
lock_why_name(enum lock_why why)
{
	return (lock_whys[why]);
}

/*
 * Whether a command only reads, and is never held by the lock: what a
 * read-only listener allows (query-*), qom-get, qom-list, and the
 * lock's own query.
 */
int
lock_is_read(const char *name)
{
	return (strncmp(name, "query-", 6) == 0 ||
	    strcmp(name, "qom-get") == 0 || strcmp(name, "qom-list") == 0 ||
	    lock_op(name) == LOCK_OP_QUERY);
}

/* Log a string a client gave, escaped for a person. */
static char *
lock_esc(const char *s)
{
	return (utf8_escape_dup(s, strlen(s), 0));
}

/*
 * Who holds the lock, for an error or the log: "client N (listener
 * PATH, pid P, uid U, reason "R") for Ts".
 */
static void
lock_holder_text(const struct vm *vm, char *buf, size_t len)
{
	const struct vm_lock	*l = &vm->lock;
	char			*reason = lock_esc(l->reason);

	if (l->owner == NULL)
		snprintf(buf, len, "client %d, which has gone (its commands "
		    "at QEMU are being answered), for %.3fs", l->holder,
		    util_elapsed(&l->since));
	else
		snprintf(buf, len, "client %d (listener %s, pid %ld, uid "
		    "%ld, reason \"%s\") for %.3fs", l->holder, l->listener,
		    (long)l->pid, (long)l->uid, reason,
		    util_elapsed(&l->since));
	free(reason);
}

/*
 * An event of the lock to every client that has sent one of its
 * commands, as QEMU writes events: timestamp, event, data (the token,
 * the holder's client number, and more).
 */
static void
lock_event(struct vm *vm, const char *name, const char *why)
{
	struct vm_lock	*l = &vm->lock;
	struct client	*c;
	struct evbuffer	*b;
	struct timeval	 now;

	if ((b = evbuffer_new()) == NULL)
		fatal("%s", __func__);
	gettimeofday(&now, NULL);
	evbuffer_add_printf(b, "{\"timestamp\": {\"seconds\": %lld, "
	    "\"microseconds\": %ld}, \"event\": \"%s%s\", \"data\": "
	    "{\"token\": %llu, \"client\": %d", (long long)now.tv_sec,
	    (long)now.tv_usec, LOCK_PREFIX, name,
	    (unsigned long long)l->token, l->holder);
	if (why != NULL) {
		evbuffer_add_printf(b, ", \"why\": ");
		reply_string(b, why);
	} else {
		evbuffer_add_printf(b, ", \"listener\": ");
		reply_string(b, l->listener);
		evbuffer_add_printf(b, ", \"reason\": ");
		reply_string(b, l->reason);
	}
	evbuffer_add_printf(b, "}}\r\n");
	TAILQ_FOREACH(c, &vm->clients, entry) {
		if (c->lock_aware)
			client_notify(c, (const char *)evbuffer_pullup(b, -1),
			    evbuffer_get_length(b));
	}
	evbuffer_free(b);
}

/* Arm the lease of the holder: hold seconds from now. */
static void
lock_lease(struct vm *vm, double hold)
{
	struct vm_lock	*l = &vm->lock;
	struct timeval	 tv;

	if (l->lease == NULL &&
	    (l->lease = evtimer_new(vm->base, lock_lease_cb, vm)) == NULL)
		fatalx("%s: evtimer_new failed", __func__);
	if (util_timeval(hold, &tv) == -1)
		fatalx("%s: bad lease %g", __func__, hold);
	util_now(&l->expires);
	timeradd(&l->expires, &tv, &l->expires);
	evtimer_add(l->lease, &tv);
}

/* Seconds left of the lease; 0 past it. */
static double
lock_left(const struct vm_lock *l)
{
	double	left = -util_elapsed(&l->expires);

	return (left > 0 ? left : 0);
}

/* What a client that lost the lock is told of its writes. */
static void
lock_lost_desc(const struct client *c, char *desc, size_t len)
{
	if (!c->lock_fenced) {
		snprintf(desc, len, "qmpmux: this client holds no lock");
		return;
	}
	snprintf(desc, len, "qmpmux: this client lost the lock of VM %s "
	    "(token %llu, %s); acquire it again", c->vm->name,
	    (unsigned long long)c->lock_lost,
	    c->lock_fenced == LOCK_WHY_EXPIRED ? "its lease ran out" :
	    "broken by the control socket");
}

/*
 * Let the lock go, telling who asked for its events why; the commands
 * that waited for it are looked at again from the loop.  A holder that
 * lost it (its lease ran out, or it was broken) is fenced: its writes
 * that wait are answered that it was lost, and so are those it sends
 * until it acquires again (lock_fenced).
 */
void
lock_release(struct vm *vm, enum lock_why why)
{
	struct vm_lock	*l = &vm->lock;
	struct cmd	*cmd;
	char		 desc[256];

	if (!l->held)
		return;
	vm_log(vm, LOG_INFO, "lock %llu of client %d released: %s",
	    (unsigned long long)l->token, l->holder, lock_why_name(why));
	if (why == LOCK_WHY_EXPIRED || why == LOCK_WHY_BROKEN) {
		if (why == LOCK_WHY_EXPIRED)
			vm->stats.lock_expired++;
		else
			vm->stats.lock_broken++;
		/* its next writes would have been under a lock it lost */
		if (l->owner != NULL) {
			l->owner->lock_fenced = why;
			l->owner->lock_lost = l->token;
			lock_lost_desc(l->owner, desc, sizeof(desc));
			cmd_fence(l->owner, desc);
		}
	}
	lock_event(vm, "LOCK_RELEASED", lock_why_name(why));
	TAILQ_FOREACH(cmd, &vm->inflight, entry)
		cmd->lock_drain = 0;

	free(l->reason);
	free(l->listener);
	l->reason = l->listener = NULL;
	l->held = 0;
	l->owner = NULL;
	l->draining = 0;
	if (l->lease != NULL)
		evtimer_del(l->lease);
	/* a write that waits for QEMU now waits no more for the lock */
	TAILQ_FOREACH(cmd, &vm->queue, entry) {
		if (cmd->lock_blocked && !lock_holds(vm, cmd)) {
			cmd->lock_blocked = 0;
			l->nblocked--;
		}
	}
	/* the record a crash leaves: no holder, the last token */
	if (why != LOCK_WHY_VM_GONE)
		vm_tell(vm, VM_RECORD, NULL, -1);
	cmd_pump_soon(vm);
}

static void
lock_lease_cb(int fd, short events, void *arg)
{
	lock_release(arg, LOCK_WHY_EXPIRED);
}

/* Grant the lock to the client of an acquire. */
static void
lock_grant(struct vm *vm, struct cmd *cmd)
{
	struct vm_lock	*l = &vm->lock;
	struct client	*c = cmd->client;
	char		*reason;

	l->held = 1;
	l->owner = c;
	l->holder = c->id;
	l->pid = c->pid;
	l->uid = c->uid;
	l->token = ++l->last_token;
	l->hold = cmd->lock_hold;
	if ((l->listener = strdup(c->listener->conf->path)) == NULL ||
	    (l->reason = strdup(cmd->lock_reason != NULL ? cmd->lock_reason :
	    "")) == NULL)
		fatal("%s", __func__);
	util_now(&l->since);
	lock_lease(vm, l->hold);
	c->lock_fenced = 0;
	vm->stats.lock_acquired++;
	reason = lock_esc(l->reason);
	client_log(c, LOG_INFO, "holds the lock: token %llu, for %gs, "
	    "reason \"%s\"", (unsigned long long)l->token, l->hold, reason);
	free(reason);
	/* the record a crash leaves: the holder, its token and lease */
	vm_tell(vm, VM_RECORD, NULL, -1);
	lock_event(vm, "LOCK_ACQUIRED", NULL);
}

/*
 * Answer the lock's grant or renewal: its token and the lease left;
 * when says when (lock_run's commands are answered at once).
 */
static void
lock_answer(struct vm *vm, struct client *c, enum client_when when,
    const char *id, size_t idlen)
{
	char	 val[96];
	int	 n;

	n = snprintf(val, sizeof(val), "{\"token\": %llu, \"expires\": %.3f}",
	    (unsigned long long)vm->lock.token, lock_left(&vm->lock));
	client_return_value(c, when, id, idlen, val, (size_t)n);
}

/*
 * Whether a command of the manager class waits for the lock: then the
 * holder may not renew, so that the manager waits at most a lease.
 */
static int
lock_manager_waits(const struct vm *vm)
{
	const struct cmd	*cmd;

	TAILQ_FOREACH(cmd, &vm->class_queue[PRIO_MANAGER], class_entry) {
		if (cmd->queued_by != vm->lock.owner &&
		    (cmd->lock_op == LOCK_OP_ACQUIRE || cmd->mutation))
			return (1);
	}
	return (0);
}

/*
 * Renew the holder's lease (a renew, or an acquire of the holder's)
 * and answer; an error when a manager's command waits.
 */
static void
lock_renew(struct vm *vm, struct client *c, enum client_when when,
    double hold, const char *id, size_t idlen)
{
	if (lock_manager_waits(vm)) {
		client_error(c, when, id, idlen, "GenericError",
		    "qmpmux: the lock of VM %s cannot be renewed while a "
		    "command of the manager class waits for it; release it",
		    vm->name);
		return;
	}
	vm->lock.hold = hold;
	lock_lease(vm, hold);
	vm_tell(vm, VM_RECORD, NULL, -1);
	lock_answer(vm, c, when, id, idlen);
}

/* Whether another client's command that is not a read came before. */
static int
lock_writes_before(const struct vm *vm, const struct cmd *acq)
{
	const struct cmd	*cmd;

	TAILQ_FOREACH(cmd, &vm->queue, entry) {
		if (cmd == acq)
			break;
		if (cmd->queued_by != acq->queued_by &&
		    (cmd->mutation || cmd->lock_op == LOCK_OP_ACQUIRE))
			return (1);
	}
	return (0);
}

/*
 * Whether the lock holds a queued command back: one of the lock's own
 * (lock_run decides those), or, from a client that does not hold it,
 * one that is not a read while it is held, or while another client's
 * acquire that came before it waits.  Nothing is marked: lock_blocks.
 */
int
lock_holds(const struct vm *vm, const struct cmd *cmd)
{
	const struct vm_lock	*l = &vm->lock;
	const struct cmd	*q;

	if (cmd->lock_op != LOCK_OP_NONE)
		return (1);
	if (!cmd->mutation || (l->held && l->owner == cmd->queued_by))
		return (0);
	if (l->held)
		return (1);
	if (l->nacquires == 0)
		return (0);
	for (q = TAILQ_FIRST(&vm->queue); q != cmd; q = TAILQ_NEXT(q, entry)) {
		if (q->lock_op == LOCK_OP_ACQUIRE &&
		    q->queued_by != cmd->queued_by)
			return (1);
	}
	return (0);
}

/*
 * lock_holds, for the queue (cmd_wait): a write it holds back is marked
 * as waiting for the lock (x-query-lock's waiters, the gauge, the words
 * of its timeout) while it is, and counted the first time.
 */
int
lock_blocks(struct vm *vm, struct cmd *cmd)
{
	int	held = lock_holds(vm, cmd);

	if (cmd->lock_op != LOCK_OP_NONE || held == cmd->lock_blocked)
		return (held);
	cmd->lock_blocked = held;
	if (held) {
		vm->lock.nblocked++;
		if (!cmd->lock_counted)
			vm->stats.lock_waited++;
		cmd->lock_counted = 1;
	} else
		vm->lock.nblocked--;
	return (held);
}

/*
 * A queued acquire or release of the lock whose turn has come in its
 * client's order (cmd.c): done and answered (1), or it waits (0).  It
 * is its client's first command not answered, so its answer goes at
 * once: held "in order", it would wait behind the client's commands
 * that came after it, which are in the client's order already.
 */
int
lock_run(struct vm *vm, struct cmd *cmd)
{
	struct vm_lock	*l = &vm->lock;
	struct client	*c = cmd->client;
	char		 who[512];

	if (cmd->lock_op == LOCK_OP_RELEASE) {
		if (!l->held || l->owner != c || l->token != cmd->lock_token) {
			client_error(c, CLIENT_NOW, cmd->client_id,
			    cmd->client_id_len, "GenericError", "qmpmux: "
			    "this client does not hold the lock of VM %s with "
			    "token %llu", vm->name,
			    (unsigned long long)cmd->lock_token);
			return (1);
		}
		lock_release(vm, LOCK_WHY_RELEASE);
		client_return(c, CLIENT_NOW, cmd->client_id,
		    cmd->client_id_len);
		return (1);
	}
	if (l->held && l->owner == c) {
		lock_renew(vm, c, CLIENT_NOW, cmd->lock_hold,
		    cmd->client_id, cmd->client_id_len);
		return (1);
	}
	if (!l->held) {
		/* after the other clients' writes that came before it */
		if (lock_writes_before(vm, cmd))
			return (0);
		lock_grant(vm, cmd);
		lock_answer(vm, c, CLIENT_NOW, cmd->client_id,
		    cmd->client_id_len);
		return (1);
	}
	if (cmd->timeout > 0)
		return (0);
	/* timeout 0: one try */
	lock_holder_text(vm, who, sizeof(who));
	client_error(c, CLIENT_NOW, cmd->client_id, cmd->client_id_len,
	    "GenericError", "qmpmux: the lock of VM %s is held by %s",
	    vm->name, who);
	return (1);
}

/*
 * What a command that waited for the lock until its deadline is told:
 * who holds it.
 */
void
lock_timeout_desc(const struct vm *vm, const struct cmd *cmd, char *desc,
    size_t len)
{
	char	 who[512];

	if (!vm->lock.held)
		snprintf(who, sizeof(who), "another client, whose acquire "
		    "came first");
	else
		lock_holder_text(vm, who, sizeof(who));
	if (cmd->lock_op == LOCK_OP_ACQUIRE)
		snprintf(desc, len, "qmpmux: timed out after %gs waiting for "
		    "the lock of VM %s, held by %s", cmd->timeout, vm->name,
		    who);
	else
		snprintf(desc, len, "qmpmux: command %s timed out after %gs "
		    "waiting for the lock of VM %s, held by %s, and was not "
		    "sent to QEMU", cmd->name, cmd->timeout, vm->name, who);
}

/* Put the lock's state as a JSON object, QEMU's way: x-query-lock. */
static void
lock_state(const struct vm *vm, struct evbuffer *b)
{
	const struct vm_lock	*l = &vm->lock;
	const struct cmd	*cmd;
	const char		*sep = "";

	evbuffer_add_printf(b, "{\"held\": %s, \"token\": %llu",
	    l->held ? "true" : "false",
	    (unsigned long long)(l->held ? l->token : l->last_token));
	if (l->held) {
		evbuffer_add_printf(b, ", \"holder\": {\"client\": %d, "
		    "\"gone\": %s", l->holder, l->owner == NULL ? "true" :
		    "false");
		if (l->owner != NULL) {
			evbuffer_add_printf(b, ", \"listener\": ");
			reply_string(b, l->listener);
			evbuffer_add_printf(b, ", \"pid\": %ld, \"uid\": %ld",
			    (long)l->pid, (long)l->uid);
		}
		evbuffer_add_printf(b, "}, \"reason\": ");
		reply_string(b, l->reason);
		evbuffer_add_printf(b, ", \"since\": %.3f, \"expires\": %.3f",
		    util_elapsed(&l->since), lock_left(l));
	}
	evbuffer_add_printf(b, ", \"waiters\": [");
	TAILQ_FOREACH(cmd, &vm->queue, entry) {
		if (cmd->lock_op != LOCK_OP_ACQUIRE && !cmd->lock_blocked)
			continue;
		evbuffer_add_printf(b, "%s{\"client\": %d, \"command\": ", sep,
		    cmd->owner);
		reply_string(b, cmd->name);
		evbuffer_add_printf(b, ", \"waited\": %.3f}",
		    util_elapsed(&cmd->arrived));
		sep = ", ";
	}
	evbuffer_add_printf(b, "]}");
}

/*
 * The lock's arguments, checked as QEMU's visitor checks a command's
 * (its words): members of the names given, each of its type.  -1 with
 * the client answered.
 */
static int
lock_args(struct client *c, const struct qmp_msg *msg, enum lock_op op,
    struct lock_args *a)
{
	const struct qmp_member	*m;
	struct vm		*vm = c->vm;
	const char		*id, *key, *want;
	yajl_val		 v = NULL, x;
	char			*text = NULL, err[128];
	size_t			 idlen, i, len;
	int			 rv = -1;

	reply_id(msg, &id, &idlen);
	memset(a, 0, sizeof(*a));
	a->hold = vm->conf.lock_default_hold < vm->conf.lock_max_hold ?
	    vm->conf.lock_default_hold : vm->conf.lock_max_hold;
	if (msg->m_arguments != -1) {
		m = &msg->members[msg->m_arguments];
		len = m->val_end - m->val_off;
		if ((text = malloc(len + 1)) == NULL)
			fatal("%s", __func__);
		memcpy(text, msg->buf + m->val_off, len);
		text[len] = '\0';
		if ((v = yajl_tree_parse(text, err, sizeof(err))) == NULL ||
		    !YAJL_IS_OBJECT(v)) {
			client_error(c, CLIENT_IN_ORDER, id, idlen,
			    "GenericError", "QMP input member 'arguments' "
			    "must be an object");
			goto out;
		}
		for (i = 0; i < v->u.object.len; i++) {
			key = v->u.object.keys[i];
			x = v->u.object.values[i];
			want = NULL;
			if (op == LOCK_OP_ACQUIRE &&
			    (strcmp(key, "timeout") == 0 ||
			    strcmp(key, "hold") == 0)) {
				if (!YAJL_IS_NUMBER(x))
					want = "number";
				else if (strcmp(key, "timeout") == 0)
					a->timeout = YAJL_GET_DOUBLE(x);
				else
					a->hold = YAJL_GET_DOUBLE(x);
			} else if (op == LOCK_OP_ACQUIRE &&
			    strcmp(key, "reason") == 0) {
				if (!YAJL_IS_STRING(x))
					want = "string";
				else
					a->reason = YAJL_GET_STRING(x);
			} else if ((op == LOCK_OP_RENEW ||
			    op == LOCK_OP_RELEASE) &&
			    strcmp(key, "token") == 0) {
				if (!YAJL_IS_INTEGER(x) ||
				    YAJL_GET_INTEGER(x) < 0)
					want = "uint64";
				else {
					a->token =
					    (uint64_t)YAJL_GET_INTEGER(x);
					a->has_token = 1;
				}
			} else {
				client_error(c, CLIENT_IN_ORDER, id, idlen,
				    "GenericError", "Parameter '%s' is "
				    "unexpected", key);
				goto out;
			}
			if (want != NULL) {
				client_error(c, CLIENT_IN_ORDER, id, idlen,
				    "GenericError", "Invalid parameter type "
				    "for '%s', expected: %s", key, want);
				goto out;
			}
		}
	}
	if ((op == LOCK_OP_RENEW || op == LOCK_OP_RELEASE) && !a->has_token) {
		client_error(c, CLIENT_IN_ORDER, id, idlen, "GenericError",
		    "Parameter 'token' is missing");
		goto out;
	}
	if (a->timeout < 0 || a->timeout > vm->conf.lock_max_wait) {
		client_error(c, CLIENT_IN_ORDER, id, idlen, "GenericError",
		    "qmpmux: timeout must be from 0 to %g (lock_max_wait)",
		    vm->conf.lock_max_wait);
		goto out;
	}
	if (!(a->hold > 0) || a->hold > vm->conf.lock_max_hold) {
		client_error(c, CLIENT_IN_ORDER, id, idlen, "GenericError",
		    "qmpmux: hold must be above 0 and at most %g "
		    "(lock_max_hold)", vm->conf.lock_max_hold);
		goto out;
	}
	if (a->reason != NULL && (strlen(a->reason) > LOCK_REASON_MAX ||
	    (a->reason = strdup(a->reason)) == NULL)) {
		if (a->reason == NULL)
			fatal("%s", __func__);
		a->reason = NULL;
		client_error(c, CLIENT_IN_ORDER, id, idlen, "GenericError",
		    "qmpmux: reason must be at most %d bytes",
		    LOCK_REASON_MAX);
		goto out;
	}
	rv = 0;
out:
	if (v != NULL)
		yajl_tree_free(v);
	free(text);
	return (rv);
}

/*
 * One of the lock's commands from a client (cmd_submit): a query or a
 * renewal is answered here (1), as is a bad one; an acquire or a
 * release goes in the queue with its arguments (0), answered when its
 * turn comes (lock_run).  A read-only listener's client may only ask
 * (acl_allows refuses it the lock's other commands).
 */
int
lock_submit(struct client *c, const struct qmp_msg *msg, enum lock_op op,
    struct lock_args *a)
{
	struct vm	*vm = c->vm;
	struct evbuffer	*b;
	const char	*id;
	size_t		 idlen;

	reply_id(msg, &id, &idlen);
	c->lock_aware = 1;
	if (lock_args(c, msg, op, a) == -1)
		return (1);
	switch (op) {
	case LOCK_OP_QUERY:
		if ((b = evbuffer_new()) == NULL)
			fatal("%s", __func__);
		lock_state(vm, b);
		client_return_value(c, CLIENT_IN_ORDER, id, idlen,
		    (const char *)evbuffer_pullup(b, -1),
		    evbuffer_get_length(b));
		evbuffer_free(b);
		return (1);
	case LOCK_OP_RENEW:
		if (!vm->lock.held || vm->lock.owner != c ||
		    vm->lock.token != a->token) {
			client_error(c, CLIENT_IN_ORDER, id, idlen,
			    "GenericError", "qmpmux: this client does not "
			    "hold the lock of VM %s with token %llu", vm->name,
			    (unsigned long long)a->token);
			return (1);
		}
		lock_renew(vm, c, CLIENT_IN_ORDER, vm->lock.hold, id, idlen);
		return (1);
	case LOCK_OP_ACQUIRE:
		if (vm->lock.nacquires >= vm->conf.lock_max_waiters &&
		    !(vm->lock.held && vm->lock.owner == c)) {
			client_error(c, CLIENT_IN_ORDER, id, idlen,
			    "GenericError", "qmpmux: %u clients already wait "
			    "for the lock of VM %s (lock_max_waiters)",
			    vm->lock.nacquires, vm->name);
			free(a->reason);
			return (1);
		}
		return (0);
	default:
		return (0);
	}
}

/*
 * Whether a client that lost the lock (its lease ran out, or it was
 * broken) sends a command that is not a read: refused, with its error,
 * until it acquires again.
 */
int
lock_fenced(struct client *c, const struct qmp_msg *msg)
{
	struct vm	*vm = c->vm;
	const struct cmd *q;
	const char	*id;
	char		 desc[256];
	size_t		 idlen;

	if (!c->lock_fenced || lock_is_read(msg->name) ||
	    msg->m_exec_oob != -1 || lock_op(msg->name) != LOCK_OP_NONE)
		return (0);
	/* behind its own acquire: it is seen to when its turn comes */
	TAILQ_FOREACH(q, &c->queued, client_entry) {
		if (q->lock_op == LOCK_OP_ACQUIRE)
			return (0);
	}
	reply_id(msg, &id, &idlen);
	vm->stats.lock_fenced++;
	client_log(c, LOG_INFO, "%s refused: it lost lock %llu (%s)",
	    msg->name, (unsigned long long)c->lock_lost,
	    lock_why_name(c->lock_fenced));
	lock_lost_desc(c, desc, sizeof(desc));
	client_error(c, CLIENT_IN_ORDER, id, idlen, "GenericError", "%s",
	    desc);
	return (1);
}

/*
 * Whether a write whose turn has come is of a client that lost the
 * lock (it came behind an acquire of its own that failed): then desc
 * says so, and it is not sent.
 */
int
lock_lost(const struct client *c, char *desc, size_t len)
{
	if (!c->lock_fenced)
		return (0);
	c->vm->stats.lock_fenced++;
	lock_lost_desc(c, desc, len);
	return (1);
}

/*
 * A client goes (cmd_client_gone, before its commands are forgotten):
 * if it holds the lock, it is released once its commands at QEMU are
 * answered or timed out (lock_answered), at once if there are none.
 */
void
lock_client_gone(struct client *c)
{
	struct vm	*vm = c->vm;
	struct vm_lock	*l = &vm->lock;
	struct cmd	*cmd;

	if (!l->held || l->owner != c)
		return;
	l->owner = NULL;
	TAILQ_FOREACH(cmd, &vm->inflight, entry) {
		if (cmd->client == c && !cmd->answered) {
			cmd->lock_drain = 1;
			l->draining++;
		}
	}
	if (l->draining == 0)
		lock_release(vm, LOCK_WHY_DISCONNECT);
}

/* A command at QEMU is answered or timed out: a gone holder's last? */
void
lock_answered(struct vm *vm, struct cmd *cmd)
{
	struct vm_lock	*l = &vm->lock;

	if (!cmd->lock_drain)
		return;
	cmd->lock_drain = 0;
	if (l->draining > 0 && --l->draining == 0 && l->held &&
	    l->owner == NULL)
		lock_release(vm, LOCK_WHY_DISCONNECT);
}

/* QEMU or the VM is gone: the lock with it, and its timer. */
void
lock_vm_gone(struct vm *vm)
{
	lock_release(vm, LOCK_WHY_VM_GONE);
	if (vm->lock.lease != NULL)
		event_free(vm->lock.lease);
	vm->lock.lease = NULL;
}

/* The control socket's break-lock: 0, or -1 if it was not held. */
int
lock_break(struct vm *vm)
{
	if (!vm->lock.held)
		return (-1);
	lock_release(vm, LOCK_WHY_BROKEN);
	return (0);
}

/* Seconds the lease has left; 0 when not held. */
double
lock_expires_in(const struct vm *vm)
{
	return (vm->lock.held ? lock_left(&vm->lock) : 0);
}

/*
 * A restart or a crash (state-restore.c) gave the lock back as the
 * process before held it, its fields filled in by the caller and the
 * commands of a gone holder at QEMU marked lock_drain: its holder is
 * the client of its number, if that came along; its lease, left
 * seconds of it, runs on, and one that ran out meanwhile expires at
 * once.  A holder that did not come along has gone, as
 * lock_client_gone has it: released once its commands at QEMU are
 * answered, at once if there are none.
 */
void
lock_adopt(struct vm *vm, double left)
{
	struct vm_lock	*l = &vm->lock;
	struct client	*c;
	struct cmd	*cmd;

	if (!l->held)
		return;
	l->owner = NULL;
	TAILQ_FOREACH(c, &vm->clients, entry) {
		if (c->id == l->holder && c->state != CLIENT_CLOSING)
			l->owner = c;
	}
	l->draining = 0;
	TAILQ_FOREACH(cmd, &vm->inflight, entry) {
		if (cmd->lock_drain)
			l->draining++;
	}
	if (l->owner == NULL && l->draining == 0) {
		lock_release(vm, LOCK_WHY_DISCONNECT);
		return;
	}
	/* after a crash, only its client knows these */
	if (l->owner != NULL) {
		free(l->listener);
		if ((l->listener = strdup(l->owner->listener->conf->path)) ==
		    NULL)
			fatal("%s", __func__);
		l->pid = l->owner->pid;
		l->uid = l->owner->uid;
	}
	lock_lease(vm, left > 0.001 ? left : 0.001);
	vm_log(vm, LOG_INFO, "lock %llu of client %d taken over, %.3fs of "
	    "its lease left%s", (unsigned long long)l->token, l->holder,
	    left > 0 ? left : 0, l->owner == NULL ? " (its holder has gone)" :
	    "");
}
