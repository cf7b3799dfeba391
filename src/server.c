/*
 * The server: the one owner of the set of VMs.  It holds the event
 * base, the VMs by name, the configuration they came from, and what is
 * counted across them (the host-wide memory budget).  main hands it
 * signals; the control socket hands it commands.
 *
 * A VM leaves in two steps.  server_remove takes it off the list of
 * names at once, so a VM of the same name may be added straight away
 * and is a new VM; the old one stops on its own (vm_stop answers what
 * its clients are owed and closes them on their normal path) and is
 * freed from the loop when its last client is.
 */
#include "config.h"

#include <sys/time.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "qmpmux.h"

/*
 * While datagrams wait for the service manager (fdstore.c), they are
 * sent again every SERVER_NOTIFY_RETRY, and at once after some went, as
 * it is reading again; at exit it is waited for up to
 * SERVER_NOTIFY_FINISH_MS.
 */
#define SERVER_NOTIFY_RETRY_US	50000
#define SERVER_NOTIFY_SOON_US	1000
#define SERVER_NOTIFY_FINISH_MS	1000

static void	server_vm_stopped(struct vm *, void *);
static void	server_notify_wait(void *);
static void	server_notify_cb(int, short, void *);

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
	return (s);
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

/* The VM of that name, or NULL; one that is stopping has no name. */
struct vm *
server_find(struct server *s, const char *name)
{
	struct vm	*vm;

	TAILQ_FOREACH(vm, &s->vms, entry) {
		if (strcmp(vm->name, name) == 0)
			return (vm);
	}
	return (NULL);
}

/* How many VMs run, for the log and the service manager. */
unsigned int
server_count(struct server *s)
{
	struct vm	*vm;
	unsigned int	 n = 0;

	TAILQ_FOREACH(vm, &s->vms, entry)
		n++;
	return (n);
}

/*
 * Add and start a VM; its conf is taken over, and with it the fd of fd
 * mode, which is closed if the VM cannot be added.  -1 (logged) on
 * failure.
 */
int
server_add(struct server *s, struct vm_conf *vc)
{
	struct vm	*vm;

	if (server_find(s, vc->name) != NULL) {
		log_warnx("vm %s: already running; not added again", vc->name);
		if (vc->upstream_fd != -1)
			close(vc->upstream_fd);
		vc->upstream_fd = -1;
		conf_vm_clear(vc);
		return (-1);
	}
	if ((vm = vm_new(s, vc)) == NULL)
		return (-1);
	TAILQ_INSERT_TAIL(&s->vms, vm, entry);
	return (0);
}

/*
 * Remove a VM: its commands get desc, its clients are closed on their
 * normal path, and it is freed once they are gone.
 */
void
server_remove(struct server *s, struct vm *vm, const char *desc)
{
	TAILQ_REMOVE(&s->vms, vm, entry);
	TAILQ_INSERT_TAIL(&s->stopping, vm, entry);
	vm_stop(vm, desc, server_vm_stopped, s);
}

/* A removed VM has let go of its last client: free it, from the loop. */
static void
server_vm_stopped(struct vm *vm, void *arg)
{
	struct server	*s = arg;

	TAILQ_REMOVE(&s->stopping, vm, entry);
	vm_free(vm);
	if (s->shutdown_done != NULL && TAILQ_EMPTY(&s->vms) &&
	    TAILQ_EMPTY(&s->stopping))
		s->shutdown_done(s->shutdown_arg);
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
 * SIGUSR1 and the control socket's dump: the state of every VM, as
 * lines in the log and as JSON in the dump file.  The JSON is made once
 * and returned, for a caller that answers with it; the caller frees it.
 */
char *
server_dump(struct server *s, size_t *len)
{
	char	*json;

	dump_log(s);
	json = dump_json(s, len);
	if (s->dump_file != NULL)
		dump_write(s->dump_file, json, *len);
	return (json);
}

/*
 * Start every VM of a configuration, at start-up.  Connects and
 * handshakes then run at once, each VM under its own timeouts.  -1 if
 * one cannot start (a listener's socket cannot be made): at start-up
 * that is the exit status, not a log line to find later.  The VMs
 * started before it are freed then, so that the exit leaves none of
 * their sockets behind.  Taking over after a restart or a crash, such
 * a VM is left out instead, and its connections closed (state.c).
 */
int
server_start(struct server *s, struct conf *conf)
{
	struct vm_conf	*vc;
	struct vm	*vm;

	/* taking over, the VMs' connections matter more than the metrics */
	if (server_set_global(s, conf) == -1 && s->restore == NULL)
		return (-1);
	while ((vc = TAILQ_FIRST(&conf->vms)) != NULL) {
		TAILQ_REMOVE(&conf->vms, vc, entry);
		if (s->restore != NULL && state_vm_added(s->restore,
		    vc->name)) {
			log_warnx("vm %s: added while running; the one in the "
			    "configuration is not started", vc->name);
			conf_vm_clear(vc);
			free(vc);
			continue;
		}
		if (server_add(s, vc) == -1) {
			free(vc);
			/*
			 * Taking over, the others' connections are open and
			 * served: one VM that cannot be made is no reason to
			 * drop them all.  It is logged, as a reload does.
			 */
			if (s->restore != NULL)
				continue;
			while ((vm = TAILQ_FIRST(&s->vms)) != NULL) {
				TAILQ_REMOVE(&s->vms, vm, entry);
				vm_free(vm);
			}
			return (-1);
		}
		free(vc);
	}
	log_info("%u VMs started", server_count(s));
	return (0);
}

/*
 * Reload: read the whole configuration again, and only if it is good
 * change anything.  Removed VMs stop; added ones start; changed ones
 * are changed in place, only in what changed; the others, and their
 * upstreams and clients, are not touched.  VMs added while running
 * (not from the file) are left alone.  -1 (logged, and err says why)
 * if the new configuration is bad: the running one stays.
 */
int
server_reload(struct server *s, char *err, size_t errlen)
{
	struct conf	 conf;
	struct vm_conf	*vc, *next;
	struct vm	*vm, *vnext;
	struct vm	**changed;
	unsigned int	 added = 0, removed = 0, nchanged = 0, i;
	int		 diff;

	if (server_load(s, &conf, err, errlen) == -1) {
		log_warnx("reload failed, the running configuration stays: "
		    "%s", err);
		return (-1);
	}
	/* the VMs gone from the file stop, and let go of their sockets */
	TAILQ_FOREACH_SAFE(vm, &s->vms, entry, vnext) {
		if (!vm->conf.from_file)
			continue;
		TAILQ_FOREACH(vc, &conf.vms, entry) {
			if (strcmp(vc->name, vm->name) == 0)
				break;
		}
		if (vc == NULL) {
			server_remove(s, vm, "qmpmux: VM removed");
			removed++;
		}
	}
	/* the changed ones close what they give up, then all open */
	if ((changed = calloc(server_count(s) + 1, sizeof(*changed))) == NULL)
		fatal("%s", __func__);
	TAILQ_FOREACH_SAFE(vc, &conf.vms, entry, next) {
		if ((vm = server_find(s, vc->name)) == NULL)
			continue;
		TAILQ_REMOVE(&conf.vms, vc, entry);
		if (!vm->conf.from_file)
			log_warnx("vm %s: added while running; the one in the "
			    "configuration is not started", vc->name);
		else if ((diff = conf_diff(&vm->conf, vc)) != 0) {
			vm_reconfigure(vm, vc, diff);
			changed[nchanged++] = vm;
		}
		conf_vm_clear(vc);
		free(vc);
	}
	for (i = 0; i < nchanged; i++)
		vm_listen(changed[i]);
	free(changed);
	/* what is left of the file is new */
	while ((vc = TAILQ_FIRST(&conf.vms)) != NULL) {
		TAILQ_REMOVE(&conf.vms, vc, entry);
		if (server_add(s, vc) == 0)
			added++;
		free(vc);
	}
	server_set_global(s, &conf);
	conf_clear(&conf);
	log_info("reloaded: %u VMs added, %u removed, %u changed; %u running",
	    added, removed, nchanged, server_count(s));
	return (0);
}

/*
 * Stop every VM, answering what is owed, and call done once the last
 * is freed.  A second call changes nothing.
 */
void
server_shutdown(struct server *s, void (*done)(void *), void *arg)
{
	struct vm	*vm;

	if (s->shutdown_done != NULL)
		return;
	s->shutdown_done = done;
	s->shutdown_arg = arg;
	if (TAILQ_EMPTY(&s->vms) && TAILQ_EMPTY(&s->stopping)) {
		done(arg);
		return;
	}
	while ((vm = TAILQ_FIRST(&s->vms)) != NULL)
		server_remove(s, vm, "qmpmux: shutting down");
}

/* Free the server and whatever VMs it still has; NULL is allowed. */
void
server_free(struct server *s)
{
	struct vm	*vm;

	if (s == NULL)
		return;
	while ((vm = TAILQ_FIRST(&s->vms)) != NULL) {
		TAILQ_REMOVE(&s->vms, vm, entry);
		vm_free(vm);
	}
	while ((vm = TAILQ_FIRST(&s->stopping)) != NULL) {
		TAILQ_REMOVE(&s->stopping, vm, entry);
		vm_free(vm);
	}
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
