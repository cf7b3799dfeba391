/*
 * The diagnostic dump: the whole state of the server, for a person in
 * the log and for a program as one JSON document.  Both walk the VMs
 * in their order, and a VM's counters are shown in both from one walk
 * of counter.c's table (dump_counters): the log line shows those marked
 * for it, fewer than the JSON.  Nothing here waits on a peer: the
 * document is built in memory and written to a local file under a
 * temporary name, then renamed into place, so a reader never sees half
 * of it.
 *
 * The JSON format is versioned (DUMP_VERSION, in qmpmux.h) and documented in
 * qmpmuxd(8); a change that removes or retypes a member bumps it.
 * Times are seconds, as fractions: "age" members count back from the
 * dump's own "time", which is the wall clock.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <yajl/yajl_gen.h>

#include "qmpmux.h"

#define DUMP_FILE_MODE	0600	/* of the dump file, whatever the umask */

/* A yajl generator with shorthands for the members of an object. */
struct dump {
	yajl_gen	 g;
};

static void
dump_key(struct dump *d, const char *key)
{
	json_string(d->g, (const unsigned char *)key, strlen(key));
}

static void
dump_str(struct dump *d, const char *key, const char *value)
{
	dump_key(d, key);
	if (value == NULL)
		json_null(d->g);
	else
		json_qstring(d->g, value);
}

static void
dump_uint(struct dump *d, const char *key, unsigned long long value)
{
	char	 buf[32];
	int	 n;

	dump_key(d, key);
	n = snprintf(buf, sizeof(buf), "%llu", value);
	json_number(d->g, buf, (size_t)n);
}

static void
dump_int(struct dump *d, const char *key, long long value)
{
	dump_key(d, key);
	json_integer(d->g, value);
}

static void
dump_bool(struct dump *d, const char *key, int value)
{
	dump_key(d, key);
	json_bool(d->g, value);
}

/* Seconds, to the millisecond; NULL when there is no such time. */
static void
dump_secs(struct dump *d, const char *key, const struct timeval *since)
{
	char	 buf[32];
	int	 n;

	dump_key(d, key);
	if (since == NULL) {
		json_null(d->g);
		return;
	}
	n = snprintf(buf, sizeof(buf), "%.3f", util_elapsed(since));
	json_number(d->g, buf, (size_t)n);
}

/* A number of seconds, to the millisecond. */
static void
dump_double(struct dump *d, const char *key, double value)
{
	char	 buf[32];
	int	 n;

	dump_key(d, key);
	n = snprintf(buf, sizeof(buf), "%.3f", value);
	json_number(d->g, buf, (size_t)n);
}

/*
 * The VM's state as an operator asks about it: connecting (or
 * listening for QEMU), handshaking, ready, stalled (a sent command is
 * past its deadline and QEMU has not answered since), lost (QEMU went,
 * and it is reached again), stopping.
 */
const char *
dump_vm_state(const struct vm *vm)
{
	if (vm->stop != NULL)
		return ("stopping");
	switch (vm->mon->state) {
	case MONITOR_BACKOFF:
		return (vm->stats.reconnects > 0 ? "lost" : "connecting");
	case MONITOR_CONNECTING:
		return ("connecting");
	case MONITOR_LISTENING:
		return (vm->stats.reconnects > 0 ? "lost" : "listening");
	case MONITOR_GREETING:
	case MONITOR_NEGOTIATING:
		return ("handshaking");
	case MONITOR_READY:
		return (vm->stalled ? "stalled" : "ready");
	case MONITOR_CLOSED:
		return ("lost");
	}
	return ("unknown");
}

/* The time left before a command's deadline; -1 without one. */
static double
dump_deadline(const struct cmd *cmd)
{
	double	 limit = cmd->timeout;

	if (limit <= 0 || cmd->expired)
		return (-1);
	return (limit - util_elapsed(&cmd->arrived));
}

static void
dump_cmd(struct dump *d, const struct cmd *cmd)
{
	double	 left = dump_deadline(cmd);

	json_map_open(d->g);
	dump_str(d, "command", cmd->name);
	dump_key(d, "client");
	if (cmd->owner != 0)
		json_integer(d->g, cmd->owner);
	else
		json_null(d->g);
	dump_uint(d, "upstream_id", cmd->upstream_id);
	dump_bool(d, "sent", cmd->sent);
	dump_bool(d, "oob", cmd->oob);
	dump_bool(d, "timed_out", cmd->answered);
	dump_secs(d, "age", &cmd->arrived);
	if (left < 0) {
		dump_key(d, "deadline_in");
		json_null(d->g);
	} else
		dump_double(d, "deadline_in", left);
	json_map_close(d->g);
}

static void
dump_client(struct dump *d, const struct client *c)
{
	json_map_open(d->g);
	dump_int(d, "id", c->id);
	dump_int(d, "pid", (long long)c->pid);
	dump_int(d, "uid", (long long)c->uid);
	dump_str(d, "listener", c->listener->conf->path);
	dump_str(d, "priority", conf_prio_name(c->listener->conf->priority));
	/* its bucket as last seen (cmd.c refills it when it looks) */
	if (c->listener->conf->rate_limit > 0 && timerisset(&c->tokens_at))
		dump_double(d, "rate_tokens", c->tokens);
	dump_str(d, "state", client_state_name(c->state));
	dump_bool(d, "negotiated", c->state == CLIENT_READY);
	dump_bool(d, "oob", c->oob);
	dump_uint(d, "commands", c->ncmds);
	dump_uint(d, "output_bytes", client_out_len(c));
	/* what a crash would send on: client-out.c; the rest is lost */
	dump_uint(d, "output_kept", spool_used(c->spool, CLIENT_OUT_RING));
	dump_uint(d, "bytes_out", c->bytes_out);
	dump_bool(d, "holds_events", !TAILQ_EMPTY(&c->events));
	dump_bool(d, "input_paused", c->input_paused);
	dump_bool(d, "input_ended", c->eof);
	/* what a crash would read again: client-in.c */
	dump_uint(d, "input_kept", spool_used(c->spool, CLIENT_IN_RING));
	json_map_close(d->g);
}

/* The VM's advisory lock (lock.c): its holder and who waits. */
static void
dump_lock(struct dump *d, const struct vm *vm)
{
	const struct vm_lock	*l = &vm->lock;
	const struct cmd	*cmd;

	dump_key(d, "lock");
	json_map_open(d->g);
	dump_bool(d, "held", l->held);
	dump_uint(d, "token", l->held ? l->token : l->last_token);
	if (l->held) {
		dump_key(d, "holder");
		json_map_open(d->g);
		dump_int(d, "client", l->holder);
		dump_bool(d, "gone", l->owner == NULL);
		dump_str(d, "listener", l->listener);
		dump_int(d, "pid", (long long)l->pid);
		dump_int(d, "uid", (long long)l->uid);
		json_map_close(d->g);
		dump_str(d, "reason", l->reason);
		dump_secs(d, "held_for", &l->since);
		dump_double(d, "expires_in", lock_expires_in(vm));
		dump_uint(d, "draining", l->draining);
	} else {
		dump_key(d, "holder");
		json_null(d->g);
	}
	dump_key(d, "waiters");
	json_array_open(d->g);
	TAILQ_FOREACH(cmd, &vm->queue, entry) {
		if (cmd->lock_op != LOCK_OP_ACQUIRE && !cmd->lock_blocked)
			continue;
		json_map_open(d->g);
		dump_int(d, "client", cmd->owner);
		dump_str(d, "command", cmd->name);
		dump_secs(d, "waited", &cmd->arrived);
		json_map_close(d->g);
	}
	json_array_close(d->g);
	json_map_close(d->g);
}

/*
 * A VM's counters, in one walk of counter.c's table: as the members of
 * the object "counters" of query-vm and the dump's JSON (d not NULL),
 * and as the end of the dump's line in the log (line not NULL, len
 * bytes, cut short if need be), each as "N name" with the name's
 * underscores as spaces.  Each place shows the counters marked for it.
 */
static void
dump_counters(struct dump *d, const struct vm *vm, char *line, size_t len)
{
	const struct counter	*c;
	const char		*sep = "";
	char			 name[64], *p;
	size_t			 off = 0;
	int			 n;

	if (line != NULL && len > 0)
		line[0] = '\0';
	if (d != NULL) {
		dump_key(d, "counters");
		json_map_open(d->g);
	}
	COUNTER_FOREACH(c, COUNTER_JSON | COUNTER_LOG) {
		if (d != NULL && (c->places & COUNTER_JSON))
			json_put_uint(d->g, c->name, counter_value(c, vm));
		if (line == NULL || !(c->places & COUNTER_LOG) || off >= len)
			continue;
		snprintf(name, sizeof(name), "%s", c->name);
		for (p = name; *p != '\0'; p++)
			if (*p == '_')
				*p = ' ';
		n = snprintf(line + off, len - off, "%s%llu %s", sep,
		    (unsigned long long)counter_value(c, vm), name);
		off = n < 0 ? len : off + (size_t)n;
		sep = ", ";
	}
	if (d != NULL)
		json_map_close(d->g);
}

/* One VM, in full: what query-vm answers, and an element of the dump. */
void
dump_vm(yajl_gen g, const struct vm *vm)
{
	struct dump		 d = { g };
	const struct monitor	*m = vm->mon;
	const struct listener	*l;
	const struct client	*c;
	const struct cmd	*cmd;
	const char		*name;
	int			 i;

	json_map_open(g);
	dump_str(&d, "name", vm->name);
	dump_str(&d, "state", dump_vm_state(vm));
	dump_secs(&d, "stalled_for", vm->stalled ? &vm->stalled_since : NULL);
	dump_str(&d, "origin", vm->conf.from_file ? "config" : "control");
	dump_str(&d, "defined_at", vm->conf.where);

	dump_key(&d, "upstream");
	json_map_open(g);
	dump_str(&d, "mode", conf_upstream_mode_name(vm->conf.upstream_mode));
	dump_str(&d, "path", vm->conf.upstream);
	dump_str(&d, "state", monitor_state_name(m->state));
	dump_secs(&d, "state_for", &m->since);
	dump_str(&d, "qemu", m->version);
	dump_bool(&d, "oob", m->oob);
	json_map_close(g);

	dump_key(&d, "reads");
	json_map_open(g);
	dump_bool(&d, "paused", vm->reads_paused);
	dump_secs(&d, "paused_for", vm->reads_paused ? &vm->paused_since :
	    NULL);
	dump_bool(&d, "waiting_for_host_budget", vm->budget_paused);
	json_map_close(g);

	dump_key(&d, "backlog");
	json_map_open(g);
	dump_uint(&d, "events", vm->backlog_events);
	dump_uint(&d, "max_events", vm->conf.max_queued_events);
	dump_uint(&d, "bytes", vm->backlog_bytes);
	dump_uint(&d, "max_bytes", vm->conf.max_queued_bytes);
	json_map_close(g);

	dump_key(&d, "commands");
	json_map_open(g);
	dump_uint(&d, "in_flight", vm->ninflight);
	dump_uint(&d, "max_in_flight", vm->conf.max_inflight);
	dump_uint(&d, "queued", vm->nqueued);
	dump_key(&d, "queued_by_priority");
	json_map_open(g);
	for (i = 0; i < PRIO_N; i++)
		dump_uint(&d, conf_prio_name((enum prio)i),
		    vm->nclass_queued[i]);
	json_map_close(g);
	dump_uint(&d, "max_queued", vm->conf.max_queued_commands);
	dump_double(&d, "priority_relief", vm->conf.priority_relief);
	dump_double(&d, "manager_quiet", vm->conf.manager_quiet);
	dump_double(&d, "command_timeout", vm->conf.command_timeout);
	dump_key(&d, "list");
	json_array_open(g);
	TAILQ_FOREACH(cmd, &vm->inflight, entry)
		dump_cmd(&d, cmd);
	TAILQ_FOREACH(cmd, &vm->queue, entry)
		dump_cmd(&d, cmd);
	json_array_close(g);
	json_map_close(g);

	dump_lock(&d, vm);

	dump_key(&d, "introspection_cache");
	json_map_open(g);
	dump_uint(&d, "bytes", cache_bytes(vm));
	dump_uint(&d, "max_bytes", vm->conf.introspection_cache);
	dump_key(&d, "commands");
	json_array_open(g);
	for (i = 0; (name = cache_kept(vm, i)) != NULL; i++)
		json_string(g, name, strlen(name));
	json_array_close(g);
	json_map_close(g);

	dump_key(&d, "listeners");
	json_array_open(g);
	TAILQ_FOREACH(l, &vm->listeners, entry) {
		json_map_open(g);
		dump_str(&d, "path", l->conf->path);
		dump_bool(&d, "open", l->evl != NULL);
		dump_bool(&d, "read_only", l->conf->acl.read_only);
		dump_str(&d, "slow_client", l->conf->slow_client ==
		    SLOW_CLIENT_BLOCK ? "block" : "disconnect");
		dump_str(&d, "priority", conf_prio_name(l->conf->priority));
		dump_uint(&d, "rate_limit", l->conf->rate_limit);
		dump_uint(&d, "rate_burst", l->conf->rate_burst > 0 ?
		    l->conf->rate_burst : l->conf->rate_limit);
		json_map_close(g);
	}
	json_array_close(g);

	dump_key(&d, "clients");
	json_array_open(g);
	TAILQ_FOREACH(c, &vm->clients, entry)
		dump_client(&d, c);
	json_array_close(g);

	dump_counters(&d, vm, NULL, 0);
	json_map_close(g);
}

/*
 * One VM in short, an element of the control socket's query-vms: what
 * an operator lists, without the commands and clients of dump_vm.
 */
void
dump_vm_brief(yajl_gen g, const struct vm *vm)
{
	struct dump		 d = { g };
	const struct listener	*l;
	const struct client	*c;
	unsigned int		 nclients = 0;

	json_map_open(g);
	dump_str(&d, "name", vm->name);
	dump_str(&d, "state", dump_vm_state(vm));
	dump_secs(&d, "state_for", vm->stalled ? &vm->stalled_since :
	    &vm->mon->since);
	dump_str(&d, "origin", vm->conf.from_file ? "config" : "control");
	dump_key(&d, "upstream");
	json_map_open(g);
	dump_str(&d, "mode", conf_upstream_mode_name(vm->conf.upstream_mode));
	dump_str(&d, "path", vm->conf.upstream);
	dump_str(&d, "state", monitor_state_name(vm->mon->state));
	json_map_close(g);
	dump_key(&d, "listeners");
	json_array_open(g);
	TAILQ_FOREACH(l, &vm->listeners, entry)
		json_qstring(g, l->conf->path);
	json_array_close(g);
	TAILQ_FOREACH(c, &vm->clients, entry)
		nclients++;
	dump_uint(&d, "clients", nclients);
	dump_uint(&d, "in_flight", vm->ninflight);
	dump_uint(&d, "queued", vm->nqueued);
	dump_uint(&d, "backlog_events", vm->backlog_events);
	dump_uint(&d, "backlog_bytes", vm->backlog_bytes);
	dump_bool(&d, "reads_paused", vm->reads_paused);
	dump_secs(&d, "stalled_for", vm->stalled ? &vm->stalled_since : NULL);
	json_map_close(g);
}

/* The whole server, as one JSON document; *len its length. */
char *
dump_json(struct server *s, size_t *len)
{
	struct dump		 d;
	struct vm		*vm;
	struct timeval		 now;
	const unsigned char	*buf;
	char			*out;
	size_t			 n;

	if ((d.g = json_new()) == NULL)
		fatalx("%s: yajl_gen_alloc failed", __func__);
	gettimeofday(&now, NULL);
	json_map_open(d.g);
	dump_str(&d, "format", "qmpmux-dump");
	dump_int(&d, "version", DUMP_VERSION);
	dump_str(&d, "qmpmuxd", PACKAGE_VERSION);
	dump_int(&d, "pid", (long long)getpid());
	dump_double(&d, "time", (double)now.tv_sec + now.tv_usec / 1e6);
	dump_key(&d, "memory");
	json_map_open(d.g);
	dump_uint(&d, "event_bytes", s->backlog_bytes);
	dump_uint(&d, "max_total_queued_bytes", s->max_memory);
	dump_uint(&d, "vms_holding_events", s->nbacklogged);
	json_map_close(d.g);
	dump_key(&d, "vms");
	json_array_open(d.g);
	TAILQ_FOREACH(vm, &s->vms, entry)
		dump_vm(d.g, vm);
	TAILQ_FOREACH(vm, &s->stopping, entry)
		dump_vm(d.g, vm);
	json_array_close(d.g);
	json_map_close(d.g);
	json_buf(d.g, &buf, &n);
	if ((out = malloc(n + 2)) == NULL)
		fatal("%s", __func__);
	memcpy(out, buf, n);
	out[n] = '\n';
	out[n + 1] = '\0';
	*len = n + 1;
	json_free(d.g);
	return (out);
}

/* The same state as readable lines in the log, a VM at a time. */
void
dump_log(struct server *s)
{
	struct vm	*vm;
	struct cmd	*cmd;
	struct client	*c;
	char		 counters[512];

	log_info("dump: %u VMs; events of all VMs %zu of %zu bytes",
	    host_count(s), s->backlog_bytes, s->max_memory);
	TAILQ_FOREACH(vm, &s->vms, entry) {
		dump_counters(NULL, vm, counters, sizeof(counters));
		vm_log(vm, LOG_INFO, "dump: %s for %.3fs; upstream %s:%s %s, "
		    "QEMU %s; reads %s; backlog %zu/%zu events, %zu/%zu "
		    "bytes; %u in flight, %u queued; %s", dump_vm_state(vm),
		    util_elapsed(vm->stalled ? &vm->stalled_since :
		    &vm->mon->since), conf_upstream_mode_name(
		    vm->conf.upstream_mode), vm->conf.upstream != NULL ?
		    vm->conf.upstream : "(fd)", monitor_state_name(
		    vm->mon->state), vm->mon->version != NULL ?
		    vm->mon->version : "(unknown)", vm->reads_paused ?
		    "paused" : "running", vm->backlog_events,
		    vm->conf.max_queued_events, vm->backlog_bytes,
		    vm->conf.max_queued_bytes, vm->ninflight, vm->nqueued,
		    counters);
		TAILQ_FOREACH(cmd, &vm->inflight, entry)
			vm_log(vm, LOG_INFO, "dump: %s (id %llu) of client "
			    "%d: sent, %.3fs ago%s", cmd->name,
			    (unsigned long long)cmd->upstream_id,
			    cmd->owner,
			    util_elapsed(&cmd->arrived), cmd->expired ?
			    ", past its deadline" : "");
		TAILQ_FOREACH(cmd, &vm->queue, entry)
			vm_log(vm, LOG_INFO, "dump: %s of client %d: queued, "
			    "%.3fs ago", cmd->name, cmd->owner,
			    util_elapsed(&cmd->arrived));
		TAILQ_FOREACH(c, &vm->clients, entry)
			client_log(c, LOG_INFO, "dump: %s on %s (pid %ld, uid "
			    "%ld), %u commands, %zu bytes unwritten",
			    client_state_name(c->state),
			    c->listener->conf->path, (long)c->pid,
			    (long)c->uid, c->ncmds, client_out_len(c));
	}
}

/*
 * Write the dump's JSON to path: to a new file of a name no one can
 * foresee in the same directory (mkostemps: O_CREAT|O_EXCL, so no
 * symlink or file planted there is followed or reused), mode
 * DUMP_FILE_MODE, synced, then renamed into place.  -1 (logged) if it
 * cannot be written.
 */
int
dump_write(const char *path, const char *json, size_t len)
{
	char	*tmp;
	FILE	*f = NULL;
	int	 fd, rv = -1;

	if (asprintf(&tmp, "%s.XXXXXX.tmp", path) == -1)
		fatal("%s", __func__);
	if ((fd = mkostemps(tmp, 4, O_CLOEXEC)) == -1) {
		log_warn("dump: cannot write %s", tmp);
		goto out;
	}
	if (fchmod(fd, DUMP_FILE_MODE) == -1 ||
	    (f = fdopen(fd, "w")) == NULL ||
	    fwrite(json, 1, len, f) != len || fflush(f) == EOF ||
	    fsync(fd) == -1) {
		log_warn("dump: cannot write %s", tmp);
		if (f != NULL)
			fclose(f);
		else
			close(fd);
		unlink(tmp);
		goto out;
	}
	if (fclose(f) == EOF) {
		log_warn("dump: cannot write %s", tmp);
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) == -1) {
		log_warn("dump: cannot rename %s to %s", tmp, path);
		unlink(tmp);
		goto out;
	}
	log_info("dump: written to %s (%zu bytes)", path, len);
	rv = 0;
out:
	free(tmp);
	return (rv);
}

/*
 * SIGUSR1 and the control socket's dump: the state of every VM, as
 * lines in the log and as JSON in the dump file.  The JSON is made once
 * and returned, for a caller that answers with it; the caller frees it.
 */
char *
dump_all(struct server *s, size_t *len)
{
	char	*json;

	dump_log(s);
	json = dump_json(s, len);
	if (s->dump_file != NULL)
		dump_write(s->dump_file, json, *len);
	return (json);
}
