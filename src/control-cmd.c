/*
 * The control socket's commands: list, add and remove VMs, take fds
 * (getfd, closefd), dump, reload, trace and restart.  The transport
 * (control.c) has checked a command's arguments against the table
 * here before it runs; add-vm's keys become a VM's configuration as
 * the config file's do (conf-json.c).  What only the owner may do
 * (reload, restart) is asked of it through the control socket's ops.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "control.h"

static void	control_cmd_query_version(struct control_req *);
static void	control_cmd_query_vms(struct control_req *);
static void	control_cmd_query_vm(struct control_req *);
static void	control_cmd_add_vm(struct control_req *);
static void	control_cmd_remove_vm(struct control_req *);
static void	control_cmd_getfd(struct control_req *);
static void	control_cmd_closefd(struct control_req *);
static void	control_cmd_dump(struct control_req *);
static void	control_cmd_reload(struct control_req *);
static void	control_cmd_trace(struct control_req *);
static void	control_cmd_restart(struct control_req *);
static void	control_cmd_break_lock(struct control_req *);


static const struct control_param control_cmd_no_params[] = {
	{ NULL, yajl_t_null, NULL, 0 }
};
static const struct control_param control_cmd_name_params[] = {
	{ "name", yajl_t_string, "string", 1 },
	{ NULL, yajl_t_null, NULL, 0 }
};
static const struct control_param control_cmd_fdname_params[] = {
	{ "fdname", yajl_t_string, "string", 1 },
	{ NULL, yajl_t_null, NULL, 0 }
};
static const struct control_param control_cmd_add_vm_params[] = {
	{ "name", yajl_t_string, "string", 1 },
	{ "upstream", yajl_t_string, "string", 1 },
	{ "listeners", yajl_t_array, "array", 1 },
	{ NULL, yajl_t_null, NULL, 0 }
};

/* The commands, as the owner gives them to its control socket. */
const struct control_cmd control_cmds[] = {
	{ "query-version", control_cmd_query_version, control_cmd_no_params, 0 },
	{ "query-vms", control_cmd_query_vms, control_cmd_no_params, 0 },
	{ "query-vm", control_cmd_query_vm, control_cmd_name_params, 0 },
	{ "add-vm", control_cmd_add_vm, control_cmd_add_vm_params, 1 },
	{ "remove-vm", control_cmd_remove_vm, control_cmd_name_params, 0 },
	{ "getfd", control_cmd_getfd, control_cmd_fdname_params, 0 },
	{ "closefd", control_cmd_closefd, control_cmd_fdname_params, 0 },
	{ "dump", control_cmd_dump, control_cmd_no_params, 0 },
	{ "reload", control_cmd_reload, control_cmd_no_params, 0 },
	{ "trace", control_cmd_trace, control_cmd_name_params, 0 },
	{ "restart", control_cmd_restart, control_cmd_no_params, 0 },
	{ "break-lock", control_cmd_break_lock, control_cmd_name_params, 0 },
	{ NULL, NULL, NULL, 0 }
};

/* query-version: qmpmuxd's version, and the dump format's. */
static void
control_cmd_query_version(struct control_req *req)
{
	char	 buf[128];
	int	 n;

	n = snprintf(buf, sizeof(buf), "{\"qmpmuxd\": \"%s\", "
	    "\"dump_version\": %d}", PACKAGE_VERSION, DUMP_VERSION);
	control_return(req, buf, (size_t)n);
}

/* query-vms: every running VM, in short. */
static void
control_cmd_query_vms(struct control_req *req)
{
	struct server	*s = req->cc->ctl->server;
	struct vm	*vm;
	yajl_gen	 g = json_new();

	json_array_open(g);
	TAILQ_FOREACH(vm, &s->vms, entry)
		dump_vm_brief(g, vm);
	json_array_close(g);
	control_return_gen(req, g);
}

/* The VM a name argument names; NULL when the caller was answered. */
static struct vm *
control_cmd_find_vm(struct control_req *req)
{
	const char	*name = control_arg_str(req, "name");
	struct vm	*vm;

	if ((vm = host_find(req->cc->ctl->server, name)) == NULL)
		control_error(req, "DeviceNotFound", "qmpmux: no VM named %s",
		    name);
	return (vm);
}

/* query-vm: one VM in full, as in the dump. */
static void
control_cmd_query_vm(struct control_req *req)
{
	struct vm	*vm;
	yajl_gen	 g;

	if ((vm = control_cmd_find_vm(req)) == NULL)
		return;
	g = json_new();
	dump_vm(g, vm);
	control_return_gen(req, g);
}

/*
 * break-lock: let a VM's advisory lock go (lock.c), its holder fenced
 * as if its lease had run out.
 */
static void
control_cmd_break_lock(struct control_req *req)
{
	struct vm	*vm;
	int		 holder;

	if ((vm = control_cmd_find_vm(req)) == NULL)
		return;
	holder = vm->lock.holder;
	if (lock_break(vm) == -1) {
		control_error(req, "GenericError", "qmpmux: the lock of VM %s "
		    "is not held", vm->name);
		return;
	}
	control_log(req->cc, LOG_NOTICE, "(pid %ld) broke the lock of vm %s, "
	    "held by client %d", (long)req->cc->pid, vm->name, holder);
	reply_return(req->cc->out, req->id, req->idlen);
}

/* remove-vm: stop a VM; its clients get "qmpmux: VM removed". */
static void
control_cmd_remove_vm(struct control_req *req)
{
	struct vm	*vm;

	if ((vm = control_cmd_find_vm(req)) == NULL)
		return;
	control_log(req->cc, LOG_INFO, "(pid %ld) removes vm %s",
	    (long)req->cc->pid, vm->name);
	host_remove(req->cc->ctl->server, vm, "qmpmux: VM removed");
	reply_return(req->cc->out, req->id, req->idlen);
}

/*
 * getfd, as QEMU's: take one of the fds the last read that brought any
 * brought (the fd of this message, for a client that sends each
 * command with its own) and close the others, then check the name,
 * closing the fd taken if it is refused.  A name given before is
 * replaced, its fd closed.  The name's bound is qmpmuxd's own.
 */
static void
control_cmd_getfd(struct control_req *req)
{
	struct control_client	*cc = req->cc;
	struct control_fd	*f, *old;
	const char		*name = control_arg_str(req, "fdname");

	TAILQ_FOREACH(f, &cc->fds, entry) {
		if (f->name == NULL)
			break;
	}
	if (f == NULL && cc->fds_refused) {
		cc->fds_refused = 0;
		control_error(req, "GenericError", "qmpmux: the fds passed "
		    "were closed: a connection holds at most %u "
		    "(control_max_fds)", cc->ctl->server->lim.control_max_fds);
		return;
	}
	if (f == NULL) {
		control_error(req, "GenericError",
		    "No file descriptor supplied via SCM_RIGHTS");
		return;
	}
	control_fds_close_unnamed(cc, f);
	if (*name >= '0' && *name <= '9') {
		close(control_fd_take(cc, f));
		control_error(req, "GenericError", "Parameter 'fdname' expects "
		    "a name not starting with a digit");
		return;
	}
	if (strlen(name) > CONTROL_FDNAME_MAX) {
		close(control_fd_take(cc, f));
		control_error(req, "GenericError", "Parameter 'fdname' expects "
		    "a name of at most %d bytes", CONTROL_FDNAME_MAX);
		return;
	}
	if ((old = control_fd_find(cc, name)) != NULL)
		close(control_fd_take(cc, old));
	if ((f->name = strdup(name)) == NULL)
		fatal("%s", __func__);
	reply_return(cc->out, req->id, req->idlen);
}

/* closefd: close a named fd. */
static void
control_cmd_closefd(struct control_req *req)
{
	struct control_fd	*f;
	const char		*name = control_arg_str(req, "fdname");

	if ((f = control_fd_find(req->cc, name)) == NULL) {
		control_error(req, "GenericError",
		    "File descriptor named '%s' not found", name);
		return;
	}
	close(control_fd_take(req->cc, f));
	reply_return(req->cc->out, req->id, req->idlen);
}

/* dump: the whole dump document, also logged and written as SIGUSR1's. */
static void
control_cmd_dump(struct control_req *req)
{
	struct server	*s = req->cc->ctl->server;
	char		*json;
	size_t		 len;

	json = dump_all(s, &len);
	/* without its newline: it is a value inside the reply */
	control_return(req, json, len - 1);
	free(json);
}

/* reload: SIGHUP's, with the reason when the configuration is bad. */
static void
control_cmd_reload(struct control_req *req)
{
	char	 err[CONF_ERR_MAX];

	control_log(req->cc, LOG_INFO, "(pid %ld) reloads",
	    (long)req->cc->pid);
	if (req->cc->ctl->ops->reload(req->cc->ctl->server, err,
	    sizeof(err)) == -1) {
		control_error(req, "GenericError", "qmpmux: reload failed: %s",
		    err);
		return;
	}
	reply_return(req->cc->out, req->id, req->idlen);
}

/*
 * restart: qmpmuxd executes itself again, the same pid, and the new
 * process answers (state_control_adopt); here only a restart that did not
 * happen is answered, with why.
 */
static void
control_cmd_restart(struct control_req *req)
{
	char	 err[256];

	control_log(req->cc, LOG_INFO, "(pid %ld) restarts qmpmuxd",
	    (long)req->cc->pid);
	if (req->cc->ctl->ops->restart(req->cc->ctl->server, req->cc->id,
	    req->id, req->idlen, err, sizeof(err)) == -1)
		control_error(req, "GenericError", "qmpmux: restart failed, "
		    "the running qmpmuxd goes on: %s", err);
}

/*
 * trace: from now on, every message of the VM comes to this connection
 * as a QMPMUX_TRACE event, within its output bound, until it closes or
 * the VM goes.  Tracing a VM it already traces changes nothing.
 */
static void
control_cmd_trace(struct control_req *req)
{
	struct control_client	*cc = req->cc;
	struct vm		*vm;

	if ((vm = control_cmd_find_vm(req)) == NULL)
		return;
	control_log(cc, LOG_INFO, "(pid %ld) traces vm %s", (long)cc->pid,
	    vm->name);
	/* the reply goes out before the first event */
	reply_return(cc->out, req->id, req->idlen);
	trace_new(vm, &cc->traces, cc->out,
	    cc->ctl->server->lim.control_max_output,
	    control_trace_kick, cc);
}

/*
 * Whether a passed fd is a unix stream socket, connected or listening
 * as asked: SO_DOMAIN, SO_TYPE and SO_ACCEPTCONN, and a peer for a
 * connected one.
 */
static int
control_cmd_fd_is(int fd, int listening)
{
	struct sockaddr_un	 sun;
	socklen_t		 len;
	int			 v;

	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == -1 ||
	    v != AF_UNIX)
		return (0);
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == -1 ||
	    v != SOCK_STREAM)
		return (0);
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == -1 ||
	    (v != 0) != (listening != 0))
		return (0);
	len = sizeof(sun);
	if (!listening && getpeername(fd, (struct sockaddr *)&sun, &len) == -1)
		return (0);
	return (1);
}

/* The name a passed listening socket is known by: its path, if any. */
static char *
control_cmd_fd_path(int fd, const char *fdname)
{
	struct sockaddr_un	 sun;
	socklen_t		 len = sizeof(sun);
	size_t			 n;
	char			*path;

	memset(&sun, 0, sizeof(sun));
	if (getsockname(fd, (struct sockaddr *)&sun, &len) == 0 &&
	    len > offsetof(struct sockaddr_un, sun_path) &&
	    sun.sun_path[0] != '\0') {
		n = len - offsetof(struct sockaddr_un, sun_path);
		path = strndup(sun.sun_path, n);
	} else if (asprintf(&path, "(unnamed, fd %s)", fdname) == -1)
		path = NULL;
	if (path == NULL)
		fatal("%s", __func__);
	return (path);
}

/* Whether a running VM listens on path, on a socket of its own making. */
static struct vm *
control_cmd_path_used(struct server *s, const char *path)
{
	struct vm		*vm;
	struct listener		*l;

	TAILQ_FOREACH(vm, &s->vms, entry) {
		TAILQ_FOREACH(l, &vm->listeners, entry) {
			if (!l->conf->passed &&
			    strcmp(l->conf->path, path) == 0)
				return (vm);
		}
	}
	return (NULL);
}

/*
 * The fds one add-vm uses, each once: the upstream's and the
 * listeners', taken from the client only once everything is checked.
 */
struct control_cmd_use {
	struct control_fd	**f;	/* room for every fd the client holds */
	struct listener_conf	**lc;	/* NULL: the upstream */
	size_t			 n;
};

/* The fd a name stands for, to be used once; NULL when answered. */
static struct control_fd *
control_cmd_use_fd(struct control_req *req, struct control_cmd_use *use,
    const char *name, int listening, struct listener_conf *lc)
{
	struct control_fd	*f;
	size_t			 i;

	if ((f = control_fd_find(req->cc, name)) == NULL) {
		control_error(req, "GenericError", "qmpmux: no fd named %s",
		    name);
		return (NULL);
	}
	for (i = 0; i < use->n; i++) {
		if (use->f[i] == f) {
			control_error(req, "GenericError", "qmpmux: fd %s is "
			    "used twice", name);
			return (NULL);
		}
	}
	if (!control_cmd_fd_is(f->fd, listening)) {
		control_error(req, "GenericError", "qmpmux: fd %s is not a %s "
		    "unix stream socket", name, listening ? "listening" :
		    "connected");
		return (NULL);
	}
	use->f[use->n] = f;
	use->lc[use->n++] = lc;
	return (f);
}

/* One listener of add-vm, added to vc; -1 when the caller was answered. */
static int
control_cmd_add_listener(struct control_req *req, struct vm_conf *vc,
    struct control_cmd_use *use, size_t idx, yajl_val o)
{
	struct server		*s = req->cc->ctl->server;
	struct listener_conf	*lc, *other;
	const char		*key, *path = NULL, *fdname = NULL;
	char			 what[64], why[128], err[CONF_ERR_MAX];
	struct vm		*vm;
	yajl_val		 v;
	size_t			 i;

	snprintf(what, sizeof(what), "listeners[%zu]", idx);
	if (!YAJL_IS_OBJECT(o)) {
		control_error(req, "GenericError", "Invalid parameter type for "
		    "'%s', expected: object", what);
		return (-1);
	}
	for (i = 0; i < o->u.object.len; i++) {
		key = o->u.object.keys[i];
		v = o->u.object.values[i];
		if (strcmp(key, "path") != 0 && strcmp(key, "fd") != 0)
			continue;
		if (!YAJL_IS_STRING(v)) {
			control_error(req, "GenericError", "Invalid parameter "
			    "type for '%s.%s', expected: string", what, key);
			return (-1);
		}
		if (*key == 'p')
			path = YAJL_GET_STRING(v);
		else
			fdname = YAJL_GET_STRING(v);
	}
	if ((path == NULL) == (fdname == NULL)) {
		control_error(req, "GenericError", "qmpmux: %s: expected one "
		    "of path and fd", what);
		return (-1);
	}
	if (path != NULL) {
		if (*path != '/') {
			control_error(req, "GenericError", "qmpmux: %s.path = "
			    "%s: expected an absolute path", what, path);
			return (-1);
		}
		if (util_check_sun_path(path, why, sizeof(why)) == -1) {
			control_error(req, "GenericError", "qmpmux: %s.path = "
			    "%s: %s", what, path, why);
			return (-1);
		}
		if ((vm = control_cmd_path_used(s, path)) != NULL) {
			control_error(req, "GenericError", "qmpmux: %s.path = "
			    "%s: a listener of VM %s", what, path, vm->name);
			return (-1);
		}
		TAILQ_FOREACH(other, &vc->listeners, entry) {
			if (!other->passed && strcmp(other->path, path) == 0) {
				control_error(req, "GenericError", "qmpmux: "
				    "%s.path = %s: given twice", what, path);
				return (-1);
			}
		}
		lc = conf_listener_new(path);
	} else {
		lc = conf_listener_new("/");
		lc->passed = 1;
		if (control_cmd_use_fd(req, use, fdname, 1, lc) == NULL) {
			conf_listener_free(lc);
			return (-1);
		}
		free(lc->path);
		lc->path = control_cmd_fd_path(use->f[use->n - 1]->fd, fdname);
	}
	TAILQ_INSERT_TAIL(&vc->listeners, lc, entry);
	conf_given_add(vc, lc, "", "");
	snprintf(what, sizeof(what), "listeners[%zu].", idx);
	for (i = 0; i < o->u.object.len; i++) {
		key = o->u.object.keys[i];
		if (strcmp(key, "path") == 0 || strcmp(key, "fd") == 0)
			continue;
		if (conf_json_set(vc, lc, what, key, o->u.object.values[i],
		    err, sizeof(err)) == -1) {
			control_error(req, "GenericError", "%s", err);
			return (-1);
		}
	}
	return (0);
}

/*
 * add-vm: a VM from the config file's keys, with its upstream and
 * listeners by path or by fds passed with getfd.  Everything is checked
 * before any fd is taken, so an error changes nothing; once taken, the
 * fds are the VM's, closed by it even when it cannot start.
 */
static void
control_cmd_add_vm(struct control_req *req)
{
	struct control_client	*cc = req->cc;
	struct server		*s = cc->ctl->server;
	const char		*lpath[] = { "listeners", NULL };
	const char		*name = control_arg_str(req, "name");
	const char		*upstream = control_arg_str(req, "upstream");
	const char		*key;
	struct control_cmd_use	 use;
	struct vm_conf		*vc;
	yajl_val		 ls;
	char			 err[CONF_ERR_MAX];
	size_t			 i;

	ls = yajl_tree_get(req->args, lpath, yajl_t_array);
	if (host_find(s, name) != NULL) {
		control_error(req, "GenericError", "qmpmux: a VM named %s "
		    "already runs", name);
		return;
	}
	if (!conf_valid_name(name)) {
		control_error(req, "GenericError", "qmpmux: name = %s: "
		    "expected at most 64 printable bytes, without spaces, "
		    "'/', '\"' or '\\'", name);
		return;
	}
	if (ls->u.array.len == 0) {
		control_error(req, "GenericError", "qmpmux: a VM needs at "
		    "least one listener");
		return;
	}
	/* each fd used once: at most the ones the client holds */
	memset(&use, 0, sizeof(use));
	if ((use.f = calloc(cc->nfds + 1, sizeof(*use.f))) == NULL ||
	    (use.lc = calloc(cc->nfds + 1, sizeof(*use.lc))) == NULL ||
	    (vc = calloc(1, sizeof(*vc))) == NULL)
		fatal("%s", __func__);
	conf_vm_copy(vc, &s->defaults);
	vc->from_file = 0;
	if ((vc->name = strdup(name)) == NULL ||
	    asprintf(&vc->where, "control client %d (pid %ld)", cc->id,
	    (long)cc->pid) == -1)
		fatal("%s", __func__);

	for (i = 0; i < req->args->u.object.len; i++) {
		key = req->args->u.object.keys[i];
		if (strcmp(key, "name") == 0 || strcmp(key, "upstream") == 0 ||
		    strcmp(key, "listeners") == 0)
			continue;
		if (conf_json_set(vc, NULL, "", key,
		    req->args->u.object.values[i], err, sizeof(err)) == -1) {
			control_error(req, "GenericError", "%s", err);
			goto fail;
		}
	}
	if (strncmp(upstream, "fd:", 3) == 0) {
		if (control_cmd_use_fd(req, &use, upstream + 3, 0, NULL) == NULL)
			goto fail;
		vc->upstream_mode = UPSTREAM_FD;
		conf_given_add(vc, NULL, "upstream", "fd");
	} else if (conf_set_upstream(vc, upstream, err, sizeof(err)) == -1) {
		control_error(req, "GenericError", "qmpmux: upstream = %s: %s",
		    upstream, err);
		goto fail;
	} else
		conf_given_add(vc, NULL, "upstream", upstream);
	for (i = 0; i < ls->u.array.len; i++) {
		if (control_cmd_add_listener(req, vc, &use, i,
		    ls->u.array.values[i]) == -1)
			goto fail;
	}

	/* all is well: the fds are the VM's from here on */
	for (i = 0; i < use.n; i++) {
		if (use.lc[i] == NULL)
			vc->upstream_fd = control_fd_take(cc, use.f[i]);
		else
			use.lc[i]->fd = control_fd_take(cc, use.f[i]);
	}
	control_log(cc, LOG_INFO, "(pid %ld) adds vm %s, upstream %s",
	    (long)cc->pid, name, upstream);
	if (host_add(s, vc) == -1)
		control_error(req, "GenericError", "qmpmux: VM %s could not be "
		    "started; the log says why", name);
	else
		reply_return(cc->out, req->id, req->idlen);
	free(vc);
	free(use.f);
	free(use.lc);
	return;

fail:
	conf_vm_clear(vc);
	free(vc);
	free(use.f);
	free(use.lc);
}
