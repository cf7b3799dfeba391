/*
 * The server: the one owner of everything qmpmuxd runs.  It holds the
 * event base, the VMs (their set is host.c's), the configuration they
 * came from, what is counted across them (the host-wide memory
 * budget), the control socket and the metrics.  It is the top floor:
 * it wires the rooms below together (the proxy's hooks to the fd
 * store's keeper and the host, the control socket's acts to itself)
 * and drives what spans them: start-up and the take-over after a
 * restart or a crash, reload, restart, dump and shutdown.  main only
 * parses options, turns signals into these calls and runs the loop.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "control.h"
#include "state.h"

/*
 * While datagrams wait for the service manager (fdstore.c), they are
 * sent again every SERVER_NOTIFY_RETRY, and at once after some went, as
 * it is reading again; at exit it is waited for up to
 * SERVER_NOTIFY_FINISH_MS.
 */
#define SERVER_NOTIFY_RETRY_US	50000
#define SERVER_NOTIFY_SOON_US	1000
#define SERVER_NOTIFY_FINISH_MS	1000

static void	server_notify_wait(void *);
static void	server_notify_cb(int, short, void *);
static void	server_vm_change(struct vm *, enum vm_change, const void *,
		    int);

/* What the proxy tells, passed on to the rooms that act on it. */
static const struct vm_hooks server_vm_hooks = {
	server_vm_change,
};

/* The control socket's commands, and the acts of the server they ask. */
static const struct control_ops server_control_ops = {
	control_cmds,
	server_reload,
	server_restart,
};

/* Make a server; conf_path NULL: the command line alone configures it. */
struct server *
server_new(struct event_base *base, const char *conf_path,
    const struct conf_entries *cmdline)
{
	struct server		*s;
	struct conf_entry	*e;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatal("%s", __func__);
	s->base = base;
	if (conf_path != NULL && (s->conf_path = strdup(conf_path)) == NULL)
		fatal("%s", __func__);
	TAILQ_INIT(&s->cmdline);
	TAILQ_FOREACH(e, cmdline, entry)
		conf_entry_add(&s->cmdline, e->section, e->key, e->value,
		    e->file, e->line);
	TAILQ_INIT(&s->vms);
	TAILQ_INIT(&s->stopping);
	TAILQ_INIT(&s->budget_paused);
	s->max_memory = SIZE_MAX;
	gettimeofday(&s->started, NULL);
	/* new at each start afresh: an id of another is from before */
	if (getentropy(&s->epoch, sizeof(s->epoch)) == -1)
		s->epoch = (unsigned int)s->started.tv_usec ^
		    (unsigned int)getpid();
	conf_vm_init(&s->defaults);
	if ((s->notify = evtimer_new(base, server_notify_cb, s)) == NULL)
		fatalx("%s: evtimer_new failed", __func__);
	fdstore_set_hook(server_notify_wait, s);
	s->hooks = &server_vm_hooks;
	return (s);
}

/*
 * A VM told of a change: its sockets and record to the fd store's
 * keeper; a VM whose upstream cannot come back leaves the host.
 */
static void
server_vm_change(struct vm *vm, enum vm_change what, const void *obj, int fd)
{
	if (what == VM_CLOSED)
		host_remove(vm->server, vm, "qmpmux: connection to QEMU lost");
	else
		state_store_change(vm, what, obj, fd);
}

/*
 * Datagrams wait for the service manager: the loop sends them again
 * later (fdstore.c never waits for it, nor calls up to the loop).
 */
static void
server_notify_wait(void *arg)
{
	struct server	*s = arg;
	struct timeval	 tv = { 0, SERVER_NOTIFY_RETRY_US };

	if (!evtimer_pending(s->notify, NULL))
		evtimer_add(s->notify, &tv);
}

/* Send what waits for the service manager; again later if some is left. */
static void
server_notify_cb(int fd, short events, void *arg)
{
	struct server	*s = arg;
	struct timeval	 tv = { 0, SERVER_NOTIFY_RETRY_US };

	if (fdstore_flush() > 0)
		tv.tv_usec = SERVER_NOTIFY_SOON_US;
	if (fdstore_pending() > 0)
		evtimer_add(s->notify, &tv);
}

/* Read the configuration the server was made with. */
int
server_load(struct server *s, struct conf *conf, char *err, size_t errlen)
{
	return (conf_load(conf, s->conf_path, &s->cmdline, err, errlen));
}

/*
 * Serve the metrics at addr, NULL for none: a new address is listened
 * on in place of the old, and the same one is left alone, unless it
 * could not be listened on before.  -1 (logged) if it cannot be now.
 */
static int
server_set_metrics(struct server *s, const char *addr)
{
	if (s->metrics != NULL && addr != NULL &&
	    strcmp(metrics_addr(s->metrics), addr) == 0) {
		metrics_limits(s->metrics);
		return (0);
	}
	metrics_free(s->metrics);
	s->metrics = NULL;
	if (addr == NULL)
		return (0);
	if ((s->metrics = metrics_new(s, addr)) == NULL)
		return (-1);
	return (0);
}

/*
 * Take what the configuration says for the whole daemon; -1 (logged)
 * if the metrics cannot be served where it says.
 */
static int
server_set_global(struct server *s, struct conf *conf)
{
	s->max_memory = conf->max_memory;
	s->lim = conf->lim;
	fdstore_set_max_pending(s->lim.fdstore_max_pending);
	conf_vm_clear(&s->defaults);
	conf_vm_copy(&s->defaults, &conf->defaults);
	free(s->dump_file);
	if ((s->dump_file = strdup(conf->dump_file)) == NULL)
		fatal("%s", __func__);
	return (server_set_metrics(s, conf->metrics));
}

/*
 * Make a VM of a conf (taken over) and start it: as a new one, or,
 * taking over (st), as the VM of the state of that name, if there is
 * one.  -1 (logged) if it cannot be made or started; what the state
 * had of it is closed then.
 */
static int
server_add(struct server *s, struct vm_conf *vc, struct state *st)
{
	struct state_vm	*sv = NULL;
	struct vm	*vm;
	char		*name;

	if (st != NULL)
		sv = state_vm_prepare(st, vc);
	if ((name = strdup(vc->name)) == NULL)
		fatal("%s", __func__);
	if ((vm = host_make(s, vc)) == NULL) {
		if (sv != NULL)
			state_vm_abandon(name, sv);
		free(name);
		return (-1);
	}
	free(name);
	if ((sv != NULL ? state_vm_restore(vm, sv) : vm_start(vm)) == -1) {
		host_unmake(s, vm);
		return (-1);
	}
	return (0);
}

/*
 * Start every VM of a configuration, taking over what st holds (NULL:
 * a start afresh).  Connects and handshakes then run at once, each VM
 * under its own timeouts.  -1 if one cannot start (a listener's socket
 * cannot be made): at start-up that is the exit status, not a log line
 * to find later.  The VMs started before it are freed then, so that
 * the exit leaves none of their sockets behind.  Taking over, such a
 * VM is left out instead, and its connections closed, and then come
 * the VMs the control socket had added and the control socket itself.
 */
int
server_start(struct server *s, struct conf *conf, struct state *st)
{
	struct vm_conf	*vc;

	if (st != NULL) {
		/* the commands in flight keep their ids */
		s->epoch = (unsigned int)json_get_int(state_root(st), "epoch",
		    s->epoch);
		/* what the file gave up goes before anything binds */
		state_release(st, conf);
	}
	/* taking over, the VMs' connections matter more than the metrics */
	if (server_set_global(s, conf) == -1 && st == NULL)
		return (-1);
	while ((vc = TAILQ_FIRST(&conf->vms)) != NULL) {
		TAILQ_REMOVE(&conf->vms, vc, entry);
		if (st != NULL && state_vm_added(st, vc->name)) {
			log_warnx("vm %s: added while running; the one in the "
			    "configuration is not started", vc->name);
			conf_vm_clear(vc);
			free(vc);
			continue;
		}
		if (server_add(s, vc, st) == -1) {
			free(vc);
			/*
			 * Taking over, the others' connections are open and
			 * served: one VM that cannot be made is no reason to
			 * drop them all.  It is logged, as a reload does.
			 */
			if (st != NULL)
				continue;
			host_free_all(s);
			return (-1);
		}
		free(vc);
	}
	if (st != NULL) {
		while ((vc = state_vm_next_added(st, s)) != NULL) {
			server_add(s, vc, st);
			free(vc);
		}
		/* after the VMs, so that its first command finds them */
		s->control = state_control_adopt(st, s, conf->control_path,
		    &server_control_ops);
	}
	log_info("%u VMs started", host_count(s));
	return (0);
}

/*
 * The control socket, unless a take-over adopted it.  One that was
 * asked for must be made, or the daemon exits.  The default's
 * directory is made if it is missing, as systemd's RuntimeDirectory=
 * would; if the default still cannot be made (a user other than root
 * runs one VM by hand) the daemon runs without one and says so.
 * -1 (logged) when it must exit.
 */
int
server_control(struct server *s, const char *path)
{
	int	 dflt;

	if (s->control != NULL || path == NULL)
		return (0);
	dflt = strcmp(path, QMPMUX_RUNDIR "/control.sock") == 0;
	if (dflt && mkdir(QMPMUX_RUNDIR, 0755) == -1 && errno != EEXIST)
		log_debug("control: cannot make %s: %s", QMPMUX_RUNDIR,
		    strerror(errno));
	if ((s->control = control_new(s, path, &server_control_ops)) != NULL)
		return (0);
	if (!dflt) {
		log_warnx("cannot make the control socket");
		return (-1);
	}
	log_warnx("control: running without a control socket: the default, "
	    "%s, cannot be made; set control (--control) to a path or none",
	    path);
	return (0);
}

/*
 * Run what the configuration says, at start-up: a restart's state or,
 * after a crash, what the service manager gave back is taken over; then
 * the control socket, and what came back and nothing took is let go.
 * 1 if it took over, 0 if it started afresh, -1 (logged) if it cannot
 * start.  conf is used up.
 */
int
server_run(struct server *s, struct conf *conf)
{
	struct state	*st = NULL;
	char		 err[CONF_ERR_MAX];
	int		 sfd, rv;

	if ((sfd = restart_state_fd()) != -1) {
		if ((st = state_read(sfd, err, sizeof(err))) == NULL)
			fatalx("cannot take over from the process before: %s",
			    err);
		close(sfd);
	} else if ((st = state_recover(err, sizeof(err))) == NULL &&
	    err[0] != '\0')
		log_warnx("fdstore: the sockets given back cannot be taken "
		    "over: %s", err);
	rv = server_start(s, conf, st);
	if (rv == 0 && server_control(s, conf->control_path) == -1) {
		host_free_all(s);
		rv = -1;
	}
	conf_clear(conf);
	/* what came in the store and was not taken over is let go */
	if (rv == 0)
		fdstore_forget_others();
	if (rv == 0 && st != NULL)
		rv = 1;
	state_free(st);
	return (rv);
}

/*
 * Reload: read the whole configuration again, and only if it is good
 * change anything (host_reload).  The service manager hears of it, as
 * systemd's Type=notify-reload wants, whoever asked.  -1 (logged, and
 * err says why) if the new configuration is bad: the running one stays.
 */
int
server_reload(struct server *s, char *err, size_t errlen)
{
	struct conf		 conf;
	struct host_counts	 n;
	char			 status[64];
	int			 rv = 0;

	fdstore_notify("RELOADING=1");
	if (server_load(s, &conf, err, errlen) == -1) {
		log_warnx("reload failed, the running configuration stays: "
		    "%s", err);
		rv = -1;
	} else {
		host_reload(s, &conf, &n);
		server_set_global(s, &conf);
		conf_clear(&conf);
		log_info("reloaded: %u VMs added, %u removed, %u changed; %u "
		    "running", n.added, n.removed, n.changed, host_count(s));
	}
	snprintf(status, sizeof(status), "READY=1\nSTATUS=%u VMs",
	    host_count(s));
	fdstore_notify(status);
	return (rv);
}

/*
 * Restart in place, handing everything over (restart.c); by and id are
 * the control client that asked and its command's id, 0 and NULL for a
 * signal.  Returns only if the restart did not happen; err says why.
 */
int
server_restart(struct server *s, int by, const char *id, size_t idlen,
    char *err, size_t errlen)
{
	return (restart(s, s->control, by, id, idlen, err, errlen));
}

/* SIGUSR1: the diagnostic dump, logged and written to the dump file. */
void
server_dump(struct server *s)
{
	size_t	 len;

	free(dump_all(s, &len));
}

/*
 * Stop every VM, answering what is owed, and call done once the last
 * is freed; no command may change the VMs while they stop, so the
 * control socket goes first.  A second call changes nothing.
 */
void
server_shutdown(struct server *s, void (*done)(void *), void *arg)
{
	if (s->shutdown_done != NULL)
		return;
	fdstore_notify("STOPPING=1");
	control_free(s->control);
	s->control = NULL;
	host_shutdown(s, done, arg);
}

/* Free the server and whatever VMs it still has; NULL is allowed. */
void
server_free(struct server *s)
{
	if (s == NULL)
		return;
	control_free(s->control);
	host_free_all(s);
	metrics_free(s->metrics);
	/* what the VMs' ends took out of the store goes before the process */
	fdstore_set_hook(NULL, NULL);
	fdstore_finish(SERVER_NOTIFY_FINISH_MS);
	event_free(s->notify);
	conf_entries_clear(&s->cmdline);
	conf_vm_clear(&s->defaults);
	free(s->conf_path);
	free(s->dump_file);
	free(s);
}
