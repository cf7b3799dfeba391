/*
 * A VM: one QEMU monitor, its upstream, listeners, clients and command
 * queue.  Events from QEMU fan out here.  The events of one read from
 * QEMU are gathered into a batch, one shared buffer that every
 * negotiated client's output then references once; it counts in the
 * VM's backlog until the last client has written it.  At either bound
 * of the backlog the upstream stops reading; at half it reads again.
 *
 * Why batches: libevent gives every evbuffer_add_reference a chain of
 * at least 1 KiB, ten times a typical event, so one reference per event
 * per client made a backlog of small events cost eleven times its
 * bytes for each client.  A batch is handed out before anything else
 * is written to a client (vm_events_flush), so each client still sees
 * events and its replies in QEMU's order.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <yajl/yajl_gen.h>

#include "qmpmux.h"

#define VM_BATCH_MAX	(64 << 10)	/* bytes gathered before handing out */

/* Events from QEMU, shared by every client they are queued for. */
struct vm_event {
	struct vm	*vm;
	int		 refs;
	size_t		 nevents;
	size_t		 len;
	size_t		 cap;
	char		*buf;		/* each event followed by "\r\n" */
};

static void	vm_event_unref(struct vm_event *);
static void	vm_event_cleanup_cb(const void *, size_t, void *);
static void	vm_stop_cb(int, short, void *);
static void	vm_resume(struct vm *);
static void	vm_may_resume(struct vm *);
static void	vm_budget_forget(struct vm *);
static void	vm_budget_resume(struct server *);
static void	vm_remove_cb(int, short, void *);

/*
 * Tell the layer above (server.hooks) of a change: the proxy's one way
 * up, which it never calls by name.  No hooks set: no one listens.
 */
void
vm_tell(struct vm *vm, enum vm_change what, const void *obj, int fd)
{
	const struct vm_hooks	*h = vm->server->hooks;

	if (h != NULL && h->change != NULL)
		h->change(vm, what, obj, fd);
}


/* Log a line about the VM, its name first. */
void
vm_log(const struct vm *vm, int pri, const char *fmt, ...)
{
	char	 prefix[128];
	va_list	 ap;

	/* a debug line per command: not even its prefix without -v */
	if (pri == LOG_DEBUG && log_getverbose() < 1)
		return;
	snprintf(prefix, sizeof(prefix), "vm %s", vm->name);
	va_start(ap, fmt);
	log_vmsg(pri, prefix, fmt, ap);
	va_end(ap);
}

/* Take over what a conf holds, leaving it empty. */
static void
vm_take_conf(struct vm_conf *dst, struct vm_conf *src)
{
	*dst = *src;
	TAILQ_INIT(&dst->listeners);
	TAILQ_CONCAT(&dst->listeners, &src->listeners, entry);
	TAILQ_INIT(&dst->per_command);
	TAILQ_CONCAT(&dst->per_command, &src->per_command, entry);
	TAILQ_INIT(&dst->given);
	TAILQ_CONCAT(&dst->given, &src->given, entry);
	memset(src, 0, sizeof(*src));
	src->upstream_fd = -1;		/* an fd has one owner */
	TAILQ_INIT(&src->listeners);
	TAILQ_INIT(&src->per_command);
	TAILQ_INIT(&src->given);
}

/*
 * Make a VM of a server from its conf (taken over, with the fd of fd
 * mode and the listeners' fds, closed if the VM cannot be made), with
 * its listeners; vm_start then reaches its QEMU, unless the VM takes
 * over a connection of the process before (state-restore.c).  NULL
 * (logged) if a listener cannot be made.
 */
struct vm *
vm_new(struct server *s, struct vm_conf *conf)
{
	struct vm		*vm;
	struct listener_conf	*lc;
	struct listener		*l;
	int			 i;

	if ((vm = calloc(1, sizeof(*vm))) == NULL)
		fatal("%s", __func__);
	vm->server = s;
	vm->base = s->base;
	vm->gen = ++s->vm_gens;
	s->nvms++;
	vm_take_conf(&vm->conf, conf);
	vm->name = vm->conf.name;
	TAILQ_INIT(&vm->listeners);
	TAILQ_INIT(&vm->clients);
	TAILQ_INIT(&vm->traces);
	TAILQ_INIT(&vm->queue);
	TAILQ_INIT(&vm->inflight);
	TAILQ_INIT(&vm->flights);
	for (i = 0; i < PRIO_N; i++) {
		TAILQ_INIT(&vm->class_queue[i]);
		TAILQ_INIT(&vm->ring[i]);
	}
	if ((vm->remove = event_new(vm->base, -1, 0, vm_remove_cb, vm)) ==
	    NULL)
		fatalx("%s: event_new failed", __func__);
	vm->mon = monitor_new(vm);
	TAILQ_FOREACH(lc, &vm->conf.listeners, entry) {
		if ((l = listener_new(vm, lc)) == NULL) {
			vm_free(vm);
			return (NULL);
		}
		TAILQ_INSERT_TAIL(&vm->listeners, l, entry);
	}
	vm_tell(vm, VM_RECORD, NULL, -1);
	return (vm);
}

/*
 * Start reaching the VM's QEMU; -1 (logged) if it cannot be (the
 * socket of listen mode cannot be made).
 */
int
vm_start(struct vm *vm)
{
	return (monitor_start(vm->mon));
}

/*
 * Close the listeners that the new conf changes or drops: a listener
 * whose path and role are unchanged keeps its socket and its clients,
 * and takes its new (equal) conf; one that changed or went is closed
 * with its clients.  vm_listen then opens the new ones.
 */
static void
vm_reconfigure_listeners(struct vm *vm, struct listener_confs *olds)
{
	struct listener		*l, *next;
	struct listener_conf	*lc;

	TAILQ_FOREACH_SAFE(l, &vm->listeners, entry, next) {
		TAILQ_FOREACH(lc, &vm->conf.listeners, entry) {
			if (conf_listener_equal(l->conf, lc))
				break;
		}
		if (lc != NULL) {
			l->conf = lc;
			continue;
		}
		vm_log(vm, LOG_INFO, "listener %s changed or removed",
		    l->conf->path);
		TAILQ_REMOVE(&vm->listeners, l, entry);
		listener_free(l);
	}
	/* the running confs, now in use by nothing */
	while ((lc = TAILQ_FIRST(olds)) != NULL) {
		TAILQ_REMOVE(olds, lc, entry);
		conf_listener_free(lc);
	}
}

/*
 * Open the listeners of the VM's conf that are not open, after a
 * reload: the server closes what every VM gives up first, so that a
 * path may move from one VM to another in one reload.  A listener that
 * cannot be made leaves the conf too (logged), so that the next reload
 * sees it as new and tries again.
 */
void
vm_listen(struct vm *vm)
{
	struct listener		*l;
	struct listener_conf	*lc, *next;

	TAILQ_FOREACH_SAFE(lc, &vm->conf.listeners, entry, next) {
		TAILQ_FOREACH(l, &vm->listeners, entry) {
			if (l->conf == lc)
				break;
		}
		if (l != NULL)
			continue;
		if ((l = listener_new(vm, lc)) != NULL) {
			TAILQ_INSERT_TAIL(&vm->listeners, l, entry);
			continue;
		}
		TAILQ_REMOVE(&vm->conf.listeners, lc, entry);
		conf_listener_free(lc);
	}
}

/*
 * Change a running VM to its new conf (taken over), in what diff says
 * changed (conf_diff): bounds and timeouts in place, for what comes
 * next; a new upstream is reached afresh, its clients closed as when
 * QEMU goes; listeners as vm_reconfigure_listeners says, the new ones
 * opened by vm_listen once every VM has closed its old ones.
 */
void
vm_reconfigure(struct vm *vm, struct vm_conf *nc, int diff)
{
	struct vm_conf	 old;

	/* an fd handed over is a new upstream, whatever else is equal */
	if (nc->upstream_mode == UPSTREAM_FD && nc->upstream_fd != -1)
		diff |= CONF_DIFF_UPSTREAM;
	vm_log(vm, LOG_INFO, "configuration changed:%s%s%s",
	    diff & CONF_DIFF_BOUNDS ? " bounds" : "",
	    diff & CONF_DIFF_UPSTREAM ? " upstream" : "",
	    diff & CONF_DIFF_LISTENERS ? " listeners" : "");
	vm_take_conf(&old, &vm->conf);
	vm_take_conf(&vm->conf, nc);
	vm->name = vm->conf.name;
	/* unchanged listeners only take their new, equal confs */
	vm_reconfigure_listeners(vm, &old.listeners);
	conf_vm_clear(&old);
	/* the monitor logs the new upstream as it reaches it */
	if (diff & CONF_DIFF_UPSTREAM)
		monitor_restart(vm->mon);
	cmd_pump(vm);
}

/*
 * Stop a VM without losing what its clients are owed: stop accepting,
 * answer every queued and in-flight command with desc, and close each
 * client on its own path, which writes what is queued for it within its
 * listener's slow_client_timeout.  done runs from the loop once the last
 * client is freed; the caller then frees the VM.  QEMU stays connected
 * until then, and the replies it still sends are dropped.
 */
void
vm_stop(struct vm *vm, const char *desc, void (*done)(struct vm *, void *),
    void *arg)
{
	struct listener	*l;
	struct client	*c, *next;

	if (vm->stop != NULL)
		return;
	vm_log(vm, LOG_INFO, "stopping: %s", desc);
	if ((vm->stop = event_new(vm->base, -1, 0, vm_stop_cb, vm)) == NULL)
		fatalx("%s: event_new failed", __func__);
	vm->stop_done = done;
	vm->stop_arg = arg;
	TAILQ_FOREACH(l, &vm->listeners, entry)
		listener_close(l);
	monitor_stop(vm->mon);
	cmd_answer_all(vm, desc);
	/* before its clients go: it is the VM's end, not a disconnect */
	lock_release(vm, LOCK_WHY_VM_GONE);
	TAILQ_FOREACH_SAFE(c, &vm->clients, entry, next)
		client_close(c, "%s", desc);
	if (TAILQ_EMPTY(&vm->clients))
		event_active(vm->stop, EV_TIMEOUT, 1);
}

/* The last client of a stopping VM is freed: the stop is done. */
static void
vm_stop_cb(int fd, short events, void *arg)
{
	struct vm	*vm = arg;

	vm_log(vm, LOG_INFO, "stopped");
	if (vm->stop_done != NULL)
		vm->stop_done(vm, vm->stop_arg);
}

/*
 * Free a VM; NULL is allowed.  Clients' outputs may still reference
 * events, and libevent frees those buffers later, from its finalizers;
 * the struct itself then stays until the last event lets go of it.
 * Without vm_stop first, each client is given only what its socket
 * takes at once.
 */
void
vm_free(struct vm *vm)
{
	struct listener	*l;
	struct client	*c;

	if (vm == NULL)
		return;
	trace_vm_gone(vm);
	vm_tell(vm, VM_GONE, NULL, -1);
	/* answered before their clients are closed, which would drop them */
	cmd_fail_all(vm, "qmpmux: shutting down");
	while ((l = TAILQ_FIRST(&vm->listeners)) != NULL) {
		TAILQ_REMOVE(&vm->listeners, l, entry);
		listener_free(l);
	}
	while ((c = TAILQ_FIRST(&vm->clients)) != NULL) {
		/* the loop has stopped: give each what its socket takes now */
		client_flush(c);
		client_free(c);
	}
	monitor_free(vm->mon);
	cmd_flights_free(vm);
	vm->mon = NULL;
	if (vm->stop != NULL)
		event_free(vm->stop);
	vm->stop = NULL;
	if (vm->remove != NULL)
		event_free(vm->remove);
	vm->remove = NULL;
	conf_vm_clear(&vm->conf);
	vm_budget_forget(vm);
	/* what it still holds is freed soon, and no longer the server's */
	vm->server->nvms--;
	vm->server->backlog_bytes -= vm->backlog_bytes;
	if (vm->backlog_events > 0)
		vm->server->nbacklogged--;
	vm_budget_resume(vm->server);
	vm->name = "(freed)";
	if (vm->backlog_events == 0)
		free(vm);
	else
		vm->dying = 1;
}

/* QEMU is ready: greet the clients that waited and send what queued. */
void
vm_upstream_ready(struct vm *vm)
{
	struct client	*c, *next;

	vm_tell(vm, VM_RECORD, NULL, -1);
	TAILQ_FOREACH_SAFE(c, &vm->clients, entry, next) {
		if (c->state == CLIENT_WAITING)
			client_greet(c);
	}
	cmd_pump(vm);
}

/*
 * QEMU is gone: every command gets its error, then every client is
 * closed after what was already queued for it, as if QEMU had exited.
 */
void
vm_upstream_lost(struct vm *vm, const char *reason)
{
	struct client	*c, *next;

	/* the greeting of that QEMU is no next connection's */
	vm_tell(vm, VM_RECORD, NULL, -1);
	/* nor are the commands of before a crash its to answer */
	vm->orphans = 0;
	/* what QEMU sent before it went is still theirs */
	vm_events_flush(vm);
	/*
	 * The monitor reads the next connection from the start; its first
	 * event pauses it again if the backlog is still full.
	 */
	vm->reads_paused = 0;
	vm_budget_forget(vm);
	cmd_fail_all(vm, "qmpmux: connection to QEMU lost");
	TAILQ_FOREACH_SAFE(c, &vm->clients, entry, next) {
		if (c->state != CLIENT_WAITING)
			client_close(c, "upstream lost: %s", reason);
	}
}

/*
 * The upstream cannot come back (fd mode): once its clients have had
 * the connection-lost path, the VM leaves its server, from the loop,
 * since this runs in the monitor's callbacks and even inside vm_new.
 */
void
vm_upstream_closed(struct vm *vm)
{
	if (vm->stop == NULL)
		event_active(vm->remove, EV_TIMEOUT, 1);
}

/* Remove the VM whose upstream is gone for good. */
static void
vm_remove_cb(int fd, short events, void *arg)
{
	struct vm	*vm = arg;

	if (vm->stop == NULL)
		vm_tell(vm, VM_CLOSED, NULL, -1);
}

/*
 * The part of the host's budget a VM may hold when the budget is
 * spent: an equal share among all the VMs.  A VM under its share reads
 * on whatever the others hold, so one VM's slow clients can never stop
 * another's events; the sum can then pass the budget by at most every
 * VM's share, the budget again.  (A share among only the VMs that hold
 * events would grow as they drain, and let the sum reach the budget
 * times 1 + 1/2 + ... + 1/N.)
 */
static size_t
vm_share(const struct server *s)
{
	return (s->max_memory / (s->nvms > 0 ? s->nvms : 1));
}

/*
 * Whether the backlog is at one of its bounds: the VM's own, or, when
 * the events of all VMs together have spent the host's budget, its
 * share of it.
 */
int
vm_backlog_full(struct vm *vm)
{
	struct server	*s = vm->server;

	return (vm->backlog_events >= vm->conf.max_queued_events ||
	    vm->backlog_bytes >= vm->conf.max_queued_bytes ||
	    (s->backlog_bytes >= s->max_memory &&
	    vm->backlog_bytes >= vm_share(s)));
}

/*
 * Add one event from QEMU to the batch being gathered.  The first event
 * lends its own buffer, so that a lone event is never copied.
 */
static void
vm_event(struct vm *vm, struct qmp_msg *msg)
{
	struct vm_event	*ev = vm->batch;
	struct client	*c;
	size_t		 len = msg->len + 2, cap;
	char		*buf;

	if (ev == NULL) {
		if ((ev = calloc(1, sizeof(*ev))) == NULL)
			fatal("%s", __func__);
		ev->vm = vm;
		ev->refs = 1;	/* the batch's own, until handed out */
		/* the reader leaves QMP_MSG_SLACK bytes for the line's end */
		ev->buf = qmp_msg_steal(msg);
		ev->cap = len + 1;
		vm->batch = ev;
	} else {
		if (ev->len + len > ev->cap) {
			cap = ev->cap * 2 < ev->len + len ? ev->len + len :
			    ev->cap * 2;
			if ((buf = realloc(ev->buf, cap)) == NULL)
				fatal("%s", __func__);
			ev->buf = buf;
			ev->cap = cap;
		}
		memcpy(ev->buf + ev->len, msg->buf, msg->len);
	}
	memcpy(ev->buf + ev->len + msg->len, "\r\n", 2);
	ev->len += len;
	ev->nevents++;
	vm->stats.events++;
	vm->stats.event_bytes += len;
	if (vm->backlog_events++ == 0)
		vm->server->nbacklogged++;
	vm->backlog_bytes += len;
	vm->server->backlog_bytes += len;

	if (ev->len >= VM_BATCH_MAX)
		vm_events_flush(vm);
	if (vm_backlog_full(vm) && !vm->reads_paused) {
		/*
		 * With no client to hold them the events are gone once
		 * handed out, and nothing would ever resume the reads.
		 */
		vm_events_flush(vm);
		if (!vm_backlog_full(vm))
			return;
		vm->reads_paused = 1;
		util_now(&vm->paused_since);
		vm_log(vm, LOG_DEBUG, "event backlog full (%zu events, %zu "
		    "bytes; all VMs: %zu bytes): reads paused",
		    vm->backlog_events, vm->backlog_bytes,
		    vm->server->backlog_bytes);
		monitor_pause(vm->mon);
		TAILQ_FOREACH(c, &vm->clients, entry)
			client_reads_paused(c, 1);
		/* paused by the host's budget alone: wait for it on the list */
		vm_may_resume(vm);
	}
}

/*
 * Hand the batch gathered so far to every negotiated client.  Called
 * before QEMU's next message that is not an event, and whenever reading
 * from QEMU stops, so no batch outlives the callback that filled it.
 */
void
vm_events_flush(struct vm *vm)
{
	struct vm_event	*ev = vm->batch;
	struct vm_ref	*ref;
	struct client	*c;
	char		*buf;

	if (ev == NULL)
		return;
	vm->batch = NULL;
	/* a batch that grew by doubling gives back what it does not use */
	if (ev->cap - ev->len > ev->len / 8 &&
	    (buf = realloc(ev->buf, ev->len)) != NULL) {
		ev->buf = buf;
		ev->cap = ev->len;
	}
	TAILQ_FOREACH(c, &vm->clients, entry) {
		if (c->state != CLIENT_READY)
			continue;
		if ((ref = malloc(sizeof(*ref))) == NULL)
			fatal("%s", __func__);
		ref->ev = ev;
		ref->client = c;
		TAILQ_INSERT_TAIL(&c->events, ref, entry);
		ev->refs++;
		client_event(c, ev->buf, ev->len, vm_event_cleanup_cb, ref);
	}
	vm_event_unref(ev);
}

/*
 * Called by libevent when a client's output no longer needs a batch:
 * written, or the output freed, which libevent may do after the client
 * itself (vm_client_gone).  It may run inside a write callback.
 */
static void
vm_event_cleanup_cb(const void *data, size_t len, void *arg)
{
	struct vm_ref	*ref = arg;

	if (ref->client != NULL)
		TAILQ_REMOVE(&ref->client->events, ref, entry);
	vm_event_unref(ref->ev);
	free(ref);
}

/*
 * A client is being freed, and is off the VM's list: its output's
 * batches outlive it, and a stopping VM may be done.
 */
void
vm_client_gone(struct client *c)
{
	struct vm	*vm = c->vm;
	struct vm_ref	*ref;

	while ((ref = TAILQ_FIRST(&c->events)) != NULL) {
		TAILQ_REMOVE(&c->events, ref, entry);
		ref->client = NULL;
	}
	if (vm->stop != NULL && TAILQ_EMPTY(&vm->clients))
		event_active(vm->stop, EV_TIMEOUT, 1);
}

/* Drop one reference; the last one takes the event out of the backlog. */
static void
vm_event_unref(struct vm_event *ev)
{
	struct vm	*vm = ev->vm;
	struct server	*s;
	size_t		 ev_len = ev->len;

	if (--ev->refs > 0)
		return;
	vm->backlog_events -= ev->nevents;
	vm->backlog_bytes -= ev->len;
	free(ev->buf);
	free(ev);
	/* a freed VM left the server's count when it was freed */
	if (vm->dying) {
		if (vm->backlog_events == 0)
			free(vm);
		return;
	}
	s = vm->server;
	s->backlog_bytes -= ev_len;
	if (vm->backlog_events == 0)
		s->nbacklogged--;
	vm_may_resume(vm);
	vm_budget_resume(s);
}

/*
 * Whether a VM holds little enough of the host's budget to read again:
 * all VMs together are down to half of it, or this one to half of its
 * share.
 */
static int
vm_budget_allows(const struct vm *vm)
{
	const struct server	*s = vm->server;

	return (s->backlog_bytes <= s->max_memory / 2 ||
	    vm->backlog_bytes <= vm_share(s) / 2);
}

/*
 * A paused VM whose own backlog is down to half of its bounds reads
 * again, if the host's budget allows it; if not, it waits on the
 * server's list until it does.
 */
static void
vm_may_resume(struct vm *vm)
{
	struct server	*s = vm->server;

	if (!vm->reads_paused || vm->budget_paused ||
	    vm->backlog_events > vm->conf.max_queued_events / 2 ||
	    vm->backlog_bytes > vm->conf.max_queued_bytes / 2)
		return;
	if (vm_budget_allows(vm)) {
		vm_resume(vm);
		return;
	}
	vm->budget_paused = 1;
	TAILQ_INSERT_TAIL(&s->budget_paused, vm, budget_entry);
}

/* Read from QEMU again: the backlog is down to half of every bound. */
static void
vm_resume(struct vm *vm)
{
	struct client	*c;

	vm->reads_paused = 0;
	vm_log(vm, LOG_DEBUG, "event backlog down to %zu events, %zu bytes "
	    "(all VMs: %zu) after %.3fs: reading again", vm->backlog_events,
	    vm->backlog_bytes, vm->server->backlog_bytes,
	    util_elapsed(&vm->paused_since));
	monitor_unpause(vm->mon);
	TAILQ_FOREACH(c, &vm->clients, entry)
		client_reads_paused(c, 0);
}

/* Take a VM off the list of those that wait for the host's budget. */
static void
vm_budget_forget(struct vm *vm)
{
	if (!vm->budget_paused)
		return;
	TAILQ_REMOVE(&vm->server->budget_paused, vm, budget_entry);
	vm->budget_paused = 0;
}

/*
 * Resume the VMs that waited only for the host's budget
 * (max_total_queued_bytes), as far as it now allows each.
 */
static void
vm_budget_resume(struct server *s)
{
	struct vm	*vm, *next;

	TAILQ_FOREACH_SAFE(vm, &s->budget_paused, budget_entry, next) {
		if (!vm_budget_allows(vm))
			continue;
		vm_budget_forget(vm);
		if (vm->reads_paused)
			vm_resume(vm);
	}
}

/* A message from QEMU after the handshake. */
void
vm_upstream_message(struct vm *vm, struct qmp_msg *msg)
{
	switch (msg->kind) {
	case QMP_KIND_RETURN:
	case QMP_KIND_ERROR:
		/* the events before a reply reach its client first */
		vm_events_flush(vm);
		cmd_reply(vm, msg);
		break;
	case QMP_KIND_EVENT:
		/* once, not once per client it goes to */
		trace_message(vm, TRACE_QEMU_IN, NULL, msg->buf, msg->len,
		    NULL);
		vm_event(vm, msg);
		break;
	default:
		trace_message(vm, TRACE_QEMU_IN, NULL, msg->buf, msg->len,
		    NULL);
		vm_log(vm, LOG_ERR, "unexpected %s from QEMU dropped: %.*s",
		    qmp_kind_name(msg->kind),
		    (int)(msg->len > 200 ? 200 : msg->len), msg->buf);
		break;
	}
}
