/*
 * The take-over, from the description.  Every fd of it is taken by the
 * new process or closed here, once: one closed ahead of its VM is -1
 * from then on.  The owner (server.c) drives it: it releases what the
 * configuration gave up (state_release), makes each VM with the
 * listeners' fds in its configuration (state_vm_prepare) and then,
 * in place of reaching QEMU, takes over its upstream, clients and
 * commands (state_vm_restore); then the VMs the control socket had
 * added (state_vm_next_added) and the control socket itself
 * (state_control_adopt).
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "control.h"
#include "state.h"

/* Close an fd of the description, and forget it. */
static void
state_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * A client's spool after a crash, checked (spool_open): NULL if it has
 * none, or one that cannot be used (logged: what was in it is lost).
 */
static struct spool *
state_spool(struct vm *vm, struct state_client *sc)
{
	struct spool	*sp;
	char		 err[256];

	if (sc->spool[0] < 0)
		return (NULL);
	sp = spool_open(sc->spool[0], sc->spool[1], sc->spool[2], err,
	    sizeof(err));
	sc->spool[0] = sc->spool[1] = sc->spool[2] = -1;
	if (sp == NULL)
		vm_log(vm, LOG_WARNING, "client %d: its spool cannot be used "
		    "(%s): what it had sent and was not done with is lost",
		    sc->id, err);
	return (sp);
}

/* Close a client of the state: its socket and its spool. */
static void
state_close_client(struct state_client *sc)
{
	state_close(&sc->fd);
	state_close(&sc->spool[0]);
	state_close(&sc->spool[1]);
	state_close(&sc->spool[2]);
}

/* Close the clients of a VM of the state, saying why. */
static void
state_close_clients(struct vm *vm, struct state_vm *sv, const char *why)
{
	size_t	 i;

	for (i = 0; i < sv->nclients; i++) {
		if (sv->clients[i].fd >= 0 && vm != NULL)
			vm_log(vm, LOG_INFO, "client %d: closed: %s",
			    sv->clients[i].id, why);
		state_close_client(&sv->clients[i]);
	}
}

/* Close the upstream's connection and listening socket of a VM. */
static void
state_close_upstream(struct state_vm *sv)
{
	state_close(&sv->up.fd);
	state_close(&sv->up.listen_fd);
}

/* Close every fd of a VM of the state that nothing takes over. */
static void
state_close_vm(struct state_vm *sv)
{
	size_t	 i;

	state_close_upstream(sv);
	for (i = 0; i < sv->nlisteners; i++) {
		if (sv->listeners[i].fd >= 0 && sv->from_file &&
		    sv->listeners[i].path != NULL)
			unlink(sv->listeners[i].path);
		state_close(&sv->listeners[i].fd);
	}
	state_close_clients(NULL, sv, NULL);
}

/*
 * A VM of the state that state_vm_prepare matched could not be made (a
 * listener failed): its listeners' sockets went with its conf, and
 * what state_vm_restore would have taken over is closed here, or its
 * clients would wait on connections nobody serves.
 */
void
state_vm_abandon(const char *name, struct state_vm *sv)
{
	log_warnx("vm %s: cannot be taken over; its connections are closed",
	    name);
	state_close_upstream(sv);
	state_close_clients(NULL, sv, NULL);
}

/*
 * The conf of a VM the control socket added, from the keys its add-vm
 * set, over [global]'s defaults; NULL (logged) if they no longer make
 * one.
 */
static struct vm_conf *
state_given_conf(struct server *s, struct state_vm *sv)
{
	const struct state_given	*e;
	struct vm_conf			*vc;
	struct listener_conf		*lc = NULL;
	char				 err[CONF_ERR_MAX];
	size_t				 i;
	int				 rv;

	if (sv->ngiven == 0)
		return (NULL);
	if ((vc = calloc(1, sizeof(*vc))) == NULL)
		fatal("%s", __func__);
	conf_vm_copy(vc, &s->defaults);
	vc->from_file = 0;
	if ((vc->name = strdup(sv->name)) == NULL ||
	    (vc->where = strdup("add-vm, before a restart")) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < sv->ngiven; i++) {
		e = &sv->given[i];
		conf_entry_add(&vc->given, e->section, e->key, e->value,
		    "add-vm", 0);
		snprintf(err, sizeof(err), "bad entry");
		if (strcmp(e->section, "vm") == 0 &&
		    strcmp(e->key, "upstream") == 0) {
			rv = 0;
			if (strcmp(e->value, "fd") == 0)
				vc->upstream_mode = UPSTREAM_FD;
			else
				rv = conf_set_upstream(vc, e->value, err,
				    sizeof(err));
		} else if (strcmp(e->section, "vm") == 0)
			rv = conf_set_vm(vc, e->key, e->value, err,
			    sizeof(err));
		else if (*e->key == '\0') {
			rv = -1;
			if (strncmp(e->section, "listener ", 9) == 0)
				lc = conf_listener_new(e->section + 9), rv = 0;
			else if (strncmp(e->section, "passed ", 7) == 0) {
				lc = conf_listener_new(e->section + 7), rv = 0;
				lc->passed = 1;
			}
			if (lc != NULL && rv == 0)
				TAILQ_INSERT_TAIL(&vc->listeners, lc, entry);
		} else
			rv = lc == NULL ? -1 : conf_set_listener(lc, e->key,
			    e->value, err, sizeof(err));
		if (rv == -1) {
			log_warnx("vm %s: %s %s = %s: %s", sv->name, e->section,
			    e->key, e->value, err);
			conf_vm_clear(vc);
			free(vc);
			return (NULL);
		}
	}
	return (vc);
}

/* The VM of the state of that name, not yet taken; NULL if none. */
static struct state_vm *
state_vm_find(struct state *st, const char *name)
{
	size_t	 i;

	for (i = 0; i < st->nvms; i++) {
		if (!st->vms[i].used && strcmp(st->vms[i].name, name) == 0)
			return (&st->vms[i]);
	}
	return (NULL);
}

/*
 * The listener of the conf that takes over listener l of the state: the
 * same path, or after a crash (only the hash of its path is known) the
 * same hash; NULL if the conf has none.
 */
static struct listener_conf *
state_listener_conf(const struct state_listener *l, struct vm_conf *vc)
{
	struct listener_conf	*lc;

	TAILQ_FOREACH(lc, &vc->listeners, entry) {
		if (lc->fd == -1 && (l->path != NULL ?
		    strcmp(lc->path, l->path) == 0 :
		    (long long)util_hash(lc->path) == l->hash))
			return (lc);
	}
	return (NULL);
}

/* Close a listener of the state the conf no longer has, and its path. */
static void
state_close_listener(const char *vm, struct state_listener *l)
{
	if (l->fd < 0)
		return;
	log_info("vm %s: listener %s is no longer configured", vm,
	    l->path != NULL ? l->path : "(after a crash)");
	state_close(&l->fd);
	if (l->path != NULL)
		unlink(l->path);
}

/*
 * Before a VM's listeners are made: those of the state on a path the
 * conf still has take their socket over; the others are closed now,
 * their path removed.
 */
static void
state_vm_listeners(struct state_vm *sv, struct vm_conf *vc)
{
	struct listener_conf	*lc;
	size_t			 i;

	for (i = 0; i < sv->nlisteners; i++) {
		if (sv->listeners[i].fd < 0)
			continue;
		if ((lc = state_listener_conf(&sv->listeners[i], vc)) != NULL) {
			lc->fd = sv->listeners[i].fd;
			sv->listeners[i].fd = -1;
		} else
			state_close_listener(sv->name, &sv->listeners[i]);
	}
}

/* Whether the conf gives a VM of the state another upstream. */
static int
state_upstream_changed(const struct state_upstream *up,
    const struct vm_conf *vc)
{
	return (up->mode != NULL && (strcmp(up->mode,
	    conf_upstream_mode_name(vc->upstream_mode)) != 0 ||
	    (up->path == NULL) != (vc->upstream == NULL) ||
	    (up->path != NULL && strcmp(up->path, vc->upstream) != 0)));
}

/*
 * Before any VM of the configuration is made, let go of the sockets the
 * file no longer gives the VM that had them, as a reload closes before
 * it opens: a VM renamed, or a path moved from one VM to another, would
 * else find its path held by the socket of before, and be left out.
 * The VMs of the file that it no longer has go with their connections;
 * those the control socket added are made again later, as they were.
 */
void
state_release(struct state *st, struct conf *conf)
{
	struct state_vm	*sv;
	struct vm_conf	*vc;
	size_t		 i, j;

	for (i = 0; i < st->nvms; i++) {
		sv = &st->vms[i];
		TAILQ_FOREACH(vc, &conf->vms, entry) {
			if (strcmp(vc->name, sv->name) == 0)
				break;
		}
		if (vc == NULL) {
			if (sv->from_file) {
				log_info("vm %s: no longer configured; its "
				    "connections are closed", sv->name);
				state_close_vm(sv);
				sv->used = 1;
			}
			continue;
		}
		for (j = 0; j < sv->nlisteners; j++) {
			if (state_listener_conf(&sv->listeners[j], vc) == NULL)
				state_close_listener(sv->name,
				    &sv->listeners[j]);
		}
		/* a listen mode's socket; its connection goes with the VM */
		if (sv->up.listen_fd >= 0 &&
		    state_upstream_changed(&sv->up, vc)) {
			state_close(&sv->up.listen_fd);
			if (sv->up.path != NULL)
				unlink(sv->up.path);
		}
	}
}

/*
 * The upstream of the process before: its connection and its bytes.
 * 1 if the configuration gives the VM another upstream now (the one of
 * before is let go, as a reload would), -1 if it cannot be reached.
 */
static int
state_vm_monitor(struct vm *vm, struct state_vm *sv)
{
	struct state_upstream	*up = &sv->up;
	struct monitor		*m = vm->mon;
	int			 fd, lfd, changed = 0;

	/* the file gives it another upstream now: reach that one */
	if (state_upstream_changed(up, &vm->conf)) {
		vm_log(vm, LOG_INFO, "the upstream changed: the one of "
		    "before (%s:%s) is let go", up->mode, up->path != NULL ?
		    up->path : "fd");
		state_close(&up->fd);
		if (up->listen_fd >= 0 && up->path != NULL)
			unlink(up->path);
		state_close(&up->listen_fd);
		changed = 1;
	}
	if (vm->conf.upstream_mode != UPSTREAM_LISTEN)
		state_close(&up->listen_fd);
	if (up->fd != -1) {
		m->greeting = up->greeting.buf;
		m->greeting_len = up->greeting.len;
		up->greeting.buf = NULL;
		if (up->version != NULL &&
		    (m->version = strdup(up->version)) == NULL)
			fatal("%s", __func__);
		m->oob = up->oob;
	}
	/* the monitor has them now, whatever becomes of them */
	fd = up->fd;
	lfd = up->listen_fd;
	up->fd = up->listen_fd = -1;
	if (monitor_adopt(m, up->state, fd, lfd) == -1)
		return (-1);
	/* after a crash: QEMU's stream may be cut in a message */
	m->resync = up->resync && m->bev != NULL;
	if (m->state == up->state) {
		util_now(&m->since);
		util_since(&m->since, up->since + sv->taken);
	}
	monitor_adopt_bytes(m, up->in.buf, up->in.len, up->out.buf,
	    up->out.len);
	return (changed);
}

/* A client's listener: by its path, or after a crash its hash; or NULL. */
static struct listener *
state_listener(struct vm *vm, const struct state_client *sc)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &vm->listeners, entry) {
		if (sc->listener != NULL ? strcmp(l->conf->path,
		    sc->listener) == 0 : (long long)util_hash(
		    l->conf->path) == sc->listener_hash)
			return (l);
	}
	return (NULL);
}

/* The client of the VM with that id, or NULL. */
static struct client *
state_client(struct vm *vm, int id)
{
	struct client	*c;

	TAILQ_FOREACH(c, &vm->clients, entry) {
		if (c->id == id)
			return (c);
	}
	return (NULL);
}

/* How many clients the VM has, for the log. */
static size_t
state_count_clients(struct vm *vm)
{
	struct client	*c;
	size_t		 n = 0;

	TAILQ_FOREACH(c, &vm->clients, entry)
		n++;
	return (n);
}

/*
 * What a command has of the lock: a queued acquire or release is one of
 * its waiters, with its arguments.  A sent one of a holder that did not
 * come along (closed with its listener) drains the lock as
 * lock_client_gone would have had it.
 */
static void
state_cmd_lock(struct vm *vm, struct state_vm *sv, struct state_cmd *sc,
    struct cmd *cmd)
{
	const struct state_lock	*l = &sv->lock;

	cmd->mutation = sc->mutation;
	cmd->lock_blocked = sc->lock_blocked;
	cmd->lock_drain = sc->lock_drain;
	cmd->lock_op = sc->lock_op;
	cmd->lock_hold = sc->lock_hold;
	cmd->lock_token = sc->lock_token;
	if (sc->lock_reason != NULL &&
	    (cmd->lock_reason = strdup(sc->lock_reason)) == NULL)
		fatal("%s", __func__);
	if (l->held && l->draining == 0 && sc->owner == l->client &&
	    cmd->sent && !cmd->answered && state_client(vm, l->client) == NULL)
		cmd->lock_drain = 1;
}

/*
 * The lock as the process before held it (lock_adopt finds its holder
 * and arms what is left of its lease, which kept running through the
 * restart); its last token, held or not, so that none is given twice.
 */
static void
state_vm_lock(struct vm *vm, struct state_vm *sv)
{
	const struct state_lock	*sl = &sv->lock;
	struct vm_lock		*l = &vm->lock;

	l->last_token = sl->last_token;
	if (!sl->held)
		return;
	l->held = 1;
	l->holder = sl->client;
	l->token = sl->token;
	l->pid = sl->pid;
	l->uid = sl->uid;
	l->hold = sl->hold;
	if ((l->reason = strdup(sl->reason != NULL ? sl->reason : "")) ==
	    NULL ||
	    (l->listener = strdup(sl->listener != NULL ? sl->listener : "")) ==
	    NULL)
		fatal("%s", __func__);
	util_now(&l->since);
	util_since(&l->since, sl->since + sv->taken);
	lock_adopt(vm, sl->left - sv->taken);
}

/*
 * The commands, each made as it was and put back in the queue or in
 * flight; all[i] is sv->cmds[i]'s, NULL if it went (an unsent one
 * whose client did not come along) or is a held reply (its client's).
 */
static struct cmd **
state_vm_cmds(struct vm *vm, struct state_vm *sv)
{
	struct state_cmd	*sc;
	struct cmd		*cmd, **all;
	double			 age;
	size_t			 i;

	if ((all = calloc(sv->ncmds + 1, sizeof(*all))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < sv->ncmds; i++) {
		sc = &sv->cmds[i];
		if (sc->held.buf != NULL)
			continue;
		if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
			fatal("%s", __func__);
		cmd->vm = vm;
		/* the ring it came in was emptied: its bytes are in the state */
		cmd->at = -1;
		/* a client that did not come along has gone */
		cmd->client = sc->client != 0 ? state_client(vm, sc->client) :
		    NULL;
		all[i] = cmd;
		cmd->owner = sc->owner != 0 && state_client(vm, sc->owner) !=
		    NULL ? sc->owner : 0;
		cmd->upstream_id = sc->upstream_id;
		cmd->client_id = sc->id.buf;
		cmd->client_id_len = sc->id.len;
		sc->id.buf = NULL;
		memcpy(cmd->name, sc->name, sizeof(cmd->name));
		cmd->oob = sc->oob;
		cmd->sent = sc->sent;
		cmd->answered = sc->answered;
		cmd->expired = sc->expired;
		cmd->waited = sc->waited;
		cmd->timeout = sc->timeout;
		age = sc->age + sv->taken;
		util_now(&cmd->arrived);
		util_since(&cmd->arrived, age);
		/* an unsent one whose client has gone leaves the queue */
		if (!cmd->sent && cmd->client == NULL) {
			all[i] = NULL;
			free(cmd->client_id);
			free(cmd);
			continue;
		}
		state_cmd_lock(vm, sv, sc, cmd);
		if (!cmd->sent && cmd->lock_op == LOCK_OP_NONE) {
			if ((cmd->wire = evbuffer_new()) == NULL ||
			    evbuffer_add(cmd->wire, sc->wire.buf,
			    sc->wire.len) == -1)
				fatal("%s", __func__);
		}
		cmd_adopt(cmd, cmd->timeout - age);
	}
	return (all);
}

/* The clients, each on its listener, with their commands' order. */
static void
state_vm_clients(struct vm *vm, struct state_vm *sv)
{
	struct state_client	*sc;
	struct listener		*l;
	struct client		*c;
	struct cmd		**all, *cmd;
	struct state_bytes	*held;
	size_t			 i, j;

	for (i = 0; i < sv->nclients; i++) {
		sc = &sv->clients[i];
		if (sc->fd < 0)
			continue;
		l = state_listener(vm, sc);
		if (l == NULL || sc->state == CLIENT_CLOSING) {
			vm_log(vm, LOG_INFO, "client %d: its listener is no "
			    "longer configured; closed", sc->id);
			state_close_client(sc);
			continue;
		}
		c = client_adopt(l, sc->fd, sc->id, sc->state, sc->pid,
		    sc->uid, sc->oob, state_spool(vm, sc), sv->after_crash,
		    sc->in.buf, sc->in.len, sc->out.buf, sc->out.len);
		sc->fd = -1;
		if (c == NULL)
			continue;
		/* a client of before a crash, or a restart since one */
		c->recovered = sc->recovered;
		c->lock_aware = sc->lock_aware;
		c->lock_fenced = sc->lock_fenced;
		c->lock_lost = sc->lock_lost;
	}

	all = state_vm_cmds(vm, sv);
	for (i = 0; i < sv->nclients; i++) {
		sc = &sv->clients[i];
		if ((c = state_client(vm, sc->id)) == NULL)
			continue;
		/* the state's order holds exactly the client's commands */
		for (j = 0; j < sc->norder; j++) {
			held = &sv->cmds[sc->order[j]].held;
			if (held->buf != NULL)
				client_adopt_held(c, held->buf, held->len);
			if ((cmd = all[sc->order[j]]) == NULL)
				continue;
			TAILQ_INSERT_TAIL(&c->order, cmd, order);
			c->ncmds++;
			all[sc->order[j]] = NULL;
		}
	}
	free(all);
}

/*
 * Whether the state has a VM of that name that the control socket
 * added: it is taken over as it was, and one of the configuration of
 * the same name is not started, as a reload leaves it.
 */
int
state_vm_added(struct state *st, const char *name)
{
	struct state_vm	*sv = state_vm_find(st, name);

	return (sv != NULL && !sv->from_file);
}

/*
 * A VM of the state, for the VM of that conf about to be made: its
 * listeners' sockets go into the conf (vm_new makes its listeners on
 * them, as on fds a client passed) and it is the new VM's to take over
 * (state_vm_restore), in place of reaching QEMU from the start.  NULL
 * if the state has no VM of that name: the VM starts as a new one.
 */
struct state_vm *
state_vm_prepare(struct state *st, struct vm_conf *vc)
{
	struct state_vm	*sv;

	if ((sv = state_vm_find(st, vc->name)) == NULL)
		return (NULL);
	sv->used = 1;
	sv->taken = st->taken;
	state_vm_listeners(sv, vc);
	return (sv);
}

/*
 * The commands the process before a crash had sent to QEMU: each keeps
 * its deadline, from its arrival (cmd_flight_adopt).
 */
static void
state_vm_sent(struct vm *vm, struct state_vm *sv)
{
	struct vm_sent	 s;
	struct timeval	 now;
	size_t		 i;

	util_now(&now);
	for (i = 0; i < sv->nsent; i++) {
		s.epoch = sv->sent[i].epoch;
		s.seq = sv->sent[i].seq;
		s.client = sv->sent[i].client;
		s.id = sv->sent[i].id.buf;
		s.idlen = sv->sent[i].id.len;
		s.name = sv->sent[i].name;
		s.arrived = (double)now.tv_sec + now.tv_usec / 1e6 -
		    sv->sent[i].age - sv->taken;
		s.timeout = sv->sent[i].timeout;
		s.expired = sv->sent[i].expired;
		s.at = sv->sent[i].at;
		cmd_flight_adopt(vm, &s);
	}
	if (sv->nsent == 0)
		return;
	/* a connection not taken over will never answer them */
	if (vm->mon == NULL || vm->mon->state != MONITOR_READY) {
		cmd_flights_lost(vm, "qmpmux: connection to QEMU lost");
		return;
	}
	vm_log(vm, LOG_INFO, "%zu commands sent before the crash keep their "
	    "deadlines", sv->nsent);
}

/*
 * The rest of a VM of the state that state_vm_prepare matched, once its
 * listeners are made: counters, upstream, clients, commands and lock.  -1 if
 * its upstream cannot be reached (its clients are closed then).
 */
int
state_vm_restore(struct vm *vm, struct state_vm *sv)
{
	double		 stalled;
	int		 changed;

	vm->next_client_id = sv->next_client_id;
	/* after a crash: QEMU's replies to the commands of before */
	vm->orphans = sv->orphans;
	vm->orphan_epoch = sv->orphan_epoch;
	vm->next_cmd_id = sv->next_cmd_id;
	vm->stats = sv->stats;
	/* the upstream was taken, and cannot be reached: nor its clients */
	if ((changed = state_vm_monitor(vm, sv)) == -1) {
		vm_log(vm, LOG_WARNING, "cannot be taken over; its "
		    "connections are closed");
		state_close_clients(vm, sv, "the upstream cannot be reached");
		return (-1);
	}
	/* as a reload closes them when the upstream changes */
	if (changed)
		state_close_clients(vm, sv, "the upstream changed");
	else
		state_vm_clients(vm, sv);
	state_vm_lock(vm, sv);
	state_vm_sent(vm, sv);
	if (sv->stalled >= 0 && cmd_stalled(vm)) {
		stalled = sv->stalled + sv->taken;
		vm->stalled = 1;
		util_now(&vm->stalled_since);
		util_since(&vm->stalled_since, stalled);
	}
	/* what the fd store keeps of it, now that its greeting is known */
	state_store_change(vm, VM_RECORD, NULL, -1);
	vm_log(vm, LOG_INFO, "taken over: upstream %s, %zu clients, %u "
	    "commands queued, %u in flight", monitor_state_name(vm->mon->state),
	    state_count_clients(vm), vm->nqueued, vm->ninflight);
	cmd_pump(vm);
	return (0);
}

/*
 * The next VM of the state the configuration does not have, that the
 * control socket added: its conf made again from its add-vm keys, for
 * the owner to make and take over as any other (state_vm_prepare then
 * matches it).  The others were removed from the file while the
 * process before ran, and go now, their connections closed.  NULL once
 * there is none left.
 */
struct vm_conf *
state_vm_next_added(struct state *st, struct server *s)
{
	struct state_vm	*sv;
	struct vm_conf	*vc;
	size_t		 i;

	for (i = 0; i < st->nvms; i++) {
		sv = &st->vms[i];
		if (sv->used)
			continue;
		if (!sv->from_file && (vc = state_given_conf(s, sv)) != NULL)
			return (vc);
		log_info("vm %s: no longer configured; its connections are "
		    "closed", sv->name);
		state_close_vm(sv);
		sv->used = 1;
	}
	return (NULL);
}

/* Close every fd of the control state that nothing takes over. */
static void
state_control_close(yajl_val st)
{
	yajl_val	 cs, c, fs;
	size_t		 i, j;
	int		 fd;

	if ((fd = (int)json_get_int(st, "fd", -1)) >= 0)
		close(fd);
	cs = json_get(st, "clients", yajl_t_array);
	for (i = 0; cs != NULL && i < cs->u.array.len; i++) {
		c = cs->u.array.values[i];
		if ((fd = (int)json_get_int(c, "fd", -1)) >= 0)
			close(fd);
		fs = json_get(c, "fds", yajl_t_array);
		for (j = 0; fs != NULL && j < fs->u.array.len; j++) {
			fd = (int)json_get_int(fs->u.array.values[j], "fd",
			    -1);
			if (fd >= 0)
				close(fd);
		}
	}
}

/* One control client of the process before, as it was. */
static void
state_control_client(struct control *ctl, yajl_val c)
{
	struct control_client	*cc;
	struct control_fd	*f;
	struct vm		*vm;
	yajl_val		 a, v;
	const char		*name;
	char			*bytes;
	size_t			 len, i;
	int			 fd;

	if ((fd = (int)json_get_int(c, "fd", -1)) < 0)
		return;
	if (evutil_make_socket_closeonexec(fd) == -1)
		log_debug("%s: fcntl failed", __func__);
	cc = control_client_new(ctl, fd, (int)json_get_int(c, "id", 0),
	    (pid_t)json_get_int(c, "pid", -1),
	    (uid_t)json_get_int(c, "uid", -1));
	cc->negotiated = json_get_bool(c, "negotiated");
	cc->received = (uint64_t)json_get_int(c, "received", 0);
	if ((bytes = json_get_hex(c, "in", &len)) != NULL)
		evbuffer_add(cc->in, bytes, len);
	free(bytes);
	if ((bytes = json_get_hex(c, "out", &len)) != NULL)
		evbuffer_add(cc->out, bytes, len);
	free(bytes);
	a = json_get(c, "fds", yajl_t_array);
	for (i = 0; a != NULL && i < a->u.array.len; i++) {
		v = a->u.array.values[i];
		if ((fd = (int)json_get_int(v, "fd", -1)) < 0)
			continue;
		if ((f = calloc(1, sizeof(*f))) == NULL)
			fatal("%s", __func__);
		f->fd = fd;
		if ((name = json_get_str(v, "name")) != NULL &&
		    (f->name = strdup(name)) == NULL)
			fatal("%s", __func__);
		TAILQ_INSERT_TAIL(&cc->fds, f, entry);
		cc->nfds++;
	}
	a = json_get(c, "traces", yajl_t_array);
	for (i = 0; a != NULL && i < a->u.array.len; i++) {
		v = a->u.array.values[i];
		if (YAJL_IS_STRING(v) &&
		    (vm = host_find(ctl->server, YAJL_GET_STRING(v))) != NULL)
			trace_new(vm, &cc->traces, cc->out,
			    ctl->server->lim.control_max_output,
			    control_trace_kick, cc);
	}
	event_add(cc->rev, NULL);
	event_add(cc->wev, NULL);
	control_log(cc, LOG_INFO, "taken over (pid %ld, uid %ld)",
	    (long)cc->pid, (long)cc->uid);
}

/*
 * A restart: the control socket of the process before, with its
 * clients, answering the owner's commands (ops), and the answer to the
 * restart one of them asked for.  NULL if the state has none, or path
 * is not its path any more (then its fds are closed): the owner makes
 * the socket anew.
 */
struct control *
state_control_adopt(struct state *state, struct server *s, const char *path,
    const struct control_ops *ops)
{
	struct control		*ctl;
	struct control_client	*cc;
	yajl_val		 root = state->root, st, cs, by;
	const char		*old;
	char			*id;
	size_t			 idlen, i;
	int			 fd, who;

	st = json_get(root, "control", yajl_t_object);
	if (st == NULL)
		return (NULL);
	old = json_get_str(st, "path");
	fd = (int)json_get_int(st, "fd", -1);
	/* after a crash only the hash of its path is known */
	if (old == NULL && path != NULL && json_get_int(st, "hash", -1) ==
	    (long long)util_hash(path))
		old = path;
	if (path == NULL || old == NULL || fd < 0 || strcmp(old, path) != 0) {
		log_info("control: %s is no longer the control socket; its "
		    "clients are closed", old != NULL ? old : "(none)");
		state_control_close(st);
		if (old != NULL)
			unlink(old);
		return (NULL);
	}
	ctl = control_make(s, path, fd, ops);
	ctl->next_id = (int)json_get_int(st, "next_id", 0);
	cs = json_get(st, "clients", yajl_t_array);
	for (i = 0; cs != NULL && i < cs->u.array.len; i++)
		state_control_client(ctl, cs->u.array.values[i]);
	log_info("control: listening on %s, taken over with %u clients", path,
	    ctl->nclients);

	/* the restart is done: its caller hears so, then the rest is read */
	by = json_get(root, "restart_by", yajl_t_object);
	who = (int)json_get_int(by, "client", 0);
	id = json_get_hex(by, "id", &idlen);
	TAILQ_FOREACH(cc, &ctl->clients, entry) {
		if (cc->id == who && who != 0)
			reply_return(cc->out, id, idlen);
	}
	free(id);
	TAILQ_FOREACH(cc, &ctl->clients, entry)
		control_process(cc);
	return (ctl);
}
