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
 * owners and what is left of their deadlines), its counters.  The
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

#include "qmpmux.h"

/* The counters of a VM, by name, as the state keeps them. */
static const struct {
	const char	*name;
	size_t		 off;
} state_stats[] = {
#define S(f)	{ #f, offsetof(struct vm_stats, f) }
	S(commands), S(replies), S(timeouts_unsent), S(timeouts_sent),
	S(late_replies), S(unknown_replies), S(refused), S(events),
	S(event_bytes), S(reconnects), S(clients), S(clients_refused),
	S(bytes_from_qemu), S(bytes_to_qemu), S(duration_count),
#undef S
};
#define STATE_NSTATS	(sizeof(state_stats) / sizeof(state_stats[0]))



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

/* The reader's partial message, then what the bufferevent holds. */
static void
state_input(yajl_gen g, struct qmp_reader *r, struct bufferevent *bev)
{
	const char	*part = NULL;
	size_t		 partlen = 0;

	if (r != NULL)
		part = qmp_reader_partial(r, &partlen);
	json_put_evbuffer(g, "in", bufferevent_get_input(bev), part, partlen);
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
		state_input(g, m->reader, m->bev);
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
	if (cmd->held != NULL) {
		json_put_evbuffer(g, "held", cmd->held, NULL, 0);
		json_map_close(g);
		return;
	}
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
	json_map_close(g);
}

static void
state_save_client(yajl_gen g, struct client *c, struct cmd **all, size_t n,
    struct state_fds *fds)
{
	struct cmd	*cmd;
	int		 fd = bufferevent_getfd(c->bev);

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
	state_input(g, c->reader, c->bev);
	json_put_evbuffer(g, "out", bufferevent_get_output(c->bev), NULL, 0);
	json_string(g, "order", 5);
	json_array_open(g);
	TAILQ_FOREACH(cmd, &c->order, order)
		json_integer(g, state_cmd_index(all, n, cmd));
	json_array_close(g);
	json_map_close(g);
}

static void
state_save_vm(yajl_gen g, struct vm *vm, struct state_fds *fds)
{
	struct listener		*l;
	struct client		*c;
	struct cmd		*cmd, **all;
	size_t			 n = 0, i;

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
	json_string(g, "stats", 5);
	json_map_open(g);
	for (i = 0; i < STATE_NSTATS; i++)
		json_put_int(g, state_stats[i].name, (long long)*(uint64_t *)
		    (void *)((char *)&vm->stats + state_stats[i].off));
	json_put_double(g, "duration_sum", vm->stats.duration_sum);
	json_string(g, "duration_buckets", 16);
	json_array_open(g);
	for (i = 0; i < METRICS_NBUCKETS; i++)
		json_integer(g, (long long)vm->stats.duration_buckets[i]);
	json_array_close(g);
	json_map_close(g);

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
	TAILQ_FOREACH(c, &vm->clients, entry) {
		TAILQ_FOREACH(cmd, &c->order, order)
			n += cmd->held != NULL;
	}
	if ((all = calloc(n + 1, sizeof(*all))) == NULL)
		fatal("%s", __func__);
	n = 0;
	TAILQ_FOREACH(cmd, &vm->queue, entry)
		all[n++] = cmd;
	TAILQ_FOREACH(cmd, &vm->inflight, entry)
		all[n++] = cmd;
	TAILQ_FOREACH(c, &vm->clients, entry) {
		TAILQ_FOREACH(cmd, &c->order, order) {
			if (cmd->held != NULL)
				all[n++] = cmd;
		}
	}
	json_string(g, "commands", 8);
	json_array_open(g);
	for (i = 0; i < n; i++)
		state_save_cmd(g, all[i]);
	json_array_close(g);

	/* a closing client goes with the old process: it was leaving */
	json_string(g, "clients", 7);
	json_array_open(g);
	TAILQ_FOREACH(c, &vm->clients, entry) {
		if (c->state != CLIENT_CLOSING)
			state_save_client(g, c, all, n, fds);
	}
	json_array_close(g);
	free(all);
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
		control_save(ctl, g, fds);
	else
		json_null(g);
	/* what is in the service manager's store, for the next to tidy */
	json_string(g, "fdstore", 7);
	fdstore_save(g);
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

/*
 * The reader.  state_parse reads the whole document at once into the
 * description below, and checks there every assumption the take-over
 * makes (docs/STATE.md, "What is refused"): each member of its type and
 * in its range, each fd open, of its kind and named once, each client
 * and command that is named there, a VM's name and a listener's path
 * given once, and counts within what any configuration allows.  Both
 * --check-state (restart_check) and the take-over read a document so:
 * one the check accepts the new process can use, whole, and one it
 * refuses leaves the running process as it was.  The take-over then
 * reads the description only.  The control socket's part is checked
 * here too, as control_adopt (control.c) reads it from the tree.
 */

#define STATE_SECONDS_MAX	1e9	/* as util_timeval: every seconds key */
#define STATE_VERSION_MAX	64	/* QEMU's version, MAJOR.MINOR.MICRO */

/* Bytes of the document (hex there), NUL-terminated; NULL: none. */
struct state_bytes {
	char			*buf;
	size_t			 len;
};

/* A listener of a VM: its path, or after a crash the path's hash. */
struct state_listener {
	const char		*path;		/* NULL: hash */
	long long		 hash;		/* -1: path */
	int			 fd;		/* -1 once closed or taken */
};

/* The upstream of a VM; fd and listen_fd are -1 when it had none. */
struct state_upstream {
	enum monitor_state	 state;
	double			 since;		/* in state, before the save */
	int			 fd;
	int			 listen_fd;
	const char		*mode;		/* NULL: not given */
	const char		*path;
	struct state_bytes	 greeting;
	const char		*version;
	int			 oob;
	int			 resync;
	struct state_bytes	 in;
	struct state_bytes	 out;
};

/*
 * A command, or a reply of the proxy's held behind a client's commands
 * (held.buf set: then only client is given).  client is the one waiting
 * for it, 0 once it is answered or gone; every command with a client is
 * in that client's order exactly once, and no other is.
 */
struct state_cmd {
	int			 client;
	int			 owner;
	struct state_bytes	 held;
	uint64_t		 upstream_id;
	struct state_bytes	 id;
	char			 name[QMP_NAME_MAX];
	int			 oob;
	int			 sent;
	int			 answered;
	int			 expired;
	int			 waited;
	struct state_bytes	 wire;		/* set exactly when not sent */
	double			 age;
	double			 timeout;
	int			 listed;	/* in its client's order */
};

/* A client; order indexes the VM's commands. */
struct state_client {
	int			 id;
	int			 fd;		/* -1 once closed or taken */
	const char		*listener;	/* NULL: listener_hash */
	long long		 listener_hash;
	enum client_state	 state;
	pid_t			 pid;
	uid_t			 uid;
	int			 oob;
	int			 recovered;
	struct state_bytes	 in;
	struct state_bytes	 out;
	size_t			*order;
	size_t			 norder;
};

/* One [section, key, value] of a VM's add-vm. */
struct state_given {
	const char		*section;
	const char		*key;
	const char		*value;
};

/* A VM of the state; used once a VM of the new process took it. */
struct state_vm {
	const char		*name;
	int			 from_file;
	struct state_given	*given;
	size_t			 ngiven;
	int			 orphans;
	unsigned int		 orphan_epoch;
	int			 next_client_id;
	uint64_t		 next_cmd_id;
	double			 stalled;	/* -1: not stalled */
	struct vm_stats		 stats;
	struct state_upstream	 up;
	struct state_listener	*listeners;
	size_t			 nlisteners;
	struct state_cmd	*cmds;
	size_t			 ncmds;
	struct state_client	*clients;
	size_t			 nclients;
	int			 used;
};

/*
 * A state the new process takes over: the tree, whose strings the
 * description points into, and the description.
 */
struct state {
	yajl_val		 root;
	double			 taken;		/* seconds since it was saved */
	struct state_vm		*vms;
	size_t			 nvms;
};

/* The reader's own: why it refused, and every fd named so far. */
struct state_rd {
	char			*err;
	size_t			 errlen;
	int			 failed;
	unsigned char		*fds;		/* a bit per fd number */
	size_t			 fdslen;
};

#define STATE_REQ	0x1	/* the member must be there */
#define STATE_NULL	0x2	/* null is allowed, as if it were missing */
#define STATE_MSG	0x4	/* bytes of a message: never empty */

/* What an fd of the document must be. */
enum state_fd {
	STATE_FD_LISTENING,	/* a listening unix stream socket */
	STATE_FD_CONNECTED,	/* a unix stream socket, not listening */
	STATE_FD_ANY,		/* open: a control client's passed fd */
};

/*
 * Refuse the document: err says which member (at, then key) and why,
 * as one sentence.  Only the first reason is kept.
 */
static int __attribute__((format(printf, 4, 5)))
state_refuse(struct state_rd *rd, const char *at, const char *key,
    const char *fmt, ...)
{
	char	 why[256];
	va_list	 ap;

	if (rd->failed)
		return (-1);
	rd->failed = 1;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(rd->err, rd->errlen, "the state's %s%s%s %s", at,
	    *at != '\0' && key != NULL ? "." : "", key != NULL ? key : "",
	    why);
	return (-1);
}

/* The member key of object o in *v, NULL if none; -1 if given twice. */
static int
state_rd_member(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, yajl_val *v)
{
	size_t	 i;

	*v = NULL;
	for (i = 0; i < o->u.object.len; i++) {
		if (strcmp(o->u.object.keys[i], key) != 0)
			continue;
		if (*v != NULL)
			return (state_refuse(rd, at, key, "is given twice"));
		*v = o->u.object.values[i];
	}
	return (0);
}

/* An integer member from min to max; dflt if it is missing. */
static int
state_rd_int(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, long long min, long long max, long long dflt,
    int flags, long long *out)
{
	yajl_val	 v;

	if (state_rd_member(rd, o, at, key, &v) == -1)
		return (-1);
	if (v == NULL) {
		*out = dflt;
		return ((flags & STATE_REQ) ? state_refuse(rd, at, key,
		    "is missing") : 0);
	}
	if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < min ||
	    YAJL_GET_INTEGER(v) > max)
		return (state_refuse(rd, at, key, "must be an integer from "
		    "%lld to %lld", min, max));
	*out = YAJL_GET_INTEGER(v);
	return (0);
}

/* A number member from min to max (seconds, mostly); dflt if missing. */
static int
state_rd_double(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, double min, double max, double dflt, double *out)
{
	yajl_val	 v;

	*out = dflt;
	if (state_rd_member(rd, o, at, key, &v) == -1)
		return (-1);
	if (v == NULL)
		return (0);
	if (!YAJL_IS_DOUBLE(v) || !isfinite(YAJL_GET_DOUBLE(v)) ||
	    YAJL_GET_DOUBLE(v) < min || YAJL_GET_DOUBLE(v) > max)
		return (state_refuse(rd, at, key, "must be a number from %g "
		    "to %g", min, max));
	*out = YAJL_GET_DOUBLE(v);
	return (0);
}

/* A boolean member; false if it is missing. */
static int
state_rd_bool(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, int *out)
{
	yajl_val	 v;

	*out = 0;
	if (state_rd_member(rd, o, at, key, &v) == -1)
		return (-1);
	if (v == NULL)
		return (0);
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
		return (state_refuse(rd, at, key, "must be true or false"));
	*out = YAJL_IS_TRUE(v);
	return (0);
}

/* A string member of at most max bytes; NULL if missing (or null). */
static int
state_rd_str(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, size_t max, int flags, const char **out)
{
	yajl_val	 v;

	*out = NULL;
	if (state_rd_member(rd, o, at, key, &v) == -1)
		return (-1);
	if (v == NULL || ((flags & STATE_NULL) && YAJL_IS_NULL(v)))
		return ((flags & STATE_REQ) ? state_refuse(rd, at, key,
		    "is missing") : 0);
	if (!YAJL_IS_STRING(v))
		return (state_refuse(rd, at, key, "must be a string"));
	if (strlen(v->u.string) > max)
		return (state_refuse(rd, at, key, "is longer than %zu bytes",
		    max));
	*out = v->u.string;
	return (0);
}

/* A unix socket's path, as the configuration would take it. */
static int
state_rd_path(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, int flags, const char **out)
{
	char	 why[256];

	if (state_rd_str(rd, o, at, key, SIZE_MAX, flags, out) == -1)
		return (-1);
	if (*out != NULL && util_check_sun_path(*out, why, sizeof(why)) ==
	    -1)
		return (state_refuse(rd, at, key, "is not a socket's path: "
		    "%s", why));
	return (0);
}

/* Free bytes of the description, leaving none. */
static void
state_bytes_free(struct state_bytes *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = 0;
}

/* A byte string member: hex, or null (or missing) for none. */
static int
state_rd_hex(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, int flags, struct state_bytes *out)
{
	const char	*hex;
	size_t		 n;

	if (state_rd_str(rd, o, at, key, SIZE_MAX, flags | STATE_NULL,
	    &hex) == -1 || hex == NULL)
		return (rd->failed ? -1 : 0);
	n = strlen(hex);
	if (n % 2 != 0)
		return (state_refuse(rd, at, key, "must be hex, two digits a "
		    "byte"));
	if (n == 0 && (flags & STATE_MSG))
		return (state_refuse(rd, at, key, "must hold a message, not "
		    "nothing"));
	if ((out->buf = malloc(n / 2 + 1)) == NULL)
		fatal("%s", __func__);
	if (util_hex_decode(out->buf, hex, n / 2) == -1)
		return (state_refuse(rd, at, key, "must be hex, two digits a "
		    "byte"));
	out->buf[n / 2] = '\0';
	out->len = n / 2;
	return (0);
}

/* Whether fd is what want says; NULL if so, else what it is not. */
static const char *
state_fd_is(int fd, enum state_fd want)
{
	socklen_t	 len;
	int		 v;

	if (fcntl(fd, F_GETFD) == -1)
		return ("not open");
	if (want == STATE_FD_ANY)
		return (NULL);
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == -1 ||
	    v != AF_UNIX)
		return ("not a unix socket");
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == -1 ||
	    v != SOCK_STREAM)
		return ("not a stream socket");
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == -1)
		return ("not a socket");
	if (v == 0 && want == STATE_FD_LISTENING)
		return ("not listening");
	if (v != 0 && want == STATE_FD_CONNECTED)
		return ("a listening socket");
	return (NULL);
}

/*
 * An fd member: an fd this process has open, of the kind want, named
 * nowhere else in the document.  -1 is none: allowed unless STATE_REQ.
 */
static int
state_rd_fd(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, enum state_fd want, int flags, int *out)
{
	long long	 v;
	const char	*why;
	unsigned char	*n;
	size_t		 len;

	*out = -1;
	if (state_rd_int(rd, o, at, key, -1, INT_MAX, -1, flags, &v) == -1)
		return (-1);
	if (v == -1)
		return ((flags & STATE_REQ) ? state_refuse(rd, at, key,
		    "must be an fd, not -1") : 0);
	if (v < 3)
		return (state_refuse(rd, at, key, "is fd %lld, a standard "
		    "stream", v));
	if ((why = state_fd_is((int)v, want)) != NULL)
		return (state_refuse(rd, at, key, "is fd %lld, which is %s",
		    v, why));
	/* open, so below the process's limit on fds: a bit each */
	if ((size_t)v / 8 >= rd->fdslen) {
		len = (size_t)v / 8 + 64;
		if ((n = realloc(rd->fds, len)) == NULL)
			fatal("%s", __func__);
		memset(n + rd->fdslen, 0, len - rd->fdslen);
		rd->fds = n;
		rd->fdslen = len;
	}
	if (rd->fds[v / 8] & (1 << (v % 8)))
		return (state_refuse(rd, at, key, "is fd %lld, which the state "
		    "names twice", v));
	rd->fds[v / 8] |= (unsigned char)(1 << (v % 8));
	*out = (int)v;
	return (0);
}

/* A member that must be an object; *out NULL if it is missing. */
static int
state_rd_object(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, int flags, yajl_val *out)
{
	if (state_rd_member(rd, o, at, key, out) == -1)
		return (-1);
	if (*out == NULL || ((flags & STATE_NULL) && YAJL_IS_NULL(*out))) {
		*out = NULL;
		return ((flags & STATE_REQ) ? state_refuse(rd, at, key,
		    "is missing") : 0);
	}
	if (!YAJL_IS_OBJECT(*out))
		return (state_refuse(rd, at, key, "must be an object"));
	return (0);
}

/*
 * Whether n things fit the bound that the configuration key bound sets,
 * at its most: a count beyond its range is one no qmpmuxd holds, however
 * it was configured.  (A reload may lower the bound below what is held
 * then, so the value the key has now is not the bound here.)
 */
static int
state_within(const char *bound, size_t n)
{
	char	 num[32], err[CONF_ERR_MAX];

	snprintf(num, sizeof(num), "%zu", n);
	return (n == 0 || conf_check_value(bound, num, err, sizeof(err)) == 0);
}

/* A number and where it was, for state_dup. */
struct state_num {
	long long		 v;
	size_t			 i;
};

/* qsort's order of numbers, and of their places among equal ones. */
static int
state_num_cmp(const void *a, const void *b)
{
	const struct state_num	*x = a, *y = b;

	if (x->v != y->v)
		return (x->v < y->v ? -1 : 1);
	return (x->i < y->i ? -1 : x->i > y->i);
}

/*
 * Which of n numbers (ids) is one given before it: the first such in
 * their order; -1 if none is.  They are sorted, so that a document of
 * many ids takes no more than a moment.
 */
static ssize_t
state_dup(const long long *v, size_t n)
{
	struct state_num	*s;
	ssize_t			 dup = -1;
	size_t			 i;

	if ((s = calloc(n + 1, sizeof(*s))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < n; i++) {
		s[i].v = v[i];
		s[i].i = i;
	}
	qsort(s, n, sizeof(*s), state_num_cmp);
	for (i = 1; i < n; i++) {
		if (s[i].v == s[i - 1].v && (dup == -1 || s[i].i <
		    (size_t)dup))
			dup = (ssize_t)s[i].i;
	}
	free(s);
	return (dup);
}

/* Whether id is one of n sorted numbers. */
static int
state_has(const long long *sorted, size_t n, long long id)
{
	size_t	 lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (sorted[mid] == id)
			return (1);
		if (sorted[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (0);
}

/* qsort's order of long longs. */
static int
state_ll_cmp(const void *a, const void *b)
{
	long long	 x = *(const long long *)a, y = *(const long long *)b;

	return (x < y ? -1 : x > y);
}

/*
 * A member that must be an array; *out NULL if it is missing.  Its
 * length is within what the configuration key bound allows, if any.
 */
static int
state_rd_array(struct state_rd *rd, yajl_val o, const char *at,
    const char *key, const char *bound, int flags, yajl_val *out)
{
	if (state_rd_member(rd, o, at, key, out) == -1)
		return (-1);
	if (*out == NULL)
		return ((flags & STATE_REQ) ? state_refuse(rd, at, key,
		    "is missing") : 0);
	if (!YAJL_IS_ARRAY(*out))
		return (state_refuse(rd, at, key, "must be an array"));
	if (bound != NULL && !state_within(bound, (*out)->u.array.len))
		return (state_refuse(rd, at, key, "has %zu entries, more "
		    "than %s allows", (*out)->u.array.len, bound));
	return (0);
}

/* A state name of the monitor's, as the dump and the log name them. */
static int
state_monitor_state(const char *name, enum monitor_state *state)
{
	size_t	 i;

	for (i = 0; i <= MONITOR_CLOSED; i++) {
		if (strcmp(monitor_state_name((enum monitor_state)i),
		    name) == 0) {
			*state = (enum monitor_state)i;
			return (0);
		}
	}
	return (-1);
}

/* A client's state, by its name. */
static int
state_client_state(const char *name, enum client_state *state)
{
	size_t	 i;

	for (i = 0; i <= CLIENT_CLOSING; i++) {
		if (strcmp(client_state_name((enum client_state)i),
		    name) == 0) {
			*state = (enum client_state)i;
			return (0);
		}
	}
	return (-1);
}

/* A VM's upstream; a VM without one reaches QEMU from the start. */
static int
state_rd_upstream(struct state_rd *rd, yajl_val sv, const char *vat,
    struct state_upstream *up)
{
	yajl_val	 u;
	const char	*name;
	char		 at[128];
	size_t		 i;
	int		 connected;

	up->state = MONITOR_BACKOFF;
	up->fd = up->listen_fd = -1;
	if (state_rd_object(rd, sv, vat, "upstream", 0, &u) == -1 || u == NULL)
		return (rd->failed ? -1 : 0);
	snprintf(at, sizeof(at), "%s.upstream", vat);
	if (state_rd_str(rd, u, at, "state", 32, 0, &name) == -1)
		return (-1);
	if (name != NULL && state_monitor_state(name, &up->state) == -1)
		return (state_refuse(rd, at, "state", "is not a state of the "
		    "upstream's"));
	connected = up->state == MONITOR_GREETING ||
	    up->state == MONITOR_NEGOTIATING || up->state == MONITOR_READY;
	if (state_rd_double(rd, u, at, "since", 0, STATE_SECONDS_MAX, 0,
	    &up->since) == -1 ||
	    state_rd_fd(rd, u, at, "fd", STATE_FD_CONNECTED, 0,
	    &up->fd) == -1 ||
	    state_rd_fd(rd, u, at, "listen_fd", STATE_FD_LISTENING, 0,
	    &up->listen_fd) == -1 ||
	    state_rd_str(rd, u, at, "mode", 32, 0, &up->mode) == -1 ||
	    /* null for an fd upstream, which has no path */
	    state_rd_path(rd, u, at, "path", STATE_NULL, &up->path) == -1 ||
	    state_rd_hex(rd, u, at, "greeting", STATE_MSG, &up->greeting) ==
	    -1 ||
	    state_rd_str(rd, u, at, "version", STATE_VERSION_MAX, STATE_NULL,
	    &up->version) == -1 ||
	    state_rd_bool(rd, u, at, "oob", &up->oob) == -1 ||
	    state_rd_bool(rd, u, at, "resync", &up->resync) == -1 ||
	    state_rd_hex(rd, u, at, "in", 0, &up->in) == -1 ||
	    state_rd_hex(rd, u, at, "out", 0, &up->out) == -1)
		return (-1);
	for (i = 0; up->mode != NULL && i <= UPSTREAM_FD; i++) {
		if (strcmp(up->mode, conf_upstream_mode_name(
		    (enum upstream_mode)i)) == 0)
			break;
	}
	if (up->mode != NULL && i > UPSTREAM_FD)
		return (state_refuse(rd, at, "mode", "is not an upstream "
		    "mode"));
	/* a connection is in a handshake's state, and has what it got */
	if (connected != (up->fd != -1))
		return (state_refuse(rd, at, "fd", connected ? "is missing, "
		    "in state %s" : "is given, in state %s",
		    monitor_state_name(up->state)));
	if (up->greeting.buf == NULL && (up->state == MONITOR_NEGOTIATING ||
	    up->state == MONITOR_READY))
		return (state_refuse(rd, at, "greeting", "is missing, in state "
		    "%s", monitor_state_name(up->state)));
	return (0);
}

/* A VM's listeners, each with its fd and its path (or hash). */
static int
state_rd_listeners(struct state_rd *rd, yajl_val sv, const char *vat,
    struct state_vm *vm)
{
	struct state_listener	*l;
	yajl_val		 a, o;
	char			 at[128];
	size_t			 i, j;

	if (state_rd_array(rd, sv, vat, "listeners", NULL, 0, &a) == -1 ||
	    a == NULL)
		return (rd->failed ? -1 : 0);
	if ((vm->listeners = calloc(a->u.array.len + 1,
	    sizeof(*vm->listeners))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < a->u.array.len; i++) {
		l = &vm->listeners[vm->nlisteners++];
		l->fd = -1;
		snprintf(at, sizeof(at), "%s.listeners[%zu]", vat, i);
		o = a->u.array.values[i];
		if (!YAJL_IS_OBJECT(o))
			return (state_refuse(rd, at, NULL, "must be an "
			    "object"));
		if (state_rd_path(rd, o, at, "path", 0, &l->path) == -1 ||
		    state_rd_int(rd, o, at, "hash", 0, UINT32_MAX, -1, 0,
		    &l->hash) == -1 ||
		    state_rd_fd(rd, o, at, "fd", STATE_FD_LISTENING, STATE_REQ,
		    &l->fd) == -1)
			return (-1);
		if (l->path == NULL && l->hash == -1)
			return (state_refuse(rd, at, "path", "is missing, and "
			    "so is hash"));
		for (j = 0; l->path == NULL && j + 1 < vm->nlisteners; j++) {
			if (vm->listeners[j].path == NULL &&
			    vm->listeners[j].hash == l->hash)
				return (state_refuse(rd, at, "hash", "is "
				    "another listener's"));
		}
	}
	return (0);
}

/* A VM's commands; their clients are checked with the clients. */
static int
state_rd_cmds(struct state_rd *rd, yajl_val sv, const char *vat,
    struct state_vm *vm)
{
	struct state_cmd	*cmd;
	yajl_val		 a, o, v;
	const char		*name;
	char			 at[128];
	long long		 n, *ids;
	ssize_t			 dup;
	size_t			 i, nids = 0, unsent = 0, inband = 0;

	if (state_rd_array(rd, sv, vat, "commands", NULL, 0, &a) == -1 ||
	    a == NULL)
		return (rd->failed ? -1 : 0);
	if ((vm->cmds = calloc(a->u.array.len + 1, sizeof(*vm->cmds))) ==
	    NULL)
		fatal("%s", __func__);
	for (i = 0; i < a->u.array.len; i++) {
		cmd = &vm->cmds[vm->ncmds++];
		snprintf(at, sizeof(at), "%s.commands[%zu]", vat, i);
		o = a->u.array.values[i];
		if (!YAJL_IS_OBJECT(o))
			return (state_refuse(rd, at, NULL, "must be an "
			    "object"));
		if (state_rd_int(rd, o, at, "client", 0, INT_MAX, 0, 0,
		    &n) == -1)
			return (-1);
		cmd->client = (int)n;
		if (state_rd_member(rd, o, at, "held", &v) == -1)
			return (-1);
		/* a reply of the proxy's, held for its client */
		if (v != NULL) {
			if (state_rd_hex(rd, o, at, "held", STATE_MSG,
			    &cmd->held) == -1)
				return (-1);
			if (cmd->held.buf == NULL)
				return (state_refuse(rd, at, "held", "must be "
				    "hex"));
			if (cmd->client == 0)
				return (state_refuse(rd, at, "client", "is "
				    "missing, for a held reply"));
			continue;
		}
		if (state_rd_int(rd, o, at, "owner", 0, INT_MAX, 0, 0,
		    &n) == -1)
			return (-1);
		cmd->owner = (int)n;
		if (state_rd_int(rd, o, at, "upstream_id", 1, LLONG_MAX, 0,
		    STATE_REQ, &n) == -1)
			return (-1);
		cmd->upstream_id = (uint64_t)n;
		if (state_rd_hex(rd, o, at, "id", 0, &cmd->id) == -1 ||
		    state_rd_str(rd, o, at, "name", QMP_NAME_MAX - 1, 0,
		    &name) == -1 ||
		    state_rd_bool(rd, o, at, "oob", &cmd->oob) == -1 ||
		    state_rd_bool(rd, o, at, "sent", &cmd->sent) == -1 ||
		    state_rd_bool(rd, o, at, "answered", &cmd->answered) ==
		    -1 ||
		    state_rd_bool(rd, o, at, "expired", &cmd->expired) == -1 ||
		    state_rd_bool(rd, o, at, "waited", &cmd->waited) == -1 ||
		    state_rd_hex(rd, o, at, "wire", STATE_MSG, &cmd->wire) ==
		    -1 ||
		    state_rd_double(rd, o, at, "age", 0, STATE_SECONDS_MAX, 0,
		    &cmd->age) == -1 ||
		    state_rd_double(rd, o, at, "timeout", 0, STATE_SECONDS_MAX,
		    0, &cmd->timeout) == -1)
			return (-1);
		if (name != NULL)
			snprintf(cmd->name, sizeof(cmd->name), "%s", name);
		/* what the queue and the in-flight list hold, and when */
		if (cmd->upstream_id > vm->next_cmd_id)
			return (state_refuse(rd, at, "upstream_id", "is past "
			    "the VM's next_cmd_id"));
		if (cmd->answered && cmd->client != 0)
			return (state_refuse(rd, at, "client", "is given, for "
			    "a command answered"));
		if (cmd->client != 0 && cmd->owner != cmd->client)
			return (state_refuse(rd, at, "owner", "is not its "
			    "client"));
		if (cmd->expired && (!cmd->sent || !cmd->answered))
			return (state_refuse(rd, at, "expired", "is true, for "
			    "a command not sent or not answered"));
		if (cmd->sent != (cmd->wire.buf == NULL))
			return (state_refuse(rd, at, "wire", cmd->sent ?
			    "is given, for a command sent" : "is missing, for "
			    "a command not sent"));
		if (!cmd->sent && (cmd->oob || cmd->client == 0))
			return (state_refuse(rd, at, "sent", "is false, for a "
			    "command out of band or of no client"));
		unsent += !cmd->sent;
		inband += cmd->sent && !cmd->oob;
	}
	/* an upstream id is one command's: QEMU's reply finds it by that */
	if ((ids = calloc(vm->ncmds + 1, sizeof(*ids))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < vm->ncmds; i++) {
		if (vm->cmds[i].held.buf == NULL)
			ids[nids++] = (long long)vm->cmds[i].upstream_id;
	}
	if ((dup = state_dup(ids, nids)) != -1)
		n = ids[dup];
	free(ids);
	if (dup != -1)
		return (state_refuse(rd, vat, "commands", "has upstream_id "
		    "%lld twice", n));
	if (!state_within("max_queued_commands", unsent))
		return (state_refuse(rd, vat, "commands", "has %zu commands "
		    "queued, more than max_queued_commands allows", unsent));
	if (!state_within("max_inflight", inband))
		return (state_refuse(rd, vat, "commands", "has %zu commands "
		    "in flight, more than max_inflight allows", inband));
	return (0);
}

/* A client's order: each index a command of its own, each once. */
static int
state_rd_order(struct state_rd *rd, yajl_val o, const char *at,
    struct state_vm *vm, struct state_client *c)
{
	yajl_val		 a, v;
	struct state_cmd	*cmd;
	size_t			 i;

	if (state_rd_array(rd, o, at, "order", "max_client_pipeline", 0,
	    &a) == -1 || a == NULL)
		return (rd->failed ? -1 : 0);
	if ((c->order = calloc(a->u.array.len + 1, sizeof(*c->order))) ==
	    NULL)
		fatal("%s", __func__);
	for (i = 0; i < a->u.array.len; i++) {
		v = a->u.array.values[i];
		if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0 ||
		    (unsigned long long)YAJL_GET_INTEGER(v) >= vm->ncmds)
			return (state_refuse(rd, at, "order", "must hold "
			    "indexes of the VM's commands"));
		cmd = &vm->cmds[YAJL_GET_INTEGER(v)];
		if (cmd->client != c->id)
			return (state_refuse(rd, at, "order", "holds command "
			    "%lld, of another client", YAJL_GET_INTEGER(v)));
		if (cmd->listed)
			return (state_refuse(rd, at, "order", "holds command "
			    "%lld twice", YAJL_GET_INTEGER(v)));
		cmd->listed = 1;
		c->order[c->norder++] = (size_t)YAJL_GET_INTEGER(v);
	}
	return (0);
}

/* A VM's clients, with their orders; then every command is placed. */
static int
state_rd_clients(struct state_rd *rd, yajl_val sv, const char *vat,
    struct state_vm *vm)
{
	struct state_client	*c;
	yajl_val		 a, o;
	const char		*name;
	char			 at[128];
	long long		 n, *ids;
	ssize_t			 dup;
	size_t			 i;

	if (state_rd_array(rd, sv, vat, "clients", NULL, 0, &a) == -1)
		return (-1);
	if ((vm->clients = calloc((a != NULL ? a->u.array.len : 0) + 1,
	    sizeof(*vm->clients))) == NULL)
		fatal("%s", __func__);
	for (i = 0; a != NULL && i < a->u.array.len; i++) {
		c = &vm->clients[vm->nclients++];
		c->fd = -1;
		snprintf(at, sizeof(at), "%s.clients[%zu]", vat, i);
		o = a->u.array.values[i];
		if (!YAJL_IS_OBJECT(o))
			return (state_refuse(rd, at, NULL, "must be an "
			    "object"));
		/* the next client's id is past every id given out */
		if (state_rd_int(rd, o, at, "id", 1, vm->next_client_id, 0,
		    STATE_REQ, &n) == -1)
			return (-1);
		c->id = (int)n;
		if (state_rd_fd(rd, o, at, "fd", STATE_FD_CONNECTED,
		    STATE_REQ, &c->fd) == -1 ||
		    state_rd_path(rd, o, at, "listener", 0,
		    &c->listener) == -1 ||
		    state_rd_int(rd, o, at, "listener_hash", 0, UINT32_MAX, -1,
		    0, &c->listener_hash) == -1 ||
		    state_rd_str(rd, o, at, "state", 32, STATE_REQ,
		    &name) == -1)
			return (-1);
		if (c->listener == NULL && c->listener_hash == -1)
			return (state_refuse(rd, at, "listener", "is missing, "
			    "and so is listener_hash"));
		if (state_client_state(name, &c->state) == -1)
			return (state_refuse(rd, at, "state", "is not a state "
			    "of a client's"));
		if (state_rd_int(rd, o, at, "pid", -1, INT_MAX, -1, 0,
		    &n) == -1)
			return (-1);
		c->pid = (pid_t)n;
		if (state_rd_int(rd, o, at, "uid", -1, UINT32_MAX, -1, 0,
		    &n) == -1)
			return (-1);
		c->uid = (uid_t)n;
		if (state_rd_bool(rd, o, at, "oob", &c->oob) == -1 ||
		    state_rd_bool(rd, o, at, "recovered", &c->recovered) ==
		    -1 ||
		    state_rd_hex(rd, o, at, "in", 0, &c->in) == -1 ||
		    state_rd_hex(rd, o, at, "out", 0, &c->out) == -1)
			return (-1);
	}
	/* ids, once each: commands and their owners name clients by them */
	if ((ids = calloc(vm->nclients + 1, sizeof(*ids))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < vm->nclients; i++)
		ids[i] = vm->clients[i].id;
	if ((dup = state_dup(ids, vm->nclients)) != -1) {
		free(ids);
		snprintf(at, sizeof(at), "%s.clients[%zd]", vat, dup);
		return (state_refuse(rd, at, "id", "is another client's"));
	}
	qsort(ids, vm->nclients, sizeof(*ids), state_ll_cmp);
	for (i = 0; i < vm->ncmds; i++) {
		if (vm->cmds[i].owner != 0 && !state_has(ids, vm->nclients,
		    vm->cmds[i].owner)) {
			free(ids);
			snprintf(at, sizeof(at), "%s.commands[%zu]", vat, i);
			return (state_refuse(rd, at, "owner", "is %d, a client "
			    "the VM does not have", vm->cmds[i].owner));
		}
	}
	free(ids);
	for (i = 0; i < vm->nclients; i++) {
		snprintf(at, sizeof(at), "%s.clients[%zu]", vat, i);
		if (state_rd_order(rd, a->u.array.values[i], at, vm,
		    &vm->clients[i]) == -1)
			return (-1);
	}
	/* what waits for a client is in its order */
	for (i = 0; i < vm->ncmds; i++) {
		if (vm->cmds[i].client != 0 && !vm->cmds[i].listed) {
			snprintf(at, sizeof(at), "%s.commands[%zu]", vat, i);
			return (state_refuse(rd, at, "client", "is %d, whose "
			    "order does not hold it", vm->cmds[i].client));
		}
	}
	return (0);
}

/* A VM's counters; those missing are 0. */
static int
state_rd_stats(struct state_rd *rd, yajl_val sv, const char *vat,
    struct vm_stats *stats)
{
	yajl_val	 o, a, v;
	char		 at[128];
	long long	 n;
	size_t		 i;

	if (state_rd_object(rd, sv, vat, "stats", 0, &o) == -1 || o == NULL)
		return (rd->failed ? -1 : 0);
	snprintf(at, sizeof(at), "%s.stats", vat);
	for (i = 0; i < STATE_NSTATS; i++) {
		if (state_rd_int(rd, o, at, state_stats[i].name, 0, LLONG_MAX,
		    0, 0, &n) == -1)
			return (-1);
		*(uint64_t *)(void *)((char *)stats + state_stats[i].off) =
		    (uint64_t)n;
	}
	if (state_rd_double(rd, o, at, "duration_sum", 0, DBL_MAX, 0,
	    &stats->duration_sum) == -1 ||
	    state_rd_array(rd, o, at, "duration_buckets", NULL, 0, &a) == -1)
		return (-1);
	if (a != NULL && a->u.array.len > METRICS_NBUCKETS)
		return (state_refuse(rd, at, "duration_buckets", "has more "
		    "than %d buckets", METRICS_NBUCKETS));
	for (i = 0; a != NULL && i < a->u.array.len; i++) {
		v = a->u.array.values[i];
		if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
			return (state_refuse(rd, at, "duration_buckets",
			    "must hold integers from 0"));
		stats->duration_buckets[i] = (uint64_t)YAJL_GET_INTEGER(v);
	}
	return (0);
}

/* A VM's add-vm: [section, key, value] entries of strings. */
static int
state_rd_given(struct state_rd *rd, yajl_val sv, const char *vat,
    struct state_vm *vm)
{
	yajl_val	 a, e;
	char		 at[128], why[256];
	size_t		 i, j;

	if (state_rd_array(rd, sv, vat, "given", NULL, 0, &a) == -1 ||
	    a == NULL)
		return (rd->failed ? -1 : 0);
	if ((vm->given = calloc(a->u.array.len + 1, sizeof(*vm->given))) ==
	    NULL)
		fatal("%s", __func__);
	for (i = 0; i < a->u.array.len; i++) {
		e = a->u.array.values[i];
		snprintf(at, sizeof(at), "%s.given[%zu]", vat, i);
		if (!YAJL_IS_ARRAY(e) || e->u.array.len != 3)
			return (state_refuse(rd, at, NULL, "must be "
			    "[section, key, value]"));
		for (j = 0; j < 3; j++) {
			if (!YAJL_IS_STRING(e->u.array.values[j]))
				return (state_refuse(rd, at, NULL, "must be "
				    "[section, key, value], strings"));
		}
		vm->given[i].section = YAJL_GET_STRING(e->u.array.values[0]);
		vm->given[i].key = YAJL_GET_STRING(e->u.array.values[1]);
		vm->given[i].value = YAJL_GET_STRING(e->u.array.values[2]);
		vm->ngiven++;
		if (strncmp(vm->given[i].section, "listener ", 9) == 0 &&
		    util_check_sun_path(vm->given[i].section + 9, why,
		    sizeof(why)) == -1)
			return (state_refuse(rd, at, NULL, "is a listener "
			    "whose path is not a socket's: %s", why));
	}
	return (0);
}

/* One VM, whole. */
static int
state_rd_vm(struct state_rd *rd, yajl_val sv, const char *at,
    struct state_vm *vm)
{
	long long	 n;

	vm->stalled = -1;
	vm->up.fd = vm->up.listen_fd = -1;
	if (!YAJL_IS_OBJECT(sv))
		return (state_refuse(rd, at, NULL, "must be an object"));
	if (state_rd_str(rd, sv, at, "name", SIZE_MAX, STATE_REQ,
	    &vm->name) == -1)
		return (-1);
	if (!conf_valid_name(vm->name))
		return (state_refuse(rd, at, "name", "is not a VM's name"));
	if (state_rd_bool(rd, sv, at, "from_file", &vm->from_file) == -1 ||
	    state_rd_given(rd, sv, at, vm) == -1 ||
	    state_rd_int(rd, sv, at, "orphan_epoch", -1, UINT32_MAX, -1, 0,
	    &n) == -1)
		return (-1);
	vm->orphans = n != -1;
	vm->orphan_epoch = (unsigned int)n;
	if (state_rd_int(rd, sv, at, "next_client_id", 0, INT_MAX, 0, 0,
	    &n) == -1)
		return (-1);
	vm->next_client_id = (int)n;
	if (state_rd_int(rd, sv, at, "next_cmd_id", 0, LLONG_MAX, 0, 0,
	    &n) == -1)
		return (-1);
	vm->next_cmd_id = (uint64_t)n;
	if (state_rd_double(rd, sv, at, "stalled", 0, STATE_SECONDS_MAX, -1,
	    &vm->stalled) == -1 ||
	    state_rd_stats(rd, sv, at, &vm->stats) == -1 ||
	    state_rd_upstream(rd, sv, at, &vm->up) == -1 ||
	    state_rd_listeners(rd, sv, at, vm) == -1 ||
	    state_rd_cmds(rd, sv, at, vm) == -1 ||
	    state_rd_clients(rd, sv, at, vm) == -1)
		return (-1);
	return (0);
}

/* A control client, as control_adopt takes it over. */
static int
state_rd_control_client(struct state_rd *rd, yajl_val o, const char *at,
    long long next_id)
{
	struct state_bytes	 b;
	yajl_val		 a, f, v;
	const char		*name, *other;
	char			 fat[160];
	long long		 n;
	size_t			 i, j;
	int			 fd, rv;

	if (!YAJL_IS_OBJECT(o))
		return (state_refuse(rd, at, NULL, "must be an object"));
	if (state_rd_int(rd, o, at, "id", 1, next_id, 0, STATE_REQ, &n) ==
	    -1 ||
	    state_rd_fd(rd, o, at, "fd", STATE_FD_CONNECTED, STATE_REQ,
	    &fd) == -1 ||
	    state_rd_int(rd, o, at, "pid", -1, INT_MAX, -1, 0, &n) == -1 ||
	    state_rd_int(rd, o, at, "uid", -1, UINT32_MAX, -1, 0, &n) == -1 ||
	    state_rd_bool(rd, o, at, "negotiated", &rv) == -1 ||
	    state_rd_int(rd, o, at, "received", 0, LLONG_MAX, 0, 0, &n) ==
	    -1)
		return (-1);
	memset(&b, 0, sizeof(b));
	rv = state_rd_hex(rd, o, at, "in", 0, &b);
	state_bytes_free(&b);
	if (rv == 0) {
		rv = state_rd_hex(rd, o, at, "out", 0, &b);
		state_bytes_free(&b);
	}
	if (rv == -1 || state_rd_array(rd, o, at, "traces", NULL, 0, &a) ==
	    -1)
		return (-1);
	for (i = 0; a != NULL && i < a->u.array.len; i++) {
		v = a->u.array.values[i];
		if (!YAJL_IS_STRING(v) || !conf_valid_name(YAJL_GET_STRING(v)))
			return (state_refuse(rd, at, "traces", "must hold the "
			    "names of VMs"));
	}
	if (state_rd_array(rd, o, at, "fds", "control_max_fds", 0, &a) == -1)
		return (-1);
	for (i = 0; a != NULL && i < a->u.array.len; i++) {
		f = a->u.array.values[i];
		snprintf(fat, sizeof(fat), "%s.fds[%zu]", at, i);
		if (!YAJL_IS_OBJECT(f))
			return (state_refuse(rd, fat, NULL, "must be an "
			    "object"));
		if (state_rd_str(rd, f, fat, "name", SIZE_MAX, STATE_NULL,
		    &name) == -1 ||
		    state_rd_fd(rd, f, fat, "fd", STATE_FD_ANY, STATE_REQ,
		    &fd) == -1 ||
		    state_rd_int(rd, f, fat, "at", 0, LLONG_MAX, 0, 0, &n) ==
		    -1)
			return (-1);
		/* as getfd names them: not empty, no digit first, once */
		if (name != NULL && (*name == '\0' ||
		    (*name >= '0' && *name <= '9')))
			return (state_refuse(rd, fat, "name", "is not a name "
			    "getfd gives"));
		for (j = 0; name != NULL && j < i; j++) {
			v = a->u.array.values[j];
			other = json_get_str(v, "name");
			if (other != NULL && strcmp(other, name) == 0)
				return (state_refuse(rd, fat, "name", "is "
				    "another fd's"));
		}
	}
	return (0);
}

/*
 * The control socket and its clients, and the restart's caller: read
 * by control_adopt from the tree, checked here as it reads them.
 */
static int
state_rd_control(struct state_rd *rd, yajl_val root)
{
	yajl_val		 ctl, a, by;
	struct state_bytes	 id;
	const char		*path;
	char			 at[64];
	long long		 next_id, n, *ids;
	ssize_t			 dup;
	size_t			 i;
	int			 fd, rv;

	if (state_rd_object(rd, root, "", "restart_by", 0, &by) == -1)
		return (-1);
	if (by != NULL) {
		if (state_rd_int(rd, by, "restart_by", "client", 0, INT_MAX,
		    0, 0, &n) == -1)
			return (-1);
		memset(&id, 0, sizeof(id));
		rv = state_rd_hex(rd, by, "restart_by", "id", 0, &id);
		state_bytes_free(&id);
		if (rv == -1)
			return (-1);
	}
	if (state_rd_object(rd, root, "", "control", STATE_NULL, &ctl) == -1 ||
	    ctl == NULL)
		return (rd->failed ? -1 : 0);
	if (state_rd_path(rd, ctl, "control", "path", 0, &path) == -1 ||
	    state_rd_int(rd, ctl, "control", "hash", 0, UINT32_MAX, -1, 0,
	    &n) == -1 ||
	    state_rd_fd(rd, ctl, "control", "fd", STATE_FD_LISTENING,
	    STATE_REQ, &fd) == -1 ||
	    state_rd_int(rd, ctl, "control", "next_id", 0, INT_MAX, 0, 0,
	    &next_id) == -1 ||
	    state_rd_array(rd, ctl, "control", "clients",
	    "control_max_clients", 0, &a) == -1)
		return (-1);
	if (path == NULL && n == -1)
		return (state_refuse(rd, "control", "path", "is missing, and "
		    "so is hash"));
	if (a == NULL)
		return (0);
	if ((ids = calloc(a->u.array.len + 1, sizeof(*ids))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < a->u.array.len; i++) {
		snprintf(at, sizeof(at), "control.clients[%zu]", i);
		if (state_rd_control_client(rd, a->u.array.values[i], at,
		    next_id) == -1) {
			free(ids);
			return (-1);
		}
		ids[i] = json_get_int(a->u.array.values[i], "id", 0);
	}
	dup = state_dup(ids, a->u.array.len);
	free(ids);
	if (dup != -1) {
		snprintf(at, sizeof(at), "control.clients[%zd]", dup);
		return (state_refuse(rd, at, "id", "is another client's"));
	}
	return (0);
}

/*
 * Whether a string of text, a JSON document yajl has read, holds a
 * NUL (\u0000), which a C string would cut short.
 */
static int
state_has_nul(const char *text, size_t len)
{
	size_t	 i;
	int	 in = 0;

	for (i = 0; i < len; i++) {
		if (text[i] == '"')
			in = !in;
		else if (in && text[i] == '\\' && i + 1 < len) {
			if (text[i + 1] == 'u' && i + 5 < len &&
			    strncmp(text + i + 2, "0000", 4) == 0)
				return (1);
			i++;
		}
	}
	return (0);
}

/* The whole document but its version, into st. */
static int
state_rd_doc(struct state_rd *rd, struct state *st)
{
	yajl_val	 a, v;
	const char	*name;
	char		 at[32];
	long long	 n;
	double		 saved;
	struct timeval	 now;
	size_t		 i, j, k, l;

	if (state_rd_int(rd, st->root, "", "epoch", 0, UINT32_MAX, 0, 0,
	    &n) == -1 ||
	    state_rd_double(rd, st->root, "", "saved", 0, DBL_MAX, -1,
	    &saved) == -1 ||
	    state_rd_control(rd, st->root) == -1 ||
	    state_rd_array(rd, st->root, "", "fdstore", NULL, 0, &a) == -1)
		return (-1);
	for (i = 0; a != NULL && i < a->u.array.len; i++) {
		v = a->u.array.values[i];
		if (!YAJL_IS_STRING(v) ||
		    !fdstore_valid_name(YAJL_GET_STRING(v)))
			return (state_refuse(rd, "", "fdstore", "must hold the "
			    "names of the service manager's fd store"));
	}
	if (state_rd_array(rd, st->root, "", "vms", NULL, STATE_REQ, &a) ==
	    -1)
		return (-1);
	if ((st->vms = calloc(a->u.array.len + 1, sizeof(*st->vms))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < a->u.array.len; i++) {
		snprintf(at, sizeof(at), "vms[%zu]", i);
		if (state_rd_vm(rd, a->u.array.values[i], at,
		    &st->vms[st->nvms++]) == -1)
			return (-1);
		name = st->vms[i].name;
		for (j = 0; j < i; j++) {
			if (strcmp(st->vms[j].name, name) == 0)
				return (state_refuse(rd, at, "name", "is "
				    "another VM's"));
		}
		/* a path is one listener's, whichever VM has it */
		for (j = 0; j <= i; j++) {
			for (k = 0; k < st->vms[j].nlisteners; k++) {
				for (l = 0; l < st->vms[i].nlisteners; l++) {
					if ((j != i || k < l) &&
					    st->vms[j].listeners[k].path !=
					    NULL &&
					    st->vms[i].listeners[l].path !=
					    NULL &&
					    strcmp(st->vms[j].listeners[k].path,
					    st->vms[i].listeners[l].path) == 0)
						return (state_refuse(rd, at,
						    "listeners", "has a path "
						    "another listener has"));
				}
			}
		}
	}
	/* the ages are as at the save: the check and the exec came since */
	util_now(&now);
	st->taken = saved < 0 ? 0 : (double)now.tv_sec +
	    (double)now.tv_usec / 1e6 - saved;
	if (st->taken < 0 || st->taken > STATE_SECONDS_MAX)
		st->taken = 0;
	return (0);
}

/*
 * Read a state written by this binary or an older one, from the start
 * of fd; NULL (err says why) if it cannot be read or is refused.
 */
struct state *
state_read(int fd, char *err, size_t errlen)
{
	struct state	*st;
	struct stat	 sb;
	char		*buf;
	size_t		 off;
	ssize_t		 n;

	if (fstat(fd, &sb) == -1) {
		snprintf(err, errlen, "fstat: %s", strerror(errno));
		return (NULL);
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL)
		fatal("%s", __func__);
	for (off = 0; off < (size_t)sb.st_size; off += (size_t)n) {
		n = pread(fd, buf + off, (size_t)sb.st_size - off, (off_t)off);
		if (n <= 0) {
			snprintf(err, errlen, "reading the state: %s",
			    n == 0 ? "short read" : strerror(errno));
			free(buf);
			return (NULL);
		}
	}
	buf[off] = '\0';
	st = state_parse(buf, off, err, errlen);
	free(buf);
	return (st);
}

/*
 * A state document in buf, len bytes, read and checked whole (above);
 * NULL (err says why) if it is refused.  The one reader of a document,
 * for --check-state and the take-over alike.
 */
struct state *
state_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	struct state	*st;
	struct state_rd	 rd;
	char		*text, perr[256];
	yajl_val	 root, v;
	size_t		 i;

	if (memchr(buf, '\0', len) != NULL) {
		snprintf(err, errlen, "the state holds a NUL byte");
		return (NULL);
	}
	if ((text = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(text, buf, len);
	text[len] = '\0';
	root = yajl_tree_parse(text, perr, sizeof(perr));
	if (root == NULL || !YAJL_IS_OBJECT(root)) {
		snprintf(err, errlen, "the state is not a JSON object%s%s",
		    root == NULL ? ": " : "", root == NULL ? perr : "");
		yajl_tree_free(root);
		free(text);
		return (NULL);
	}
	v = yajl_tree_get(root, (const char *[]){ "qmpmux_state", NULL },
	    yajl_t_number);
	if (v == NULL || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1 ||
	    YAJL_GET_INTEGER(v) > STATE_VERSION) {
		snprintf(err, errlen, "state version %lld: this qmpmuxd reads "
		    "versions 1 to %d", v != NULL && YAJL_IS_INTEGER(v) ?
		    YAJL_GET_INTEGER(v) : -1LL, STATE_VERSION);
		yajl_tree_free(root);
		free(text);
		return (NULL);
	}
	if (state_has_nul(text, len)) {
		snprintf(err, errlen, "a string of the state holds a NUL");
		yajl_tree_free(root);
		free(text);
		return (NULL);
	}
	free(text);
	if ((st = calloc(1, sizeof(*st))) == NULL)
		fatal("%s", __func__);
	st->root = root;
	memset(&rd, 0, sizeof(rd));
	rd.err = err;
	rd.errlen = errlen;
	if (state_rd_doc(&rd, st) == -1) {
		free(rd.fds);
		state_free(st);
		return (NULL);
	}
	free(rd.fds);
	/* what the process before had in the service manager's store */
	v = json_get(root, "fdstore", yajl_t_array);
	for (i = 0; v != NULL && i < v->u.array.len; i++)
		fdstore_inherit(YAJL_GET_STRING(v->u.array.values[i]));
	return (st);
}

/* Free a state and its description; the fds it names are left as they are. */
void
state_free(struct state *st)
{
	struct state_vm	*vm;
	size_t		 i, j;

	if (st == NULL)
		return;
	for (i = 0; i < st->nvms; i++) {
		vm = &st->vms[i];
		state_bytes_free(&vm->up.greeting);
		state_bytes_free(&vm->up.in);
		state_bytes_free(&vm->up.out);
		for (j = 0; j < vm->ncmds; j++) {
			state_bytes_free(&vm->cmds[j].held);
			state_bytes_free(&vm->cmds[j].id);
			state_bytes_free(&vm->cmds[j].wire);
		}
		for (j = 0; j < vm->nclients; j++) {
			state_bytes_free(&vm->clients[j].in);
			state_bytes_free(&vm->clients[j].out);
			free(vm->clients[j].order);
		}
		free(vm->given);
		free(vm->listeners);
		free(vm->cmds);
		free(vm->clients);
	}
	free(st->vms);
	yajl_tree_free(st->root);
	free(st);
}

/* The whole document, for the control socket's part and the epoch. */
yajl_val
state_root(struct state *st)
{
	return (st->root);
}


/*
 * The take-over, from the description.  Every fd of it is taken by the
 * new process or closed here, once: one closed ahead of its VM is -1
 * from then on.
 */

/* Close an fd of the description, and forget it. */
static void
state_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Close the clients of a VM of the state, saying why. */
static void
state_close_clients(struct vm *vm, struct state_vm *sv, const char *why)
{
	size_t	 i;

	for (i = 0; i < sv->nclients; i++) {
		if (sv->clients[i].fd < 0)
			continue;
		if (vm != NULL)
			vm_log(vm, LOG_INFO, "client %d: closed: %s",
			    sv->clients[i].id, why);
		state_close(&sv->clients[i].fd);
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
		    (long long)fdstore_hash(lc->path) == l->hash))
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

/* How long ago the state being taken over was saved. */
static double
state_taken(const struct vm *vm)
{
	return (vm->server->restore != NULL ? vm->server->restore->taken : 0);
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
		util_since(&m->since, up->since + state_taken(vm));
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
		    sc->listener) == 0 : (long long)fdstore_hash(
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
 * The commands, each made as it was and put back in the queue or in
 * flight (a held reply: nowhere yet); all[i] is sv->cmds[i]'s, NULL if
 * it went (an unsent one whose client did not come along).
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
		if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
			fatal("%s", __func__);
		cmd->vm = vm;
		/* a client that did not come along has gone */
		cmd->client = sc->client != 0 ? state_client(vm, sc->client) :
		    NULL;
		all[i] = cmd;
		if (sc->held.buf != NULL) {
			if ((cmd->held = evbuffer_new()) == NULL ||
			    evbuffer_add(cmd->held, sc->held.buf,
			    sc->held.len) == -1)
				fatal("%s", __func__);
			continue;
		}
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
		age = sc->age + state_taken(vm);
		util_now(&cmd->arrived);
		util_since(&cmd->arrived, age);
		/* an unsent one whose client has gone leaves the queue */
		if (!cmd->sent && cmd->client == NULL) {
			all[i] = NULL;
			free(cmd->client_id);
			free(cmd);
			continue;
		}
		if (!cmd->sent) {
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
	size_t			 i, j;

	for (i = 0; i < sv->nclients; i++) {
		sc = &sv->clients[i];
		if (sc->fd < 0)
			continue;
		l = state_listener(vm, sc);
		if (l == NULL || sc->state == CLIENT_CLOSING) {
			vm_log(vm, LOG_INFO, "client %d: its listener is no "
			    "longer configured; closed", sc->id);
			state_close(&sc->fd);
			continue;
		}
		c = client_adopt(l, sc->fd, sc->id, sc->state, sc->pid,
		    sc->uid, sc->oob, sc->in.buf, sc->in.len, sc->out.buf,
		    sc->out.len);
		sc->fd = -1;
		/* a client of before a crash, or a restart since one */
		c->recovered = sc->recovered;
	}

	all = state_vm_cmds(vm, sv);
	for (i = 0; i < sv->nclients; i++) {
		sc = &sv->clients[i];
		if ((c = state_client(vm, sc->id)) == NULL)
			continue;
		/* the state's order holds exactly the client's commands */
		for (j = 0; j < sc->norder; j++) {
			if ((cmd = all[sc->order[j]]) == NULL)
				continue;
			TAILQ_INSERT_TAIL(&c->order, cmd, order);
			c->ncmds++;
			all[sc->order[j]] = NULL;
		}
	}
	/* what is left has no client here: nobody waits for it */
	for (i = 0; i < sv->ncmds; i++) {
		if ((cmd = all[i]) == NULL)
			continue;
		if (cmd->held != NULL) {
			evbuffer_free(cmd->held);
			free(cmd);
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
 * A VM of the state takes over what the process before had: called by
 * vm_new, in place of reaching QEMU from the start, when the server is
 * restoring (s->restore).  Returns 1 when it did, 0 if the state has no
 * VM of that name (the VM starts as a new one).
 */
int
state_vm_prepare(struct state *st, struct vm_conf *vc, struct state_vm **svp)
{
	if ((*svp = state_vm_find(st, vc->name)) == NULL)
		return (0);
	(*svp)->used = 1;
	state_vm_listeners(*svp, vc);
	return (1);
}

/*
 * The rest of a VM of the state that state_vm_prepare matched, once its
 * listeners are made: counters, upstream, clients and commands.  -1 if
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
	if (sv->stalled >= 0 && cmd_stalled(vm)) {
		stalled = sv->stalled + state_taken(vm);
		vm->stalled = 1;
		util_now(&vm->stalled_since);
		util_since(&vm->stalled_since, stalled);
	}
	vm_log(vm, LOG_INFO, "taken over: upstream %s, %zu clients, %u "
	    "commands queued, %u in flight", monitor_state_name(vm->mon->state),
	    state_count_clients(vm), vm->nqueued, vm->ninflight);
	cmd_pump(vm);
	return (0);
}

/*
 * The VMs of the state the configuration does not have: those the
 * control socket added are made again from their add-vm keys, and take
 * over what they had; the others were removed from the file while the
 * process before ran, and go now, their connections closed.
 */
void
state_restore_rest(struct server *s, struct state *st)
{
	struct state_vm	*sv;
	struct vm_conf	*vc;
	size_t		 i;

	for (i = 0; i < st->nvms; i++) {
		sv = &st->vms[i];
		if (sv->used)
			continue;
		if (sv->from_file || (vc = state_given_conf(s, sv)) == NULL) {
			log_info("vm %s: no longer configured; its "
			    "connections are closed", sv->name);
			state_close_vm(sv);
			sv->used = 1;
			continue;
		}
		/* once matched, vm_new closes what it could not take */
		if (server_add(s, vc) == -1 && !sv->used) {
			log_warnx("vm %s: cannot be taken over; its "
			    "connections are closed", sv->name);
			state_close_vm(sv);
			sv->used = 1;
		}
		free(vc);
	}
}
