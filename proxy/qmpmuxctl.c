/*
 * qmpmuxctl: see and steer a running qmpmuxd through its control socket,
 * which is a QMP monitor: greeting, qmp_capabilities, then one command
 * and its reply.  People get tables; --json gives programs the raw
 * return value.  Each way a command can fail has its own exit status,
 * so that scripts can tell "the daemon is not running" from "no such
 * VM".  What a client or QEMU chose (a command's name, a message of a
 * trace) reaches the terminal only escaped (ctl_esc, ctl_write_json).
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"

#define CTL_CONTROL	"/run/qmpmux/control.sock"
#define CTL_WAIT_MS	30000	/* the longest a reply may take */
#define CTL_MAX_MESSAGE	(64 << 20)
#define CTL_ESC_RING	8	/* ctl_esc's results alive at once */

/* The exit statuses of qmpmuxctl(1). */
enum {
	EXIT_OK = 0,
	EXIT_USAGE = 1,		/* bad command line */
	EXIT_DAEMON = 2,	/* no daemon to talk to, or it broke off */
	EXIT_REFUSED = 3,	/* the daemon answered with an error */
	EXIT_NOVM = 4,		/* no VM of that name */
};

struct ctl {
	int			 fd;
	struct qc		 qc;		/* on fd */
	int			 json;
};

static void	usage(FILE *, int) __attribute__((noreturn));
static void	die(int, const char *, ...)
		    __attribute__((noreturn, format(printf, 2, 3)));

/* The synopsis of qmpmuxctl(1). */
static void
usage(FILE *f, int status)
{
	fprintf(f,
	    "usage: qmpmuxctl [--control PATH] [--json] list\n"
	    "       qmpmuxctl [--control PATH] [--json] status VM\n"
	    "       qmpmuxctl [--control PATH] dump\n"
	    "       qmpmuxctl [--control PATH] add VM upstream=MODE:PATH "
	    "listen=PATH [KEY=VALUE ...]\n"
	    "       qmpmuxctl [--control PATH] remove VM\n"
	    "       qmpmuxctl [--control PATH] break-lock VM\n"
	    "       qmpmuxctl [--control PATH] reload\n"
	    "       qmpmuxctl [--control PATH] restart\n"
	    "       qmpmuxctl [--control PATH] [--json] trace VM\n"
	    "       qmpmuxctl --help | --version\n");
	exit(status);
}

/*
 * s escaped for a terminal (utf8_escape), or "?" for none.  A table's
 * line quotes several fields at once, so the last CTL_ESC_RING results
 * stay valid; qmpmuxctl exits soon after.
 */
static const char *
ctl_esc(const char *s)
{
	static char	*ring[CTL_ESC_RING];
	static size_t	 next;
	char		*p;

	if (s == NULL)
		return ("?");
	if ((p = utf8_escape_dup(s, strlen(s), 0)) == NULL) {
		fputs("qmpmuxctl: out of memory\n", stderr);
		exit(EXIT_USAGE);
	}
	free(ring[next]);
	ring[next] = p;
	next = (next + 1) % CTL_ESC_RING;
	return (p);
}

/*
 * One line on stderr, then the exit status that says what failed.  The
 * line may quote the daemon (an error's desc, a name it was given), so
 * it is escaped whole.
 */
static void
die(int status, const char *fmt, ...)
{
	va_list	 ap;
	char	*line;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) == -1)
		line = NULL;
	va_end(ap);
	fprintf(stderr, "qmpmuxctl: %s\n", line != NULL ? ctl_esc(line) :
	    "out of memory");
	free(line);
	exit(status);
}

/*
 * JSON text out, kept JSON of the same value but with every control a
 * \u00XX escape (utf8_escape's UTF8_ESCAPE_JSON): what --json, dump and
 * a trace print may go to a terminal.
 */
static void
ctl_write_json(const void *buf, size_t len)
{
	char	*p;

	if ((p = utf8_escape_dup(buf, len, UTF8_ESCAPE_JSON)) == NULL)
		die(EXIT_USAGE, "out of memory");
	fputs(p, stdout);
	free(p);
}

/*
 * The next whole message from the daemon into msg, waiting at most
 * timeout ms (-1: no bound) under mask; 0, or QC_SIGNAL.  Dies on the
 * end of the connection, an error or the time run out.
 */
static int
ctl_next(struct ctl *c, struct qmp_msg *msg, int timeout,
    const sigset_t *mask)
{
	char	 err[256];
	int	 rv;

	switch (rv = qc_next(&c->qc, msg, timeout, mask, err, sizeof(err))) {
	case 1:
		return (0);
	case QC_SIGNAL:
		return (rv);
	case QC_TIMEOUT:
		die(EXIT_DAEMON, "no reply within %d s", CTL_WAIT_MS / 1000);
	case QC_EOF:
		die(EXIT_DAEMON, "the daemon closed the connection");
	default:
		die(EXIT_DAEMON, "%s", err);
	}
}

/* The next whole message from the daemon, as a tree; dies on EOF. */
static yajl_val
ctl_recv(struct ctl *c)
{
	struct qmp_msg	 msg;
	yajl_val	 v;
	char		 err[256];

	ctl_next(c, &msg, CTL_WAIT_MS, NULL);
	v = yajl_tree_parse(msg.buf, err, sizeof(err));
	qmp_msg_clear(&msg);
	if (v == NULL)
		die(EXIT_DAEMON, "unreadable reply: %s", err);
	return (v);
}

/* Send a whole message, with its line end. */
static void
ctl_send(struct ctl *c, const char *buf, size_t len)
{
	char	 err[256];

	if (qc_send(&c->qc, buf, len, -1, -1, err, sizeof(err)) != 0)
		die(EXIT_DAEMON, "%s", err);
}

/* The string at path in v, or NULL. */
static const char *
ctl_str(yajl_val v, const char *a, const char *b)
{
	const char	*path[3] = { a, b, NULL };
	yajl_val	 s = yajl_tree_get(v, path, yajl_t_string);

	return (s != NULL ? YAJL_GET_STRING(s) : NULL);
}

/*
 * Run one command: send it with its arguments (a JSON object, or NULL)
 * and return the reply's "return".  An error reply ends qmpmuxctl with
 * its desc, and the status its class says.
 */
static yajl_val
ctl_run(struct ctl *c, const char *cmd, const char *args, yajl_val *reply)
{
	static const char	*ret_path[] = { "return", NULL };
	char			*line;
	const char		*class, *desc;
	yajl_val		 v;
	int			 n;

	n = asprintf(&line, "{\"execute\": \"%s\"%s%s, \"id\": \"ctl\"}\n",
	    cmd, args != NULL ? ", \"arguments\": " : "",
	    args != NULL ? args : "");
	if (n == -1)
		die(EXIT_USAGE, "out of memory");
	ctl_send(c, line, (size_t)n);
	free(line);
	for (;;) {
		v = ctl_recv(c);
		/* events (a trace) are not this command's reply */
		if (ctl_str(v, "event", NULL) == NULL)
			break;
		yajl_tree_free(v);
	}
	if ((class = ctl_str(v, "error", "class")) != NULL) {
		desc = ctl_str(v, "error", "desc");
		if (strcmp(class, "DeviceNotFound") == 0)
			die(EXIT_NOVM, "%s", desc != NULL ? desc : class);
		die(EXIT_REFUSED, "%s", desc != NULL ? desc : class);
	}
	*reply = v;
	return (yajl_tree_get(v, ret_path, yajl_t_any));
}

/* Connect, read the greeting, negotiate. */
static void
ctl_open(struct ctl *c, const char *path)
{
	struct sockaddr_un	 sun;
	yajl_val		 v, ret;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die(EXIT_USAGE, "%s: the path is too long for a unix socket",
		    path);
	memcpy(sun.sun_path, path, strlen(path));
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die(EXIT_DAEMON, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		die(EXIT_DAEMON, "cannot reach qmpmuxd at %s: %s", path,
		    strerror(errno));
	if (qc_init(&c->qc, c->fd, CTL_MAX_MESSAGE, 1024) == -1)
		die(EXIT_USAGE, "out of memory");
	v = ctl_recv(c);
	if (ctl_str(v, "QMP", "package") == NULL &&
	    yajl_tree_get(v, (const char *[]){ "QMP", NULL }, yajl_t_object)
	    == NULL)
		die(EXIT_DAEMON, "%s does not greet as a QMP monitor", path);
	yajl_tree_free(v);
	ret = ctl_run(c, "qmp_capabilities", NULL, &v);
	(void)ret;
	yajl_tree_free(v);
}

/* Print a JSON value as JSON, for --json and dump. */
static void
ctl_print_json(yajl_val v)
{
	yajl_gen		 g;
	const unsigned char	*buf;
	size_t			 len;

	if ((g = json_new()) == NULL)
		die(EXIT_USAGE, "out of memory");
	yajl_gen_config(g, yajl_gen_beautify, 1);
	json_tree(g, v);
	json_buf(g, &buf, &len);
	ctl_write_json(buf, len);
	json_free(g);
}

/* A number at path in v, or -1 when it is not there (null). */
static double
ctl_num(yajl_val v, const char *a, const char *b)
{
	const char	*path[3] = { a, b, NULL };
	yajl_val	 n = yajl_tree_get(v, path, yajl_t_number);

	return (n != NULL ? YAJL_GET_DOUBLE(n) : -1);
}

/* How many commands of a priority class wait, or -1. */
static double
ctl_queued(yajl_val vm, const char *prio)
{
	const char	*path[] = { "commands", "queued_by_priority", prio,
			    NULL };
	yajl_val	 n = yajl_tree_get(vm, path, yajl_t_number);

	return (n != NULL ? YAJL_GET_DOUBLE(n) : -1);
}

/* An age in human units: 42s, 3m05s, 2h01m, 4d03h. */
static const char *
ctl_age(double s, char *buf, size_t len)
{
	long	 t;

	if (s < 0) {
		snprintf(buf, len, "-");
		return (buf);
	}
	t = lround(s);
	if (s < 10)
		snprintf(buf, len, "%.1fs", s);
	else if (t < 60)
		snprintf(buf, len, "%lds", t);
	else if (t < 3600)
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
	else if (t < 86400)
		snprintf(buf, len, "%ldh%02ldm", t / 3600, t % 3600 / 60);
	else
		snprintf(buf, len, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
	return (buf);
}

/*
 * A VM's state for people: the ones that need a look are in capitals
 * (STALLED, LOST), so they stand out in a long list.
 */
static const char *
ctl_state(const char *state, char *buf, size_t len)
{
	size_t	 i;

	if (state == NULL)
		return ("?");
	if (strcmp(state, "stalled") != 0 && strcmp(state, "lost") != 0)
		return (state);
	for (i = 0; state[i] != '\0' && i + 1 < len; i++)
		buf[i] = (char)(state[i] - 'a' + 'A');
	buf[i] = '\0';
	return (buf);
}

/* list: one line per VM. */
static void
ctl_list(yajl_val ret)
{
	char		 a[32], st[32], up[512];
	yajl_val	 vm;
	const char	*state;
	double		 stalled;
	size_t		 i, marked = 0;

	if (!YAJL_IS_ARRAY(ret))
		die(EXIT_DAEMON, "query-vms did not return a list");
	printf("%-20s %-11s %8s %-8s %7s %6s %6s %9s  %s\n", "VM", "STATE",
	    "FOR", "READS", "CLIENTS", "QUEUED", "FLIGHT", "BACKLOG",
	    "UPSTREAM");
	for (i = 0; i < ret->u.array.len; i++) {
		vm = ret->u.array.values[i];
		state = ctl_str(vm, "state", NULL);
		stalled = ctl_num(vm, "stalled_for", NULL);
		if (stalled >= 0 || (state != NULL &&
		    strcmp(state, "lost") == 0))
			marked++;
		snprintf(up, sizeof(up), "%s:%s",
		    ctl_esc(ctl_str(vm, "upstream", "mode")),
		    ctl_str(vm, "upstream", "path") != NULL ?
		    ctl_esc(ctl_str(vm, "upstream", "path")) : "(fd)");
		printf("%-20s %-11s %8s %-8s %7.0f %6.0f %6.0f %9.0f  %s\n",
		    ctl_esc(ctl_str(vm, "name", NULL)), ctl_esc(ctl_state(state,
		    st, sizeof(st))), ctl_age(stalled >= 0 ? stalled :
		    ctl_num(vm, "state_for", NULL), a, sizeof(a)),
		    yajl_tree_get(vm, (const char *[]){ "reads_paused",
		    NULL }, yajl_t_true) != NULL ? "paused" : "running",
		    ctl_num(vm, "clients", NULL), ctl_num(vm, "queued", NULL),
		    ctl_num(vm, "in_flight", NULL),
		    ctl_num(vm, "backlog_events", NULL), up);
	}
	if (marked > 0)
		printf("\n%zu VM%s STALLED or LOST: qmpmuxctl status VM "
		    "shows who waits on it\n", marked, marked == 1 ? "" : "s");
}

/* status VM: the VM in full, for people. */
/*
 * The VM's advisory lock in a line: its holder, reason, how long it has
 * held it and has left, and how many commands wait for it.
 */
static void
ctl_lock(yajl_val vm)
{
	yajl_val	 w, h;
	char		 a[32], b[32];
	size_t		 n;

	w = yajl_tree_get(vm, (const char *[]){ "lock", "waiters", NULL },
	    yajl_t_array);
	n = w != NULL ? w->u.array.len : 0;
	h = yajl_tree_get(vm, (const char *[]){ "lock", "holder", NULL },
	    yajl_t_object);
	if (h == NULL) {
		printf("  lock      free, %zu waiting\n", n);
		return;
	}
	printf("  lock      token %.0f, client %.0f%s (%s), reason \"%s\", "
	    "held for %s, expires in %s, %zu waiting\n",
	    ctl_num(vm, "lock", "token"), ctl_num(h, "client", NULL),
	    yajl_tree_get(h, (const char *[]){ "gone", NULL }, yajl_t_true) !=
	    NULL ? " (gone)" : "", ctl_esc(ctl_str(h, "listener", NULL)),
	    ctl_esc(ctl_str(vm, "lock", "reason")),
	    ctl_age(ctl_num(vm, "lock", "held_for"), a, sizeof(a)),
	    ctl_age(ctl_num(vm, "lock", "expires_in"), b, sizeof(b)), n);
}

static void
ctl_status(yajl_val vm)
{
	char		 a[32], st[32], cl[32];
	yajl_val	 list, x;
	const char	*state = ctl_str(vm, "state", NULL);
	double		 dl;
	size_t		 i;

	printf("vm %s: %s for %s", ctl_esc(ctl_str(vm, "name", NULL)),
	    ctl_esc(ctl_state(state, st, sizeof(st))), ctl_age(ctl_num(vm,
	    "stalled_for", NULL) >= 0 ? ctl_num(vm, "stalled_for", NULL) :
	    ctl_num(vm, "upstream", "state_for"), a, sizeof(a)));
	printf(" (%s, defined at %s)\n", ctl_esc(ctl_str(vm, "origin", NULL)),
	    ctl_str(vm, "defined_at", NULL) != NULL ?
	    ctl_esc(ctl_str(vm, "defined_at", NULL)) : "-");
	printf("  upstream  %s:%s, %s, QEMU %s\n",
	    ctl_esc(ctl_str(vm, "upstream", "mode")),
	    ctl_str(vm, "upstream", "path") != NULL ?
	    ctl_esc(ctl_str(vm, "upstream", "path")) : "(fd)",
	    ctl_esc(ctl_str(vm, "upstream", "state")),
	    ctl_str(vm, "upstream", "qemu") != NULL ?
	    ctl_esc(ctl_str(vm, "upstream", "qemu")) : "(unknown)");
	printf("  reads     %s", yajl_tree_get(vm, (const char *[]){ "reads",
	    "paused", NULL }, yajl_t_true) != NULL ? "paused" : "running");
	if (ctl_num(vm, "reads", "paused_for") >= 0)
		printf(" for %s", ctl_age(ctl_num(vm, "reads", "paused_for"),
		    a, sizeof(a)));
	printf("\n  backlog   %.0f/%.0f events, %.0f/%.0f bytes\n",
	    ctl_num(vm, "backlog", "events"), ctl_num(vm, "backlog",
	    "max_events"), ctl_num(vm, "backlog", "bytes"),
	    ctl_num(vm, "backlog", "max_bytes"));
	printf("  commands  %.0f/%.0f in flight, %.0f queued (manager "
	    "%.0f, normal %.0f, background %.0f; at most %.0f each)\n",
	    ctl_num(vm, "commands", "in_flight"), ctl_num(vm, "commands",
	    "max_in_flight"), ctl_num(vm, "commands", "queued"),
	    ctl_queued(vm, "manager"),
	    ctl_queued(vm, "normal"),
	    ctl_queued(vm, "background"),
	    ctl_num(vm, "commands", "max_queued"));
	ctl_lock(vm);
	list = yajl_tree_get(vm, (const char *[]){ "commands", "list", NULL },
	    yajl_t_array);
	for (i = 0; list != NULL && i < list->u.array.len; i++) {
		x = list->u.array.values[i];
		dl = ctl_num(x, "deadline_in", NULL);
		/* A client that hung up leaves its command with QEMU. */
		if (ctl_num(x, "client", NULL) >= 0)
			snprintf(cl, sizeof(cl), "%.0f", ctl_num(x, "client",
			    NULL));
		else
			snprintf(cl, sizeof(cl), "-");
		printf("    %-24s client %-4s %-6s %8s ago", ctl_esc(ctl_str(x,
		    "command", NULL)), cl,
		    yajl_tree_get(x, (const char *[]){ "sent", NULL },
		    yajl_t_true) != NULL ? "sent" : "queued",
		    ctl_age(ctl_num(x, "age", NULL), a, sizeof(a)));
		if (yajl_tree_get(x, (const char *[]){ "timed_out", NULL },
		    yajl_t_true) != NULL)
			printf(", TIMED OUT, QEMU has not answered");
		else if (dl >= 0)
			printf(", deadline in %s", ctl_age(dl, a, sizeof(a)));
		printf("\n");
	}
	list = yajl_tree_get(vm, (const char *[]){ "clients", NULL },
	    yajl_t_array);
	printf("  clients   %zu\n", list != NULL ? list->u.array.len : 0);
	for (i = 0; list != NULL && i < list->u.array.len; i++) {
		x = list->u.array.values[i];
		printf("    %-4.0f pid %-7.0f uid %-6.0f %-12s %-10s %s\n",
		    ctl_num(x, "id", NULL), ctl_num(x, "pid", NULL),
		    ctl_num(x, "uid", NULL), ctl_esc(ctl_str(x, "state", NULL)),
		    ctl_esc(ctl_str(x, "priority", NULL)),
		    ctl_esc(ctl_str(x, "listener", NULL)));
	}
	printf("  counters  %.0f commands, %.0f timeouts, %.0f late replies "
	    "dropped, %.0f events, %.0f reconnects\n",
	    ctl_num(vm, "counters", "commands"),
	    ctl_num(vm, "counters", "timeouts_sent") +
	    ctl_num(vm, "counters", "timeouts_unsent"),
	    ctl_num(vm, "counters", "late_replies_dropped"),
	    ctl_num(vm, "counters", "events"),
	    ctl_num(vm, "counters", "reconnects"));
}

/* Append s to b as a JSON string. */
static void
ctl_json_str(struct evbuffer *b, const char *s)
{
	reply_string(b, s);
}

/*
 * The listener keys, as conf.c's table has them: they go to the last
 * listen= before them.
 */
static int
ctl_listener_key(const char *key)
{
	int	 i;

	for (i = 0; i < conf_option_count(); i++) {
		if (strcmp(conf_option_name(i), key) == 0)
			return (conf_option_is_listener(i));
	}
	return (0);
}

/* add VM KEY=VALUE...: the arguments of add-vm, as JSON. */
static char *
ctl_add_args(const char *name, int argc, char **argv)
{
	struct evbuffer	*vmkeys, *ls;
	char		*out, *eq, *key, word[64];
	int		 i, nls = 0, inls = 0;
	size_t		 len;

	/* refused before anything is made: die leaves nothing behind */
	for (i = 0; i < argc; i++) {
		if ((eq = strchr(argv[i], '=')) == NULL || eq == argv[i])
			die(EXIT_USAGE, "%s: expected KEY=VALUE", argv[i]);
		snprintf(word, sizeof(word), "%.*s", (int)(eq - argv[i]),
		    argv[i]);
		if (strcmp(word, "listen") == 0)
			nls++;
		else if (nls == 0 && ctl_listener_key(word))
			die(EXIT_USAGE, "%s: a listener's key goes after its "
			    "listen=PATH", word);
	}
	if (nls == 0)
		die(EXIT_USAGE, "add %s: give at least one listen=PATH", name);
	nls = 0;
	if ((vmkeys = evbuffer_new()) == NULL || (ls = evbuffer_new()) == NULL)
		die(EXIT_USAGE, "out of memory");
	evbuffer_add_printf(vmkeys, "{\"name\": ");
	ctl_json_str(vmkeys, name);
	for (i = 0; i < argc; i++) {
		eq = strchr(argv[i], '=');
		if ((key = strndup(argv[i], (size_t)(eq - argv[i]))) == NULL)
			die(EXIT_USAGE, "out of memory");
		if (strcmp(key, "listen") == 0) {
			evbuffer_add_printf(ls, "%s{\"path\": ",
			    inls ? "}, " : (nls > 0 ? ", " : ""));
			ctl_json_str(ls, eq + 1);
			nls++;
			inls = 1;
		} else if (ctl_listener_key(key)) {
			evbuffer_add_printf(ls, ", ");
			ctl_json_str(ls, key);
			evbuffer_add_printf(ls, ": ");
			ctl_json_str(ls, eq + 1);
		} else {
			evbuffer_add_printf(vmkeys, ", ");
			ctl_json_str(vmkeys, key);
			evbuffer_add_printf(vmkeys, ": ");
			ctl_json_str(vmkeys, eq + 1);
		}
		free(key);
	}
	evbuffer_add_printf(vmkeys, ", \"listeners\": [");
	evbuffer_add_buffer(vmkeys, ls);
	evbuffer_add_printf(vmkeys, "}]}");
	len = evbuffer_get_length(vmkeys);
	if ((out = malloc(len + 1)) == NULL)
		die(EXIT_USAGE, "out of memory");
	evbuffer_remove(vmkeys, out, len);
	out[len] = '\0';
	evbuffer_free(vmkeys);
	evbuffer_free(ls);
	return (out);
}

/* The arguments {"name": VM}. */
static char *
ctl_name_args(const char *name)
{
	struct evbuffer	*b;
	char		*out;
	size_t		 len;

	if ((b = evbuffer_new()) == NULL)
		die(EXIT_USAGE, "out of memory");
	evbuffer_add_printf(b, "{\"name\": ");
	ctl_json_str(b, name);
	evbuffer_add_printf(b, "}");
	len = evbuffer_get_length(b);
	if ((out = malloc(len + 1)) == NULL)
		die(EXIT_USAGE, "out of memory");
	evbuffer_remove(b, out, len);
	out[len] = '\0';
	evbuffer_free(b);
	return (out);
}

/* SIGINT during a trace: it ends, and that is success. */
static volatile sig_atomic_t	ctl_interrupted;
static sigset_t			ctl_sigmask;	/* as it was, SIGINT in */

static void
ctl_sigint(int sig)
{
	ctl_interrupted = 1;
}

/* The message of a trace event, compact on one line, for people. */
static void
ctl_trace_message(yajl_val data)
{
	static const char	*msg_path[] = { "message", NULL };
	yajl_gen		 g;
	const unsigned char	*buf;
	size_t			 len;
	yajl_val		 m = yajl_tree_get(data, msg_path, yajl_t_any);

	if (m == NULL || YAJL_IS_NULL(m)) {
		printf("invalid input: %s", ctl_esc(ctl_str(data, "error",
		    NULL)));
		return;
	}
	if ((g = json_new()) == NULL)
		die(EXIT_USAGE, "out of memory");
	json_tree(g, m);
	json_buf(g, &buf, &len);
	if (yajl_tree_get(data, (const char *[]){ "raw", NULL }, yajl_t_true)
	    != NULL)
		printf("not JSON: ");
	ctl_write_json(buf, len);
	json_free(g);
}

/*
 * One event of a trace as a line for people: the time (HH:MM:SS.mmm,
 * local), the direction, the client and the message.  1 when it says
 * the trace has ended.
 */
static int
ctl_trace_line(yajl_val v)
{
	static const char	*data_path[] = { "data", NULL };
	const char		*event = ctl_str(v, "event", NULL);
	yajl_val		 data = yajl_tree_get(v, data_path,
				    yajl_t_object);
	double			 sec = ctl_num(v, "timestamp", "seconds");
	double			 usec = ctl_num(v, "timestamp", "microseconds");
	time_t			 t = (time_t)(sec < 0 ? 0 : sec);
	struct tm		 tm;
	char			 when[32];

	if (event == NULL || data == NULL)
		return (0);
	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	printf("%s.%03ld ", when, usec < 0 ? 0 : (long)(usec / 1000));
	if (strcmp(event, "QMPMUX_TRACE") == 0) {
		printf("%-10s ", ctl_esc(ctl_str(data, "direction", NULL)));
		if (ctl_num(data, "client", NULL) >= 0)
			printf("%-4.0f ", ctl_num(data, "client", NULL));
		else
			printf("%-4s ", "-");
		ctl_trace_message(data);
	} else if (strcmp(event, "QMPMUX_TRACE_SKIPPED") == 0)
		printf("skipped %.0f messages: this trace was read too slowly",
		    ctl_num(data, "count", NULL));
	else if (strcmp(event, "QMPMUX_TRACE_END") == 0)
		printf("the trace of %s ended: the VM is gone",
		    ctl_esc(ctl_str(data, "vm", NULL)));
	else
		printf("%s", ctl_esc(event));
	printf("\n");
	fflush(stdout);
	return (strcmp(event, "QMPMUX_TRACE_END") == 0);
}

/*
 * trace VM: the trace is on; print each event as it comes, until SIGINT
 * (success), the end of the trace (success) or of the connection.  No
 * bound on the wait: a quiet VM sends nothing.
 */
static void
ctl_trace(struct ctl *c)
{
	struct qmp_msg	 msg;
	yajl_val	 v;
	char		 err[256];
	int		 end;

	for (;;) {
		if (ctl_interrupted)
			return;
		if (ctl_next(c, &msg, -1, &ctl_sigmask) == QC_SIGNAL)
			continue;
		if ((v = yajl_tree_parse(msg.buf, err, sizeof(err))) == NULL)
			die(EXIT_DAEMON, "unreadable event: %s", err);
		if (c->json) {
			ctl_write_json(msg.buf, msg.len);
			putchar('\n');
			fflush(stdout);
			end = ctl_str(v, "event", NULL) != NULL &&
			    strcmp(ctl_str(v, "event", NULL),
			    "QMPMUX_TRACE_END") == 0;
		} else
			end = ctl_trace_line(v);
		yajl_tree_free(v);
		qmp_msg_clear(&msg);
		if (end)
			return;
	}
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl	 c;
	const char	*control = CTL_CONTROL, *cmd;
	char		*args = NULL;
	yajl_val	 reply, ret;
	struct sigaction sa;
	sigset_t	 block;
	int		 ch;

	memset(&c, 0, sizeof(c));
	if ((cmd = getenv("QMPMUX_CONTROL")) != NULL && *cmd != '\0')
		control = cmd;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			control = optarg;
			break;
		case 'j':
			c.json = 1;
			break;
		case 'h':
			usage(stdout, EXIT_OK);
		case 'V':
			printf("qmpmuxctl %s\n", PACKAGE_VERSION);
			exit(EXIT_OK);
		default:
			usage(stderr, EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage(stderr, EXIT_USAGE);
	cmd = argv[0];
	/* the command line first: a usage error needs no daemon */
	if (strcmp(cmd, "list") == 0 || strcmp(cmd, "dump") == 0 ||
	    strcmp(cmd, "reload") == 0 || strcmp(cmd, "restart") == 0) {
		if (argc != 1)
			usage(stderr, EXIT_USAGE);
	} else if (strcmp(cmd, "status") == 0 || strcmp(cmd, "remove") == 0 ||
	    strcmp(cmd, "trace") == 0 || strcmp(cmd, "break-lock") == 0) {
		if (argc != 2)
			usage(stderr, EXIT_USAGE);
		args = ctl_name_args(argv[1]);
	} else if (strcmp(cmd, "add") == 0) {
		if (argc < 3)
			usage(stderr, EXIT_USAGE);
		args = ctl_add_args(argv[1], argc - 2, argv + 2);
	} else
		usage(stderr, EXIT_USAGE);

	if (strcmp(cmd, "trace") == 0) {
		/* SIGINT is taken only in ctl_trace's wait, so none is lost */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = ctl_sigint;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigemptyset(&block);
		sigaddset(&block, SIGINT);
		sigprocmask(SIG_BLOCK, &block, &ctl_sigmask);
	}
	ctl_open(&c, control);
	if (strcmp(cmd, "list") == 0) {
		ret = ctl_run(&c, "query-vms", NULL, &reply);
		if (c.json)
			ctl_print_json(ret);
		else
			ctl_list(ret);
	} else if (strcmp(cmd, "status") == 0) {
		ret = ctl_run(&c, "query-vm", args, &reply);
		if (c.json)
			ctl_print_json(ret);
		else
			ctl_status(ret);
	} else if (strcmp(cmd, "dump") == 0) {
		ret = ctl_run(&c, "dump", NULL, &reply);
		ctl_print_json(ret);
	} else if (strcmp(cmd, "trace") == 0) {
		ret = ctl_run(&c, "trace", args, &reply);
		ctl_trace(&c);
	} else {
		ret = ctl_run(&c, strcmp(cmd, "add") == 0 ? "add-vm" :
		    strcmp(cmd, "remove") == 0 ? "remove-vm" : cmd, args,
		    &reply);
		if (c.json)
			ctl_print_json(ret);
	}
	yajl_tree_free(reply);
	free(args);
	qc_clear(&c.qc);
	close(c.fd);
	return (EXIT_OK);
}
