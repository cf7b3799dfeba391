/*
 * The crash's half of persistence: every socket of the proxy, and each
 * VM's record, kept in the service manager's fd store (fdstore.c) as
 * it comes and goes, so that a qmpmuxd started after a crash gets them
 * back; and that take-over, which makes of what came back a state
 * document as a restart in place leaves one (state_recover), for the
 * one reader (state_parse) and the one take-over (state-restore.c).
 *
 * The proxy does not call here: it tells its owner (vm_tell), who
 * passes each change on to state_store_change.  The names are the fd
 * store's scheme (fdstore.c's header).
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"
#include "state.h"

/*
 * A client's name: its VM, its number, its state and its listener (a
 * hash of the path), what a qmpmuxd started after a crash needs to take
 * it over.
 */
static void
state_store_client_name(const struct client *c, char *buf, size_t len)
{
	static const char	 letters[] = {
		[CLIENT_WAITING] = 'w', [CLIENT_CAPS] = 'c',
		[CLIENT_READY] = 'r', [CLIENT_CLOSING] = 'x'
	};

	fdstore_name(buf, len, "c", c->vm->name, c->vm->gen, "%d.%c.%08x",
	    c->id,
	    c->state == CLIENT_READY && c->oob ? 'o' : letters[c->state],
	    c->listener_hash);
}

/*
 * A VM's record, in a memfd: what its sockets do not say of themselves,
 * its add-vm keys, the greeting clients get once the upstream is ready
 * (a connection that is taken over is not greeted again), the epoch
 * of the ids of the commands it sends QEMU, whose replies may come
 * after the crash, and its lock (state_lock): who holds it, its lease
 * and the last token, which must never go back.
 */
static void
state_store_record(struct vm *vm, const char *name)
{
	struct monitor		*m = vm->mon;
	yajl_gen		 g;
	const unsigned char	*buf;
	size_t			 len;

	g = json_new();
	json_map_open(g);
	json_put_bool(g, "from_file", vm->conf.from_file);
	json_put_int(g, "epoch", vm->server->epoch);
	state_given(g, &vm->conf.given);
	if (m != NULL && m->state == MONITOR_READY && m->greeting != NULL) {
		json_put_hex(g, "greeting", m->greeting, m->greeting_len);
		json_put_bool(g, "oob", m->oob);
	}
	/* rewritten as the lock changes hands or is renewed (lock.c) */
	state_lock(g, vm, 1);
	json_map_close(g);
	json_buf(g, &buf, &len);
	fdstore_add_bytes(name, buf, len);
	json_free(g);
}

/*
 * A VM's commands sent to QEMU and not yet answered by it (vm_sent), in
 * a memfd the fd store keeps, mapped and written in place as they come
 * and go: no datagram per command.  A slot is free while its seq is 0;
 * it is filled, then its seq stored last, and freed by a store of 0, so
 * that a crash at any instruction leaves each slot whole or free.  A
 * command whose id is longer than a slot holds, or past STATE_SENT_MAX
 * sent, is not kept: after a crash its reply still goes to its client
 * (cmd_orphan), but no deadline answers it.
 */
struct state_sent_slot {
	uint64_t		 seq;
	uint32_t		 epoch;
	int32_t			 client;
	double			 arrived;
	double			 timeout;
	uint32_t		 expired;
	uint32_t		 idlen;
	char			 name[QMP_NAME_MAX];
	char			 id[STATE_SENT_ID];
	int64_t			 at;		/* in its client's ring; -1 */
};

struct state_sent_table {
	int			 fd;
	struct state_sent_slot	*slot;
	int			 full_logged;
};

#define STATE_SENT_SIZE	(STATE_SENT_MAX * sizeof(struct state_sent_slot))

static struct state_sent_table *
state_sent_table(struct vm *vm)
{
	struct state_sent_table	*t = vm->sent_table;
	char			 name[FDSTORE_NAME_MAX + 1];
	void			*p;
	int			 fd;

	if (t != NULL)
		return (t);
	if ((fd = memfd_create("qmpmux-sent", MFD_CLOEXEC)) == -1 ||
	    ftruncate(fd, (off_t)STATE_SENT_SIZE) == -1 ||
	    (p = mmap(NULL, STATE_SENT_SIZE, PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0)) == MAP_FAILED) {
		log_warn("fdstore: vm %s: no memfd for its commands sent",
		    vm->name);
		if (fd != -1)
			close(fd);
		return (NULL);
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("%s", __func__);
	t->fd = fd;
	t->slot = p;
	vm->sent_table = t;
	fdstore_name(name, sizeof(name), "i", vm->name, vm->gen, NULL);
	fdstore_add(fd, name);
	return (t);
}

static void
state_sent_change(struct vm *vm, const struct vm_sent *s, int how)
{
	struct state_sent_table	*t;
	struct state_sent_slot	*sl, *free_sl = NULL;
	size_t			 i;

	/* nothing to forget in a table gone (VM_GONE) or never made */
	if ((how == -1 && vm->sent_table == NULL) ||
	    (t = state_sent_table(vm)) == NULL)
		return;
	for (i = 0; i < STATE_SENT_MAX; i++) {
		sl = &t->slot[i];
		if (sl->seq == s->seq && sl->epoch == s->epoch)
			break;
		if (sl->seq == 0 && free_sl == NULL)
			free_sl = sl;
	}
	if (i < STATE_SENT_MAX) {
		if (how == -1)
			__atomic_store_n(&sl->seq, 0, __ATOMIC_SEQ_CST);
		else
			__atomic_store_n(&sl->expired, (uint32_t)s->expired,
			    __ATOMIC_SEQ_CST);
		return;
	}
	/* one whose client has gone: its late reply has nobody to go to */
	if (how == -1 || s->client <= 0)
		return;
	if (free_sl == NULL || s->idlen > sizeof(sl->id)) {
		if (!t->full_logged++)
			vm_log(vm, LOG_WARNING, "a command sent is not kept "
			    "for a crash (%s): its deadline would not outlive "
			    "one", free_sl == NULL ? "all slots taken" :
			    "its id is too long");
		return;
	}
	sl = free_sl;
	sl->epoch = s->epoch;
	sl->client = s->client;
	sl->arrived = s->arrived;
	sl->timeout = s->timeout;
	sl->expired = (uint32_t)s->expired;
	sl->idlen = (uint32_t)s->idlen;
	sl->at = s->at;
	snprintf(sl->name, sizeof(sl->name), "%s", s->name);
	if (s->idlen > 0)
		memcpy(sl->id, s->id, s->idlen);
	/* the slot is whole before it is seen */
	__atomic_store_n(&sl->seq, s->seq, __ATOMIC_SEQ_CST);
}

static void
state_sent_free(struct vm *vm)
{
	struct state_sent_table	*t = vm->sent_table;
	char			 name[FDSTORE_NAME_MAX + 1];

	if (t == NULL)
		return;
	fdstore_name(name, sizeof(name), "i", vm->name, vm->gen, NULL);
	fdstore_remove(name);
	munmap(t->slot, STATE_SENT_SIZE);
	close(t->fd);
	free(t);
	vm->sent_table = NULL;
}

/*
 * A client's spool (client-in.c): its memfd and both ends of its pipe,
 * stored as it comes (fd, the memfd), taken out as it goes (-1).
 */
static void
state_store_spool(const struct client *c, int fd)
{
	static const char	 kinds[] = FDSTORE_SPOOL_KINDS;
	char			 name[FDSTORE_NAME_MAX + 1], kind[2];
	int			 fds[3], i;

	fds[0] = fd;
	spool_pipe(c->spool, &fds[1], &fds[2]);
	for (i = 0; i < 3; i++) {
		kind[0] = kinds[i];
		kind[1] = '\0';
		fdstore_name(name, sizeof(name), kind, c->vm->name, c->vm->gen,
		    "%d", c->id);
		if (fd == -1)
			fdstore_remove(name);
		else
			fdstore_add(fds[i], name);
	}
}

/*
 * What the proxy told (vm_tell): a socket to keep (fd) or to let go
 * (-1), under its name; the VM's record to write again, or to let go.
 */
void
state_store_change(struct vm *vm, enum vm_change what, const void *obj,
    int fd)
{
	const struct listener	*l = obj;
	char			 name[FDSTORE_NAME_MAX + 1];

	if (what == VM_GONE)
		state_sent_free(vm);
	if (!fdstore_enabled())
		return;
	switch (what) {
	case VM_SENT:
		state_sent_change(vm, obj, fd);
		return;
	case VM_RECORD:
	case VM_GONE:
		fdstore_name(name, sizeof(name), "v", vm->name, vm->gen, NULL);
		if (what == VM_RECORD) {
			state_store_record(vm, name);
			/* with its table, so the store's names are known */
			(void)state_sent_table(vm);
		}
		else
			fdstore_remove(name);
		return;
	case VM_SPOOL:
		state_store_spool(obj, fd);
		return;
	case VM_CLOSED:
		return;
	case VM_UPSTREAM:
		fdstore_name(name, sizeof(name), "u", vm->name, vm->gen, NULL);
		break;
	case VM_UPSTREAM_LISTEN:
		fdstore_name(name, sizeof(name), "m", vm->name, vm->gen, NULL);
		break;
	case VM_LISTENER:
		fdstore_name(name, sizeof(name), "l", vm->name, vm->gen,
		    "%08x", util_hash(l->conf->path));
		break;
	case VM_CLIENT:
		state_store_client_name(obj, name, sizeof(name));
		break;
	}
	if (fd == -1)
		fdstore_remove(name);
	else
		fdstore_add(fd, name);
}

/* One fd the store gave back, and what its name says. */
struct state_given_fd {
	int			 fd;
	const char		*name;
	struct fdstore_part	 part;		/* kind '?': a stranger */
	int			 used;
};

/* Whether f is an fd of the VM vm (a kind of a VM's, not a stranger). */
static int
state_store_of(const struct state_given_fd *f, const char *vm)
{
	return (strchr("lmucviqrw", f->part.kind) != NULL &&
	    strcmp(f->part.vm, vm) == 0);
}

/*
 * Whether the lock of vm's record is one a state may hold (state_parse,
 * the one reader, judges it in a document of its own): a record is
 * read as hostile, and a lock it refuses is left out alone, logged,
 * without costing the VM its sockets.
 */
static int
state_store_lock_ok(yajl_val lock, const char *vm)
{
	struct state	*st;
	yajl_gen	 g;
	const unsigned char *buf;
	char		 err[512];
	size_t		 len;

	g = json_new();
	json_map_open(g);
	json_put_int(g, "qmpmux_state", STATE_VERSION);
	json_cstr(g, "vms");
	json_array_open(g);
	json_map_open(g);
	json_put_str(g, "name", vm);
	/* any holder's number: the VM's own is made past it */
	json_put_int(g, "next_client_id", INT_MAX);
	json_cstr(g, "lock");
	json_tree(g, lock);
	json_map_close(g);
	json_array_close(g);
	json_map_close(g);
	json_buf(g, &buf, &len);
	st = state_parse((const char *)buf, len, err, sizeof(err));
	json_free(g);
	if (st == NULL) {
		log_warnx("fdstore: vm %s: its lock cannot be taken over: %s",
		    vm, err);
		return (-1);
	}
	state_free(st);
	return (0);
}

/* How far a client's state letter had come: w, c, then r and o. */
static int
state_store_rank(char st)
{
	return (st == 'w' ? 0 : st == 'c' ? 1 : 2);
}

/*
 * Whether the client f[i] of vm is given back under another name too,
 * of a state that had come further, or as far and earlier in the list:
 * a change of state stores the socket under its new name before it
 * takes the old one out (client_set_state), so a crash between the two
 * leaves both, and two clients of one number would cost the VM every
 * socket (state_parse refuses them).  The copy not taken stays unused,
 * and is closed with the others no VM took (state_recover).
 */
static int
state_store_client_dup(const struct state_given_fd *f, size_t n, size_t i,
    const char *vm)
{
	size_t	 j;
	int	 d;

	for (j = 0; j < n; j++) {
		if (j == i || f[j].part.kind != 'c' || f[j].part.id !=
		    f[i].part.id || !state_store_of(&f[j], vm))
			continue;
		d = state_store_rank(f[j].part.st) -
		    state_store_rank(f[i].part.st);
		if (d > 0 || (d == 0 && j < i)) {
			log_debug("fdstore: vm %s: client %d is given back as "
			    "%s and as %s: the second is taken over, the first "
			    "closed", vm, f[i].part.id, f[i].name, f[j].name);
			/*
			 * Out of the store now, before the copy kept is
			 * stored again: systemd keeps one copy of a socket,
			 * and would drop that while this name holds it.
			 */
			fdstore_remove(f[i].name);
			return (1);
		}
	}
	return (0);
}

/*
 * The commands a VM's table (a memfd the store gave back) holds, each
 * checked as hostile input, into the state's "sent": those a slot holds
 * whole and sane, once, of a client given back (at most maxid; one that
 * did not come back has nobody to answer).  The others are left out,
 * logged, and cost nothing else.
 */
static void
state_store_gen_sent(yajl_gen g, int fd, const char *vm, long maxid)
{
	struct state_sent_slot	 sl;
	struct timeval		 now;
	double			 nows;
	uint64_t		 seqs[STATE_SENT_MAX];
	uint32_t		 epochs[STATE_SENT_MAX];
	size_t			 i, j, kept = 0;
	off_t			 off;

	util_now(&now);
	nows = (double)now.tv_sec + now.tv_usec / 1e6;
	json_string(g, "sent", 4);
	json_array_open(g);
	for (i = 0; i < STATE_SENT_MAX; i++) {
		off = (off_t)(i * sizeof(sl));
		if (pread(fd, &sl, sizeof(sl), off) != (ssize_t)sizeof(sl))
			break;
		if (sl.seq == 0)
			continue;
		if (sl.client > maxid) {
			log_debug("fdstore: vm %s: command %llu sent before the "
			    "crash is of a client that did not come back", vm,
			    (unsigned long long)sl.seq);
			continue;
		}
		sl.name[sizeof(sl.name) - 1] = '\0';
		for (j = 0; j < kept; j++) {
			if (seqs[j] == sl.seq && epochs[j] == sl.epoch)
				break;
		}
		if (sl.seq > LLONG_MAX || sl.client <= 0 || sl.expired > 1 ||
		    j < kept ||
		    sl.idlen > sizeof(sl.id) || !isfinite(sl.arrived) ||
		    sl.arrived > nows || nows - sl.arrived > STATE_SECONDS_MAX ||
		    !isfinite(sl.timeout) || sl.timeout < 0 ||
		    sl.timeout > STATE_SECONDS_MAX ||
		    !state_sent_name(sl.name) || kept == STATE_SENT_MAX) {
			log_warnx("fdstore: vm %s: a command sent before the "
			    "crash is not whole; its deadline is dropped", vm);
			continue;
		}
		json_map_open(g);
		json_put_int(g, "epoch", sl.epoch);
		json_put_int(g, "seq", (long long)sl.seq);
		json_put_int(g, "client", sl.client);
		json_put_hex(g, "id", sl.idlen > 0 ? sl.id : NULL, sl.idlen);
		json_put_str(g, "name", sl.name);
		json_put_double(g, "age", nows - sl.arrived);
		json_put_double(g, "timeout", sl.timeout);
		json_put_bool(g, "expired", sl.expired);
		/* checked against the client's ring, where it must end */
		json_put_int(g, "at", sl.at >= 0 ? sl.at : -1);
		json_map_close(g);
		seqs[kept] = sl.seq;
		epochs[kept++] = sl.epoch;
	}
	json_array_close(g);
}

/*
 * The spool of client id of vm, if all three of its fds came back: the
 * client's "spool", its fds marked used.  Without one the client is
 * taken over with a new ring, and what it had sent and was not done
 * with is lost (logged).
 */
static void
state_store_gen_spool(yajl_gen g, struct state_given_fd *f, size_t n,
    const char *vm, int id)
{
	static const char	 kinds[] = FDSTORE_SPOOL_KINDS;
	ssize_t			 at[3] = { -1, -1, -1 };
	size_t			 i, k;

	for (i = 0; i < n; i++) {
		if (f[i].used || !state_store_of(&f[i], vm) ||
		    f[i].part.id != id || strchr(kinds, f[i].part.kind) == NULL)
			continue;
		k = (size_t)(strchr(kinds, f[i].part.kind) - kinds);
		if (at[k] == -1)
			at[k] = (ssize_t)i;
	}
	if (at[0] == -1 || at[1] == -1 || at[2] == -1) {
		log_warnx("fdstore: vm %s: client %d has no spool: what it had "
		    "sent and was not yet done with is lost", vm, id);
		return;
	}
	json_cstr(g, "spool");
	json_map_open(g);
	json_put_int(g, "memfd", f[at[0]].fd);
	json_put_int(g, "rd", f[at[1]].fd);
	json_put_int(g, "wr", f[at[2]].fd);
	json_map_close(g);
	for (k = 0; k < 3; k++)
		f[at[k]].used = 1;
}

/*
 * The VM vm of the fds given back, as the state has it: its JSON object
 * in *out (the caller frees it), and the fds it took marked used; a
 * client given back under two names is taken once, in the state that
 * had come further (state_store_client_dup).  What its record says goes
 * in as it is, for state_parse to judge; a record that is not JSON, or
 * holds a NUL, is none.
 */
static void
state_store_gen_vm(struct state_given_fd *f, size_t n, const char *vm,
    char **out)
{
	char			*rec = NULL, errbuf[128];
	yajl_val		 r = NULL, v;
	yajl_gen		 g;
	const unsigned char	*buf;
	struct ucred		 cred;
	socklen_t		 len;
	size_t			 i, blen;
	ssize_t			 up = -1;
	long			 maxid = 0;
	int			 lfd = -1, sfd = -1;
	const char		*greeting;
	yajl_val		 lock;

	for (i = 0; i < n; i++) {
		if (f[i].used || !state_store_of(&f[i], vm))
			continue;
		if (f[i].part.kind == 'v' && rec == NULL) {
			rec = fdstore_read_bytes(f[i].fd);
			close(f[i].fd);
			f[i].used = 1;
		} else if (f[i].part.kind == 'u' && up == -1)
			up = (ssize_t)i;
		else if (f[i].part.kind == 'm' && lfd == -1)
			lfd = f[i].fd, f[i].used = 1;
		else if (f[i].part.kind == 'i' && sfd == -1)
			sfd = f[i].fd, f[i].used = 1;
	}
	if (rec != NULL && strstr(rec, "\\u0000") == NULL)
		r = yajl_tree_parse(rec, errbuf, sizeof(errbuf));
	free(rec);
	greeting = json_get_str(r, "greeting");
	if ((lock = json_get(r, "lock", yajl_t_any)) != NULL &&
	    state_store_lock_ok(lock, vm) == -1)
		lock = NULL;
	/* a connection whose handshake did not finish cannot be resumed */
	if (up != -1 && greeting != NULL)
		f[up].used = 1;
	else
		up = -1;

	g = json_new();
	json_map_open(g);
	json_put_str(g, "name", vm);
	v = json_get(r, "from_file", yajl_t_any);
	json_put_bool(g, "from_file", r == NULL || v == NULL || YAJL_IS_TRUE(v));
	json_string(g, "given", 5);
	if ((v = json_get(r, "given", yajl_t_any)) != NULL)
		json_tree(g, v);
	else {
		json_array_open(g);
		json_array_close(g);
	}
	if (r != NULL)
		json_put_int(g, "orphan_epoch", json_get_int(r, "epoch", -1));
	/* the lock, to its holder if that came back, and its last token */
	if (lock != NULL) {
		json_cstr(g, "lock");
		json_tree(g, lock);
		if (json_get_bool(lock, "held"))
			maxid = (long)json_get_int(lock, "client", 0);
	}

	json_string(g, "upstream", 8);
	json_map_open(g);
	json_put_str(g, "state", up != -1 ? "ready" : "backoff");
	json_put_int(g, "fd", up != -1 ? f[up].fd : -1);
	json_put_int(g, "listen_fd", lfd);
	json_put_str(g, "greeting", up != -1 ? greeting : NULL);
	json_put_bool(g, "oob", json_get_bool(r, "oob"));
	json_put_bool(g, "resync", 1);
	json_map_close(g);

	json_string(g, "listeners", 9);
	json_array_open(g);
	for (i = 0; i < n; i++) {
		if (f[i].used || f[i].part.kind != 'l' || !state_store_of(&f[i],
		    vm))
			continue;
		f[i].used = 1;
		json_map_open(g);
		json_put_int(g, "hash", f[i].part.hash);
		json_put_int(g, "fd", f[i].fd);
		json_map_close(g);
	}
	json_array_close(g);

	json_string(g, "clients", 7);
	json_array_open(g);
	for (i = 0; i < n; i++) {
		if (f[i].used || f[i].part.kind != 'c' || !state_store_of(&f[i],
		    vm) || state_store_client_dup(f, n, i, vm))
			continue;
		f[i].used = 1;
		/* its listener: the path's, it was accepted on */
		json_map_open(g);
		json_put_int(g, "id", f[i].part.id);
		if (f[i].part.id > maxid)
			maxid = f[i].part.id;
		json_put_int(g, "fd", f[i].fd);
		json_put_int(g, "listener_hash", f[i].part.hash);
		json_put_str(g, "state", f[i].part.st == 'w' ? "waiting" :
		    f[i].part.st == 'c' ? "capabilities" : "ready");
		json_put_bool(g, "oob", f[i].part.st == 'o');
		json_put_bool(g, "recovered", 1);
		len = sizeof(cred);
		memset(&cred, 0, sizeof(cred));
		cred.pid = -1;
		cred.uid = (uid_t)-1;
		getsockopt(f[i].fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
		json_put_int(g, "pid", (long long)cred.pid);
		json_put_int(g, "uid", cred.uid == (uid_t)-1 ? -1 :
		    (long long)cred.uid);
		state_store_gen_spool(g, f, n, vm, f[i].part.id);
		json_map_close(g);
	}
	json_array_close(g);
	if (sfd != -1) {
		state_store_gen_sent(g, sfd, vm, maxid);
		close(sfd);
	}
	json_put_int(g, "next_client_id", maxid);
	json_map_close(g);
	json_buf(g, &buf, &blen);
	if ((*out = strndup((const char *)buf, blen)) == NULL)
		fatal("%s", __func__);
	json_free(g);
	yajl_tree_free(r);
}

/*
 * Whether a document of one VM (or of the control socket) is one the
 * take-over would use (state_parse, the one reader); if not, it is
 * logged, and the fds it took go back to the rest, to be closed.
 */
static int
state_store_check(const char *doc, const char *what, struct state_given_fd *f,
    size_t n, const char *vm)
{
	struct state	*st;
	char		 err[512];
	size_t		 i;

	if ((st = state_parse(doc, strlen(doc), err, sizeof(err))) != NULL) {
		state_free(st);
		return (0);
	}
	log_warnx("fdstore: %s: its sockets cannot be taken over: %s", what,
	    err);
	for (i = 0; i < n; i++) {
		/* a record's and a table's memfds are closed already */
		if (f[i].used && f[i].part.kind != 'v' &&
		    f[i].part.kind != 'i' && (vm == NULL ?
		    f[i].part.kind == 'k' : state_store_of(&f[i], vm)))
			f[i].used = 0;
	}
	return (-1);
}

/*
 * Started by the service manager after a crash, with the fds of the
 * store (LISTEN_FDS from 3, LISTEN_FDNAMES): make of them a state as a
 * restart in place leaves one, for the same take-over (state-restore.c).
 * What died with the process (queues, unsent output, partial input) is
 * not in it; an upstream is read again from QEMU's next message boundary.
 * Each VM goes in only if the state's reader would take it alone, so
 * that one that cannot be taken over (an fd of the wrong kind, a bad
 * record) costs its own sockets and no other's.  NULL if there is
 * nothing to take over (err says why, when it is an error); the
 * environment's variables are removed either way.
 */
struct state *
state_recover(char *err, size_t errlen)
{
	const char		*pid = getenv("LISTEN_PID");
	const char		*nfds = getenv("LISTEN_FDS");
	const char		*names = getenv("LISTEN_FDNAMES");
	struct state_given_fd	*f = NULL;
	struct state		*st = NULL;
	struct evbuffer		*doc, *one;
	const char		*ctl = "null";
	char			*all = NULL, *p, *tok, *vm, what[128];
	char			 ctlbuf[128];
	size_t			 n = 0, i, j, nvms = 0;
	long			 want;

	err[0] = '\0';
	if (pid == NULL || nfds == NULL || strtol(pid, NULL, 10) != getpid() ||
	    (want = strtol(nfds, NULL, 10)) <= 0 || want > 1 << 20)
		goto out;
	if ((f = calloc((size_t)want, sizeof(*f))) == NULL ||
	    (all = strdup(names != NULL ? names : "")) == NULL)
		fatal("%s", __func__);
	for (p = all, i = 0; i < (size_t)want; i++) {
		tok = p != NULL ? strsep(&p, ":") : NULL;
		f[n].fd = 3 + (int)i;
		if (tok == NULL || *tok == '\0') {
			/* a stranger: nothing of ours */
			close(3 + (int)i);
			continue;
		}
		f[n].name = tok;
		fdstore_inherit_fd(tok, f[n].fd);
		if (fdstore_parse(tok, &f[n].part) == -1)
			f[n].part.kind = '?';
		n++;
	}
	/*
	 * A VM removed while the one added in its place with the same name
	 * ran: the older generation's sockets were on their way out.
	 */
	for (i = 0; i < n; i++) {
		for (j = 0; j < n && f[i].part.kind != '?'; j++) {
			if (f[i].part.kind != 'k' && state_store_of(&f[j],
			    f[i].part.vm) && f[j].part.gen > f[i].part.gen)
				f[i].part.kind = '?';
		}
	}
	if ((doc = evbuffer_new()) == NULL || (one = evbuffer_new()) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < n; i++) {
		if (f[i].part.kind == 'k' && !f[i].used)
			break;
	}
	if (i < n) {
		f[i].used = 1;
		snprintf(ctlbuf, sizeof(ctlbuf), "{\"hash\": %u, \"fd\": %d}",
		    f[i].part.hash, f[i].fd);
		evbuffer_add_printf(one, "{\"qmpmux_state\": %d, \"control\": "
		    "%s, \"vms\": []}", STATE_VERSION, ctlbuf);
		if (state_store_check((const char *)evbuffer_pullup(one, -1),
		    "the control socket", f, n, NULL) == 0)
			ctl = ctlbuf;
		evbuffer_drain(one, evbuffer_get_length(one));
	}
	evbuffer_add_printf(doc, "{\"qmpmux_state\": %d, \"qmpmuxd\": \"%s\", "
	    "\"control\": %s, \"vms\": [", STATE_VERSION, PACKAGE_VERSION,
	    ctl);
	for (i = 0; i < n; i++) {
		if (f[i].used || !state_store_of(&f[i], f[i].part.vm))
			continue;
		/* each VM once: at its first fd */
		for (j = 0; j < i; j++) {
			if (state_store_of(&f[j], f[i].part.vm))
				break;
		}
		if (j < i)
			continue;
		state_store_gen_vm(f, n, f[i].part.vm, &vm);
		evbuffer_add_printf(one, "{\"qmpmux_state\": %d, \"vms\": "
		    "[%s]}", STATE_VERSION, vm);
		snprintf(what, sizeof(what), "vm %s", f[i].part.vm);
		if (state_store_check((const char *)evbuffer_pullup(one, -1), what,
		    f, n, f[i].part.vm) == 0)
			evbuffer_add_printf(doc, "%s%s", nvms++ > 0 ? ", " :
			    "", vm);
		evbuffer_drain(one, evbuffer_get_length(one));
		free(vm);
	}
	evbuffer_add(doc, "]}", 3);
	evbuffer_free(one);
	st = state_parse((const char *)evbuffer_pullup(doc, -1),
	    evbuffer_get_length(doc) - 1, err, errlen);
	evbuffer_free(doc);
	/* what the clients' rings hold is read again (client-in.c) */
	for (i = 0; st != NULL && i < st->nvms; i++)
		st->vms[i].after_crash = 1;
	for (i = 0; i < n; i++) {
		/* what no VM took (a stranger, a second of one): not kept */
		if (!f[i].used)
			close(f[i].fd);
	}
	log_info("fdstore: %zu sockets given back after a crash", n);
out:
	free(f);
	free(all);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return (st);
}
