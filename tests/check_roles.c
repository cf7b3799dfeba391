/*
 * A listener's role, against the real QEMU: what its clients may send
 * (read_only), what its socket is (mode, owner, group) and who may
 * connect to it (allowed_uids).  Each is given on the command line and
 * in a config file, since both must work.
 *
 * The tests run as root.  A client of another uid is a child that takes
 * that uid before it connects, as SO_PEERCRED tells the uid of the
 * process that connected; the directories on the way to its socket are
 * made searchable for it.
 */
#include "config.h"

#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

#define NOBODY		65534	/* the uid, and the gid of nogroup */
#define RUNNING		"{\"status\": \"running\", \"singlestep\": false, " \
			"\"running\": true}"
#define PAUSED		"{\"status\": \"paused\", \"singlestep\": false, " \
			"\"running\": false}"
#define DISABLED(cmd)	"{\"error\": {\"class\": \"CommandNotFound\", " \
			"\"desc\": \"The command " cmd " has been disabled " \
			"for this instance\"}}"
/* what a served client sees, as served() tells it */
#define SERVED		"greeting\n{\"return\": {}}\n{\"return\": " \
			RUNNING ", \"id\": \"u\"}"
#define REFUSED		"end of stream, nothing read"

/* How a test gives qmpmuxd its listeners (the loop tests' index). */
enum how {
	HOW_CMDLINE,
	HOW_FILE,
};

/*
 * Write DIR/qmpmuxd.conf: the VM "test" in front of t_qsock, then the
 * sections given (each "[listener test NAME]\nkey = value\n...").  A
 * listener's path is given relative to the file's directory, DIR: inih
 * cuts a section's name at 50 bytes, and so a longer path.
 */
static char *
write_conf(const char *const *sections)
{
	char	*path = t_path("qmpmuxd.conf");
	FILE	*f;

	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "[vm test]\nupstream = connect:%s\n", t_qsock);
	for (; *sections != NULL; sections++)
		fprintf(f, "%s\n", *sections);
	ck_assert_int_eq(fclose(f), 0);
	return (path);
}

/* Start qmpmuxd -d -f on the conf and wait for last, its last listener. */
static void
start_conf(const char *const *sections, const char *last)
{
	char		*conf = write_conf(sections);
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "-f", conf, NULL };

	t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
	ck_assert_msg(t_wait_socket(last, T_WAIT_MS) == 0,
	    "%s did not appear; see %s/qmpmuxd.log", last, t_dir());
	free(conf);
}

/*
 * Let another uid reach the sockets in the test's directory: the
 * directory and the run's, above it, searchable (not readable) by all.
 */
static void
open_dirs(void)
{
	char	*run;

	ck_assert_ptr_nonnull(run = strdup(t_dir()));
	ck_assert_int_eq(chmod(t_dir(), 0711), 0);
	ck_assert_int_eq(chmod(dirname(run), 0711), 0);
	free(run);
}

/*
 * What a client sees on path, told as text: "greeting" and the replies
 * to qmp_capabilities and to query-status (id "u") when it is served,
 * else how its connection went before any byte came.
 */
static char *
served(const char *path)
{
	struct t_client	*c;
	struct pollfd	 pfd;
	char		*m, *caps = NULL, *status = NULL, *out, byte;
	ssize_t		 n;

	if ((c = t_client_new(path)) == NULL)
		return (strdup("connect failed"));
	/* the first byte, peeked: none at all must come to a refused one */
	pfd.fd = t_client_fd(c);
	pfd.events = POLLIN;
	out = NULL;
	if (poll(&pfd, 1, T_WAIT_MS) != 1)
		out = strdup("nothing, and still open");
	else if ((n = recv(pfd.fd, &byte, 1, MSG_PEEK)) == 0)
		out = strdup(REFUSED);
	else if (n == -1 && asprintf(&out, "no byte: %s",
	    strerror(errno)) == -1)
		abort();
	if (out != NULL) {
		t_client_free(c);
		return (out);
	}
	if ((m = t_recv(c, T_WAIT_MS)) == NULL) {
		t_client_free(c);
		return (strdup("bytes, and no whole message"));
	}
	if (strncmp(m, "{\"QMP\": ", 8) != 0) {
		if (asprintf(&out, "not a greeting: %s", m) == -1)
			abort();
	} else {
		caps = t_cmd(c, "{\"execute\": \"qmp_capabilities\"}");
		status = t_cmd(c, "{\"execute\": \"query-status\", "
		    "\"id\": \"u\"}");
		if (asprintf(&out, "greeting\n%s\n%s",
		    caps != NULL ? caps : "(no reply)",
		    status != NULL ? status : "(no reply)") == -1)
			abort();
	}
	free(m);
	free(caps);
	free(status);
	t_client_free(c);
	return (out);
}

/*
 * What a client of uid (and gid uid, no other groups) sees on path, as
 * served() tells it: a child takes the uid, connects and writes it
 * back.  *pid is the child's, which qmpmuxd sees as the peer's.
 */
static char *
served_as(uid_t uid, const char *path, pid_t *pid)
{
	char		 buf[4096];
	struct pollfd	 pfd;
	size_t		 len = 0;
	ssize_t		 n;
	char		*out;
	int		 p[2], status;

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_ne(*pid = fork(), -1);
	if (*pid == 0) {
		close(p[0]);
		if (setgroups(0, NULL) == -1 ||
		    setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) == -1 ||
		    setresuid(uid, uid, uid) == -1) {
			dprintf(p[1], "cannot become uid %ld: %s", (long)uid,
			    strerror(errno));
			_exit(1);
		}
		out = served(path);
		dprintf(p[1], "%s", out);
		/* under memcheck a leak here would be the child's status */
		free(out);
		_exit(0);
	}
	close(p[1]);
	/* the child waits T_WAIT_MS at most four times */
	pfd.fd = p[0];
	pfd.events = POLLIN;
	while (len < sizeof(buf) - 1 && poll(&pfd, 1, 4 * T_WAIT_MS) == 1 &&
	    (n = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(p[0]);
	status = t_wait_exit(*pid, T_WAIT_MS);
	if (status == -1) {
		kill(*pid, SIGKILL);
		waitpid(*pid, &status, 0);
	}
	ck_assert_msg(t_exited(status, 0), "the client of uid %ld: status %d: "
	    "%s", (long)uid, status, buf);
	ck_assert_ptr_nonnull(out = strdup(buf));
	return (out);
}

/* A client of uid on path must see want, as served() tells it. */
static pid_t
expect_as(uid_t uid, const char *path, const char *want)
{
	pid_t	 pid;
	char	*got = served_as(uid, path, &pid);

	ck_assert_msg(strcmp(got, want) == 0, "uid %ld on %s: expected\n%s\n"
	    "got\n%s", (long)uid, path, want, got);
	free(got);
	return (pid);
}

/* This process, as root, must see want on path. */
static void
expect_root(const char *path, const char *want)
{
	char	*got = served(path);

	ck_assert_msg(strcmp(got, want) == 0, "root on %s: expected\n%s\n"
	    "got\n%s", path, want, got);
	free(got);
}

/* The refusal of the client pid of uid on path is logged, once. */
static void
expect_refusal_logged(uid_t uid, pid_t pid, const char *path)
{
	char	*line;

	if (asprintf(&line, "vm test: refused a client of uid %ld (pid %ld) "
	    "on %s: not in allowed_uids", (long)uid, (long)pid, path) == -1)
		abort();
	ck_assert_msg(t_wait_log("qmpmuxd.log", line, T_WAIT_MS) == 0,
	    "not logged: %s", line);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", line), 1);
	free(line);
}

/* The client pid of uid on path is logged as connected, once. */
static void
expect_connect_logged(uid_t uid, pid_t pid, const char *path)
{
	char	*line;

	if (asprintf(&line, ": connected on %s (pid %ld, uid %ld)", path,
	    (long)pid, (long)uid) == -1)
		abort();
	ck_assert_msg(t_log_count("qmpmuxd.log", line) == 1,
	    "not logged once: %s", line);
	free(line);
}

/*
 * A read-only listener and a full one on the same VM.  The read-only
 * client is refused stop with QEMU's own error and may query; the full
 * one stops the VM, which the read-only client then sees paused.
 */
START_TEST(test_read_only)
{
	char		*ro = t_path("ro.sock");
	const char	*extra[] = { "--read-only", "--listen", ro,
			    "--full-access", NULL };
	const char	*sections[] = { "[listener test ro.sock]\n"
			    "read_only = yes", "[listener test proxy.sock]\n"
			    "read_only = no", NULL };
	struct t_client	*r, *w;

	t_qemu_pid = t_qemu(t_qsock);
	if (_i == HOW_CMDLINE)
		t_proxy_pid = t_qmpmuxd(t_qsock, t_psock, extra);
	else
		start_conf(sections, t_psock);
	ck_assert_ptr_nonnull(r = t_client_ready(ro));
	ck_assert_ptr_nonnull(w = t_client_ready(t_psock));

	t_cmd_eq(r, "{\"execute\": \"stop\"}", DISABLED("stop"));
	t_cmd_eq(r, "{\"execute\": \"query-status\"}",
	    "{\"return\": " RUNNING "}");
	t_cmd_eq(w, "{\"execute\": \"stop\"}", "{\"return\": {}}");
	t_cmd_eq(r, "{\"execute\": \"query-status\"}",
	    "{\"return\": " PAUSED "}");
	t_cmd_eq(r, "{\"execute\": \"cont\"}", DISABLED("cont"));
	t_cmd_eq(w, "{\"execute\": \"query-status\"}",
	    "{\"return\": " PAUSED "}");
	t_client_free(r);
	t_client_free(w);
	free(ro);
}
END_TEST

/*
 * The sockets of test_socket_roles: the options before each --listen
 * (which carry over to the listeners after it), the same as a file's
 * keys, and what its socket must be.  The last one is t_psock.
 */
static const struct sock_case {
	const char	*name;
	const char	*opts[5];
	const char	*keys;
	mode_t		 mode;
	uid_t		 uid;
	gid_t		 gid;
} sock_cases[] = {
	{ "default.sock", { NULL }, "slow_client = block", 0600, 0, 0 },
	{ "mode.sock", { "--mode", "0660" }, "mode = 0660", 0660, 0, 0 },
	{ "group.sock", { "--group", "daemon" }, "mode = 0660\n"
	    "group = daemon", 0660, 0, 1 },
	{ "owner.sock", { "--owner", "nobody", "--group", "nogroup" },
	    "mode = 0660\nowner = 65534\ngroup = nogroup", 0660, NOBODY,
	    NOBODY },
	{ NULL, { "--mode", "0604", "--owner", "1" }, "mode = 0604\n"
	    "owner = daemon\ngroup = 65534", 0604, 1, NOBODY },
};
#define NSOCK_CASES	(sizeof(sock_cases) / sizeof(sock_cases[0]))

/*
 * Each socket has its mode, owner and group from the moment its path
 * appears.  An inotify watch on the directory, set before qmpmuxd
 * starts, sees every name made and every change of owner or mode in
 * it: each listener's path must appear by a rename (or a link) of a
 * socket already made, and nothing may change it afterwards, until
 * a client is greeted on the last one (so every listener was made).
 * What stat then says is what the path had when it appeared.
 */
START_TEST(test_socket_roles)
{
	char			*paths[NSOCK_CASES], *sections[NSOCK_CASES + 1];
	const char		*extra[64];
	const struct sock_case	*sc;
	struct inotify_event	*ev;
	struct t_client		*c;
	struct stat		 st;
	char			 buf[16384]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	char			*p;
	size_t			 i, k, n = 0;
	ssize_t			 len;
	int			 fd, appeared[NSOCK_CASES] = { 0 };

	for (i = 0; i < NSOCK_CASES; i++) {
		sc = &sock_cases[i];
		paths[i] = sc->name != NULL ? t_path(sc->name) :
		    strdup(t_psock);
		for (k = 0; sc->opts[k] != NULL; k++)
			extra[n++] = sc->opts[k];
		if (sc->name != NULL) {
			extra[n++] = "--listen";
			extra[n++] = paths[i];
		}
		if (asprintf(&sections[i], "[listener test %s]\n%s",
		    strrchr(paths[i], '/') + 1, sc->keys) == -1)
			abort();
	}
	extra[n] = NULL;
	sections[NSOCK_CASES] = NULL;

	ck_assert_int_ne(fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), -1);
	ck_assert_int_ne(inotify_add_watch(fd, t_dir(), IN_CREATE |
	    IN_MOVED_TO | IN_ATTRIB), -1);
	t_qemu_pid = t_qemu(t_qsock);
	if (_i == HOW_CMDLINE)
		t_proxy_pid = t_qmpmuxd(t_qsock, t_psock, extra);
	else
		start_conf((const char *const *)sections, t_psock);
	ck_assert_ptr_nonnull(c = t_client_greeted(t_psock));

	while ((len = read(fd, buf, sizeof(buf))) > 0) {
		for (p = buf; p < buf + len;
		    p += sizeof(*ev) + ev->len) {
			ev = (struct inotify_event *)(void *)p;
			ck_assert_msg(!(ev->mask & IN_Q_OVERFLOW),
			    "inotify: events lost");
			for (i = 0; i < NSOCK_CASES; i++) {
				if (ev->len == 0 || strcmp(ev->name,
				    strrchr(paths[i], '/') + 1) != 0)
					continue;
				ck_assert_msg(!appeared[i], "%s changed "
				    "(inotify mask %#x) after it appeared",
				    paths[i], ev->mask);
				ck_assert_msg(ev->mask & (IN_MOVED_TO |
				    IN_CREATE), "%s changed (inotify mask "
				    "%#x) before it appeared", paths[i],
				    ev->mask);
				appeared[i] = 1;
			}
		}
	}
	ck_assert_int_eq(errno, EAGAIN);
	close(fd);

	for (i = 0; i < NSOCK_CASES; i++) {
		sc = &sock_cases[i];
		ck_assert_msg(appeared[i], "%s: no inotify event", paths[i]);
		ck_assert_int_eq(stat(paths[i], &st), 0);
		ck_assert_msg(S_ISSOCK(st.st_mode), "%s: not a socket",
		    paths[i]);
		ck_assert_msg((st.st_mode & 07777) == sc->mode, "%s: mode "
		    "%04o, expected %04o", paths[i],
		    (unsigned int)(st.st_mode & 07777),
		    (unsigned int)sc->mode);
		ck_assert_msg(st.st_uid == sc->uid && st.st_gid == sc->gid,
		    "%s: owner %ld:%ld, expected %ld:%ld", paths[i],
		    (long)st.st_uid, (long)st.st_gid, (long)sc->uid,
		    (long)sc->gid);
		free(paths[i]);
		free(sections[i]);
	}
	t_client_free(c);
}
END_TEST

/*
 * allowed_uids on the command line: "1 0" lets root in, and refuses
 * nobody at accept, though the socket's mode would let it connect.  It
 * gets no greeting, only the end of its connection, and the refusal is
 * logged once, with its uid and pid.
 */
START_TEST(test_uids_cmdline)
{
	const char	*extra[] = { "--mode", "0666", "--allowed-uids", "1 0",
			    NULL };
	pid_t		 pid;

	open_dirs();
	t_start_qemu(extra);
	pid = expect_as(NOBODY, t_psock, REFUSED);
	expect_refusal_logged(NOBODY, pid, t_psock);
	expect_root(t_psock, SERVED);
	expect_connect_logged(0, getpid(), t_psock);
	/* the refused client took nothing: one more is served as well */
	expect_root(t_psock, SERVED);
}
END_TEST

/*
 * allowed_uids in a file, three listeners on one VM.  root only: root
 * is served, nobody refused.  nobody only, on a socket owned by nobody:
 * nobody is served, and root is refused like any other uid not listed.
 * No list: both are served.
 */
START_TEST(test_uids_file)
{
	char		*root = t_path("root.sock"), *nob = t_path("nobody.sock");
	const char	*sections[] = {
		"[listener test root.sock]\nmode = 0666\nallowed_uids = 0",
		"[listener test nobody.sock]\nowner = nobody\n"
		    "allowed_uids = nobody",
		"[listener test proxy.sock]\nmode = 0666",
		NULL };
	pid_t		 pid;

	open_dirs();
	t_qemu_pid = t_qemu(t_qsock);
	start_conf(sections, t_psock);

	pid = expect_as(NOBODY, root, REFUSED);
	expect_refusal_logged(NOBODY, pid, root);
	expect_root(root, SERVED);

	pid = expect_as(NOBODY, nob, SERVED);
	expect_connect_logged(NOBODY, pid, nob);
	expect_root(nob, REFUSED);
	expect_refusal_logged(0, getpid(), nob);

	pid = expect_as(NOBODY, t_psock, SERVED);
	expect_connect_logged(NOBODY, pid, t_psock);
	expect_root(t_psock, SERVED);
	free(root);
	free(nob);
}
END_TEST

/*
 * An owner or group that cannot be given is an error for that listener:
 * qmpmuxd, run as nobody, may not give its socket to another user or a
 * group it is not in.  At start-up it exits 1 with the reason logged,
 * and leaves nothing in the directory, not even the temporary name.
 */
static const struct chown_case {
	const char	*opts[5];
	const char	*why;
} chown_cases[] = {
	{ { "--owner", "daemon" }, "cannot change its owner to uid 1: "
	    "Operation not permitted" },
	{ { "--group", "daemon" }, "cannot change its group to gid 1: "
	    "Operation not permitted" },
	{ { "--owner", "1", "--group", "1" }, "cannot change its owner to "
	    "uid 1 and its group to gid 1: Operation not permitted" },
};

START_TEST(test_chown_fails)
{
	const struct chown_case	*cc = &chown_cases[_i];
	const char		*argv[24];
	char			*dir = t_path("nobody"), *sock, *line;
	DIR			*d;
	struct dirent		*de;
	int			 i = 0, k, status;

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chown(dir, NOBODY, NOBODY), 0);
	open_dirs();
	if (asprintf(&sock, "%s/x.sock", dir) == -1 ||
	    asprintf(&line, "vm test: cannot listen on %s: %s", sock,
	    cc->why) == -1)
		abort();
	argv[i++] = "setpriv";
	argv[i++] = "--reuid=65534";
	argv[i++] = "--regid=65534";
	argv[i++] = "--clear-groups";
	argv[i++] = t_bin("QMPMUXD");
	argv[i++] = "-d";
	argv[i++] = "--name";
	argv[i++] = "test";
	argv[i++] = "--upstream";
	argv[i++] = t_qsock;
	for (k = 0; cc->opts[k] != NULL; k++)
		argv[i++] = cc->opts[k];
	argv[i++] = "--listen";
	argv[i++] = sock;
	argv[i] = NULL;

	status = t_wait_exit(t_spawn(argv, "qmpmuxd.log"), T_WAIT_MS);
	ck_assert_msg(t_exited(status, 1), "status %d; see %s/qmpmuxd.log",
	    status, t_dir());
	ck_assert_msg(t_log_count("qmpmuxd.log", line) == 1,
	    "not logged once: %s", line);
	ck_assert_ptr_nonnull(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		ck_assert_msg(strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0, "%s left in %s",
		    de->d_name, dir);
	closedir(d);
	free(line);
	free(sock);
	free(dir);
}
END_TEST

static Suite *
roles_suite(void)
{
	Suite	*s = suite_create("roles");
	TCase	*tc;

	tc = t_tcase(s, "read_only", 60);
	tcase_add_loop_test(tc, test_read_only, HOW_CMDLINE, HOW_FILE + 1);
	tc = t_tcase(s, "sockets", 60);
	tcase_add_loop_test(tc, test_socket_roles, HOW_CMDLINE, HOW_FILE + 1);
	tcase_add_loop_test(tc, test_chown_fails, 0,
	    (int)(sizeof(chown_cases) / sizeof(chown_cases[0])));
	tc = t_tcase(s, "allowed_uids", 60);
	tcase_add_test(tc, test_uids_cmdline);
	tcase_add_test(tc, test_uids_file);
	return (s);
}

int
main(void)
{
	return (t_run(roles_suite()));
}
