/*
 * The state handed from one qmpmuxd process to the next across a
 * restart (restart.c): a JSON document in a memfd, and the sockets it
 * names, which stay open across the exec.  docs/STATE.md is its
 * reference; STATE_VERSION counts its changes, and a binary reads every
 * version up to its own, so that an upgrade reads what the older binary
 * wrote.
 *
 * What goes: per VM its upstream (the connection to QEMU with the state
 * of its handshake, the greeting clients get, what was read and not
 * taken and what was not yet written; listen mode's socket), its
 * listeners' sockets, its clients (their state, what was read from them
 * and not taken, what they have not yet been sent, events included),
 * its commands (queued, in flight and held replies, with their ids,
 * owners and what is left of their deadlines), its counters, its lock
 * (the holder, its lease, the waiters as queued commands).  The
 * configuration is read again from the file; a VM the control socket
 * added has its add-vm keys with it (vm_conf.given).
 *
 * Byte strings (messages, partial input, unsent output) are hex: they
 * need not be UTF-8, and yajl reads only UTF-8.
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

/*
 * The keys an add-vm set, as [section, key, value] triples: in the
 * restart state and in the VM's record in the fd store alike.
 */
void
state_given(yajl_gen g, const struct conf_entries *given)
{
	const struct conf_entry	*e;

	json_string(g, "given", 5);
	json_array_open(g);
	TAILQ_FOREACH(e, given, entry) {
		json_array_open(g);
		json_cstr(g, e->section);
		json_cstr(g, e->key);
		json_cstr(g, e->value);
		json_array_close(g);
	}
	json_array_close(g);
}

/*
 * The VM's lock: the last token given, and while it is held its holder
 * (a client number), token, reason and lease, the time it has been held
 * and the lease left counted back from now.  For a restart the
 * holder's listener, pid and uid and how many of a gone holder's
 * commands are at QEMU go too; the fd store's record (record) has in
 * their place when it was written, on the monotonic clock, from which
 * the process after a crash counts the lease on.
 */
void
state_lock(yajl_gen g, const struct vm *vm, int record)
{
	const struct vm_lock	*l = &vm->lock;
	struct timeval		 now;

	json_cstr(g, "lock");
	json_map_open(g);
	json_put_int(g, "last_token", (long long)l->last_token);
	json_put_bool(g, "held", l->held);
	if (l->held) {
		json_put_int(g, "client", l->holder);
		json_put_int(g, "token", (long long)l->token);
		json_put_str(g, "reason", l->reason);
		json_put_double(g, "hold", l->hold);
		json_put_double(g, "since", util_elapsed(&l->since));
		json_put_double(g, "left", lock_expires_in(vm));
		if (record) {
			/* the host's clock, as the restart's saved is */
			util_now(&now);
			json_put_double(g, "written", (double)now.tv_sec +
			    (double)now.tv_usec / 1e6);
		} else {
			json_put_str(g, "listener", l->listener);
			json_put_int(g, "pid", (long long)l->pid);
			json_put_int(g, "uid", (long long)l->uid);
			json_put_int(g, "draining", l->draining);
		}
	}
	json_map_close(g);
}

/* Remember an fd to keep open across the exec. */
void
state_keep_fd(struct state_fds *fds, int fd)
{
	int	*n;

	if (fd < 0)
		return;
	if (fds->n == fds->cap) {
		fds->cap = fds->cap == 0 ? 64 : fds->cap * 2;
		if ((n = reallocarray(fds->fd, fds->cap, sizeof(*n))) == NULL)
			fatal("%s", __func__);
		fds->fd = n;
	}
	fds->fd[fds->n++] = fd;
}

/* The reader's partial message, then what in holds after it. */
static void
state_input(yajl_gen g, struct qmp_reader *r, struct evbuffer *in)
{
	const char	*part = NULL;
	size_t		 partlen = 0;

	if (r != NULL)
		part = qmp_reader_partial(r, &partlen);
	json_put_evbuffer(g, "in", in, part, partlen);
}

static void
state_save_monitor(yajl_gen g, struct monitor *m, struct state_fds *fds)
{
	int	 fd = -1, lfd = -1;

	json_string(g, "upstream", 8);
	json_map_open(g);
	if (m->bev != NULL && (m->state == MONITOR_GREETING ||
	    m->state == MONITOR_NEGOTIATING || m->state == MONITOR_READY))
		fd = bufferevent_getfd(m->bev);
	if (m->evl != NULL)
		lfd = evconnlistener_get_fd(m->evl);
	json_put_str(g, "state", monitor_state_name(m->state));
	json_put_str(g, "mode", conf_upstream_mode_name(m->vm->conf.upstream_mode));
	json_put_str(g, "path", m->vm->conf.upstream);
	json_put_double(g, "since", util_elapsed(&m->since));
	json_put_int(g, "fd", fd);
	json_put_int(g, "listen_fd", lfd);
	state_keep_fd(fds, fd);
	state_keep_fd(fds, lfd);
	if (fd != -1) {
		json_put_hex(g, "greeting", m->greeting, m->greeting != NULL ?
		    m->greeting_len : 0);
		json_put_str(g, "version", m->version);
		json_put_bool(g, "oob", m->oob);
		state_input(g, m->reader, bufferevent_get_input(m->bev));
		json_put_evbuffer(g, "out", bufferevent_get_output(m->bev),
		    NULL, 0);
	}
	json_map_close(g);
}

/* The index of cmd in the list of the VM's commands the state has. */
static long long
state_cmd_index(struct cmd **all, size_t n, const struct cmd *cmd)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (all[i] == cmd)
			return ((long long)i);
	}
	fatalx("%s: a command of no list", __func__);
}

static void
state_save_cmd(yajl_gen g, const struct cmd *cmd)
{
	double	 age = util_elapsed(&cmd->arrived);

	json_map_open(g);
	json_put_int(g, "client", cmd->client != NULL ? cmd->client->id : 0);
	json_put_int(g, "owner", cmd->owner);
	json_put_int(g, "upstream_id", (long long)cmd->upstream_id);
	json_put_hex(g, "id", cmd->client_id, cmd->client_id_len);
	json_put_str(g, "name", cmd->name);
	json_put_bool(g, "oob", cmd->oob);
	json_put_bool(g, "sent", cmd->sent);
	json_put_bool(g, "answered", cmd->answered);
	json_put_bool(g, "expired", cmd->expired);
	json_put_bool(g, "waited", cmd->waited);
	if (cmd->wire != NULL)
		json_put_evbuffer(g, "wire", cmd->wire, NULL, 0);
	json_put_double(g, "age", age);
	json_put_double(g, "timeout", cmd->timeout);
	json_put_bool(g, "mutation", cmd->mutation);
	json_put_bool(g, "lock_blocked", cmd->lock_blocked);
	json_put_bool(g, "lock_drain", cmd->lock_drain);
	/* the lock's own, queued: its arguments */
	if (cmd->lock_op == LOCK_OP_ACQUIRE || cmd->lock_op ==
	    LOCK_OP_RELEASE) {
		json_put_str(g, "lock_op", cmd->lock_op == LOCK_OP_ACQUIRE ?
		    "acquire" : "release");
		json_put_double(g, "lock_hold", cmd->lock_hold);
		json_put_str(g, "lock_reason", cmd->lock_reason);
		json_put_int(g, "lock_token", (long long)cmd->lock_token);
	}
	json_map_close(g);
}

/*
 * A client's spool (client-in.c), handed on so that its fds stay those
 * of the service manager's store: the new process empties its ring,
 * which this state carries.
 */
static void
state_save_spool(yajl_gen g, const struct client *c, struct state_fds *fds)
{
	int	 rd, wr;

	spool_pipe(c->spool, &rd, &wr);
	json_cstr(g, "spool");
	json_map_open(g);
	json_put_int(g, "memfd", spool_fd(c->spool));
	json_put_int(g, "rd", rd);
	json_put_int(g, "wr", wr);
	json_map_close(g);
	state_keep_fd(fds, spool_fd(c->spool));
	state_keep_fd(fds, rd);
	state_keep_fd(fds, wr);
}

static void
state_save_client(yajl_gen g, struct client *c, struct cmd **all, size_t n,
    size_t *held, struct state_fds *fds)
{
	struct client_held	*h = TAILQ_FIRST(&c->held);
	struct cmd		*cmd;
	struct evbuffer		*out;
	int			 fd = c->fd;

	json_map_open(g);
	json_put_int(g, "id", c->id);
	json_put_int(g, "fd", fd);
	state_keep_fd(fds, fd);
	json_put_str(g, "listener", c->listener->conf->path);
	json_put_str(g, "state", client_state_name(c->state));
	json_put_int(g, "pid", (long long)c->pid);
	json_put_int(g, "uid", (long long)c->uid);
	json_put_bool(g, "oob", c->oob);
	json_put_bool(g, "recovered", c->recovered);
	json_put_bool(g, "lock_aware", c->lock_aware);
	if (c->lock_fenced != LOCK_WHY_NONE) {
		json_put_str(g, "lock_fenced", lock_why_name(c->lock_fenced));
		json_put_int(g, "lock_lost", (long long)c->lock_lost);
	}
	/* what its ring holds unframed, read: its spool goes along */
	state_input(g, c->reader, c->in);
	state_save_spool(g, c, fds);
	/* what waits past its out ring: the ring goes with the spool */
	if ((out = evbuffer_new()) == NULL)
		fatal("%s", __func__);
	client_out_spill(c, out);
	json_put_evbuffer(g, "out", out, NULL, 0);
	evbuffer_free(out);
	json_string(g, "order", 5);
	json_array_open(g);
	TAILQ_FOREACH(cmd, &c->order, order) {
		json_integer(g, state_cmd_index(all, n, cmd));
		/* the replies held behind it, after the commands */
		for (; h != NULL && h->after == cmd; h = TAILQ_NEXT(h, entry))
			json_integer(g, (long long)(*held)++);
	}
	json_array_close(g);
	json_map_close(g);
}

/*
 * A VM's counters, those counter.c's table keeps in the state, under
 * their keys there; a histogram as three: NAME_count, NAME_sum and
 * NAME_buckets.
 */
static void
state_save_stats(yajl_gen g, const struct vm *vm)
{
	const struct counter		*c;
	const struct counter_hist	*h;
	char				 key[64];
	size_t				 i;

	json_cstr(g, "stats");
	json_map_open(g);
	COUNTER_FOREACH(c, COUNTER_STATE) {
		if (c->type != COUNTER_HISTOGRAM) {
			json_put_int(g, c->state,
			    (long long)counter_value(c, vm));
			continue;
		}
		h = counter_hist_of(c, vm);
		snprintf(key, sizeof(key), "%s_count", c->state);
		json_put_int(g, key, (long long)h->count);
		snprintf(key, sizeof(key), "%s_sum", c->state);
		json_put_double(g, key, h->sum);
		snprintf(key, sizeof(key), "%s_buckets", c->state);
		json_cstr(g, key);
		json_array_open(g);
		for (i = 0; i < COUNTER_NBUCKETS; i++)
			json_integer(g, (long long)h->buckets[i]);
		json_array_close(g);
	}
	json_map_close(g);
}

/* The commands of before a crash still at QEMU (cmd_flight_adopt). */
static void
state_save_sent(yajl_gen g, const struct vm *vm)
{
	const struct cmd_flight	*f;
	struct timeval		 now;

	if (TAILQ_EMPTY(&vm->flights))
		return;
	util_now(&now);
	json_string(g, "sent", 4);
	json_array_open(g);
	TAILQ_FOREACH(f, &vm->flights, entry) {
		json_map_open(g);
		json_put_int(g, "epoch", f->s.epoch);
		json_put_int(g, "seq", (long long)f->s.seq);
		json_put_int(g, "client", f->s.client);
		json_put_hex(g, "id", f->s.id, f->s.idlen);
		json_put_str(g, "name", f->name);
		json_put_double(g, "age", (double)now.tv_sec +
		    now.tv_usec / 1e6 - f->s.arrived);
		json_put_double(g, "timeout", f->s.timeout);
		json_put_bool(g, "expired", f->s.expired);
		json_map_close(g);
	}
	json_array_close(g);
}

static void
state_save_vm(yajl_gen g, struct vm *vm, struct state_fds *fds)
{
	struct listener		*l;
	struct client		*c;
	struct client_held	*h;
	struct cmd		*cmd, **all;
	size_t			 n = 0, i, held;

	json_map_open(g);
	json_put_str(g, "name", vm->name);
	json_put_bool(g, "from_file", vm->conf.from_file);
	state_given(g, &vm->conf.given);
	json_put_int(g, "next_client_id", vm->next_client_id);
	if (vm->orphans)
		json_put_int(g, "orphan_epoch", vm->orphan_epoch);
	json_put_int(g, "next_cmd_id", (long long)vm->next_cmd_id);
	if (vm->stalled)
		json_put_double(g, "stalled", util_elapsed(&vm->stalled_since));
	state_save_stats(g, vm);
	state_lock(g, vm, 0);

	state_save_monitor(g, vm->mon, fds);

	json_string(g, "listeners", 9);
	json_array_open(g);
	TAILQ_FOREACH(l, &vm->listeners, entry) {
		if (l->evl == NULL)
			continue;
		json_map_open(g);
		json_put_str(g, "path", l->conf->path);
		json_put_int(g, "fd", evconnlistener_get_fd(l->evl));
		state_keep_fd(fds, evconnlistener_get_fd(l->evl));
		json_map_close(g);
	}
	json_array_close(g);

	/* every command once: the queue, in flight, then held replies */
	TAILQ_FOREACH(cmd, &vm->queue, entry)
		n++;
	TAILQ_FOREACH(cmd, &vm->inflight, entry)
		n++;
	if ((all = calloc(n + 1, sizeof(*all))) == NULL)
		fatal("%s", __func__);
	n = 0;
	TAILQ_FOREACH(cmd, &vm->queue, entry)
		all[n++] = cmd;
	TAILQ_FOREACH(cmd, &vm->inflight, entry)
		all[n++] = cmd;
	state_save_sent(g, vm);
	json_string(g, "commands", 8);
	json_array_open(g);
	for (i = 0; i < n; i++)
		state_save_cmd(g, all[i]);
	/* then the replies held for each client that goes over, in order */
	TAILQ_FOREACH(c, &vm->clients, entry) {
		if (c->state == CLIENT_CLOSING)
			continue;
		TAILQ_FOREACH(h, &c->held, entry) {
			json_map_open(g);
			json_put_int(g, "client", c->id);
			json_put_evbuffer(g, "held", h->buf, NULL, 0);
			json_map_close(g);
		}
	}
	json_array_close(g);

	/* a closing client goes with the old process: it was leaving */
	json_string(g, "clients", 7);
	json_array_open(g);
	held = n;
	TAILQ_FOREACH(c, &vm->clients, entry) {
		if (c->state != CLIENT_CLOSING)
			state_save_client(g, c, all, n, &held, fds);
	}
	json_array_close(g);
	free(all);
	json_map_close(g);
}

/*
 * The control socket and its clients as they are,
 * for the next process.  A closing client goes with this process.
 */
static void
state_save_control(struct control *ctl, struct yajl_gen_t *g,
    struct state_fds *fds)
{
	struct control_client	*cc;
	struct control_fd	*f;
	const char		*part;
	size_t			 partlen;
	int			 fd = evconnlistener_get_fd(ctl->evl);

	json_map_open(g);
	json_put_str(g, "path", ctl->path);
	json_put_int(g, "fd", fd);
	state_keep_fd(fds, fd);
	json_put_int(g, "next_id", ctl->next_id);
	json_string(g, "clients", 7);
	json_array_open(g);
	TAILQ_FOREACH(cc, &ctl->clients, entry) {
		if (cc->closing)
			continue;
		json_map_open(g);
		json_put_int(g, "id", cc->id);
		json_put_int(g, "fd", cc->fd);
		state_keep_fd(fds, cc->fd);
		json_put_int(g, "pid", (long long)cc->pid);
		json_put_int(g, "uid", (long long)cc->uid);
		json_put_bool(g, "negotiated", cc->negotiated);
		json_put_int(g, "received", (long long)cc->received);
		json_put_int(g, "max_message", (long long)cc->max_message);
		part = qmp_reader_partial(cc->reader, &partlen);
		json_put_evbuffer(g, "in", cc->in, part, partlen);
		json_put_evbuffer(g, "out", cc->out, NULL, 0);
		json_string(g, "traces", 6);
		trace_save(&cc->traces, g);
		json_string(g, "fds", 3);
		json_array_open(g);
		TAILQ_FOREACH(f, &cc->fds, entry) {
			json_map_open(g);
			json_put_str(g, "name", f->name);
			json_put_int(g, "fd", f->fd);
			state_keep_fd(fds, f->fd);
			json_map_close(g);
		}
		json_array_close(g);
		json_map_close(g);
	}
	json_array_close(g);
	json_map_close(g);
}

/*
 * Write the whole state into a new memfd, and the fds it names into
 * fds.  The memfd is returned, or -1 (err says why).  ctl may be NULL;
 * by is the control client that asked for the restart (0: a signal),
 * and id, idlen its command's id, for the new process to answer.
 */
int
state_save(struct server *s, struct control *ctl, int by, const char *id,
    size_t idlen, struct state_fds *fds, char *err, size_t errlen)
{
	yajl_gen		 g;
	const unsigned char	*buf;
	size_t			 len, off;
	struct vm		*vm;
	struct timeval		 now;
	ssize_t			 n;
	int			 fd;

	g = json_new();
	json_map_open(g);
	json_put_int(g, "qmpmux_state", STATE_VERSION);
	json_put_str(g, "qmpmuxd", PACKAGE_VERSION);
	json_put_int(g, "epoch", s->epoch);
	util_now(&now);
	/* the monotonic clock is the host's: the next process goes on it */
	json_put_double(g, "saved", (double)now.tv_sec +
	    (double)now.tv_usec / 1e6);
	json_put_double(g, "started", (double)s->started.tv_sec +
	    (double)s->started.tv_usec / 1e6);
	json_string(g, "restart_by", 10);
	json_map_open(g);
	json_put_int(g, "client", by);
	json_put_hex(g, "id", id, idlen);
	json_map_close(g);
	json_string(g, "control", 7);
	if (ctl != NULL)
		state_save_control(ctl, g, fds);
	else
		json_null(g);
	/* what is in the service manager's store, for the next to tidy */
	json_string(g, "fdstore", 7);
	fdstore_save(g);
	json_cstr(g, "fdstore_fds");
	fdstore_save_fds(g);
	json_string(g, "vms", 3);
	json_array_open(g);
	TAILQ_FOREACH(vm, &s->vms, entry)
		state_save_vm(g, vm, fds);
	json_array_close(g);
	json_map_close(g);
	json_buf(g, &buf, &len);

	if ((fd = memfd_create("qmpmux-state", 0)) == -1) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		json_free(g);
		return (-1);
	}
	for (off = 0; off < len; off += (size_t)n) {
		if ((n = write(fd, buf + off, len - off)) <= 0) {
			snprintf(err, errlen, "writing the state: %s",
			    n == 0 ? "short write" : strerror(errno));
			json_free(g);
			close(fd);
			return (-1);
		}
	}
	json_free(g);
	return (fd);
}
