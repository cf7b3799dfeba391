/*
 * The control socket (src/control.c), against a real qmpmuxd and, where
 * a VM must be served, a real QEMU: the greeting and the negotiation,
 * every command with ids of several JSON types, errors with the
 * caller's id, VMs added by path and by passed fds and served, removed
 * with their clients closed, hostile input that must change nothing
 * and leak no fd, and a VM added at run time that a reload keeps.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

#define QMPMUX_RUNDIR_T	"/run/qmpmux"	/* qmpmux.h's QMPMUX_RUNDIR */

#define STATUS	"{\"execute\":\"query-status\",\"id\":1}"
#define RUNNING	"{\"return\": {\"status\": \"running\", \"singlestep\": " \
		"false, \"running\": true}, \"id\": 1}"
#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, " \
		"\"minor\": 1, \"major\": 0}, \"package\": \"qmpmuxd " \
		PACKAGE_VERSION "\"}, \"capabilities\": []}}"
#define OK(id)	"{\"return\": {}, \"id\": " id "}"

static char	*ctl;		/* the control socket's path */

/* Write a config file in the test's directory; its path. */
static char *
write_conf(const char *name, const char *text)
{
	char	*path = t_path(name);
	FILE	*f;

	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	return (path);
}

/*
 * Start qmpmuxd on conf with its control socket; wait for the socket.
 * The dump goes to the test's directory, never to the host's /run.
 */
static void
start(const char *conf)
{
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "-f", conf,
			    "--control", NULL, "--dump-file", NULL, NULL };
	char		*dump;

	ctl = t_path("control.sock");
	argv[5] = ctl;
	argv[7] = dump = t_path("dump.json");
	t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
	free(dump);
	ck_assert_int_eq(t_wait_socket(ctl, T_WAIT_MS), 0);
}

/* Start qmpmuxd with no VM. */
static void
start_empty(void)
{
	char	*conf = write_conf("empty.conf", "");

	start(conf);
	free(conf);
}

/* A negotiated control client. */
static struct t_client *
ctl_client(void)
{
	struct t_client	*c;

	ck_assert_ptr_nonnull(c = t_client_new(ctl));
	t_recv_eq(c, GREETING);
	t_cmd_eq(c, "{\"execute\": \"qmp_capabilities\", \"id\": 0}",
	    OK("0"));
	return (c);
}

/* Send text with fds passed by SCM_RIGHTS on the same message. */
static void
send_fds(struct t_client *c, const char *text, const int *fds, int n)
{
	char		 cbuf[CMSG_SPACE(16 * sizeof(int))];
	struct iovec	 iov = { (void *)(uintptr_t)text, strlen(text) };
	struct msghdr	 mh;
	struct cmsghdr	*cm;

	ck_assert(n > 0 && n <= 16);
	memset(&mh, 0, sizeof(mh));
	memset(cbuf, 0, sizeof(cbuf));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, (size_t)n * sizeof(int));
	ck_assert_int_eq(sendmsg(t_client_fd(c), &mh, 0),
	    (ssize_t)strlen(text));
}

/* A command with one fd; its reply must be want. */
static void
cmd_fd_eq(struct t_client *c, const char *text, int fd, const char *want)
{
	char	*m;

	send_fds(c, text, &fd, 1);
	m = t_recv_reply(c, T_WAIT_MS);
	ck_assert_msg(m != NULL && strcmp(m, want) == 0, "%s: expected\n  "
	    "%s\ngot\n  %s", text, want, m != NULL ? m : "(nothing)");
	free(m);
}

/*
 * Pass over the errors input read as QEMU reads it may still give (the
 * rest of a message too deep), up to the reply to a command sent now.
 */
static void
sync_replies(struct t_client *c)
{
	char	*m;

	t_send(c, "{\"execute\": \"query-version\", \"id\": \"sync\"}\n");
	for (;;) {
		m = t_recv(c, T_WAIT_MS);
		ck_assert_msg(m != NULL, "no reply to the sync command");
		if (strstr(m, "\"id\": \"sync\"") != NULL)
			break;
		ck_assert_ptr_nonnull(strstr(m, "\"error\""));
		free(m);
	}
	free(m);
}

/*
 * The reply to query-vms, as text, without the times (state_for), which
 * change from one to the next.
 */
static char *
query_vms(struct t_client *c)
{
	char	*m = t_cmd(c, "{\"execute\": \"query-vms\"}"), *p, *q;

	ck_assert_ptr_nonnull(m);
	for (p = m; (p = strstr(p, "\"state_for\":")) != NULL; ) {
		p += strlen("\"state_for\":");
		for (q = p; (*q >= '0' && *q <= '9') || *q == '.'; q++)
			;
		memmove(p, q, strlen(q) + 1);
	}
	return (m);
}

/* Wait until query-vms has needle (present) or not, within the bound. */
static char *
wait_vms(struct t_client *c, const char *needle, int present)
{
	long long	 end = t_clock_ms() + T_WAIT_MS;
	char		*m;

	for (;;) {
		m = query_vms(c);
		if ((strstr(m, needle) != NULL) == present)
			return (m);
		ck_assert_msg(t_clock_ms() < end, "query-vms: %s %s in %s",
		    needle, present ? "never came" : "never went", m);
		free(m);
	}
}

/*
 * The greeting is QEMU's shape with qmpmuxd's version; before
 * qmp_capabilities every other command gets QEMU's CommandNotFound,
 * a second one QEMU's refusal; ids of every JSON type come back byte for
 * byte, on returns and on errors.
 */
START_TEST(test_negotiation_and_ids)
{
	struct t_client	*c;

	start_empty();
	ck_assert_ptr_nonnull(c = t_client_new(ctl));
	t_recv_eq(c, GREETING);
	t_cmd_eq(c, "{\"execute\": \"query-version\", \"id\": 7}",
	    "{\"id\": 7, \"error\": {\"class\": \"CommandNotFound\", \"desc\": "
	    "\"Expecting capabilities negotiation with 'qmp_capabilities'\"}}");
	t_cmd_eq(c, "{\"execute\": \"qmp_capabilities\", \"arguments\": "
	    "{\"enable\": [\"oob\"]}, \"id\": 1}", "{\"id\": 1, \"error\": "
	    "{\"class\": \"GenericError\", \"desc\": \"Capability 'oob' not "
	    "available\"}}");
	t_cmd_eq(c, "{\"execute\": \"qmp_capabilities\", \"id\": \"x\"}",
	    OK("\"x\""));
	t_cmd_eq(c, "{\"execute\": \"qmp_capabilities\", \"id\": [1, {}]}",
	    "{\"id\": [1, {}], \"error\": {\"class\": \"CommandNotFound\", "
	    "\"desc\": \"Capabilities negotiation is already complete, "
	    "command ignored\"}}");

	t_cmd_eq(c, "{\"execute\": \"query-version\"}", "{\"return\": "
	    "{\"qmpmuxd\": \"" PACKAGE_VERSION "\", \"dump_version\": 1}}");
	t_cmd_eq(c, "{\"id\": {\"a\":  [true, null]}, \"execute\": "
	    "\"query-version\"}", "{\"return\": {\"qmpmuxd\": \""
	    PACKAGE_VERSION "\", \"dump_version\": 1}, \"id\": {\"a\": "
	    "[true, null]}}");
	/* the id as QEMU writes back what it parsed */
	t_cmd_eq(c, "{\"execute\": \"query-vms\", \"id\": -1.5e3}",
	    "{\"return\": [], \"id\": -1500}");
	t_cmd_eq(c, "{\"execute\": \"no-such\", \"id\": \"n\"}", "{\"id\": "
	    "\"n\", \"error\": {\"class\": \"CommandNotFound\", \"desc\": "
	    "\"The command no-such has not been found\"}}");
	t_cmd_eq(c, "{\"execute\": \"query-vm\", \"id\": null}", "{\"id\": "
	    "null, \"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"Parameter 'name' is missing\"}}");
	t_cmd_eq(c, "{\"execute\": \"query-vm\", \"arguments\": {\"name\": "
	    "1}, \"id\": 2}", "{\"id\": 2, \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"Invalid parameter type for 'name', "
	    "expected: string\"}}");
	t_cmd_eq(c, "{\"execute\": \"query-vm\", \"arguments\": {\"name\": "
	    "\"v\", \"x\": 1}, \"id\": 3}", "{\"id\": 3, \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}");
	t_cmd_eq(c, "{\"execute\": \"query-vm\", \"arguments\": {\"name\": "
	    "\"v\"}, \"id\": 4}", "{\"id\": 4, \"error\": {\"class\": "
	    "\"DeviceNotFound\", \"desc\": \"qmpmux: no VM named v\"}}");
	t_cmd_eq(c, "{\"execute\": \"remove-vm\", \"arguments\": {\"name\": "
	    "\"v\"}, \"id\": 5}", "{\"id\": 5, \"error\": {\"class\": "
	    "\"DeviceNotFound\", \"desc\": \"qmpmux: no VM named v\"}}");
	t_cmd_eq(c, "{\"execute\": \"query-version\", \"arguments\": "
	    "{\"a\": 1}, \"id\": true}", "{\"id\": true, \"error\": "
	    "{\"class\": \"GenericError\", \"desc\": \"Parameter 'a' is "
	    "unexpected\"}}");
	t_cmd_eq(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"f\"}, \"id\": 6}", "{\"id\": 6, \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"No file descriptor supplied via "
	    "SCM_RIGHTS\"}}");
	t_cmd_eq(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": "
	    "\"f\"}, \"id\": 8}", "{\"id\": 8, \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"File descriptor named 'f' not "
	    "found\"}}");
	t_cmd_eq(c, "{\"execute\": \"reload\", \"id\": 9}", OK("9"));
	t_cmd_eq(c, "{\"execute\": \"query-version\", \"bad\": 1, \"id\": 10}",
	    "{\"id\": 10, \"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"QMP input member 'bad' is unexpected\"}}");
	t_cmd_eq(c, "[\"execute\"]", "{\"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"QMP input must be a JSON "
	    "object\"}}");
	t_client_free(c);
}
END_TEST

/*
 * dump returns the dump document, as SIGUSR1 makes it, with the VMs.
 */
START_TEST(test_dump)
{
	struct t_client	*c;
	yajl_val	 v;
	char		*m, *dump;

	start_empty();
	c = ctl_client();
	m = t_cmd(c, "{\"execute\": \"dump\", \"id\": \"d\"}");
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_nonnull(v = t_json(m));
	ck_assert_str_eq(t_get_str(v, "return", "format"), "qmpmux-dump");
	ck_assert_int_eq(t_get_int(v, "return", "version"), 1);
	ck_assert_int_eq(t_get_int(v, "return", "pid"), t_proxy_pid);
	ck_assert_str_eq(t_get_str(v, "id", NULL), "d");
	yajl_tree_free(v);
	free(m);
	/* and, as SIGUSR1's, written to the dump file before the answer */
	dump = t_path("dump.json");
	ck_assert_msg(access(dump, F_OK) == 0, "dump wrote no %s", dump);
	free(dump);
	t_client_free(c);
}
END_TEST

/*
 * add-vm by paths: connected to a real QEMU, a client is served through
 * the new listener.  query-vms and query-vm show it.  remove-vm answers
 * the client's command that QEMU holds with "qmpmux: VM removed", then
 * EOF, and the listener's socket goes.
 */
START_TEST(test_add_remove_paths)
{
	struct t_client	*c, *a;
	char		*m, *cmd;
	struct stat	 st;

	t_qemu_pid = t_qemu(t_qsock);
	start_empty();
	c = ctl_client();
	if (asprintf(&cmd, "{\"execute\": \"add-vm\", \"arguments\": "
	    "{\"name\": \"web\", \"upstream\": \"connect:%s\", \"listeners\": "
	    "[{\"path\": \"%s\", \"slow_client\": \"disconnect\"}], "
	    "\"max_inflight\": 2, \"timeout.query-status\": 0}, \"id\": 1}",
	    t_qsock, t_psock) == -1)
		abort();
	t_cmd_eq(c, cmd, OK("1"));
	free(cmd);
	t_cmd_eq(c, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"web\", \"upstream\": \"connect:/x\", \"listeners\": [{\"path\": "
	    "\"/y\"}]}, \"id\": 2}", "{\"id\": 2, \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: a VM named web already "
	    "runs\"}}");
	ck_assert_int_eq(t_wait_socket(t_psock, T_WAIT_MS), 0);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	t_cmd_eq(a, STATUS, RUNNING);

	m = wait_vms(c, "\"clients\":1", 1);
	ck_assert_ptr_nonnull(strstr(m, "\"name\":\"web\",\"state\":\"ready\""));
	ck_assert_ptr_nonnull(strstr(m, "\"origin\":\"control\""));
	ck_assert_ptr_nonnull(strstr(m, "\"mode\":\"connect\""));
	free(m);
	m = t_cmd(c, "{\"execute\": \"query-vm\", \"arguments\": {\"name\": "
	    "\"web\"}}");
	ck_assert_ptr_nonnull(strstr(m, "\"max_in_flight\":2"));
	ck_assert_ptr_nonnull(strstr(m, "\"slow_client\":\"disconnect\""));
	free(m);

	/* a command QEMU holds, then the VM goes */
	ck_assert_int_eq(t_sigstop(t_qemu_pid, T_WAIT_MS), 0);
	t_send(a, "%s\n", STATUS);
	free(wait_vms(c, "\"in_flight\":1", 1));
	t_cmd_eq(c, "{\"execute\": \"remove-vm\", \"arguments\": {\"name\": "
	    "\"web\"}, \"id\": 3}", OK("3"));
	t_recv_eq(a, "{\"id\": 1, \"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"qmpmux: VM removed\"}}");
	ck_assert(t_eof(a, T_WAIT_MS));
	free(wait_vms(c, "web", 0));
	ck_assert_int_eq(stat(t_psock, &st), -1);
	t_client_free(a);
	t_client_free(c);
}
END_TEST

/*
 * add-vm by passed fds: a listening socket the test made, and one end
 * of a socketpair whose other end is a real QEMU's monitor.  A client
 * is served through the passed listener.  qmpmuxd neither removes the
 * passed listener's path nor keeps any of the fds once the VM goes.
 */
START_TEST(test_add_fds)
{
	const char		*argv[] = { t_bin("QEMU"), "-M", "none",
				    "-nodefaults", "-display", "none",
				    "-chardev", NULL, "-mon",
				    "chardev=m,mode=control", NULL };
	struct sockaddr_un	 sun;
	struct t_client		*c, *a;
	struct stat		 st;
	char			*chardev, *m;
	int			 sv[2], lfd, before;

	start_empty();
	c = ctl_client();
	before = t_proc_fds(t_proxy_pid, NULL);

	/* sv[0] is QEMU's, inherited; the test's own ends are not */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFD, FD_CLOEXEC), 0);
	if (asprintf(&chardev, "socket,id=m,fd=%d,server=off", sv[0]) == -1)
		abort();
	argv[7] = chardev;
	t_qemu_pid = t_spawn(argv, "qemu.log");
	free(chardev);
	close(sv[0]);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t_psock);
	ck_assert_int_ne(lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
	    0), -1);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);

	cmd_fd_eq(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"up\"}, \"id\": \"g1\"}", sv[1], OK("\"g1\""));
	cmd_fd_eq(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"lis\"}, \"id\": \"g2\"}", lfd, OK("\"g2\""));
	close(sv[1]);
	close(lfd);
	/* each fd is checked for its kind: these two are the wrong way */
	t_cmd_eq(c, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"fdvm\", \"upstream\": \"fd:lis\", \"listeners\": [{\"fd\": "
	    "\"up\"}]}, \"id\": 1}", "{\"id\": 1, \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: fd lis is not a connected "
	    "unix stream socket\"}}");
	t_cmd_eq(c, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"fdvm\", \"upstream\": \"fd:up\", \"listeners\": [{\"fd\": "
	    "\"up\"}]}, \"id\": 1}", "{\"id\": 1, \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: fd up is used twice\"}}");
	t_cmd_eq(c, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"fdvm\", \"upstream\": \"fd:up\", \"listeners\": [{\"fd\": "
	    "\"lis\", \"read_only\": true}]}, \"id\": 2}", OK("2"));

	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	t_cmd_eq(a, STATUS, RUNNING);
	t_cmd_eq(a, "{\"execute\": \"stop\", \"id\": 2}", "{\"id\": 2, "
	    "\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The "
	    "command stop has been disabled for this instance\"}}");
	m = wait_vms(c, "\"clients\":1", 1);
	ck_assert_ptr_nonnull(strstr(m, "\"mode\":\"fd\""));
	ck_assert_ptr_nonnull(strstr(m, t_psock));
	free(m);

	t_cmd_eq(c, "{\"execute\": \"remove-vm\", \"arguments\": {\"name\": "
	    "\"fdvm\"}, \"id\": 3}", OK("3"));
	ck_assert(t_eof(a, T_WAIT_MS));
	t_client_free(a);
	free(wait_vms(c, "fdvm", 0));
	/* its path is the test's: qmpmuxd did not make it, nor removes it */
	ck_assert_int_eq(stat(t_psock, &st), 0);
	t_wait_fds(t_proxy_pid, before);
	t_client_free(c);
}
END_TEST

/*
 * Hostile input: garbage, deep nesting, unknown commands, fds passed
 * without getfd, fds of the wrong kind, a name reused, too many fds,
 * bad keys and paths: each gets an error and changes nothing, and
 * once the connections close qmpmuxd holds the fds it held before.  A
 * message over 1 MiB gets an error, then EOF.
 */
START_TEST(test_hostile)
{
	struct t_client	*c, *h;
	char		*vms, *m, *big, *deep, *file = t_path("plain");
	char		 path[109];
	const char	*head = "{\"execute\": \"query-vms\", \"arguments\": "
			    "{\"x\": \"";
	int		 before, fd, sv[2], fds[16], i;
	size_t		 n;

	t_qemu_pid = t_qemu(t_qsock);
	start_empty();
	c = ctl_client();
	if (asprintf(&m, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"a\", \"upstream\": \"connect:%s\", \"listeners\": [{\"path\": "
	    "\"%s\"}]}}", t_qsock, t_psock) == -1)
		abort();
	t_cmd_eq(c, m, "{\"return\": {}}");
	free(m);
	free(wait_vms(c, "\"ready\"", 1));
	vms = query_vms(c);
	/* the client and its connection's fd are counted in "before" */
	h = ctl_client();
	before = t_proc_fds(t_proxy_pid, NULL);

	t_send_raw(h, "\x01\xff}", 3);
	t_recv_eq(h, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"JSON parse error, stray '\\u0001'\"}}");
	t_recv_eq(h, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"JSON parse error, stray '\\uFFFD'\"}}");
	t_recv_eq(h, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"JSON parse error, expecting value\"}}");
	n = 1100;
	ck_assert_ptr_nonnull(deep = malloc(2 * n + 1));
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	t_send_raw(h, deep, 2 * n);
	free(deep);
	m = t_recv(h, T_WAIT_MS);
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_nonnull(strstr(m, "JSON nesting depth limit exceeded"));
	free(m);
	sync_replies(h);
	t_cmd_eq(h, "{\"execute\": \"stop\"}", "{\"error\": {\"class\": "
	    "\"CommandNotFound\", \"desc\": \"The command stop has not been "
	    "found\"}}");

	/* fds with no getfd, of the wrong kind, and a name reused */
	ck_assert_int_ne(fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600),
	    -1);
	cmd_fd_eq(h, "{\"execute\": \"query-version\", \"id\": 1}", fd,
	    "{\"return\": {\"qmpmuxd\": \"" PACKAGE_VERSION "\", "
	    "\"dump_version\": 1}, \"id\": 1}");
	cmd_fd_eq(h, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"9x\"}}", fd, "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"Parameter 'fdname' expects a name not starting "
	    "with a digit\"}}");
	cmd_fd_eq(h, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"file\"}}", fd, "{\"return\": {}}");
	cmd_fd_eq(h, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"file\"}}", fd, "{\"return\": {}}");
	t_cmd_eq(h, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"b\", \"upstream\": \"fd:file\", \"listeners\": [{\"path\": "
	    "\"/tmp/b.sock\"}]}}", "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"qmpmux: fd file is not a connected unix stream "
	    "socket\"}}");
	t_cmd_eq(h, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"b\", \"upstream\": \"connect:/tmp/q\", \"listeners\": "
	    "[{\"fd\": \"file\"}]}}", "{\"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: fd file is not a listening "
	    "unix stream socket\"}}");
	t_cmd_eq(h, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"b\", \"upstream\": \"fd:none\", \"listeners\": [{\"path\": "
	    "\"/tmp/b.sock\"}]}}", "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"qmpmux: no fd named none\"}}");
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	for (i = 0; i < 16; i++)
		fds[i] = sv[0];
	/* 16 a message, 5 messages: past the 64 a client may hold */
	for (i = 0; i < 5; i++) {
		send_fds(h, "{\"execute\": \"query-version\", \"id\": 2}",
		    fds, 16);
		m = t_recv_reply(h, T_WAIT_MS);
		ck_assert_ptr_nonnull(m);
		free(m);
	}
	close(sv[0]);
	close(sv[1]);
	close(fd);

	/* bad keys, values and paths */
	t_cmd_eq(h, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"b\", \"upstream\": \"connect:/tmp/q\", \"listeners\": [{\"path\": "
	    "\"/tmp/b.sock\"}], \"nope\": 1}}", "{\"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"Parameter 'nope' is unexpected\"}}");
	t_cmd_eq(h, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"b\", \"upstream\": \"connect:/tmp/q\", \"listeners\": [{\"path\": "
	    "\"/tmp/b.sock\"}], \"max_inflight\": 9}}", "{\"error\": "
	    "{\"class\": \"GenericError\", \"desc\": \"qmpmux: max_inflight = "
	    "9: expected 1 to 8\"}}");
	t_cmd_eq(h, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"b\", \"upstream\": \"connect:/tmp/q\", \"listeners\": [{\"path\": "
	    "\"/tmp/b.sock\", \"mode\": \"999\"}]}}", "{\"error\": "
	    "{\"class\": \"GenericError\", \"desc\": \"qmpmux: "
	    "listeners[0].mode = 999: expected an octal mode from 0 to "
	    "0777\"}}");
	/* a path of 108 bytes cannot be a unix socket's */
	memset(path, 'x', sizeof(path) - 1);
	memcpy(path, "/tmp/", 5);
	path[sizeof(path) - 1] = '\0';
	if (asprintf(&m, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"b\", \"upstream\": \"connect:/tmp/q\", \"listeners\": [{\"path\": "
	    "\"%s\"}]}}", path) == -1 || asprintf(&big, "{\"error\": "
	    "{\"class\": \"GenericError\", \"desc\": \"qmpmux: "
	    "listeners[0].path = %s: the path is 108 bytes long, and a unix "
	    "socket path can be at most 107 bytes\"}}", path) == -1)
		abort();
	t_cmd_eq(h, m, big);
	free(m);
	free(big);
	if (asprintf(&m, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"b\", \"upstream\": \"connect:/tmp/q\", \"listeners\": [{\"path\": "
	    "\"%s\"}]}}", t_psock) == -1)
		abort();
	if (asprintf(&big, "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"qmpmux: listeners[0].path = %s: a listener of VM "
	    "a\"}}", t_psock) == -1)
		abort();
	t_cmd_eq(h, m, big);
	free(big);
	free(m);

	m = query_vms(h);
	ck_assert_str_eq(m, vms);
	free(m);
	t_client_free(h);
	t_wait_fds(t_proxy_pid, before - 1);

	/* a message over 1 MiB: an error, then EOF */
	h = ctl_client();
	ck_assert_ptr_nonnull(big = malloc((2 << 20) + 1));
	memset(big, ' ', 2 << 20);
	/* t_send_while_taken takes a string: memcheck saw it read on */
	big[2 << 20] = '\0';
	memcpy(big, head, strlen(head));
	t_send_while_taken(h, big, 2 << 20, T_WAIT_MS);
	free(big);
	t_recv_eq(h, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"qmpmux: message larger than 1048576 bytes\"}}");
	ck_assert(t_eof(h, T_WAIT_MS));
	t_client_free(h);
	m = query_vms(c);
	ck_assert_str_eq(m, vms);
	free(m);
	t_wait_fds(t_proxy_pid, before - 1);
	free(vms);
	free(file);
	t_client_free(c);
}
END_TEST

/* The reply to getfd of name, with fd passed on its message. */
static void
getfd_eq(struct t_client *c, const char *name, int fd, const char *want)
{
	char	*cmd;

	if (asprintf(&cmd, "{\"execute\": \"getfd\", \"arguments\": "
	    "{\"fdname\": \"%s\"}}", name) == -1)
		abort();
	cmd_fd_eq(c, cmd, fd, want);
	free(cmd);
}

/* The inode of a socket the test holds, as /proc/PID/fd shows it. */
static unsigned long
inode_of(int fd)
{
	struct stat	 st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	return ((unsigned long)st.st_ino);
}

#define VERSION_1 "{\"return\": {\"qmpmuxd\": \"" PACKAGE_VERSION "\", " \
		"\"dump_version\": 1}, \"id\": 1}"
#define NO_FD	"{\"error\": {\"class\": \"GenericError\", \"desc\": " \
		"\"No file descriptor supplied via SCM_RIGHTS\"}}"

/*
 * getfd takes fds as QEMU 7.2's does, seen from /proc/PID/fd: an fd
 * that came with a getfd that is refused (a name starting with a
 * digit, or one longer than 255 bytes) is closed; fds that came with
 * another command are held until the next message that brings fds,
 * whose getfd names its own, not them; a getfd that brings none
 * takes those held; of several fds one is taken and the others
 * closed.
 */
START_TEST(test_getfd_as_qemu)
{
	struct t_client	*c;
	int		 x[2], y[2], z[2], three[3], before;
	unsigned long	 xi, yi;
	char		 name[257];

	start_empty();
	c = ctl_client();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    x), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    y), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    z), 0);
	xi = inode_of(x[0]);
	yi = inode_of(y[0]);
	before = t_proc_fds(t_proxy_pid, NULL);

	/* QEMU looks for the fd first, then at the name */
	t_cmd_eq(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"9x\"}}", NO_FD);
	getfd_eq(c, "9x", x[0], "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"Parameter 'fdname' expects a name not starting with "
	    "a digit\"}}");
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	getfd_eq(c, name, x[0], "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"Parameter 'fdname' expects a name of at most 255 "
	    "bytes\"}}");
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before);
	name[255] = '\0';
	getfd_eq(c, name, x[0], "{\"return\": {}}");
	ck_assert(t_proc_holds(t_proxy_pid, xi));
	t_send(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": "
	    "\"%s\"}}", name);
	t_recv_eq(c, "{\"return\": {}}");
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before);

	/* held from another command, then replaced by getfd's own */
	cmd_fd_eq(c, "{\"execute\": \"query-version\", \"id\": 1}", x[0],
	    VERSION_1);
	ck_assert(t_proc_holds(t_proxy_pid, xi));
	getfd_eq(c, "y", y[0], "{\"return\": {}}");
	ck_assert(!t_proc_holds(t_proxy_pid, xi));
	ck_assert(t_proc_holds(t_proxy_pid, yi));
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before + 1);
	/* the fds of a message with an argument error are held likewise */
	cmd_fd_eq(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "1}}", x[0], "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"Invalid parameter type for 'fdname', expected: string\"}}");
	getfd_eq(c, "y", y[1], "{\"return\": {}}");
	ck_assert(!t_proc_holds(t_proxy_pid, xi));
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before + 1);

	/* a getfd that brings none takes the fd held */
	cmd_fd_eq(c, "{\"execute\": \"query-version\", \"id\": 1}", x[0],
	    VERSION_1);
	t_cmd_eq(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"x\"}}", "{\"return\": {}}");
	t_cmd_eq(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"x2\"}}", NO_FD);
	ck_assert(t_proc_holds(t_proxy_pid, xi));
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before + 2);

	/* three on one message: one taken, two closed */
	three[0] = z[0];
	three[1] = z[1];
	three[2] = x[1];
	send_fds(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"z\"}}", three, 3);
	t_recv_eq(c, "{\"return\": {}}");
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before + 3);
	t_cmd_eq(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": "
	    "\"x\"}}", "{\"return\": {}}");
	t_cmd_eq(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": "
	    "\"y\"}}", "{\"return\": {}}");
	t_cmd_eq(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": "
	    "\"z\"}}", "{\"return\": {}}");
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before);
	close(x[0]);
	close(x[1]);
	close(y[0]);
	close(y[1]);
	close(z[0]);
	close(z[1]);
	t_client_free(c);
}
END_TEST

/* The error of an argument that holds a NUL, as qmpmuxd gives it. */
#define NUL_IN(arg) "{\"error\": {\"class\": \"GenericError\", \"desc\": " \
		"\"qmpmux: argument '" arg "' holds a NUL character " \
		"(\\\\u0000)\"}}"

/*
 * A string argument that holds a NUL (\u0000), which the arguments'
 * tree would cut short, is refused by every command, at any depth and
 * in a key too, and changes nothing: a VM named "a\u0000x" is not a,
 * and one named "nul\u0000x" is not added as nul.
 */
START_TEST(test_nul_args)
{
	struct t_client	*c;
	char		*conf, *text, *vms, *m;
	int		 sv[2], before;

	if (asprintf(&text, "[vm a]\nupstream = connect:%s.none\n"
	    "[listener a %s]\n", t_qsock, t_psock) == -1)
		abort();
	conf = write_conf("a.conf", text);
	free(text);
	start(conf);
	free(conf);
	c = ctl_client();
	vms = query_vms(c);
	ck_assert_ptr_nonnull(strstr(vms, "\"name\":\"a\""));

	t_cmd_eq(c, "{\"execute\": \"remove-vm\", \"arguments\": {\"name\": "
	    "\"a\\u0000x\"}}", NUL_IN("name"));
	t_cmd_eq(c, "{\"execute\": \"query-vm\", \"arguments\": {\"name\": "
	    "\"a\\u0000\"}}", NUL_IN("name"));
	t_cmd_eq(c, "{\"execute\": \"query-vm\", \"arguments\": "
	    "{\"name\\u0000x\": \"a\"}}", NUL_IN("name\\\\u0000x"));
	t_cmd_eq(c, "{\"execute\": \"trace\", \"arguments\": {\"name\": "
	    "\"a\\u0000\"}}", NUL_IN("name"));
	t_cmd_eq(c, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"nul\\u0000x\", \"upstream\": \"connect:/tmp/q\", \"listeners\": "
	    "[{\"path\": \"/tmp/nul.sock\"}]}}", NUL_IN("name"));
	t_cmd_eq(c, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"nul\", \"upstream\": \"connect:/tmp/q\\u0000\", \"listeners\": "
	    "[{\"path\": \"/tmp/nul.sock\"}]}}", NUL_IN("upstream"));
	t_cmd_eq(c, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"nul\", \"upstream\": \"connect:/tmp/q\", \"listeners\": "
	    "[{\"path\": \"/tmp/nul.sock\\u0000x\"}]}}", NUL_IN("listeners"));
	t_cmd_eq(c, "{\"execute\": \"add-vm\", \"arguments\": {\"name\": "
	    "\"nul\", \"upstream\": \"connect:/tmp/q\", \"listeners\": "
	    "[{\"path\": \"/tmp/nul.sock\"}], \"allow\": [\"query-*\", "
	    "\"\\u0000\"]}}", NUL_IN("allow"));
	t_cmd_eq(c, "{\"execute\": \"qmp_capabilities\", \"arguments\": "
	    "{\"enable\": [\"\\u0000\"]}}", NUL_IN("enable"));

	/* the fd of a getfd so refused is held as QEMU holds it, unnamed */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	before = t_proc_fds(t_proxy_pid, NULL);
	getfd_eq(c, "f\\u0000", sv[0], NUL_IN("fdname"));
	t_cmd_eq(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": "
	    "\"f\\u0000\"}}", NUL_IN("fdname"));
	t_cmd_eq(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": "
	    "\"f\"}}", "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"File descriptor named 'f' not found\"}}");
	t_client_free(c);
	t_wait_fds(t_proxy_pid, before - 1);
	close(sv[0]);
	close(sv[1]);

	c = ctl_client();
	m = query_vms(c);
	ck_assert_str_eq(m, vms);
	free(m);
	free(vms);
	t_client_free(c);
}
END_TEST

/*
 * A VM added at run time is the control socket's: a SIGHUP reload of a
 * file that does not name it leaves it running, while the file's VMs
 * change; a reload through the socket of a bad file says why.
 */
START_TEST(test_reload_keeps_added)
{
	struct t_client	*c, *a;
	char		*conf, *text, *cmd, *m, *la = t_path("a.sock"),
			*lc = t_path("c.sock");

	t_qemu_pid = t_qemu(t_qsock);
	if (asprintf(&text, "[vm a]\nupstream = connect:%s.none\n"
	    "[listener a %s]\n", t_qsock, la) == -1)
		abort();
	conf = write_conf("q.conf", text);
	free(text);
	start(conf);
	c = ctl_client();
	if (asprintf(&cmd, "{\"execute\": \"add-vm\", \"arguments\": "
	    "{\"name\": \"added\", \"upstream\": \"connect:%s\", "
	    "\"listeners\": [{\"path\": \"%s\"}]}}", t_qsock, t_psock) == -1)
		abort();
	t_cmd_eq(c, cmd, "{\"return\": {}}");
	free(cmd);
	ck_assert_int_eq(t_wait_socket(t_psock, T_WAIT_MS), 0);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));

	/* the file now names another VM, and not the added one */
	if (asprintf(&text, "[vm c]\nupstream = connect:%s.none\n"
	    "[listener c %s]\n", t_qsock, lc) == -1)
		abort();
	free(write_conf("q.conf", text));
	free(text);
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	m = wait_vms(c, "\"name\":\"c\"", 1);
	ck_assert_ptr_null(strstr(m, "\"name\":\"a\""));
	ck_assert_ptr_nonnull(strstr(m, "\"name\":\"added\""));
	free(m);
	t_cmd_eq(a, STATUS, RUNNING);

	free(write_conf("q.conf", "[vm broken\n"));
	m = t_cmd(c, "{\"execute\": \"reload\", \"id\": \"r\"}");
	ck_assert_ptr_nonnull(m);
	ck_assert_msg(strncmp(m, "{\"id\": \"r\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: reload failed: ", 75) == 0,
	    "%s", m);
	free(m);
	m = query_vms(c);
	ck_assert_ptr_nonnull(strstr(m, "\"name\":\"added\""));
	ck_assert_ptr_nonnull(strstr(m, "\"name\":\"c\""));
	free(m);
	t_cmd_eq(a, STATUS, RUNNING);
	t_client_free(a);
	t_client_free(c);
	free(conf);
	free(la);
	free(lc);
}
END_TEST
/*
 * The [global] bounds of the control socket, at their edges: with two
 * clients the third is closed unanswered, and one is taken again once
 * one leaves; a message of control_max_message bytes is answered and
 * one byte more is the end; a client holds control_max_fds fds and
 * the next is closed at once.
 */
START_TEST(test_limits)
{
	struct t_client	*a, *b, *c;
	char		*conf, msg[256];
	int		 sv[2], fds[4], before;
	size_t		 n;

	conf = write_conf("limits.conf", "[global]\ncontrol_max_clients = 2\n"
	    "control_max_message = 200\ncontrol_max_fds = 3\n");
	start(conf);
	free(conf);
	a = ctl_client();
	b = ctl_client();
	ck_assert_ptr_nonnull(c = t_client_new(ctl));
	ck_assert_msg(t_eof(c, T_WAIT_MS), "a third control client was "
	    "served past control_max_clients = 2");
	t_client_free(c);
	t_client_free(b);
	/* one left: the next is served (the close is seen from the loop) */
	b = NULL;
	for (n = 0; n < 100 && b == NULL; n++) {
		ck_assert_ptr_nonnull(c = t_client_new(ctl));
		if (t_eof(c, 100))
			t_client_free(c);
		else
			b = c;
	}
	ck_assert_msg(b != NULL, "no client served after one left");
	t_client_free(b);

	/* 200 bytes, then 201: the first answered, the second the end */
	n = (size_t)snprintf(msg, sizeof(msg), "{\"execute\": "
	    "\"query-version\", \"id\": 1");
	memset(msg + n, ' ', 199 - n);
	strcpy(msg + 199, "}");
	ck_assert_uint_eq(strlen(msg), 200);
	t_send(a, "%s", msg);
	t_recv_eq(a, "{\"return\": {\"qmpmuxd\": \"" PACKAGE_VERSION "\", "
	    "\"dump_version\": 1}, \"id\": 1}");
	memset(msg + n, ' ', 200 - n);
	strcpy(msg + 200, "}");
	t_send(a, "%s", msg);
	t_recv_eq(a, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	    "\"qmpmux: message larger than 200 bytes\"}}");
	ck_assert(t_eof(a, T_WAIT_MS));
	t_client_free(a);

	/*
	 * Three fds held, unnamed; the next message's replace them.  Three
	 * named, and the fourth is closed on arrival, and getfd says why.
	 */
	a = ctl_client();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	before = t_proc_fds(t_proxy_pid, NULL);
	fds[0] = fds[1] = fds[2] = fds[3] = sv[0];
	send_fds(a, "{\"execute\": \"query-version\", \"id\": 2}", fds, 4);
	free(t_recv_reply(a, T_WAIT_MS));
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before + 3);
	getfd_eq(a, "a", sv[0], "{\"return\": {}}");
	getfd_eq(a, "b", sv[0], "{\"return\": {}}");
	getfd_eq(a, "c", sv[0], "{\"return\": {}}");
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before + 3);
	getfd_eq(a, "d", sv[0], "{\"error\": {\"class\": \"GenericError\", "
	    "\"desc\": \"qmpmux: the fds passed were closed: a connection "
	    "holds at most 3 (control_max_fds)\"}}");
	t_cmd_eq(a, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": "
	    "\"d\"}}", NO_FD);
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before + 3);
	t_cmd_eq(a, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": "
	    "\"a\"}}", "{\"return\": {}}");
	getfd_eq(a, "d", sv[0], "{\"return\": {}}");
	ck_assert_int_eq(t_proc_fds(t_proxy_pid, NULL), before + 3);
	t_client_free(a);
	t_wait_fds(t_proxy_pid, before - 1);
	close(sv[0]);
	close(sv[1]);
}
END_TEST


/*
 * A user other than root runs one VM by hand, with no --control: the
 * default control socket cannot be made under /run, and qmpmuxd serves
 * its VM without one, saying so, rather than exit.  (A path that is set
 * and cannot be made is an exit: test_hostile's neighbours.)
 */
START_TEST(test_default_unprivileged)
{
	const char	*argv[] = { "setpriv", "--reuid=65534",
			    "--regid=65534", "--clear-groups", t_bin("QMPMUXD"),
			    "-d", "--upstream", NULL, "--listen", NULL, NULL };
	char		*open_dir, *sock, *base, *up;

	/* a directory nobody may make sockets in, under ours */
	open_dir = t_path("open");
	ck_assert_int_eq(mkdir(open_dir, 0777), 0);
	ck_assert_int_eq(chmod(open_dir, 0777), 0);
	ck_assert_int_eq(chmod(t_dir(), 0711), 0);
	ck_assert_ptr_nonnull(base = strdup(t_dir()));
	*strrchr(base, '/') = '\0';
	ck_assert_int_eq(chmod(base, 0711), 0);
	free(base);
	if (asprintf(&up, "%s/q.sock", open_dir) == -1 ||
	    asprintf(&sock, "%s/vm.sock", open_dir) == -1)
		abort();
	argv[7] = up;
	argv[9] = sock;
	t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
	ck_assert_msg(t_wait_socket(sock, T_WAIT_MS) == 0, "qmpmuxd as "
	    "nobody did not listen; see %s/qmpmuxd.log", t_dir());
	ck_assert_int_eq(t_wait_log("qmpmuxd.log", "control: running without "
	    "a control socket: the default, " QMPMUX_RUNDIR_T "/control.sock, "
	    "cannot be made", T_WAIT_MS), 0);
	ck_assert_int_eq(t_wait_exit(t_proxy_pid, 0), -1);
	free(up);
	free(sock);
	free(open_dir);
}
END_TEST

static Suite *
control_suite(void)
{
	Suite	*s = suite_create("control");
	TCase	*tc = t_tcase(s, "control", 60);

	tcase_add_test(tc, test_negotiation_and_ids);
	tcase_add_test(tc, test_dump);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_default_unprivileged);
	tcase_add_test(tc, test_add_remove_paths);
	tcase_add_test(tc, test_add_fds);
	tcase_add_test(tc, test_hostile);
	tcase_add_test(tc, test_getfd_as_qemu);
	tcase_add_test(tc, test_nul_args);
	tcase_add_test(tc, test_reload_keeps_added);
	return (s);
}

int
main(void)
{
	return (t_run(control_suite()));
}
