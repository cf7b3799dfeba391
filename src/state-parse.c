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
 * here too, as state_control_adopt (state-restore.c) reads it from the
 * tree.
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

#include "state.h"

/* qsort's order of long longs. */
static int
state_ll_cmp(const void *a, const void *b)
{
	long long	 x = *(const long long *)a, y = *(const long long *)b;

	return (x < y ? -1 : x > y);
}

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

/*
 * What a command has of the lock: whether it writes (missing, as in a
 * document of before the lock: whether it is not a read), whether the
 * lock held it back, whether it is a gone holder's at QEMU, and for a
 * queued acquire or release of the lock its arguments.
 */
static int
state_rd_cmd_lock(struct state_rd *rd, yajl_val o, const char *at,
    struct state_cmd *cmd)
{
	yajl_val	 v;
	const char	*op;
	long long	 n;

	if (state_rd_str(rd, o, at, "lock_op", 16, 0, &op) == -1)
		return (-1);
	if (op != NULL && strcmp(op, "acquire") == 0)
		cmd->lock_op = LOCK_OP_ACQUIRE;
	else if (op != NULL && strcmp(op, "release") == 0)
		cmd->lock_op = LOCK_OP_RELEASE;
	else if (op != NULL)
		return (state_refuse(rd, at, "lock_op", "is neither acquire "
		    "nor release"));
	if (state_rd_member(rd, o, at, "mutation", &v) == -1 ||
	    state_rd_bool(rd, o, at, "mutation", &cmd->mutation) == -1 ||
	    state_rd_bool(rd, o, at, "lock_blocked", &cmd->lock_blocked) ==
	    -1 ||
	    state_rd_bool(rd, o, at, "lock_drain", &cmd->lock_drain) == -1 ||
	    state_rd_double(rd, o, at, "lock_hold", 0, STATE_SECONDS_MAX, 0,
	    &cmd->lock_hold) == -1 ||
	    state_rd_str(rd, o, at, "lock_reason", LOCK_REASON_MAX,
	    STATE_NULL, &cmd->lock_reason) == -1 ||
	    state_rd_int(rd, o, at, "lock_token", 0, LLONG_MAX, 0, 0, &n) ==
	    -1)
		return (-1);
	cmd->lock_token = (uint64_t)n;
	if (v == NULL)
		cmd->mutation = !cmd->oob && cmd->lock_op == LOCK_OP_NONE &&
		    !lock_is_read(cmd->name);
	if (cmd->mutation && (cmd->oob || cmd->lock_op != LOCK_OP_NONE))
		return (state_refuse(rd, at, "mutation", "is true, for a "
		    "command out of band or of the lock's"));
	if (cmd->lock_op == LOCK_OP_ACQUIRE && !(cmd->lock_hold > 0))
		return (state_refuse(rd, at, "lock_hold", "must be above 0, "
		    "for an acquire"));
	return (0);
}

/*
 * A VM's lock: the last token given, and the holder while it is held.
 * A token is one the VM gave, so never past last_token; a lease and a
 * time held are seconds from 0, a reason as long as an acquire allows.
 * After a crash (written given) both count from the record's writing,
 * which cannot be later than now.  The holder's clients and commands
 * are checked with the clients.
 */
static int
state_rd_lock(struct state_rd *rd, yajl_val sv, const char *vat,
    struct state_lock *l)
{
	yajl_val	 o;
	struct timeval	 now;
	char		 at[128];
	long long	 n;
	double		 since;

	l->pid = (pid_t)-1;
	l->uid = (uid_t)-1;
	l->written = -1;
	if (state_rd_object(rd, sv, vat, "lock", 0, &o) == -1 || o == NULL)
		return (rd->failed ? -1 : 0);
	snprintf(at, sizeof(at), "%s.lock", vat);
	if (state_rd_int(rd, o, at, "last_token", 0, LLONG_MAX, 0, 0, &n) ==
	    -1)
		return (-1);
	l->last_token = (uint64_t)n;
	if (state_rd_bool(rd, o, at, "held", &l->held) == -1)
		return (-1);
	if (!l->held)
		return (0);
	if (state_rd_int(rd, o, at, "client", 1, INT_MAX, 0, STATE_REQ,
	    &n) == -1)
		return (-1);
	l->client = (int)n;
	if (state_rd_int(rd, o, at, "token", 1, LLONG_MAX, 0, STATE_REQ,
	    &n) == -1)
		return (-1);
	l->token = (uint64_t)n;
	if (l->token > l->last_token)
		return (state_refuse(rd, at, "token", "is past last_token"));
	if (state_rd_str(rd, o, at, "reason", LOCK_REASON_MAX, STATE_NULL,
	    &l->reason) == -1 ||
	    state_rd_double(rd, o, at, "hold", 0, STATE_SECONDS_MAX, 0,
	    &l->hold) == -1 ||
	    state_rd_double(rd, o, at, "since", 0, STATE_SECONDS_MAX, 0,
	    &l->since) == -1 ||
	    state_rd_double(rd, o, at, "left", 0, STATE_SECONDS_MAX, 0,
	    &l->left) == -1 ||
	    state_rd_path(rd, o, at, "listener", STATE_NULL,
	    &l->listener) == -1 ||
	    state_rd_int(rd, o, at, "pid", -1, INT_MAX, -1, 0, &n) == -1)
		return (-1);
	l->pid = (pid_t)n;
	if (state_rd_int(rd, o, at, "uid", -1, UINT32_MAX, -1, 0, &n) == -1)
		return (-1);
	l->uid = (uid_t)n;
	if (state_rd_int(rd, o, at, "draining", 0, INT_MAX, 0, 0, &n) == -1)
		return (-1);
	l->draining = (unsigned int)n;
	if (!(l->hold > 0))
		return (state_refuse(rd, at, "hold", "must be above 0"));
	if (state_rd_double(rd, o, at, "written", 0, DBL_MAX, -1,
	    &l->written) == -1)
		return (-1);
	if (l->written >= 0) {
		util_now(&now);
		since = (double)now.tv_sec + (double)now.tv_usec / 1e6 -
		    l->written;
		if (since < 0)
			return (state_refuse(rd, at, "written", "is later "
			    "than now"));
		/* the time the record waited in the store counts too */
		l->since = l->since + since > STATE_SECONDS_MAX ?
		    STATE_SECONDS_MAX : l->since + since;
		l->left = l->left > since ? l->left - since : 0;
	}
	return (0);
}

/*
 * The lock against the clients and commands: a holder that has gone
 * (commands of its at QEMU, draining) is no client of the VM's, and
 * draining counts those commands; a client lost no token not yet given.
 */
static int
state_rd_lock_clients(struct state_rd *rd, const char *vat,
    struct state_vm *vm)
{
	struct state_lock	*l = &vm->lock;
	char			 at[128];
	size_t			 i, drain = 0;

	snprintf(at, sizeof(at), "%s.lock", vat);
	for (i = 0; i < vm->ncmds; i++)
		drain += vm->cmds[i].lock_drain;
	if (drain != l->draining)
		return (state_refuse(rd, at, "draining", "is %u, and %zu "
		    "commands are a gone holder's", l->draining, drain));
	if (l->held && l->client > vm->next_client_id)
		return (state_refuse(rd, at, "client", "is past the VM's "
		    "next_client_id"));
	for (i = 0; i < vm->nclients; i++) {
		if (l->draining > 0 && vm->clients[i].id == l->client)
			return (state_refuse(rd, at, "draining", "is %u, but "
			    "its holder is a client of the VM's", l->draining));
		if (vm->clients[i].lock_lost > l->last_token) {
			snprintf(at, sizeof(at), "%s.clients[%zu]", vat, i);
			return (state_refuse(rd, at, "lock_lost", "is past "
			    "the lock's last_token"));
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
	size_t			 nacquires = 0;

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
		if (state_rd_cmd_lock(rd, o, at, cmd) == -1)
			return (-1);
		nacquires += cmd->lock_op == LOCK_OP_ACQUIRE;
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
		/* the lock's own never go to QEMU, and have none */
		if ((cmd->sent || cmd->lock_op != LOCK_OP_NONE) !=
		    (cmd->wire.buf == NULL))
			return (state_refuse(rd, at, "wire", cmd->sent ?
			    "is given, for a command sent" :
			    cmd->lock_op != LOCK_OP_NONE ? "is given, for a "
			    "command of the lock's" : "is missing, for a "
			    "command not sent"));
		if (cmd->lock_op != LOCK_OP_NONE && (cmd->sent || cmd->oob ||
		    cmd->client == 0))
			return (state_refuse(rd, at, "lock_op", "is given, for "
			    "a command sent, out of band or of no client"));
		if (cmd->lock_drain && (!cmd->sent || cmd->answered))
			return (state_refuse(rd, at, "lock_drain", "is true, "
			    "for a command not sent or answered"));
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
	if (!state_within("lock_max_waiters", nacquires))
		return (state_refuse(rd, vat, "commands", "has %zu acquires "
		    "of the lock queued, more than lock_max_waiters allows",
		    nacquires));
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

/*
 * What a client has of the lock: whether it used it, and whether it
 * lost it (expired or broken, then the token it lost), fenced.
 */
static int
state_rd_client_lock(struct state_rd *rd, yajl_val o, const char *at,
    struct state_client *c)
{
	const char	*why;
	long long	 n;

	if (state_rd_bool(rd, o, at, "lock_aware", &c->lock_aware) == -1 ||
	    state_rd_str(rd, o, at, "lock_fenced", 32, 0, &why) == -1 ||
	    state_rd_int(rd, o, at, "lock_lost", 0, LLONG_MAX, 0, 0, &n) ==
	    -1)
		return (-1);
	c->lock_lost = (uint64_t)n;
	c->lock_fenced = LOCK_WHY_NONE;
	if (why == NULL)
		return (0);
	if (strcmp(why, lock_why_name(LOCK_WHY_EXPIRED)) == 0)
		c->lock_fenced = LOCK_WHY_EXPIRED;
	else if (strcmp(why, lock_why_name(LOCK_WHY_BROKEN)) == 0)
		c->lock_fenced = LOCK_WHY_BROKEN;
	else
		return (state_refuse(rd, at, "lock_fenced", "is neither "
		    "expired nor broken"));
	return (0);
}

/* A VM's clients, with their orders; then every command is placed. */
/*
 * A client's spool after a crash (client-in.c): its memfd and the two
 * ends of its pipe, which spool_open checks before anything in them is
 * used.
 */
static int
state_rd_spool(struct state_rd *rd, yajl_val o, const char *at,
    struct state_client *c)
{
	yajl_val	 sp;
	char		 sat[160];

	if (state_rd_object(rd, o, at, "spool", 0, &sp) == -1)
		return (-1);
	if (sp == NULL)
		return (0);
	snprintf(sat, sizeof(sat), "%s.spool", at);
	if (state_rd_fd(rd, sp, sat, "memfd", STATE_FD_ANY, STATE_REQ,
	    &c->spool[0]) == -1 ||
	    state_rd_fd(rd, sp, sat, "rd", STATE_FD_ANY, STATE_REQ,
	    &c->spool[1]) == -1 ||
	    state_rd_fd(rd, sp, sat, "wr", STATE_FD_ANY, STATE_REQ,
	    &c->spool[2]) == -1)
		return (-1);
	return (0);
}

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
		c->spool[0] = c->spool[1] = c->spool[2] = -1;
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
		if (state_rd_client_lock(rd, o, at, c) == -1)
			return (-1);
		if (state_rd_bool(rd, o, at, "oob", &c->oob) == -1 ||
		    state_rd_bool(rd, o, at, "recovered", &c->recovered) ==
		    -1 ||
		    state_rd_hex(rd, o, at, "in", 0, &c->in) == -1 ||
		    state_rd_hex(rd, o, at, "out", 0, &c->out) == -1 ||
		    state_rd_spool(rd, o, at, c) == -1)
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
	return (state_rd_lock_clients(rd, vat, vm));
}

/*
 * A histogram of a VM's counters, as state_save_stats writes it under
 * the keys NAME_count, NAME_sum and NAME_buckets; those missing are 0.
 */
static int
state_rd_hist(struct state_rd *rd, yajl_val o, const char *at,
    const struct counter *c, struct counter_hist *h)
{
	yajl_val	 a, v;
	char		 key[64];
	long long	 n;
	size_t		 i;

	snprintf(key, sizeof(key), "%s_count", c->state);
	if (state_rd_int(rd, o, at, key, 0, LLONG_MAX, 0, 0, &n) == -1)
		return (-1);
	h->count = (uint64_t)n;
	snprintf(key, sizeof(key), "%s_sum", c->state);
	if (state_rd_double(rd, o, at, key, 0, DBL_MAX, 0, &h->sum) == -1)
		return (-1);
	snprintf(key, sizeof(key), "%s_buckets", c->state);
	if (state_rd_array(rd, o, at, key, NULL, 0, &a) == -1)
		return (-1);
	if (a != NULL && a->u.array.len > COUNTER_NBUCKETS)
		return (state_refuse(rd, at, key, "has more than %d buckets",
		    COUNTER_NBUCKETS));
	for (i = 0; a != NULL && i < a->u.array.len; i++) {
		v = a->u.array.values[i];
		if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
			return (state_refuse(rd, at, key,
			    "must hold integers from 0"));
		h->buckets[i] = (uint64_t)YAJL_GET_INTEGER(v);
	}
	return (0);
}

/* A VM's counters, those counter.c's table keeps; those missing are 0. */
static int
state_rd_stats(struct state_rd *rd, yajl_val sv, const char *vat,
    struct vm_stats *stats)
{
	const struct counter	*c;
	yajl_val		 o;
	char			 at[128];
	long long		 n;

	if (state_rd_object(rd, sv, vat, "stats", 0, &o) == -1 || o == NULL)
		return (rd->failed ? -1 : 0);
	snprintf(at, sizeof(at), "%s.stats", vat);
	COUNTER_FOREACH(c, COUNTER_STATE) {
		if (c->type == COUNTER_HISTOGRAM) {
			if (state_rd_hist(rd, o, at, c, counter_hist(c,
			    stats)) == -1)
				return (-1);
			continue;
		}
		if (state_rd_int(rd, o, at, c->state, 0, LLONG_MAX, 0, 0,
		    &n) == -1)
			return (-1);
		*counter_ptr(c, stats) = (uint64_t)n;
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

/*
 * Whether a command's name kept across a crash is one to put in a log
 * line and an error: QMP's letters, digits, '-', '_' and '.', as QEMU
 * names its commands.
 */
int
state_sent_name(const char *name)
{
	const char	*p;

	if (*name == '\0')
		return (0);
	for (p = name; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
		    *p == '.'))
			return (0);
	}
	return (1);
}

/*
 * The commands a process before a crash had sent to QEMU and kept in
 * the store (state-store.c): each once, of a client the VM numbered.
 */
static int
state_rd_sent(struct state_rd *rd, yajl_val sv, const char *vat,
    struct state_vm *vm)
{
	struct state_sent	*s;
	yajl_val		 a, o;
	const char		*name;
	char			 at[128];
	long long		 n;
	size_t			 i, j;

	if (state_rd_array(rd, sv, vat, "sent", NULL, 0, &a) == -1 ||
	    a == NULL)
		return (rd->failed ? -1 : 0);
	if (a->u.array.len > STATE_SENT_MAX)
		return (state_refuse(rd, vat, "sent", "has %zu commands, more "
		    "than %d", a->u.array.len, STATE_SENT_MAX));
	if ((vm->sent = calloc(a->u.array.len + 1, sizeof(*vm->sent))) ==
	    NULL)
		fatal("%s", __func__);
	for (i = 0; i < a->u.array.len; i++) {
		s = &vm->sent[vm->nsent++];
		snprintf(at, sizeof(at), "%s.sent[%zu]", vat, i);
		o = a->u.array.values[i];
		if (!YAJL_IS_OBJECT(o))
			return (state_refuse(rd, at, NULL, "must be an "
			    "object"));
		if (state_rd_int(rd, o, at, "epoch", 0, UINT32_MAX, 0,
		    STATE_REQ, &n) == -1)
			return (-1);
		s->epoch = (unsigned int)n;
		if (state_rd_int(rd, o, at, "seq", 1, LLONG_MAX, 0, STATE_REQ,
		    &n) == -1)
			return (-1);
		s->seq = (uint64_t)n;
		if (state_rd_int(rd, o, at, "client", 1, INT_MAX, 0,
		    STATE_REQ, &n) == -1)
			return (-1);
		s->client = (int)n;
		if (state_rd_hex(rd, o, at, "id", 0, &s->id) == -1 ||
		    state_rd_str(rd, o, at, "name", QMP_NAME_MAX - 1,
		    STATE_REQ, &name) == -1 ||
		    state_rd_double(rd, o, at, "age", 0, STATE_SECONDS_MAX, 0,
		    &s->age) == -1 ||
		    state_rd_double(rd, o, at, "timeout", 0, STATE_SECONDS_MAX,
		    0, &s->timeout) == -1 ||
		    state_rd_bool(rd, o, at, "expired", &s->expired) == -1 ||
		    state_rd_int(rd, o, at, "at", -1, LLONG_MAX, -1, 0,
		    &n) == -1)
			return (-1);
		s->at = (int64_t)n;
		if (s->id.len > STATE_SENT_ID)
			return (state_refuse(rd, at, "id", "is longer than %d "
			    "bytes", STATE_SENT_ID));
		if (!state_sent_name(name))
			return (state_refuse(rd, at, "name", "is not a "
			    "command's name"));
		snprintf(s->name, sizeof(s->name), "%s", name);
		if (s->client > vm->next_client_id)
			return (state_refuse(rd, at, "client", "is past the "
			    "VM's next_client_id"));
		for (j = 0; j + 1 < vm->nsent; j++) {
			if (vm->sent[j].epoch == s->epoch &&
			    vm->sent[j].seq == s->seq)
				return (state_refuse(rd, at, "seq", "is given "
				    "twice"));
		}
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
	    state_rd_lock(rd, sv, at, &vm->lock) == -1 ||
	    state_rd_upstream(rd, sv, at, &vm->up) == -1 ||
	    state_rd_listeners(rd, sv, at, vm) == -1 ||
	    state_rd_cmds(rd, sv, at, vm) == -1 ||
	    state_rd_clients(rd, sv, at, vm) == -1 ||
	    state_rd_sent(rd, sv, at, vm) == -1)
		return (-1);
	return (0);
}

/* A control client, as state_control_adopt takes it over. */
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
 * by state_control_adopt from the tree, checked here as it reads them.
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
	yajl_val	 root, v, fv;
	long long	 fd;
	size_t		 i, n;

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
	/* the version first, and once: every member is given once */
	for (i = 0, n = 0; i < root->u.object.len; i++)
		n += strcmp(root->u.object.keys[i], "qmpmux_state") == 0;
	if (n > 1) {
		snprintf(err, errlen, "qmpmux_state is given twice");
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
	/*
	 * What the process before had in the service manager's store, and
	 * where it knew it, the fd, which the exec kept if the state names
	 * it (one it does not is closed, or another file by now: the fd's
	 * file is what counts, fdstore_inherit_fd).
	 */
	v = json_get(root, "fdstore", yajl_t_array);
	fv = json_get(root, "fdstore_fds", yajl_t_array);
	for (i = 0; v != NULL && i < v->u.array.len; i++) {
		fd = fv != NULL && i < fv->u.array.len &&
		    YAJL_IS_INTEGER(fv->u.array.values[i]) ?
		    YAJL_GET_INTEGER(fv->u.array.values[i]) : -1;
		if (fd >= 3 && fd <= INT_MAX)
			fdstore_inherit_fd(YAJL_GET_STRING(
			    v->u.array.values[i]), (int)fd);
		else
			fdstore_inherit(YAJL_GET_STRING(v->u.array.values[i]));
	}
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
		for (j = 0; j < vm->nsent; j++)
			state_bytes_free(&vm->sent[j].id);
		for (j = 0; j < vm->nclients; j++) {
			state_bytes_free(&vm->clients[j].in);
			state_bytes_free(&vm->clients[j].out);
			free(vm->clients[j].order);
		}
		free(vm->given);
		free(vm->listeners);
		free(vm->cmds);
		free(vm->clients);
		free(vm->sent);
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
