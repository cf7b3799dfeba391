/*
 * qmpmuxd.conf: the check (-n), the reload (SIGHUP) and the command
 * line over the file.  Each kind of bad config is refused by -n with
 * its exact FILE:LINE: message and exit 1; good ones are counted.  A
 * reload, with real QEMUs and real sockets, removes, adds and changes
 * VMs in one SIGHUP and leaves an unchanged one untouched, and a bad
 * config changes nothing.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "testlib.h"

#define CONF		"qmpmuxd.conf"
#define LOG		"qmpmuxd.log"
#define SUN_PATH_MAX	107	/* sizeof(sun_path) - 1 on Linux */
#define LINE_MAX_CONF	198	/* the longest line inih reads whole */
#define CONF_FILE_MAX	(1 << 20)	/* the most bytes of a config file */

#define RUNNING	"{\"status\": \"running\", \"singlestep\": false, " \
		"\"running\": true}"

/* The QEMUs a test started, each with its QMP socket NAME.qmp. */
static pid_t	 qemus[8];
static int	 nqemus;

/* The common fixture, and no QEMU yet. */
static void
setup(void)
{
	t_setup();
	nqemus = 0;
}

/* Stop the QEMUs (some are stopped), then t_teardown's qmpmuxd. */
static void
teardown(void)
{
	int	 i;

	for (i = 0; i < nqemus; i++) {
		kill(qemus[i], SIGCONT);
		t_stop(qemus[i], SIGKILL);
	}
	nqemus = 0;
	t_teardown();
}

/* Append to a growing string. */
static void
append(char **s, size_t *len, const char *p, size_t n)
{
	char	*r;

	if ((r = realloc(*s, *len + n + 1)) == NULL)
		abort();
	memcpy(r + *len, p, n);
	*len += n;
	r[*len] = '\0';
	*s = r;
}

/*
 * A template made real: each "@LONG" is a socket path in the test's
 * directory one byte too long (108), each "@LINE" a comment line one
 * byte longer than inih reads whole, and each other '@' the directory.
 */
static char *
expand(const char *tmpl)
{
	const char	*dir = t_dir(), *p;
	char		*s = NULL, fill[256];
	size_t		 len = 0, n;

	append(&s, &len, "", 0);
	for (p = tmpl; *p != '\0'; p++) {
		if (strncmp(p, "@LONG", 5) == 0) {
			append(&s, &len, dir, strlen(dir));
			n = SUN_PATH_MAX + 1 - strlen(dir);
			fill[0] = '/';
			memset(fill + 1, 's', n - 1);
			append(&s, &len, fill, n);
			p += 4;
		} else if (strncmp(p, "@LINE", 5) == 0) {
			fill[0] = '#';
			memset(fill + 1, 'x', LINE_MAX_CONF);
			append(&s, &len, fill, LINE_MAX_CONF + 1);
			p += 4;
		} else if (*p == '@')
			append(&s, &len, dir, strlen(dir));
		else
			append(&s, &len, p, 1);
	}
	return (s);
}

/* Make the directory of a file of the test's directory, if need be. */
static void
make_dir_of(char *path)
{
	char	*slash;

	if ((slash = strrchr(path, '/')) != NULL) {
		*slash = '\0';
		if (mkdir(path, 0755) == -1 && errno != EEXIST)
			abort();
		*slash = '/';
	}
}

/*
 * Write a file of the test's directory (its own directory made first)
 * from a template; returns its path.  It is written whole, then renamed
 * into place, so that a reload never reads half of it.
 */
static char *
write_file(const char *name, const char *tmpl)
{
	char	*path = t_path(name), *tmp, *text = expand(tmpl);
	FILE	*f;

	make_dir_of(path);
	if (asprintf(&tmp, "%s.tmp", path) == -1 ||
	    (f = fopen(tmp, "w")) == NULL)
		abort();
	if (fputs(text, f) == EOF || fclose(f) == EOF ||
	    rename(tmp, path) == -1)
		abort();
	free(tmp);
	free(text);
	return (path);
}

/* The whole text of a file of the test's directory ("" if none). */
static char *
read_file(const char *name)
{
	char	*path = t_path(name), *s = NULL, buf[4096];
	size_t	 len = 0, n;
	FILE	*f;

	append(&s, &len, "", 0);
	if ((f = fopen(path, "r")) != NULL) {
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			append(&s, &len, buf, n);
		fclose(f);
	}
	free(path);
	return (s);
}

/*
 * Run qmpmuxd with args (after the binary), wait for its exit and
 * return its status; what it wrote is in DIR/check.out and check.err,
 * each made anew.
 */
static int
run_qmpmuxd(const char *const *args)
{
	const char	*argv[16];
	char		*out = t_path("check.out"), *err = t_path("check.err");
	pid_t		 pid;
	int		 i = 0, status;

	unlink(out);
	unlink(err);
	free(out);
	free(err);
	argv[i++] = t_bin("QMPMUXD");
	while (*args != NULL && i < 15)
		argv[i++] = *args++;
	argv[i] = NULL;
	pid = t_spawn_split(argv, "check.out", "check.err");
	status = t_wait_exit(pid, T_WAIT_MS);
	if (status == -1) {
		t_stop(pid, SIGKILL);
		ck_abort_msg("qmpmuxd %s did not exit", argv[1]);
	}
	return (status);
}

/* qmpmuxd -n -f DIR/CONF must say it is good, with n VMs, and exit 0. */
static void
check_ok(int n)
{
	char	*conf = t_path(CONF), *out, *err, want[64];
	int	 status;

	status = run_qmpmuxd((const char *[]){ "-n", "-f", conf, NULL });
	out = read_file("check.out");
	err = read_file("check.err");
	snprintf(want, sizeof(want), "configuration OK: %d VMs\n", n);
	ck_assert_msg(t_exited(status, 0) && strcmp(out, want) == 0 &&
	    *err == '\0', "qmpmuxd -n: status %d, out \"%s\", err \"%s\"",
	    status, out, err);
	free(conf);
	free(out);
	free(err);
}

/*
 * qmpmuxd -n -f DIR/CONF must refuse it with exactly want (a template)
 * on standard error, nothing on its output, and exit 1.
 */
static void
check_bad(const char *name, const char *tmpl)
{
	char	*conf = t_path(CONF), *out, *err, *want = expand(tmpl);
	int	 status;

	status = run_qmpmuxd((const char *[]){ "-n", "-f", conf, NULL });
	out = read_file("check.out");
	err = read_file("check.err");
	ck_assert_msg(t_exited(status, 1) && strcmp(err, want) == 0 &&
	    *out == '\0', "%s: qmpmuxd -n: status %d, out \"%s\", expected\n"
	    "  %sgot\n  %s", name, status, out, want, err);
	free(conf);
	free(out);
	free(err);
	free(want);
}

/* A VM that would be good on its own, at lines 1 to 3. */
#define VM_A	"[vm a]\nupstream = connect:@/a.qmp\n[listener a @/a.sock]\n"
#define IN	"qmpmuxd: @/" CONF ":"

/*
 * The kinds of bad config: the file, a second file it may include, and
 * the whole of what -n must say.
 */
static const struct bad_conf {
	const char	*name;
	const char	*conf;
	const char	*inc_name;
	const char	*inc;
	const char	*want;
} bad_confs[] = {
	{ "unknown key",
	    VM_A "[vm b]\nupstream = connect:@/b.qmp\ncommand_timout = 10\n"
	    "[listener b @/b.sock]\n", NULL, NULL,
	    IN "6: command_timout = 10: unknown key\n" },
	{ "unknown key in a listener",
	    VM_A "sndbuf = 4096\n", NULL, NULL,
	    IN "4: sndbuf = 4096: unknown key\n" },
	{ "a number out of range",
	    "[global]\nmax_inflight = 9\n" VM_A, NULL, NULL,
	    IN "2: max_inflight = 9: expected 1 to 8\n" },
	{ "a bad size",
	    "[global]\nmax_queued_bytes = 4X\n" VM_A, NULL, NULL,
	    IN "2: max_queued_bytes = 4X: expected a size in bytes\n" },
	{ "a size past QEMU's own bound",
	    VM_A "[vm b]\nupstream = connect:@/b.qmp\n"
	    "max_client_message = 65M\n[listener b @/b.sock]\n", NULL, NULL,
	    IN "6: max_client_message = 65M: expected a size in bytes, at "
	    "most 64M\n" },
	{ "bad seconds",
	    "[global]\ncommand_timeout = 1min\n" VM_A, NULL, NULL,
	    IN "2: command_timeout = 1min: expected seconds (0: none)\n" },
	{ "no seconds where 0 is not none",
	    "[global]\nhandshake_timeout = 0\n" VM_A, NULL, NULL,
	    IN "2: handshake_timeout = 0: expected seconds above 0\n" },
	{ "a bad mode",
	    VM_A "mode = 0800\n", NULL, NULL,
	    IN "4: mode = 0800: expected an octal mode from 0 to 0777\n" },
	{ "a mode past 0777",
	    VM_A "mode = 01777\n", NULL, NULL,
	    IN "4: mode = 01777: expected an octal mode from 0 to 0777\n" },
	{ "an owner that does not exist",
	    VM_A "owner = qmpmux-no-such-user\n", NULL, NULL,
	    IN "4: owner = qmpmux-no-such-user: no such user\n" },
	{ "a group that does not exist",
	    VM_A "group = qmpmux-no-such-group\n", NULL, NULL,
	    IN "4: group = qmpmux-no-such-group: no such group\n" },
	{ "a listener's key in [vm]",
	    "[vm a]\nupstream = connect:@/a.qmp\nread_only = yes\n"
	    "[listener a @/a.sock]\n", NULL, NULL,
	    IN "3: read_only = yes: a key of a [listener], not of a VM\n" },
	{ "a VM's key in a listener",
	    VM_A "command_timeout = 5\n", NULL, NULL,
	    IN "4: command_timeout = 5: not a key of a [listener]\n" },
	{ "upstream in [global]",
	    "[global]\nupstream = connect:@/a.qmp\n" VM_A, NULL, NULL,
	    IN "2: upstream belongs in a [vm] section\n" },
	{ "a [global] key in [vm]",
	    "[vm a]\nupstream = connect:@/a.qmp\n"
	    "max_total_queued_bytes = 1G\n[listener a @/a.sock]\n", NULL, NULL,
	    IN "3: max_total_queued_bytes = 1G: a key of [global] only\n" },
	{ "a key outside of any section",
	    "command_timeout = 5\n" VM_A, NULL, NULL,
	    IN "1: command_timeout outside of a section\n" },
	{ "a [vm] given twice",
	    VM_A "\n[vm a]\nupstream = connect:@/b.qmp\n", NULL, NULL,
	    IN "5: [vm a] is given twice (first at @/" CONF ":1)\n" },
	{ "a [vm] given twice, spaced otherwise",
	    VM_A "[ vm\t a ]\nupstream = connect:@/b.qmp\n", NULL, NULL,
	    IN "4: [vm a] is given twice (first at @/" CONF ":1)\n" },
	{ "a listener given twice",
	    VM_A "[listener a @/a.sock]\n", NULL, NULL,
	    IN "4: [listener a @/a.sock] is given twice (first at @/" CONF
	    ":3)\n" },
	{ "a listener's path given twice, once relative",
	    VM_A "[listener a a.sock]\n", NULL, NULL,
	    IN "4: listener @/a.sock is given twice\n" },
	{ "a listener's path given in two VMs",
	    VM_A "[vm b]\nupstream = connect:@/b.qmp\n[listener b @/a.sock]\n",
	    NULL, NULL,
	    IN "6: listener @/a.sock is given twice\n" },
	{ "a listener of an unknown VM",
	    VM_A "[listener b @/b.sock]\n", NULL, NULL,
	    IN "4: a listener of vm b, which has no [vm b] section\n" },
	{ "a VM without upstream",
	    VM_A "[vm b]\ncommand_timeout = 5\n[listener b @/b.sock]\n", NULL,
	    NULL, IN "4: vm b has no upstream\n" },
	{ "a VM without keys",
	    VM_A "[vm b]\n[listener b @/b.sock]\n", NULL, NULL,
	    IN "4: vm b has no upstream\n" },
	{ "a VM without listener",
	    VM_A "[vm b]\nupstream = connect:@/b.qmp\n", NULL, NULL,
	    IN "4: vm b has no listener\n" },
	{ "an upstream with neither mode nor absolute path",
	    "[vm a]\nupstream = a.qmp\n[listener a @/a.sock]\n", NULL, NULL,
	    IN "2: upstream = a.qmp: expected connect:PATH or listen:PATH, "
	    "with an absolute path\n" },
	{ "a section of no known kind",
	    VM_A "[vms b]\nupstream = connect:@/b.qmp\n", NULL, NULL,
	    IN "4: [vms b]: expected [global], [vm NAME] or "
	    "[listener NAME PATH]\n" },
	{ "a [vm] header with two names",
	    VM_A "[vm b c]\nupstream = connect:@/b.qmp\n", NULL, NULL,
	    IN "4: [vm b c]: expected [global], [vm NAME] or "
	    "[listener NAME PATH]\n" },
	{ "a section header without ]",
	    "[vm a\nupstream = connect:@/a.qmp\n[listener a @/a.sock]\n",
	    NULL, NULL, IN "1: not a section, a comment or key = value\n" },
	{ "a VM name with a /",
	    VM_A "[vm b/c]\nupstream = connect:@/b.qmp\n", NULL, NULL,
	    IN "4: [vm b/c]: a VM's name is 1 to 64 printable bytes, without "
	    "spaces, '/', '\"' or '\\'\n" },
	{ "a listener's socket path too long",
	    "[vm a]\nupstream = connect:@/a.qmp\n[listener a @LONG]\n", NULL,
	    NULL, IN "3: listener @LONG: the path is 108 bytes long, and a "
	    "unix socket path can be at most 107 bytes\n" },
	{ "an upstream's socket path too long",
	    "[vm a]\nupstream = connect:@LONG\n[listener a @/a.sock]\n", NULL,
	    NULL, IN "2: upstream = connect:@LONG: the path is 108 bytes long, "
	    "and a unix socket path can be at most 107 bytes\n" },
	{ "a line too long for inih",
	    VM_A "@LINE\nmode = 0600\n", NULL, NULL,
	    IN "4: line longer than 198 bytes\n" },
	{ "an include with an error in the included file",
	    "[global]\ninclude = conf.d/*.conf\n" VM_A,
	    "conf.d/b.conf",
	    "[vm b]\nupstream = connect:@/b.qmp\nmax_inflight = 0\n"
	    "[listener b @/b.sock]\n",
	    "qmpmuxd: @/conf.d/b.conf:3: max_inflight = 0: expected 1 to 8\n" },
	{ "an include in an included file",
	    "[global]\ninclude = conf.d/*.conf\n" VM_A,
	    "conf.d/b.conf", "[global]\ninclude = more.conf\n",
	    "qmpmuxd: @/conf.d/b.conf:2: include in an included file\n" },
	{ "a [vm] given twice, once in an included file",
	    "[global]\ninclude = conf.d/*.conf\n" VM_A,
	    "conf.d/b.conf", "[vm a]\nupstream = connect:@/b.qmp\n",
	    "qmpmuxd: @/conf.d/b.conf:1: [vm a] is given twice (first at @/"
	    CONF ":3)\n" },
	{ "an include outside of [global]",
	    VM_A "[vm b]\ninclude = conf.d/*.conf\n", NULL, NULL,
	    IN "5: include belongs in [global]\n" },
};
#define NBAD	((int)(sizeof(bad_confs) / sizeof(bad_confs[0])))

/* Each kind of bad config: -n says where and why, and exits 1. */
START_TEST(test_check_bad)
{
	const struct bad_conf	*b = &bad_confs[_i];

	free(write_file(CONF, b->conf));
	if (b->inc_name != NULL)
		free(write_file(b->inc_name, b->inc));
	check_bad(b->name, b->want);
}
END_TEST

/* An empty file is a config with no VMs. */
START_TEST(test_check_empty)
{
	free(write_file(CONF, ""));
	check_ok(0);
}
END_TEST

/*
 * The shape of qmpmuxd.conf(5)'s example: [global] with a per-command
 * timeout and an include, a VM with its own bound, two listeners with
 * an owner, a group and a mode; the included file adds a second VM.
 * Comment lines as long as inih reads whole are taken.
 */
START_TEST(test_check_example)
{
	char	 comment[LINE_MAX_CONF + 2], *text;

	memset(comment, 'x', sizeof(comment));
	comment[0] = '#';
	comment[LINE_MAX_CONF] = '\n';
	comment[LINE_MAX_CONF + 1] = '\0';
	if (asprintf(&text,
	    "%s[global]\n"
	    "command_timeout = 30\n"
	    "timeout.blockdev-add = 600\n"
	    "include = @/conf.d/*.conf\n"
	    "\n"
	    "[vm web1]\n"
	    "upstream = connect:@/web1.qmp\n"
	    "command_timeout = 10\n"
	    "\n"
	    "[listener web1 @/web1.sock]\n"
	    "owner = root\n"
	    "\n"
	    "; a comment\n"
	    "[listener web1 @/web1-ro.sock]\n"
	    "read_only = yes\n"
	    "mode = 0660\n"
	    "group = daemon\n", comment) == -1)
		abort();
	free(write_file(CONF, text));
	free(write_file("conf.d/web2.conf",
	    "[vm web2]\nupstream = listen:@/web2.qmp\n"
	    "[listener web2 @/web2.sock]\nowner = daemon\nallowed_uids = "
	    "root daemon\nslow_client = disconnect\n"));
	free(write_file("conf.d/notes.txt", "not a config\n"));
	check_ok(2);
	free(text);
}
END_TEST

/*
 * An include that matches no file adds nothing, and so does one whose
 * directory does not exist (a conf.d not made yet).
 */
START_TEST(test_check_include_nothing)
{
	free(write_file(CONF, "[global]\ninclude = conf.d/*.conf\n"
	    "include = @/none.d/*.conf\n" VM_A));
	free(write_file("conf.d/README", "no config here\n"));
	check_ok(1);
}
END_TEST

/*
 * Write DIR/NAME of exactly size bytes: a template, then comment lines
 * as long as inih reads whole, the last one cut to fit.
 */
static void
write_sized(const char *name, const char *tmpl, size_t size)
{
	char	*path = t_path(name), *text = expand(tmpl);
	char	 line[LINE_MAX_CONF + 1];
	size_t	 left, n;
	FILE	*f;

	memset(line, 'x', sizeof(line));
	line[0] = '#';
	make_dir_of(path);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_int_ge(fputs(text, f), 0);
	for (left = size - strlen(text); left > 0; left -= n) {
		n = left < sizeof(line) ? left : sizeof(line);
		line[n - 1] = '\n';
		ck_assert_uint_eq(fwrite(line, 1, n, f), n);
		line[n - 1] = 'x';
	}
	ck_assert_int_eq(fclose(f), 0);
	free(text);
	free(path);
}

/* What DIR/NAME is made as, for test_check_not_regular. */
enum special {
	SPECIAL_FIFO,		/* a FIFO */
	SPECIAL_ZERO,		/* a symlink to /dev/zero */
	SPECIAL_BIG		/* a file one byte past the bound */
};

/* Make DIR/NAME special, its directory first. */
static void
make_special(const char *name, enum special kind)
{
	char	*path = t_path(name);

	make_dir_of(path);
	unlink(path);
	switch (kind) {
	case SPECIAL_FIFO:
		ck_assert_int_eq(mkfifo(path, 0644), 0);
		break;
	case SPECIAL_ZERO:
		ck_assert_int_eq(symlink("/dev/zero", path), 0);
		break;
	case SPECIAL_BIG:
		write_sized(name, "", CONF_FILE_MAX + 1);
		break;
	}
	free(path);
}

/*
 * The files qmpmuxd cannot read as a config: an include, or the file
 * itself, that is a FIFO, a symlink to /dev/zero or one byte past
 * 1 MiB.  -n exits 1 at once (run_qmpmuxd's bound) with the include's
 * FILE:LINE, or the file's path.
 */
static const struct not_regular {
	const char	*name;
	const char	*file;		/* made special */
	enum special	 kind;
	const char	*conf;		/* written, unless it is the file */
	const char	*want;
} not_regulars[] = {
	{ "an include of a FIFO", "conf.d/fifo.conf", SPECIAL_FIFO,
	    "[global]\ninclude = conf.d/*.conf\n" VM_A,
	    IN "2: include conf.d/*.conf: @/conf.d/fifo.conf: not a regular "
	    "file\n" },
	{ "an include of a symlink to /dev/zero", "conf.d/zero.conf",
	    SPECIAL_ZERO, "[global]\ninclude = conf.d/*.conf\n" VM_A,
	    IN "2: include conf.d/*.conf: @/conf.d/zero.conf: not a regular "
	    "file\n" },
	{ "an include of a file past 1 MiB", "conf.d/big.conf", SPECIAL_BIG,
	    "[global]\ninclude = conf.d/*.conf\n" VM_A,
	    IN "2: include conf.d/*.conf: @/conf.d/big.conf: larger than "
	    "1048576 bytes\n" },
	{ "a FIFO as the file", CONF, SPECIAL_FIFO, NULL,
	    "qmpmuxd: @/" CONF ": not a regular file\n" },
	{ "a symlink to /dev/zero as the file", CONF, SPECIAL_ZERO, NULL,
	    "qmpmuxd: @/" CONF ": not a regular file\n" },
	{ "a file past 1 MiB", CONF, SPECIAL_BIG, NULL,
	    "qmpmuxd: @/" CONF ": larger than 1048576 bytes\n" },
};
#define NNOTREG	((int)(sizeof(not_regulars) / sizeof(not_regulars[0])))

/* Each file that cannot be read as a config: -n refuses it at once. */
START_TEST(test_check_not_regular)
{
	const struct not_regular	*b = &not_regulars[_i];

	if (b->conf != NULL)
		free(write_file(CONF, b->conf));
	make_special(b->file, b->kind);
	check_bad(b->name, b->want);
}
END_TEST

/* A file and an include of exactly 1 MiB each are read whole. */
START_TEST(test_check_size_edge)
{
	write_sized(CONF, "[global]\ninclude = conf.d/*.conf\n" VM_A,
	    CONF_FILE_MAX);
	write_sized("conf.d/b.conf", "[vm b]\nupstream = connect:@/b.qmp\n"
	    "[listener b @/b.sock]\n", CONF_FILE_MAX);
	check_ok(2);
}
END_TEST

/* A name that makes DIR/NAME len bytes long, of the letter c. */
static char *
name_for(size_t len, char c)
{
	size_t	 n = len - strlen(t_dir()) - 1;
	char	*name;

	if ((name = malloc(n + 1)) == NULL)
		abort();
	memset(name, c, n);
	name[n] = '\0';
	return (name);
}

/* Socket paths of 107 bytes are taken; of 108, refused (above). */
START_TEST(test_check_path_107)
{
	char	*up = name_for(SUN_PATH_MAX, 'q'), *l = name_for(SUN_PATH_MAX,
		    'l'), *tmpl;

	if (asprintf(&tmpl, "[vm a]\nupstream = connect:@/%s\n"
	    "[listener a @/%s]\n", up, l) == -1)
		abort();
	free(write_file(CONF, tmpl));
	check_ok(1);
	free(tmpl);
	free(up);
	free(l);
}
END_TEST

/* Start a traced QEMU with its QMP socket at DIR/NAME.qmp. */
static void
start_qemu(const char *name)
{
	char	*sock, trace[64];

	ck_assert_int_lt(nqemus, (int)(sizeof(qemus) / sizeof(qemus[0])));
	if (asprintf(&sock, "%s/%s.qmp", t_dir(), name) == -1)
		abort();
	snprintf(trace, sizeof(trace), "%s.trace", name);
	qemus[nqemus++] = t_qemu_traced(sock, trace);
	free(sock);
}

/* The pid of the QEMU started nth. */
static pid_t
qemu(int nth)
{
	return (qemus[nth]);
}

/*
 * Stop a QEMU, and wait until every thread of it has stopped: kill
 * returns before they have, and for that moment QEMU still handles
 * what it is sent.  The wait is its parent's, for the stop itself.
 */
static void
stop_qemu(pid_t pid)
{
	struct timespec	 ts;
	sigset_t	 set, old;
	long long	 end = t_clock_ms() + T_WAIT_MS, left;
	pid_t		 r;
	int		 status = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	/* a SIGCHLD between the two calls stays pending: no wake is lost */
	while ((r = waitpid(pid, &status, WUNTRACED | WNOHANG)) == 0 &&
	    (left = end - t_clock_ms()) > 0) {
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		sigtimedwait(&set, NULL, &ts);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	ck_assert_msg(r == pid && WIFSTOPPED(status), "QEMU %ld did not stop",
	    (long)pid);
}

/*
 * How many requests QEMU NAME handled that begin with text, as its
 * trace shows them ({"execute": "query-status", ...}).
 */
static int
trace_count(const char *name, const char *text)
{
	char	 log[64], *needle;
	int	 n;

	snprintf(log, sizeof(log), "%s.trace", name);
	if (asprintf(&needle, "req: {\"execute\": \"%s\"", text) == -1)
		abort();
	n = t_log_count(log, needle);
	free(needle);
	return (n);
}

/*
 * Start qmpmuxd -d -f DIR/CONF with extra options, and wait for the
 * listening sockets named (NULL-terminated).
 */
static void
start_proxy(const char *const *extra, const char *const *socks)
{
	const char	*argv[16];
	char		*conf = t_path(CONF), *path;
	int		 i = 0;

	argv[i++] = t_bin("QMPMUXD");
	argv[i++] = "-d";
	argv[i++] = "-f";
	argv[i++] = conf;
	while (extra != NULL && *extra != NULL && i < 15)
		argv[i++] = *extra++;
	argv[i] = NULL;
	t_proxy_pid = t_spawn(argv, LOG);
	for (; *socks != NULL; socks++) {
		path = t_path(*socks);
		ck_assert_msg(t_wait_socket(path, T_WAIT_MS) == 0,
		    "%s did not appear; see %s/%s", path, t_dir(), LOG);
		free(path);
	}
	free(conf);
}

/* A negotiated client of the listener DIR/NAME. */
static struct t_client *
client(const char *name)
{
	struct t_client	*c;
	char		*path = t_path(name);

	c = t_client_ready(path);
	ck_assert_msg(c != NULL, "no client of %s", path);
	free(path);
	return (c);
}

/* c's QEMU answers query-status, through qmpmuxd; where is the caller. */
static void
serves_at(const char *where, struct t_client *c, const char *id)
{
	char	 cmd[128], want[256];

	snprintf(cmd, sizeof(cmd), "{\"execute\":\"query-status\","
	    "\"id\":\"%s\"}", id);
	snprintf(want, sizeof(want), "{\"return\": " RUNNING ", \"id\": "
	    "\"%s\"}", id);
	t_cmd_eq_at(where, c, cmd, want);
}
#define serves(c, id)	serves_at(__FILE__ ":" T_STR(__LINE__), (c), (id))

/* A new client of DIR/NAME is served, and goes. */
static void
new_client_served(const char *name)
{
	struct t_client	*c = client(name);

	serves_at(name, c, name);
	t_client_free(c);
}

/* The next thing c hears is the end of the stream. */
static void
hears_eof(struct t_client *c, const char *what)
{
	ck_assert_msg(t_quiet(c, T_WAIT_MS) == T_EOF, "%s: no EOF", what);
}

/* Whether DIR/NAME is gone: no socket, no file at all. */
static int
gone(const char *name)
{
	struct stat	 st;
	char		*path = t_path(name);
	int		 r;

	r = stat(path, &st) == -1 && errno == ENOENT;
	free(path);
	return (r);
}

/* Milliseconds of the day of a log line's stamp (HH:MM:SS.mmm). */
static long
log_stamp_ms(const char *text)
{
	char	*log = read_file(LOG), *p, *line;
	int	 h, m, s, ms;
	long	 at = -1;

	for (line = log; line != NULL && *line != '\0'; line = p) {
		if ((p = strchr(line, '\n')) != NULL)
			*p++ = '\0';
		if (strstr(line, text) != NULL &&
		    sscanf(line, "%d:%d:%d.%d", &h, &m, &s, &ms) == 4)
			at = ((h * 60L + m) * 60 + s) * 1000 + ms;
	}
	free(log);
	return (at);
}

/* The VMs of the reload test, before: B goes, F comes. */
static const char conf_before[] =
	"[global]\n"
	"command_timeout = 30\n"
	"\n"
	"[vm a]\n"
	"upstream = connect:@/a.qmp\n"
	"[listener a @/a.sock]\n"
	"\n"
	"[vm b]\n"
	"upstream = connect:@/b.qmp\n"
	"[listener b @/b.sock]\n"
	"\n"
	"[vm c]\n"
	"upstream = connect:@/c.qmp\n"
	"[listener c @/c.sock]\n"
	"\n"
	"[vm d]\n"
	"upstream = connect:@/d1.qmp\n"
	"[listener d @/d.sock]\n"
	"\n"
	"[vm e]\n"
	"upstream = connect:@/e.qmp\n"
	"[listener e @/e1.sock]\n"
	"[listener e @/e2.sock]\n";

/*
 * After: A the same (moved in the file), B gone, C with its own
 * command_timeout, D on another QEMU, E with e2 gone and e3 new, F new.
 */
#define CONF_AFTER \
	"[global]\n" \
	"command_timeout = 30\n" \
	"\n" \
	"[vm c]\n" \
	"upstream = connect:@/c.qmp\n" \
	"command_timeout = 1\n" \
	"[listener c @/c.sock]\n" \
	"\n" \
	"[vm a]\n" \
	"upstream = connect:@/a.qmp\n" \
	"[listener a @/a.sock]\n" \
	"\n" \
	"[vm d]\n" \
	"upstream = connect:@/d2.qmp\n" \
	"[listener d @/d.sock]\n" \
	"\n" \
	"[vm e]\n" \
	"upstream = connect:@/e.qmp\n" \
	"[listener e @/e1.sock]\n" \
	"[listener e @/e3.sock]\n" \
	"\n" \
	"[vm f]\n" \
	"upstream = connect:@/f.qmp\n" \
	"[listener f @/f.sock]\n"

/*
 * One SIGHUP removes, adds and changes VMs, each as qmpmuxd(8) says;
 * then a bad config changes nothing.
 */
START_TEST(test_reload)
{
	static const char *const names[] = { "a", "b", "c", "d1", "d2", "e",
	    "f" };
	struct t_client	*a, *b, *c, *d, *e1, *e2, *d2, *e3, *f;
	long long	 t0, ms;
	long		 hup, done;
	char		*m, *want;
	size_t		 i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		start_qemu(names[i]);
	free(write_file(CONF, conf_before));
	start_proxy(NULL, (const char *[]){ "a.sock", "b.sock", "c.sock",
	    "d.sock", "e1.sock", "e2.sock", NULL });
	a = client("a.sock");
	b = client("b.sock");
	c = client("c.sock");
	d = client("d.sock");
	e1 = client("e1.sock");
	e2 = client("e2.sock");
	serves(a, "a0");
	serves(d, "d0");

	/*
	 * B's QEMU stops with a command of b's in flight.  a's round trip
	 * after it is a barrier: qmpmuxd reads each socket as it becomes
	 * readable, so once it has answered a, it has read b's command,
	 * which was in b's socket first.
	 */
	stop_qemu(qemu(1));
	t_send(b, "{\"execute\":\"query-status\",\"id\":\"b-pending\"}\n");
	serves(a, "a1");

	free(write_file(CONF, CONF_AFTER));
	t0 = t_clock_ms();
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert_msg(t_wait_log(LOG, "reloaded: 1 VMs added, 1 removed, "
	    "3 changed; 5 running", T_WAIT_MS) == 0, "no \"reloaded\" line "
	    "as expected; see %s/%s", t_dir(), LOG);
	ms = t_clock_ms() - t0;
	hup = log_stamp_ms("received SIGHUP, reloading");
	done = log_stamp_ms("reloaded: ");
	fprintf(stderr, "check_conf: reload of 6 VMs: %lld ms from SIGHUP to "
	    "the \"reloaded\" line seen; %ld ms in the log's stamps\n", ms,
	    done - hup);

	/* B: its command answered, then EOF, and its socket gone */
	t_recv_eq(b, "{\"id\": \"b-pending\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: VM removed\"}}");
	hears_eof(b, "b");
	ck_assert_msg(gone("b.sock"), "b.sock left behind");

	/* A: the same connection serves, and QEMU saw one handshake */
	serves(a, "a2");
	ck_assert_int_eq(trace_count("a", "qmp_capabilities"), 1);

	/* D: the old upstream's client is closed; a new one reaches D2 */
	hears_eof(d, "d");
	d2 = client("d.sock");
	serves(d2, "d-new");
	ck_assert_int_eq(trace_count("d2", "query-status"), 1);
	ck_assert_int_eq(trace_count("d1", "query-status"), 1);

	/* E: e2's client closed with its socket; e1's kept; e3 new */
	hears_eof(e2, "e2");
	ck_assert_msg(gone("e2.sock"), "e2.sock left behind");
	serves(e1, "e1");
	e3 = client("e3.sock");
	serves(e3, "e3");
	ck_assert_int_eq(trace_count("e", "qmp_capabilities"), 1);

	/* F: new, and served */
	f = client("f.sock");
	serves(f, "f");

	/*
	 * C: the client of before keeps its connection, and its next
	 * command, to a stopped QEMU, times out after the new 1s, not 30.
	 */
	stop_qemu(qemu(2));
	t0 = t_clock_ms();
	t_send(c, "{\"execute\":\"query-status\",\"id\":\"c-late\"}\n");
	t_recv_eq(c, "{\"id\": \"c-late\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: QEMU did not reply to "
	    "query-status within 1s; it was sent and may still complete\"}}");
	ms = t_clock_ms() - t0;
	ck_assert_msg(ms >= 950 && ms < 5000 * t_slow(), "timed out after "
	    "%lld ms", ms);
	ck_assert_int_eq(kill(qemu(2), SIGCONT), 0);
	ck_assert_int_eq(trace_count("c", "qmp_capabilities"), 1);
	serves(c, "c");

	/*
	 * A bad config, which would add G before its error: nothing
	 * changes, every client of before is served, and so are new ones.
	 */
	free(write_file(CONF, CONF_AFTER "\n[vm g]\nupstream = "
	    "connect:@/g.qmp\nmax_inflight = 9\n[listener g @/g.sock]\n"));
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	want = expand("reload failed, the running configuration stays: "
	    "@/" CONF ":28: max_inflight = 9: expected 1 to 8");
	ck_assert_msg(t_wait_log(LOG, want, T_WAIT_MS) == 0, "no \"%s\"; see "
	    "%s/%s", want, t_dir(), LOG);
	free(want);
	ck_assert(gone("g.sock"));
	ck_assert(gone("b.sock"));
	ck_assert(gone("e2.sock"));
	ck_assert_int_eq(t_log_count(LOG, "reloaded: "), 1);
	serves(a, "a3");
	serves(c, "c2");
	serves(d2, "d2");
	serves(e1, "e1-2");
	serves(e3, "e3-2");
	serves(f, "f2");
	new_client_served("a.sock");
	new_client_served("c.sock");
	new_client_served("d.sock");
	new_client_served("e1.sock");
	new_client_served("e3.sock");
	new_client_served("f.sock");
	ck_assert_int_eq(trace_count("a", "qmp_capabilities"), 1);

	/* B's QEMU, stopped all along, had nothing more from qmpmuxd */
	m = read_file("b.trace");
	ck_assert_msg(strstr(m, "query-status") == NULL, "B: %s", m);
	free(m);

	t_client_free(a);
	t_client_free(b);
	t_client_free(c);
	t_client_free(d);
	t_client_free(e1);
	t_client_free(e2);
	t_client_free(d2);
	t_client_free(e3);
	t_client_free(f);
}
END_TEST

/*
 * A reload of a file whose include is a FIFO, then a symlink to
 * /dev/zero, then one past 1 MiB, fails at once and says why: the
 * client of before and a new one are served after each.
 */
START_TEST(test_reload_not_regular)
{
	static const enum special	 kinds[] = { SPECIAL_FIFO, SPECIAL_ZERO,
					    SPECIAL_BIG };
	static const char *const	 why[] = { "not a regular file",
					    "not a regular file",
					    "larger than 1048576 bytes" };
	struct t_client	*a;
	char		*want, *old, tmpl[256], name[32];
	int		 i;

	start_qemu("a");
	free(write_file(CONF, VM_A));
	start_proxy(NULL, (const char *[]){ "a.sock", NULL });
	a = client("a.sock");
	serves(a, "a");
	free(write_file(CONF, "[global]\ninclude = conf.d/*.conf\n" VM_A));
	/* each its own name, so that each failure is told apart */
	for (i = 0; i < 3; i++) {
		if (i > 0) {
			snprintf(name, sizeof(name), "conf.d/x%d.conf", i - 1);
			ck_assert_int_eq(unlink(old = t_path(name)), 0);
			free(old);
		}
		snprintf(name, sizeof(name), "conf.d/x%d.conf", i);
		make_special(name, kinds[i]);
		ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
		snprintf(tmpl, sizeof(tmpl), "reload failed, the running "
		    "configuration stays: @/" CONF ":2: include "
		    "conf.d/*.conf: @/%s: %s", name, why[i]);
		want = expand(tmpl);
		ck_assert_msg(t_wait_log(LOG, want, T_WAIT_MS) == 0, "no "
		    "\"%s\"; see %s/%s", want, t_dir(), LOG);
		free(want);
		serves(a, name);
		new_client_served("a.sock");
	}
	ck_assert_int_eq(t_log_count(LOG, "reloaded: "), 0);
	t_client_free(a);
}
END_TEST

/*
 * A listener's path may pass from one VM to another in one reload,
 * whatever their order in the file: from X, changed, to W, changed,
 * and to Y, new, both before X.  X's client on the path is closed;
 * new clients there reach the VM that has it now.
 */
START_TEST(test_reload_moves_listener)
{
	struct t_client	*p1;

	start_qemu("x");
	start_qemu("w");
	start_qemu("y");
	free(write_file(CONF,
	    "[vm x]\nupstream = connect:@/x.qmp\n[listener x @/p1.sock]\n"
	    "[listener x @/p2.sock]\n[listener x @/x.sock]\n"
	    "[vm w]\nupstream = connect:@/w.qmp\n[listener w @/w.sock]\n"));
	start_proxy(NULL, (const char *[]){ "p1.sock", "p2.sock", "x.sock",
	    "w.sock", NULL });
	p1 = client("p1.sock");
	free(write_file(CONF,
	    "[vm w]\nupstream = connect:@/w.qmp\n[listener w @/w.sock]\n"
	    "[listener w @/p1.sock]\n"
	    "[vm y]\nupstream = connect:@/y.qmp\n[listener y @/p2.sock]\n"
	    "[vm x]\nupstream = connect:@/x.qmp\n[listener x @/x.sock]\n"));
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert_msg(t_wait_log(LOG, "reloaded: 1 VMs added, 0 removed, "
	    "2 changed; 3 running", T_WAIT_MS) == 0, "no \"reloaded\" line "
	    "as expected; see %s/%s", t_dir(), LOG);
	hears_eof(p1, "x's client on p1");
	new_client_served("p1.sock");
	new_client_served("p2.sock");
	new_client_served("x.sock");
	new_client_served("w.sock");
	ck_assert_int_eq(trace_count("w", "query-status"), 2);
	ck_assert_int_eq(trace_count("y", "query-status"), 1);
	ck_assert_int_eq(trace_count("x", "query-status"), 1);
	t_client_free(p1);
}
END_TEST

/*
 * A VM renamed is one removed and one added, on the same QEMU and the
 * same socket: QEMU takes one monitor connection at a time, and the new
 * VM has it once the old one has let go.
 */
START_TEST(test_reload_renamed)
{
	struct t_client	*old;

	start_qemu("q");
	free(write_file(CONF,
	    "[vm old]\nupstream = connect:@/q.qmp\n[listener old @/q.sock]\n"));
	start_proxy(NULL, (const char *[]){ "q.sock", NULL });
	old = client("q.sock");
	serves(old, "old");
	free(write_file(CONF,
	    "[vm new]\nupstream = connect:@/q.qmp\n[listener new @/q.sock]\n"));
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert(t_wait_log(LOG, "reloaded: 1 VMs added, 1 removed, 0 "
	    "changed; 1 running", T_WAIT_MS) == 0);
	hears_eof(old, "old");
	new_client_served("q.sock");
	ck_assert_int_eq(trace_count("q", "qmp_capabilities"), 2);
	ck_assert_int_eq(trace_count("q", "query-status"), 2);
	t_client_free(old);
}
END_TEST

/*
 * A command keeps the timeout it was given when it came, and its error
 * says so, when a reload changes the VM's in the meantime.
 */
START_TEST(test_reload_keeps_deadline)
{
	struct t_client	*c;
	char		*qsock = t_path("t.qmp");
	long long	 t0, ms;
	long		 held;

	start_qemu("t");
	free(write_file(CONF, "[vm t]\nupstream = connect:@/t.qmp\n"
	    "command_timeout = 2\n[listener t @/t.sock]\n"));
	start_proxy(NULL, (const char *[]){ "t.sock", NULL });
	c = client("t.sock");
	stop_qemu(qemu(0));
	held = t_unread(qsock);
	t0 = t_clock_ms();
	t_send(c, "{\"execute\":\"query-status\",\"id\":\"t\"}\n");
	/* it came before the reload: sent, to the stopped QEMU */
	ck_assert_int_eq(t_wait_unread(qsock, held, T_WAIT_MS), 0);
	free(qsock);
	free(write_file(CONF, "[vm t]\nupstream = connect:@/t.qmp\n"
	    "command_timeout = 30\n[listener t @/t.sock]\n"));
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	ck_assert(t_wait_log(LOG, "reloaded: 0 VMs added, 0 removed, 1 "
	    "changed; 1 running", T_WAIT_MS) == 0);
	t_recv_eq(c, "{\"id\": \"t\", \"error\": {\"class\": "
	    "\"GenericError\", \"desc\": \"qmpmux: QEMU did not reply to "
	    "query-status within 2s; it was sent and may still complete\"}}");
	ms = t_clock_ms() - t0;
	ck_assert_msg(ms >= 1950 && ms < 6000 * t_slow(), "timed out "
	    "after %lld ms", ms);
	t_client_free(c);
}
END_TEST

/*
 * --command-timeout with -f is over [global]'s command_timeout, but
 * under a [vm] section's own: to stopped QEMUs, G's command times out
 * after 1s (the command line's, not 30), V's after its own 2s.  A
 * reload keeps the command line over the file.
 */
START_TEST(test_command_line_over_global)
{
	struct t_client	*g, *v;
	long long	 t0, ms;
	int		 round;

	start_qemu("g");
	start_qemu("v");
	free(write_file(CONF,
	    "[global]\n"
	    "command_timeout = 30\n"
	    "[vm g]\n"
	    "upstream = connect:@/g.qmp\n"
	    "[listener g @/g.sock]\n"
	    "[vm v]\n"
	    "upstream = connect:@/v.qmp\n"
	    "command_timeout = 2\n"
	    "[listener v @/v.sock]\n"));
	start_proxy((const char *[]){ "--command-timeout", "1", NULL },
	    (const char *[]){ "g.sock", "v.sock", NULL });
	g = client("g.sock");
	v = client("v.sock");
	for (round = 0; round < 2; round++) {
		if (round == 1) {
			ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
			ck_assert(t_wait_log(LOG, "reloaded: 0 VMs added, 0 "
			    "removed, 0 changed; 2 running", T_WAIT_MS) == 0);
		}
		stop_qemu(qemu(0));
		stop_qemu(qemu(1));
		t0 = t_clock_ms();
		t_send(g, "{\"execute\":\"query-status\",\"id\":\"g\"}\n");
		t_send(v, "{\"execute\":\"query-status\",\"id\":\"v\"}\n");
		t_recv_eq(g, "{\"id\": \"g\", \"error\": {\"class\": "
		    "\"GenericError\", \"desc\": \"qmpmux: QEMU did not reply "
		    "to query-status within 1s; it was sent and may still "
		    "complete\"}}");
		ms = t_clock_ms() - t0;
		ck_assert_msg(ms >= 950 && ms < 5000 * t_slow(), "g: %lld ms",
		    ms);
		t_recv_eq(v, "{\"id\": \"v\", \"error\": {\"class\": "
		    "\"GenericError\", \"desc\": \"qmpmux: QEMU did not reply "
		    "to query-status within 2s; it was sent and may still "
		    "complete\"}}");
		ms = t_clock_ms() - t0;
		ck_assert_msg(ms >= 1950 && ms < 6000 * t_slow(), "v: %lld ms",
		    ms);
		ck_assert_int_eq(kill(qemu(0), SIGCONT), 0);
		ck_assert_int_eq(kill(qemu(1), SIGCONT), 0);
		/* the late replies are dropped; the VMs go on */
		serves(g, "g-after");
		serves(v, "v-after");
	}
	t_client_free(g);
	t_client_free(v);
}
END_TEST

/*
 * Relative paths in the file are its directory's, whatever the working
 * directory: a listener's and an upstream's.  A bare upstream path is
 * taken as written, even with a ':' in it.  The spaces around a
 * header's words are not the path's.
 */
START_TEST(test_relative_paths)
{
	char	*conf;

	start_qemu("r");
	start_qemu("s:1");
	conf = write_file("etc/" CONF,
	    "[vm r]\nupstream = connect:../r.qmp\n[listener r  r.sock ]\n"
	    "[vm s]\nupstream = @/s:1.qmp\n[listener s s.sock]\n");
	t_proxy_pid = t_spawn((const char *[]){ t_bin("QMPMUXD"), "-d", "-f",
	    conf, NULL }, LOG);
	free(conf);
	conf = t_path("etc/s.sock");
	ck_assert_msg(t_wait_socket(conf, T_WAIT_MS) == 0, "%s did not "
	    "appear; see %s/%s", conf, t_dir(), LOG);
	free(conf);
	new_client_served("etc/r.sock");
	new_client_served("etc/s.sock");
}
END_TEST

/*
 * The one child of this process that is not a QEMU it started: with
 * this process a subreaper, the daemon qmpmuxd forked when it detached.
 */
static pid_t
detached_child(void)
{
	char	 path[64], list[4096], *p, *end;
	pid_t	 pid, found = -1;
	size_t	 n;
	FILE	*f;
	int	 i;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/children",
	    (long)getpid());
	if ((f = fopen(path, "r")) == NULL)
		abort();
	n = fread(list, 1, sizeof(list) - 1, f);
	list[n] = '\0';
	fclose(f);
	for (p = list; (pid = (pid_t)strtol(p, &end, 10)) > 0; p = end) {
		for (i = 0; i < nqemus && qemus[i] != pid; i++)
			;
		if (i == nqemus) {
			ck_assert_msg(found == -1, "two children: %s", list);
			found = pid;
		}
	}
	ck_assert_msg(found > 0, "no detached qmpmuxd");
	return (found);
}

/*
 * Kill pid when this process ends, however it ends: a daemon that is no
 * child of testlib's has no death signal to go with a failed test.  A
 * guard waits for the end of a pipe that only this process holds, in a
 * process group of its own, since Check kills the test's group.
 */
static void
kill_at_exit(pid_t pid)
{
	char	 c;
	int	 p[2];

	if (pipe2(p, O_CLOEXEC) == -1)
		abort();
	switch (fork()) {
	case -1:
		abort();
	case 0:
		setpgid(0, 0);
		close(p[1]);
		while (read(p[0], &c, 1) == -1 && errno == EINTR)
			;
		kill(pid, SIGKILL);
		_exit(0);
	}
	close(p[0]);
}

/*
 * Without -d qmpmuxd detaches and changes to /; a relative -f FILE is
 * still the file that SIGHUP reads again.  This process is made a
 * subreaper, so the daemon becomes its child: t_teardown sees its exit.
 */
START_TEST(test_reload_detached)
{
	char	*sock;
	pid_t	 pid;

	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	start_qemu("a");
	start_qemu("b");
	free(write_file(CONF, VM_A));
	ck_assert_int_eq(chdir(t_dir()), 0);
	pid = t_spawn((const char *[]){ t_bin("QMPMUXD"), "-f", CONF, NULL },
	    LOG);
	/* the listeners exist before it detaches, and it exits 0 */
	ck_assert(t_exited(t_wait_exit(pid, T_WAIT_MS), 0));
	t_proxy_pid = detached_child();
	kill_at_exit(t_proxy_pid);
	new_client_served("a.sock");

	free(write_file(CONF, VM_A "[vm b]\nupstream = connect:@/b.qmp\n"
	    "[listener b @/b.sock]\n"));
	ck_assert_int_eq(kill(t_proxy_pid, SIGHUP), 0);
	sock = t_path("b.sock");
	ck_assert_msg(t_wait_socket(sock, T_WAIT_MS) == 0, "%s did not "
	    "appear after SIGHUP", sock);
	free(sock);
	new_client_served("b.sock");
	new_client_served("a.sock");
}
END_TEST

/* The one-VM command line of before: checked, started, served. */
START_TEST(test_one_vm_command_line)
{
	struct t_client	*c;
	char		*out;
	int		 status;

	status = run_qmpmuxd((const char *[]){ "-n", "--upstream", t_qsock,
	    "--listen", t_psock, NULL });
	out = read_file("check.out");
	ck_assert_msg(t_exited(status, 0) &&
	    strcmp(out, "configuration OK: 1 VMs\n") == 0,
	    "status %d, out \"%s\"", status, out);
	free(out);
	t_start_qemu(NULL);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	serves(c, "one");
	t_client_free(c);
}
END_TEST

static Suite *
conf_suite(void)
{
	Suite	*s = suite_create("conf");
	TCase	*tc;

	tc = t_tcase(s, "check", 30);
	tcase_add_loop_test(tc, test_check_bad, 0, NBAD);
	tcase_add_test(tc, test_check_empty);
	tcase_add_test(tc, test_check_example);
	tcase_add_test(tc, test_check_include_nothing);
	tcase_add_loop_test(tc, test_check_not_regular, 0, NNOTREG);
	tcase_add_test(tc, test_check_size_edge);
	tcase_add_test(tc, test_check_path_107);

	tc = t_tcase_with(s, "real-qemu", 60, setup, teardown);
	tcase_add_test(tc, test_reload);
	tcase_add_test(tc, test_reload_not_regular);
	tcase_add_test(tc, test_reload_moves_listener);
	tcase_add_test(tc, test_reload_renamed);
	tcase_add_test(tc, test_reload_keeps_deadline);
	tcase_add_test(tc, test_command_line_over_global);
	tcase_add_test(tc, test_relative_paths);
	tcase_add_test(tc, test_reload_detached);
	tcase_add_test(tc, test_one_vm_command_line);
	return (s);
}

int
main(void)
{
	return (t_run(conf_suite()));
}
