/*
 * The control socket: a QMP monitor of qmpmuxd itself, so that QMP
 * client libraries can drive it.  It greets as QEMU does, with
 * qmpmuxd's version in QEMU's shape, wants qmp_capabilities first, and
 * answers commands that list, add and remove VMs, dump, reload, and
 * take fds (getfd) as QEMU takes them: passed with SCM_RIGHTS on the
 * message of the command that names them.
 *
 * A bufferevent cannot carry SCM_RIGHTS, so a connection is a plain
 * non-blocking socket with a read and a write event and two evbuffers;
 * the socket is read with recvmsg.  The fds are held as QEMU's socket
 * chardev holds them: those a read brings replace (and close) the
 * unnamed ones held before, and a getfd takes one of them, closing the
 * others.  What a connection holds and has not handed to a VM is
 * closed with it.  A string argument that holds a NUL (\u0000), which
 * yajl's tree would cut short, is refused for every command at once.
 *
 * Everything is bounded, by [global] keys: the clients
 * (control_max_clients), a message (control_max_message, then the
 * connection is closed), the output (past control_max_output the client
 * is not read until it has read half of it) and the fds a client holds
 * (control_max_fds).  A client keeps the message bound it connected
 * under; the others apply at once after a reload.  A trace
 * (trace.c) writes into the same output within the same bound, and
 * skips what does not fit rather than wait.  Nothing
 * waits on a peer, so one control client cannot hold up another, or a
 * VM.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"

#define CONTROL_FDS_PER_READ	16
#define CONTROL_READ_SIZE	16384
#define CONTROL_FDNAME_MAX	255	/* bytes of a getfd's name */

/* An fd a client passed: unnamed until a getfd names it. */
struct control_fd {
	int			 fd;
	char			*name;
	TAILQ_ENTRY(control_fd)	 entry;
};
TAILQ_HEAD(control_fds, control_fd);

/*
 * One control connection.  closing: it is not read again, and reap
 * frees it from the loop; paused: its output is over the bound, and it
 * is read again once it has read half.  nfds counts fds, at most
 * control_max_fds; fds_refused: the last fds passed were closed on
 * arrival, past that bound, for getfd to say so.
 */
struct control_client {
	struct control		*ctl;
	int			 id;
	int			 fd;
	pid_t			 pid;
	uid_t			 uid;
	struct event		*rev;
	struct event		*wev;
	struct event		*reap;
	struct evbuffer		*in;
	struct evbuffer		*out;
	struct qmp_reader	*reader;
	uint64_t		 received;	/* bytes read, in all */
	int			 negotiated;
	int			 eof;
	int			 closing;
	int			 paused;
	struct control_fds	 fds;
	unsigned int		 nfds;
	int			 fds_refused;
	size_t			 max_message;	/* of its reader */
	struct trace_list	 traces;	/* the VMs it traces */
	TAILQ_ENTRY(control_client) entry;
};

/* The control socket, and its clients. */
struct control {
	struct server		*server;
	struct event_base	*base;
	char			*path;
	struct evconnlistener	*evl;
	struct event		*retry;		/* after an error or a burst */
	unsigned int		 accepted;	/* util_accept_paced */
	TAILQ_HEAD(, control_client) clients;
	unsigned int		 nclients;
	int			 next_id;
};

/* One command as it runs: its caller, its id bytes and its arguments. */
struct control_req {
	struct control_client	*cc;
	const struct qmp_msg	*msg;
	const char		*id;
	size_t			 idlen;
	yajl_val		 args;		/* NULL: none given */
};

/* An argument a command takes. */
struct control_param {
	const char		*name;
	yajl_type		 type;
	const char		*type_name;	/* as QEMU's errors name it */
	int			 required;
};

static void	control_accept_cb(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	control_accept(struct control *, int);
static void	control_listen_on(struct control *, int);
static void	control_store_name(const struct control *, char *, size_t);
static struct control_client *control_client_new(struct control *, int, int,
		    pid_t, uid_t);
static void	control_accept_error_cb(struct evconnlistener *, void *);
static void	control_retry_cb(int, short, void *);
static void	control_read_cb(int, short, void *);
static void	control_write_cb(int, short, void *);
static void	control_reap_cb(int, short, void *);
static void	control_process(struct control_client *);
static void	control_handle(struct control_req *);
static void	control_client_free(struct control_client *);
static int	control_fd_take(struct control_client *, struct control_fd *);
static void	control_close(struct control_client *, const char *, ...)
		    LOG_PRINTF(2, 3);
static void	control_log(const struct control_client *, int, const char *,
		    ...) LOG_PRINTF(3, 4);
static void	control_error(struct control_req *, const char *, const char *,
		    ...) LOG_PRINTF(3, 4);

static void	control_query_version(struct control_req *);
static void	control_query_vms(struct control_req *);
static void	control_query_vm(struct control_req *);
static void	control_add_vm(struct control_req *);
static void	control_remove_vm(struct control_req *);
static void	control_getfd(struct control_req *);
static void	control_closefd(struct control_req *);
static void	control_dump(struct control_req *);
static void	control_reload(struct control_req *);
static void	control_trace(struct control_req *);
static void	control_restart(struct control_req *);

static const struct control_param control_no_params[] = {
	{ NULL, yajl_t_null, NULL, 0 }
};
static const struct control_param control_name_params[] = {
	{ "name", yajl_t_string, "string", 1 },
	{ NULL, yajl_t_null, NULL, 0 }
};
static const struct control_param control_fdname_params[] = {
	{ "fdname", yajl_t_string, "string", 1 },
	{ NULL, yajl_t_null, NULL, 0 }
};
static const struct control_param control_add_vm_params[] = {
	{ "name", yajl_t_string, "string", 1 },
	{ "upstream", yajl_t_string, "string", 1 },
	{ "listeners", yajl_t_array, "array", 1 },
	{ NULL, yajl_t_null, NULL, 0 }
};

/*
 * The commands.  open: other arguments are not refused here, since the
 * command takes the keys of the config file as well.
 */
static const struct control_cmd {
	const char			*name;
	void				(*fn)(struct control_req *);
	const struct control_param	*params;
	int				 open;
} control_cmds[] = {
	{ "query-version", control_query_version, control_no_params, 0 },
	{ "query-vms", control_query_vms, control_no_params, 0 },
	{ "query-vm", control_query_vm, control_name_params, 0 },
	{ "add-vm", control_add_vm, control_add_vm_params, 1 },
	{ "remove-vm", control_remove_vm, control_name_params, 0 },
	{ "getfd", control_getfd, control_fdname_params, 0 },
	{ "closefd", control_closefd, control_fdname_params, 0 },
	{ "dump", control_dump, control_no_params, 0 },
	{ "reload", control_reload, control_no_params, 0 },
	{ "trace", control_trace, control_name_params, 0 },
	{ "restart", control_restart, control_no_params, 0 },
};
#define CONTROL_NCMDS	(sizeof(control_cmds) / sizeof(control_cmds[0]))

/* The control socket on fd, listening at path; no clients yet. */
static struct control *
control_make(struct server *s, const char *path, int fd)
{
	struct control	*ctl;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL ||
	    (ctl->path = strdup(path)) == NULL)
		fatal("%s", __func__);
	ctl->server = s;
	ctl->base = s->base;
	TAILQ_INIT(&ctl->clients);
	control_listen_on(ctl, fd);
	return (ctl);
}

/*
 * Make the control socket at path, mode 0600, ready before its path
 * appears; NULL (logged) if it cannot be made.
 */
struct control *
control_new(struct server *s, const char *path)
{
	struct control	*ctl;
	int		 fd;
	char		 err[256];

	if ((fd = util_unix_listen_as(path, 0600, (uid_t)-1, (gid_t)-1, err,
	    sizeof(err))) == -1) {
		log_warnx("control: cannot listen on %s: %s", path, err);
		return (NULL);
	}
	ctl = control_make(s, path, fd);
	log_info("control: listening on %s", path);
	return (ctl);
}

/*
 * The control socket's name in the service manager's fd store
 * (fdstore.c): a hash of its path.  The socket cannot say its path: it
 * is bound under a temporary name, then renamed into place.
 */
static void
control_store_name(const struct control *ctl, char *buf, size_t len)
{
	fdstore_name(buf, len, "k", NULL, 0, "%08x", fdstore_hash(ctl->path));
}

/* Accept on the control socket fd, kept in the fd store. */
static void
control_listen_on(struct control *ctl, int fd)
{
	char	 name[FDSTORE_NAME_MAX + 1];

	control_store_name(ctl, name, sizeof(name));
	fdstore_add(fd, name);
	ctl->evl = evconnlistener_new(ctl->base, control_accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	ctl->retry = evtimer_new(ctl->base, control_retry_cb, ctl);
	if (ctl->evl == NULL || ctl->retry == NULL)
		fatalx("%s: out of memory", __func__);
	evconnlistener_set_error_cb(ctl->evl, control_accept_error_cb);
}

/*
 * Close the control socket, remove its path and close every control
 * client with what it holds; NULL is allowed.  Not called from one of
 * the control socket's own callbacks.
 */
void
control_free(struct control *ctl)
{
	struct control_client	*cc;
	char			 name[FDSTORE_NAME_MAX + 1];

	if (ctl == NULL)
		return;
	control_store_name(ctl, name, sizeof(name));
	fdstore_remove(name);
	evconnlistener_free(ctl->evl);
	event_free(ctl->retry);
	unlink(ctl->path);
	log_info("control: no longer listening on %s", ctl->path);
	while ((cc = TAILQ_FIRST(&ctl->clients)) != NULL) {
		control_close(cc, "the control socket is closed");
		control_client_free(cc);
	}
	free(ctl->path);
	free(ctl);
}

/* Log a line about a control client, its id first. */
static void
control_log(const struct control_client *cc, int pri, const char *fmt, ...)
{
	char	 prefix[64];
	va_list	 ap;

	snprintf(prefix, sizeof(prefix), "control client %d", cc->id);
	va_start(ap, fmt);
	log_vmsg(pri, prefix, fmt, ap);
	va_end(ap);
}

/* A new control connection: greet it, or refuse it past the bound. */
static void
control_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control	*ctl = arg;

	control_accept(ctl, fd);
	util_accept_paced(evl, ctl->retry, &ctl->accepted);
}

static void
control_accept(struct control *ctl, int fd)
{
	struct control_client	*cc;
	struct ucred		 cred;
	socklen_t		 len = sizeof(cred);
	pid_t			 pid = -1;
	uid_t			 uid = (uid_t)-1;
	unsigned int		 major = 0, minor = 0, micro = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		pid = cred.pid;
		uid = cred.uid;
	}
	if (ctl->nclients >= ctl->server->lim.control_max_clients) {
		log_warnx("control: refused a client (pid %ld, uid %ld): "
		    "%u control clients already", (long)pid, (long)uid,
		    ctl->server->lim.control_max_clients);
		close(fd);
		return;
	}
	cc = control_client_new(ctl, fd, ++ctl->next_id, pid, uid);
	control_log(cc, LOG_INFO, "connected (pid %ld, uid %ld)", (long)pid,
	    (long)uid);

	/* qmpmuxd's own version, in QEMU's shape */
	sscanf(PACKAGE_VERSION, "%u.%u.%u", &major, &minor, &micro);
	evbuffer_add_printf(cc->out, "{\"QMP\": {\"version\": {\"qemu\": "
	    "{\"micro\": %u, \"minor\": %u, \"major\": %u}, \"package\": "
	    "\"qmpmuxd %s\"}, \"capabilities\": []}}\r\n", micro, minor, major,
	    PACKAGE_VERSION);
	event_add(cc->rev, NULL);
	event_add(cc->wev, NULL);
}

/* A control client on the connected socket fd, which it owns. */
static struct control_client *
control_client_new(struct control *ctl, int fd, int id, pid_t pid, uid_t uid)
{
	struct control_client	*cc;

	if ((cc = calloc(1, sizeof(*cc))) == NULL)
		fatal("%s", __func__);
	cc->ctl = ctl;
	cc->id = id;
	cc->fd = fd;
	cc->pid = pid;
	cc->uid = uid;
	TAILQ_INIT(&cc->fds);
	TAILQ_INIT(&cc->traces);
	cc->in = evbuffer_new();
	cc->out = evbuffer_new();
	cc->rev = event_new(ctl->base, fd, EV_READ | EV_PERSIST,
	    control_read_cb, cc);
	cc->wev = event_new(ctl->base, fd, EV_WRITE | EV_PERSIST,
	    control_write_cb, cc);
	cc->reap = event_new(ctl->base, -1, 0, control_reap_cb, cc);
	cc->max_message = ctl->server->lim.control_max_message;
	cc->reader = qmp_reader_new(cc->max_message, QMP_DEPTH_MAX,
	    QMP_READ_STRICT);
	if (cc->in == NULL || cc->out == NULL || cc->rev == NULL ||
	    cc->wev == NULL || cc->reap == NULL || cc->reader == NULL)
		fatalx("%s: out of memory", __func__);
	TAILQ_INSERT_TAIL(&ctl->clients, cc, entry);
	ctl->nclients++;
	return (cc);
}

/* accept failed (EMFILE and the like): stop for a second, not spin. */
static void
control_accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct control	*ctl = arg;

	log_warn("control: accept on %s; pausing for %ds", ctl->path,
	    ACCEPT_RETRY_SECONDS);
	util_accept_pause(evl, ctl->retry);
}

/* Accept again after the pause. */
static void
control_retry_cb(int fd, short events, void *arg)
{
	struct control	*ctl = arg;

	evconnlistener_enable(ctl->evl);
}

/*
 * The one close path of a control connection, with its reason: it is
 * read no more, what is queued for it gets one try to be written (the
 * error that closes it, most of all), and it is freed from the loop.
 */
static void
control_close(struct control_client *cc, const char *fmt, ...)
{
	char	*why;
	va_list	 ap;

	if (cc->closing)
		return;
	cc->closing = 1;
	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) == -1)
		fatal("%s", __func__);
	va_end(ap);
	control_log(cc, LOG_INFO, "closed: %s", why);
	free(why);
	trace_free_all(&cc->traces);
	event_del(cc->rev);
	event_del(cc->wev);
	if (evbuffer_get_length(cc->out) > 0)
		evbuffer_write(cc->out, cc->fd);
	event_active(cc->reap, EV_TIMEOUT, 1);
}

/* Free a closed control client from the loop. */
static void
control_reap_cb(int fd, short events, void *arg)
{
	control_client_free(arg);
}

/* Free a control client, closing its socket and every fd it holds. */
static void
control_client_free(struct control_client *cc)
{
	struct control_fd	*f;

	TAILQ_REMOVE(&cc->ctl->clients, cc, entry);
	cc->ctl->nclients--;
	trace_free_all(&cc->traces);
	while ((f = TAILQ_FIRST(&cc->fds)) != NULL) {
		TAILQ_REMOVE(&cc->fds, f, entry);
		close(f->fd);
		free(f->name);
		free(f);
	}
	event_free(cc->rev);
	event_free(cc->wev);
	event_free(cc->reap);
	evbuffer_free(cc->in);
	evbuffer_free(cc->out);
	qmp_reader_free(cc->reader);
	close(cc->fd);
	free(cc);
}

/*
 * Close the unnamed fds a client holds but keep, as QEMU's chardev
 * closes the fds of a read that no getfd took.
 */
static void
control_fds_close_unnamed(struct control_client *cc, struct control_fd *keep)
{
	struct control_fd	*f, *next;

	for (f = TAILQ_FIRST(&cc->fds); f != NULL; f = next) {
		next = TAILQ_NEXT(f, entry);
		if (f->name == NULL && f != keep)
			close(control_fd_take(cc, f));
	}
}

/*
 * Hold the fds a read brought, as QEMU's socket chardev does: they
 * replace the unnamed ones held before, which are closed, until a
 * getfd takes one.  Past control_max_fds they are closed at once.
 */
static void
control_take_fds(struct control_client *cc, struct msghdr *mh)
{
	struct cmsghdr		*cm;
	struct control_fd	*f;
	int			 fd;
	size_t			 i, n, refused = 0;

	for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (n > 0) {
			control_fds_close_unnamed(cc, NULL);
			cc->fds_refused = 0;
		}
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			    sizeof(fd));
			if (cc->nfds >= cc->ctl->server->lim.control_max_fds) {
				close(fd);
				refused++;
				continue;
			}
			if ((f = calloc(1, sizeof(*f))) == NULL)
				fatal("%s", __func__);
			f->fd = fd;
			TAILQ_INSERT_TAIL(&cc->fds, f, entry);
			cc->nfds++;
		}
	}
	if (refused > 0) {
		cc->fds_refused = 1;
		control_log(cc, LOG_WARNING, "%zu fds passed past the %u it "
		    "may hold: closed", refused,
		    cc->ctl->server->lim.control_max_fds);
	}
	if (mh->msg_flags & MSG_CTRUNC)
		control_log(cc, LOG_WARNING, "more than %d fds in one message: "
		    "the rest were dropped", CONTROL_FDS_PER_READ);
}

/* Input, and maybe fds, from a control client. */
static void
control_read_cb(int fd, short events, void *arg)
{
	struct control_client	*cc = arg;
	char			 buf[CONTROL_READ_SIZE];
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(CONTROL_FDS_PER_READ *
				    sizeof(int))];
	}			 cmsg;
	struct iovec		 iov = { buf, sizeof(buf) };
	struct msghdr		 mh;
	ssize_t			 n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cmsg.buf;
	mh.msg_controllen = sizeof(cmsg.buf);
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		control_close(cc, "%s", strerror(errno));
		return;
	}
	control_take_fds(cc, &mh);
	if (n == 0) {
		cc->eof = 1;
		event_del(cc->rev);
	} else {
		evbuffer_add(cc->in, buf, (size_t)n);
		cc->received += (uint64_t)n;
	}
	control_process(cc);
}

/* Write what is queued; read again once the client has read half. */
static void
control_write_cb(int fd, short events, void *arg)
{
	struct control_client	*cc = arg;

	if (evbuffer_get_length(cc->out) > 0 &&
	    evbuffer_write(cc->out, fd) == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		control_close(cc, "%s", strerror(errno));
		return;
	}
	if (cc->paused && evbuffer_get_length(cc->out) <=
	    cc->ctl->server->lim.control_max_output / 2) {
		cc->paused = 0;
		if (!cc->eof)
			event_add(cc->rev, NULL);
		control_process(cc);
	}
	if (evbuffer_get_length(cc->out) == 0) {
		event_del(cc->wev);
		if (cc->eof && !cc->paused)
			control_process(cc);
	}
}

/*
 * Answer each whole message the client sent, until its output is over
 * the bound; once its input has ended and all is answered and written,
 * close it.
 */
static void
control_process(struct control_client *cc)
{
	struct control_req	 req;
	struct qmp_msg		 msg;

	while (!cc->closing) {
		if (evbuffer_get_length(cc->out) >=
		    cc->ctl->server->lim.control_max_output) {
			if (!cc->paused)
				control_log(cc, LOG_DEBUG, "%zu bytes unread "
				    "by it: not reading from it",
				    evbuffer_get_length(cc->out));
			cc->paused = 1;
			event_del(cc->rev);
			break;
		}
		switch (qmp_reader_next(cc->reader, cc->in, &msg)) {
		case QMP_NEED_MORE:
			if (cc->eof && evbuffer_get_length(cc->out) == 0)
				control_close(cc, "end of input");
			goto out;
		case QMP_MESSAGE:
			memset(&req, 0, sizeof(req));
			req.cc = cc;
			req.msg = &msg;
			reply_id(&msg, &req.id, &req.idlen);
			control_handle(&req);
			qmp_msg_clear(&msg);
			break;
		case QMP_ERR_JSON:
		case QMP_ERR_DEPTH:
			reply_error(cc->out, NULL, 0, "GenericError", "%s",
			    qmp_reader_error(cc->reader));
			break;
		case QMP_ERR_SIZE:
			reply_error(cc->out, NULL, 0, "GenericError",
			    "qmpmux: message larger than %zu bytes",
			    cc->max_message);
			control_close(cc, "message larger than %zu bytes",
			    cc->max_message);
			return;
		}
	}
out:
	if (!cc->closing && evbuffer_get_length(cc->out) > 0)
		event_add(cc->wev, NULL);
}

/* Answer a command with an error of class, in QEMU's format. */
static void
control_error(struct control_req *req, const char *class, const char *fmt,
    ...)
{
	char	*desc;
	va_list	 ap;

	va_start(ap, fmt);
	if (vasprintf(&desc, fmt, ap) == -1)
		fatal("%s", __func__);
	va_end(ap);
	reply_error(req->cc->out, req->id, req->idlen, class, "%s", desc);
	free(desc);
}

/* Answer a command with json as its return value, the id last. */
static void
control_return(struct control_req *req, const void *json, size_t len)
{
	evbuffer_add_printf(req->cc->out, "{\"return\": ");
	evbuffer_add(req->cc->out, json, len);
	if (req->id != NULL) {
		evbuffer_add_printf(req->cc->out, ", \"id\": ");
		evbuffer_add(req->cc->out, req->id, req->idlen);
	}
	evbuffer_add_printf(req->cc->out, "}\r\n");
}

/* Answer a command with what a yajl generator made, and free it. */
static void
control_return_gen(struct control_req *req, yajl_gen g)
{
	const unsigned char	*buf;
	size_t			 len;

	json_buf(g, &buf, &len);
	control_return(req, buf, len);
	json_free(g);
}

/* A yajl generator for a return value. */
static yajl_gen
control_gen(void)
{
	yajl_gen	 g;

	g = json_new();
	return (g);
}

/*
 * A string argument.  Every one is required, and control_check_args
 * has seen it there and a string before a command runs; "" stands for
 * one missing all the same, so that no caller meets a NULL.
 */
static const char *
control_arg_str(struct control_req *req, const char *name)
{
	const char	*path[] = { name, NULL };
	yajl_val	 v;

	if (req->args == NULL ||
	    (v = yajl_tree_get(req->args, path, yajl_t_string)) == NULL ||
	    YAJL_GET_STRING(v) == NULL)
		return ("");
	return (YAJL_GET_STRING(v));
}

/* Whether v is of type, as QEMU's visitor takes it. */
static int
control_is(yajl_val v, yajl_type type)
{
	switch (type) {
	case yajl_t_string:
		return (YAJL_IS_STRING(v));
	case yajl_t_array:
		return (YAJL_IS_ARRAY(v));
	case yajl_t_object:
		return (YAJL_IS_OBJECT(v));
	default:
		return (0);
	}
}

/*
 * Check a command's arguments against what it takes, as QEMU's visitor
 * does: each parameter in turn (missing, then of the wrong type), then
 * any it does not take.  -1 when the caller was answered.
 */
static int
control_check_args(struct control_req *req, const struct control_cmd *cmd)
{
	const struct control_param	*p;
	const char			*path[2] = { NULL, NULL };
	yajl_val			 v;
	size_t				 i;

	for (p = cmd->params; p->name != NULL; p++) {
		path[0] = p->name;
		v = req->args != NULL ? yajl_tree_get(req->args, path,
		    yajl_t_any) : NULL;
		if (v == NULL) {
			if (!p->required)
				continue;
			control_error(req, "GenericError",
			    "Parameter '%s' is missing", p->name);
			return (-1);
		}
		if (!control_is(v, p->type)) {
			control_error(req, "GenericError", "Invalid parameter "
			    "type for '%s', expected: %s", p->name,
			    p->type_name);
			return (-1);
		}
	}
	if (cmd->open || req->args == NULL)
		return (0);
	for (i = 0; i < req->args->u.object.len; i++) {
		for (p = cmd->params; p->name != NULL; p++) {
			if (strcmp(p->name, req->args->u.object.keys[i]) == 0)
				break;
		}
		if (p->name == NULL) {
			control_error(req, "GenericError",
			    "Parameter '%s' is unexpected",
			    req->args->u.object.keys[i]);
			return (-1);
		}
	}
	return (0);
}

/*
 * Where control_nul's parse is: the depth of maps and arrays (the
 * message's is 1), whether under "arguments", the argument it is
 * under (its key's bytes), and whether a NUL was found there.
 */
struct control_nul {
	unsigned int	 depth;
	int		 in_args;
	char		*arg;
	size_t		 arglen;
	int		 found;
};

/* A string under the arguments: stop at a NUL in it. */
static int
control_nul_string_cb(void *ctx, const unsigned char *s, size_t len)
{
	struct control_nul	*cn = ctx;

	if (cn->in_args && cn->depth >= 2 && memchr(s, '\0', len) != NULL) {
		cn->found = 1;
		return (0);
	}
	return (1);
}

/* A key: "arguments" at the top, an argument's name below it. */
static int
control_nul_key_cb(void *ctx, const unsigned char *s, size_t len)
{
	struct control_nul	*cn = ctx;

	if (cn->depth == 1) {
		cn->in_args = len == 9 && memcmp(s, "arguments", 9) == 0;
		return (1);
	}
	if (cn->in_args && cn->depth == 2) {
		free(cn->arg);
		if ((cn->arg = malloc(len + 1)) == NULL)
			fatal("%s", __func__);
		memcpy(cn->arg, s, len);
		cn->arglen = len;
	}
	return (control_nul_string_cb(ctx, s, len));
}

/* A map or an array opens. */
static int
control_nul_open_cb(void *ctx)
{
	((struct control_nul *)ctx)->depth++;
	return (1);
}

/* A map or an array closes. */
static int
control_nul_close_cb(void *ctx)
{
	((struct control_nul *)ctx)->depth--;
	return (1);
}

/*
 * Refuse a message whose arguments hold a NUL (\u0000) in a string or
 * a key at any depth: yajl's tree keeps a string without its length,
 * so "a\u0000b" would be read as "a".  One check, before any command
 * looks at its arguments.  -1 when the caller was answered.
 */
static int
control_check_nul(struct control_req *req)
{
	static const yajl_callbacks	 cbs = {
		.yajl_string = control_nul_string_cb,
		.yajl_map_key = control_nul_key_cb,
		.yajl_start_map = control_nul_open_cb,
		.yajl_end_map = control_nul_close_cb,
		.yajl_start_array = control_nul_open_cb,
		.yajl_end_array = control_nul_close_cb,
	};
	struct control_nul	 cn;
	struct evbuffer		*shown;
	yajl_handle		 h;
	size_t			 i;

	memset(&cn, 0, sizeof(cn));
	if ((h = yajl_alloc(&cbs, NULL, &cn)) == NULL)
		fatalx("%s: yajl_alloc failed", __func__);
	yajl_config(h, yajl_allow_comments, 1);
	if (yajl_parse(h, (const unsigned char *)req->msg->buf,
	    req->msg->len) == yajl_status_ok)
		yajl_complete_parse(h);
	yajl_free(h);
	if (cn.found) {
		/* the argument's name as sent, a NUL in it shown escaped */
		if ((shown = evbuffer_new()) == NULL)
			fatalx("%s: out of memory", __func__);
		for (i = 0; i < cn.arglen; i++) {
			if (cn.arg[i] == '\0')
				evbuffer_add(shown, "\\u0000", 6);
			else
				evbuffer_add(shown, &cn.arg[i], 1);
		}
		evbuffer_add(shown, "", 1);
		control_error(req, "GenericError", "qmpmux: argument '%s' "
		    "holds a NUL character (\\u0000)",
		    (const char *)evbuffer_pullup(shown, -1));
		evbuffer_free(shown);
	}
	free(cn.arg);
	return (cn.found ? -1 : 0);
}

/*
 * qmp_capabilities, as QEMU answers it: once, first, and with no
 * capability to enable, since the control socket offers none (not oob).
 */
static void
control_negotiate(struct control_req *req)
{
	char	 desc[256];
	int	 oob;

	/* QEMU checks the arguments first, then whether it is too late */
	if (reply_check_caps(req->msg, &oob, desc, sizeof(desc)) == -1)
		control_error(req, "GenericError", "%s", desc);
	else if (req->cc->negotiated)
		control_error(req, "CommandNotFound", "Capabilities "
		    "negotiation is already complete, command ignored");
	else if (oob)
		control_error(req, "GenericError", "Capability 'oob' not "
		    "available");
	else {
		req->cc->negotiated = 1;
		reply_return(req->cc->out, req->id, req->idlen);
	}
}

/*
 * One message: checked as QEMU checks it, then the arguments for a
 * NUL, then qmp_capabilities, the negotiation rule, and the command
 * with its arguments checked.
 */
static void
control_handle(struct control_req *req)
{
	const struct qmp_msg	*msg = req->msg;
	const struct control_cmd *cmd = NULL;
	const char		*args_path[] = { "arguments", NULL };
	yajl_val		 root;
	char			 desc[512];
	size_t			 i;

	if (reply_check_command(msg, 0, desc, sizeof(desc)) == -1) {
		/* QEMU has no id to give back when there is no object */
		if (msg->kind == QMP_KIND_NONOBJECT)
			req->id = NULL;
		control_error(req, "GenericError", "%s", desc);
		return;
	}
	if (strcmp(msg->name, "qmp_capabilities") != 0) {
		if (!req->cc->negotiated) {
			control_error(req, "CommandNotFound", "Expecting "
			    "capabilities negotiation with "
			    "'qmp_capabilities'");
			return;
		}
		for (i = 0; i < CONTROL_NCMDS; i++) {
			if (strcmp(control_cmds[i].name, msg->name) == 0)
				cmd = &control_cmds[i];
		}
		if (cmd == NULL || msg->name_truncated) {
			control_error(req, "CommandNotFound",
			    "The command %s has not been found", msg->name);
			return;
		}
	}
	/* the framer took it as QEMU would; yajl reads the arguments */
	if ((root = yajl_tree_parse(msg->buf, desc, sizeof(desc))) == NULL) {
		control_error(req, "GenericError", "qmpmux: the control "
		    "socket reads JSON as RFC 8259 has it (no single quotes)");
		return;
	}
	req->args = yajl_tree_get(root, args_path, yajl_t_object);
	if (control_check_nul(req) == 0) {
		if (cmd == NULL)
			control_negotiate(req);
		else if (control_check_args(req, cmd) == 0)
			cmd->fn(req);
	}
	yajl_tree_free(root);
}

/* query-version: qmpmuxd's version, and the dump format's. */
static void
control_query_version(struct control_req *req)
{
	char	 buf[128];
	int	 n;

	n = snprintf(buf, sizeof(buf), "{\"qmpmuxd\": \"%s\", "
	    "\"dump_version\": %d}", PACKAGE_VERSION, DUMP_VERSION);
	control_return(req, buf, (size_t)n);
}

/* query-vms: every running VM, in short. */
static void
control_query_vms(struct control_req *req)
{
	struct server	*s = req->cc->ctl->server;
	struct vm	*vm;
	yajl_gen	 g = control_gen();

	json_array_open(g);
	TAILQ_FOREACH(vm, &s->vms, entry)
		dump_vm_brief(g, vm);
	json_array_close(g);
	control_return_gen(req, g);
}

/* The VM a name argument names; NULL when the caller was answered. */
static struct vm *
control_find_vm(struct control_req *req)
{
	const char	*name = control_arg_str(req, "name");
	struct vm	*vm;

	if ((vm = server_find(req->cc->ctl->server, name)) == NULL)
		control_error(req, "DeviceNotFound", "qmpmux: no VM named %s",
		    name);
	return (vm);
}

/* query-vm: one VM in full, as in the dump. */
static void
control_query_vm(struct control_req *req)
{
	struct vm	*vm;
	yajl_gen	 g;

	if ((vm = control_find_vm(req)) == NULL)
		return;
	g = control_gen();
	dump_vm(g, vm);
	control_return_gen(req, g);
}

/* remove-vm: stop a VM; its clients get "qmpmux: VM removed". */
static void
control_remove_vm(struct control_req *req)
{
	struct vm	*vm;

	if ((vm = control_find_vm(req)) == NULL)
		return;
	control_log(req->cc, LOG_INFO, "(pid %ld) removes vm %s",
	    (long)req->cc->pid, vm->name);
	server_remove(req->cc->ctl->server, vm, "qmpmux: VM removed");
	reply_return(req->cc->out, req->id, req->idlen);
}

/*
 * A JSON value as the config file would spell it: a string as it is, a
 * number as written, a boolean as yes or no, an array of those joined
 * by spaces (allow, deny, allowed_uids).  NULL for any other type.
 */
static char *
control_value_text(yajl_val v)
{
	char	*text, *next, *joined;
	size_t	 i;

	if (YAJL_IS_STRING(v))
		text = strdup(v->u.string);
	else if (YAJL_IS_NUMBER(v))
		text = strdup(v->u.number.r);
	else if (YAJL_IS_TRUE(v))
		text = strdup("yes");
	else if (YAJL_IS_FALSE(v))
		text = strdup("no");
	else if (YAJL_IS_ARRAY(v)) {
		if ((text = strdup("")) == NULL)
			fatal("%s", __func__);
		for (i = 0; i < v->u.array.len; i++) {
			if (YAJL_IS_ARRAY(v->u.array.values[i]) ||
			    (next = control_value_text(
			    v->u.array.values[i])) == NULL) {
				free(text);
				return (NULL);
			}
			joined = text;
			if (asprintf(&text, "%s%s%s", joined, i > 0 ? " " :
			    "", next) == -1)
				fatal("%s", __func__);
			free(joined);
			free(next);
		}
		return (text);
	} else
		return (NULL);
	if (text == NULL)
		fatal("%s", __func__);
	return (text);
}

/* The fd named so by this client, or NULL. */
static struct control_fd *
control_fd_find(struct control_client *cc, const char *name)
{
	struct control_fd	*f;

	TAILQ_FOREACH(f, &cc->fds, entry) {
		if (f->name != NULL && strcmp(f->name, name) == 0)
			return (f);
	}
	return (NULL);
}

/* Forget a held fd without closing it: it has a new owner. */
static int
control_fd_take(struct control_client *cc, struct control_fd *f)
{
	int	 fd = f->fd;

	TAILQ_REMOVE(&cc->fds, f, entry);
	cc->nfds--;
	free(f->name);
	free(f);
	return (fd);
}

/*
 * getfd, as QEMU's: take one of the fds the last read that brought any
 * brought (the fd of this message, for a client that sends each
 * command with its own) and close the others, then check the name,
 * closing the fd taken if it is refused.  A name given before is
 * replaced, its fd closed.  The name's bound is qmpmuxd's own.
 */
static void
control_getfd(struct control_req *req)
{
	struct control_client	*cc = req->cc;
	struct control_fd	*f, *old;
	const char		*name = control_arg_str(req, "fdname");

	TAILQ_FOREACH(f, &cc->fds, entry) {
		if (f->name == NULL)
			break;
	}
	if (f == NULL && cc->fds_refused) {
		cc->fds_refused = 0;
		control_error(req, "GenericError", "qmpmux: the fds passed "
		    "were closed: a connection holds at most %u "
		    "(control_max_fds)", cc->ctl->server->lim.control_max_fds);
		return;
	}
	if (f == NULL) {
		control_error(req, "GenericError",
		    "No file descriptor supplied via SCM_RIGHTS");
		return;
	}
	control_fds_close_unnamed(cc, f);
	if (*name >= '0' && *name <= '9') {
		close(control_fd_take(cc, f));
		control_error(req, "GenericError", "Parameter 'fdname' expects "
		    "a name not starting with a digit");
		return;
	}
	if (strlen(name) > CONTROL_FDNAME_MAX) {
		close(control_fd_take(cc, f));
		control_error(req, "GenericError", "Parameter 'fdname' expects "
		    "a name of at most %d bytes", CONTROL_FDNAME_MAX);
		return;
	}
	if ((old = control_fd_find(cc, name)) != NULL)
		close(control_fd_take(cc, old));
	if ((f->name = strdup(name)) == NULL)
		fatal("%s", __func__);
	reply_return(cc->out, req->id, req->idlen);
}

/* closefd: close a named fd. */
static void
control_closefd(struct control_req *req)
{
	struct control_fd	*f;
	const char		*name = control_arg_str(req, "fdname");

	if ((f = control_fd_find(req->cc, name)) == NULL) {
		control_error(req, "GenericError",
		    "File descriptor named '%s' not found", name);
		return;
	}
	close(control_fd_take(req->cc, f));
	reply_return(req->cc->out, req->id, req->idlen);
}

/* dump: the whole dump document, also logged and written as SIGUSR1's. */
static void
control_dump(struct control_req *req)
{
	struct server	*s = req->cc->ctl->server;
	char		*json;
	size_t		 len;

	json = server_dump(s, &len);
	/* without its newline: it is a value inside the reply */
	control_return(req, json, len - 1);
	free(json);
}

/* reload: SIGHUP's, with the reason when the configuration is bad. */
static void
control_reload(struct control_req *req)
{
	char	 err[CONF_ERR_MAX];

	control_log(req->cc, LOG_INFO, "(pid %ld) reloads",
	    (long)req->cc->pid);
	if (server_reload(req->cc->ctl->server, err, sizeof(err)) == -1) {
		control_error(req, "GenericError", "qmpmux: reload failed: %s",
		    err);
		return;
	}
	reply_return(req->cc->out, req->id, req->idlen);
}

/*
 * restart: qmpmuxd executes itself again, the same pid, and the new
 * process answers (control_adopt); here only a restart that did not
 * happen is answered, with why.
 */
static void
control_restart(struct control_req *req)
{
	char	 err[256];

	control_log(req->cc, LOG_INFO, "(pid %ld) restarts qmpmuxd",
	    (long)req->cc->pid);
	if (restart(req->cc->ctl->server, req->cc->ctl, req->cc->id, req->id,
	    req->idlen, err, sizeof(err)) == -1)
		control_error(req, "GenericError", "qmpmux: restart failed, "
		    "the running qmpmuxd goes on: %s", err);
}

/* A trace queued output for a control client: write it. */
static void
control_trace_kick(void *arg)
{
	struct control_client	*cc = arg;

	if (!cc->closing)
		event_add(cc->wev, NULL);
}

/*
 * trace: from now on, every message of the VM comes to this connection
 * as a QMPMUX_TRACE event, within its output bound, until it closes or
 * the VM goes.  Tracing a VM it already traces changes nothing.
 */
static void
control_trace(struct control_req *req)
{
	struct control_client	*cc = req->cc;
	struct vm		*vm;

	if ((vm = control_find_vm(req)) == NULL)
		return;
	control_log(cc, LOG_INFO, "(pid %ld) traces vm %s", (long)cc->pid,
	    vm->name);
	/* the reply goes out before the first event */
	reply_return(cc->out, req->id, req->idlen);
	trace_new(vm, &cc->traces, cc->out,
	    cc->ctl->server->lim.control_max_output,
	    control_trace_kick, cc);
}

/*
 * Whether a passed fd is a unix stream socket, connected or listening
 * as asked: SO_DOMAIN, SO_TYPE and SO_ACCEPTCONN, and a peer for a
 * connected one.
 */
static int
control_fd_is(int fd, int listening)
{
	struct sockaddr_un	 sun;
	socklen_t		 len;
	int			 v;

	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == -1 ||
	    v != AF_UNIX)
		return (0);
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == -1 ||
	    v != SOCK_STREAM)
		return (0);
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == -1 ||
	    (v != 0) != (listening != 0))
		return (0);
	len = sizeof(sun);
	if (!listening && getpeername(fd, (struct sockaddr *)&sun, &len) == -1)
		return (0);
	return (1);
}

/* The name a passed listening socket is known by: its path, if any. */
static char *
control_fd_path(int fd, const char *fdname)
{
	struct sockaddr_un	 sun;
	socklen_t		 len = sizeof(sun);
	size_t			 n;
	char			*path;

	memset(&sun, 0, sizeof(sun));
	if (getsockname(fd, (struct sockaddr *)&sun, &len) == 0 &&
	    len > offsetof(struct sockaddr_un, sun_path) &&
	    sun.sun_path[0] != '\0') {
		n = len - offsetof(struct sockaddr_un, sun_path);
		path = strndup(sun.sun_path, n);
	} else if (asprintf(&path, "(unnamed, fd %s)", fdname) == -1)
		path = NULL;
	if (path == NULL)
		fatal("%s", __func__);
	return (path);
}

/* Whether a running VM listens on path, on a socket of its own making. */
static struct vm *
control_path_used(struct server *s, const char *path)
{
	struct vm		*vm;
	struct listener		*l;

	TAILQ_FOREACH(vm, &s->vms, entry) {
		TAILQ_FOREACH(l, &vm->listeners, entry) {
			if (!l->conf->passed &&
			    strcmp(l->conf->path, path) == 0)
				return (vm);
		}
	}
	return (NULL);
}

/*
 * The fds one add-vm uses, each once: the upstream's and the
 * listeners', taken from the client only once everything is checked.
 */
struct control_use {
	struct control_fd	**f;	/* room for every fd the client holds */
	struct listener_conf	**lc;	/* NULL: the upstream */
	size_t			 n;
};

/* The fd a name stands for, to be used once; NULL when answered. */
static struct control_fd *
control_use_fd(struct control_req *req, struct control_use *use,
    const char *name, int listening, struct listener_conf *lc)
{
	struct control_fd	*f;
	size_t			 i;

	if ((f = control_fd_find(req->cc, name)) == NULL) {
		control_error(req, "GenericError", "qmpmux: no fd named %s",
		    name);
		return (NULL);
	}
	for (i = 0; i < use->n; i++) {
		if (use->f[i] == f) {
			control_error(req, "GenericError", "qmpmux: fd %s is "
			    "used twice", name);
			return (NULL);
		}
	}
	if (!control_fd_is(f->fd, listening)) {
		control_error(req, "GenericError", "qmpmux: fd %s is not a %s "
		    "unix stream socket", name, listening ? "listening" :
		    "connected");
		return (NULL);
	}
	use->f[use->n] = f;
	use->lc[use->n++] = lc;
	return (f);
}

/*
 * Keep a key an add-vm set, for a restart to make the VM's conf again
 * (state.c): section "vm", or the listener's, by how it was given.
 */
static void
control_given(struct vm_conf *vc, const struct listener_conf *lc,
    const char *key, const char *value)
{
	char	*section;

	if (lc == NULL)
		section = strdup("vm");
	else if (asprintf(&section, "%s %s", lc->passed ? "passed" :
	    "listener", lc->path) == -1)
		section = NULL;
	if (section == NULL)
		fatal("%s", __func__);
	conf_entry_add(&vc->given, section, key, value, "add-vm", 0);
	free(section);
}

/* Set one config key from a JSON value; -1 when the caller was answered. */
static int
control_set_key(struct control_req *req, struct vm_conf *vc,
    struct listener_conf *lc, const char *what, const char *key, yajl_val v)
{
	char	*text, err[CONF_ERR_MAX];
	int	 rv;

	if ((text = control_value_text(v)) == NULL) {
		control_error(req, "GenericError", "Invalid parameter type for "
		    "'%s%s', expected: string", what, key);
		return (-1);
	}
	rv = lc != NULL ? conf_set_listener(lc, key, text, err, sizeof(err)) :
	    conf_set_vm(vc, key, text, err, sizeof(err));
	if (rv == 0)
		control_given(vc, lc, key, text);
	if (rv == -1) {
		if (strcmp(err, "unknown key") == 0)
			control_error(req, "GenericError",
			    "Parameter '%s%s' is unexpected", what, key);
		else
			control_error(req, "GenericError", "qmpmux: %s%s = %s: "
			    "%s", what, key, text, err);
	}
	free(text);
	return (rv);
}

/* One listener of add-vm, added to vc; -1 when the caller was answered. */
static int
control_add_listener(struct control_req *req, struct vm_conf *vc,
    struct control_use *use, size_t idx, yajl_val o)
{
	struct server		*s = req->cc->ctl->server;
	struct listener_conf	*lc, *other;
	const char		*key, *path = NULL, *fdname = NULL;
	char			 what[64], why[128];
	struct vm		*vm;
	yajl_val		 v;
	size_t			 i;

	snprintf(what, sizeof(what), "listeners[%zu]", idx);
	if (!YAJL_IS_OBJECT(o)) {
		control_error(req, "GenericError", "Invalid parameter type for "
		    "'%s', expected: object", what);
		return (-1);
	}
	for (i = 0; i < o->u.object.len; i++) {
		key = o->u.object.keys[i];
		v = o->u.object.values[i];
		if (strcmp(key, "path") != 0 && strcmp(key, "fd") != 0)
			continue;
		if (!YAJL_IS_STRING(v)) {
			control_error(req, "GenericError", "Invalid parameter "
			    "type for '%s.%s', expected: string", what, key);
			return (-1);
		}
		if (*key == 'p')
			path = YAJL_GET_STRING(v);
		else
			fdname = YAJL_GET_STRING(v);
	}
	if ((path == NULL) == (fdname == NULL)) {
		control_error(req, "GenericError", "qmpmux: %s: expected one "
		    "of path and fd", what);
		return (-1);
	}
	if (path != NULL) {
		if (*path != '/') {
			control_error(req, "GenericError", "qmpmux: %s.path = "
			    "%s: expected an absolute path", what, path);
			return (-1);
		}
		if (util_check_sun_path(path, why, sizeof(why)) == -1) {
			control_error(req, "GenericError", "qmpmux: %s.path = "
			    "%s: %s", what, path, why);
			return (-1);
		}
		if ((vm = control_path_used(s, path)) != NULL) {
			control_error(req, "GenericError", "qmpmux: %s.path = "
			    "%s: a listener of VM %s", what, path, vm->name);
			return (-1);
		}
		TAILQ_FOREACH(other, &vc->listeners, entry) {
			if (!other->passed && strcmp(other->path, path) == 0) {
				control_error(req, "GenericError", "qmpmux: "
				    "%s.path = %s: given twice", what, path);
				return (-1);
			}
		}
		lc = conf_listener_new(path);
	} else {
		lc = conf_listener_new("/");
		lc->passed = 1;
		if (control_use_fd(req, use, fdname, 1, lc) == NULL) {
			conf_listener_free(lc);
			return (-1);
		}
		free(lc->path);
		lc->path = control_fd_path(use->f[use->n - 1]->fd, fdname);
	}
	TAILQ_INSERT_TAIL(&vc->listeners, lc, entry);
	control_given(vc, lc, "", "");
	snprintf(what, sizeof(what), "listeners[%zu].", idx);
	for (i = 0; i < o->u.object.len; i++) {
		key = o->u.object.keys[i];
		if (strcmp(key, "path") == 0 || strcmp(key, "fd") == 0)
			continue;
		if (control_set_key(req, vc, lc, what, key,
		    o->u.object.values[i]) == -1)
			return (-1);
	}
	return (0);
}

/*
 * add-vm: a VM from the config file's keys, with its upstream and
 * listeners by path or by fds passed with getfd.  Everything is checked
 * before any fd is taken, so an error changes nothing; once taken, the
 * fds are the VM's, closed by it even when it cannot start.
 */
static void
control_add_vm(struct control_req *req)
{
	struct control_client	*cc = req->cc;
	struct server		*s = cc->ctl->server;
	const char		*lpath[] = { "listeners", NULL };
	const char		*name = control_arg_str(req, "name");
	const char		*upstream = control_arg_str(req, "upstream");
	const char		*key;
	struct control_use	 use;
	struct vm_conf		*vc;
	yajl_val		 ls;
	char			 err[CONF_ERR_MAX];
	size_t			 i;

	ls = yajl_tree_get(req->args, lpath, yajl_t_array);
	if (server_find(s, name) != NULL) {
		control_error(req, "GenericError", "qmpmux: a VM named %s "
		    "already runs", name);
		return;
	}
	if (!conf_valid_name(name)) {
		control_error(req, "GenericError", "qmpmux: name = %s: "
		    "expected at most 64 printable bytes, without spaces, "
		    "'/', '\"' or '\\'", name);
		return;
	}
	if (ls->u.array.len == 0) {
		control_error(req, "GenericError", "qmpmux: a VM needs at "
		    "least one listener");
		return;
	}
	/* each fd used once: at most the ones the client holds */
	memset(&use, 0, sizeof(use));
	if ((use.f = calloc(cc->nfds + 1, sizeof(*use.f))) == NULL ||
	    (use.lc = calloc(cc->nfds + 1, sizeof(*use.lc))) == NULL ||
	    (vc = calloc(1, sizeof(*vc))) == NULL)
		fatal("%s", __func__);
	conf_vm_copy(vc, &s->defaults);
	vc->from_file = 0;
	if ((vc->name = strdup(name)) == NULL ||
	    asprintf(&vc->where, "control client %d (pid %ld)", cc->id,
	    (long)cc->pid) == -1)
		fatal("%s", __func__);

	for (i = 0; i < req->args->u.object.len; i++) {
		key = req->args->u.object.keys[i];
		if (strcmp(key, "name") == 0 || strcmp(key, "upstream") == 0 ||
		    strcmp(key, "listeners") == 0)
			continue;
		if (control_set_key(req, vc, NULL, "", key,
		    req->args->u.object.values[i]) == -1)
			goto fail;
	}
	if (strncmp(upstream, "fd:", 3) == 0) {
		if (control_use_fd(req, &use, upstream + 3, 0, NULL) == NULL)
			goto fail;
		vc->upstream_mode = UPSTREAM_FD;
		control_given(vc, NULL, "upstream", "fd");
	} else if (conf_set_upstream(vc, upstream, err, sizeof(err)) == -1) {
		control_error(req, "GenericError", "qmpmux: upstream = %s: %s",
		    upstream, err);
		goto fail;
	} else
		control_given(vc, NULL, "upstream", upstream);
	for (i = 0; i < ls->u.array.len; i++) {
		if (control_add_listener(req, vc, &use, i,
		    ls->u.array.values[i]) == -1)
			goto fail;
	}

	/* all is well: the fds are the VM's from here on */
	for (i = 0; i < use.n; i++) {
		if (use.lc[i] == NULL)
			vc->upstream_fd = control_fd_take(cc, use.f[i]);
		else
			use.lc[i]->fd = control_fd_take(cc, use.f[i]);
	}
	control_log(cc, LOG_INFO, "(pid %ld) adds vm %s, upstream %s",
	    (long)cc->pid, name, upstream);
	if (server_add(s, vc) == -1)
		control_error(req, "GenericError", "qmpmux: VM %s could not be "
		    "started; the log says why", name);
	else
		reply_return(cc->out, req->id, req->idlen);
	free(vc);
	free(use.f);
	free(use.lc);
	return;

fail:
	conf_vm_clear(vc);
	free(vc);
	free(use.f);
	free(use.lc);
}

/*
 * A restart (state.c): the control socket and its clients as they are,
 * for the next process.  A closing client goes with this process.
 */
void
control_save(struct control *ctl, struct yajl_gen_t *g, struct state_fds *fds)
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

/* Close every fd of the control state that nothing takes over. */
static void
control_state_close(yajl_val st)
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
control_adopt_client(struct control *ctl, yajl_val c)
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
		    (vm = server_find(ctl->server, YAJL_GET_STRING(v))) != NULL)
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
 * clients, and the answer to the restart one of them asked for.  NULL
 * if the state has none, or path is not its path any more (then its
 * fds are closed): the caller makes the socket anew.
 */
struct control *
control_adopt(struct server *s, const char *path, struct yajl_val_s *root)
{
	struct control		*ctl;
	struct control_client	*cc;
	yajl_val		 st, cs, by;
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
	    (long long)fdstore_hash(path))
		old = path;
	if (path == NULL || old == NULL || fd < 0 || strcmp(old, path) != 0) {
		log_info("control: %s is no longer the control socket; its "
		    "clients are closed", old != NULL ? old : "(none)");
		control_state_close(st);
		if (old != NULL)
			unlink(old);
		return (NULL);
	}
	ctl = control_make(s, path, fd);
	ctl->next_id = (int)json_get_int(st, "next_id", 0);
	cs = json_get(st, "clients", yajl_t_array);
	for (i = 0; cs != NULL && i < cs->u.array.len; i++)
		control_adopt_client(ctl, cs->u.array.values[i]);
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
