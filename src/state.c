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
#include <sys/stat.h>
#include <errno.h>
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

/* A parsed state, while the new process takes it over. */
struct state {
	yajl_val	 root;
	double		 taken;		/* seconds since it was saved */
	yajl_val	 vms;		/* the array */
	char		*used;		/* per VM: taken over */
};

/* The generator's helpers. */
void
state_str(yajl_gen g, const char *key, const char *value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	if (value == NULL)
		yajl_gen_null(g);
	else
		yajl_gen_string(g, (const unsigned char *)value,
		    strlen(value));
}

void
state_int(yajl_gen g, const char *key, long long value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_integer(g, value);
}

void
state_double(yajl_gen g, const char *key, double value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_double(g, value);
}

void
state_bool(yajl_gen g, const char *key, int value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_bool(g, value != 0);
}

/* Bytes as hex; NULL is null. */
void
state_hex(yajl_gen g, const char *key, const void *buf, size_t len)
{
	char	*hex;

	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	if (buf == NULL) {
		yajl_gen_null(g);
		return;
	}
	if ((hex = malloc(len * 2 + 1)) == NULL)
		fatal("%s", __func__);
	util_hex_encode(hex, buf, len);
	yajl_gen_string(g, (const unsigned char *)hex, len * 2);
	free(hex);
}

/*
 * Copy an evbuffer's len bytes out, leaving them: by evbuffer_peek, since
 * evbuffer_copyout refuses a buffer whose start is frozen, as every
 * bufferevent's output is.
 */
static void
state_peek(struct evbuffer *b, char *to, size_t len)
{
	struct evbuffer_iovec	*v;
	int			 n, i;
	size_t			 off = 0;

	if (len == 0)
		return;
	n = evbuffer_peek(b, -1, NULL, NULL, 0);
	if ((v = calloc((size_t)n + 1, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	n = evbuffer_peek(b, -1, NULL, v, n);
	for (i = 0; i < n && off < len; i++) {
		memcpy(to + off, v[i].iov_base, v[i].iov_len);
		off += v[i].iov_len;
	}
	free(v);
	if (off != len)
		fatalx("%s: %zu of %zu bytes", __func__, off, len);
}

/* An evbuffer's bytes as hex, left in it. */
void
state_evbuffer(yajl_gen g, const char *key, struct evbuffer *b,
    const char *before, size_t beforelen)
{
	size_t	 len = evbuffer_get_length(b);
	char	*buf;

	if ((buf = malloc(beforelen + len + 1)) == NULL)
		fatal("%s", __func__);
	if (beforelen > 0)
		memcpy(buf, before, beforelen);
	state_peek(b, buf + beforelen, len);
	state_hex(g, key, buf, beforelen + len);
	free(buf);
}

/*
 * The keys an add-vm set, as [section, key, value] triples: in the
 * restart state and in the VM's record in the fd store alike.
 */
void
state_given(yajl_gen g, const struct conf_entries *given)
{
	const struct conf_entry	*e;

	yajl_gen_string(g, (const unsigned char *)"given", 5);
	yajl_gen_array_open(g);
	TAILQ_FOREACH(e, given, entry) {
		yajl_gen_array_open(g);
		yajl_gen_string(g, (const unsigned char *)e->section,
		    strlen(e->section));
		yajl_gen_string(g, (const unsigned char *)e->key,
		    strlen(e->key));
		yajl_gen_string(g, (const unsigned char *)e->value,
		    strlen(e->value));
		yajl_gen_array_close(g);
	}
	yajl_gen_array_close(g);
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
	state_evbuffer(g, "in", bufferevent_get_input(bev), part, partlen);
}

static void
state_save_monitor(yajl_gen g, struct monitor *m, struct state_fds *fds)
{
	int	 fd = -1, lfd = -1;

	yajl_gen_string(g, (const unsigned char *)"upstream", 8);
	yajl_gen_map_open(g);
	if (m->bev != NULL && (m->state == MONITOR_GREETING ||
	    m->state == MONITOR_NEGOTIATING || m->state == MONITOR_READY))
		fd = bufferevent_getfd(m->bev);
	if (m->evl != NULL)
		lfd = evconnlistener_get_fd(m->evl);
	state_str(g, "state", monitor_state_name(m->state));
	state_str(g, "mode", conf_upstream_mode_name(m->vm->conf.upstream_mode));
	state_str(g, "path", m->vm->conf.upstream);
	state_double(g, "since", util_elapsed(&m->since));
	state_int(g, "fd", fd);
	state_int(g, "listen_fd", lfd);
	state_keep_fd(fds, fd);
	state_keep_fd(fds, lfd);
	if (fd != -1) {
		state_hex(g, "greeting", m->greeting, m->greeting != NULL ?
		    m->greeting_len : 0);
		state_str(g, "version", m->version);
		state_bool(g, "oob", m->oob);
		state_input(g, m->reader, m->bev);
		state_evbuffer(g, "out", bufferevent_get_output(m->bev),
		    NULL, 0);
	}
	yajl_gen_map_close(g);
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

	yajl_gen_map_open(g);
	state_int(g, "client", cmd->client != NULL ? cmd->client->id : 0);
	if (cmd->held != NULL) {
		state_evbuffer(g, "held", cmd->held, NULL, 0);
		yajl_gen_map_close(g);
		return;
	}
	state_int(g, "owner", cmd->owner);
	state_int(g, "upstream_id", (long long)cmd->upstream_id);
	state_hex(g, "id", cmd->client_id, cmd->client_id_len);
	state_str(g, "name", cmd->name);
	state_bool(g, "oob", cmd->oob);
	state_bool(g, "sent", cmd->sent);
	state_bool(g, "answered", cmd->answered);
	state_bool(g, "expired", cmd->expired);
	state_bool(g, "waited", cmd->waited);
	if (cmd->wire != NULL)
		state_evbuffer(g, "wire", cmd->wire, NULL, 0);
	state_double(g, "age", age);
	state_double(g, "timeout", cmd->timeout);
	yajl_gen_map_close(g);
}

static void
state_save_client(yajl_gen g, struct client *c, struct cmd **all, size_t n,
    struct state_fds *fds)
{
	struct cmd	*cmd;
	int		 fd = bufferevent_getfd(c->bev);

	yajl_gen_map_open(g);
	state_int(g, "id", c->id);
	state_int(g, "fd", fd);
	state_keep_fd(fds, fd);
	state_str(g, "listener", c->listener->conf->path);
	state_str(g, "state", client_state_name(c->state));
	state_int(g, "pid", (long long)c->pid);
	state_int(g, "uid", (long long)c->uid);
	state_bool(g, "oob", c->oob);
	state_bool(g, "recovered", c->recovered);
	state_input(g, c->reader, c->bev);
	state_evbuffer(g, "out", bufferevent_get_output(c->bev), NULL, 0);
	yajl_gen_string(g, (const unsigned char *)"order", 5);
	yajl_gen_array_open(g);
	TAILQ_FOREACH(cmd, &c->order, order)
		yajl_gen_integer(g, state_cmd_index(all, n, cmd));
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
}

static void
state_save_vm(yajl_gen g, struct vm *vm, struct state_fds *fds)
{
	struct listener		*l;
	struct client		*c;
	struct cmd		*cmd, **all;
	size_t			 n = 0, i;

	yajl_gen_map_open(g);
	state_str(g, "name", vm->name);
	state_bool(g, "from_file", vm->conf.from_file);
	state_given(g, &vm->conf.given);
	state_int(g, "next_client_id", vm->next_client_id);
	if (vm->orphans)
		state_int(g, "orphan_epoch", vm->orphan_epoch);
	state_int(g, "next_cmd_id", (long long)vm->next_cmd_id);
	if (vm->stalled)
		state_double(g, "stalled", util_elapsed(&vm->stalled_since));
	yajl_gen_string(g, (const unsigned char *)"stats", 5);
	yajl_gen_map_open(g);
	for (i = 0; i < STATE_NSTATS; i++)
		state_int(g, state_stats[i].name, (long long)*(uint64_t *)
		    (void *)((char *)&vm->stats + state_stats[i].off));
	state_double(g, "duration_sum", vm->stats.duration_sum);
	yajl_gen_string(g, (const unsigned char *)"duration_buckets", 16);
	yajl_gen_array_open(g);
	for (i = 0; i < METRICS_NBUCKETS; i++)
		yajl_gen_integer(g, (long long)vm->stats.duration_buckets[i]);
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);

	state_save_monitor(g, vm->mon, fds);

	yajl_gen_string(g, (const unsigned char *)"listeners", 9);
	yajl_gen_array_open(g);
	TAILQ_FOREACH(l, &vm->listeners, entry) {
		if (l->evl == NULL)
			continue;
		yajl_gen_map_open(g);
		state_str(g, "path", l->conf->path);
		state_int(g, "fd", evconnlistener_get_fd(l->evl));
		state_keep_fd(fds, evconnlistener_get_fd(l->evl));
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);

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
	yajl_gen_string(g, (const unsigned char *)"commands", 8);
	yajl_gen_array_open(g);
	for (i = 0; i < n; i++)
		state_save_cmd(g, all[i]);
	yajl_gen_array_close(g);

	/* a closing client goes with the old process: it was leaving */
	yajl_gen_string(g, (const unsigned char *)"clients", 7);
	yajl_gen_array_open(g);
	TAILQ_FOREACH(c, &vm->clients, entry) {
		if (c->state != CLIENT_CLOSING)
			state_save_client(g, c, all, n, fds);
	}
	yajl_gen_array_close(g);
	free(all);
	yajl_gen_map_close(g);
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

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("%s: yajl_gen_alloc failed", __func__);
	yajl_gen_map_open(g);
	state_int(g, "qmpmux_state", STATE_VERSION);
	state_str(g, "qmpmuxd", PACKAGE_VERSION);
	state_int(g, "epoch", s->epoch);
	util_now(&now);
	/* the monotonic clock is the host's: the next process goes on it */
	state_double(g, "saved", (double)now.tv_sec +
	    (double)now.tv_usec / 1e6);
	state_double(g, "started", (double)s->started.tv_sec +
	    (double)s->started.tv_usec / 1e6);
	yajl_gen_string(g, (const unsigned char *)"restart_by", 10);
	yajl_gen_map_open(g);
	state_int(g, "client", by);
	state_hex(g, "id", id, idlen);
	yajl_gen_map_close(g);
	yajl_gen_string(g, (const unsigned char *)"control", 7);
	if (ctl != NULL)
		control_save(ctl, g, fds);
	else
		yajl_gen_null(g);
	/* what is in the service manager's store, for the next to tidy */
	yajl_gen_string(g, (const unsigned char *)"fdstore", 7);
	fdstore_save(g);
	yajl_gen_string(g, (const unsigned char *)"vms", 3);
	yajl_gen_array_open(g);
	TAILQ_FOREACH(vm, &s->vms, entry)
		state_save_vm(g, vm, fds);
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &buf, &len);

	if ((fd = memfd_create("qmpmux-state", 0)) == -1) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		yajl_gen_free(g);
		return (-1);
	}
	for (off = 0; off < len; off += (size_t)n) {
		if ((n = write(fd, buf + off, len - off)) <= 0) {
			snprintf(err, errlen, "writing the state: %s",
			    n == 0 ? "short write" : strerror(errno));
			yajl_gen_free(g);
			close(fd);
			return (-1);
		}
	}
	yajl_gen_free(g);
	return (fd);
}

/*
 * Read a state written by this binary or an older one, from the start
 * of fd; NULL (err says why) if it cannot be read.
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

/* A state document in buf, len bytes; NULL (err says why) if bad. */
struct state *
state_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	struct state	*st;
	char		*text, perr[256];
	yajl_val	 v;
	struct timeval	 now;
	double		 saved;
	size_t		 off;

	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (text = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(text, buf, len);
	text[len] = '\0';
	st->root = yajl_tree_parse(text, perr, sizeof(perr));
	free(text);
	if (st->root == NULL) {
		snprintf(err, errlen, "the state is not JSON: %s", perr);
		free(st);
		return (NULL);
	}
	v = yajl_tree_get(st->root, (const char *[]){ "qmpmux_state", NULL },
	    yajl_t_number);
	if (v == NULL || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1 ||
	    YAJL_GET_INTEGER(v) > STATE_VERSION) {
		snprintf(err, errlen, "state version %lld: this qmpmuxd reads "
		    "versions 1 to %d", v != NULL && YAJL_IS_INTEGER(v) ?
		    YAJL_GET_INTEGER(v) : -1LL, STATE_VERSION);
		state_free(st);
		return (NULL);
	}
	st->vms = yajl_tree_get(st->root, (const char *[]){ "vms", NULL },
	    yajl_t_array);
	/* the ages are as at the save: the check and the exec came since */
	util_now(&now);
	saved = state_get_double(st->root, "saved", -1);
	st->taken = saved < 0 ? 0 : (double)now.tv_sec +
	    (double)now.tv_usec / 1e6 - saved;
	if (st->taken < 0)
		st->taken = 0;
	if (st->vms == NULL) {
		snprintf(err, errlen, "the state has no vms");
		state_free(st);
		return (NULL);
	}
	if ((st->used = calloc(st->vms->u.array.len + 1, 1)) == NULL)
		fatal("%s", __func__);
	v = state_get(st->root, "fdstore", yajl_t_array);
	for (off = 0; v != NULL && off < v->u.array.len; off++) {
		if (YAJL_IS_STRING(v->u.array.values[off]))
			fdstore_inherit(YAJL_GET_STRING(
			    v->u.array.values[off]));
	}
	return (st);
}

void
state_free(struct state *st)
{
	if (st == NULL)
		return;
	yajl_tree_free(st->root);
	free(st->used);
	free(st);
}

/* The reader's helpers: a member of o, or a default. */
yajl_val
state_get(yajl_val o, const char *key, int type)
{
	const char	*path[] = { key, NULL };

	if (o == NULL)
		return (NULL);
	return (yajl_tree_get(o, path, (yajl_type)type));
}

/* The whole document, for the control socket's part. */
yajl_val
state_root(struct state *st)
{
	return (st->root);
}

long long
state_get_int(yajl_val o, const char *key, long long dflt)
{
	yajl_val	 v = state_get(o, key, yajl_t_number);

	return (v != NULL && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : dflt);
}

double
state_get_double(yajl_val o, const char *key, double dflt)
{
	yajl_val	 v = state_get(o, key, yajl_t_number);

	return (v != NULL ? YAJL_GET_DOUBLE(v) : dflt);
}

int
state_get_bool(yajl_val o, const char *key)
{
	return (state_get(o, key, yajl_t_true) != NULL);
}

const char *
state_get_str(yajl_val o, const char *key)
{
	yajl_val	 v = state_get(o, key, yajl_t_string);

	return (v != NULL ? YAJL_GET_STRING(v) : NULL);
}

/*
 * A hex member as bytes (NUL-terminated, for convenience), its length
 * in *len; NULL if it is null or missing.  The caller frees it.
 */
char *
state_get_hex(yajl_val o, const char *key, size_t *len)
{
	const char	*hex = state_get_str(o, key);
	char		*buf;
	size_t		 n;

	*len = 0;
	if (hex == NULL)
		return (NULL);
	n = strlen(hex) / 2;
	if ((buf = malloc(n + 1)) == NULL)
		fatal("%s", __func__);
	if (util_hex_decode(buf, hex, n) == -1)
		fatalx("%s: bad hex in %s", __func__, key);
	buf[n] = '\0';
	*len = n;
	return (buf);
}

/* Close the clients of a VM of the state, saying why. */
static void
state_close_clients(struct vm *vm, yajl_val sv, const char *why)
{
	yajl_val	 a = state_get(sv, "clients", yajl_t_array), o;
	size_t		 i;
	int		 fd;

	for (i = 0; a != NULL && i < a->u.array.len; i++) {
		o = a->u.array.values[i];
		if ((fd = (int)state_get_int(o, "fd", -1)) < 0)
			continue;
		vm_log(vm, LOG_INFO, "client %lld: closed: %s",
		    state_get_int(o, "id", 0), why);
		close(fd);
	}
}

/* Close the fd of each listener or client (array) of a VM of the state. */
static void
state_close_each(yajl_val sv, const char *array)
{
	yajl_val	 a;
	size_t		 i;
	int		 fd;

	if ((a = state_get(sv, array, yajl_t_array)) == NULL)
		return;
	for (i = 0; i < a->u.array.len; i++) {
		fd = (int)state_get_int(a->u.array.values[i], "fd", -1);
		if (fd >= 0)
			close(fd);
	}
}

/* Close the upstream's connection and listening socket of a VM of the state. */
static void
state_close_upstream(yajl_val sv)
{
	yajl_val	 u = state_get(sv, "upstream", yajl_t_object);
	int		 fd;

	if ((fd = (int)state_get_int(u, "fd", -1)) >= 0)
		close(fd);
	if ((fd = (int)state_get_int(u, "listen_fd", -1)) >= 0)
		close(fd);
}

/* Close every fd of a VM of the state that nothing takes over. */
static void
state_close_vm(yajl_val sv)
{
	yajl_val	 a;
	size_t		 i;
	const char	*path;

	state_close_upstream(sv);
	state_close_each(sv, "listeners");
	if ((a = state_get(sv, "listeners", yajl_t_array)) != NULL) {
		for (i = 0; i < a->u.array.len; i++) {
			path = state_get_str(a->u.array.values[i], "path");
			if (state_get_bool(sv, "from_file") && path != NULL)
				unlink(path);
		}
	}
	state_close_each(sv, "clients");
}

/*
 * A VM of the state that state_vm_prepare matched could not be made (a
 * listener failed): its listeners' sockets went with its conf, and
 * what state_vm_restore would have taken over is closed here, or its
 * clients would wait on connections nobody serves.
 */
void
state_vm_abandon(const char *name, yajl_val sv)
{
	log_warnx("vm %s: cannot be taken over; its connections are closed",
	    name);
	state_close_upstream(sv);
	state_close_each(sv, "clients");
}

/*
 * The conf of a VM the control socket added, from the keys its add-vm
 * set, over [global]'s defaults; NULL (logged) if they no longer make
 * one.
 */
static struct vm_conf *
state_given_conf(struct server *s, yajl_val sv, const char *name)
{
	yajl_val		 given = state_get(sv, "given", yajl_t_array);
	yajl_val		 e;
	struct vm_conf		*vc;
	struct listener_conf	*lc = NULL;
	const char		*section, *key, *value;
	char			 err[CONF_ERR_MAX];
	size_t			 i;
	int			 rv;

	if (given == NULL || given->u.array.len == 0)
		return (NULL);
	if ((vc = calloc(1, sizeof(*vc))) == NULL)
		fatal("%s", __func__);
	conf_vm_copy(vc, &s->defaults);
	vc->from_file = 0;
	if ((vc->name = strdup(name)) == NULL ||
	    (vc->where = strdup("add-vm, before a restart")) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < given->u.array.len; i++) {
		e = given->u.array.values[i];
		if (!YAJL_IS_ARRAY(e) || e->u.array.len != 3 ||
		    !YAJL_IS_STRING(e->u.array.values[0]) ||
		    !YAJL_IS_STRING(e->u.array.values[1]) ||
		    !YAJL_IS_STRING(e->u.array.values[2]))
			goto bad;
		section = YAJL_GET_STRING(e->u.array.values[0]);
		key = YAJL_GET_STRING(e->u.array.values[1]);
		value = YAJL_GET_STRING(e->u.array.values[2]);
		conf_entry_add(&vc->given, section, key, value, "add-vm", 0);
		snprintf(err, sizeof(err), "bad entry");
		if (strcmp(section, "vm") == 0 && strcmp(key, "upstream") == 0) {
			rv = 0;
			if (strcmp(value, "fd") == 0)
				vc->upstream_mode = UPSTREAM_FD;
			else
				rv = conf_set_upstream(vc, value, err,
				    sizeof(err));
		} else if (strcmp(section, "vm") == 0)
			rv = conf_set_vm(vc, key, value, err, sizeof(err));
		else if (*key == '\0') {
			rv = -1;
			if (strncmp(section, "listener ", 9) == 0)
				lc = conf_listener_new(section + 9), rv = 0;
			else if (strncmp(section, "passed ", 7) == 0) {
				lc = conf_listener_new(section + 7), rv = 0;
				lc->passed = 1;
			}
			if (lc != NULL)
				TAILQ_INSERT_TAIL(&vc->listeners, lc, entry);
		} else
			rv = lc == NULL ? -1 : conf_set_listener(lc, key, value,
			    err, sizeof(err));
		if (rv == -1) {
			log_warnx("vm %s: %s %s = %s: %s", name, section, key,
			    value, err);
			goto bad;
		}
	}
	return (vc);
bad:
	conf_vm_clear(vc);
	free(vc);
	return (NULL);
}

/* The state of the VM of that name, not yet taken; NULL if none. */
static yajl_val
state_vm_find(struct state *st, const char *name, size_t *idx)
{
	yajl_val	 v;
	const char	*n;
	size_t		 i;

	for (i = 0; i < st->vms->u.array.len; i++) {
		v = st->vms->u.array.values[i];
		if (st->used[i] || (n = state_get_str(v, "name")) == NULL ||
		    strcmp(n, name) != 0)
			continue;
		*idx = i;
		return (v);
	}
	return (NULL);
}

/*
 * The listener of the conf that takes over listener l of the state: the
 * same path, or after a crash (only the hash of its path is known) the
 * same hash; NULL if the conf has none.
 */
static struct listener_conf *
state_listener_conf(yajl_val l, struct vm_conf *vc)
{
	struct listener_conf	*lc;
	const char		*path = state_get_str(l, "path");
	long long		 hash = state_get_int(l, "hash", -1);

	if (path == NULL && hash == -1)
		return (NULL);
	TAILQ_FOREACH(lc, &vc->listeners, entry) {
		if (lc->fd == -1 && (path != NULL ?
		    strcmp(lc->path, path) == 0 :
		    fdstore_hash(lc->path) == hash))
			return (lc);
	}
	return (NULL);
}

/* An fd of the state closed ahead of its VM: nothing takes it again. */
static void
state_forget_fd(yajl_val o, const char *key)
{
	yajl_val	 v = state_get(o, key, yajl_t_number);

	if (v != NULL && YAJL_IS_INTEGER(v))
		v->u.number.i = -1;
}

/* Close a listener of the state the conf no longer has, and its path. */
static void
state_close_listener(const char *vm, yajl_val l)
{
	const char	*path = state_get_str(l, "path");
	int		 fd = (int)state_get_int(l, "fd", -1);

	if (fd < 0)
		return;
	log_info("vm %s: listener %s is no longer configured", vm,
	    path != NULL ? path : "(after a crash)");
	close(fd);
	if (path != NULL)
		unlink(path);
	state_forget_fd(l, "fd");
}

/*
 * Before a VM's listeners are made: those of the state on a path the
 * conf still has take their socket over; the others are closed now,
 * their path removed.
 */
static void
state_vm_listeners(yajl_val sv, struct vm_conf *vc)
{
	yajl_val		 ls, l;
	struct listener_conf	*lc;
	size_t			 i;
	int			 fd;

	if ((ls = state_get(sv, "listeners", yajl_t_array)) == NULL)
		return;
	for (i = 0; i < ls->u.array.len; i++) {
		l = ls->u.array.values[i];
		if ((fd = (int)state_get_int(l, "fd", -1)) < 0)
			continue;
		if ((lc = state_listener_conf(l, vc)) != NULL)
			lc->fd = fd;
		else
			state_close_listener(vc->name, l);
	}
}

/* Whether the conf gives a VM of the state another upstream. */
static int
state_upstream_changed(yajl_val u, const struct vm_conf *vc)
{
	const char	*mode = state_get_str(u, "mode");
	const char	*path = state_get_str(u, "path");

	return (mode != NULL && (strcmp(mode, conf_upstream_mode_name(
	    vc->upstream_mode)) != 0 || (path == NULL) != (vc->upstream ==
	    NULL) || (path != NULL && strcmp(path, vc->upstream) != 0)));
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
	struct vm_conf	*vc;
	yajl_val	 sv, ls, u;
	const char	*name, *path;
	size_t		 i, j;
	int		 lfd;

	for (i = 0; i < st->vms->u.array.len; i++) {
		sv = st->vms->u.array.values[i];
		if ((name = state_get_str(sv, "name")) == NULL)
			continue;
		TAILQ_FOREACH(vc, &conf->vms, entry) {
			if (strcmp(vc->name, name) == 0)
				break;
		}
		if (vc == NULL) {
			if (state_get_bool(sv, "from_file")) {
				log_info("vm %s: no longer configured; its "
				    "connections are closed", name);
				state_close_vm(sv);
				st->used[i] = 1;
			}
			continue;
		}
		ls = state_get(sv, "listeners", yajl_t_array);
		for (j = 0; ls != NULL && j < ls->u.array.len; j++) {
			if (state_listener_conf(ls->u.array.values[j], vc) ==
			    NULL)
				state_close_listener(name,
				    ls->u.array.values[j]);
		}
		/* a listen mode's socket; its connection goes with the VM */
		u = state_get(sv, "upstream", yajl_t_object);
		if ((lfd = (int)state_get_int(u, "listen_fd", -1)) >= 0 &&
		    state_upstream_changed(u, vc)) {
			close(lfd);
			if ((path = state_get_str(u, "path")) != NULL)
				unlink(path);
			state_forget_fd(u, "listen_fd");
		}
	}
}

static enum monitor_state
state_monitor_state(const char *name)
{
	size_t	 i;

	/* by the names the dump and the log use too */
	for (i = 0; name != NULL && i <= MONITOR_CLOSED; i++) {
		if (strcmp(monitor_state_name((enum monitor_state)i), name) == 0)
			return ((enum monitor_state)i);
	}
	return (MONITOR_BACKOFF);
}

static enum client_state
state_client_state(const char *name)
{
	size_t	 i;

	for (i = 0; name != NULL && i <= CLIENT_CLOSING; i++) {
		if (strcmp(client_state_name((enum client_state)i), name) == 0)
			return ((enum client_state)i);
	}
	return (CLIENT_CLOSING);
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
state_vm_monitor(struct vm *vm, yajl_val sv)
{
	double		 taken = state_taken(vm);
	struct monitor	*m = vm->mon;
	yajl_val	 u = state_get(sv, "upstream", yajl_t_object);
	enum monitor_state state;
	char		*in, *out;
	size_t		 inlen, outlen, glen;
	const char	*version, *mode, *path;
	int		 fd, lfd, changed = 0;

	state = state_monitor_state(state_get_str(u, "state"));
	fd = (int)state_get_int(u, "fd", -1);
	lfd = (int)state_get_int(u, "listen_fd", -1);
	mode = state_get_str(u, "mode");
	path = state_get_str(u, "path");
	/* the file gives it another upstream now: reach that one */
	if (state_upstream_changed(u, &vm->conf)) {
		vm_log(vm, LOG_INFO, "the upstream changed: the one of "
		    "before (%s:%s) is let go", mode, path != NULL ? path :
		    "fd");
		if (fd != -1)
			close(fd);
		if (lfd != -1) {
			close(lfd);
			if (path != NULL)
				unlink(path);
		}
		fd = lfd = -1;
		changed = 1;
	}
	if (lfd != -1 && vm->conf.upstream_mode != UPSTREAM_LISTEN) {
		close(lfd);
		lfd = -1;
	}
	if (fd != -1) {
		if ((m->greeting = state_get_hex(u, "greeting", &glen)) !=
		    NULL)
			m->greeting_len = glen;
		if ((version = state_get_str(u, "version")) != NULL &&
		    (m->version = strdup(version)) == NULL)
			fatal("%s", __func__);
		m->oob = state_get_bool(u, "oob");
	}
	if (monitor_adopt(m, state, fd, lfd) == -1)
		return (-1);
	/* after a crash: QEMU's stream may be cut in a message */
	m->resync = state_get_bool(u, "resync") && m->bev != NULL;
	if (m->state == state) {
		util_now(&m->since);
		util_since(&m->since, state_get_double(u, "since", 0) + taken);
	}
	in = state_get_hex(u, "in", &inlen);
	out = state_get_hex(u, "out", &outlen);
	monitor_adopt_bytes(m, in, inlen, out, outlen);
	free(in);
	free(out);
	return (changed);
}

/* A client's listener: by its path, or after a crash its hash; or NULL. */
static struct listener *
state_listener(struct vm *vm, yajl_val o)
{
	struct listener	*l;
	const char	*path = state_get_str(o, "listener");
	long long	 hash = state_get_int(o, "listener_hash", -1);

	TAILQ_FOREACH(l, &vm->listeners, entry) {
		if (path != NULL ? strcmp(l->conf->path, path) == 0 :
		    fdstore_hash(l->conf->path) == hash)
			return (l);
	}
	return (NULL);
}

static struct client *
state_client(struct vm *vm, long long id)
{
	struct client	*c;

	TAILQ_FOREACH(c, &vm->clients, entry) {
		if (c->id == id)
			return (c);
	}
	return (NULL);
}

static size_t
state_count_clients(struct vm *vm)
{
	struct client	*c;
	size_t		 n = 0;

	TAILQ_FOREACH(c, &vm->clients, entry)
		n++;
	return (n);
}

/* The commands: made first, then given their clients and places. */
static struct cmd **
state_vm_cmds(struct vm *vm, yajl_val sv, size_t *np)
{
	double		 taken = state_taken(vm);
	yajl_val	 cs = state_get(sv, "commands", yajl_t_array), o;
	struct cmd	*cmd, **all;
	const char	*name;
	size_t		 n = cs != NULL ? cs->u.array.len : 0, i, len;
	char		*wire;
	double		 age;

	if ((all = calloc(n + 1, sizeof(*all))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < n; i++) {
		o = cs->u.array.values[i];
		if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
			fatal("%s", __func__);
		cmd->vm = vm;
		cmd->client = state_client(vm, state_get_int(o, "client", 0));
		all[i] = cmd;
		if ((wire = state_get_hex(o, "held", &len)) != NULL) {
			if ((cmd->held = evbuffer_new()) == NULL)
				fatal("%s", __func__);
			evbuffer_add(cmd->held, wire, len);
			free(wire);
			continue;
		}
		cmd->owner = (int)state_get_int(o, "owner", 0);
		/* an owner that did not come along has gone */
		if (state_client(vm, cmd->owner) == NULL)
			cmd->owner = 0;
		cmd->upstream_id = (uint64_t)state_get_int(o, "upstream_id", 0);
		cmd->client_id = state_get_hex(o, "id", &cmd->client_id_len);
		if ((name = state_get_str(o, "name")) != NULL)
			snprintf(cmd->name, sizeof(cmd->name), "%s", name);
		cmd->oob = state_get_bool(o, "oob");
		cmd->sent = state_get_bool(o, "sent");
		cmd->answered = state_get_bool(o, "answered");
		cmd->expired = state_get_bool(o, "expired");
		cmd->waited = state_get_bool(o, "waited");
		if ((wire = state_get_hex(o, "wire", &len)) != NULL) {
			if ((cmd->wire = evbuffer_new()) == NULL)
				fatal("%s", __func__);
			evbuffer_add(cmd->wire, wire, len);
			free(wire);
		}
		age = state_get_double(o, "age", 0) + taken;
		cmd->timeout = state_get_double(o, "timeout", 0);
		util_now(&cmd->arrived);
		util_since(&cmd->arrived, age);
		/* an unsent one whose client has gone leaves the queue */
		if (!cmd->sent && cmd->client == NULL) {
			all[i] = NULL;
			evbuffer_free(cmd->wire);
			free(cmd->client_id);
			free(cmd);
			continue;
		}
		cmd_adopt(cmd, cmd->timeout - age);
	}
	*np = n;
	return (all);
}

/* The clients, each on its listener, with their commands' order. */
static void
state_vm_clients(struct vm *vm, yajl_val sv)
{
	yajl_val	 cs = state_get(sv, "clients", yajl_t_array), o, ord;
	struct listener	*l;
	struct client	*c;
	struct cmd	**all, *cmd;
	enum client_state state;
	char		*in, *out;
	size_t		 inlen, outlen, i, j, n;
	long long	 k;
	int		 fd;

	for (i = 0; cs != NULL && i < cs->u.array.len; i++) {
		o = cs->u.array.values[i];
		fd = (int)state_get_int(o, "fd", -1);
		state = state_client_state(state_get_str(o, "state"));
		l = state_listener(vm, o);
		if (fd < 0)
			continue;
		if (l == NULL || state == CLIENT_CLOSING) {
			log_info("vm %s: client %lld: its listener is no "
			    "longer configured; closed", vm->name,
			    state_get_int(o, "id", 0));
			close(fd);
			continue;
		}
		in = state_get_hex(o, "in", &inlen);
		out = state_get_hex(o, "out", &outlen);
		c = client_adopt(l, fd, (int)state_get_int(o, "id", 0), state,
		    (pid_t)state_get_int(o, "pid", -1),
		    (uid_t)state_get_int(o, "uid", -1), state_get_bool(o,
		    "oob"), in, inlen, out, outlen);
		/* a client of before a crash, or a restart since one */
		c->recovered = state_get_bool(o, "recovered");
		free(in);
		free(out);
	}

	all = state_vm_cmds(vm, sv, &n);
	for (i = 0; cs != NULL && i < cs->u.array.len; i++) {
		o = cs->u.array.values[i];
		if ((c = state_client(vm, state_get_int(o, "id", 0))) == NULL)
			continue;
		ord = state_get(o, "order", yajl_t_array);
		for (j = 0; ord != NULL && j < ord->u.array.len; j++) {
			k = YAJL_IS_INTEGER(ord->u.array.values[j]) ?
			    YAJL_GET_INTEGER(ord->u.array.values[j]) : -1;
			if (k < 0 || (size_t)k >= n ||
			    (cmd = all[k]) == NULL || cmd->client != c)
				continue;
			TAILQ_INSERT_TAIL(&c->order, cmd, order);
			c->ncmds++;
			all[k] = NULL;
		}
	}
	/* out of band ones count in their client's pipeline too */
	for (i = 0; i < n; i++) {
		if ((cmd = all[i]) == NULL)
			continue;
		if (cmd->held != NULL) {
			/* its client is gone: nobody waits for it */
			evbuffer_free(cmd->held);
			free(cmd);
			continue;
		}
		if (cmd->client != NULL && !cmd->answered)
			cmd->client->ncmds++;
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
	size_t	 idx;
	yajl_val sv = state_vm_find(st, name, &idx);

	return (sv != NULL && !state_get_bool(sv, "from_file"));
}

/*
 * A VM of the state takes over what the process before had: called by
 * vm_new, in place of reaching QEMU from the start, when the server is
 * restoring (s->restore).  Returns 1 when it did, 0 if the state has no
 * VM of that name (the VM starts as a new one), -1 if it cannot.
 */
int
state_vm_prepare(struct state *st, struct vm_conf *vc, yajl_val *svp)
{
	size_t	 idx;

	if ((*svp = state_vm_find(st, vc->name, &idx)) == NULL)
		return (0);
	st->used[idx] = 1;
	state_vm_listeners(*svp, vc);
	return (1);
}

int
state_vm_restore(struct vm *vm, yajl_val sv)
{
	double		 taken = state_taken(vm);
	int		 changed;
	yajl_val	 stats, b;
	size_t		 i;
	double		 stalled;

	vm->next_client_id = (int)state_get_int(sv, "next_client_id", 0);
	/* after a crash: QEMU's replies to the commands of before */
	if (state_get(sv, "orphan_epoch", yajl_t_number) != NULL) {
		vm->orphans = 1;
		vm->orphan_epoch = (unsigned int)state_get_int(sv,
		    "orphan_epoch", 0);
	}
	vm->next_cmd_id = (uint64_t)state_get_int(sv, "next_cmd_id", 0);
	stats = state_get(sv, "stats", yajl_t_object);
	for (i = 0; i < STATE_NSTATS; i++)
		*(uint64_t *)(void *)((char *)&vm->stats +
		    state_stats[i].off) = (uint64_t)state_get_int(stats,
		    state_stats[i].name, 0);
	vm->stats.duration_sum = state_get_double(stats, "duration_sum", 0);
	b = state_get(stats, "duration_buckets", yajl_t_array);
	for (i = 0; b != NULL && i < b->u.array.len && i < METRICS_NBUCKETS;
	    i++) {
		if (YAJL_IS_INTEGER(b->u.array.values[i]))
			vm->stats.duration_buckets[i] = (uint64_t)
			    YAJL_GET_INTEGER(b->u.array.values[i]);
	}
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
	if ((stalled = state_get_double(sv, "stalled", -1)) >= 0 &&
	    (stalled += taken) >= 0 &&
	    cmd_stalled(vm)) {
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
	yajl_val	 sv;
	struct vm_conf	*vc;
	const char	*name;
	size_t		 i;

	for (i = 0; i < st->vms->u.array.len; i++) {
		sv = st->vms->u.array.values[i];
		if (st->used[i] || (name = state_get_str(sv, "name")) == NULL)
			continue;
		if (state_get_bool(sv, "from_file") ||
		    (vc = state_given_conf(s, sv, name)) == NULL) {
			log_info("vm %s: no longer configured; its "
			    "connections are closed", name);
			state_close_vm(sv);
			st->used[i] = 1;
			continue;
		}
		/* once matched, vm_new closes what it could not take */
		if (server_add(s, vc) == -1 && !st->used[i]) {
			log_warnx("vm %s: cannot be taken over; its "
			    "connections are closed", name);
			state_close_vm(sv);
			st->used[i] = 1;
		}
		free(vc);
	}
}
