/*
 * The service manager's file descriptor store: systemd keeps a copy of
 * every socket qmpmuxd holds (FDSTORE=1, each named with FDNAME=), so
 * that when qmpmuxd crashes nothing is closed, and the qmpmuxd started
 * in its place gets them back (LISTEN_FDS, LISTEN_FDNAMES) and carries
 * on (state_recover, state-store.c).  A socket leaves the store when
 * its connection ends (FDSTOREREMOVE=1), or systemd would hold it open
 * for ever.  On
 * only when NOTIFY_SOCKET is set; the protocol is spoken here, in a
 * few datagrams, as sd_notify(3) and sd_listen_fds(3) document it.
 *
 * A name says what its fd is, so that it can be found again without any
 * other state: KIND.VM.GEN[.MORE], VM the VM's name in hex, GEN its
 * generation in this process (a name may not hold ':' or be longer
 * than 255 bytes):
 *   k.HASH             the control socket (HASH of its path)
 *   l.VM.GEN.HASH      a listener (HASH of its path)
 *   m.VM.GEN           listen mode's socket
 *   u.VM.GEN           the connection to QEMU
 *   c.VM.GEN.ID.S.HASH client ID, S its state: w waiting, c
 *                      capabilities, r ready, o ready with oob; HASH
 *                      its listener's
 *   v.VM.GEN           a memfd: the VM's record (state-store.c)
 *   i.VM.GEN           a memfd: its commands at QEMU (state-store.c)
 *   q.VM.GEN.ID        client ID's spool: its memfd (client-in.c);
 *   r.VM.GEN.ID        and its pipe's reading end,
 *   w.VM.GEN.ID        and writing end
 * A socket cannot tell its path: it is bound under a temporary name and
 * renamed into place (util_unix_listen), so a hash of the path stands
 * for it, matched against the configuration.
 * The same name is stored again only after the old one is removed, so
 * storing what is already there (a restart in place takes everything
 * over) changes nothing; after a crash, the file the store gave back
 * under a name is not stored again at all (fdstore_inherit_fd), so that
 * a take-over that dies at once loses nothing from the store.  A socket whose name changes (a client's, with
 * its state) has its old name removed and is then stored under the new
 * one (client_set_state): systemd drops an fd stored a second time
 * while the first copy is still there, so the other order would lose
 * it; a crash between the two loses the socket (qmpmuxd(8), CAVEATS).
 * Every name stored is kept here too: a process that takes over
 * removes what the one before stored and it no longer holds
 * (fdstore_forget_others).
 *
 * Every datagram to the service manager, the state (fdstore_notify)
 * as well as the store's, goes through fdstore_send, which never waits:
 * the socket of a service manager slow to read holds only a few, and a
 * sendmsg that would wait for it would stop the loop, and every VM
 * with it.  What does not go at once waits here, in order, each fd to
 * store a copy of its own, and goes when the owner of the loop calls
 * fdstore_flush (the hook tells it that something waits).  A datagram
 * that waits is never lost or passed by another: FDSTOREREMOVE=1 of a
 * name whose FDSTORE=1 still waits takes that back instead, so the
 * store sees neither (a rename's new name, queued before it, waits
 * on), and a state message replaces the one that waits, as only the
 * last state matters.  fdstore_max_pending bounds the fds
 * kept waiting: past it a socket is not stored, and that is logged.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "qmpmux.h"

static struct sockaddr_un	 fdstore_sun;
static socklen_t		 fdstore_sunlen;
static int			 fdstore_sock = -1;

/*
 * The names stored, as this process knows them; inherited marks those
 * of the process before that nothing here has stored again yet.
 */
static char			**fdstore_names;
static char			*fdstore_inherited;
static size_t			 fdstore_n, fdstore_cap;

/*
 * The names by hash, as chains of indexes + 1 (0 ends one): a host's
 * store holds thousands (four per client), and a take-over looks each
 * up more than once.  fdstore_nbuckets is twice fdstore_cap.
 */
static size_t			*fdstore_bucket, *fdstore_next;
static size_t			 fdstore_nbuckets;

/*
 * An inherited name's file, as the store gave it back after a crash
 * (fdstore_inherit_fd): storing the same file under the same name again
 * is nothing to do.  given -1: not known (a restart in place).
 */
struct fdstore_file {
	int			 given;
	dev_t			 dev;
	ino_t			 ino;
	int			 flags;
};
static struct fdstore_file	*fdstore_files;
static int			 fdstore_same(const struct fdstore_file *, int);

/*
 * A datagram the service manager has not taken yet, in the order they
 * were sent: a state message, an FDSTORE=1 with a copy of its fd, or an
 * FDSTOREREMOVE=1; name is the FDNAME of the last two.
 */
enum fdstore_kind {
	FDSTORE_STATE,
	FDSTORE_STORE,
	FDSTORE_REMOVE,
};
struct fdstore_msg {
	enum fdstore_kind	 kind;
	char			*text;
	char			*name;
	int			 fd;
	TAILQ_ENTRY(fdstore_msg) entry;
};
static TAILQ_HEAD(, fdstore_msg)	 fdstore_queue =
				    TAILQ_HEAD_INITIALIZER(fdstore_queue);
static size_t			 fdstore_nqueued;
static size_t			 fdstore_nfds;		/* of them, FDSTORE=1 */
static size_t			 fdstore_max_fds = 16384;
static size_t			 fdstore_refused;	/* while they wait */
static void			(*fdstore_hook)(void *);
static void			*fdstore_hook_arg;

/*
 * Whether there is a store to keep the sockets in: NOTIFY_SOCKET, as
 * systemd sets it for a service (and the tests' fake store does).
 */
void
fdstore_init(void)
{
	const char	*path = getenv("NOTIFY_SOCKET");
	size_t		 len;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    (len = strlen(path)) >= sizeof(fdstore_sun.sun_path))
		return;
	memset(&fdstore_sun, 0, sizeof(fdstore_sun));
	fdstore_sun.sun_family = AF_UNIX;
	memcpy(fdstore_sun.sun_path, path, len);
	/* '@': an abstract address, its NUL first and none at the end */
	if (path[0] == '@')
		fdstore_sun.sun_path[0] = '\0';
	fdstore_sunlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    len + (path[0] == '/'));
	if ((fdstore_sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) ==
	    -1)
		log_warn("fdstore: socket");
}

int
fdstore_enabled(void)
{
	return (fdstore_sock != -1);
}

/*
 * One datagram to the service manager, with fd if it is not -1; flags
 * MSG_DONTWAIT, or 0 to wait (at exit).  -1 (errno) if it did not go.
 */
static int
fdstore_sendmsg(const char *text, int fd, int flags)
{
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(sizeof(int))];
	}		 cmsg;
	struct iovec	 iov;
	struct msghdr	 mh;
	struct cmsghdr	*cm;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = (void *)(uintptr_t)text;
	iov.iov_len = strlen(text);
	mh.msg_name = &fdstore_sun;
	mh.msg_namelen = fdstore_sunlen;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd != -1) {
		memset(&cmsg, 0, sizeof(cmsg));
		mh.msg_control = cmsg.buf;
		mh.msg_controllen = sizeof(cmsg.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return (sendmsg(fdstore_sock, &mh, MSG_NOSIGNAL | flags) == -1 ?
	    -1 : 0);
}

/* A datagram that failed for another reason than a full socket: lost. */
static void
fdstore_lost(const char *text)
{
	log_warn("fdstore: %.*s", (int)strcspn(text, "\n"), text);
}

/*
 * A datagram that waited leaves the queue: sent, taken back or dropped.
 * The last one to leave ends the wait, and says what it cost.
 */
static void
fdstore_dequeue(struct fdstore_msg *m)
{
	TAILQ_REMOVE(&fdstore_queue, m, entry);
	fdstore_nqueued--;
	if (m->fd != -1) {
		close(m->fd);
		fdstore_nfds--;
	}
	free(m->text);
	free(m->name);
	free(m);
	if (fdstore_nqueued > 0)
		return;
	log_debug("fdstore: nothing waits for the service manager now");
	if (fdstore_refused > 0)
		log_warnx("fdstore: nothing waits for the service manager now; "
		    "%zu sockets were not stored meanwhile "
		    "(fdstore_max_pending)", fdstore_refused);
	fdstore_refused = 0;
}

/*
 * Send what waits, in order, up to the first the service manager's
 * socket does not take; the loop's owner calls it while fdstore_pending
 * says something waits.  How many went.
 */
size_t
fdstore_flush(void)
{
	struct fdstore_msg	*m;
	size_t			 sent = 0;

	while ((m = TAILQ_FIRST(&fdstore_queue)) != NULL) {
		if (fdstore_sendmsg(m->text, m->fd, MSG_DONTWAIT) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			fdstore_lost(m->text);
		}
		fdstore_dequeue(m);
		sent++;
	}
	return (sent);
}

/* How many datagrams wait for the service manager. */
size_t
fdstore_pending(void)
{
	return (fdstore_nqueued);
}

/*
 * The owner of the loop: hook is called when datagrams start to wait,
 * so that it calls fdstore_flush until none does.  NULL for none.
 */
void
fdstore_set_hook(void (*hook)(void *), void *arg)
{
	fdstore_hook = hook;
	fdstore_hook_arg = arg;
}

/* fdstore_max_pending: how many fds to store may wait at most. */
void
fdstore_set_max_pending(unsigned int max)
{
	fdstore_max_fds = max;
}

/*
 * Queue a datagram behind those that wait, with a copy of fd to store
 * (closed once sent), unless fdstore_max_pending copies wait already.
 * -1 (logged) if it is not queued: the socket is not stored.
 */
static int
fdstore_enqueue(enum fdstore_kind kind, const char *text, int fd,
    const char *name)
{
	struct fdstore_msg	*m;
	int			 copy = -1;

	if (fd != -1) {
		if (fdstore_nfds >= fdstore_max_fds) {
			log_warnx("fdstore: %s is not stored: %zu sockets wait "
			    "for the service manager already "
			    "(fdstore_max_pending)", name, fdstore_nfds);
			fdstore_refused++;
			return (-1);
		}
		if ((copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)) == -1) {
			log_warn("fdstore: %s is not stored: no copy of it can "
			    "wait for the service manager", name);
			fdstore_refused++;
			return (-1);
		}
	}
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->text = strdup(text)) == NULL ||
	    (name != NULL && (m->name = strdup(name)) == NULL))
		fatal("%s", __func__);
	m->kind = kind;
	m->fd = copy;
	TAILQ_INSERT_TAIL(&fdstore_queue, m, entry);
	fdstore_nqueued++;
	if (copy != -1)
		fdstore_nfds++;
	if (fdstore_nqueued == 1) {
		log_debug("fdstore: the service manager does not read; "
		    "datagrams wait");
		if (fdstore_hook != NULL)
			fdstore_hook(fdstore_hook_arg);
	}
	return (0);
}

/*
 * The one way to the service manager: a datagram goes at once if none
 * waits before it and the socket takes it, and waits otherwise; never
 * does it wait for the service manager.  -1 if it is lost (logged).
 */
static int
fdstore_send(enum fdstore_kind kind, const char *text, int fd,
    const char *name)
{
	if (!TAILQ_EMPTY(&fdstore_queue))
		fdstore_flush();
	if (TAILQ_EMPTY(&fdstore_queue)) {
		if (fdstore_sendmsg(text, fd, MSG_DONTWAIT) == 0)
			return (0);
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			fdstore_lost(text);
			return (-1);
		}
	}
	return (fdstore_enqueue(kind, text, fd, name));
}

/*
 * Tell the service manager the daemon's state, as sd_notify(3) does:
 * READY=1, RELOADING=1, STOPPING=1, STATUS=.  A state that waits is
 * replaced by the next: only the last one is true.
 */
void
fdstore_notify(const char *state)
{
	struct fdstore_msg	*m;

	if (fdstore_sock == -1)
		return;
	TAILQ_FOREACH(m, &fdstore_queue, entry) {
		if (m->kind == FDSTORE_STATE) {
			fdstore_dequeue(m);
			break;
		}
	}
	fdstore_send(FDSTORE_STATE, state, -1, NULL);
}

/*
 * At exit, the loop over: what waits goes, the service manager waited
 * for up to ms in all, so that a clean stop leaves its store empty.
 * What it has not taken by then is dropped, and logged.
 */
void
fdstore_finish(int ms)
{
	struct fdstore_msg	*m;
	struct timeval		 start, tv;
	double			 left;
	size_t			 n;

	if (fdstore_sock == -1 || TAILQ_EMPTY(&fdstore_queue))
		return;
	util_now(&start);
	while ((m = TAILQ_FIRST(&fdstore_queue)) != NULL) {
		/* a timeout of 0 would be none: wait for ever */
		if ((left = ms / 1e3 - util_elapsed(&start)) < 1e-3 ||
		    util_timeval(left, &tv) == -1 ||
		    setsockopt(fdstore_sock, SOL_SOCKET, SO_SNDTIMEO, &tv,
		    sizeof(tv)) == -1)
			break;
		if (fdstore_sendmsg(m->text, m->fd, 0) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			fdstore_lost(m->text);
		}
		fdstore_dequeue(m);
	}
	if ((n = fdstore_nqueued) == 0)
		return;
	log_warnx("fdstore: the service manager did not take %zu datagrams "
	    "within %d ms; they are dropped", n, ms);
	while ((m = TAILQ_FIRST(&fdstore_queue)) != NULL)
		fdstore_dequeue(m);
}

static size_t *
fdstore_chain(const char *name)
{
	return (&fdstore_bucket[util_hash(name) & (fdstore_nbuckets - 1)]);
}

static ssize_t
fdstore_find(const char *name)
{
	size_t	 i;

	if (fdstore_nbuckets == 0)
		return (-1);
	for (i = *fdstore_chain(name); i != 0; i = fdstore_next[i - 1]) {
		if (strcmp(fdstore_names[i - 1], name) == 0)
			return ((ssize_t)(i - 1));
	}
	return (-1);
}

/* Put the name at i in its chain, or take it out of it. */
static void
fdstore_link(size_t i)
{
	size_t	*b = fdstore_chain(fdstore_names[i]);

	fdstore_next[i] = *b;
	*b = i + 1;
}

static void
fdstore_unlink(size_t i)
{
	size_t	*p = fdstore_chain(fdstore_names[i]);

	while (*p != i + 1)
		p = &fdstore_next[*p - 1];
	*p = fdstore_next[i];
}

/*
 * A name of the scheme above, into buf; vm NULL for none, else gen is
 * the VM's generation: a VM removed and one of the same name added at
 * once are two, and the old one's names, taken out when it is freed,
 * must not be the new one's.
 */
void
fdstore_name(char *buf, size_t len, const char *kind, const char *vm,
    unsigned int gen, const char *fmt, ...)
{
	size_t			 off, n;
	va_list			 ap;

	/* cut short, as snprintf leaves it: what follows has no room */
	if ((off = (size_t)snprintf(buf, len, "%s", kind)) >= len)
		off = len - 1;
	if (vm != NULL) {
		if (off + 1 < len)
			buf[off++] = '.';
		n = strlen(vm);
		if (off + 2 * n >= len)
			n = (len - off - 1) / 2;
		util_hex_encode(buf + off, vm, n);
		off += 2 * n;
		buf[off] = '\0';
		off += (size_t)snprintf(buf + off, len - off, ".%u", gen);
		if (off >= len)
			off = len - 1;
	}
	if (fmt != NULL && off + 1 < len) {
		buf[off++] = '.';
		va_start(ap, fmt);
		vsnprintf(buf + off, len - off, fmt, ap);
		va_end(ap);
	}
}

/*
 * The name of parts p, as the object of its kind writes its own: what
 * fdstore_parse reads back into p.
 */
void
fdstore_name_parts(char *buf, size_t len, const struct fdstore_part *p)
{
	char	 kind[2] = { p->kind, '\0' };

	switch (p->kind) {
	case 'k':
		fdstore_name(buf, len, kind, NULL, 0, "%08x", p->hash);
		break;
	case 'l':
		fdstore_name(buf, len, kind, p->vm, p->gen, "%08x", p->hash);
		break;
	case 'c':
		fdstore_name(buf, len, kind, p->vm, p->gen, "%d.%c.%08x", p->id,
		    p->st, p->hash);
		break;
	case 'q':
	case 'r':
	case 'w':
		fdstore_name(buf, len, kind, p->vm, p->gen, "%d", p->id);
		break;
	default:
		fdstore_name(buf, len, kind, p->vm, p->gen, NULL);
		break;
	}
}

/*
 * Take name out of the store, if it is there; if its FDSTORE=1 still
 * waits, taking that back is all there is to do.
 */
void
fdstore_remove(const char *name)
{
	char			 text[FDSTORE_NAME_MAX + 64];
	struct fdstore_msg	*m;
	ssize_t			 i;

	if (fdstore_sock == -1 || (i = fdstore_find(name)) == -1)
		return;
	TAILQ_FOREACH(m, &fdstore_queue, entry) {
		if (m->kind == FDSTORE_STORE && strcmp(m->name, name) == 0)
			break;
	}
	if (m != NULL)
		fdstore_dequeue(m);
	else {
		snprintf(text, sizeof(text), "FDSTOREREMOVE=1\nFDNAME=%s",
		    name);
		fdstore_send(FDSTORE_REMOVE, text, -1, name);
	}
	fdstore_unlink((size_t)i);
	free(fdstore_names[i]);
	if ((size_t)i != --fdstore_n) {
		fdstore_unlink(fdstore_n);
		fdstore_names[i] = fdstore_names[fdstore_n];
		fdstore_inherited[i] = fdstore_inherited[fdstore_n];
		fdstore_files[i] = fdstore_files[fdstore_n];
		fdstore_link((size_t)i);
	}
}

/* Remember a name as stored; inherited: by the process before. */
static void
fdstore_keep(const char *name, int inherited)
{
	struct fdstore_file	*f;
	char			**n, *in;
	size_t			*next, i;

	if (fdstore_n == fdstore_cap) {
		fdstore_cap = fdstore_cap == 0 ? 64 : fdstore_cap * 2;
		if ((n = reallocarray(fdstore_names, fdstore_cap,
		    sizeof(*n))) == NULL ||
		    (in = realloc(fdstore_inherited, fdstore_cap)) == NULL ||
		    (f = reallocarray(fdstore_files, fdstore_cap,
		    sizeof(*f))) == NULL ||
		    (next = reallocarray(fdstore_next, fdstore_cap,
		    sizeof(*next))) == NULL)
			fatal("%s", __func__);
		fdstore_names = n;
		fdstore_inherited = in;
		fdstore_files = f;
		fdstore_next = next;
		/* the chains again, over twice the buckets */
		free(fdstore_bucket);
		fdstore_nbuckets = fdstore_cap * 2;
		if ((fdstore_bucket = calloc(fdstore_nbuckets,
		    sizeof(*fdstore_bucket))) == NULL)
			fatal("%s", __func__);
		for (i = 0; i < fdstore_n; i++)
			fdstore_link(i);
	}
	if ((fdstore_names[fdstore_n] = strdup(name)) == NULL)
		fatal("%s", __func__);
	fdstore_files[fdstore_n].given = -1;
	fdstore_link(fdstore_n);
	fdstore_inherited[fdstore_n++] = (char)inherited;
}

/* Remember the file stored under the name at i: fd, as it is now. */
static void
fdstore_know(size_t i, int fd)
{
	struct fdstore_file	*f = &fdstore_files[i];
	struct stat		 sb;

	f->given = -1;
	if (fd < 0 || fstat(fd, &sb) == -1)
		return;
	f->given = fd;
	f->dev = sb.st_dev;
	f->ino = sb.st_ino;
	f->flags = fcntl(fd, F_GETFL);
}

/* Keep a copy of fd in the store as name, in place of one of that name. */
void
fdstore_add(int fd, const char *name)
{
	char	 text[FDSTORE_NAME_MAX + 64];
	ssize_t	 i;

	if (fdstore_sock == -1 || fd < 0)
		return;
	/*
	 * The file the store gave back under this name, taken over: it is
	 * there already, and taking it out to store it again would leave a
	 * moment, or a crash's worth of waiting datagrams, without it.
	 */
	if ((i = fdstore_find(name)) != -1 && fdstore_inherited[i] &&
	    fdstore_same(&fdstore_files[i], fd)) {
		fdstore_inherited[i] = 0;
		return;
	}
	fdstore_remove(name);
	snprintf(text, sizeof(text), "FDSTORE=1\nFDNAME=%s", name);
	if (fdstore_send(FDSTORE_STORE, text, fd, name) == -1)
		return;
	fdstore_keep(name, 0);
	fdstore_know(fdstore_n - 1, fd);
}

/*
 * Store bytes under name, in a memfd: the service manager keeps any fd.
 * A VM's record is its add-vm keys, its greeting and the epoch of its
 * upstream ids, what its sockets do not say of themselves.
 */
void
fdstore_add_bytes(const char *name, const void *buf, size_t len)
{
	int	 fd;

	if (fdstore_sock == -1)
		return;
	if ((fd = memfd_create("qmpmux-record", MFD_CLOEXEC)) == -1 ||
	    write(fd, buf, len) != (ssize_t)len) {
		log_warn("fdstore: %s", name);
		if (fd != -1)
			close(fd);
		return;
	}
	fdstore_add(fd, name);
	close(fd);
}

/*
 * Taking over: a name the process before had stored.  Each is stored
 * again in place (fdstore_add removes it first) as its socket is taken
 * over; fdstore_forget_others then takes out those whose socket did
 * not come along, or the service manager would hold them open for ever.
 */
void
fdstore_inherit(const char *name)
{
	if (fdstore_sock != -1 && fdstore_find(name) == -1)
		fdstore_keep(name, 1);
}

/*
 * Taking over after a crash: name, and fd, the file the store gave back
 * under it.
 */
void
fdstore_inherit_fd(const char *name, int fd)
{
	ssize_t	 i;

	fdstore_inherit(name);
	if ((i = fdstore_find(name)) != -1 && fdstore_inherited[i])
		fdstore_know((size_t)i, fd);
}

/*
 * Whether fd is the file f was given as: the same fd, still that file
 * (its inode and its status flags, which tell a pipe's ends apart).
 */
static int
fdstore_same(const struct fdstore_file *f, int fd)
{
	struct stat	 sb;

	return (f->given == fd && fstat(fd, &sb) == 0 &&
	    sb.st_dev == f->dev && sb.st_ino == f->ino &&
	    fcntl(fd, F_GETFL) == f->flags);
}

void
fdstore_forget_others(void)
{
	size_t	 i = 0;

	while (i < fdstore_n) {
		if (fdstore_inherited[i])
			fdstore_remove(fdstore_names[i]);
		else
			i++;
	}
}

/*
 * The names this process has stored, for the state of a restart, and
 * those whose FDSTOREREMOVE=1 waits: the queue goes with the exec, and
 * the process after takes out what it inherits and does not store.
 */
void
fdstore_save(struct yajl_gen_t *g)
{
	struct fdstore_msg	*m;
	size_t			 i;

	json_array_open(g);
	for (i = 0; i < fdstore_n; i++)
		json_cstr(g, fdstore_names[i]);
	TAILQ_FOREACH(m, &fdstore_queue, entry) {
		if (m->kind == FDSTORE_REMOVE)
			json_cstr(g, m->name);
	}
	json_array_close(g);
}

/*
 * For each name fdstore_save writes, the fd stored under it, which the
 * exec keeps if the state names it: the process after does not store
 * it again (fdstore_inherit_fd).  -1 where that is not known, or where
 * the store has not got it yet (its FDSTORE=1 waits, and dies with the
 * exec).
 */
void
fdstore_save_fds(struct yajl_gen_t *g)
{
	struct fdstore_msg	*m;
	size_t			 i;
	int			 fd;

	json_array_open(g);
	for (i = 0; i < fdstore_n; i++) {
		fd = fdstore_same(&fdstore_files[i], fdstore_files[i].given) ?
		    fdstore_files[i].given : -1;
		TAILQ_FOREACH(m, &fdstore_queue, entry) {
			if (m->kind == FDSTORE_STORE &&
			    strcmp(m->name, fdstore_names[i]) == 0)
				fd = -1;
		}
		json_integer(g, fd);
	}
	TAILQ_FOREACH(m, &fdstore_queue, entry) {
		if (m->kind == FDSTORE_REMOVE)
			json_integer(g, -1);
	}
	json_array_close(g);
}

/* The bytes of a memfd the store gave back, or NULL. */
char *
fdstore_read_bytes(int fd)
{
	struct stat	 sb;
	char		*buf;
	size_t		 off;
	ssize_t		 n;

	if (fstat(fd, &sb) == -1 || sb.st_size > (1 << 24) ||
	    (buf = malloc((size_t)sb.st_size + 1)) == NULL)
		return (NULL);
	for (off = 0; off < (size_t)sb.st_size; off += (size_t)n) {
		if ((n = pread(fd, buf + off, (size_t)sb.st_size - off,
		    (off_t)off)) <= 0) {
			free(buf);
			return (NULL);
		}
	}
	buf[off] = '\0';
	return (buf);
}

/*
 * Whether name can be a name in the store, as systemd takes one: 1 to
 * 255 printable ASCII characters but ':'.  A name of a restart's state
 * goes into a message to the service manager (fdstore_remove), where
 * a line of its own would be a message of its own.
 */
int
fdstore_valid_name(const char *name)
{
	size_t	 n = strlen(name), i;

	if (n == 0 || n > FDSTORE_NAME_MAX)
		return (0);
	for (i = 0; i < n; i++) {
		if (name[i] < ' ' || name[i] > '~' || name[i] == ':')
			return (0);
	}
	return (1);
}

/*
 * A decimal number from 1 to max as %u and %d write it (no sign, no
 * leading 0) at s, into *v: where it ends, or NULL if there is none.
 */
static const char *
fdstore_decimal(const char *s, unsigned long long max, unsigned long long *v)
{
	unsigned long long	 n = 0, d;

	if (*s < '1' || *s > '9')
		return (NULL);
	for (; *s >= '0' && *s <= '9'; s++) {
		d = (unsigned long long)(*s - '0');
		if (n > (max - d) / 10)
			return (NULL);
		n = n * 10 + d;
	}
	*v = n;
	return (s);
}

/* Eight lowercase hex digits, as %08x writes them: where they end. */
static const char *
fdstore_hex8(const char *s, unsigned int *v)
{
	unsigned char	 b[4];
	int		 i;

	for (i = 0; i < 8; i++) {
		if (s[i] == '\0')
			return (NULL);
	}
	if (util_hex_decode(b, s, sizeof(b)) == -1)
		return (NULL);
	*v = (unsigned int)b[0] << 24 | (unsigned int)b[1] << 16 |
	    (unsigned int)b[2] << 8 | b[3];
	return (s + 8);
}

/*
 * A name of the scheme above, read back into its parts; -1 if it is not
 * exactly one that fdstore_name writes for a socket of ours (a stranger,
 * whose fd is not taken).  The VM's name is one a VM may have.
 */
int
fdstore_parse(const char *name, struct fdstore_part *p)
{
	unsigned long long	 v;
	const char		*q, *dot;
	size_t			 n;

	memset(p, 0, sizeof(*p));
	if (!fdstore_valid_name(name) || name[1] != '.')
		return (-1);
	p->kind = name[0];
	q = name + 2;
	if (p->kind == 'k')
		return ((q = fdstore_hex8(q, &p->hash)) != NULL && *q == '\0' ?
		    0 : -1);
	if (strchr("lmucviqrw", p->kind) == NULL)
		return (-1);
	/* KIND.VM.GEN[.MORE], VM in hex */
	if ((dot = strchr(q, '.')) == NULL || (n = (size_t)(dot - q)) == 0 ||
	    n % 2 != 0 || n / 2 >= sizeof(p->vm) ||
	    util_hex_decode(p->vm, q, n / 2) == -1)
		return (-1);
	p->vm[n / 2] = '\0';
	if (strlen(p->vm) != n / 2 || !conf_valid_name(p->vm))
		return (-1);
	if ((q = fdstore_decimal(dot + 1, UINT_MAX, &v)) == NULL)
		return (-1);
	p->gen = (unsigned int)v;
	if (p->kind == 'l') {
		if (*q != '.' || (q = fdstore_hex8(q + 1, &p->hash)) == NULL)
			return (-1);
	} else if (p->kind == 'c') {
		/* ID.S.HASH */
		if (*q != '.' || (q = fdstore_decimal(q + 1, INT_MAX, &v)) ==
		    NULL)
			return (-1);
		p->id = (int)v;
		if (q[0] != '.' || q[1] == '\0' || strchr("wcro", q[1]) ==
		    NULL || q[2] != '.')
			return (-1);
		p->st = q[1];
		if ((q = fdstore_hex8(q + 3, &p->hash)) == NULL)
			return (-1);
	} else if (strchr(FDSTORE_SPOOL_KINDS, p->kind) != NULL) {
		/* ID */
		if (*q != '.' || (q = fdstore_decimal(q + 1, INT_MAX, &v)) ==
		    NULL)
			return (-1);
		p->id = (int)v;
	}
	return (*q == '\0' ? 0 : -1);
}
