/*
 * Downstream listeners: a unix socket per listener, with the mode (0600
 * unless configured), owner and group of its conf; when allowed_uids is
 * given, only those users are let in.  An accept error such as EMFILE
 * would fire again at once and spin the loop, so the listener is
 * disabled for a second instead.
 *
 * A listener may also be a listening socket passed over the control
 * socket (listener_conf.fd): it is used as it is, and its path, read
 * with getsockname, is only a name for the log; qmpmuxd neither made
 * it nor removes it.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "qmpmux.h"

static void	listener_accept_cb(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	listener_error_cb(struct evconnlistener *, void *);
static void	listener_retry_cb(int, short, void *);
static struct listener *listener_new_fd(struct vm *, struct listener_conf *);
static struct listener *listener_wrap(struct vm *, struct listener_conf *,
		    int);

/* Create the socket of a listener; NULL (logged) if it cannot be made. */
struct listener *
listener_new(struct vm *vm, struct listener_conf *conf)
{
	struct listener	*l;
	char		 err[256];
	int		 fd;

	if (conf->fd != -1)
		return (listener_new_fd(vm, conf));
	if ((fd = util_unix_listen_as(conf->path, conf->mode, conf->owner,
	    conf->group, err, sizeof(err))) == -1) {
		vm_log(vm, LOG_ERR, "cannot listen on %s: %s", conf->path, err);
		return (NULL);
	}
	l = listener_wrap(vm, conf, fd);
	vm_log(vm, LOG_INFO, "listening on %s (mode %04o, slow clients: %s)",
	    conf->path, (unsigned int)conf->mode,
	    conf->slow_client == SLOW_CLIENT_BLOCK ? "block" : "disconnect");
	return (l);
}

/*
 * A listener on the listening socket in conf->fd, passed over the control
 * socket, which it takes over; conf->path is the name getsockname gave.
 */
static struct listener *
listener_new_fd(struct vm *vm, struct listener_conf *conf)
{
	struct listener	*l;
	int		 fd = conf->fd;

	conf->fd = -1;		/* the evconnlistener's now, closed once */
	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1) {
		vm_log(vm, LOG_ERR, "cannot use the listening socket %s: %s",
		    conf->path, strerror(errno));
		close(fd);
		return (NULL);
	}
	l = listener_wrap(vm, conf, fd);
	vm_log(vm, LOG_INFO, "listening on %s, passed as fd %d (slow clients: "
	    "%s)", conf->path, fd, conf->slow_client == SLOW_CLIENT_BLOCK ?
	    "block" : "disconnect");
	return (l);
}

/* Accept on a listening socket fd, which the listener then owns. */
static struct listener *
listener_wrap(struct vm *vm, struct listener_conf *conf, int fd)
{
	struct listener	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("%s", __func__);
	l->vm = vm;
	l->conf = conf;
	vm_tell(vm, VM_LISTENER, l, fd);
	l->evl = evconnlistener_new(vm->base, listener_accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	l->retry = evtimer_new(vm->base, listener_retry_cb, l);
	if (l->evl == NULL || l->retry == NULL)
		fatalx("%s: out of memory", __func__);
	evconnlistener_set_error_cb(l->evl, listener_error_cb);
	return (l);
}

/*
 * Whether a peer of uid may connect: allowed_uids lists it, or is empty.
 * No uid is special, root's included; (uid_t)-1, a uid that could not be
 * read, is never listed.
 */
int
listener_allows(const struct listener *l, uid_t uid)
{
	size_t	 i;

	if (l->conf->nallowed_uids == 0)
		return (1);
	for (i = 0; i < l->conf->nallowed_uids; i++) {
		if (l->conf->allowed_uids[i] == uid && uid != (uid_t)-1)
			return (1);
	}
	return (0);
}

/*
 * Stop accepting and remove the socket.  The clients stay, with their
 * listener's settings, until they are closed on their own path.
 */
void
listener_close(struct listener *l)
{
	if (l->evl == NULL)
		return;
	vm_tell(l->vm, VM_LISTENER, l, -1);
	evconnlistener_free(l->evl);
	l->evl = NULL;
	evtimer_del(l->retry);
	/* a passed socket's path is whoever made it's to remove */
	if (!l->conf->passed)
		unlink(l->conf->path);
	vm_log(l->vm, LOG_INFO, "no longer listening on %s", l->conf->path);
}

/* Close a listener, its socket and its clients; NULL is allowed. */
void
listener_free(struct listener *l)
{
	struct client	*c;

	if (l == NULL)
		return;
	/* clients outlive their listener only to be closed */
	TAILQ_FOREACH(c, &l->vm->clients, entry) {
		if (c->listener == l)
			client_close(c, "listener %s removed", l->conf->path);
	}
	listener_close(l);
	event_free(l->retry);
	l->retry = NULL;
	if (l->nclients == 0) {
		free(l);
		return;
	}
	/*
	 * Clients still closing read their listener's conf (the dump, a
	 * closing client's timer): they keep a copy of their own, since the
	 * VM's conf that this one pointed into goes with a reload.
	 */
	l->conf = conf_listener_copy(l->conf);
	l->gone = 1;
}

/* A client points at the listener: it stays while the client does. */
void
listener_ref(struct listener *l)
{
	l->nclients++;
}

/* A client lets go; the last of a freed listener's frees it. */
void
listener_unref(struct listener *l)
{
	if (--l->nclients > 0 || !l->gone)
		return;
	conf_listener_free(l->conf);
	free(l);
}

static void
listener_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener	*l = arg;

	client_accept(l, fd);
	util_accept_paced(evl, l->retry, &l->accepted);
}

static void
listener_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener	*l = arg;

	vm_log(l->vm, LOG_ERR, "accept on %s; pausing for %ds: %s",
	    l->conf->path, ACCEPT_RETRY_SECONDS, strerror(errno));
	util_accept_pause(evl, l->retry);
}

static void
listener_retry_cb(int fd, short events, void *arg)
{
	struct listener	*l = arg;

	evconnlistener_enable(l->evl);
}
