/*
 * qmpmux-qemu: the emulator libvirt runs, in front of the real QEMU.
 * libvirt makes and binds a domain's monitor socket itself and passes
 * it to QEMU listening, as -chardev socket,id=charmonitor,fd=N.  This
 * hands that listening socket to qmpmuxd over its control socket,
 * with one end of a socket pair as the VM's upstream, gives QEMU the
 * other end of the pair as its monitor instead, and execs QEMU: the
 * pid libvirt sees is QEMU's, and libvirt's connections to the
 * monitor's path are qmpmuxd's clients, next to any others.
 *
 * Everything is done before the exec, within WRAP_TIMEOUT_MS, and
 * nothing forks: libvirt runs QEMU with -sandbox spawn=deny, and a VM
 * must start even when qmpmuxd hangs.  Whenever the monitor cannot be
 * handed over (no charmonitor, no qmpmuxd, a refusal, a timeout) QEMU
 * runs with its arguments unchanged, and the reason is on stderr,
 * which libvirt keeps in the domain's log.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"

#define WRAP_QEMU		"/usr/bin/qemu-system-x86_64"
#define WRAP_CONTROL		"/run/qmpmux/control.sock"
#define WRAP_CHARDEV_ID		"charmonitor"
#define WRAP_TIMEOUT_MS		5000	/* the whole talk with qmpmuxd */
#define WRAP_MAX_MESSAGE	(1 << 20)
#define WRAP_MAX_DEPTH		64
#define WRAP_ERR_MAX		512

/*
 * What the command line says and the talk with qmpmuxd so far.  chardev
 * is the index in argv of the charmonitor chardev's value, -1 when
 * there is none; lfd is the listening socket it names.  ctl is the
 * control connection, -1 when closed.
 */
struct wrap {
	const char		*control;
	const char		*listen_dir;
	char			*name;		/* -name guest=, decoded */
	int			 chardev;
	int			 lfd;
	int			 ctl;
	struct qc		 qc;		/* on ctl */
	long long		 deadline;	/* ms, CLOCK_MONOTONIC */
	char			 err[WRAP_ERR_MAX];
};

static void	wrap_log(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
static int	wrap_fail(struct wrap *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/*
 * One line on stderr, which libvirt keeps in the domain's log; escaped
 * (utf8_escape), since it may quote qmpmuxd's answer or the VM's name.
 */
static void
wrap_log(const char *fmt, ...)
{
	va_list	 ap;
	char	*line, *esc = NULL;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n != -1) {
		esc = utf8_escape_dup(line, (size_t)n, 0);
		free(line);
	}
	fprintf(stderr, "qmpmux-qemu: %s\n", esc != NULL ? esc :
	    "out of memory");
	free(esc);
}

/* Keep why the monitor is not handed over; always -1. */
static int
wrap_fail(struct wrap *w, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
	return (-1);
}

/* Now, in ms of CLOCK_MONOTONIC. */
static long long
wrap_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/*
 * QEMU's get_opt_value: a value runs up to a ',' that is not doubled,
 * and ",," stands for ','.  The value, decoded, in *value; where it
 * ended.
 */
static const char *
wrap_opt_value(const char *p, char **value)
{
	char	*q;

	if ((*value = q = malloc(strlen(p) + 1)) == NULL) {
		wrap_log("out of memory");
		exit(1);
	}
	for (; *p != '\0'; p++) {
		if (*p == ',') {
			if (p[1] != ',')
				break;
			p++;
		}
		*q++ = *p;
	}
	*q = '\0';
	return (p);
}

/*
 * The value of key in a QemuOpts argument as QEMU's opts_do_parse reads
 * it: "key=value" items split at lone commas; the first item, when it
 * has no '=', is the value of implied; another item without '=' is a
 * flag ("on", or "off" with a "no" prefix).  The last one given wins,
 * as qemu_opt_get finds it, but for "id": opts_parse_id takes the first
 * and ignores the rest.  NULL when it is not there.
 */
static char *
wrap_opt_get(const char *arg, const char *implied, const char *key)
{
	const char	*p = arg;
	char		*name, *value, *found = NULL;
	size_t		 len;
	int		 first = 1;

	while (*p != '\0') {
		len = strcspn(p, "=,");
		if (p[len] != '=' && first && implied != NULL) {
			if ((name = strdup(implied)) == NULL) {
				wrap_log("out of memory");
				exit(1);
			}
			p = wrap_opt_value(p, &value);
		} else if (p[len] != '=') {
			if ((name = strndup(p, len)) == NULL) {
				wrap_log("out of memory");
				exit(1);
			}
			p += len;
			if ((value = strdup(strncmp(name, "no", 2) == 0 ?
			    "off" : "on")) == NULL) {
				wrap_log("out of memory");
				exit(1);
			}
			if (strncmp(name, "no", 2) == 0)
				memmove(name, name + 2, strlen(name + 2) + 1);
		} else {
			if ((name = strndup(p, len)) == NULL) {
				wrap_log("out of memory");
				exit(1);
			}
			p = wrap_opt_value(p + len + 1, &value);
		}
		if (*p == ',')
			p++;
		first = 0;
		if (strcmp(name, key) == 0 && (found == NULL ||
		    strcmp(key, "id") != 0)) {
			free(found);
			found = value;
		} else
			free(value);
		free(name);
	}
	return (found);
}

/*
 * Whether an argument of QEMU's is the option opt: QEMU takes "-opt"
 * and "--opt" alike, and never "-opt=value".
 */
static int
wrap_is_opt(const char *arg, const char *opt)
{
	if (arg[0] != '-')
		return (0);
	arg++;
	if (arg[0] == '-')
		arg++;
	return (strcmp(arg, opt) == 0);
}

/*
 * Read the command line as QEMU does: each -chardev and -name takes the
 * argument after it.  The first chardev of id charmonitor is the
 * monitor libvirt made; the last -name's guest is the VM's name.  0 when
 * there is a monitor to hand over; otherwise -1, with w->err empty when
 * there is simply no monitor (capability probes, -version, -help).
 */
static int
wrap_scan(struct wrap *w, int argc, char **argv)
{
	char		*id, *backend, *fd, *guest, *end;
	int		 i, type, acc, dom;
	long		 n;
	socklen_t	 len;

	w->chardev = -1;
	for (i = 1; i + 1 < argc; i++) {
		if (wrap_is_opt(argv[i], "name")) {
			if ((guest = wrap_opt_get(argv[++i], "guest",
			    "guest")) != NULL) {
				free(w->name);
				w->name = guest;
			}
		} else if (wrap_is_opt(argv[i], "chardev")) {
			i++;
			if (w->chardev != -1)
				continue;
			id = wrap_opt_get(argv[i], NULL, "id");
			if (id != NULL && strcmp(id, WRAP_CHARDEV_ID) == 0)
				w->chardev = i;
			free(id);
		}
	}
	if (w->chardev == -1)
		return (-1);

	backend = wrap_opt_get(argv[w->chardev], "backend", "backend");
	fd = wrap_opt_get(argv[w->chardev], "backend", "fd");
	n = -1;
	if (fd != NULL && fd[0] >= '0' && fd[0] <= '9') {
		errno = 0;
		n = strtol(fd, &end, 10);
		if (errno != 0 || *end != '\0' || n > INT_MAX)
			n = -1;
	}
	if (backend == NULL || strcmp(backend, "socket") != 0 || n == -1) {
		free(backend);
		free(fd);
		return (wrap_fail(w, "the chardev %s is not a socket passed "
		    "by its fd", WRAP_CHARDEV_ID));
	}
	free(backend);
	free(fd);
	w->lfd = (int)n;
	len = sizeof(int);
	if (getsockopt(w->lfd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == -1 ||
	    getsockopt(w->lfd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 ||
	    getsockopt(w->lfd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == -1)
		return (wrap_fail(w, "fd %d of the chardev %s is not a "
		    "socket: %s", w->lfd, WRAP_CHARDEV_ID, strerror(errno)));
	if (dom != AF_UNIX || type != SOCK_STREAM || !acc)
		return (wrap_fail(w, "fd %d of the chardev %s is not a "
		    "listening unix stream socket", w->lfd, WRAP_CHARDEV_ID));
	if (w->name == NULL)
		return (wrap_fail(w, "the command line has no -name guest="));
	return (0);
}

/* What qc_next or qc_send said, as the domain's log should. */
static int
wrap_qc_fail(struct wrap *w, int rv, const char *err)
{
	if (rv == QC_TIMEOUT)
		return (wrap_fail(w, "qmpmuxd did not answer within %d ms",
		    WRAP_TIMEOUT_MS));
	if (rv == QC_EOF)
		return (wrap_fail(w, "qmpmuxd closed the connection"));
	return (wrap_fail(w, "talking to qmpmuxd: %s", err));
}

/* What is left of the whole talk's time, in ms. */
static int
wrap_left(struct wrap *w)
{
	long long	 left = w->deadline - wrap_now();

	return (left > 0 ? (int)left : 0);
}

/* The string at a, b in v, or NULL. */
static const char *
wrap_str(yajl_val v, const char *a, const char *b)
{
	const char	*path[3] = { a, b, NULL };
	yajl_val	 s = yajl_tree_get(v, path, yajl_t_string);

	return (s != NULL ? YAJL_GET_STRING(s) : NULL);
}

/* The next whole message from qmpmuxd, as a tree; NULL on failure. */
static yajl_val
wrap_recv(struct wrap *w)
{
	struct qmp_msg	 msg;
	yajl_val	 v;
	char		 err[256];
	int		 rv;

	if ((rv = qc_next(&w->qc, &msg, wrap_left(w), NULL, err,
	    sizeof(err))) != 1) {
		wrap_qc_fail(w, rv, err);
		return (NULL);
	}
	v = yajl_tree_parse(msg.buf, err, sizeof(err));
	qmp_msg_clear(&msg);
	if (v == NULL)
		wrap_fail(w, "an unreadable message from qmpmuxd: %s", err);
	return (v);
}

/*
 * Run one command, its text built in b (which is emptied), with fd
 * passed along it unless -1, and wait for the reply with id; 0 when it
 * returned.
 */
static int
wrap_cmd(struct wrap *w, struct evbuffer *b, const char *id, int fd)
{
	const char	*what = NULL, *desc;
	yajl_val	 v;
	size_t		 len = evbuffer_get_length(b);
	char		*text, err[256];
	int		 rv;

	if ((text = malloc(len + 1)) == NULL) {
		wrap_log("out of memory");
		exit(1);
	}
	evbuffer_remove(b, text, len);
	text[len] = '\0';
	rv = qc_send(&w->qc, text, len, fd, wrap_left(w), err, sizeof(err));
	free(text);
	if (rv != 0)
		return (wrap_qc_fail(w, rv, err));
	for (;;) {
		if ((v = wrap_recv(w)) == NULL)
			return (-1);
		if ((what = wrap_str(v, "id", NULL)) != NULL &&
		    strcmp(what, id) == 0)
			break;
		/* an event, or not ours */
		yajl_tree_free(v);
	}
	rv = 0;
	if (yajl_tree_get(v, (const char *[]){ "return", NULL },
	    yajl_t_any) == NULL) {
		desc = wrap_str(v, "error", "desc");
		rv = wrap_fail(w, "qmpmuxd refused %s: %s", id,
		    desc != NULL ? desc : "(no reason given)");
	}
	yajl_tree_free(v);
	return (rv);
}

/*
 * Hand the monitor to qmpmuxd: the listening socket and one end of a
 * socket pair, then add-vm.  On success *qfd is the pair's other end,
 * QEMU's, and the caller closes what it handed over; on failure
 * nothing is left open but the control connection, and qmpmuxd holds
 * nothing of ours once it is closed.
 */
static int
wrap_hand_over(struct wrap *w, int *qfd)
{
	struct sockaddr_un	 sun;
	struct evbuffer		*b;
	yajl_val		 v;
	char			*path = NULL;
	int			 sv[2] = { -1, -1 }, rv = -1;

	if ((b = evbuffer_new()) == NULL) {
		wrap_log("out of memory");
		exit(1);
	}
	if (util_sun_path(&sun, w->control) == -1) {
		wrap_fail(w, "the control socket %s cannot be reached: %s",
		    w->control, strerror(errno));
		goto done;
	}
	/* non-blocking: a full backlog is a refusal, not a wait */
	if ((w->ctl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1) {
		wrap_fail(w, "socket: %s", strerror(errno));
		goto done;
	}
	if (connect(w->ctl, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		wrap_fail(w, "qmpmuxd cannot be reached at %s: %s",
		    w->control, strerror(errno));
		goto done;
	}
	if (qc_init(&w->qc, w->ctl, WRAP_MAX_MESSAGE, WRAP_MAX_DEPTH) == -1) {
		wrap_log("out of memory");
		exit(1);
	}
	if ((v = wrap_recv(w)) == NULL)
		goto done;
	if (yajl_tree_get(v, (const char *[]){ "QMP", NULL },
	    yajl_t_object) == NULL) {
		yajl_tree_free(v);
		wrap_fail(w, "%s does not greet as a QMP monitor", w->control);
		goto done;
	}
	yajl_tree_free(v);
	evbuffer_add_printf(b, "{\"execute\": \"qmp_capabilities\", "
	    "\"id\": \"qmp_capabilities\"}\r\n");
	if (wrap_cmd(w, b, "qmp_capabilities", -1) == -1)
		goto done;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		wrap_fail(w, "socketpair: %s", strerror(errno));
		goto done;
	}
	evbuffer_add_printf(b, "{\"execute\": \"getfd\", \"arguments\": "
	    "{\"fdname\": \"listener\"}, \"id\": \"getfd listener\"}\r\n");
	if (wrap_cmd(w, b, "getfd listener", w->lfd) == -1)
		goto done;
	evbuffer_add_printf(b, "{\"execute\": \"getfd\", \"arguments\": "
	    "{\"fdname\": \"upstream\"}, \"id\": \"getfd upstream\"}\r\n");
	if (wrap_cmd(w, b, "getfd upstream", sv[0]) == -1)
		goto done;

	evbuffer_add_printf(b, "{\"execute\": \"add-vm\", \"arguments\": "
	    "{\"name\": ");
	reply_string(b, w->name);
	evbuffer_add_printf(b, ", \"upstream\": \"fd:upstream\", "
	    "\"listeners\": [{\"fd\": \"listener\", \"priority\": "
	    "\"manager\"}");
	if (w->listen_dir != NULL && *w->listen_dir != '\0') {
		if (asprintf(&path, "%s/%s.sock", w->listen_dir,
		    w->name) == -1) {
			wrap_log("out of memory");
			exit(1);
		}
		evbuffer_add_printf(b, ", {\"path\": ");
		reply_string(b, path);
		evbuffer_add_printf(b, ", \"read_only\": true}");
	}
	evbuffer_add_printf(b, "]}, \"id\": \"add-vm\"}\r\n");
	if (wrap_cmd(w, b, "add-vm", -1) == -1)
		goto done;

	/* QEMU's end is inherited; ours is qmpmuxd's now */
	if (fcntl(sv[1], F_SETFD, 0) == -1) {
		/* the VM goes when its upstream is closed below */
		wrap_fail(w, "fcntl: %s", strerror(errno));
		goto done;
	}
	*qfd = sv[1];
	sv[1] = -1;
	rv = 0;

done:
	if (sv[0] != -1)
		close(sv[0]);
	if (sv[1] != -1)
		close(sv[1]);
	if (w->ctl != -1)
		close(w->ctl);
	w->ctl = -1;
	qc_clear(&w->qc);
	free(path);
	evbuffer_free(b);
	return (rv);
}

int
main(int argc, char **argv)
{
	struct wrap	 w;
	const char	*qemu = getenv("QMPMUX_QEMU");
	char		*chardev;
	int		 qfd;

	if (qemu == NULL || *qemu == '\0')
		qemu = WRAP_QEMU;
	memset(&w, 0, sizeof(w));
	w.ctl = -1;
	w.lfd = -1;
	w.control = getenv("QMPMUX_CONTROL");
	if (w.control == NULL || *w.control == '\0')
		w.control = WRAP_CONTROL;
	w.listen_dir = getenv("QMPMUX_LISTEN_DIR");
	w.deadline = wrap_now() + WRAP_TIMEOUT_MS;

	if (wrap_scan(&w, argc, argv) == -1) {
		if (w.err[0] != '\0')
			wrap_log("QEMU keeps its own monitor: %s", w.err);
	} else if (wrap_hand_over(&w, &qfd) == -1) {
		wrap_log("vm %s: QEMU keeps its own monitor: %s", w.name,
		    w.err);
	} else {
		/* the listening socket is qmpmuxd's alone: QEMU must not
		 * accept on it */
		close(w.lfd);
		if (asprintf(&chardev, "socket,id=%s,fd=%d,server=off",
		    WRAP_CHARDEV_ID, qfd) == -1) {
			wrap_log("out of memory");
			exit(1);
		}
		argv[w.chardev] = chardev;
		wrap_log("vm %s: the monitor is served by qmpmuxd at %s",
		    w.name, w.control);
	}
	argv[0] = (char *)(uintptr_t)qemu;
	execv(qemu, argv);
	wrap_log("cannot run QEMU at %s: %s", qemu, strerror(errno));
	return (127);
}
