/*
 * The upstream: the proxy's connection to QEMU's QMP monitor, reached in
 * one of three modes.  connect: QEMU listens, the proxy connects without
 * blocking and retries with capped exponential backoff.  listen: the
 * proxy listens and QEMU dials in (reconnect=N), so either can restart;
 * while one QEMU is connected another connection is refused, since
 * whoever holds the connection drives the VM.  fd: a socket already
 * connected to QEMU is handed over, and when it goes it cannot come
 * back: the VM is removed.  Once connected the modes are one: the
 * greeting is kept, oob negotiated when offered, and every message
 * handed to the vm.  One timer serves both the backoff and the
 * handshake, which never run at once.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"

#define MONITOR_HUP_CHECK	1	/* seconds, while reads are paused */
#define MONITOR_SOCKET_MODE	0600	/* listen mode: QEMU's user only */

static const char *monitor_state_names[] = {
	[MONITOR_BACKOFF] = "backoff",
	[MONITOR_CONNECTING] = "connecting",
	[MONITOR_LISTENING] = "listening",
	[MONITOR_GREETING] = "greeting",
	[MONITOR_NEGOTIATING] = "negotiating",
	[MONITOR_READY] = "ready",
	[MONITOR_CLOSED] = "closed",
};

static int	monitor_reach(struct monitor *);
static void	monitor_arm(struct monitor *, double);
static void	monitor_connect(struct monitor *);
static int	monitor_listen(struct monitor *);
static void	monitor_attach(struct monitor *, int);
static void	monitor_listen_on(struct monitor *, int);
static int	monitor_resync(struct monitor *, struct evbuffer *);
static void	monitor_gone(struct monitor *, const char *);
static int	monitor_close(struct monitor *, const char *, const char *);
static void	monitor_upstream_lost(struct monitor *, const char *);
static void	monitor_lost(struct monitor *, const char *, ...)
		    LOG_PRINTF(2, 3);
static void	monitor_accept_cb(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	monitor_accept(struct monitor *, int);
static void	monitor_accept_error_cb(struct evconnlistener *, void *);
static void	monitor_accept_retry_cb(int, short, void *);
static void	monitor_read(struct monitor *);
static void	monitor_read_cb(struct bufferevent *, void *);
static void	monitor_event_cb(struct bufferevent *, short, void *);
static void	monitor_timer_cb(int, short, void *);
static void	monitor_resume_cb(int, short, void *);
static void	monitor_bev_free_cb(int, short, void *);
static void	monitor_hup_cb(int, short, void *);

/* Return the printable name of a state. */
const char *
monitor_state_name(enum monitor_state state)
{
	return (monitor_state_names[state]);
}

/* Change state, logging the transition. */
static void
monitor_set_state(struct monitor *m, enum monitor_state state)
{
	vm_log(m->vm, LOG_DEBUG, "upstream %s -> %s",
	    monitor_state_names[m->state], monitor_state_names[state]);
	/* connected: the layer above keeps the connection */
	if (state == MONITOR_GREETING && m->bev != NULL)
		vm_tell(m->vm, VM_UPSTREAM, m, bufferevent_getfd(m->bev));
	if (state == MONITOR_GREETING)
		m->early = 0;
	m->state = state;
	util_now(&m->since);
}

/*
 * Make the upstream of a vm; monitor_start reaches QEMU.  In fd mode
 * the conf's fd is the monitor's from here on, so that it is closed
 * (once) even if the vm never starts.
 */
struct monitor *
monitor_new(struct vm *vm)
{
	struct monitor	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		fatal("%s", __func__);
	m->vm = vm;
	m->state = MONITOR_BACKOFF;
	util_now(&m->since);
	m->backoff = vm->conf.backoff_min;
	m->fd = vm->conf.upstream_fd;
	vm->conf.upstream_fd = -1;
	m->timer = evtimer_new(vm->base, monitor_timer_cb, m);
	m->resume = event_new(vm->base, -1, 0, monitor_resume_cb, m);
	m->accept_retry = evtimer_new(vm->base, monitor_accept_retry_cb, m);
	if (m->timer == NULL || m->resume == NULL || m->accept_retry == NULL)
		fatalx("%s: event_new failed", __func__);
	return (m);
}

/*
 * Let go of the connection.  Called from bufferevent callbacks, so the
 * bufferevent itself is freed later, from the loop.
 */
static void
monitor_drop(struct monitor *m)
{
	struct timeval	 zero = { 0, 0 };

	/* the connection, if any, is no longer kept */
	vm_tell(m->vm, VM_UPSTREAM, m, -1);
	if (m->bev != NULL) {
		bufferevent_disable(m->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(m->bev, NULL, NULL, NULL, NULL);
		if (event_base_once(m->vm->base, -1, EV_TIMEOUT,
		    monitor_bev_free_cb, m->bev, &zero) == -1)
			bufferevent_free(m->bev);
		m->bev = NULL;
	}
	qmp_reader_free(m->reader);
	m->reader = NULL;
	free(m->greeting);
	m->greeting = NULL;
	free(m->version);
	m->version = NULL;
	m->oob = 0;
	m->paused = m->draining = 0;
	if (m->hup != NULL)
		event_free(m->hup);
	m->hup = NULL;
	evtimer_del(m->timer);
	event_del(m->resume);
}

static void
monitor_bev_free_cb(int fd, short events, void *arg)
{
	bufferevent_free(arg);
}

/* Stop listening for QEMU, and remove the socket: listen mode. */
static void
monitor_unlisten(struct monitor *m)
{
	evtimer_del(m->accept_retry);
	if (m->evl == NULL)
		return;
	vm_tell(m->vm, VM_UPSTREAM_LISTEN, m, -1);
	evconnlistener_free(m->evl);
	m->evl = NULL;
	unlink(m->listen_path);
	vm_log(m->vm, LOG_INFO, "no longer listening for QEMU on %s",
	    m->listen_path);
	free(m->listen_path);
	m->listen_path = NULL;
}

/* Free the upstream; NULL is allowed.  Not called from its callbacks. */
void
monitor_free(struct monitor *m)
{
	if (m == NULL)
		return;
	if (m->bev != NULL)
		bufferevent_free(m->bev);
	m->bev = NULL;
	monitor_drop(m);
	monitor_unlisten(m);
	/* an fd handed over that no connection took */
	if (m->fd != -1)
		close(m->fd);
	m->fd = -1;
	event_free(m->timer);
	event_free(m->resume);
	event_free(m->accept_retry);
	free(m);
}

/*
 * Start reaching QEMU in the conf's mode, saying how in the log.  -1
 * (logged) if listen mode cannot make its socket: at start-up that is
 * the VM's failure, as a listener's is.
 */
static int
monitor_begin(struct monitor *m)
{
	struct vm	*vm = m->vm;

	if (vm->conf.upstream_mode == UPSTREAM_FD) {
		/* a new fd (a restart): the old one is done with */
		if (vm->conf.upstream_fd != -1) {
			if (m->fd != -1)
				close(m->fd);
			m->fd = vm->conf.upstream_fd;
			vm->conf.upstream_fd = -1;
		}
		snprintf(m->where, sizeof(m->where), "fd %d", m->fd);
		vm_log(vm, LOG_INFO, "upstream fd:%d", m->fd);
	} else {
		snprintf(m->where, sizeof(m->where), "%s", vm->conf.upstream);
		vm_log(vm, LOG_INFO, "upstream %s:%s",
		    conf_upstream_mode_name(vm->conf.upstream_mode),
		    vm->conf.upstream);
	}
	return (monitor_reach(m));
}

/* Reach QEMU for the first time; -1 (logged) if the VM cannot start. */
int
monitor_start(struct monitor *m)
{
	return (monitor_begin(m));
}

/*
 * Retry what failed after the backoff: connecting, or making the
 * socket of listen mode.
 */
static void
monitor_retry(struct monitor *m)
{
	struct vm	*vm = m->vm;

	monitor_set_state(m, MONITOR_BACKOFF);
	monitor_arm(m, m->backoff);
	m->backoff *= 2;
	if (m->backoff > vm->conf.backoff_max)
		m->backoff = vm->conf.backoff_max;
}

/*
 * The upstream changed (a reload, or a new fd handed over): let go of
 * the old connection, its clients closed as when QEMU goes, and of the
 * old socket of listen mode, then reach the new upstream now rather
 * than after a backoff.  Listen mode that cannot make its socket now
 * tries again after the backoff: a reload cannot fail half way.
 */
void
monitor_restart(struct monitor *m)
{
	const char	*reason = "the upstream changed";

	if (m->bev != NULL &&
	    monitor_close(m, reason, "reaching the new one")) {
		monitor_set_state(m, MONITOR_BACKOFF);
		monitor_upstream_lost(m, reason);
	}
	monitor_unlisten(m);
	evtimer_del(m->timer);
	m->backoff = m->vm->conf.backoff_min;
	if (monitor_begin(m) == -1)
		monitor_retry(m);
}

/*
 * The VM stops: QEMU is not reached again.  The socket of listen mode
 * goes now, as the listeners' do; a connection that is up stays until
 * the VM is freed, and QEMU's replies until then are dropped.
 */
void
monitor_stop(struct monitor *m)
{
	m->stopped = 1;
	monitor_unlisten(m);
	if (m->bev == NULL) {
		evtimer_del(m->timer);
		monitor_set_state(m, MONITOR_CLOSED);
	}
}

/* Whether commands can be sent and clients greeted. */
int
monitor_ready(struct monitor *m)
{
	return (m->state == MONITOR_READY);
}

/* Arm the timer for the given number of seconds. */
static void
monitor_arm(struct monitor *m, double seconds)
{
	struct timeval	 tv;

	if (seconds <= 0 || util_timeval(seconds, &tv) == -1) {
		evtimer_del(m->timer);
		return;
	}
	evtimer_add(m->timer, &tv);
}

/*
 * Reach QEMU as the mode says: connect, listen for it, or take the fd
 * handed over.  -1 (logged) only if listen mode cannot make its socket.
 */
static int
monitor_reach(struct monitor *m)
{
	switch (m->vm->conf.upstream_mode) {
	case UPSTREAM_CONNECT:
		monitor_connect(m);
		return (0);
	case UPSTREAM_LISTEN:
		return (monitor_listen(m));
	case UPSTREAM_FD:
		if (m->fd == -1) {
			monitor_lost(m, "no socket was handed over");
			return (0);
		}
		monitor_attach(m, m->fd);
		m->fd = -1;
		return (0);
	}
	return (0);
}

/*
 * Take a socket connected to QEMU (accepted, or handed over) and wait
 * for its greeting, within the handshake timeout.
 */
static void
monitor_attach(struct monitor *m, int fd)
{
	struct vm	*vm = m->vm;

	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1)
		vm_log(vm, LOG_DEBUG, "%s: fcntl failed", __func__);
	m->bev = bufferevent_socket_new(vm->base, fd, BEV_OPT_CLOSE_ON_FREE);
	m->reader = qmp_reader_new(vm->conf.max_upstream_message,
	    vm->conf.max_json_depth, 0);
	if (m->bev == NULL || m->reader == NULL)
		fatalx("%s: out of memory", __func__);
	bufferevent_setcb(m->bev, monitor_read_cb, NULL, monitor_event_cb, m);
	monitor_set_state(m, MONITOR_GREETING);
	monitor_arm(m, vm->conf.handshake_timeout);
	bufferevent_enable(m->bev, EV_READ | EV_WRITE);
}

/*
 * Listen mode: make the socket QEMU dials, as a listener's is made
 * (util_unix_listen: ready before its path appears, a stale socket
 * replaced, a live one left alone), mode 0600.  -1 (logged) if it
 * cannot be made.
 */
static int
monitor_listen(struct monitor *m)
{
	struct vm	*vm = m->vm;
	const char	*path = vm->conf.upstream;
	int		 fd;

	if ((fd = util_unix_listen(path, MONITOR_SOCKET_MODE)) == -1) {
		if (errno == EADDRINUSE)
			vm_log(vm, LOG_ERR, "cannot listen for QEMU on %s: "
			    "another process is listening on it", path);
		else
			vm_log(vm, LOG_ERR, "cannot listen for QEMU on %s: %s",
			    path, strerror(errno));
		return (-1);
	}
	monitor_listen_on(m, fd);
	monitor_set_state(m, MONITOR_LISTENING);
	return (0);
}

/* Accept QEMU's connections on listen mode's socket fd, now ours. */
static void
monitor_listen_on(struct monitor *m, int fd)
{
	vm_tell(m->vm, VM_UPSTREAM_LISTEN, m, fd);
	m->evl = evconnlistener_new(m->vm->base, monitor_accept_cb, m,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (m->evl == NULL ||
	    (m->listen_path = strdup(m->vm->conf.upstream)) == NULL)
		fatalx("%s: out of memory", __func__);
	evconnlistener_set_error_cb(m->evl, monitor_accept_error_cb);
}

/*
 * A restart (state-restore.c): take over the upstream of the process before.
 * listen_fd is listen mode's socket, or -1; fd the connection to QEMU,
 * or -1 when there was none (then QEMU is reached as the mode says,
 * from the start).  A connection comes in the state it had: a greeting
 * or a qmp_capabilities still awaited is awaited within a new
 * handshake_timeout, and a ready one is ready at once.  The caller
 * gives back what had been read and not taken, and what was not yet
 * written, with monitor_adopt_bytes.
 */
int
monitor_adopt(struct monitor *m, enum monitor_state state, int fd,
    int listen_fd)
{
	struct vm	*vm = m->vm;

	if (listen_fd != -1)
		monitor_listen_on(m, listen_fd);
	if (fd == -1 || (state != MONITOR_GREETING &&
	    state != MONITOR_NEGOTIATING && state != MONITOR_READY)) {
		if (fd != -1)
			close(fd);
		if (m->evl != NULL) {
			monitor_set_state(m, MONITOR_LISTENING);
			return (0);
		}
		return (monitor_start(m));
	}
	snprintf(m->where, sizeof(m->where), "%s", vm->conf.upstream !=
	    NULL ? vm->conf.upstream : "fd");
	monitor_attach(m, fd);
	monitor_set_state(m, state);
	if (state == MONITOR_READY)
		evtimer_del(m->timer);
	return (0);
}

/* What the process before had read from QEMU and not taken, and not sent. */
void
monitor_adopt_bytes(struct monitor *m, const void *in, size_t inlen,
    const void *out, size_t outlen)
{
	if (m->bev == NULL)
		return;
	if (inlen > 0) {
		util_bev_input(m->bev, in, inlen);
		event_active(m->resume, EV_TIMEOUT, 1);
	}
	if (outlen > 0)
		bufferevent_write(m->bev, out, outlen);
}

/*
 * Whether the peer of the connection has gone, by a close or a reset,
 * even with data of its still unread.
 */
static int
monitor_peer_gone(struct monitor *m)
{
	struct pollfd	 pfd;

	pfd.fd = bufferevent_getfd(m->bev);
	pfd.events = POLLRDHUP;
	return (poll(&pfd, 1, 0) == 1 &&
	    (pfd.revents & (POLLRDHUP | POLLERR | POLLHUP)) != 0);
}

/*
 * QEMU dials in (listen mode).  While a connection is held a second one
 * is refused, whoever makes it: replacing the held one would let any
 * process that can reach the socket take the VM from its QEMU, and QEMU
 * with reconnect=N dials again only once it has lost its connection.
 * A held connection whose peer has already gone, its end not yet read,
 * is given up first, so a QEMU restarted at once is not refused.
 */
static void
monitor_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct monitor	*m = arg;

	monitor_accept(m, fd);
	util_accept_paced(evl, m->accept_retry, &m->accepted);
}

static void
monitor_accept(struct monitor *m, int fd)
{
	struct vm	*vm = m->vm;
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	long		 pid = -1, uid = -1;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		pid = cred.pid;
		uid = cred.uid;
	}
	if (m->bev != NULL && monitor_peer_gone(m))
		monitor_gone(m, "QEMU closed the connection");
	if (m->bev != NULL) {
		vm_log(vm, LOG_WARNING, "refused a connection on %s (pid %ld, "
		    "uid %ld): QEMU is already connected", m->listen_path,
		    pid, uid);
		close(fd);
		return;
	}
	vm_log(vm, LOG_INFO, "QEMU connected on %s (pid %ld, uid %ld)",
	    m->listen_path, pid, uid);
	evtimer_del(m->timer);
	monitor_attach(m, fd);
}

/* An accept failed (EMFILE and the like): pause, or it would spin. */
static void
monitor_accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct monitor	*m = arg;

	vm_log(m->vm, LOG_ERR, "accept on %s; pausing for %ds: %s",
	    m->listen_path, ACCEPT_RETRY_SECONDS, strerror(errno));
	util_accept_pause(evl, m->accept_retry);
}

static void
monitor_accept_retry_cb(int fd, short events, void *arg)
{
	struct monitor	*m = arg;

	if (m->evl != NULL)
		evconnlistener_enable(m->evl);
}

/* Start a non-blocking connect to QEMU's socket. */
static void
monitor_connect(struct monitor *m)
{
	struct vm		*vm = m->vm;
	struct sockaddr_un	 sun;

	m->bev = bufferevent_socket_new(vm->base, -1, BEV_OPT_CLOSE_ON_FREE);
	m->reader = qmp_reader_new(vm->conf.max_upstream_message,
	    vm->conf.max_json_depth, 0);
	if (m->bev == NULL || m->reader == NULL)
		fatalx("%s: out of memory", __func__);
	bufferevent_setcb(m->bev, monitor_read_cb, NULL, monitor_event_cb, m);
	monitor_set_state(m, MONITOR_CONNECTING);
	monitor_arm(m, vm->conf.handshake_timeout);
	if (util_sun_path(&sun, vm->conf.upstream) == -1 ||
	    bufferevent_socket_connect(m->bev, (struct sockaddr *)&sun,
	    sizeof(sun)) == -1) {
		monitor_lost(m, "connect to %s: %s", vm->conf.upstream,
		    strerror(errno));
		return;
	}
	bufferevent_enable(m->bev, EV_READ | EV_WRITE);
}

/*
 * Log why the connection ends, and what comes next, and drop it.
 * Whether it was ready: then monitor_upstream_lost must follow, once
 * the state says the upstream is not ready.
 */
static int
monitor_close(struct monitor *m, const char *reason, const char *next)
{
	int	 was_ready = m->state == MONITOR_READY;

	if (was_ready || log_getverbose() > 0)
		vm_log(m->vm, LOG_ERR, "upstream lost (%s): %s; %s",
		    monitor_state_names[m->state], reason, next);
	monitor_drop(m);
	return (was_ready);
}

/* A ready upstream is gone: its commands fail and its clients close. */
static void
monitor_upstream_lost(struct monitor *m, const char *reason)
{
	m->vm->stats.reconnects++;
	vm_upstream_lost(m->vm, reason);
}

/*
 * The one close path of the upstream: log why, drop the connection, let
 * the vm fail its commands and close its clients, and go on as the mode
 * says.  connect: retry after the backoff.  listen: wait for QEMU to
 * dial in again.  fd: nothing can come back, and the VM is removed.  A
 * stopping VM reaches QEMU no more.
 */
static void
monitor_lost(struct monitor *m, const char *fmt, ...)
{
	struct vm	*vm = m->vm;
	enum upstream_mode mode = vm->conf.upstream_mode;
	char		 reason[512], next[256];
	va_list		 ap;
	int		 was_ready;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);

	if (m->stopped)
		snprintf(next, sizeof(next), "the VM is stopping");
	else if (mode == UPSTREAM_FD)
		snprintf(next, sizeof(next), "the VM is removed");
	else if (mode == UPSTREAM_LISTEN && m->evl != NULL)
		snprintf(next, sizeof(next), "waiting for QEMU on %s",
		    m->listen_path);
	else
		snprintf(next, sizeof(next), "retry in %.2fs", m->backoff);
	was_ready = monitor_close(m, reason, next);
	if (m->stopped || mode == UPSTREAM_FD)
		monitor_set_state(m, MONITOR_CLOSED);
	else if (mode == UPSTREAM_LISTEN && m->evl != NULL)
		monitor_set_state(m, MONITOR_LISTENING);
	else
		monitor_retry(m);
	if (was_ready)
		monitor_upstream_lost(m, reason);
	if (mode == UPSTREAM_FD && !m->stopped)
		vm_upstream_closed(vm);
}

/*
 * Backoff over: connect, or make listen mode's socket, again.
 * Handshake too slow: give up on this attempt.
 */
static void
monitor_timer_cb(int fd, short events, void *arg)
{
	struct monitor	*m = arg;

	switch (m->state) {
	case MONITOR_BACKOFF:
		if (monitor_reach(m) == -1)
			monitor_retry(m);
		break;
	case MONITOR_CONNECTING:
	case MONITOR_GREETING:
	case MONITOR_NEGOTIATING:
		monitor_lost(m, "handshake did not finish within %gs",
		    m->vm->conf.handshake_timeout);
		break;
	default:
		break;
	}
}

/*
 * QEMU is gone, but what it wrote before it went may still wait: in the
 * input buffer and the socket, when the event backlog held reads paused,
 * or a write found the loss before a read.  Its last events (SHUTDOWN
 * above all) and replies must still reach the clients, so whole
 * messages are taken now past the backlog's bounds, from at most
 * max_queued_bytes more of input: a peer that is not dead after all
 * and keeps writing cannot grow the proxy or hold its loop.
 */
static void
monitor_last_words(struct monitor *m)
{
	struct vm	*vm = m->vm;
	struct evbuffer	*in;
	uint64_t	 events = vm->stats.events;
	size_t		 budget = vm->conf.max_queued_bytes;
	int		 fd, n;

	if (m->state != MONITOR_READY)
		return;
	in = bufferevent_get_input(m->bev);
	fd = bufferevent_getfd(m->bev);
	/* a bufferevent freezes its input's end except while it reads */
	evbuffer_unfreeze(in, 0);
	while (budget > 0 && (n = evbuffer_read(in, fd,
	    budget > INT_MAX ? INT_MAX : (int)budget)) > 0)
		budget -= (size_t)n;
	evbuffer_freeze(in, 0);
	m->draining = 1;
	monitor_read(m);
	vm_log(vm, LOG_DEBUG, "QEMU gone: events taken from what it left: %llu",
	    (unsigned long long)(vm->stats.events - events));
}

/* The connection has ended: take QEMU's last words, then give up on it. */
static void
monitor_gone(struct monitor *m, const char *reason)
{
	monitor_last_words(m);
	if (m->bev != NULL)	/* else lost already, on what it last wrote */
		monitor_lost(m, "%s", reason);
}

/*
 * Reads paused, no EOF can be seen: QEMU hanging up is looked for every
 * MONITOR_HUP_CHECK seconds, or a dead QEMU would keep greeting new
 * clients.  A poll of the socket sees both ways a peer goes: a close
 * (POLLRDHUP, even with data still unread) and a reset (POLLERR, when
 * it died with our input unread).  libevent's EV_CLOSED sees only the
 * first, and with epoll a reset then wakes the loop without end.
 */
static void
monitor_hup_cb(int fd, short events, void *arg)
{
	struct monitor	*m = arg;
	struct timeval	 tv = { MONITOR_HUP_CHECK, 0 };

	if (monitor_peer_gone(m)) {
		monitor_gone(m, "QEMU closed the connection");
		return;
	}
	evtimer_add(m->hup, &tv);
}

static void
monitor_event_cb(struct bufferevent *bev, short events, void *arg)
{
	struct monitor	*m = arg;
	char		 reason[256];

	if (events & BEV_EVENT_CONNECTED) {
		/* the greeting may have been read already: never go back */
		vm_log(m->vm, LOG_DEBUG, "connected to %s",
		    m->vm->conf.upstream);
		if (m->state == MONITOR_CONNECTING)
			monitor_set_state(m, MONITOR_GREETING);
		return;
	}
	/* the reason first: taking the last words may change errno */
	if (events & BEV_EVENT_EOF)
		snprintf(reason, sizeof(reason), "QEMU closed the connection");
	else
		snprintf(reason, sizeof(reason), "%s",
		    strerror(EVUTIL_SOCKET_ERROR()));
	monitor_gone(m, reason);
}


/*
 * Keep QEMU's greeting for the clients.  It goes out verbatim when its
 * capabilities are exactly what the proxy negotiated (QEMU today offers
 * only oob); otherwise it is rewritten with the negotiated list, since a
 * client must not be offered what the proxy did not take.
 */
static int
monitor_greeting(struct monitor *m, struct qmp_msg *msg)
{
	static const char	*caps_path[] = { "QMP", "capabilities", NULL };
	static const char	*ver_path[] = { "QMP", "version", "qemu", NULL };
	yajl_val		 root, caps, ver, v;
	char			 err[256];
	size_t			 i, other = 0;
	const unsigned char	*out;
	size_t			 outlen;
	yajl_gen		 g;

	if ((root = yajl_tree_parse(msg->buf, err, sizeof(err))) == NULL)
		return (-1);
	caps = yajl_tree_get(root, caps_path, yajl_t_array);
	if (caps == NULL) {
		yajl_tree_free(root);
		return (-1);
	}
	for (i = 0; i < caps->u.array.len; i++) {
		v = caps->u.array.values[i];
		if (YAJL_IS_STRING(v) && strcmp(v->u.string, "oob") == 0)
			m->oob = 1;
		else
			other++;
	}
	ver = yajl_tree_get(root, ver_path, yajl_t_object);
	if (ver != NULL) {
		const char *p[2] = { NULL, NULL };
		long long n[3] = { 0, 0, 0 };
		const char *names[3] = { "major", "minor", "micro" };

		for (i = 0; i < 3; i++) {
			p[0] = names[i];
			v = yajl_tree_get(ver, p, yajl_t_number);
			if (v != NULL && YAJL_IS_INTEGER(v))
				n[i] = YAJL_GET_INTEGER(v);
		}
		if (asprintf(&m->version, "%lld.%lld.%lld", n[0], n[1],
		    n[2]) == -1)
			m->version = NULL;
	}

	/* verbatim, unless it offers what the proxy cannot pass on */
	out = (const unsigned char *)msg->buf;
	outlen = msg->len;
	g = NULL;
	if (other > 0) {
		g = json_new();
		json_map_open(g);
		json_string(g, "QMP", 3);
		json_map_open(g);
		v = yajl_tree_get(root, (const char *[]){ "QMP", "version",
		    NULL }, yajl_t_any);
		json_string(g, "version", 7);
		if (v != NULL)
			json_tree(g, v);
		else
			json_map_open(g), json_map_close(g);
		json_string(g, "capabilities", 12);
		json_array_open(g);
		if (m->oob)
			json_string(g, "oob", 3);
		json_array_close(g);
		json_map_close(g);
		json_map_close(g);
		json_buf(g, &out, &outlen);
	}
	m->greeting_len = outlen + 2;
	if ((m->greeting = malloc(m->greeting_len)) == NULL)
		fatal("%s", __func__);
	memcpy(m->greeting, out, outlen);
	memcpy(m->greeting + outlen, "\r\n", 2);
	if (g != NULL)
		json_free(g);
	yajl_tree_free(root);
	return (0);
}

/*
 * An event's name as a log line may show it: the name is decoded from
 * QEMU's JSON, where an escape can make a newline of it, so a name
 * outside QAPI's alphabet is not written out.
 */
static const char *
monitor_loggable(const struct qmp_msg *msg)
{
	static const char	 qapi[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789_-";

	if (msg->name[strspn(msg->name, qapi)] != '\0')
		return ("(a name outside QAPI's alphabet)");
	return (msg->name);
}

/* Handle one message during the handshake. */
static void
monitor_handshake(struct monitor *m, struct qmp_msg *msg)
{
	struct vm	*vm = m->vm;
	const char	*caps;

	/*
	 * QEMU greets from its monitor thread while its main thread sends
	 * events to every monitor that is not waiting for qmp_capabilities,
	 * which a monitor not yet greeted is not: a connection made while
	 * QEMU starts can begin with the RESUME of its start, or have it
	 * just after the greeting (seen with 7.2; a race QEMU's upstream
	 * has since taken up).  No client of this VM has negotiated before
	 * the handshake is done, so no one was owed it.
	 */
	if (msg->kind == QMP_KIND_EVENT) {
		/* one line per connection: the rest are counted */
		if (m->early++ == 0)
			vm_log(vm, LOG_NOTICE, "upstream: event %s during the "
			    "handshake, dropped", monitor_loggable(msg));
		return;
	}
	if (m->state == MONITOR_GREETING) {
		if (msg->kind != QMP_KIND_GREETING ||
		    monitor_greeting(m, msg) == -1) {
			monitor_lost(m, "expected a QMP greeting, got %s",
			    qmp_kind_name(msg->kind));
			return;
		}
		caps = m->oob ? "{\"execute\": \"qmp_capabilities\", "
		    "\"arguments\": {\"enable\": [\"oob\"]}}\r\n" :
		    "{\"execute\": \"qmp_capabilities\"}\r\n";
		bufferevent_write(m->bev, caps, strlen(caps));
		monitor_set_state(m, MONITOR_NEGOTIATING);
		return;
	}
	if (msg->kind != QMP_KIND_RETURN) {
		monitor_lost(m, "qmp_capabilities failed: %.*s",
		    (int)(msg->len > 200 ? 200 : msg->len), msg->buf);
		return;
	}
	if (m->early > 1)
		vm_log(vm, LOG_NOTICE, "upstream: %lu events during the "
		    "handshake, dropped", m->early);
	evtimer_del(m->timer);
	m->backoff = vm->conf.backoff_min;
	monitor_set_state(m, MONITOR_READY);
	vm_log(vm, LOG_INFO, "upstream ready: QEMU %s at %s%s",
	    m->version != NULL ? m->version : "(unknown version)",
	    m->where, m->oob ? ", oob" : "");
	vm_upstream_ready(vm);
}

/*
 * After a crash the first bytes from QEMU may be the rest of a message
 * the process before had half read.  QEMU ends each message with a
 * newline and has none inside one, so the first line is kept only if
 * it is one whole message by itself; else it is dropped, and reading
 * starts after it.  0 while the first line is not all there yet.
 */
static int
monitor_resync(struct monitor *m, struct evbuffer *in)
{
	struct evbuffer_ptr	 nl;
	struct evbuffer		*line;
	struct qmp_reader	*r;
	struct qmp_msg		 msg;
	size_t			 len;
	char			*buf;
	int			 whole = 0;

	nl = evbuffer_search(in, "\n", 1, NULL);
	if (nl.pos == -1)
		return (0);
	m->resync = 0;
	len = (size_t)nl.pos + 1;
	/* an input's start is not frozen: it can be copied out */
	if ((buf = malloc(len)) == NULL || (line = evbuffer_new()) == NULL ||
	    (r = qmp_reader_new(m->vm->conf.max_upstream_message,
	    m->vm->conf.max_json_depth, 0)) == NULL)
		fatal("%s", __func__);
	if (evbuffer_copyout(in, buf, len) != (ssize_t)len)
		fatalx("%s: evbuffer_copyout failed", __func__);
	evbuffer_add(line, buf, len);
	free(buf);
	if (qmp_reader_next(r, line, &msg) == QMP_MESSAGE) {
		qmp_msg_clear(&msg);
		/* one message, then nothing but its line's end */
		whole = qmp_reader_pending(r) == 0 &&
		    evbuffer_get_length(line) <= 2;
	}
	qmp_reader_free(r);
	evbuffer_free(line);
	if (!whole) {
		vm_log(m->vm, LOG_INFO, "taking over after a crash: %zu bytes "
		    "of a message half read before were dropped", len);
		evbuffer_drain(in, len);
	}
	return (1);
}

/*
 * Take whole messages from the input until it is empty or the vm has
 * paused reading.  A message larger than the cap, or invalid JSON, is a
 * protocol error: QEMU can no longer be trusted to be in step.
 */
static void
monitor_take(struct monitor *m)
{
	struct qmp_msg	 msg;
	enum qmp_status	 st;
	struct evbuffer	*in;

	while (m->bev != NULL && (!m->paused || m->draining)) {
		in = bufferevent_get_input(m->bev);
		if (m->resync && monitor_resync(m, in) == 0)
			return;
		st = qmp_reader_next(m->reader, in, &msg);
		switch (st) {
		case QMP_NEED_MORE:
			return;
		case QMP_MESSAGE:
			/*
			 * On a unix socket the greeting can be read before
			 * libevent reports the connect: input proves it.
			 */
			if (m->state == MONITOR_CONNECTING)
				monitor_set_state(m, MONITOR_GREETING);
			m->vm->stats.bytes_from_qemu += msg.len;
			if (m->state == MONITOR_READY)
				vm_upstream_message(m->vm, &msg);
			else
				monitor_handshake(m, &msg);
			qmp_msg_clear(&msg);
			break;
		case QMP_ERR_JSON:
			monitor_lost(m, "invalid JSON from QEMU: %s",
			    qmp_reader_error(m->reader));
			return;
		case QMP_ERR_DEPTH:
			monitor_lost(m, "message from QEMU nested deeper than "
			    "%u", m->vm->conf.max_json_depth);
			return;
		case QMP_ERR_SIZE:
			monitor_lost(m, "message from QEMU larger than %zu "
			    "bytes", m->vm->conf.max_upstream_message);
			return;
		}
	}
}

/* Read, then hand out the events read: no batch outlives a callback. */
static void
monitor_read(struct monitor *m)
{
	monitor_take(m);
	vm_events_flush(m->vm);
}

static void
monitor_read_cb(struct bufferevent *bev, void *arg)
{
	monitor_read(arg);
}

static void
monitor_resume_cb(int fd, short events, void *arg)
{
	monitor_read(arg);
}

/* Queue bytes for QEMU. */
void
monitor_send(struct monitor *m, struct evbuffer *buf)
{
	if (m->bev == NULL)
		return;
	m->vm->stats.bytes_to_qemu += evbuffer_get_length(buf);
	/* at once if nothing waits: no turn of the loop for a command */
	util_bev_write_buffer(m->bev, buf);
}

/* Stop reading from QEMU: what it has not written, it holds. */
void
monitor_pause(struct monitor *m)
{
	struct timeval	 tv = { MONITOR_HUP_CHECK, 0 };

	if (m->paused || m->bev == NULL)
		return;
	m->paused = 1;
	bufferevent_disable(m->bev, EV_READ);
	if (m->hup == NULL && (m->hup = evtimer_new(m->vm->base,
	    monitor_hup_cb, m)) == NULL)
		fatalx("%s: evtimer_new failed", __func__);
	/* not now: this runs while the monitor is taking messages */
	evtimer_add(m->hup, &tv);
}

/*
 * Read again.  Whole messages may already wait in the input buffer, and
 * no read event will come for them, so they are handled from the loop
 * (never from here: this runs inside a client's write callback).
 */
void
monitor_unpause(struct monitor *m)
{
	if (!m->paused || m->bev == NULL)
		return;
	m->paused = 0;
	event_del(m->hup);
	bufferevent_enable(m->bev, EV_READ);
	event_active(m->resume, EV_TIMEOUT, 1);
}
