/*
 * The control socket's transport: a QMP monitor of qmpmuxd itself, so
 * that QMP client libraries can drive it; its commands are the owner's
 * table (control-cmd.c).  It greets as QEMU does, with
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

#include "control.h"

#define CONTROL_FDS_PER_READ	16
#define CONTROL_READ_SIZE	16384

static void	control_accept_cb(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	control_accept(struct control *, int);
static void	control_listen_on(struct control *, int);
static void	control_store_name(const struct control *, char *, size_t);
static void	control_accept_error_cb(struct evconnlistener *, void *);
static void	control_retry_cb(int, short, void *);
static void	control_read_cb(int, short, void *);
static void	control_write_cb(int, short, void *);
static void	control_reap_cb(int, short, void *);
static void	control_handle(struct control_req *);
static void	control_client_free(struct control_client *);
static void	control_close(struct control_client *, const char *, ...)
		    LOG_PRINTF(2, 3);

/*
 * The control socket on fd, listening at path, answering the owner's
 * commands (ops); no clients yet.  A take-over makes it so, on the
 * socket of the process before.
 */
struct control *
control_make(struct server *s, const char *path, int fd,
    const struct control_ops *ops)
{
	struct control	*ctl;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL ||
	    (ctl->path = strdup(path)) == NULL)
		fatal("%s", __func__);
	ctl->server = s;
	ctl->ops = ops;
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
control_new(struct server *s, const char *path, const struct control_ops *ops)
{
	struct control	*ctl;
	int		 fd;
	char		 err[256];

	if ((fd = util_unix_listen_as(path, 0600, (uid_t)-1, (gid_t)-1, err,
	    sizeof(err))) == -1) {
		log_warnx("control: cannot listen on %s: %s", path, err);
		return (NULL);
	}
	ctl = control_make(s, path, fd, ops);
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
	fdstore_name(buf, len, "k", NULL, 0, "%08x", util_hash(ctl->path));
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
void
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
struct control_client *
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
void
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
void
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
void
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
void
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
void
control_return_gen(struct control_req *req, yajl_gen g)
{
	const unsigned char	*buf;
	size_t			 len;

	json_buf(g, &buf, &len);
	control_return(req, buf, len);
	json_free(g);
}

/*
 * A string argument.  Every one is required, and control_check_args
 * has seen it there and a string before a command runs; "" stands for
 * one missing all the same, so that no caller meets a NULL.
 */
const char *
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
		for (i = 0; req->cc->ctl->ops->cmds[i].name != NULL; i++) {
			if (strcmp(req->cc->ctl->ops->cmds[i].name,
			    msg->name) == 0)
				cmd = &req->cc->ctl->ops->cmds[i];
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

/* The fd named so by this client, or NULL. */
struct control_fd *
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
int
control_fd_take(struct control_client *cc, struct control_fd *f)
{
	int	 fd = f->fd;

	TAILQ_REMOVE(&cc->fds, f, entry);
	cc->nfds--;
	free(f->name);
	free(f);
	return (fd);
}

/* A trace queued output for a control client: write it. */
void
control_trace_kick(void *arg)
{
	struct control_client	*cc = arg;

	if (!cc->closing)
		event_add(cc->wev, NULL);
}

