/*
 * The diagnostic dump: SIGUSR1 makes qmpmuxd write its state as lines
 * in its log and as one JSON document ("qmpmux-dump", version 1) in
 * --dump-file, written under a temporary name and renamed into place.
 * A real QEMU stopped with SIGSTOP shows a command sent and pending,
 * then a VM stalled past a deadline and ready again after the late
 * reply; the fake QEMU's flood shows reads paused at the backlog bound.
 */
#include "config.h"

#include <sys/stat.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <yajl/yajl_tree.h>

#include "testlib.h"

static char	*dump_path;	/* DIR/dump.json */
static int	 ndumps;	/* "dump: written" lines so far */

static void
setup(void)
{
	dump_path = t_path("dump.json");
	ndumps = 0;
}

static void
teardown(void)
{
	free(dump_path);
}

/* A member of a tree by its path of keys, or NULL. */
static yajl_val
jget(yajl_val v, ...)
{
	const char	*path[16];
	va_list		 ap;
	int		 n = 0;

	va_start(ap, v);
	while (n < 15 && (path[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	path[n] = NULL;
	return (yajl_tree_get(v, path, yajl_t_any));
}

/* A number member, which must be there. */
static double
jnum(yajl_val v, const char *what)
{
	ck_assert_msg(v != NULL && YAJL_IS_NUMBER(v), "%s: not a number",
	    what);
	return (YAJL_GET_DOUBLE(v));
}

/* A string member, which must be there. */
static const char *
jstr(yajl_val v, const char *what)
{
	ck_assert_msg(v != NULL && YAJL_IS_STRING(v), "%s: not a string",
	    what);
	return (YAJL_GET_STRING(v));
}

/* A boolean member, which must be there. */
static int
jbool(yajl_val v, const char *what)
{
	ck_assert_msg(v != NULL && (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)),
	    "%s: not a boolean", what);
	return (YAJL_IS_TRUE(v));
}

/*
 * No temporary file of the dump is left in the test's directory (the
 * symlinks test_dump_planted plants under such names are not its).
 */
static void
no_tmp_left(void)
{
	DIR		*d;
	struct dirent	*de;
	size_t		 n;

	ck_assert_ptr_nonnull(d = opendir(t_dir()));
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (de->d_type == DT_LNK)
			continue;
		ck_assert_msg(!(strncmp(de->d_name, "dump.json.", 10) == 0 &&
		    n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0),
		    "temporary file %s left", de->d_name);
	}
	closedir(d);
}

/*
 * SIGUSR1, then wait for the documented line that says the dump was
 * written; parse the file and check its format and version.  Returns
 * the tree and the file's text in *text (the caller frees both).
 */
static yajl_val
dump(char **text)
{
	char		 line[1024], err[256], *buf;
	yajl_val	 v;
	size_t		 size;
	long		 len, want;
	int		 lineno;

	ck_assert_int_eq(kill(t_proxy_pid, SIGUSR1), 0);
	ndumps++;
	snprintf(line, sizeof(line), "dump: written to %s (", dump_path);
	ck_assert_msg(t_wait_log_n("qmpmuxd.log", line, ndumps,
	    T_WAIT_MS) == 0, "no line \"%s\" (%d) in %s/qmpmuxd.log", line,
	    ndumps, t_dir());
	ck_assert_int_eq(t_log_scan("qmpmuxd.log", line, ndumps, &lineno,
	    &want), ndumps);
	buf = t_slurp(dump_path, &size);
	len = (long)size;
	/* the line gives the file's size, whole: it was renamed into place */
	ck_assert_int_eq(len, want);
	ck_assert_msg(len > 0 && buf[len - 1] == '\n', "dump not ended by "
	    "a newline");
	v = yajl_tree_parse(buf, err, sizeof(err));
	ck_assert_msg(v != NULL, "dump does not parse: %s", err);
	ck_assert_str_eq(jstr(jget(v, "format", NULL), "format"),
	    "qmpmux-dump");
	ck_assert_int_eq(jnum(jget(v, "version", NULL), "version"), 1);
	ck_assert_int_eq(jnum(jget(v, "pid", NULL), "pid"), t_proxy_pid);
	no_tmp_left();
	*text = buf;
	return (v);
}

/* The one VM of the dump, "test". */
static yajl_val
the_vm(yajl_val v)
{
	yajl_val	 vms = jget(v, "vms", NULL);

	ck_assert_msg(vms != NULL && YAJL_IS_ARRAY(vms) &&
	    vms->u.array.len == 1, "expected one VM");
	vms = vms->u.array.values[0];
	ck_assert_str_eq(jstr(jget(vms, "name", NULL), "name"), "test");
	return (vms);
}

/*
 * A command sent to a stopped QEMU is in the dump, sent, with its age
 * and its client; the client is there with its pid and uid and the
 * bytes it was sent, each of which it read; the log has the dump's
 * lines for the VM, its command and its client.
 */
START_TEST(test_dump_pending)
{
	const char	*opts[] = { "--dump-file", dump_path, NULL };
	struct t_client	*a;
	yajl_val	 v, vm, list, cmd, clients, c;
	char		*text, *m;
	long		 held;
	double		 age;

	t_start_qemu(opts);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	ck_assert_int_ge(held = t_unread(t_qsock), 0);
	t_send(a, "{\"execute\":\"query-status\",\"id\":\"q\"}\n");
	/* qmpmuxd wrote it: it waits unread in the stopped QEMU's socket */
	ck_assert_int_eq(t_wait_unread(t_qsock, held, T_WAIT_MS), 0);
	/* and no answer comes while QEMU is stopped: 50 ms pass */
	ck_assert_int_eq(t_quiet(a, 50), T_SILENT);

	v = dump(&text);
	vm = the_vm(v);
	ck_assert_str_eq(jstr(jget(vm, "state", NULL), "state"), "ready");
	ck_assert_ptr_nonnull(jget(vm, "stalled_for", NULL));
	ck_assert(YAJL_IS_NULL(jget(vm, "stalled_for", NULL)));
	ck_assert_int_eq(jnum(jget(vm, "commands", "in_flight", NULL),
	    "in_flight"), 1);
	ck_assert_int_eq(jnum(jget(vm, "commands", "queued", NULL),
	    "queued"), 0);
	list = jget(vm, "commands", "list", NULL);
	ck_assert_msg(list != NULL && YAJL_IS_ARRAY(list) &&
	    list->u.array.len == 1, "expected one command: %s", text);
	cmd = list->u.array.values[0];
	ck_assert_str_eq(jstr(jget(cmd, "command", NULL), "command"),
	    "query-status");
	ck_assert(jbool(jget(cmd, "sent", NULL), "sent"));
	ck_assert(!jbool(jget(cmd, "timed_out", NULL), "timed_out"));
	ck_assert(!jbool(jget(cmd, "oob", NULL), "oob"));
	ck_assert_int_eq(jnum(jget(cmd, "client", NULL), "client"), 1);
	age = jnum(jget(cmd, "age", NULL), "age");
	ck_assert_msg(age >= 0.05 && age < T_WAIT_MS / 1e3, "age %g", age);
	/* the default timeout, 30 s, runs from its arrival */
	ck_assert_double_le(jnum(jget(cmd, "deadline_in", NULL),
	    "deadline_in"), 30 - age + 0.001);
	ck_assert_double_gt(jnum(jget(cmd, "deadline_in", NULL),
	    "deadline_in"), 20);

	clients = jget(vm, "clients", NULL);
	ck_assert_msg(clients != NULL && YAJL_IS_ARRAY(clients) &&
	    clients->u.array.len == 1, "expected one client");
	c = clients->u.array.values[0];
	ck_assert_int_eq(jnum(jget(c, "id", NULL), "id"), 1);
	ck_assert_int_eq(jnum(jget(c, "pid", NULL), "pid"), getpid());
	ck_assert_int_eq(jnum(jget(c, "uid", NULL), "uid"), getuid());
	ck_assert_str_eq(jstr(jget(c, "listener", NULL), "listener"),
	    t_psock);
	ck_assert_str_eq(jstr(jget(c, "state", NULL), "state"), "ready");
	ck_assert(jbool(jget(c, "negotiated", NULL), "negotiated"));
	ck_assert_int_eq(jnum(jget(c, "commands", NULL), "commands"), 1);
	/* the greeting and the return of qmp_capabilities: what it read */
	ck_assert_int_eq(jnum(jget(c, "bytes_out", NULL), "bytes_out"),
	    t_client_nread(a));
	ck_assert_int_gt(t_client_nread(a), 0);
	ck_assert_int_eq(jnum(jget(vm, "counters", "commands", NULL),
	    "counters.commands"), 1);
	ck_assert_int_eq(jnum(jget(vm, "counters", "clients", NULL),
	    "counters.clients"), 1);
	yajl_tree_free(v);
	free(text);

	/* the same state, as lines in the log */
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "dump: 1 VMs; "), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm test: dump: ready "
	    "for "), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm test: dump: "
	    "query-status (id 1) of client 1: sent, "), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm test: client 1: "
	    "dump: ready on "), 1);
	m = NULL;
	if (asprintf(&m, "(pid %ld, uid %ld), 1 commands", (long)getpid(),
	    (long)getuid()) == -1)
		abort();
	ck_assert_int_eq(t_log_count("qmpmuxd.log", m), 1);
	free(m);

	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	m = t_recv(a, T_WAIT_MS);
	ck_assert_msg(m != NULL && strstr(m, "\"id\": \"q\"") != NULL &&
	    strstr(m, "\"return\"") != NULL, "reply: %s", m);
	free(m);
	t_client_free(a);
}
END_TEST

/*
 * The fake QEMU floods while one client reads nothing: the dump shows
 * the reads paused, for some time, with the backlog at its byte bound,
 * holding exactly the events the other client read.
 */
START_TEST(test_dump_paused)
{
	const char	*fargs[] = { "--flood", "1000000", "--trigger", "flood",
	    NULL };
	const char	*opts[] = { "--dump-file", dump_path,
	    "--max-queued-events", "1000000", "--max-queued-bytes", "256K",
	    NULL };
	const size_t	 max_bytes = 256 * 1024;
	struct t_client	*c;
	struct t_flood	 r;
	yajl_val	 v, vm, cl;
	char		*text;
	double		 bytes;
	size_t		 i;

	c = t_flood_start(fargs, opts, 1000000, max_bytes, &r, NULL);
	/* nothing more is read from QEMU, for 50 ms */
	ck_assert_int_eq(t_quiet(r.c, 50), T_SILENT);
	v = dump(&text);
	vm = the_vm(v);
	ck_assert(jbool(jget(vm, "reads", "paused", NULL), "reads.paused"));
	ck_assert_double_ge(jnum(jget(vm, "reads", "paused_for", NULL),
	    "reads.paused_for"), 0.05);
	ck_assert(!jbool(jget(vm, "reads", "waiting_for_host_budget", NULL),
	    "waiting_for_host_budget"));
	ck_assert_int_eq(jnum(jget(vm, "backlog", "max_bytes", NULL),
	    "backlog.max_bytes"), max_bytes);
	ck_assert_int_eq(jnum(jget(vm, "backlog", "max_events", NULL),
	    "backlog.max_events"), 1000000);
	/* the backlog is what r read, which took it to the bound */
	bytes = jnum(jget(vm, "backlog", "bytes", NULL), "backlog.bytes");
	ck_assert_msg(bytes == (double)r.bytes, "backlog %g bytes, the "
	    "reader got %zu", bytes, r.bytes);
	ck_assert_int_eq(jnum(jget(vm, "backlog", "events", NULL),
	    "backlog.events"), r.n);
	ck_assert_double_ge(bytes, max_bytes);
	ck_assert_double_lt(bytes - r.last, max_bytes);
	ck_assert_int_eq(jnum(jget(v, "memory", "event_bytes", NULL),
	    "memory.event_bytes"), r.bytes);
	ck_assert_int_eq(jnum(jget(v, "memory", "vms_holding_events", NULL),
	    "memory.vms_holding_events"), 1);
	ck_assert_int_ge(jnum(jget(vm, "counters", "events", NULL),
	    "counters.events"), r.n);
	/* the client that reads nothing holds events; the reader does not */
	cl = jget(vm, "clients", NULL);
	ck_assert_msg(cl != NULL && YAJL_IS_ARRAY(cl) &&
	    cl->u.array.len == 2, "expected two clients");
	for (i = 0; i < 2; i++) {
		yajl_val e = cl->u.array.values[i];

		ck_assert_int_eq(jbool(jget(e, "holds_events", NULL),
		    "holds_events"), i == 0);
	}
	ck_assert_int_ge(t_log_count("qmpmuxd.log", "vm test: dump: ready "
	    "for "), 1);
	yajl_tree_free(v);
	free(text);
	t_client_free(c);
	t_client_free(r.c);
}
END_TEST

/*
 * A command sent to a stopped QEMU passes its 1 s deadline: the VM is
 * stalled, and the dump says since when; once QEMU goes on, its late
 * reply is dropped and the next dump shows the VM ready, the reply
 * counted.
 */
START_TEST(test_dump_stalled)
{
	const char	*opts[] = { "--dump-file", dump_path,
	    "--command-timeout", "1", NULL };
	struct t_client	*a;
	yajl_val	 v, vm, list, cmd;
	char		*text, *m;
	long		 held;

	t_start_qemu(opts);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	ck_assert_int_ge(held = t_unread(t_qsock), 0);
	t_send(a, "{\"execute\":\"query-status\",\"id\":\"s\"}\n");
	ck_assert_int_eq(t_wait_unread(t_qsock, held, T_WAIT_MS), 0);
	m = t_recv(a, T_WAIT_MS);
	ck_assert_msg(m != NULL && strstr(m, "may still complete") != NULL,
	    "expected the timeout error: %s", m);
	free(m);
	ck_assert_int_eq(t_quiet(a, 50), T_SILENT);

	v = dump(&text);
	vm = the_vm(v);
	ck_assert_str_eq(jstr(jget(vm, "state", NULL), "state"), "stalled");
	ck_assert_double_ge(jnum(jget(vm, "stalled_for", NULL),
	    "stalled_for"), 0.05);
	ck_assert_int_eq(jnum(jget(vm, "counters", "timeouts_sent", NULL),
	    "timeouts_sent"), 1);
	ck_assert_int_eq(jnum(jget(vm, "counters", "timeouts_unsent", NULL),
	    "timeouts_unsent"), 0);
	ck_assert_int_eq(jnum(jget(vm, "counters", "late_replies_dropped",
	    NULL), "late_replies_dropped"), 0);
	/* still in flight, past its deadline, its client answered */
	list = jget(vm, "commands", "list", NULL);
	ck_assert_msg(list != NULL && YAJL_IS_ARRAY(list) &&
	    list->u.array.len == 1, "expected one command: %s", text);
	cmd = list->u.array.values[0];
	ck_assert(jbool(jget(cmd, "sent", NULL), "sent"));
	ck_assert(jbool(jget(cmd, "timed_out", NULL), "timed_out"));
	ck_assert(YAJL_IS_NULL(jget(cmd, "deadline_in", NULL)));
	ck_assert_double_ge(jnum(jget(cmd, "age", NULL), "age"), 1.0);
	ck_assert_int_eq(jnum(jget(vm, "commands", "in_flight", NULL),
	    "in_flight"), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm test: dump: stalled "
	    "for "), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "vm test: dump: "
	    "query-status (id 1) of client "), 1);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", "s ago, past its "
	    "deadline"), 1);
	yajl_tree_free(v);
	free(text);

	ck_assert_int_eq(kill(t_qemu_pid, SIGCONT), 0);
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "vm test: late reply to "
	    "query-status after ", T_WAIT_MS), 0);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", " dropped; no longer "
	    "stalled"), 1);
	/* the late reply reached nobody */
	ck_assert_int_eq(t_quiet(a, 100), T_SILENT);

	v = dump(&text);
	vm = the_vm(v);
	ck_assert_str_eq(jstr(jget(vm, "state", NULL), "state"), "ready");
	ck_assert(YAJL_IS_NULL(jget(vm, "stalled_for", NULL)));
	ck_assert_int_eq(jnum(jget(vm, "counters", "late_replies_dropped",
	    NULL), "late_replies_dropped"), 1);
	ck_assert_int_eq(jnum(jget(vm, "counters", "timeouts_sent", NULL),
	    "timeouts_sent"), 1);
	ck_assert_int_eq(jnum(jget(vm, "counters", "replies", NULL),
	    "replies"), 0);
	ck_assert_int_eq(jnum(jget(vm, "commands", "in_flight", NULL),
	    "in_flight"), 0);
	list = jget(vm, "commands", "list", NULL);
	ck_assert(list != NULL && YAJL_IS_ARRAY(list));
	ck_assert_int_eq(list->u.array.len, 0);
	yajl_tree_free(v);
	free(text);

	m = t_cmd(a, "{\"execute\":\"query-status\",\"id\":2}");
	ck_assert_msg(m != NULL && strstr(m, "\"running\": true") != NULL,
	    "reply: %s", m);
	free(m);
	t_client_free(a);
}
END_TEST

/*
 * The dump follows no symlink planted beside it: a root-owned file
 * elsewhere, linked from the old temporary name (PATH.PID.tmp), from
 * another name of the same shape and from the dump file's own name,
 * is left as it was, and the dump file is a regular file of the
 * running uid, mode 0600 whatever the umask.
 */
START_TEST(test_dump_planted)
{
	const char	*opts[] = { "--dump-file", dump_path, NULL };
	static const char precious[] = "precious\n";
	yajl_val	 v;
	struct stat	 st;
	char		*victim = t_path("elsewhere"), *old_tmp, *other, *text;
	FILE		*f;
	mode_t		 mask;

	ck_assert_int_eq(mkdir(victim, 0755), 0);
	free(victim);
	victim = t_path("elsewhere/victim");
	ck_assert_ptr_nonnull(f = fopen(victim, "w"));
	ck_assert_int_ge(fputs(precious, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(victim, 0644), 0);
	ck_assert_int_eq(stat(victim, &st), 0);
	ck_assert_int_eq(st.st_uid, 0);

	/* qmpmuxd's umask would give the file 0644 */
	mask = umask(022);
	t_start_qemu(opts);
	umask(mask);
	if (asprintf(&old_tmp, "%s.%ld.tmp", dump_path, (long)t_proxy_pid) ==
	    -1 || asprintf(&other, "%s.000000.tmp", dump_path) == -1)
		abort();
	ck_assert_int_eq(symlink(victim, old_tmp), 0);
	ck_assert_int_eq(symlink(victim, other), 0);
	ck_assert_int_eq(symlink(victim, dump_path), 0);

	v = dump(&text);
	yajl_tree_free(v);
	free(text);
	ck_assert_int_eq(lstat(dump_path, &st), 0);
	ck_assert_msg(S_ISREG(st.st_mode), "%s is not a regular file",
	    dump_path);
	ck_assert_int_eq(st.st_uid, getuid());
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	text = t_slurp(victim, NULL);
	ck_assert_str_eq(text, precious);
	free(text);
	ck_assert_int_eq(stat(victim, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0644);
	ck_assert_int_eq(st.st_uid, 0);
	/* the planted links are left, and still point where they did */
	ck_assert_int_eq(lstat(old_tmp, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	ck_assert_int_eq(lstat(other, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));

	/* a second dump replaces the first, in the same way */
	v = dump(&text);
	yajl_tree_free(v);
	free(text);
	ck_assert_int_eq(lstat(dump_path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	text = t_slurp(victim, NULL);
	ck_assert_str_eq(text, precious);
	free(text);
	free(old_tmp);
	free(other);
	free(victim);
}
END_TEST

static Suite *
dump_suite(void)
{
	Suite	*s = suite_create("dump");
	TCase	*tc = t_tcase(s, "real-qemu", 60);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_dump_pending);
	tcase_add_test(tc, test_dump_stalled);
	tcase_add_test(tc, test_dump_planted);
	tc = t_tcase(s, "fake-qemu", 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_dump_paused);
	return (s);
}

int
main(void)
{
	return (t_run(dump_suite()));
}
