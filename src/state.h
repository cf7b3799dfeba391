/*
 * The state document as the new process reads it: the description the
 * reader (state-read.c, state-parse.c) makes of it, checked whole,
 * which the take-over (state-restore.c) and the crash's keeper
 * (state-store.c) use.  Persistence's own: no room below it sees this.
 */
#ifndef STATE_H
#define STATE_H

#include <sys/types.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "qmpmux.h"

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
	int			 mutation;
	int			 lock_blocked;
	int			 lock_drain;
	enum lock_op		 lock_op;	/* acquire, release or none */
	double			 lock_hold;
	const char		*lock_reason;
	uint64_t		 lock_token;
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
	int			 lock_aware;
	enum lock_why		 lock_fenced;
	uint64_t		 lock_lost;
	struct state_bytes	 in;
	struct state_bytes	 out;
	int			 spool[3];	/* memfd, pipe; -1: none */
	size_t			*order;
	size_t			 norder;
};

/* One [section, key, value] of a VM's add-vm. */
struct state_given {
	const char		*section;
	const char		*key;
	const char		*value;
};

/*
 * A VM's lock.  written is set (from 0) only after a crash, when it
 * comes from the VM's record: then since and left count from it, and
 * the holder's listener, pid and uid are its client's.
 */
struct state_lock {
	int			 held;
	int			 client;
	const char		*listener;
	pid_t			 pid;
	uid_t			 uid;
	uint64_t		 token;
	uint64_t		 last_token;
	const char		*reason;
	double			 hold;
	double			 since;
	double			 left;
	unsigned int		 draining;
	double			 written;	/* -1: a restart's */
};

/*
 * A command a process before a crash had sent to QEMU (struct vm_sent,
 * kept in the fd store by state-store.c): age counts from its arrival.
 */
#define STATE_SENT_MAX		32	/* a VM's, kept */
#define STATE_SENT_ID		704	/* bytes of a client's id kept */
struct state_sent {
	unsigned int		 epoch;
	uint64_t		 seq;
	int			 client;
	struct state_bytes	 id;
	char			 name[QMP_NAME_MAX];
	double			 age;
	double			 timeout;
	int			 expired;
	int64_t			 at;		/* in its client's ring; -1 */
};

/* A VM of the state; used once a VM of the new process took it. */
struct state_vm {
	const char		*name;
	int			 from_file;
	int			 after_crash;	/* made of the fd store's */
	struct state_given	*given;
	size_t			 ngiven;
	int			 orphans;
	unsigned int		 orphan_epoch;
	int			 next_client_id;
	uint64_t		 next_cmd_id;
	double			 stalled;	/* -1: not stalled */
	struct vm_stats		 stats;
	struct state_lock	 lock;
	struct state_upstream	 up;
	struct state_listener	*listeners;
	size_t			 nlisteners;
	struct state_cmd	*cmds;
	size_t			 ncmds;
	struct state_client	*clients;
	size_t			 nclients;
	struct state_sent	*sent;
	size_t			 nsent;
	int			 used;
	double			 taken;		/* seconds since the save */
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

/* state-read.c: one member of the document, read and checked */
int		 state_refuse(struct state_rd *, const char *, const char *,
		    const char *, ...) LOG_PRINTF(4, 5);
int		 state_rd_member(struct state_rd *, yajl_val, const char *,
		    const char *, yajl_val *);
int		 state_rd_int(struct state_rd *, yajl_val, const char *, const char *,
		    long long, long long, long long, int, long long *);
int		 state_rd_double(struct state_rd *, yajl_val, const char *,
		    const char *, double, double, double, double *);
int		 state_rd_bool(struct state_rd *, yajl_val, const char *, const char *,
		    int *);
int		 state_rd_str(struct state_rd *, yajl_val, const char *, const char *,
		    size_t, int, const char **);
int		 state_rd_path(struct state_rd *, yajl_val, const char *, const char *,
		    int, const char **);
void		 state_bytes_free(struct state_bytes *);
int		 state_rd_hex(struct state_rd *, yajl_val, const char *, const char *,
		    int, struct state_bytes *);
int		 state_rd_fd(struct state_rd *, yajl_val, const char *, const char *,
		    enum state_fd, int, int *);
int		 state_rd_object(struct state_rd *, yajl_val, const char *,
		    const char *, int, yajl_val *);
int		 state_within(const char *, size_t);
ssize_t		 state_dup(const long long *, size_t);
int		 state_has(const long long *, size_t, long long);
int		 state_rd_array(struct state_rd *, yajl_val, const char *, const char *,
		    const char *, int, yajl_val *);
int		 state_monitor_state(const char *, enum monitor_state *);
int		 state_client_state(const char *, enum client_state *);
int		 state_sent_name(const char *);

#endif
