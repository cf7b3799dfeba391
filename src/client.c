/*
 * Downstream clients.  Each sees an ordinary QEMU monitor: the greeting,
 * its own capabilities negotiation answered here with QEMU's texts, and
 * then the shared monitor.  A client is read only while it has fewer
 * than max_client_pipeline commands waiting or in flight, as QEMU
 * suspends a monitor whose queue is full.
 *
 * There is one close path, client_close, which logs why; the free runs
 * later from the loop (c->reap), never inside a bufferevent callback.
 *
 * End of input is not a hang-up: a client that shuts down its writing
 * side (a shell piping commands into socat) has sent its last command,
 * and gets every reply before its connection is closed.  A client gone
 * both ways is gone, and its unsent commands leave the queue.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "qmpmux.h"

#define CLIENT_HUP_CHECK	1	/* seconds, while not read from */

static const char *client_state_names[] = {
	[CLIENT_WAITING] = "waiting",
	[CLIENT_CAPS] = "capabilities",
	[CLIENT_READY] = "ready",
	[CLIENT_CLOSING] = "closing",
};

static struct client *client_new(struct listener *, int, int, pid_t, uid_t);
static void	client_store(const struct client *);
static void	client_unstore(const struct client *);
static void	client_read(struct client *);
static void	client_read_cb(struct bufferevent *, void *);
static void	client_write_cb(struct bufferevent *, void *);
static void	client_event_cb(struct bufferevent *, short, void *);
static void	client_timer_cb(int, short, void *);
static void	client_resume_cb(int, short, void *);
static void	client_reap_cb(int, short, void *);
static void	client_hup_cb(int, short, void *);
static void	client_read_again(struct client *);
static void	client_watch(struct client *);

/* Return the printable name of a state. */
const char *
client_state_name(enum client_state state)
{
	return (client_state_names[state]);
}

/* Log a line about the client, its VM's name and its number first. */
void
client_log(const struct client *c, int pri, const char *fmt, ...)
{
	char	 prefix[128];
	va_list	 ap;

	/* a debug line per command: not even its prefix without -v */
	if (pri == LOG_DEBUG && log_getverbose() < 1)
		return;
	snprintf(prefix, sizeof(prefix), "vm %s: client %d", c->vm->name,
	    c->id);
	va_start(ap, fmt);
	log_vmsg(pri, prefix, fmt, ap);
	va_end(ap);
}

/*
 * A reply the proxy makes itself goes into out (the client's output,
 * or a buffer held behind its commands) as one of QEMU's would, and a
 * trace of the VM sees it as it sees QEMU's: now if it goes straight
 * out, when it is let go if it is held (cmd_done), so that the trace
 * shows the client's replies in the order the client gets them.
 */
static int
client_traces(struct client *c, struct evbuffer *out)
{
	return (TRACE_ON(c->vm) && out == bufferevent_get_output(c->bev));
}

/* A reply made in b for the trace goes to the trace, then into out. */
static void
client_made(struct client *c, struct evbuffer *out, struct evbuffer *b)
{
	if (b == out)
		return;
	trace_message(c->vm, TRACE_CLIENT_OUT, c,
	    (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b),
	    NULL);
	evbuffer_add_buffer(out, b);
	evbuffer_free(b);
}

/* An error of the proxy's own for c, with its id, into out. */
void
client_error(struct client *c, struct evbuffer *out, const char *id,
    size_t idlen, const char *class, const char *fmt, ...)
{
	struct evbuffer	*b = out;
	va_list		 ap;

	if (client_traces(c, out) && (b = evbuffer_new()) == NULL)
		fatal("%s", __func__);
	va_start(ap, fmt);
	reply_verror(b, id, idlen, class, fmt, ap);
	va_end(ap);
	client_made(c, out, b);
}

/* An empty return of the proxy's own for c, with its id, into out. */
void
client_return(struct client *c, struct evbuffer *out, const char *id,
    size_t idlen)
{
	struct evbuffer	*b = out;

	if (client_traces(c, out) && (b = evbuffer_new()) == NULL)
		fatal("%s", __func__);
	reply_return(b, id, idlen);
	client_made(c, out, b);
}

/* Change state, logging the transition. */
static void
client_set_state(struct client *c, enum client_state state)
{
	client_log(c, LOG_DEBUG, "%s -> %s", client_state_names[c->state],
	    client_state_names[state]);
	client_unstore(c);
	c->state = state;
	client_store(c);
}

/*
 * Tell the layer above of the client's socket (vm_tell): as it comes,
 * at each change of state, and as it goes.  A closing client is not
 * told again: it is going.
 */
static void
client_store(const struct client *c)
{
	if (c->state != CLIENT_CLOSING)
		vm_tell(c->vm, VM_CLIENT, c, bufferevent_getfd(c->bev));
}

static void
client_unstore(const struct client *c)
{
	vm_tell(c->vm, VM_CLIENT, c, -1);
}

/* Arm the client's timer; 0 seconds disarms it. */
static void
client_arm(struct client *c, double seconds)
{
	struct timeval	 tv;

	if (seconds <= 0 || util_timeval(seconds, &tv) == -1)
		evtimer_del(c->timer);
	else
		evtimer_add(c->timer, &tv);
}

/*
 * Take an accepted connection on a listener.  A peer whose uid the
 * listener's allowed_uids does not list is refused here: it gets
 * nothing, and its connection is closed at once.
 */
void
client_accept(struct listener *l, int fd)
{
	struct vm	*vm = l->vm;
	struct client	*c;
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	pid_t		 pid = -1;
	uid_t		 uid = (uid_t)-1;
	int		 saved = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		pid = cred.pid;
		uid = cred.uid;
	} else
		saved = errno;
	if (!listener_allows(l, uid)) {
		vm->stats.clients_refused++;
		if (saved != 0)
			vm_log(vm, LOG_INFO, "refused a client on %s: its uid "
			    "cannot be read: %s", l->conf->path,
			    strerror(saved));
		else
			vm_log(vm, LOG_INFO, "refused a client of uid %ld "
			    "(pid %ld) on %s: not in allowed_uids", (long)uid,
			    (long)pid, l->conf->path);
		close(fd);
		return;
	}

	c = client_new(l, fd, ++vm->next_client_id, pid, uid);
	client_store(c);
	vm->stats.clients++;
	client_log(c, LOG_INFO, "connected on %s (pid %ld, uid %ld)",
	    l->conf->path, (long)c->pid, (long)c->uid);

	/* no input is read before the greeting, as QEMU would not accept */
	bufferevent_enable(c->bev, EV_WRITE);
	if (monitor_ready(vm->mon))
		client_greet(c);
	else {
		c->state = CLIENT_WAITING;
		client_arm(c, vm->conf.greeting_timeout);
	}
}

/* A client of l on the connected socket fd, which it owns; not greeted. */
static struct client *
client_new(struct listener *l, int fd, int id, pid_t pid, uid_t uid)
{
	struct vm	*vm = l->vm;
	struct client	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("%s", __func__);
	c->vm = vm;
	c->listener = l;
	/* its name in the fd store outlives the listener, freed first */
	c->listener_hash = util_hash(l->conf->path);
	c->id = id;
	TAILQ_INIT(&c->order);
	TAILQ_INIT(&c->events);
	c->pid = pid;
	c->uid = uid;
	c->bev = bufferevent_socket_new(vm->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->reader = qmp_reader_new(vm->conf.max_client_message,
	    vm->conf.max_json_depth, QMP_READ_STRICT);
	c->timer = evtimer_new(vm->base, client_timer_cb, c);
	c->resume = event_new(vm->base, -1, 0, client_resume_cb, c);
	c->reap = event_new(vm->base, -1, 0, client_reap_cb, c);
	c->hup = evtimer_new(vm->base, client_hup_cb, c);
	if (c->bev == NULL || c->reader == NULL || c->timer == NULL ||
	    c->resume == NULL || c->reap == NULL || c->hup == NULL)
		fatalx("%s: out of memory", __func__);
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb,
	    client_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE,
	    vm->conf.max_client_output / 2, 0);
	TAILQ_INSERT_TAIL(&vm->clients, c, entry);
	return (c);
}

/*
 * A restart (state-restore.c): a client of the process before, on its socket,
 * in the state it had.  A client not yet greeted waits for QEMU within a
 * new greeting_timeout.  in is what had been read from it and not
 * taken, out what it had not yet been sent; both go before anything
 * new.  Its commands are put back by the caller.
 */
struct client *
client_adopt(struct listener *l, int fd, int id, enum client_state state,
    pid_t pid, uid_t uid, int oob, const void *in, size_t inlen,
    const void *out, size_t outlen)
{
	struct client	*c;

	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1)
		log_debug("%s: fcntl failed", __func__);
	c = client_new(l, fd, id, pid, uid);
	c->oob = oob;
	c->state = state;
	client_store(c);
	if (inlen > 0)
		util_bev_input(c->bev, in, inlen);
	if (outlen > 0)
		evbuffer_add(bufferevent_get_output(c->bev), out, outlen);
	bufferevent_enable(c->bev, EV_WRITE);
	if (state == CLIENT_WAITING) {
		client_arm(c, c->vm->conf.greeting_timeout);
		return (c);
	}
	bufferevent_enable(c->bev, EV_READ);
	event_active(c->resume, EV_TIMEOUT, 1);
	return (c);
}

/* Send QEMU's greeting and start reading. */
void
client_greet(struct client *c)
{
	struct monitor	*m = c->vm->mon;

	evtimer_del(c->timer);
	bufferevent_write(c->bev, m->greeting, m->greeting_len);
	client_set_state(c, CLIENT_CAPS);
	bufferevent_enable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		event_active(c->resume, EV_TIMEOUT, 1);
}

/*
 * The one close path.  What is already queued for the client is written
 * first (a client closed because QEMU went away gets its errors), within
 * the listener's slow_client_timeout; then the client is freed.
 */
void
client_close(struct client *c, const char *fmt, ...)
{
	char	 reason[512];
	va_list	 ap;

	if (c->state == CLIENT_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	client_log(c, LOG_INFO, "closed: %s", reason);

	cmd_client_gone(c);
	client_set_state(c, CLIENT_CLOSING);
	client_watch(c);
	event_del(c->resume);
	bufferevent_disable(c->bev, EV_READ);
	if (c->noflush ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		event_active(c->reap, EV_TIMEOUT, 1);
	else
		client_arm(c, c->listener->conf->slow_client_timeout);
}

/* Free a client now; only from the loop or at shutdown. */
void
client_free(struct client *c)
{
	if (c == NULL)
		return;
	if (c->state != CLIENT_CLOSING)
		cmd_client_gone(c);
	client_unstore(c);
	TAILQ_REMOVE(&c->vm->clients, c, entry);
	vm_client_gone(c);
	bufferevent_free(c->bev);
	qmp_reader_free(c->reader);
	event_free(c->timer);
	event_free(c->resume);
	event_free(c->reap);
	event_free(c->hup);
	free(c);
}

static void
client_reap_cb(int fd, short events, void *arg)
{
	client_free(arg);
}

/*
 * Whether a client of a block listener other than c holds events it
 * has not written, and so QEMU's reads too; its own replies unread do
 * not count, they are not in the backlog.
 */
static int
client_blocker_lags(struct client *c)
{
	struct client	*o;

	TAILQ_FOREACH(o, &c->vm->clients, entry) {
		if (o != c && o->state == CLIENT_READY &&
		    o->listener->conf->slow_client == SLOW_CLIENT_BLOCK &&
		    !TAILQ_EMPTY(&o->events))
			return (1);
	}
	return (0);
}

/*
 * The greeting never came, or a closing client did not take its output,
 * or a disconnect client kept QEMU's reads paused.  That one is closed
 * only if it is among the clients that alone keep them paused: while a
 * block client lags too, closing it would not let QEMU go on, so it is
 * given another slow_client_timeout.
 */
static void
client_timer_cb(int fd, short events, void *arg)
{
	struct client	*c = arg;

	if (c->state == CLIENT_WAITING)
		client_close(c, "QEMU not ready within greeting_timeout (%gs)",
		    c->vm->conf.greeting_timeout);
	else if (c->state == CLIENT_CLOSING)
		event_active(c->reap, EV_TIMEOUT, 1);
	else if (c->state == CLIENT_READY && c->vm->reads_paused &&
	    client_blocker_lags(c)) {
		client_log(c, LOG_DEBUG,
		    "slow, but a block client holds QEMU's reads too");
		client_arm(c, c->listener->conf->slow_client_timeout);
	} else if (c->state == CLIENT_READY && c->vm->reads_paused &&
	    !TAILQ_EMPTY(&c->events)) {
		/* what it cannot read it will not read on the way out */
		c->noflush = 1;
		client_close(c, "slow client: QEMU's reads paused for %gs "
		    "with %zu bytes unsent to it",
		    c->listener->conf->slow_client_timeout,
		    evbuffer_get_length(bufferevent_get_output(c->bev)));
	}
}

/*
 * The VM has paused or resumed reading from QEMU.  A client of a
 * disconnect listener that still holds events when the pause has lasted
 * slow_client_timeout is closed; a block client holds QEMU back instead.
 */
void
client_reads_paused(struct client *c, int paused)
{
	if (c->state != CLIENT_READY ||
	    c->listener->conf->slow_client != SLOW_CLIENT_DISCONNECT)
		return;
	if (paused)
		client_arm(c, c->listener->conf->slow_client_timeout);
	else
		evtimer_del(c->timer);
}

/*
 * Output has gone to the client.  Runs after each write once the output
 * is down to half of max_client_output (the write low watermark).
 */
static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct client	*c = arg;

	if (c->state == CLIENT_CLOSING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		event_active(c->reap, EV_TIMEOUT, 1);
	else
		client_read_again(c);
}

/*
 * Whether the peer has gone both ways, by a poll of its socket: a close
 * (POLLHUP) or a reset (POLLERR).  On a unix socket a peer that only
 * shut down its writing gives POLLRDHUP alone: it still reads.
 */
static int
client_peer_gone(struct client *c)
{
	struct pollfd	 pfd;

	pfd.fd = bufferevent_getfd(c->bev);
	pfd.events = POLLRDHUP;
	return (poll(&pfd, 1, 0) == 1 &&
	    (pfd.revents & (POLLHUP | POLLERR)) != 0);
}

/*
 * While a client is not read from, its hang-up cannot come as an EOF,
 * and its queued commands would outlive it; so its socket is polled
 * every CLIENT_HUP_CHECK seconds.  Not by EV_CLOSED: that fires without
 * end on a peer that only shut down its writing, and never on one that
 * reset the connection with our output unread, whose error then wakes
 * the loop without end (as monitor_hup_cb found for QEMU).
 */
static void
client_watch(struct client *c)
{
	struct timeval	 tv = { CLIENT_HUP_CHECK, 0 };

	if ((c->state == CLIENT_CAPS || c->state == CLIENT_READY) &&
	    (c->input_paused || c->eof)) {
		if (!evtimer_pending(c->hup, NULL))
			evtimer_add(c->hup, &tv);
	} else
		evtimer_del(c->hup);
}

/*
 * Whether the client has gone, though no EOF said so: if it has, it is
 * closed now, and its unsent commands leave the queue.  Asked while it
 * is not read from, and before a command of its that had to wait is
 * sent, since it may have hung up meanwhile.
 */
int
client_gone(struct client *c)
{
	if (c->state == CLIENT_CLOSING)
		return (1);
	if (!client_peer_gone(c))
		return (0);
	/* nothing more can reach it */
	c->noflush = 1;
	client_close(c, "client hung up");
	return (1);
}

/* Look for a hang-up of a client that is not read from. */
static void
client_hup_cb(int fd, short events, void *arg)
{
	struct client	*c = arg;

	if (!client_gone(c))
		client_watch(c);
}

static void
client_event_cb(struct bufferevent *bev, short events, void *arg)
{
	struct client	*c = arg;

	if (c->state == CLIENT_CLOSING) {
		/* the peer is gone: nothing more can be flushed */
		event_active(c->reap, EV_TIMEOUT, 1);
		return;
	}
	if ((events & BEV_EVENT_EOF) && !client_peer_gone(c)) {
		/* no more commands: what it sent is still answered */
		client_log(c, LOG_DEBUG, "end of input");
		c->eof = 1;
		client_watch(c);
		event_active(c->resume, EV_TIMEOUT, 1);
		return;
	}
	if (events & BEV_EVENT_EOF)
		client_close(c, "client disconnected");
	else if (events & BEV_EVENT_ERROR)
		client_close(c, "%s", strerror(EVUTIL_SOCKET_ERROR()));
	event_active(c->reap, EV_TIMEOUT, 1);
}

/*
 * qmp_capabilities, answered by the proxy as QEMU answers it, before and
 * after negotiation.  Only oob can be enabled, and only when the proxy
 * negotiated it upstream.
 */
static void
client_negotiate(struct client *c, const struct qmp_msg *msg)
{
	struct evbuffer		*out = client_local_out(c);
	const char		*id;
	size_t			 idlen;
	char			 err[256];
	int			 oob;

	reply_id(msg, &id, &idlen);
	if (reply_check_caps(msg, &oob, err, sizeof(err)) == -1) {
		client_error(c, out, id, idlen, "GenericError", "%s", err);
		return;
	}
	/* QEMU checks the arguments first, then whether it is too late */
	if (c->state == CLIENT_READY) {
		client_error(c, out, id, idlen, "CommandNotFound",
		    "Capabilities negotiation is already complete, "
		    "command ignored");
		return;
	}
	if (oob && !c->vm->mon->oob) {
		client_error(c, out, id, idlen, "GenericError",
		    "Capability 'oob' not available");
		return;
	}
	c->oob = oob;
	client_return(c, out, id, idlen);
	client_set_state(c, CLIENT_READY);
	if (c->vm->reads_paused)
		client_reads_paused(c, 1);
	client_log(c, LOG_DEBUG, "negotiated%s", oob ? " oob" : "");
}

/* One whole message from the client. */
static void
client_handle(struct client *c, const struct qmp_msg *msg)
{
	const char	*id;
	size_t		 idlen;
	char		 desc[512];
	int		 caps;

	reply_id(msg, &id, &idlen);
	if (reply_check_command(msg, c->oob, desc, sizeof(desc)) == -1) {
		/* QEMU has no id to give back when there is no object */
		if (msg->kind == QMP_KIND_NONOBJECT)
			id = NULL;
		client_error(c, client_local_out(c), id, idlen, "GenericError",
		    "%s", desc);
		return;
	}
	caps = msg->m_execute != -1 &&
	    strcmp(msg->name, "qmp_capabilities") == 0;
	if (caps)
		client_negotiate(c, msg);
	else if (c->state == CLIENT_CAPS)
		client_error(c, client_local_out(c), id, idlen,
		    "CommandNotFound", "Expecting capabilities negotiation "
		    "with 'qmp_capabilities'");
	else if (!acl_allows(&c->listener->conf->acl, msg->name)) {
		client_log(c, LOG_INFO, "%s refused by the access list of %s",
		    msg->name, c->listener->conf->path);
		/* out of band, QEMU answers at once, past in-band input */
		client_error(c, msg->m_exec_oob != -1 ?
		    bufferevent_get_output(c->bev) : client_local_out(c), id,
		    idlen, "CommandNotFound", "The command %s has been "
		    "disabled for this instance", msg->name);
	} else
		cmd_submit(c, msg);
}

/*
 * The client's input has ended and every whole message in it is taken:
 * it is closed once each is answered and the replies are written.  What
 * is left is part of a message that will never be finished.
 */
static void
client_end(struct client *c)
{
	if (c->ncmds == 0 &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		client_close(c, "end of input, every command answered");
}

/*
 * Take whole messages while the client may have more commands going and
 * reads what it is sent.  A client that does not read its replies is
 * not read from either: else it could pile them up without end, as
 * each answered command frees its place in the pipeline.  Input that
 * stays in the buffer is read when a command is answered or the output
 * has drained to half of max_client_output.
 */
static void
client_read(struct client *c)
{
	struct vm	*vm = c->vm;
	struct evbuffer	*in = bufferevent_get_input(c->bev);
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	struct qmp_msg	 msg;

	while (c->state == CLIENT_CAPS || c->state == CLIENT_READY) {
		if (c->ncmds >= vm->conf.max_client_pipeline ||
		    evbuffer_get_length(out) >= vm->conf.max_client_output) {
			if (!c->input_paused &&
			    evbuffer_get_length(out) >=
			    vm->conf.max_client_output)
				client_log(c, LOG_DEBUG,
				    "%zu bytes unread by it: not reading "
				    "from it",
				    evbuffer_get_length(out));
			c->input_paused = 1;
			bufferevent_disable(c->bev, EV_READ);
			client_watch(c);
			return;
		}
		switch (qmp_reader_next(c->reader, in, &msg)) {
		case QMP_NEED_MORE:
			if (c->eof)
				client_end(c);
			return;
		case QMP_MESSAGE:
			trace_message(vm, TRACE_CLIENT_IN, c, msg.buf, msg.len,
			    NULL);
			client_handle(c, &msg);
			qmp_msg_clear(&msg);
			break;
		case QMP_ERR_JSON:
		case QMP_ERR_DEPTH:
			trace_message(vm, TRACE_CLIENT_IN, c, NULL, 0,
			    qmp_reader_error(c->reader));
			/* QEMU's own words; the reader goes on as QEMU does */
			client_error(c, client_local_out(c), NULL, 0,
			    "GenericError", "%s", qmp_reader_error(c->reader));
			break;
		case QMP_ERR_SIZE:
			trace_message(vm, TRACE_CLIENT_IN, c, NULL, 0,
			    "message larger than max_client_message");
			client_error(c, bufferevent_get_output(c->bev), NULL, 0,
			    "GenericError", "qmpmux: message larger than "
			    "max_client_message (%zu bytes)",
			    vm->conf.max_client_message);
			client_close(c, "message larger than %zu bytes",
			    vm->conf.max_client_message);
			return;
		}
	}
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	client_read(arg);
}

static void
client_resume_cb(int fd, short events, void *arg)
{
	client_read(arg);
}

/*
 * Where a reply the proxy makes itself goes: straight out, or held
 * behind the client's in-band commands not yet answered, as QEMU would
 * answer it after them.
 */
struct evbuffer *
client_local_out(struct client *c)
{
	if (TAILQ_EMPTY(&c->order))
		return (bufferevent_get_output(c->bev));
	return (cmd_hold(c));
}

/* One of the client's commands is answered: read again if it waited. */
void
client_command_done(struct client *c)
{
	if (c->ncmds > 0)
		c->ncmds--;
	client_read_again(c);
}

/*
 * Read from a client again once both its bounds allow it; or, its input
 * having ended, take what is buffered and see whether it is done.
 */
static void
client_read_again(struct client *c)
{
	struct vm	*vm = c->vm;

	/* a closing client is never read again */
	if (c->state != CLIENT_CAPS && c->state != CLIENT_READY)
		return;
	/* its input has ended: take what is buffered, or close it */
	if (c->eof) {
		event_active(c->resume, EV_TIMEOUT, 1);
		return;
	}
	if (!c->input_paused || c->ncmds >= vm->conf.max_client_pipeline ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) >
	    vm->conf.max_client_output / 2)
		return;
	c->input_paused = 0;
	bufferevent_enable(c->bev, EV_READ);
	client_watch(c);
	/* from the loop: this may run inside a write callback */
	event_active(c->resume, EV_TIMEOUT, 1);
}

/*
 * A reply from QEMU for this client: QEMU's bytes with the proxy's id
 * replaced by the client's own (as QEMU writes it), or removed when the
 * client sent none.  A reply QEMU sent without an id goes as it is.
 */
void
client_reply(struct client *c, const struct qmp_msg *msg,
    const char *id, size_t idlen)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	struct evbuffer	*traced = NULL;
	struct qmp_span	 span;

	/* traced, it is made apart first, to be seen whole */
	if (TRACE_ON(c->vm)) {
		if ((traced = evbuffer_new()) == NULL)
			fatalx("%s: out of memory", __func__);
		out = traced;
	}
	if (msg->m_id == -1)
		span.off = msg->len, span.len = 0;
	else if (id != NULL)
		span = qmp_msg_id(msg);
	else
		span = qmp_msg_cut_member(msg, msg->m_id);
	/*
	 * Untraced, to a client that is not closing (whose write callback
	 * must see its output drain), the reply goes at once if nothing
	 * waits before it, in one sendmsg.
	 */
	if (traced == NULL && c->state != CLIENT_CLOSING) {
		struct iovec	 iov[4];

		iov[0].iov_base = msg->buf;
		iov[0].iov_len = span.off;
		iov[1].iov_base = (void *)(uintptr_t)id;
		iov[1].iov_len = msg->m_id != -1 && id != NULL ? idlen : 0;
		iov[2].iov_base = msg->buf + span.off + span.len;
		iov[2].iov_len = msg->len - span.off - span.len;
		iov[3].iov_base = (void *)(uintptr_t)"\r\n";
		iov[3].iov_len = 2;
		util_bev_writev(c->bev, iov, 4);
		return;
	}
	evbuffer_add(out, msg->buf, span.off);
	if (msg->m_id != -1 && id != NULL)
		evbuffer_add(out, id, idlen);
	evbuffer_add(out, msg->buf + span.off + span.len,
	    msg->len - span.off - span.len);
	evbuffer_add(out, "\r\n", 2);
	if (traced != NULL) {
		trace_message(c->vm, TRACE_CLIENT_OUT, c,
		    (const char *)evbuffer_pullup(traced, -1),
		    evbuffer_get_length(traced), NULL);
		evbuffer_add_buffer(bufferevent_get_output(c->bev), traced);
		evbuffer_free(traced);
	}
}

/* Queue a shared event for the client, without copying it. */
void
client_event(struct client *c, const void *buf, size_t len,
    void (*cleanup)(const void *, size_t, void *), void *arg)
{
	if (evbuffer_add_reference(bufferevent_get_output(c->bev), buf, len,
	    cleanup, arg) == -1)
		fatalx("%s: evbuffer_add_reference failed", __func__);
}
