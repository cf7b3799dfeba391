/*
 * The proxy's objects.  A vm owns its monitor (the upstream), listeners,
 * clients and command queue; each points back at its vm.  They are
 * declared together, as tmux.h does, because each module walks the
 * others' lists; standalone modules (log, qmp) keep their own headers.
 */
#ifndef QMPMUX_H
#define QMPMUX_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <signal.h>
#include <stdint.h>

#include "log.h"
#include "qmp.h"
#include "utf8.h"
#include "json.h"
#include "counter.h"

/* glibc's sys/queue.h lacks the _SAFE iterators of the BSDs. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST((head));				\
	    (var) && ((tvar) = TAILQ_NEXT((var), field), 1);		\
	    (var) = (tvar))
#endif
#ifndef TAILQ_FOREACH_REVERSE
#define TAILQ_FOREACH_REVERSE(var, head, headname, field)		\
	for ((var) = TAILQ_LAST((head), headname);			\
	    (var);							\
	    (var) = TAILQ_PREV((var), headname, field))
#endif

struct event;
struct event_base;
struct evbuffer;
struct bufferevent;
struct evconnlistener;
struct sockaddr_un;

struct vm;
struct client;
struct cmd;

/*
 * A listener's priority class, best first: when QEMU has room for a
 * command, the best class with one waiting sends first (cmd.c).
 */
enum prio {
	PRIO_MANAGER,		/* the management daemon: libvirtd */
	PRIO_NORMAL,
	PRIO_BACKGROUND,	/* scrapers, monitoring */
};
#define PRIO_N		3

/* The lock's commands (lock.c), and why a holder let it go. */
enum lock_op {
	LOCK_OP_NONE,
	LOCK_OP_ACQUIRE,	/* queued; lock_run */
	LOCK_OP_RELEASE,	/* queued; lock_run */
	LOCK_OP_RENEW,		/* answered at once */
	LOCK_OP_QUERY,		/* answered at once */
};
enum lock_why {
	LOCK_WHY_NONE,
	LOCK_WHY_RELEASE,
	LOCK_WHY_DISCONNECT,
	LOCK_WHY_EXPIRED,
	LOCK_WHY_BROKEN,
	LOCK_WHY_VM_GONE,
};

/* What a listener does with a client that keeps QEMU's reads paused. */
enum slow_client {
	SLOW_CLIENT_BLOCK,
	SLOW_CLIENT_DISCONNECT,
};

/* What a per-command override sets: timeout.NAME or cost.NAME. */
enum cmd_key {
	CMD_KEY_TIMEOUT,	/* seconds, 0: none */
	CMD_KEY_COST,		/* a whole number, at least 1 */
};

/* One per-command override (timeout.NAME = SECONDS, cost.NAME = N). */
struct cmd_conf {
	char			*name;
	enum cmd_key		 key;
	double			 value;
	TAILQ_ENTRY(cmd_conf)	 entry;
};
TAILQ_HEAD(cmd_confs, cmd_conf);

/* acl.c: the commands a listener's clients may send; zeroed allows all */
struct acl {
	int			 read_only;	/* query-* only */
	char			**allow;	/* globs; none: all */
	size_t			 nallow;
	char			**deny;		/* globs */
	size_t			 ndeny;
};

void		 acl_add(struct acl *, int, const char *);
void		 acl_copy(struct acl *, const struct acl *);
void		 acl_clear(struct acl *);
int		 acl_equal(const struct acl *, const struct acl *);
int		 acl_allows(const struct acl *, const char *);

/* A listener's role: where it is, who may connect, what they may send. */
struct listener_conf {
	char			*path;
	mode_t			 mode;
	uid_t			 owner;		/* (uid_t)-1: unchanged */
	gid_t			 group;		/* (gid_t)-1: unchanged */
	uid_t			*allowed_uids;	/* none: any */
	size_t			 nallowed_uids;
	struct acl		 acl;
	enum slow_client	 slow_client;
	double			 slow_client_timeout;
	enum prio		 priority;
	unsigned int		 rate_limit;	/* cost a second, 0: none */
	unsigned int		 rate_burst;	/* 0: rate_limit */
	int			 fd;		/* passed, until listening; or -1 */
	int			 passed;	/* by the control socket: no path
						   of ours to make or remove */
	TAILQ_ENTRY(listener_conf) entry;
};
TAILQ_HEAD(listener_confs, listener_conf);

#define QMPMUX_RUNDIR	"/run/qmpmux"	/* the dump's, by default */
#define ACCEPT_BURST	16	/* accepts before a listener yields */
#define ACCEPT_RETRY_SECONDS 1	/* a listener's pause when accept fails */

/*
 * One key = value, from a file (with its line) or the command line
 * (line 0).  An empty key stands for a section's header, which the
 * command line has no other way to give.
 */
struct conf_entry {
	char			*section;	/* "global", "vm NAME", ... */
	char			*key;
	char			*value;
	char			*file;
	int			 line;
	TAILQ_ENTRY(conf_entry)	 entry;
};
TAILQ_HEAD(conf_entries, conf_entry);

/* How qmpmuxd reaches QEMU's monitor. */
enum upstream_mode {
	UPSTREAM_CONNECT,	/* QEMU listens at path; qmpmuxd connects */
	UPSTREAM_LISTEN,	/* qmpmuxd listens at path; QEMU dials in */
	UPSTREAM_FD,		/* a socket already connected to QEMU */
};

/*
 * A VM: its upstream, its listeners, and every bound, with the defaults
 * of conf_vm_init.  where is the file and line that defined it, for
 * messages; from_file tells a VM of the config file from one added
 * while running, which a reload leaves alone.
 */
struct vm_conf {
	char			*name;
	enum upstream_mode	 upstream_mode;
	char			*upstream;	/* the path; NULL in fd mode */
	int			 upstream_fd;	/* fd mode, else -1 */
	struct listener_confs	 listeners;
	char			*where;
	int			 from_file;

	double			 handshake_timeout;
	double			 greeting_timeout;
	double			 backoff_min;
	double			 backoff_max;
	size_t			 max_upstream_message;
	size_t			 max_client_message;
	size_t			 max_client_output;
	unsigned int		 max_json_depth;

	unsigned int		 max_inflight;
	unsigned int		 max_client_pipeline;
	unsigned int		 max_queued_commands;	/* per class */
	double			 priority_relief;	/* 0: none */
	double			 command_timeout;
	struct cmd_confs	 per_command;	/* timeout.NAME, cost.NAME */
	double			 manager_quiet;	/* before a costly background */
	size_t			 introspection_cache;	/* bytes, 0: none */
	double			 lock_default_hold;
	double			 lock_max_hold;
	double			 lock_max_wait;
	unsigned int		 lock_max_waiters;

	size_t			 max_queued_events;
	size_t			 max_queued_bytes;
	/*
	 * A VM of the control socket's: its add-vm as key = value entries
	 * (section "vm", or "listener PATH" and "passed PATH" for its
	 * listeners), so that a restart can make its conf again.
	 */
	struct conf_entries	 given;
	TAILQ_ENTRY(vm_conf)	 entry;
};
TAILQ_HEAD(vm_confs, vm_conf);

/*
 * The bounds of the control socket's and the metrics' clients, and of
 * what waits for the service manager (fdstore.c), [global] keys.  They
 * apply from the next connection, message, scrape or datagram.
 */
struct conf_limits {
	unsigned int		 control_max_clients;
	size_t			 control_max_message;
	size_t			 control_max_output;	/* a trace's too */
	unsigned int		 control_max_fds;	/* held by a client */
	double			 metrics_timeout;	/* each read, write */
	unsigned int		 metrics_max_connections;
	size_t			 metrics_max_request;	/* its headers */
	size_t			 metrics_max_response;
	unsigned int		 fdstore_max_pending;	/* fds held for it */
};

/* conf.c: the whole configuration, as one file and the command line say */
struct conf {
	char			*path;		/* the file; NULL: none */
	struct vm_conf		 defaults;	/* [global] */
	struct vm_confs		 vms;
	size_t			 max_memory;	/* host-wide budget, bytes */
	struct conf_limits	 lim;
	char			*dump_file;	/* where SIGUSR1 writes */
	char			*metrics;	/* ADDR:PORT; NULL: off */
	char			*control_path;	/* NULL: none */
};


/* What a reload changes in a VM (conf_diff). */
#define CONF_DIFF_BOUNDS	0x1	/* bounds and timeouts, in place */
#define CONF_DIFF_UPSTREAM	0x2	/* reconnect the upstream */
#define CONF_DIFF_LISTENERS	0x4	/* some listener changed */

#define CONF_ERR_MAX	512	/* room for any conf error message */

void		 conf_vm_init(struct vm_conf *);
void		 conf_vm_clear(struct vm_conf *);
void		 conf_vm_copy(struct vm_conf *, const struct vm_conf *);
double		 conf_vm_timeout(const struct vm_conf *, const char *);
unsigned int	 conf_vm_cost(const struct vm_conf *, const char *);
struct listener_conf *conf_listener_new(const char *);
struct listener_conf *conf_listener_copy(const struct listener_conf *);
void		 conf_listener_free(struct listener_conf *);
int		 conf_listener_equal(const struct listener_conf *,
		    const struct listener_conf *);
int		 conf_set_vm(struct vm_conf *, const char *, const char *,
		    char *, size_t);
int		 conf_set_listener(struct listener_conf *, const char *,
		    const char *, char *, size_t);
int		 conf_set_upstream(struct vm_conf *, const char *, char *,
		    size_t);
int		 conf_check_value(const char *, const char *, char *, size_t);
/* conf-json.c: add-vm's JSON as configuration */
struct yajl_val_s;
char		*conf_json_text(struct yajl_val_s *);
void		 conf_given_add(struct vm_conf *, const struct listener_conf *,
		    const char *, const char *);
int		 conf_json_set(struct vm_conf *, struct listener_conf *,
		    const char *, const char *, struct yajl_val_s *, char *,
		    size_t);
int		 conf_valid_name(const char *);
void		 conf_entry_add(struct conf_entries *, const char *,
		    const char *, const char *, const char *, int);
void		 conf_entries_clear(struct conf_entries *);
int		 conf_load(struct conf *, const char *,
		    const struct conf_entries *, char *, size_t);
void		 conf_clear(struct conf *);
int		 conf_diff(const struct vm_conf *, const struct vm_conf *);
const char	*conf_upstream_mode_name(enum upstream_mode);
const char	*conf_prio_name(enum prio);
const char	*conf_option_name(int);
int		 conf_option_is_listener(int);
int		 conf_option_is_global(int);
void		 conf_option_flag(int, char *, size_t);
const char	*conf_option_arg(int);
int		 conf_option_count(void);

/*
 * What the proxy tells the layer above it (vm_tell): each socket of a
 * VM as it comes (fd) and goes (-1), its record, the VM's end, and
 * that its upstream is gone for good.  The owner sets the hooks
 * (server.hooks) and passes each on to the room that acts on it: the
 * fd store's keeper (state-store.c), the set of VMs (host.c).  So the
 * proxy never calls the persistence or the host: it only tells.
 */
enum vm_change {
	VM_RECORD,		/* the VM's record changed (greeting...) */
	VM_GONE,		/* the VM is being freed */
	VM_CLOSED,		/* its upstream cannot come back: remove it */
	VM_UPSTREAM,		/* the connection to QEMU */
	VM_UPSTREAM_LISTEN,	/* listen mode's socket */
	VM_LISTENER,		/* obj: a listener */
	VM_CLIENT,		/* obj: a client; fd, then -1 as it was, at
				   each change of state */
	VM_SENT,		/* obj: a vm_sent; 1 as it goes or changes,
				   -1 once answered by QEMU or forgotten */
	VM_SPOOL,		/* obj: a client; its spool's memfd as it
				   comes, -1 as it goes */
};

/*
 * A command sent to QEMU and not yet answered by it, as the layer above
 * keeps it across a crash (state-store.c): a qmpmuxd started after one
 * answers it at its deadline, and drops QEMU's late reply.
 */
struct vm_sent {
	unsigned int		 epoch;		/* of its upstream id */
	uint64_t		 seq;
	int			 client;
	const char		*id;		/* the client's, or NULL */
	size_t			 idlen;
	const char		*name;
	double			 arrived;	/* util_now's clock, seconds */
	double			 timeout;	/* 0: none */
	int			 expired;	/* answered by its deadline */
	int64_t			 at;		/* where it ends in its client's
						   ring (client-in.c); -1 */
};
struct vm_hooks {
	void	(*change)(struct vm *, enum vm_change, const void *, int);
};

/*
 * server.c: the one owner of the set of VMs.  vms are those running, by
 * name; stopping, those removed and not yet freed.  backlog_bytes counts
 * every VM's event backlog against max_memory, the host-wide budget, and
 * nbacklogged the VMs that hold some; budget_paused lists the VMs whose
 * reads wait for the budget alone.  defaults are [global]'s, for the VMs
 * the control socket adds.
 */
struct server {
	struct event_base	*base;
	char			*conf_path;
	struct conf_entries	 cmdline;
	TAILQ_HEAD(, vm)	 vms;
	TAILQ_HEAD(, vm)	 stopping;
	size_t			 max_memory;
	struct conf_limits	 lim;
	size_t			 backlog_bytes;
	unsigned int		 nbacklogged;	/* VMs that hold events */
	unsigned int		 nvms;		/* VMs made and not freed */
	TAILQ_HEAD(, vm)	 budget_paused;
	void			(*shutdown_done)(void *);
	void			*shutdown_arg;
	char			*dump_file;
	struct metrics		*metrics;	/* NULL: off, or cannot listen */
	struct timeval		 started;	/* wall clock */
	struct vm_conf		 defaults;
	const struct vm_hooks	*hooks;		/* what the proxy tells */
	unsigned int		 epoch;		/* of its upstream ids (cmd.c) */
	unsigned int		 vm_gens;	/* VMs made, for vm->gen */
	struct event		*notify;	/* retries fdstore_flush */
	struct control		*control;	/* NULL: none */
};

struct state;
struct control;
struct server	*server_new(struct event_base *, const char *,
		    const struct conf_entries *);
int		 server_load(struct server *, struct conf *, char *, size_t);
int		 server_start(struct server *, struct conf *, struct state *);
int		 server_run(struct server *, struct conf *);
int		 server_control(struct server *, const char *);
int		 server_reload(struct server *, char *, size_t);
int		 server_restart(struct server *, int, const char *, size_t,
		    char *, size_t);
void		 server_dump(struct server *);
void		 server_shutdown(struct server *, void (*)(void *), void *);
void		 server_free(struct server *);

/* host.c: the set of VMs, by name */
struct host_counts {			/* what a reload changed */
	unsigned int		 added;
	unsigned int		 removed;
	unsigned int		 changed;
};
struct vm	*host_find(struct server *, const char *);
unsigned int	 host_count(struct server *);
struct vm	*host_make(struct server *, struct vm_conf *);
void		 host_unmake(struct server *, struct vm *);
int		 host_add(struct server *, struct vm_conf *);
void		 host_remove(struct server *, struct vm *, const char *);
void		 host_reload(struct server *, struct conf *,
		    struct host_counts *);
void		 host_shutdown(struct server *, void (*)(void *), void *);
void		 host_free_all(struct server *);

/* args.c: qmpmuxd's command line, as configuration */
struct args {
	char			*file;		/* -f, absolute; or the default */
	int			 debug;
	int			 verbose;
	int			 check;		/* -n */
	int			 check_state;	/* --check-state FD; -1: none */
	struct conf_entries	 entries;	/* the options, as config */
};
void		 args_parse(struct args *, int, char *[], const char *,
		    const char *);
void		 args_clear(struct args *);

/* control.c: the control socket, a QMP monitor of qmpmuxd itself */
struct control;
struct state;
struct state_fds;
struct yajl_gen_t;
struct yajl_val_s;
struct control_ops;
struct control	*control_new(struct server *, const char *,
		    const struct control_ops *);
void		 control_free(struct control *);

/*
 * state*.c: what one process hands the next across a restart, written
 * by state.c (state_save), read whole by state-parse.c (state_read,
 * state_parse) and taken over by state-restore.c (state_release,
 * state_vm_*, state_control_adopt).  fds are the sockets the state
 * names, kept open across the exec.
 */
#define STATE_VERSION	1	/* of the document; docs/STATE.md */
struct state;
struct state_vm;
struct state_fds {
	int			*fd;
	size_t			 n;
	size_t			 cap;
};
int		 state_save(struct server *, struct control *, int,
		    const char *, size_t, struct state_fds *, char *, size_t);
struct state	*state_read(int, char *, size_t);
struct state	*state_parse(const char *, size_t, char *, size_t);
void		 state_free(struct state *);
struct yajl_val_s *state_root(struct state *);
int		 state_vm_added(struct state *, const char *);
struct state_vm	*state_vm_prepare(struct state *, struct vm_conf *);
int		 state_vm_restore(struct vm *, struct state_vm *);
void		 state_vm_abandon(const char *, struct state_vm *);
void		 state_release(struct state *, struct conf *);
struct vm_conf	*state_vm_next_added(struct state *, struct server *);
struct control	*state_control_adopt(struct state *, struct server *,
		    const char *, const struct control_ops *);
/* state-store.c: the proxy's sockets in the fd store; a crash's take-over */
void		 state_store_change(struct vm *, enum vm_change, const void *,
		    int);
struct state	*state_recover(char *, size_t);
/* state.c: the writer's; state_given and state_lock write the record too */
void		 state_keep_fd(struct state_fds *, int);
void		 state_given(struct yajl_gen_t *, const struct conf_entries *);
void		 state_lock(struct yajl_gen_t *, const struct vm *, int);

/* spool.c: byte rings in a memfd that a kill -9 loses nothing of */
#define SPOOL_RINGS_MAX		4096
#define SPOOL_CAP_MAX		(256UL << 20)
#define SPOOL_PIPE_MAX		65536	/* a pipe's bytes, by default */
#define SPOOL_USER		8	/* words of the user's in a header */
#define SPOOL_PUNCH_BATCH	(256 << 10)	/* consumed, then punched */
struct spool;
struct iovec;
struct spool	*spool_create(size_t, const size_t *, const int *);
struct spool	*spool_open(int, int, int, char *, size_t);
void		 spool_free(struct spool *);
int		 spool_fd(const struct spool *);
size_t		 spool_nrings(const struct spool *);
size_t		 spool_cap(const struct spool *, unsigned int);
int		 spool_ring_out(const struct spool *, unsigned int);
void		 spool_pipe(const struct spool *, int *, int *);
size_t		 spool_used(const struct spool *, unsigned int);
size_t		 spool_room(const struct spool *, unsigned int);
ssize_t		 spool_recv(struct spool *, unsigned int, int);
size_t		 spool_peek(const struct spool *, unsigned int, struct iovec *);
int64_t		 spool_at(const struct spool *, unsigned int, size_t);
ssize_t		 spool_offset(const struct spool *, unsigned int, int64_t);
void		 spool_fill(struct spool *, unsigned int, size_t, size_t, int);
uint64_t	 spool_word(const struct spool *, unsigned int);
void		 spool_set_word(struct spool *, unsigned int, uint64_t);
int		 spool_word_txn(struct spool *, unsigned int, uint64_t);
int		 spool_take(struct spool *, unsigned int, size_t);
int		 spool_put(struct spool *, unsigned int, const struct iovec *,
		    int);
int		 spool_commit(struct spool *);
void		 spool_abort(struct spool *);
ssize_t		 spool_send(struct spool *, unsigned int, int);
void		 spool_trim(struct spool *, unsigned int);

/* fdstore.c: systemd's file descriptor store, so a crash loses no socket */
#define FDSTORE_NAME_MAX	255
/* A name of the store read back into its parts (fdstore_parse). */
/* the kinds of a client's spool's names: its memfd, its pipe's ends */
#define FDSTORE_SPOOL_KINDS	"qrw"

struct fdstore_part {
	char			 kind;		/* k l m u c v i q r w */
	char			 vm[FDSTORE_NAME_MAX / 2 + 1];	/* "": k */
	unsigned int		 gen;		/* the VM's generation */
	int			 id;		/* a client's: c q r w */
	char			 st;		/* a client's state letter */
	unsigned int		 hash;		/* a path's: k, l, c */
};
void		 fdstore_init(void);
int		 fdstore_enabled(void);
void		 fdstore_notify(const char *);
size_t		 fdstore_flush(void);
size_t		 fdstore_pending(void);
void		 fdstore_set_hook(void (*)(void *), void *);
void		 fdstore_set_max_pending(unsigned int);
void		 fdstore_finish(int);
void		 fdstore_name(char *, size_t, const char *, const char *,
		    unsigned int, const char *, ...)
		    __attribute__((format(printf, 6, 7)));
int		 fdstore_valid_name(const char *);
int		 fdstore_parse(const char *, struct fdstore_part *);
void		 fdstore_name_parts(char *, size_t, const struct fdstore_part *);
void		 fdstore_add(int, const char *);
void		 fdstore_add_bytes(const char *, const void *, size_t);
void		 fdstore_remove(const char *);
void		 fdstore_inherit(const char *);
void		 fdstore_inherit_fd(const char *, int);
void		 fdstore_forget_others(void);
void		 fdstore_save(struct yajl_gen_t *);
void		 fdstore_save_fds(struct yajl_gen_t *);
char		*fdstore_read_bytes(int);

/*
 * restart.c: re-execute qmpmuxd in place, the same pid, handing over
 * every socket and the state (SIGUSR2, the control socket's restart).
 */
void		 restart_init(char **);
int		 restart_state_fd(void);
int		 restart_check(int);
int		 restart(struct server *, struct control *, int, const char *,
		    size_t, char *, size_t);

/* trace.c: the live trace of a VM's messages, for control connections */
enum trace_dir {
	TRACE_CLIENT_IN,	/* read from a client, before any check */
	TRACE_QEMU_OUT,		/* sent to QEMU, with the upstream id */
	TRACE_QEMU_IN,		/* read from QEMU: a reply or an event */
	TRACE_CLIENT_OUT,	/* QEMU's reply, with the client's id */
};
struct trace;
TAILQ_HEAD(trace_list, trace);
/* whether anyone traces vm: all a message costs when nobody does */
#define TRACE_ON(vm)	(!TAILQ_EMPTY(&(vm)->traces))
struct trace	*trace_new(struct vm *, struct trace_list *, struct evbuffer *,
		    size_t, void (*)(void *), void *);
void		 trace_free(struct trace *);
void		 trace_free_all(struct trace_list *);
void		 trace_message(struct vm *, enum trace_dir,
		    const struct client *, const char *, size_t, const char *);
void		 trace_vm_gone(struct vm *);
void		 trace_save(struct trace_list *, struct yajl_gen_t *);

/* dump.c: the whole state, for the log and as JSON */
#define DUMP_VERSION	1	/* of the JSON document; docs/DUMP.md */
struct yajl_gen_t;
const char	*dump_vm_state(const struct vm *);
void		 dump_vm(struct yajl_gen_t *, const struct vm *);
void		 dump_vm_brief(struct yajl_gen_t *, const struct vm *);
char		*dump_json(struct server *, size_t *);
void		 dump_log(struct server *);
int		 dump_write(const char *, const char *, size_t);
char		*dump_all(struct server *, size_t *);

/* metrics.c: the Prometheus text format over HTTP */
struct metrics;
struct metrics	*metrics_new(struct server *, const char *);
void		 metrics_free(struct metrics *);
const char	*metrics_addr(const struct metrics *);
void		 metrics_limits(struct metrics *);

/* vm.c; each counter is a line of counter.c's table too */
struct vm_stats {
	uint64_t		 commands;
	uint64_t		 replies;
	uint64_t		 timeouts_unsent;
	uint64_t		 timeouts_sent;
	uint64_t		 late_replies;
	uint64_t		 unknown_replies;
	uint64_t		 refused;
	uint64_t		 events;
	uint64_t		 event_bytes;
	uint64_t		 reconnects;
	uint64_t		 clients;
	uint64_t		 clients_refused;	/* not in allowed_uids */
	uint64_t		 bytes_from_qemu;	/* its messages, whole */
	uint64_t		 bytes_to_qemu;
	uint64_t		 relieved;		/* priority_relief */
	uint64_t		 refused_by[PRIO_N];	/* by priority class */
	uint64_t		 cached;		/* answered from cache.c */
	uint64_t		 rate_delayed;		/* by an empty bucket */
	uint64_t		 lock_acquired;
	uint64_t		 lock_expired;
	uint64_t		 lock_broken;
	uint64_t		 lock_waited;		/* held back by it */
	uint64_t		 lock_fenced;		/* refused: it was lost */
	/* round trips of commands QEMU answered */
	struct counter_hist	 duration;
	/* in-band commands' time in the queue, by priority class */
	struct counter_hist	 waited[PRIO_N];
	/* the manager's, that came while a lower class's was at QEMU */
	struct counter_hist	 behind_lower;
};

/* The advisory lock of a VM (lock.c). */
struct vm_lock {
	int			 held;		/* by holder, or draining */
	int			 holder;	/* its client number */
	struct client		*owner;		/* NULL once it has gone */
	char			*listener;	/* the holder's */
	pid_t			 pid;
	uid_t			 uid;
	uint64_t		 token;		/* the holder's */
	uint64_t		 last_token;	/* only grows */
	char			*reason;
	double			 hold;		/* its lease, seconds */
	struct timeval		 since;
	struct timeval		 expires;	/* util_now's clock */
	struct event		*lease;
	unsigned int		 draining;	/* a gone holder's at QEMU */
	unsigned int		 nqueued;	/* acquires and releases */
	unsigned int		 nacquires;
	unsigned int		 nblocked;	/* queued, held back by it */
};

struct vm {
	struct server		*server;
	struct event_base	*base;
	struct vm_conf		 conf;
	const char		*name;
	TAILQ_ENTRY(vm)		 entry;		/* the server's lists */
	TAILQ_ENTRY(vm)		 budget_entry;
	int			 budget_paused;

	struct monitor		*mon;
	TAILQ_HEAD(, listener)	 listeners;
	TAILQ_HEAD(, client)	 clients;
	int			 next_client_id;

	/*
	 * Commands: queue holds in-band commands not yet sent, in arrival
	 * order (cmd_pump sends them by class, below); inflight holds
	 * those sent and not yet answered by QEMU (including ones whose
	 * caller has already had a timeout error).
	 * ninflight counts the in-band ones among them, at most
	 * max_inflight; out-of-band commands never wait and never count.
	 */
	TAILQ_HEAD(, cmd)	 queue;
	TAILQ_HEAD(, cmd)	 inflight;
	unsigned int		 nqueued;
	unsigned int		 ninflight;
	uint64_t		 next_cmd_id;
	/*
	 * The queue again by class: each class's commands in arrival
	 * order (its oldest, for relief), how many, the ring of its
	 * clients with a command waiting (round robin), and when relief
	 * last gave it a slot.
	 */
	TAILQ_HEAD(, cmd)	 class_queue[PRIO_N];
	unsigned int		 nclass_queued[PRIO_N];
	TAILQ_HEAD(, client)	 ring[PRIO_N];
	struct timeval		 relieved[PRIO_N];
	/*
	 * When the manager class last had a command queued or at QEMU,
	 * for manager_quiet; the timer that sends a command held by a
	 * rate limit or manager_quiet when its wait is over.
	 */
	struct timeval		 manager_seen;
	struct event		*wake;
	/* refusals are logged at most once a second, with how many more */
	struct timeval		 refused_logged;
	uint64_t		 refused_unlogged;
	struct cache		*cache;		/* cache.c */
	struct vm_lock		 lock;		/* lock.c */

	/*
	 * Event backlog: events read from QEMU and not yet written to
	 * every client they were given to.  The events of one read are one
	 * shared buffer, referenced once from every client's output; batch
	 * is the one being gathered, handed out within the same callback.
	 */
	struct vm_event		*batch;
	size_t			 backlog_events;
	size_t			 backlog_bytes;
	int			 reads_paused;
	struct timeval		 paused_since;
	int			 dying;		/* freed when the backlog is */

	/*
	 * vm_stop: the listeners are closed and the clients closing; stop
	 * runs stop_done from the loop once the last client is freed.
	 */
	struct event		*stop;
	void			(*stop_done)(struct vm *, void *);
	void			*stop_arg;
	struct event		*remove;	/* its upstream gone for good */

	/* a sent command passed its deadline, and QEMU has not answered */
	int			 stalled;
	struct timeval		 stalled_since;

	struct vm_stats		 stats;
	struct trace_list	 traces;	/* who traces it */

	/* after a crash: replies to ids of that epoch go by their id */
	int			 orphans;
	unsigned int		 orphan_epoch;
	/* and those the process before had sent, with their deadlines */
	TAILQ_HEAD(, cmd_flight) flights;
	unsigned int		 gen;		/* its names in the fd store */
	void			*sent_table;	/* state-store.c's */
};

struct vm	*vm_new(struct server *, struct vm_conf *);
int		 vm_start(struct vm *);
void		 vm_tell(struct vm *, enum vm_change, const void *, int);
void		 vm_reconfigure(struct vm *, struct vm_conf *, int);
void		 vm_listen(struct vm *);
void		 vm_log(const struct vm *, int, const char *, ...)
		    LOG_PRINTF(3, 4);
void		 vm_stop(struct vm *, const char *,
		    void (*)(struct vm *, void *), void *);
void		 vm_free(struct vm *);
void		 vm_upstream_ready(struct vm *);
void		 vm_upstream_message(struct vm *, struct qmp_msg *);
void		 vm_upstream_lost(struct vm *, const char *);
void		 vm_upstream_closed(struct vm *);
int		 vm_backlog_full(struct vm *);
void		 vm_events_flush(struct vm *);
void		 vm_client_gone(struct client *);

/* One client's reference to a batch of events, until it has written it. */
struct vm_ref {
	struct vm_event		*ev;
	struct client		*client;	/* NULL once it is freed */
	TAILQ_ENTRY(vm_ref)	 entry;
};
void		 vm_event_done(struct vm *, size_t);

/* monitor.c: the upstream connection to QEMU's QMP socket */
enum monitor_state {
	MONITOR_BACKOFF,	/* waiting to connect (or listen) again */
	MONITOR_CONNECTING,
	MONITOR_LISTENING,	/* listen mode: waiting for QEMU to dial in */
	MONITOR_GREETING,	/* connected, waiting for QEMU's greeting */
	MONITOR_NEGOTIATING,	/* qmp_capabilities sent */
	MONITOR_READY,
	MONITOR_CLOSED,		/* for good: fd mode's QEMU gone, or stopping */
};

/*
 * The upstream.  bev is the one connection to QEMU, whatever the mode.
 * In listen mode evl listens at listen_path for as long as the VM runs
 * (not stopping), and a connection while bev is held is refused: only
 * one QEMU drives a VM.  In fd mode fd is the socket handed over, owned
 * here until bev takes it; either closes it, once.
 */
struct monitor {
	struct vm		*vm;
	enum monitor_state	 state;
	struct timeval		 since;
	struct bufferevent	*bev;
	struct qmp_reader	*reader;
	struct event		*timer;		/* backoff or handshake */
	struct event		*resume;	/* read what is buffered */
	struct evconnlistener	*evl;		/* listen mode */
	char			*listen_path;
	struct event		*accept_retry;	/* after an error or a burst */
	unsigned int		 accepted;	/* util_accept_paced */
	int			 fd;		/* fd mode, until bev has it */
	char			 where[128];	/* the path, or "fd N" */
	int			 stopped;	/* the VM stops: reach QEMU no more */
	double			 backoff;
	char			*greeting;	/* as clients get it, with \r\n */
	size_t			 greeting_len;
	char			*version;	/* "7.2.22", for logs and dump */
	int			 oob;		/* negotiated upstream */
	int			 paused;
	struct event		*hup;		/* is QEMU gone, while paused */
	int			 draining;	/* QEMU gone: take what it wrote */
	int			 resync;	/* after a crash: find a boundary */
	unsigned long		 early;		/* events during the handshake */
};

struct monitor	*monitor_new(struct vm *);
void		 monitor_free(struct monitor *);
int		 monitor_start(struct monitor *);
int		 monitor_adopt(struct monitor *, enum monitor_state, int, int);
void		 monitor_adopt_bytes(struct monitor *, const void *, size_t,
		    const void *, size_t);
void		 monitor_restart(struct monitor *);
void		 monitor_stop(struct monitor *);
int		 monitor_ready(struct monitor *);
void		 monitor_send(struct monitor *, struct evbuffer *);
void		 monitor_pause(struct monitor *);
void		 monitor_unpause(struct monitor *);
const char	*monitor_state_name(enum monitor_state);

/* listener.c */
/*
 * A listener.  Its clients point at it to the end, its conf included:
 * one freed while clients of it are still closing stays, with a conf
 * of its own (gone), until the last of them is freed (nclients).
 */
struct listener {
	struct vm		*vm;
	struct listener_conf	*conf;
	struct evconnlistener	*evl;		/* NULL once closed */
	struct event		*retry;		/* after an error or a burst */
	unsigned int		 accepted;	/* util_accept_paced */
	unsigned int		 nclients;	/* clients pointing at it */
	int			 gone;		/* freed, but for them */
	TAILQ_ENTRY(listener)	 entry;
};

struct listener	*listener_new(struct vm *, struct listener_conf *);
int		 listener_allows(const struct listener *, uid_t);
void		 listener_close(struct listener *);
void		 listener_free(struct listener *);
void		 listener_ref(struct listener *);
void		 listener_unref(struct listener *);

/* client.c: one downstream connection */
enum client_state {
	CLIENT_WAITING,		/* accepted, upstream not ready: no greeting */
	CLIENT_CAPS,		/* greeted, not negotiated */
	CLIENT_READY,		/* negotiated: commands and events */
	CLIENT_CLOSING,		/* flushing its output, then freed */
};

struct client {
	struct vm		*vm;
	struct listener		*listener;
	unsigned int		 listener_hash;	/* of its path: fdstore.c */
	int			 recovered;	/* taken back after a crash */
	int			 id;
	enum client_state	 state;
	int			 fd;		/* its socket */
	struct qmp_reader	*reader;
	/* its input (client-in.c): the ring, read into c->in, the spans */
	struct spool		*spool;
	struct event		*rd;
	struct evbuffer		*in;
	uint64_t		 in_head;	/* stream offset of the head */
	uint64_t		 in_fed;	/* and of what c->in was given */
	int			 in_reading;
	int			 in_full;
	size_t			 in_dropped;	/* by a take-over: crashed on */
	uint64_t		 in_reread;	/* the ring a take-over read */
	int			 in_suspect;	/* it found a crash reading: */
	uint64_t		 in_suspect_off;	/* where, from the head */
	TAILQ_HEAD(client_spans, client_span) spans;
	struct client_span	*span_cur;	/* the message being handled */
	/* its output (client-out.c): the ring, and what waits past it */
	struct event		*wr;
	struct event		*out_idle;	/* then its ring is trimmed */
	TAILQ_HEAD(client_pieces, client_piece) out_more; /* not in the ring */
	TAILQ_HEAD(, client_piece) out_refs;	/* events in it, unsent */
	size_t			 out_more_len;
	size_t			 out_pending;	/* put, not yet committed */
	uint64_t		 out_total;	/* stream offsets: put */
	uint64_t		 out_sent;	/* and sent */
	int			 out_kicked;
	struct event		*timer;		/* greeting or slow-client */
	struct event		*resume;	/* read what is buffered */
	struct event		*reap;		/* free from the loop */
	struct event		*hup;		/* is it gone, while not read */
	pid_t			 pid;
	uid_t			 uid;
	int			 oob;		/* negotiated oob */
	int			 noflush;	/* close without writing more */
	unsigned int		 ncmds;		/* waiting or in flight */
	int			 input_paused;	/* at the pipeline or output bound */
	int			 eof;		/* input ended: answer, then close */
	uint64_t		 bytes_out;	/* put in its output */
	TAILQ_HEAD(client_order, cmd) order; /* its commands unanswered */
	/*
	 * Its commands waiting to be sent, in its order, and its place in
	 * its class's ring of clients with one waiting (cmd.c).
	 */
	TAILQ_HEAD(, cmd)	 queued;
	int			 in_ring;
	TAILQ_ENTRY(client)	 ring_entry;
	struct timeval		 served;	/* its last sent; 0: never */
	/* lock.c: it sent a lock command; it lost the lock (why, token) */
	int			 lock_aware;
	int			 notify_dropped;	/* logged once a run */
	enum lock_why		 lock_fenced;
	uint64_t		 lock_lost;
	/* its listener's rate_limit: the tokens of its bucket, and when */
	double			 tokens;
	struct timeval		 tokens_at;
	/*
	 * The proxy's own replies held behind its commands, in its order,
	 * since QEMU answers all in-band input in order: each goes when
	 * the commands before it are answered.
	 */
	TAILQ_HEAD(, client_held) held;
	TAILQ_HEAD(, vm_ref)	 events;	/* batches not yet written */
	TAILQ_ENTRY(client)	 entry;
};

/*
 * A reply of the proxy's held for a client: after is the last of the
 * client's commands it waits for, the one before it once that one is
 * answered; it goes when none is left.
 */
struct client_held {
	struct evbuffer		*buf;
	struct cmd		*after;
	struct client_span	*span;		/* the message it answers */
	TAILQ_ENTRY(client_held) entry;
};

/*
 * A message of a client's in its ring (client-in.c): its end, as a
 * stream offset and as the ring's position; what it waits for before
 * it may leave the ring.
 */
struct client_span {
	uint64_t		 end;
	int64_t			 at;
	unsigned int		 owners;
	int			 done;
	TAILQ_ENTRY(client_span) entry;
	struct client_span	*wait_next;	/* on a piece of output */
};

/* when a reply of the proxy's goes to its client */
enum client_when {
	CLIENT_NOW,		/* at once: it exists to answer at once */
	CLIENT_IN_ORDER,	/* after the client's commands before it */
};

void		 client_log(const struct client *, int, const char *, ...)
		    LOG_PRINTF(3, 4);
void		 client_error(struct client *, enum client_when,
		    const char *, size_t, const char *, const char *, ...)
		    LOG_PRINTF(6, 7);
void		 client_return(struct client *, enum client_when,
		    const char *, size_t);
void		 client_return_value(struct client *, enum client_when,
		    const char *, size_t, const char *, size_t);
void		 client_notify(struct client *, const char *, size_t);
void		 client_flush(struct client *);
void		 client_adopt_held(struct client *, const void *, size_t);
void		 client_accept(struct listener *, int);
struct client	*client_adopt(struct listener *, int, int, enum client_state,
		    pid_t, uid_t, int, struct spool *, int, const void *,
		    size_t, const void *, size_t);
void		 client_greet(struct client *);
void		 client_close(struct client *, const char *, ...)
		    LOG_PRINTF(2, 3);
void		 client_reply(struct client *, enum client_when,
		    const struct qmp_msg *, const char *, size_t);
void		 client_free(struct client *);
int		 client_gone(struct client *);
void		 client_command_done(struct client *, struct cmd *);
void		 client_event(struct client *, const void *, size_t,
		    void (*)(const void *, size_t, void *), void *);
void		 client_reads_paused(struct client *, int);
void		 client_recovered_ready(struct client *, int, const char *);
const char	*client_state_name(enum client_state);
void		 client_read(struct client *);
void		 client_input_ended(struct client *);
void		 client_written(struct client *, int);
/* client-out.c: a client's output, in a ring a crash does not lose */
#define CLIENT_IN_RING		0	/* the rings of a client's spool */
#define CLIENT_OUT_RING		1
#define CLIENT_OUT_SLACK	(64 << 10)	/* past max_client_output */
#define CLIENT_OUT_IDLE		1	/* seconds empty, then trimmed */
struct client_piece;
size_t		 client_out_cap(const struct vm *);
void		 client_out_init(struct client *, int);
void		 client_out_free(struct client *);
size_t		 client_out_len(const struct client *);
void		 client_out_commit(struct client *);
void		 client_out_put(struct client *, const struct iovec *, int);
void		 client_out_ref(struct client *, const void *, size_t,
		    void (*)(const void *, size_t, void *), void *);
void		 client_out_now(struct client *);
void		 client_out_spill(struct client *, struct evbuffer *);
int		 client_out_hold(struct client *, struct client_span *);
/* client-in.c: a client's input, in a ring a crash does not lose */
int		 client_in_init(struct client *, int, struct spool *, int);
void		 client_in_free(struct client *);
void		 client_in_read(struct client *, int);
void		 client_in_reading(struct client *, int);
void		 client_in_feed(struct client *);
struct client_span *client_in_span(struct client *);
void		 client_in_idle(struct client *);
void		 client_in_done(struct client *, struct client_span *);
void		 client_in_release(struct client *, struct client_span *);
int		 client_in_put(struct client *, const void *, size_t);

/*
 * lock.c: the advisory lock of a VM, QMP downstream extensions named
 * with this prefix (QEMU's rule: __RFQDN_)
 */
#define LOCK_PREFIX	"__org.qmpmux_"
#define LOCK_REASON_MAX	256	/* bytes of a reason */
struct lock_args {
	double		 timeout;
	double		 hold;
	char		*reason;	/* the caller's to free */
	uint64_t	 token;
	int		 has_token;
};
enum lock_op	 lock_op(const char *);
const char	*lock_why_name(enum lock_why);
int		 lock_is_read(const char *);
int		 lock_submit(struct client *, const struct qmp_msg *,
		    enum lock_op, struct lock_args *);
int		 lock_fenced(struct client *, const struct qmp_msg *);
int		 lock_lost(const struct client *, char *, size_t);
int		 lock_holds(const struct vm *, const struct cmd *);
int		 lock_blocks(struct vm *, struct cmd *);
int		 lock_run(struct vm *, struct cmd *);
void		 lock_timeout_desc(const struct vm *, const struct cmd *,
		    char *, size_t);
void		 lock_release(struct vm *, enum lock_why);
void		 lock_client_gone(struct client *);
void		 lock_answered(struct vm *, struct cmd *);
void		 lock_vm_gone(struct vm *);
int		 lock_break(struct vm *);
double		 lock_expires_in(const struct vm *);
void		 lock_adopt(struct vm *, double);

/* cache.c: replies fixed for the life of a QEMU process */
struct cache;
int		 cache_fixed(const struct qmp_msg *);
const struct qmp_msg *cache_find(struct vm *, const char *);
void		 cache_fill(struct vm *, const char *, struct qmp_msg *);
size_t		 cache_bytes(const struct vm *);
const char	*cache_kept(const struct vm *, int);
void		 cache_drop(struct vm *);

/* cmd.c: the per-VM command queue */
/*
 * A command a qmpmuxd before a crash had sent (vm_sent, as the store
 * kept it): its client is answered at its deadline, QEMU's late reply
 * is then dropped (cmd.c).
 */
struct cmd_flight {
	struct vm		*vm;
	struct vm_sent		 s;		/* s.id and s.name: below */
	char			*id;
	char			 name[QMP_NAME_MAX];
	struct event		*deadline;
	TAILQ_ENTRY(cmd_flight)	 entry;
};

struct cmd {
	struct vm		*vm;
	struct client		*client;	/* NULL once answered or gone */
	int			 owner;		/* its id; 0 once it has gone */
	uint64_t		 upstream_id;
	unsigned int		 epoch;		/* of upstream_id */
	char			*client_id;	/* id value bytes, or NULL */
	size_t			 client_id_len;
	char			 name[QMP_NAME_MAX];
	int			 oob;
	int			 sent;
	struct client_span	*span;		/* in its client's ring, until
						   sent or answered */
	int64_t			 at;		/* where the span ends; -1 */
	int			 answered;	/* replied to, or past its deadline */
	int			 expired;	/* sent, and past its deadline */
	int			 waited;	/* could not be sent on arrival */
	struct evbuffer		*wire;		/* as it goes to QEMU */
	struct timeval		 arrived;
	double			 timeout;	/* seconds, as when it came */
	struct event		*deadline;
	enum prio		 prio;		/* its client's class */
	unsigned int		 cost;		/* conf_vm_cost */
	int			 behind;	/* the manager's, behind a lower */
	int			 rate_delayed;	/* counted once */
	int			 cacheable;	/* its reply may fill cache.c */
	int			 mutation;	/* not a read: the lock holds it */
	int			 lock_blocked;	/* the lock holds it back */
	int			 lock_counted;	/* in lock_waited */
	int			 lock_drain;	/* a gone holder's, at QEMU */
	enum lock_op		 lock_op;	/* queued: the lock's own */
	double			 lock_hold;
	char			*lock_reason;
	uint64_t		 lock_token;
	struct client		*queued_by;	/* while queued: whose */
	TAILQ_ENTRY(cmd)	 entry;		/* the VM's queue or inflight */
	TAILQ_ENTRY(cmd)	 order;		/* the client's order */
	TAILQ_ENTRY(cmd)	 class_entry;	/* queued: its class's queue */
	TAILQ_ENTRY(cmd)	 client_entry;	/* queued: its client's */
};

/* a client id longer than this is not carried in the upstream id */
#define CMD_ID_CARRIED	1024
int		 cmd_submit(struct client *, const struct qmp_msg *);
void		 cmd_reply(struct vm *, struct qmp_msg *);
void		 cmd_pump(struct vm *);
void		 cmd_pump_soon(struct vm *);
void		 cmd_adopt(struct cmd *, double);
void		 cmd_flight_adopt(struct vm *, const struct vm_sent *);
int		 cmd_flight_at(struct vm *, int, int64_t);
void		 cmd_flights_free(struct vm *);
void		 cmd_flights_lost(struct vm *, const char *);
void		 cmd_fail_all(struct vm *, const char *);
void		 cmd_answer_all(struct vm *, const char *);
void		 cmd_client_gone(struct client *);
void		 cmd_fence(struct client *, const char *);
int		 cmd_stalled(struct vm *);
void		 cmd_upstream_id(struct evbuffer *, const struct cmd *);
int		 cmd_parse_id(const struct qmp_msg *, unsigned int *,
		    uint64_t *, int *, const char **, size_t *);

/* reply.c: QEMU-style replies made by the proxy */
void		 reply_string(struct evbuffer *, const char *);
void		 reply_error(struct evbuffer *, const char *, size_t,
		    const char *, const char *, ...) LOG_PRINTF(5, 6);
void		 reply_verror(struct evbuffer *, const char *, size_t,
		    const char *, const char *, va_list)
		    __attribute__((format(printf, 5, 0)));
void		 reply_return(struct evbuffer *, const char *, size_t);
void		 reply_return_value(struct evbuffer *, const char *, size_t,
		    const char *, size_t);
void		 reply_id(const struct qmp_msg *, const char **, size_t *);
int		 reply_check_command(const struct qmp_msg *, int, char *,
		    size_t);
struct yajl_val_s;
int		 reply_check_caps(const struct qmp_msg *, int *, char *,
		    size_t);

/* qmpclient.c: the control socket's clients' end */
#define QC_SIGNAL	(-2)	/* ppoll was interrupted */
#define QC_TIMEOUT	(-3)
#define QC_EOF		(-4)
struct qc {
	int			 fd;
	struct evbuffer		*in;
	struct qmp_reader	*reader;
};
int		 qc_init(struct qc *, int, size_t, unsigned int);
void		 qc_clear(struct qc *);
int		 qc_next(struct qc *, struct qmp_msg *, int, const sigset_t *,
		    char *, size_t);
int		 qc_send(struct qc *, const char *, size_t, int, int, char *,
		    size_t);

/* util.c */
int		 util_sun_path(struct sockaddr_un *, const char *);
int		 util_check_sun_path(const char *, char *, size_t);
int		 util_unix_listen(const char *, mode_t);
int		 util_unix_listen_as(const char *, mode_t, uid_t, gid_t, char *,
		    size_t);
struct evconnlistener;
void		 util_accept_paced(struct evconnlistener *, struct event *,
		    unsigned int *);
void		 util_accept_pause(struct evconnlistener *, struct event *);
int		 util_timeval(double, struct timeval *);
double		 util_elapsed(const struct timeval *);
void		 util_now(struct timeval *);
void		 util_since(struct timeval *, double);
void		 util_hex_encode(char *, const void *, size_t);
int		 util_hex_decode(void *, const char *, size_t);
struct bufferevent;
void		 util_bev_input(struct bufferevent *, const void *, size_t);
int		 util_parse_seconds(const char *, double *);
int		 util_parse_size(const char *, size_t *);
struct yajl_val_s;
int		 util_parse_uint(const char *, unsigned int, unsigned int,
		    unsigned int *);
void		 util_bev_writev(struct bufferevent *, const struct iovec *,
		    int);
void		 util_bev_write_buffer(struct bufferevent *, struct evbuffer *);
int		 util_parse_hostport(const char *, struct sockaddr_storage *,
		    socklen_t *);
const char	*util_addr_path(const char *);
unsigned int	 util_hash(const char *);

#endif
