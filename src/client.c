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
 *
 * Every byte for a client goes into its output in one place, client_put
 * (events by reference, in client_event), where a reply is traced and
 * each byte counted.  A reply the proxy makes itself that must wait for
 * the client's earlier commands is held here, in the client's order
 * (c->held), and goes when they are answered (client_command_done).
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
#include <event2/event.h>

#include "qmpmux.h"

#define CLIENT_HUP_CHECK	1	/* seconds, while not read from */

/* client_put's flags */
#define CLIENT_MESSAGE	0x1	/* a reply: the trace sees it */
#define CLIENT_FLUSH	0x2	/* then its socket takes what it can */

static const char *client_state_names[] = {
	[CLIENT_WAITING] = "waiting",
	[CLIENT_CAPS] = "capabilities",
	[CLIENT_READY] = "ready",
	[CLIENT_CLOSING] = "closing",
};

static struct client *client_new(struct listener *, int, int, pid_t, uid_t,
		    struct spool *, int);
static void	client_store(const struct client *);
static void	client_unstore(struct client *, enum client_state);
static void	client_ready(struct client *, int);
static void	client_timer_cb(int, short, void *);
static void	client_resume_cb(int, short, void *);
static void	client_reap_cb(int, short, void *);
static void	client_hup_cb(int, short, void *);
static void	client_read_again(struct client *);
static void	client_read_some(struct client *);
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
 * A reply of the proxy's own, as reply_error makes it (class set, with
 * its description) or reply_return (class NULL), to be made where it
 * goes.
 */
#define CLIENT_DESC_MAX	512	/* an error's description, on the stack */

struct client_made {
	const char	*id;
	size_t		 idlen;
	const char	*class;
	const char	*desc;
	const char	*val;		/* a return's value; NULL: {} */
	size_t		 vallen;
};

/* Make the reply m describes at the end of b. */
static void
client_make(struct evbuffer *b, const struct client_made *m)
{
	if (m->class == NULL && m->val != NULL)
		reply_return_value(b, m->val, m->vallen, m->id, m->idlen);
	else if (m->class == NULL)
		reply_return(b, m->id, m->idlen);
	else
		reply_error(b, m->id, m->idlen, m->class, "%s", m->desc);
}

/*
 * The one way bytes reach a client's output, but events, which go by
 * reference (client_event): QEMU's replies, the proxy's own (made, when
 * made is given), the greeting, and what a restart carried.  A reply
 * (CLIENT_MESSAGE) is seen by a trace of the VM here, as it goes, so
 * that the trace shows the client's replies in the order the client
 * gets them; each byte is counted here, in bytes_out.  iov[0, n) goes
 * into the client's out ring (client-out.c), committed with the message
 * it answers and sent from the loop's next turn of active events.
 * CLIENT_FLUSH gives the socket what it takes of the output now, for
 * when the loop has stopped.
 */
static void
client_put(struct client *c, int flags, const struct iovec *iov, int n,
    const struct client_made *made)
{
	struct evbuffer	*b = NULL;
	struct iovec	 one;
	int		 i;

	if (made != NULL) {
		if ((b = evbuffer_new()) == NULL)
			fatal("%s", __func__);
		client_make(b, made);
		one.iov_len = evbuffer_get_length(b);
		one.iov_base = evbuffer_pullup(b, -1);
		iov = &one;
		n = 1;
	}
	if (n > 0 && (flags & CLIENT_MESSAGE) && TRACE_ON(c->vm)) {
		one = iov[0];
		if (n > 1) {
			/* seen whole: its pieces are put together for it */
			if ((b = evbuffer_new()) == NULL)
				fatal("%s", __func__);
			for (i = 0; i < n; i++)
				evbuffer_add(b, iov[i].iov_base,
				    iov[i].iov_len);
			one.iov_len = evbuffer_get_length(b);
			one.iov_base = evbuffer_pullup(b, -1);
		}
		trace_message(c->vm, TRACE_CLIENT_OUT, c,
		    (const char *)one.iov_base, one.iov_len, NULL);
	}
	for (i = 0; i < n; i++)
		c->bytes_out += iov[i].iov_len;
	client_out_put(c, iov, n);
	if (b != NULL)
		evbuffer_free(b);
	if (flags & CLIENT_FLUSH)
		client_out_now(c);
}

/*
 * The loop has stopped (vm_free): the client's socket takes what it can
 * of its output now, through client_put.
 */
void
client_flush(struct client *c)
{
	client_put(c, CLIENT_FLUSH, NULL, 0, NULL);
}

/*
 * A reply of the proxy's, made in b, which is taken, is held behind the
 * client's commands not yet answered, as QEMU would answer it after
 * them.  It counts in the client's pipeline, so a client cannot pile
 * them up.
 */
static void
client_hold(struct client *c, struct evbuffer *b)
{
	struct client_held	*h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		fatal("%s", __func__);
	h->buf = b;
	h->after = TAILQ_LAST(&c->order, client_order);
	/* the message it answers stays in the ring until it goes */
	if ((h->span = c->span_cur) != NULL)
		h->span->owners++;
	TAILQ_INSERT_TAIL(&c->held, h, entry);
	c->ncmds++;
}

/*
 * A reply of the proxy's goes out now, or is held if it must wait for
 * the client's commands before it.
 */
static void
client_made(struct client *c, enum client_when when,
    const struct client_made *m)
{
	struct evbuffer	*b;

	if (when == CLIENT_NOW || TAILQ_EMPTY(&c->order)) {
		client_put(c, CLIENT_MESSAGE, NULL, 0, m);
		return;
	}
	if ((b = evbuffer_new()) == NULL)
		fatal("%s", __func__);
	client_make(b, m);
	client_hold(c, b);
}

/* A held reply goes out: its turn has come. */
static void
client_release(struct client *c, struct client_held *h)
{
	struct iovec	 iov;

	iov.iov_len = evbuffer_get_length(h->buf);
	iov.iov_base = evbuffer_pullup(h->buf, -1);
	client_put(c, CLIENT_MESSAGE, &iov, 1, NULL);
	client_in_release(c, h->span);
	evbuffer_free(h->buf);
	free(h);
}

/*
 * A restart (state-restore.c): a reply held by the process before,
 * behind the client's commands put back so far; at once if there is
 * none.
 */
void
client_adopt_held(struct client *c, const void *buf, size_t len)
{
	struct evbuffer	*b;
	struct iovec	 iov;

	if (TAILQ_EMPTY(&c->order)) {
		iov.iov_base = (void *)(uintptr_t)buf;
		iov.iov_len = len;
		client_put(c, CLIENT_MESSAGE, &iov, 1, NULL);
		return;
	}
	if ((b = evbuffer_new()) == NULL || evbuffer_add(b, buf, len) == -1)
		fatal("%s", __func__);
	client_hold(c, b);
}

/* The client has gone: its held replies with it. */
static void
client_drop_held(struct client *c)
{
	struct client_held	*h;

	while ((h = TAILQ_FIRST(&c->held)) != NULL) {
		TAILQ_REMOVE(&c->held, h, entry);
		evbuffer_free(h->buf);
		free(h);
	}
}

/* An error of the proxy's own for c, with its id. */
void
client_error(struct client *c, enum client_when when, const char *id,
    size_t idlen, const char *class, const char *fmt, ...)
{
	struct client_made	 m;
	char			 buf[CLIENT_DESC_MAX], *desc = buf;
	va_list			 ap;
	int			 n;

	/*
	 * On the stack, as nearly every description fits: a flood of
	 * refusals then costs no allocation (and a sanitizer's quarantine
	 * no memory); a longer one is made whole on the heap.
	 */
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("%s: vsnprintf failed", __func__);
	if ((size_t)n >= sizeof(buf)) {
		va_start(ap, fmt);
		if (vasprintf(&desc, fmt, ap) == -1)
			fatal("%s", __func__);
		va_end(ap);
	}
	m.id = id;
	m.idlen = idlen;
	m.class = class;
	m.desc = desc;
	client_made(c, when, &m);
	if (desc != buf)
		free(desc);
}

/* An empty return of the proxy's own for c, with its id. */
void
client_return(struct client *c, enum client_when when, const char *id,
    size_t idlen)
{
	struct client_made	 m;

	memset(&m, 0, sizeof(m));
	m.id = id;
	m.idlen = idlen;
	client_made(c, when, &m);
}

/* A return of the proxy's own with a value (lock.c), with c's id. */
void
client_return_value(struct client *c, enum client_when when,
    const char *id, size_t idlen, const char *val, size_t len)
{
	struct client_made	 m;

	memset(&m, 0, sizeof(m));
	m.id = id;
	m.idlen = idlen;
	m.val = val;
	m.vallen = len;
	client_made(c, when, &m);
}

/*
 * An event of the proxy's own (lock.c) for c, whole, line ending and
 * all: it goes as a reply goes, seen by a trace.
 */
void
client_notify(struct client *c, const char *buf, size_t len)
{
	struct iovec	 iov;

	if (c->state != CLIENT_READY)
		return;
	/*
	 * Not read from QEMU, so nothing pauses for them: past what its
	 * output may hold they are dropped, or a client that asked for
	 * them once and reads no more would grow without bound.
	 */
	if (client_out_len(c) >= c->vm->conf.max_client_output) {
		if (!c->notify_dropped)
			client_log(c, LOG_INFO, "lock events dropped: it does "
			    "not read its output (max_client_output)");
		c->notify_dropped = 1;
		return;
	}
	c->notify_dropped = 0;
	iov.iov_base = (void *)(uintptr_t)buf;
	iov.iov_len = len;
	client_put(c, CLIENT_MESSAGE, &iov, 1, NULL);
}

/*
 * Change state, logging the transition.  The client's name in the fd
 * store carries its state (state-store.c), so its socket is stored
 * again: the old name is taken out first, then the socket stored under
 * the new one.  Not the other way round: systemd keeps one copy of an
 * open file, and drops a second FDSTORE=1 of it whatever its name
 * ("Suppressing duplicate fd"), so the removal after it would leave the
 * socket in no name at all.  A crash between the two, or while the new
 * name's datagram waits for the service manager behind the old one's,
 * loses the client (qmpmuxd(8), CAVEATS).  When both still wait, the
 * client is taken over in its state before: a negotiation so lost is
 * made good when the client shows it (client_recovered_ready).
 */
static void
client_set_state(struct client *c, enum client_state state)
{
	enum client_state	 was = c->state;

	client_log(c, LOG_DEBUG, "%s -> %s", client_state_names[c->state],
	    client_state_names[state]);
	client_unstore(c, was);
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
		vm_tell(c->vm, VM_CLIENT, c, c->fd);
}

/*
 * Tell the layer above that the client's socket goes from the name of
 * state was, which its name is made of.
 */
static void
client_unstore(struct client *c, enum client_state was)
{
	enum client_state	 now = c->state;

	c->state = was;
	vm_tell(c->vm, VM_CLIENT, c, -1);
	c->state = now;
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

	if ((c = client_new(l, fd, ++vm->next_client_id, pid, uid, NULL,
	    0)) == NULL) {
		vm->stats.clients_refused++;
		vm_log(vm, LOG_WARNING, "refused a client of uid %ld (pid %ld) "
		    "on %s: no spool for its input: %s", (long)uid, (long)pid,
		    l->conf->path, strerror(errno));
		close(fd);
		return;
	}
	client_store(c);
	vm->stats.clients++;
	client_log(c, LOG_INFO, "connected on %s (pid %ld, uid %ld)",
	    l->conf->path, (long)c->pid, (long)c->uid);

	/* no input is read before the greeting, as QEMU would not accept */
	if (monitor_ready(vm->mon))
		client_greet(c);
	else {
		c->state = CLIENT_WAITING;
		client_arm(c, vm->conf.greeting_timeout);
	}
}

/*
 * A client of l on the connected socket fd, which it owns; not greeted.
 * Its input goes through sp, whose ring is read again if reread (after
 * a crash), or a new spool; NULL (errno set, fd not taken) if there is
 * none.
 */
static struct client *
client_new(struct listener *l, int fd, int id, pid_t pid, uid_t uid,
    struct spool *sp, int reread)
{
	struct vm	*vm = l->vm;
	struct client	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("%s", __func__);
	c->vm = vm;
	c->listener = l;
	listener_ref(l);
	/* its name in the fd store outlives the listener, freed first */
	c->listener_hash = util_hash(l->conf->path);
	c->id = id;
	TAILQ_INIT(&c->order);
	TAILQ_INIT(&c->held);
	TAILQ_INIT(&c->queued);
	TAILQ_INIT(&c->events);
	c->pid = pid;
	c->uid = uid;
	if (client_in_init(c, fd, sp, reread) == -1) {
		listener_unref(l);
		free(c);
		return (NULL);
	}
	client_out_init(c, fd);
	c->reader = qmp_reader_new(vm->conf.max_client_message,
	    vm->conf.max_json_depth, QMP_READ_STRICT);
	c->timer = evtimer_new(vm->base, client_timer_cb, c);
	c->resume = event_new(vm->base, -1, 0, client_resume_cb, c);
	c->reap = event_new(vm->base, -1, 0, client_reap_cb, c);
	c->hup = evtimer_new(vm->base, client_hup_cb, c);
	if (c->reader == NULL || c->timer == NULL ||
	    c->resume == NULL || c->reap == NULL || c->hup == NULL)
		fatalx("%s: out of memory", __func__);
	TAILQ_INSERT_TAIL(&vm->clients, c, entry);
	vm_tell(vm, VM_SPOOL, c, spool_fd(c->spool));
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
    pid_t pid, uid_t uid, int oob, struct spool *sp, int reread,
    const void *in, size_t inlen, const void *out, size_t outlen)
{
	struct client	*c;
	struct iovec	 iov;

	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1)
		log_debug("%s: fcntl failed", __func__);
	if ((c = client_new(l, fd, id, pid, uid, sp, reread)) == NULL) {
		log_warn("vm %s: client %d: no spool for its input",
		    l->vm->name, id);
		close(fd);
		return (NULL);
	}
	c->oob = oob;
	c->state = state;
	client_store(c);
	/* what crashed the process twice is gone; it is told, as QEMU would */
	if (c->in_dropped > 0 && (state == CLIENT_CAPS ||
	    state == CLIENT_READY))
		client_error(c, CLIENT_IN_ORDER, NULL, 0, "GenericError",
		    "qmpmux: what you sent from here crashed qmpmuxd twice: "
		    "%zu bytes were dropped", c->in_dropped);
	if (inlen > 0 && client_in_put(c, in, inlen) == -1) {
		client_close(c, "the %zu bytes it had sent and were not read "
		    "do not fit its ring", inlen);
		return (c);
	}
	if (outlen > 0) {
		iov.iov_base = (void *)(uintptr_t)out;
		iov.iov_len = outlen;
		client_put(c, 0, &iov, 1, NULL);
	}
	if (state == CLIENT_WAITING) {
		client_arm(c, c->vm->conf.greeting_timeout);
		return (c);
	}
	client_in_read(c, 1);
	event_active(c->resume, EV_TIMEOUT, 1);
	return (c);
}

/* Send QEMU's greeting and start reading. */
void
client_greet(struct client *c)
{
	struct monitor	*m = c->vm->mon;
	struct iovec	 iov;

	evtimer_del(c->timer);
	iov.iov_base = m->greeting;
	iov.iov_len = m->greeting_len;
	client_put(c, 0, &iov, 1, NULL);
	/* in the ring before its name in the store says it was greeted */
	client_out_commit(c);
	client_set_state(c, CLIENT_CAPS);
	client_in_read(c, 1);
	if (evbuffer_get_length(c->in) > 0)
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
	client_drop_held(c);
	client_set_state(c, CLIENT_CLOSING);
	client_watch(c);
	event_del(c->resume);
	client_in_read(c, 0);
	if (c->noflush || client_out_len(c) == 0)
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
	client_drop_held(c);
	client_unstore(c, c->state);
	vm_tell(c->vm, VM_SPOOL, c, -1);
	TAILQ_REMOVE(&c->vm->clients, c, entry);
	vm_client_gone(c);
	client_out_free(c);
	client_in_free(c);
	close(c->fd);
	qmp_reader_free(c->reader);
	event_free(c->timer);
	event_free(c->resume);
	event_free(c->reap);
	event_free(c->hup);
	listener_unref(c->listener);
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
		    client_out_len(c));
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
 * Output has gone to the client (client-out.c), or err (an errno) says
 * why it cannot.  Once the output is down to half of max_client_output
 * the client is read again; a closing one is freed once it is empty.
 */
void
client_written(struct client *c, int err)
{
	if (err != 0 && c->state == CLIENT_CLOSING) {
		/* the peer is gone: nothing more can be flushed */
		event_active(c->reap, EV_TIMEOUT, 1);
		return;
	}
	if (err == EPIPE || err == ECONNRESET) {
		c->noflush = 1;
		client_close(c, "client disconnected");
	} else if (err != 0) {
		c->noflush = 1;
		client_close(c, "%s", strerror(err));
	} else if (c->state == CLIENT_CLOSING && client_out_len(c) == 0)
		event_active(c->reap, EV_TIMEOUT, 1);
	else if (client_out_len(c) <= c->vm->conf.max_client_output / 2)
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

	pfd.fd = c->fd;
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

/*
 * The client's input has ended (client-in.c).  End of input is not a
 * hang-up: what it sent is still answered, unless it has gone both
 * ways.
 */
void
client_input_ended(struct client *c)
{
	if (c->state == CLIENT_CLOSING)
		return;
	if (client_peer_gone(c)) {
		client_close(c, "client disconnected");
		return;
	}
	client_log(c, LOG_DEBUG, "end of input");
	c->eof = 1;
	client_watch(c);
	event_active(c->resume, EV_TIMEOUT, 1);
}

/*
 * qmp_capabilities, answered by the proxy as QEMU answers it, before and
 * after negotiation.  Only oob can be enabled, and only when the proxy
 * negotiated it upstream.
 */
static void
client_negotiate(struct client *c, const struct qmp_msg *msg)
{
	const char		*id;
	size_t			 idlen;
	char			 err[256];
	int			 oob;

	reply_id(msg, &id, &idlen);
	if (reply_check_caps(msg, &oob, err, sizeof(err)) == -1) {
		client_error(c, CLIENT_IN_ORDER, id, idlen, "GenericError",
		    "%s", err);
		return;
	}
	/* QEMU checks the arguments first, then whether it is too late */
	if (c->state == CLIENT_READY) {
		client_error(c, CLIENT_IN_ORDER, id, idlen, "CommandNotFound",
		    "Capabilities negotiation is already complete, "
		    "command ignored");
		return;
	}
	if (oob && !c->vm->mon->oob) {
		client_error(c, CLIENT_IN_ORDER, id, idlen, "GenericError",
		    "Capability 'oob' not available");
		return;
	}
	client_return(c, CLIENT_IN_ORDER, id, idlen);
	client_ready(c, oob);
	client_log(c, LOG_DEBUG, "negotiated%s", oob ? " oob" : "");
}

/* Negotiated: ready for commands and events, with oob or not. */
static void
client_ready(struct client *c, int oob)
{
	c->oob = oob;
	client_set_state(c, CLIENT_READY);
	if (c->vm->reads_paused)
		client_reads_paused(c, 1);
}

/*
 * A client taken over after a crash in capabilities negotiation may
 * have negotiated before it: its socket is stored under its ready name
 * once the service manager reads the rename (client_set_state), and a
 * rename that waited for that died with the process.  When it shows it
 * had (a command of its own, or QEMU's reply to one the dead process
 * sent for it, cmd_orphan) it is ready from then on, with oob if what
 * it sent came out of band and the upstream has it; until then it has
 * no events.
 */
void
client_recovered_ready(struct client *c, int oob, const char *why)
{
	client_log(c, LOG_INFO, "negotiated before the crash: %s", why);
	client_ready(c, oob && c->vm->mon->oob);
}

/*
 * If msg shows that c, taken over after a crash in capabilities
 * negotiation, had negotiated before it, c is ready from now on
 * (client_recovered_ready): a well-formed command other than
 * qmp_capabilities, which a client sends once its negotiation is
 * answered.  A client that had not gets no error for it.
 */
static void
client_recovered_command(struct client *c, const struct qmp_msg *msg)
{
	char	 desc[512];

	if (c->state != CLIENT_CAPS || !c->recovered ||
	    reply_check_command(msg, c->vm->mon->oob, desc, sizeof(desc)) ==
	    -1 || strcmp(msg->name, "qmp_capabilities") == 0)
		return;
	snprintf(desc, sizeof(desc), "it sent %s", msg->name);
	client_recovered_ready(c, msg->m_exec_oob != -1, desc);
}

/*
 * QMPMUX_TEST_ABORT names a command that makes qmpmuxd abort: the tests'
 * message that crashes it, for the take-over after it (client-in.c).
 * Read once; unset, as it always is outside the tests, it costs a test.
 */
static void
client_test_abort(const struct qmp_msg *msg)
{
	static const char	*name;
	static int		 read;

	if (!read) {
		name = getenv("QMPMUX_TEST_ABORT");
		read = 1;
	}
	if (name != NULL && msg->m_execute != -1 && strcmp(msg->name,
	    name) == 0) {
		log_warnx("QMPMUX_TEST_ABORT: %s: aborting", name);
		abort();
	}
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
	client_test_abort(msg);
	client_recovered_command(c, msg);
	if (reply_check_command(msg, c->oob, desc, sizeof(desc)) == -1) {
		/* QEMU has no id to give back when there is no object */
		if (msg->kind == QMP_KIND_NONOBJECT)
			id = NULL;
		client_error(c, CLIENT_IN_ORDER, id, idlen, "GenericError",
		    "%s", desc);
		return;
	}
	caps = msg->m_execute != -1 &&
	    strcmp(msg->name, "qmp_capabilities") == 0;
	if (caps)
		client_negotiate(c, msg);
	else if (c->state == CLIENT_CAPS)
		client_error(c, CLIENT_IN_ORDER, id, idlen,
		    "CommandNotFound", "Expecting capabilities negotiation "
		    "with 'qmp_capabilities'");
	else if (!acl_allows(&c->listener->conf->acl, msg->name)) {
		client_log(c, LOG_INFO, "%s refused by the access list of %s",
		    msg->name, c->listener->conf->path);
		/* out of band, QEMU answers at once, past in-band input */
		client_error(c, msg->m_exec_oob != -1 ? CLIENT_NOW :
		    CLIENT_IN_ORDER, id, idlen, "CommandNotFound",
		    "The command %s has been disabled for this instance",
		    msg->name);
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
	if (c->ncmds == 0 && client_out_len(c) == 0)
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
void
client_read(struct client *c)
{
	client_read_some(c);
	/* no message of its is being read: a crash now is not its */
	client_in_reading(c, 0);
}

static void
client_read_some(struct client *c)
{
	struct vm		*vm = c->vm;
	struct evbuffer		*in = c->in;
	struct qmp_msg		 msg;
	struct client_span	*span;

	while (c->state == CLIENT_CAPS || c->state == CLIENT_READY) {
		if (c->ncmds >= vm->conf.max_client_pipeline ||
		    client_out_len(c) >= vm->conf.max_client_output) {
			if (!c->input_paused &&
			    client_out_len(c) >= vm->conf.max_client_output)
				client_log(c, LOG_DEBUG,
				    "%zu bytes unread by it: not reading "
				    "from it", client_out_len(c));
			c->input_paused = 1;
			client_in_read(c, 0);
			client_watch(c);
			return;
		}
		/* where it starts, should it crash the process */
		client_in_reading(c, 1);
		switch (qmp_reader_next(c->reader, in, &msg)) {
		case QMP_NEED_MORE:
			if (qmp_reader_idle(c->reader))
				client_in_idle(c);
			if (c->eof)
				client_end(c);
			return;
		case QMP_MESSAGE:
			span = client_in_span(c);
			trace_message(vm, TRACE_CLIENT_IN, c, msg.buf, msg.len,
			    NULL);
			/* sent to QEMU before a crash: not sent again */
			if (span->end <= c->in_reread &&
			    cmd_flight_at(vm, c->id, span->at))
				client_log(c, LOG_INFO, "%s was sent to QEMU "
				    "before the crash", msg.name);
			else {
				c->span_cur = span;
				client_handle(c, &msg);
				c->span_cur = NULL;
			}
			client_in_release(c, span);
			qmp_msg_clear(&msg);
			break;
		case QMP_ERR_JSON:
		case QMP_ERR_DEPTH:
			span = client_in_span(c);
			trace_message(vm, TRACE_CLIENT_IN, c, NULL, 0,
			    qmp_reader_error(c->reader));
			/* QEMU's own words; the reader goes on as QEMU does */
			c->span_cur = span;
			client_error(c, CLIENT_IN_ORDER, NULL, 0,
			    "GenericError", "%s", qmp_reader_error(c->reader));
			c->span_cur = NULL;
			client_in_release(c, span);
			break;
		case QMP_ERR_SIZE:
			trace_message(vm, TRACE_CLIENT_IN, c, NULL, 0,
			    "message larger than max_client_message");
			client_error(c, CLIENT_NOW, NULL, 0,
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
client_resume_cb(int fd, short events, void *arg)
{
	client_read(arg);
}

/*
 * One of the client's commands is answered (cmd.c): it leaves the
 * client's order, the replies held for it and for none before it go
 * out, each freeing its place in the pipeline, and the client is read
 * again if it waited.
 */
void
client_command_done(struct client *c, struct cmd *cmd)
{
	struct cmd		*before;
	struct client_held	*h;

	before = TAILQ_PREV(cmd, client_order, order);
	/* a reply that waited for it waits for the one before it now */
	TAILQ_FOREACH(h, &c->held, entry) {
		if (h->after == cmd)
			h->after = before;
	}
	TAILQ_REMOVE(&c->order, cmd, order);
	if (c->ncmds > 0)
		c->ncmds--;
	while ((h = TAILQ_FIRST(&c->held)) != NULL && h->after == NULL) {
		TAILQ_REMOVE(&c->held, h, entry);
		client_release(c, h);
		if (c->ncmds > 0)
			c->ncmds--;
	}
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
	    client_out_len(c) > vm->conf.max_client_output / 2)
		return;
	c->input_paused = 0;
	client_in_read(c, 1);
	client_watch(c);
	/* from the loop: this may run inside a write callback */
	event_active(c->resume, EV_TIMEOUT, 1);
}

/*
 * A reply from QEMU for this client: QEMU's bytes with the proxy's id
 * replaced by the client's own (as QEMU writes it), or removed when the
 * client sent none.  A reply QEMU sent without an id goes as it is.
 * One QEMU gave to another command (cache.c) is held behind the
 * client's commands before it, as QEMU would have answered it after
 * them (CLIENT_IN_ORDER).
 */
void
client_reply(struct client *c, enum client_when when,
    const struct qmp_msg *msg, const char *id, size_t idlen)
{
	struct qmp_span	 span;
	struct iovec	 iov[4];
	struct evbuffer	*b;
	int		 i;

	if (msg->m_id == -1)
		span.off = msg->len, span.len = 0;
	else if (id != NULL)
		span = qmp_msg_id(msg);
	else
		span = qmp_msg_cut_member(msg, msg->m_id);
	iov[0].iov_base = msg->buf;
	iov[0].iov_len = span.off;
	iov[1].iov_base = (void *)(uintptr_t)id;
	iov[1].iov_len = msg->m_id != -1 && id != NULL ? idlen : 0;
	iov[2].iov_base = msg->buf + span.off + span.len;
	iov[2].iov_len = msg->len - span.off - span.len;
	iov[3].iov_base = (void *)(uintptr_t)"\r\n";
	iov[3].iov_len = 2;
	if (when == CLIENT_NOW || TAILQ_EMPTY(&c->order)) {
		client_put(c, CLIENT_MESSAGE, iov, 4, NULL);
		return;
	}
	if ((b = evbuffer_new()) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < 4; i++)
		evbuffer_add(b, iov[i].iov_base, iov[i].iov_len);
	client_hold(c, b);
}

/*
 * Queue a shared event for the client, without copying it: the other
 * way bytes reach a client, counted as client_put counts.
 */
void
client_event(struct client *c, const void *buf, size_t len,
    void (*cleanup)(const void *, size_t, void *), void *arg)
{
	client_out_ref(c, buf, len, cleanup, arg);
	c->bytes_out += len;
}
