/*
 * qmpmuxctl(1), run as a child process against a live qmpmuxd with a
 * real QEMU: every command, its exit status, its standard output and
 * its standard error, both captured whole.  list and status VM with a
 * VM stalled behind a stopped QEMU; --json of both and dump parsed as
 * JSON; add (a VM served, read-only), remove (its socket gone), reload
 * of a good and of a bad file; and each exit status: 1 for a bad
 * command line, 2 with no daemon, 3 for a refusal, 4 for no such VM.
 * Hostile command names and VM names reach the terminal, and qmpmuxd's
 * log, escaped.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "qmpmux.h"
#include "testlib.h"

#define STATUS	"{\"execute\":\"query-status\",\"id\":1}"
#define RUNNING	"{\"return\": {\"status\": \"running\", \"singlestep\": " \
		"false, \"running\": true}, \"id\": 1}"
#define HEADER	"VM                   STATE            FOR READS    " \
		"CLIENTS QUEUED FLIGHT   BACKLOG  UPSTREAM\n"
#define USAGE	"usage: qmpmuxctl [--control PATH] [--json] list\n"

static char	*ctl;		/* the control socket's path */

/* What one run of qmpmuxctl gave. */
struct run {
	int	 status;	/* its exit status, -1 if it did not exit */
	char	*out;		/* its standard output, whole */
	char	*err;		/* its standard error, whole */
};

/* Append what fd has to *buf (of *len bytes); 0 at its end. */
static int
drain(int fd, char **buf, size_t *len)
{
	char	 chunk[4096];
	ssize_t	 n;

	if ((n = read(fd, chunk, sizeof(chunk))) == -1)
		return (errno == EINTR || errno == EAGAIN ? 1 : 0);
	if (n == 0)
		return (0);
	ck_assert_ptr_nonnull(*buf = realloc(*buf, *len + (size_t)n + 1));
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return (1);
}

/*
 * Run qmpmuxctl with argv (NULL-terminated, after the program's name),
 * reading its two streams until both end, within the bound, then its
 * exit.
 */
static struct run
run_argv(const char *const *argv)
{
	const char	*av[32];
	struct run	 r = { -1, NULL, NULL };
	struct pollfd	 pfd[2];
	size_t		 olen = 0, elen = 0, i, n = 0;
	long long	 end = t_clock_ms() + T_WAIT_MS;
	pid_t		 pid, parent = getpid();
	int		 po[2], pe[2], left, open = 2;

	av[n++] = t_bin("QMPMUXCTL");
	for (i = 0; argv[i] != NULL && n < 31; i++)
		av[n++] = argv[i];
	av[n] = NULL;
	ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		/* its default socket is the host's: only what argv says */
		unsetenv("QMPMUX_CONTROL");
		/* exec takes char *const[]; copy the pointers */
		{
			char	*xv[32];

			memcpy(xv, av, (n + 1) * sizeof(av[0]));
			execv(xv[0], xv);
		}
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	r.out = strdup("");
	r.err = strdup("");
	ck_assert(r.out != NULL && r.err != NULL);
	pfd[0].fd = po[0];
	pfd[1].fd = pe[0];
	while (open > 0 && (left = (int)(end - t_clock_ms())) > 0) {
		pfd[0].events = pfd[1].events = POLLIN;
		if (poll(pfd, 2, left) <= 0)
			continue;
		if (pfd[0].fd != -1 && pfd[0].revents != 0 &&
		    !drain(po[0], &r.out, &olen)) {
			pfd[0].fd = -1;
			open--;
		}
		if (pfd[1].fd != -1 && pfd[1].revents != 0 &&
		    !drain(pe[0], &r.err, &elen)) {
			pfd[1].fd = -1;
			open--;
		}
	}
	close(po[0]);
	close(pe[0]);
	ck_assert_msg(open == 0, "qmpmuxctl %s: its output did not end",
	    argv[0] != NULL ? argv[0] : "");
	r.status = t_wait_exit(pid, T_WAIT_MS);
	ck_assert_msg(r.status != -1 && WIFEXITED(r.status),
	    "qmpmuxctl %s: did not exit (status %d)",
	    argv[0] != NULL ? argv[0] : "", r.status);
	r.status = WEXITSTATUS(r.status);
	return (r);
}

/* Run qmpmuxctl --control CTL with the arguments that follow. */
#define run(...)	run_argv((const char *const []){ "--control", ctl, \
			    __VA_ARGS__, NULL })

/* Free what a run kept. */
static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Assert a run's exit status, its whole stderr (want NULL: any). */
#define run_check(r, st, want_err) do {					\
	ck_assert_msg((r).status == (st), "exit status %d, expected %d; "	\
	    "stdout:\n%s\nstderr:\n%s", (r).status, (st), (r).out, (r).err);	\
	if ((want_err) != NULL)						\
		ck_assert_str_eq((r).err, (const char *)(want_err));		\
} while (0)

/*
 * Start QEMU and qmpmuxd in front of it, with a 1 s command timeout, its
 * control socket and its dump file in the test's directory.
 */
static void
start(void)
{
	char		*dump = t_path("dump.json");
	const char	*opts[] = { "--command-timeout", "1", "--dump-file",
			    dump, "--control", NULL, NULL };

	ctl = t_path("c.sock");
	opts[5] = ctl;
	t_start_qemu(opts);
	ck_assert_int_eq(t_wait_socket(ctl, T_WAIT_MS), 0);
	free(dump);
}

/* The line of out that begins with prefix, or NULL. */
static const char *
line_of(const char *out, const char *prefix)
{
	const char	*p;

	for (p = out; p != NULL && *p != '\0'; ) {
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			return (p);
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return (NULL);
}

/* Count the lines of out. */
static int
count_lines(const char *out)
{
	int	 n = 0;

	for (; *out != '\0'; out++)
		if (*out == '\n')
			n++;
	return (n);
}

/* The value at a path of up to three keys, of type t, or NULL. */
static yajl_val
jget(yajl_val v, const char *a, const char *b, const char *c, yajl_type t)
{
	const char	*path[4] = { a, b, c, NULL };

	return (yajl_tree_get(v, path, t));
}

/* An array's i-th element; fails the test when there is none. */
static yajl_val
jat(yajl_val a, size_t i)
{
	ck_assert_msg(a != NULL && YAJL_IS_ARRAY(a) && i < a->u.array.len,
	    "no element %zu", i);
	return (a->u.array.values[i]);
}

/*
 * A stopped QEMU: a command sent past its 1 s deadline stalls the VM
 * (the client has the timeout error).  list shows the header, the VM
 * as STALLED and the line that counts it; status VM shows the command
 * TIMED OUT and the client, with the test's pid; --json of both has
 * the members that say so.  Once QEMU goes on, list has no such line.
 */
START_TEST(test_list_status_stalled)
{
	struct t_client	*a;
	struct run	 r;
	yajl_val	 v, vm, x;
	char		 want[256];
	const char	*l;

	start();
	/* a client is greeted once the VM is ready */
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	r = run("list");
	run_check(r, 0, "");
	ck_assert_ptr_nonnull(l = line_of(r.out, "test "));
	ck_assert_msg(strncmp(r.out, HEADER, strlen(HEADER)) == 0, "%s",
	    r.out);
	ck_assert_int_eq(count_lines(r.out), 2);
	ck_assert_ptr_nonnull(strstr(l, " ready "));
	snprintf(want, sizeof(want), "  connect:%s\n", t_qsock);
	ck_assert_ptr_nonnull(strstr(l, want));
	run_free(&r);

	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	t_send(a, "%s\n", STATUS);
	/* the deadline passed: the command stalls the VM from now on */
	t_recv_eq(a, "{\"id\": 1, \"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"qmpmux: QEMU did not reply to query-status within "
	    "1s; it was sent and may still complete\"}}");

	r = run("list");
	run_check(r, 0, "");
	ck_assert_msg(strncmp(r.out, HEADER, strlen(HEADER)) == 0, "%s",
	    r.out);
	ck_assert_ptr_nonnull(l = line_of(r.out, "test "));
	ck_assert_msg(strncmp(l, "test                 STALLED ", 29) == 0,
	    "%s", r.out);
	ck_assert_ptr_nonnull(strstr(l, " running        1      0      1 "));
	ck_assert_msg(strstr(r.out, "\n\n1 VM STALLED or LOST: qmpmuxctl "
	    "status VM shows who waits on it\n") != NULL, "%s", r.out);
	ck_assert_int_eq(count_lines(r.out), 4);
	run_free(&r);

	r = run("status", "test");
	run_check(r, 0, "");
	ck_assert_msg(strncmp(r.out, "vm test: STALLED for ", 21) == 0, "%s",
	    r.out);
	ck_assert_ptr_nonnull(strstr(r.out, " (config, defined at command "
	    "line)\n"));
	ck_assert_ptr_nonnull(l = line_of(r.out, "    query-status "));
	ck_assert_msg(strstr(l, " client 1    sent ") != NULL && strstr(l,
	    " ago, TIMED OUT, QEMU has not answered\n") != NULL, "%s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "\n  commands  1/1 in flight, "
	    "0 queued (manager 0, normal 0, background 0; at most 64 "
	    "each)\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "\n  clients   1\n"));
	snprintf(want, sizeof(want), "    1    pid %-7ld uid %-6ld ",
	    (long)getpid(), (long)getuid());
	ck_assert_msg((l = line_of(r.out, want)) != NULL, "no \"%s\" in\n%s",
	    want, r.out);
	snprintf(want, sizeof(want), " %s\n", t_psock);
	ck_assert_ptr_nonnull(strstr(l, want));
	ck_assert_ptr_nonnull(strstr(r.out, "\n  counters  1 commands, 1 "
	    "timeouts, 0 late replies dropped, "));
	run_free(&r);

	r = run("--json", "list");
	run_check(r, 0, "");
	ck_assert_msg((v = t_json(r.out)) != NULL, "%s", r.out);
	ck_assert(YAJL_IS_ARRAY(v));
	ck_assert_int_eq(v->u.array.len, 1);
	vm = jat(v, 0);
	ck_assert_str_eq(t_get_str(vm, "name", NULL), "test");
	ck_assert_str_eq(t_get_str(vm, "state", NULL), "stalled");
	ck_assert_str_eq(t_get_str(vm, "origin", NULL), "config");
	ck_assert_str_eq(t_get_str(vm, "upstream", "mode"), "connect");
	ck_assert_str_eq(t_get_str(vm, "upstream", "path"), t_qsock);
	ck_assert_ptr_nonnull(jget(vm, "stalled_for", NULL, NULL,
	    yajl_t_number));
	ck_assert_int_eq(t_get_int(vm, "clients", NULL), 1);
	ck_assert_int_eq(t_get_int(vm, "in_flight", NULL), 1);
	ck_assert_int_eq(t_get_int(vm, "queued", NULL), 0);
	ck_assert_str_eq(YAJL_GET_STRING(jat(jget(vm, "listeners", NULL,
	    NULL, yajl_t_array), 0)), t_psock);
	yajl_tree_free(v);
	run_free(&r);

	r = run("--json", "status", "test");
	run_check(r, 0, "");
	ck_assert_msg((v = t_json(r.out)) != NULL, "%s", r.out);
	ck_assert_str_eq(t_get_str(v, "name", NULL), "test");
	ck_assert_str_eq(t_get_str(v, "state", NULL), "stalled");
	ck_assert_str_eq(t_get_str(v, "upstream", "state"), "ready");
	ck_assert_int_eq(t_get_int(v, "commands", "in_flight"), 1);
	x = jat(jget(v, "commands", "list", NULL, yajl_t_array), 0);
	ck_assert_str_eq(t_get_str(x, "command", NULL), "query-status");
	ck_assert_int_eq(t_get_int(x, "client", NULL), 1);
	ck_assert_ptr_nonnull(jget(x, "sent", NULL, NULL, yajl_t_true));
	ck_assert_ptr_nonnull(jget(x, "timed_out", NULL, NULL, yajl_t_true));
	x = jat(jget(v, "clients", NULL, NULL, yajl_t_array), 0);
	ck_assert_int_eq(t_get_int(x, "id", NULL), 1);
	ck_assert_int_eq(t_get_int(x, "pid", NULL), getpid());
	ck_assert_int_eq(t_get_int(x, "uid", NULL), getuid());
	ck_assert_str_eq(t_get_str(x, "listener", NULL), t_psock);
	ck_assert_int_eq(t_get_int(v, "counters", "timeouts_sent"), 1);
	yajl_tree_free(v);
	run_free(&r);

	/* QEMU goes on: its late reply is dropped, and the VM is ready */
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	t_cmd_eq(a, "{\"execute\":\"query-status\",\"id\":2}", "{\"return\": "
	    "{\"status\": \"running\", \"singlestep\": false, \"running\": "
	    "true}, \"id\": 2}");
	r = run("list");
	run_check(r, 0, "");
	ck_assert_int_eq(count_lines(r.out), 2);
	ck_assert_ptr_nonnull(l = line_of(r.out, "test "));
	ck_assert_ptr_nonnull(strstr(l, " ready "));
	run_free(&r);
	t_client_free(a);
}
END_TEST

/*
 * dump prints the dump document: format qmpmux-dump, version 1, this
 * qmpmuxd's pid and its VM.
 */
START_TEST(test_dump)
{
	struct t_client	*a;
	struct run	 r;
	yajl_val	 v;

	start();
	/* a client is greeted once the VM is ready */
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	r = run("dump");
	run_check(r, 0, "");
	ck_assert_msg((v = t_json(r.out)) != NULL, "%s", r.out);
	ck_assert_str_eq(t_get_str(v, "format", NULL), "qmpmux-dump");
	ck_assert_int_eq(t_get_int(v, "version", NULL), 1);
	ck_assert_int_eq(t_get_int(v, "pid", NULL), t_proxy_pid);
	ck_assert_str_eq(t_get_str(jat(jget(v, "vms", NULL, NULL,
	    yajl_t_array), 0), "name", NULL), "test");
	ck_assert_str_eq(t_get_str(jat(jget(v, "vms", NULL, NULL,
	    yajl_t_array), 0), "state", NULL), "ready");
	yajl_tree_free(v);
	run_free(&r);
	/* --json changes nothing: dump is JSON already */
	r = run("--json", "dump");
	run_check(r, 0, "");
	ck_assert_msg((v = t_json(r.out)) != NULL, "%s", r.out);
	ck_assert_str_eq(t_get_str(v, "format", NULL), "qmpmux-dump");
	yajl_tree_free(v);
	run_free(&r);
	t_client_free(a);
}
END_TEST

/*
 * add VM with a listener's key and a VM's: the new VM, on a QEMU of its
 * own, serves a client, and its read-only listener refuses stop;
 * status --json shows both keys.  A second add of the name is refused
 * (3, the daemon's reason on stderr).  remove takes its socket away and
 * ends its client; then the name is unknown (4).
 */
START_TEST(test_add_remove)
{
	struct t_client	*a;
	struct run	 r;
	struct stat	 st;
	yajl_val	 v;
	char		*q2 = t_path("q2.sock"), *l2 = t_path("web.sock"),
			*up, *ls;
	pid_t		 qemu2;

	start();
	qemu2 = t_qemu(q2);
	if (asprintf(&up, "upstream=connect:%s", q2) == -1 ||
	    asprintf(&ls, "listen=%s", l2) == -1)
		abort();
	r = run("add", "web", up, ls, "read_only=yes", "command_timeout=5");
	run_check(r, 0, "");
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	ck_assert_int_eq(t_wait_socket(l2, T_WAIT_MS), 0);
	ck_assert_ptr_nonnull(a = t_client_ready(l2));
	t_cmd_eq(a, STATUS, RUNNING);
	t_cmd_eq(a, "{\"execute\": \"stop\", \"id\": 2}", "{\"id\": 2, "
	    "\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The "
	    "command stop has been disabled for this instance\"}}");

	r = run("--json", "status", "web");
	run_check(r, 0, "");
	ck_assert_msg((v = t_json(r.out)) != NULL, "%s", r.out);
	ck_assert_str_eq(t_get_str(v, "origin", NULL), "control");
	ck_assert_str_eq(t_get_str(v, "upstream", "path"), q2);
	ck_assert_str_eq(YAJL_GET_NUMBER(jget(v, "commands",
	    "command_timeout", NULL, yajl_t_number)), "5.000");
	ck_assert_str_eq(t_get_str(jat(jget(v, "listeners", NULL, NULL,
	    yajl_t_array), 0), "path", NULL), l2);
	ck_assert_ptr_nonnull(jget(jat(jget(v, "listeners", NULL, NULL,
	    yajl_t_array), 0), "read_only", NULL, NULL, yajl_t_true));
	yajl_tree_free(v);
	run_free(&r);
	r = run("list");
	run_check(r, 0, "");
	ck_assert_int_eq(count_lines(r.out), 3);
	ck_assert_ptr_nonnull(line_of(r.out, "test "));
	ck_assert_ptr_nonnull(line_of(r.out, "web "));
	run_free(&r);

	/* the name is taken: refused, and the first VM serves on */
	r = run("add", "web", up, ls);
	run_check(r, 3, "qmpmuxctl: qmpmux: a VM named web already runs\n");
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	t_cmd_eq(a, STATUS, RUNNING);

	r = run("remove", "web");
	run_check(r, 0, "");
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	ck_assert(t_eof(a, T_WAIT_MS));
	ck_assert_int_eq(stat(l2, &st), -1);
	ck_assert_int_eq(errno, ENOENT);

	r = run("remove", "web");
	run_check(r, 4, "qmpmuxctl: qmpmux: no VM named web\n");
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	r = run("status", "web");
	run_check(r, 4, "qmpmuxctl: qmpmux: no VM named web\n");
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	r = run("--json", "status", "nope");
	run_check(r, 4, "qmpmuxctl: qmpmux: no VM named nope\n");
	ck_assert_str_eq(r.out, "");
	run_free(&r);

	t_client_free(a);
	kill(qemu2, SIGKILL);
	t_wait_exit(qemu2, T_WAIT_MS);
	free(up);
	free(ls);
	free(q2);
	free(l2);
}
END_TEST

/* Write a config file in the test's directory. */
static void
write_conf(const char *path, const char *text)
{
	FILE	*f;

	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/*
 * reload rereads the file: a VM it now names is added.  A broken file
 * is refused (3) with the reason on stderr, and the VMs stay.
 */
START_TEST(test_reload)
{
	struct run	 r;
	char		*conf = t_path("q.conf"), *text, *la = t_path("a.sock"),
			*lb = t_path("b.sock"), *dump = t_path("dump.json"),
			*want;
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "-f", conf,
			    "--dump-file", dump, "--control", NULL, NULL };

	t_qemu_pid = t_qemu(t_qsock);
	if (asprintf(&text, "[vm a]\nupstream = connect:%s\n"
	    "[listener a %s]\n", t_qsock, la) == -1)
		abort();
	write_conf(conf, text);
	free(text);
	ctl = t_path("c.sock");
	argv[7] = ctl;
	t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
	ck_assert_int_eq(t_wait_socket(ctl, T_WAIT_MS), 0);

	r = run("reload");
	run_check(r, 0, "");
	ck_assert_str_eq(r.out, "");
	run_free(&r);

	if (asprintf(&text, "[vm a]\nupstream = connect:%s\n"
	    "[listener a %s]\n[vm b]\nupstream = connect:%s.none\n"
	    "[listener b %s]\n", t_qsock, la, t_qsock, lb) == -1)
		abort();
	write_conf(conf, text);
	free(text);
	r = run("reload");
	run_check(r, 0, "");
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	ck_assert(t_is_socket(lb));
	r = run("list");
	run_check(r, 0, "");
	ck_assert_ptr_nonnull(line_of(r.out, "a "));
	ck_assert_ptr_nonnull(line_of(r.out, "b "));
	run_free(&r);

	write_conf(conf, "[vm a]\nupstream = connect:/x\nnope = 1\n");
	r = run("reload");
	if (asprintf(&want, "qmpmuxctl: qmpmux: reload failed: %s:3: ",
	    conf) == -1)
		abort();
	run_check(r, 3, NULL);
	ck_assert_msg(strncmp(r.err, want, strlen(want)) == 0 &&
	    strstr(r.err, "nope") != NULL && count_lines(r.err) == 1,
	    "stderr: %s", r.err);
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	free(want);
	/* nothing changed */
	r = run("list");
	run_check(r, 0, "");
	ck_assert_int_eq(count_lines(r.out), 3);
	ck_assert_ptr_nonnull(line_of(r.out, "a "));
	ck_assert_ptr_nonnull(line_of(r.out, "b "));
	run_free(&r);
	ck_assert(t_is_socket(la));
	ck_assert(t_is_socket(lb));

	free(conf);
	free(la);
	free(lb);
	free(dump);
}
END_TEST

/*
 * No daemon: no socket at the path, a plain file there, a socket no one
 * listens on: 2, with the reason.  A bad command line is 1 and the
 * usage, before any daemon is asked.  --help and --version are 0.
 */
START_TEST(test_exit_codes)
{
	static const char *const bad[][5] = {
		{ NULL },
		{ "bogus", NULL },
		{ "list", "extra", NULL },
		{ "dump", "extra", NULL },
		{ "reload", "extra", NULL },
		{ "status", NULL },
		{ "status", "a", "b", NULL },
		{ "remove", NULL },
		{ "add", "vm", NULL },
		{ "--nope", "list", NULL },
		{ "--control", NULL },
	};
	struct run	 r;
	char		*want, *file = t_path("plain"), *stale;
	const char	*argv[8];
	size_t		 i, j;
	int		 fd;

	ctl = t_path("none.sock");
	r = run("list");
	if (asprintf(&want, "qmpmuxctl: cannot reach qmpmuxd at %s: No such "
	    "file or directory\n", ctl) == -1)
		abort();
	run_check(r, 2, want);
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	free(want);
	r = run("--json", "status", "x");
	run_check(r, 2, NULL);
	run_free(&r);

	free(ctl);
	ctl = file;
	ck_assert_int_ne(fd = open(file, O_WRONLY | O_CREAT, 0600), -1);
	close(fd);
	r = run("dump");
	if (asprintf(&want, "qmpmuxctl: cannot reach qmpmuxd at %s: "
	    "Connection refused\n", ctl) == -1)
		abort();
	run_check(r, 2, want);
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	free(want);

	/* a socket whose daemon is gone */
	stale = t_path("stale.sock");
	{
		const char	*qargv[] = { t_bin("QMPMUXD"), "-d", "--name",
				    "x", "--upstream", "/nonexistent",
				    "--listen", t_psock, "--control", stale,
				    NULL };

		t_proxy_pid = t_spawn(qargv, "qmpmuxd.log");
		ck_assert_int_eq(t_wait_socket(stale, T_WAIT_MS), 0);
		/* killed, it cannot remove its socket */
		t_stop(t_proxy_pid, SIGKILL);
		t_proxy_pid = 0;
	}
	ck_assert(t_is_socket(stale));
	ctl = stale;
	r = run("reload");
	if (asprintf(&want, "qmpmuxctl: cannot reach qmpmuxd at %s: "
	    "Connection refused\n", ctl) == -1)
		abort();
	run_check(r, 2, want);
	run_free(&r);
	free(want);

	/* usage errors need no daemon: ctl is the stale socket */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		argv[0] = "--control";
		argv[1] = ctl;
		for (j = 0; bad[i][j] != NULL; j++)
			argv[2 + j] = bad[i][j];
		argv[2 + j] = NULL;
		/* "--control" alone: no path after it */
		r = run_argv(i == sizeof(bad) / sizeof(bad[0]) - 1 ?
		    argv + 2 : argv);
		run_check(r, 1, NULL);
		ck_assert_msg(strncmp(r.err, USAGE, strlen(USAGE)) == 0 ||
		    strstr(r.err, "qmpmuxctl: ") != NULL, "case %zu: %s", i,
		    r.err);
		ck_assert_str_eq(r.out, "");
		run_free(&r);
	}
	r = run("add", "vm", "upstream");
	run_check(r, 1, "qmpmuxctl: upstream: expected KEY=VALUE\n");
	run_free(&r);
	r = run("add", "vm", "upstream=connect:/x");
	run_check(r, 1, "qmpmuxctl: add vm: give at least one listen=PATH\n");
	run_free(&r);
	r = run("add", "vm", "upstream=connect:/x", "read_only=yes",
	    "listen=/y");
	run_check(r, 1, "qmpmuxctl: read_only: a listener's key goes after "
	    "its listen=PATH\n");
	run_free(&r);

	r = run_argv((const char *const []){ "--help", NULL });
	run_check(r, 0, "");
	ck_assert_int_eq(strncmp(r.out, USAGE, strlen(USAGE)), 0);
	run_free(&r);
	r = run_argv((const char *const []){ "--version", NULL });
	run_check(r, 0, "");
	ck_assert_str_eq(r.out, "qmpmuxctl " PACKAGE_VERSION "\n");
	run_free(&r);
	free(file);
	free(stale);
}
END_TEST

/*
 * The escaped form itself (utf8_escape, which the log and qmpmuxctl
 * share): each kind of byte as a person is shown it, as text and as
 * JSON, and a form cut short at its bound, never inside an escape.
 */
START_TEST(test_escape_form)
{
	static const struct {
		const char	*in;
		size_t		 len;
		int		 flags;
		const char	*out;
	} cases[] = {
#define TEXT(in, out)	{ in, sizeof(in) - 1, 0, out }
#define JSON(in, out)	{ in, sizeof(in) - 1, UTF8_ESCAPE_JSON, out }
		TEXT("plain \xc3\xa9 \xc2\xa0 \xf0\x9f\x98\x80", "plain \xc3\xa9 "
		    "\xc2\xa0 \xf0\x9f\x98\x80"),
		TEXT("a\\b", "a\\\\b"),
		TEXT("\t\n\r", "\\t\\n\\r"),
		TEXT("\x1b[2J\x07\x7f\x01", "\\x1b[2J\\x07\\x7f\\x01"),
		TEXT("a\0b", "a\\x00b"),
		TEXT("\xc2\x9b" "2J\xc2\x80", "\\xc2\\x9b" "2J\\xc2\\x80"),
		TEXT("\xff\xc3", "\\xff\\xc3"),
		TEXT("\xc0\x80", "\\xc0\\x80"),
		TEXT("\xed\xa0\x80", "\\xed\\xa0\\x80"),
		TEXT("\xe2\x82", "\\xe2\\x82"),
		JSON("{\"a\\\"\": \"\x7f\xc2\x9b\xc0\x80\xc3\xa9\"}\n",
		    "{\"a\\\"\": \"\\u007F\\u009B\\u0000\xc3\xa9\"}\n"),
		JSON("[\t\"\x01\xff\"]\r\n", "[\t\"\\u0001\\uFFFD\"]\r\n"),
#undef TEXT
#undef JSON
	};
	char	 buf[128];
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_uint_eq(utf8_escape(buf, sizeof(buf), cases[i].in,
		    cases[i].len, cases[i].flags), strlen(cases[i].out));
		ck_assert_str_eq(buf, cases[i].out);
		ck_assert_uint_eq(utf8_escape(NULL, 0, cases[i].in,
		    cases[i].len, cases[i].flags), strlen(cases[i].out));
	}
	/* "ab\x1bcd" needs 8 bytes; what does not fit is left out whole */
	ck_assert_uint_eq(utf8_escape(buf, 6, "ab\x1b" "cd", 5, 0), 8);
	ck_assert_str_eq(buf, "ab");
	ck_assert_uint_eq(utf8_escape(buf, 7, "ab\x1b" "cd", 5, 0), 8);
	ck_assert_str_eq(buf, "ab\\x1b");
	ck_assert_uint_eq(utf8_escape(buf, 9, "ab\x1b" "cd", 5, 0), 8);
	ck_assert_str_eq(buf, "ab\\x1bcd");
}
END_TEST

/*
 * Hostile command names, as a read-only client may send them (each
 * starts with query-): as JSON text, as the bytes they stand for, and
 * as a person must be shown them (utf8_escape).  The first moves the
 * cursor, sets the terminal's title, clears the screen and starts a
 * line of its own; the second has a C1 CSI, DEL and a backslash.
 */
#define EVIL1_JSON	"query-\\u001b]0;PWNED\\u0007\\u001b[2J\\nqmpmuxd: " \
			"FORGED LINE"
#define EVIL1		"query-\x1b]0;PWNED\x07\x1b[2J\nqmpmuxd: FORGED LINE"
#define EVIL1_SHOWN	"query-\\x1b]0;PWNED\\x07\\x1b[2J\\nqmpmuxd: FORGED " \
			"LINE"
#define EVIL2_JSON	"query-\\u009b2J\\u007f\\\\"
#define EVIL2		"query-\xc2\x9b" "2J\x7f\\"
#define EVIL2_SHOWN	"query-\\xc2\\x9b" "2J\\x7f\\\\"

/*
 * The first byte of text that a terminal would obey rather than show:
 * a control but newline, DEL, or a C1 control in UTF-8 (C2 80 to C2
 * 9F); its offset, or -1.  A line that a client began (one starting
 * "qmpmuxd: FORGED") counts as well.
 */
static long
unsafe_at(const char *text, size_t len)
{
	const unsigned char	*p = (const unsigned char *)text;
	size_t			 i;

	for (i = 0; i < len; i++) {
		if ((p[i] < 0x20 && p[i] != '\n') || p[i] == 0x7f ||
		    (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 &&
		    p[i + 1] <= 0x9f))
			return ((long)i);
		if ((i == 0 || p[i - 1] == '\n') && strncmp(text + i,
		    "qmpmuxd: FORGED", 15) == 0)
			return ((long)i);
	}
	return (-1);
}

/* Assert that what a person reads in text is all shown, not obeyed. */
#define assert_safe(what, text, len) do {				\
	long	 at_ = unsafe_at((text), (len));				\
									\
	ck_assert_msg(at_ == -1, "%s: byte 0x%02x at %ld is not escaped: "	\
	    "%s", (what), at_ >= 0 ? (unsigned char)(text)[at_] : 0, at_,	\
	    (text));							\
} while (0)

/* The whole of a file in the test's directory, and its length. */
static char *
read_all(const char *name, size_t *len)
{
	char	*path = t_path(name), *text;

	text = t_slurp(path, len);
	free(path);
	return (text);
}

/*
 * Bytes of a client's choosing reach a person escaped.  A client of a
 * read-only listener sends two hostile commands to a stopped QEMU,
 * which time out (1 s), are dumped (SIGUSR1 and qmpmuxctl dump) and,
 * once QEMU goes on, answered late.  qmpmuxd's log, and what
 * qmpmuxctl's list, status and dump print, hold no control byte but
 * newlines and no line the client began; the names are there escaped;
 * --json and the dump file are JSON with the names exactly.
 */
START_TEST(test_escape)
{
	/* each view, and what it is: a table, JSON of a VM or a dump */
	static const struct {
		const char	*args[4];
		enum { TABLE, VM, DUMP } is;
	} views[] = {
		{ { "status", "test", NULL }, TABLE },
		{ { "list", NULL }, TABLE },
		{ { "dump", NULL }, DUMP },
		{ { "--json", "status", "test", NULL }, VM },
		{ { "--json", "list", NULL }, TABLE },
	};
	char		*dump = t_path("dump.json"), *ro = t_path("ro.sock"),
			*text, *m;
	const char	*opts[] = { "--command-timeout", "1", "--max-inflight",
			    "2", "--dump-file", dump, "--control", NULL,
			    "--read-only", "--listen", ro, "--full-access",
			    NULL };
	const char	*argv[8];
	struct t_client	*a;
	struct run	 r;
	yajl_val	 v, list;
	size_t		 i, j, len;

	ctl = t_path("c.sock");
	opts[7] = ctl;
	t_start_qemu(opts);
	ck_assert_int_eq(t_wait_socket(ctl, T_WAIT_MS), 0);
	ck_assert_ptr_nonnull(a = t_client_ready(ro));
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	t_send(a, "{\"execute\": \"" EVIL1_JSON "\", \"id\": 1}");
	t_send(a, "{\"execute\": \"" EVIL2_JSON "\", \"id\": 2}");
	for (i = 0; i < 2; i++) {
		ck_assert_ptr_nonnull(m = t_recv(a, T_WAIT_MS));
		ck_assert_msg(strstr(m, "did not reply to query-") != NULL,
		    "%s", m);
		free(m);
	}

	for (i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
		argv[0] = "--control";
		argv[1] = ctl;
		for (j = 0; views[i].args[j] != NULL; j++)
			argv[2 + j] = views[i].args[j];
		argv[2 + j] = NULL;
		r = run_argv(argv);
		run_check(r, 0, "");
		assert_safe(views[i].args[0], r.out, strlen(r.out));
		if (strcmp(views[i].args[0], "status") == 0)
			ck_assert_msg(strstr(r.out, "    " EVIL1_SHOWN
			    " client 1 ") != NULL && strstr(r.out, "    "
			    EVIL2_SHOWN " ") != NULL, "%s", r.out);
		if (views[i].is != TABLE) {
			/* the names, exactly, in JSON */
			ck_assert_msg((v = t_json(r.out)) != NULL, "%s",
			    r.out);
			list = jget(views[i].is == DUMP ?
			    jat(jget(v, "vms", NULL, NULL, yajl_t_array), 0) :
			    v, "commands", "list", NULL, yajl_t_array);
			ck_assert_str_eq(t_get_str(jat(list, 0), "command",
			    NULL), EVIL1);
			ck_assert_str_eq(t_get_str(jat(list, 1), "command",
			    NULL), EVIL2);
			yajl_tree_free(v);
		}
		run_free(&r);
	}

	/* the dump in the log and in its file */
	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR1), 0);
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "dump: written to ", 2,
	    T_WAIT_MS), 0);
	text = read_all("dump.json", &len);
	ck_assert_msg((v = t_json(text)) != NULL, "%s", text);
	list = jget(jat(jget(v, "vms", NULL, NULL, yajl_t_array), 0),
	    "commands", "list", NULL, yajl_t_array);
	ck_assert_str_eq(t_get_str(jat(list, 0), "command", NULL), EVIL1);
	ck_assert_str_eq(t_get_str(jat(list, 1), "command", NULL), EVIL2);
	yajl_tree_free(v);
	free(text);

	/* QEMU goes on, and its two late replies are dropped */
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	ck_assert_int_eq(t_wait_log_n("qmpmuxd.log", "late reply to ", 2,
	    T_WAIT_MS), 0);
	text = read_all("qmpmuxd.log", &len);
	assert_safe("qmpmuxd.log", text, len);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "QEMU did not reply to "
	    EVIL1_SHOWN " (id "), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "QEMU did not reply to "
	    EVIL2_SHOWN " (id "), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "dump: " EVIL1_SHOWN
	    " (id "), 2);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "dump: " EVIL2_SHOWN
	    " (id "), 2);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "late reply to "
	    EVIL1_SHOWN " after "), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "late reply to "
	    EVIL2_SHOWN " after "), 1);
	free(text);
	t_client_free(a);
	free(dump);
	free(ro);
}
END_TEST

/*
 * A command named with a NUL ("\u0000", which QEMU keeps as C0 80) is
 * \u0000 in the control socket's query-vm and in the dump file, which
 * stay UTF-8 (no C0 byte) and parse; the log shows the bytes escaped.
 */
START_TEST(test_escape_nul)
{
	struct t_client	*a, *c;
	struct run	 r;
	char		*text, *m;
	size_t		 len;
	yajl_val	 v;

	start();
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	t_send(a, "{\"execute\": \"query-nul\\u0000x\", \"id\": 1}");
	ck_assert_ptr_nonnull(m = t_recv(a, T_WAIT_MS));
	free(m);

	ck_assert_ptr_nonnull(c = t_client_new(ctl));
	free(t_recv(c, T_WAIT_MS));
	free(t_cmd(c, "{\"execute\": \"qmp_capabilities\"}"));
	ck_assert_ptr_nonnull(m = t_cmd(c, "{\"execute\": \"query-vm\", "
	    "\"arguments\": {\"name\": \"test\"}}"));
	ck_assert_msg(strchr(m, 0xc0) == NULL && strstr(m, "\"command\":"
	    "\"query-nul\\u0000x\"") != NULL, "%s", m);
	free(m);
	t_client_free(c);

	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR1), 0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "dump: written to ",
	    T_WAIT_MS), 0);
	text = read_all("dump.json", &len);
	ck_assert_msg(memchr(text, 0xc0, len) == NULL && strstr(text,
	    "\"command\":\"query-nul\\u0000x\"") != NULL, "%s", text);
	ck_assert_ptr_nonnull(v = t_json(text));
	yajl_tree_free(v);
	free(text);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "dump: query-nul\\xc0\\x80x "
	    "(id "), 1);

	r = run("--json", "status", "test");
	run_check(r, 0, "");
	ck_assert_ptr_null(strchr(r.out, 0xc0));
	ck_assert_ptr_nonnull(v = t_json(r.out));
	yajl_tree_free(v);
	run_free(&r);
	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	t_client_free(a);
}
END_TEST

/*
 * A VM's name with control bytes is refused (3), and the refusal, which
 * quotes the name, is one line with the name escaped; so is the answer
 * for a VM that is not there (4).
 */
START_TEST(test_escape_vm_name)
{
	struct run	 r;
	char		*up, *ls, *evil = t_path("evil.sock");

	start();
	if (asprintf(&up, "upstream=connect:%s", t_qsock) == -1 ||
	    asprintf(&ls, "listen=%s", evil) == -1)
		abort();
	r = run("add", "a\x1b[2J\nqmpmuxd: FORGED", up, ls);
	run_check(r, 3, "qmpmuxctl: qmpmux: name = a\\x1b[2J\\nqmpmuxd: "
	    "FORGED: expected at most 64 printable bytes, without spaces, "
	    "'/', '\"' or '\\\\'\n");
	run_free(&r);
	r = run("status", "\x1b]0;PWNED\x07\xc2\x9b");
	run_check(r, 4, "qmpmuxctl: qmpmux: no VM named \\x1b]0;PWNED\\x07"
	    "\\xc2\\x9b\n");
	run_free(&r);
	r = run("list");
	run_check(r, 0, "");
	ck_assert_int_eq(count_lines(r.out), 2);
	run_free(&r);
	free(up);
	free(ls);
	free(evil);
}
END_TEST

static Suite *
ctl_suite(void)
{
	Suite	*s = suite_create("ctl");
	TCase	*tc = t_tcase(s, "ctl", 60);

	tcase_add_test(tc, test_list_status_stalled);
	tcase_add_test(tc, test_dump);
	tcase_add_test(tc, test_add_remove);
	tcase_add_test(tc, test_reload);
	tcase_add_test(tc, test_exit_codes);
	tcase_add_test(tc, test_escape_form);
	tcase_add_test(tc, test_escape);
	tcase_add_test(tc, test_escape_vm_name);
	tcase_add_test(tc, test_escape_nul);
	return (s);
}

int
main(void)
{
	return (t_run(ctl_suite()));
}
