/*
 * The host: the set of VMs by name, above the proxy's rooms and below
 * everything that acts on VMs by name (the control socket's commands,
 * the take-over, the dump, the metrics, the owner).  Its lists live in
 * struct server, which owns them; the functions that only walk and
 * change them are here, so that the rooms above the proxy need not call
 * up into the owner.
 *
 * A VM leaves in two steps.  host_remove takes it off the list of names
 * at once, so a VM of the same name may be added straight away and is a
 * new VM; the old one stops on its own (vm_stop answers what its
 * clients are owed and closes them on their normal path) and is freed
 * from the loop when its last client is.
 */
#include "config.h"

#include <sys/time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmpmux.h"

static void	host_vm_stopped(struct vm *, void *);

/* The VM of that name, or NULL; one that is stopping has no name. */
struct vm *
host_find(struct server *s, const char *name)
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
host_count(struct server *s)
{
	struct vm	*vm;
	unsigned int	 n = 0;

	TAILQ_FOREACH(vm, &s->vms, entry)
		n++;
	return (n);
}

/*
 * Make a VM of a conf (taken over, with the fd of fd mode, which is
 * closed if the VM cannot be made), not started yet, and put it on the
 * list; NULL (logged) if one of that name runs or it cannot be made.
 */
struct vm *
host_make(struct server *s, struct vm_conf *vc)
{
	struct vm	*vm;

	if (host_find(s, vc->name) != NULL) {
		log_warnx("vm %s: already running; not added again", vc->name);
		if (vc->upstream_fd != -1)
			close(vc->upstream_fd);
		vc->upstream_fd = -1;
		conf_vm_clear(vc);
		return (NULL);
	}
	if ((vm = vm_new(s, vc)) == NULL)
		return (NULL);
	TAILQ_INSERT_TAIL(&s->vms, vm, entry);
	return (vm);
}

/*
 * Take a VM that host_make made off the list and free it, for one that
 * could not be started: nothing of it was ever served.
 */
void
host_unmake(struct server *s, struct vm *vm)
{
	TAILQ_REMOVE(&s->vms, vm, entry);
	vm_free(vm);
}

/* Add and start a VM, as host_make takes its conf; -1 (logged) on failure. */
int
host_add(struct server *s, struct vm_conf *vc)
{
	struct vm	*vm;

	if ((vm = host_make(s, vc)) == NULL)
		return (-1);
	if (vm_start(vm) == -1) {
		host_unmake(s, vm);
		return (-1);
	}
	return (0);
}

/*
 * Remove a VM: its commands get desc, its clients are closed on their
 * normal path, and it is freed once they are gone.
 */
void
host_remove(struct server *s, struct vm *vm, const char *desc)
{
	TAILQ_REMOVE(&s->vms, vm, entry);
	TAILQ_INSERT_TAIL(&s->stopping, vm, entry);
	vm_stop(vm, desc, host_vm_stopped, s);
}

/* A removed VM has let go of its last client: free it, from the loop. */
static void
host_vm_stopped(struct vm *vm, void *arg)
{
	struct server	*s = arg;

	TAILQ_REMOVE(&s->stopping, vm, entry);
	vm_free(vm);
	if (s->shutdown_done != NULL && TAILQ_EMPTY(&s->vms) &&
	    TAILQ_EMPTY(&s->stopping))
		s->shutdown_done(s->shutdown_arg);
}

/*
 * Apply a configuration read again to the VMs: removed VMs stop; added
 * ones start; changed ones are changed in place, only in what changed;
 * the others, and their upstreams and clients, are not touched.  VMs
 * added while running (not from the file) are left alone.  What conf
 * holds of VMs is used up; n counts what changed, for the log.
 */
void
host_reload(struct server *s, struct conf *conf, struct host_counts *n)
{
	struct vm_conf	*vc, *next;
	struct vm	*vm, *vnext;
	struct vm	**changed;
	unsigned int	 nchanged = 0, i;
	int		 diff;

	memset(n, 0, sizeof(*n));
	/* the VMs gone from the file stop, and let go of their sockets */
	TAILQ_FOREACH_SAFE(vm, &s->vms, entry, vnext) {
		if (!vm->conf.from_file)
			continue;
		TAILQ_FOREACH(vc, &conf->vms, entry) {
			if (strcmp(vc->name, vm->name) == 0)
				break;
		}
		if (vc == NULL) {
			host_remove(s, vm, "qmpmux: VM removed");
			n->removed++;
		}
	}
	/* the changed ones close what they give up, then all open */
	if ((changed = calloc(host_count(s) + 1, sizeof(*changed))) == NULL)
		fatal("%s", __func__);
	TAILQ_FOREACH_SAFE(vc, &conf->vms, entry, next) {
		if ((vm = host_find(s, vc->name)) == NULL)
			continue;
		TAILQ_REMOVE(&conf->vms, vc, entry);
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
	while ((vc = TAILQ_FIRST(&conf->vms)) != NULL) {
		TAILQ_REMOVE(&conf->vms, vc, entry);
		if (host_add(s, vc) == 0)
			n->added++;
		free(vc);
	}
	n->changed = nchanged;
}

/*
 * Stop every VM, answering what is owed, and call done once the last
 * is freed.  A second call changes nothing.
 */
void
host_shutdown(struct server *s, void (*done)(void *), void *arg)
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
		host_remove(s, vm, "qmpmux: shutting down");
}

/* Free every VM, running or stopping, at once: the loop is over. */
void
host_free_all(struct server *s)
{
	struct vm	*vm;

	while ((vm = TAILQ_FIRST(&s->vms)) != NULL) {
		TAILQ_REMOVE(&s->vms, vm, entry);
		vm_free(vm);
	}
	while ((vm = TAILQ_FIRST(&s->stopping)) != NULL) {
		TAILQ_REMOVE(&s->stopping, vm, entry);
		vm_free(vm);
	}
}
