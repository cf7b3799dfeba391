/*
 * Test helpers: real processes (QEMU, qmpmuxd, the fake QEMU), real unix
 * sockets, and a blocking QMP client that reads with the project's own
 * framer.  Every wait has a bound; nothing sleeps to wait for readiness.
 *
 * Binaries come from the environment make check sets: QMPMUXD, QEMU and
 * FAKEQEMU.  A test that needs one that is missing fails.
 */
#ifndef QMPMUX_TESTLIB_H
#define QMPMUX_TESTLIB_H

#include <sys/types.h>
#include <sys/stat.h>
#include <stddef.h>
#include <stdio.h>

#include <check.h>
#include <yajl/yajl_tree.h>

/*
 * The default bound for any wait, times QMPMUX_TEST_SLOW (a whole
 * number, 1 if unset): make check-valgrind runs qmpmuxd and the tests
 * some 20 times slower, and a bound is not a sleep.
 */
#define T_WAIT_MS	(10000 * t_slow())
int		 t_slow(void);

struct t_client;

/* What t_quiet heard: silence is 0, so a stale boolean use fails. */
enum t_heard {
	T_SILENT = 0,	/* connected, and nothing came for the whole wait */
	T_EOF,		/* the peer closed the connection */
	T_MESSAGE,	/* a whole message came */
	T_GARBAGE	/* bytes came that are no message */
};

/* A fresh private directory for this test process, and paths in it. */
const char	*t_dir(void);
char		*t_path(const char *);

/*
 * The common fixture (t_tcase adds it): the sockets in DIR, and the
 * processes on them, 0 when not running.
 */
extern char	*t_qsock;	/* QEMU's QMP socket */
extern char	*t_fsock;	/* the fake QEMU's */
extern char	*t_psock;	/* qmpmuxd's listener */
extern pid_t	 t_qemu_pid, t_fake_pid, t_proxy_pid;
void		 t_setup(void);
void		 t_teardown(void);
void		 t_start_qemu(const char *const *);
void		 t_start_fake(const char *const *, const char *const *);
int		 t_proxy_alive(void);
TCase		*t_tcase(Suite *, const char *, int);
TCase		*t_tcase_with(Suite *, const char *, int, void (*)(void),
		    void (*)(void));

/* Processes.  Output goes to DIR/NAME.log; NULL-terminated argv. */
pid_t		 t_spawn(const char *const *, const char *);
pid_t		 t_spawn_split(const char *const *, const char *, const char *);
pid_t		 t_qemu(const char *);
pid_t		 t_qemu_two(const char *, const char *);
pid_t		 t_qemu_dial(const char *);

/* A probe monitor, for a QEMU started by other means (testlib.c). */
struct t_probe {
	int	 fd[2];
	char	*chardev;	/* -chardev's value; -mon's is T_PROBE_MON */
};
#define T_PROBE_MON	"chardev=probe,mode=control"
void		 t_probe_init(struct t_probe *);
void		 t_probe_wait(struct t_probe *, pid_t);

/* A differential test's two QEMUs: direct, and behind qmpmuxd. */
struct t_diff {
	char	*dsock, *qsock, *psock;
	pid_t	 direct, qemu, proxy;
};
void		 t_diff_start(struct t_diff *);
void		 t_diff_stop(struct t_diff *);
int		 t_diff_same(const char *, const char *);
void		 t_diff_print(FILE *, const char *, size_t);
void		 t_conf_vms(const char *, const char *, int);
void		 t_vms_stop(pid_t *, struct t_client **, int, int);
pid_t		 t_qemu_traced(const char *, const char *);
pid_t		 t_qemu_args(const char *, const char *, const char *const *);
pid_t		 t_qmpmuxd(const char *, const char *, const char *const *);
pid_t		 t_fakeqemu(const char *, const char *const *);
int		 t_stop(pid_t, int);
int		 t_sigstop(pid_t, int);
int		 t_wait_exit(pid_t, int);
int		 t_wait_socket(const char *, int);
long		 t_proc_kb(pid_t, const char *);
int		 t_rss_is_qmpmuxd(void);
const char	*t_bin(const char *);
char		*t_copy_bin(const char *, const char *);
char		*t_vm_path(const char *, int);
int		 t_exited(int, int);
int		 t_is_socket(const char *);

/* A client of a QMP socket. */
struct t_client	*t_client_new(const char *);
struct t_client	*t_client_on(int);
struct t_client	*t_client_ready(const char *);
struct t_client	*t_client_here(const char *);
char		*t_qmpmuxd_conf(const char *);
struct t_client	*t_client_ready_oob(const char *);
struct t_client	*t_client_greeted(const char *);
void		 t_clients_ready(struct t_client **, int, const char *);
void		 t_clients_row(struct t_client **, int, const char *);
void		 t_clients_free(struct t_client **, int);
void		 t_client_free(struct t_client *);
int		 t_client_fd(struct t_client *);
size_t		 t_client_nread(struct t_client *);
void		 t_send(struct t_client *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 t_send_raw(struct t_client *, const void *, size_t);
size_t		 t_send_while_taken(struct t_client *, const char *, size_t,
		    int);
char		*t_recv(struct t_client *, int);
char		*t_recv_now(struct t_client *);
char		*t_recv_reply(struct t_client *, int);
void		 t_recv_greeting(struct t_client *);
void		 t_recv_eq_at(const char *, struct t_client *, const char *);
#define T_STR_(x)		#x
#define T_STR(x)		T_STR_(x)
#define t_recv_eq(c, want)	\
	t_recv_eq_at(__FILE__ ":" T_STR(__LINE__), (c), (want))
int		 t_eof(struct t_client *, int);
void		 t_reply_is(struct t_client *, const char *);
void		 t_event_is(struct t_client *, const char *);
/* QEMU's query-status reply, with an id's JSON text */
#define T_STATUS(id, st, run) "{\"return\": {\"status\": \"" st "\", " \
	"\"singlestep\": false, \"running\": " run "}, \"id\": " id "}"
int		 t_hungup(struct t_client *, int);
int		 t_ready(struct t_client *);
long		 t_count_unread(struct t_client *, const char *);
int		 t_peer_unread(struct t_client *);
long		 t_unread(const char *);
int		 t_wait_unread(const char *, long, int);
long long	 t_vm_taken(const char *, const char *);
int		 t_wait_vm_counter(const char *, const char *, const char *,
		    long long, int);
int		 t_wait_vm_queued(const char *, const char *, long long, int);
int		 t_wait_vm_sent(const char *, const char *, long long, int);
enum t_heard	 t_quiet(struct t_client *, int);

/* Reading replies. */
yajl_val	 t_json(const char *);
const char	*t_get_str(yajl_val, const char *, const char *);
long long	 t_get_int(yajl_val, const char *, const char *);
char		*t_cmd(struct t_client *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 t_cmd_eq_at(const char *, struct t_client *, const char *,
		    const char *);
#define t_cmd_eq(c, cmd, want)	\
	t_cmd_eq_at(__FILE__ ":" T_STR(__LINE__), (c), (cmd), (want))

/* The VM's lock (src/lock.c), as a client asks for it. */
struct t_lock {
	int		 held;
	long long	 token;		/* the holder's, or the last given */
	long long	 client;	/* the holder's number */
	double		 expires;	/* seconds of its lease left */
	char		*waiters;	/* the waiters' array, as text */
};
long long	 t_lock_acquire(struct t_client *, double, double);
void		 t_lock_query(struct t_client *, struct t_lock *);
void		 t_lock_release(struct t_client *, long long);
void		 t_lock_waiting(struct t_client *, const char *, struct t_lock *);

/* Timing and logs. */
long long	 t_clock_ms(void);
int		 t_run(Suite *);
int		 t_log_scan(const char *, const char *, int, int *, long *);
int		 t_log_count(const char *, const char *);
int		 t_log_begun(const char *);
long long	 t_vm_counter(const char *, const char *, const char *);
int		 t_wait_log(const char *, const char *, int);
int		 t_wait_log_n(const char *, const char *, int, int);

/* Another process's fd table, from /proc/PID/fd; its CPU time. */
int		 t_proc_fds(pid_t, const char *);
int		 t_proc_fd_room(pid_t, int);
long long	 t_cpu_ms(pid_t);
int		 t_proc_holds(pid_t, unsigned long);
int		 t_proc_holds_file(pid_t, const struct stat *);
void		 t_wait_fds(pid_t, int);

/*
 * The fake QEMU's flood (--flood N) as one client reads it: events
 * numbered from 0, in order, counted as qmpmuxd counts its backlog.
 */
struct t_flood {
	struct t_client	*c;
	long		 n;		/* events read */
	size_t		 bytes;		/* their bytes, each with "\r\n" */
	size_t		 last;		/* the last one's */
	size_t		 maxlen;	/* the longest one's */
	long		 other;		/* other messages passed over */
};
void		 t_small_quarantine(void);
void		 t_flood_init(struct t_flood *, struct t_client *);
int		 t_flood_read(struct t_flood *, long, size_t);
int		 t_read_flood(struct t_client *, long, size_t *);
long		 t_clog(struct t_client *, const char *);
void		 t_flood_hold(struct t_client *, struct t_flood *, long,
		    size_t);
struct t_client	*t_flood_start(const char *const *, const char *const *,
		    long, size_t, struct t_flood *, long *);

/* Files and text. */
char		*t_slurp(const char *, size_t *);
char		*t_replace(char *, const char *, const char *);

/*
 * The sockets of a restart's state document (tests/state-v1.json's fd
 * numbers N, from 6), at T_STATE_FD(N); a connection's peer end is at
 * T_STATE_PEER(N).
 */
#define T_STATE_FD(n)	(900 + (n))
#define T_STATE_PEER(n)	(950 + (n))
void		 t_state_sockets(void);
void		 t_state_sockets_close(void);
char		*t_state_here(char *);

#endif
