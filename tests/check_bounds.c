/*
 * Every bound is configurable, documented, and tested at its edge: each
 * option of qmpmuxd that takes a number is accepted at both ends of the
 * range qmpmuxd(8) gives it and refused one past them, and the client
 * pipeline and the event backlog hold exactly at their bounds, behind
 * the scripted fake QEMU.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <ctype.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "qmpmux.h"
#include "testlib.h"

/*
 * One value of one option, and whether qmpmuxd(8) says it is accepted.
 * The ranges are those of the man page; the sizes assume a 64-bit
 * size_t, whose largest value is 18446744073709551615.
 */
static const struct edge {
	const char	*opt;
	const char	*arg;
	int		 ok;
} edges[] = {
	{ "max-inflight", "1", 1 }, { "max-inflight", "8", 1 },
	{ "max-inflight", "0", 0 }, { "max-inflight", "9", 0 },
	{ "max-client-pipeline", "1", 1 },
	{ "max-client-pipeline", "65536", 1 },
	{ "max-client-pipeline", "0", 0 },
	{ "max-client-pipeline", "65537", 0 },
	{ "max-queued-commands", "0", 1 },
	{ "max-queued-commands", "1048576", 1 },
	{ "max-queued-commands", "-1", 0 },
	{ "max-queued-commands", "1048577", 0 },
	{ "max-queued-events", "1", 1 }, { "max-queued-events", "16777216", 1 },
	{ "max-queued-events", "0", 0 }, { "max-queued-events", "16777217", 0 },
	/* BYTES: above 0, K, M or G in either case for powers of 1024 */
	{ "max-queued-bytes", "1", 1 }, { "max-queued-bytes", "1k", 1 },
	{ "max-queued-bytes", "4M", 1 }, { "max-queued-bytes", "1g", 1 },
	{ "max-queued-bytes", "18446744073709551615", 1 },
	{ "max-queued-bytes", "17179869183G", 1 },
	{ "max-queued-bytes", "0", 0 }, { "max-queued-bytes", "0K", 0 },
	{ "max-queued-bytes", "1T", 0 }, { "max-queued-bytes", "1KB", 0 },
	{ "max-queued-bytes", "18446744073709551616", 0 },
	{ "max-queued-bytes", "17179869184G", 0 },
	/* QEMU's own limits cap these two: 64 MiB, 1024 levels */
	{ "max-client-message", "1", 1 },
	{ "max-client-message", "64M", 1 },
	{ "max-client-message", "67108864", 1 },
	{ "max-client-message", "0", 0 },
	{ "max-client-message", "67108865", 0 },
	{ "max-client-output", "1", 1 },
	{ "max-client-output", "18446744073709551615", 1 },
	{ "max-client-output", "0", 0 },
	{ "max-client-output", "18446744073709551616", 0 },
	{ "max-upstream-message", "1", 1 },
	{ "max-upstream-message", "18446744073709551615", 1 },
	{ "max-upstream-message", "0", 0 },
	{ "max-upstream-message", "18446744073709551616", 0 },
	{ "max-json-depth", "1", 1 }, { "max-json-depth", "1024", 1 },
	{ "max-json-depth", "0", 0 }, { "max-json-depth", "1025", 0 },
	/* SECONDS: decimal, fractions allowed, 0 to 1000000000 */
	{ "command-timeout", "0", 1 }, { "command-timeout", "0.5", 1 },
	{ "command-timeout", "1000000000", 1 },
	{ "command-timeout", "-0.001", 0 },
	{ "command-timeout", "1000000000.001", 0 },
	{ "command-timeout", "inf", 0 },
	{ "command-timeout", "0x10", 0 },	/* not a decimal number */
	{ "command-timeout", "1e3", 0 }, { "command-timeout", " 1", 0 },
	{ "command-timeout", "+1", 0 }, { "command-timeout", ".", 0 },
	{ "command-timeout", ".5", 1 }, { "command-timeout", "2.", 1 },
	{ "timeout", "query-status=0", 1 },
	{ "timeout", "query-status=1000000000", 1 },
	{ "timeout", "query-status=-0.001", 0 },
	{ "timeout", "query-status=1000000000.001", 0 },
	{ "timeout", "query-status=0x10", 0 },
	{ "timeout", "query-status=", 0 }, { "timeout", "query-status", 0 },
	{ "timeout", "=5", 0 }, { "timeout", "query-status=5s", 0 },
	{ "timeout", "query-status=1e-400", 0 },
	{ "slow-client", "block", 1 }, { "slow-client", "disconnect", 1 },
	{ "slow-client", "Block", 0 }, { "slow-client", "drop", 0 },
	{ "slow-client", "", 0 },
	/* "above 0": the smallest positive value is accepted, 0 is not */
	{ "slow-client-timeout", "0.000001", 1 },
	{ "slow-client-timeout", "1000000000", 1 },
	{ "slow-client-timeout", "0", 0 },
	{ "slow-client-timeout", "1000000000.001", 0 },
	{ "handshake-timeout", "0.000001", 1 },
	{ "handshake-timeout", "1000000000", 1 },
	{ "handshake-timeout", "0", 0 },
	{ "handshake-timeout", "1000000000.001", 0 },
	{ "greeting-timeout", "0.000001", 1 },
	{ "greeting-timeout", "1000000000", 1 }, { "greeting-timeout", "0", 0 },
	{ "greeting-timeout", "1000000000.001", 0 },
	{ "backoff-max", "0.000001", 1 }, { "backoff-max", "1000000000", 1 },
	{ "backoff-max", "0", 0 }, { "backoff-max", "1000000000.001", 0 },
	{ "allow", "query-*", 1 }, { "allow", "", 0 },
	{ "deny", "stop", 1 }, { "deny", "", 0 },
	/* sockets waiting for the service manager, 0 to 1048576 */
	{ "fdstore-max-pending", "0", 1 },
	{ "fdstore-max-pending", "1048576", 1 },
	{ "fdstore-max-pending", "-1", 0 },
	{ "fdstore-max-pending", "1048577", 0 },
	/* the classes' keys */
	{ "priority-relief", "0", 1 }, { "priority-relief", "1000000000", 1 },
	{ "priority-relief", "-0.001", 0 },
	{ "priority-relief", "1000000000.001", 0 },
	{ "manager-quiet", "0", 1 }, { "manager-quiet", "1000000000", 1 },
	{ "manager-quiet", "-0.001", 0 },
	{ "manager-quiet", "1000000000.001", 0 },
	{ "introspection-cache", "0", 1 }, { "introspection-cache", "1", 1 },
	{ "introspection-cache", "18446744073709551615", 1 },
	{ "introspection-cache", "0K", 0 },
	{ "introspection-cache", "18446744073709551616", 0 },
	/* the advisory lock's: two "above 0", then 0 to their most */
	{ "lock-default-hold", "0.000001", 1 },
	{ "lock-default-hold", "1000000000", 1 },
	{ "lock-default-hold", "0", 0 },
	{ "lock-default-hold", "1000000000.001", 0 },
	{ "lock-max-hold", "0.000001", 1 }, { "lock-max-hold", "1000000000", 1 },
	{ "lock-max-hold", "0", 0 }, { "lock-max-hold", "1000000000.001", 0 },
	{ "lock-max-wait", "0", 1 }, { "lock-max-wait", "1000000000", 1 },
	{ "lock-max-wait", "-0.001", 0 },
	{ "lock-max-wait", "1000000000.001", 0 },
	{ "lock-max-waiters", "0", 1 }, { "lock-max-waiters", "65536", 1 },
	{ "lock-max-waiters", "-1", 0 }, { "lock-max-waiters", "65537", 0 },
	{ "rate-limit", "0", 1 }, { "rate-limit", "1048576", 1 },
	{ "rate-limit", "-1", 0 }, { "rate-limit", "1048577", 0 },
	{ "rate-burst", "0", 1 }, { "rate-burst", "1048576", 1 },
	{ "rate-burst", "-1", 0 }, { "rate-burst", "1048577", 0 },
	{ "cost", "query-status=1", 1 }, { "cost", "query-status=1000", 1 },
	{ "cost", "query-status=0", 0 }, { "cost", "query-status=1001", 0 },
	{ "cost", "query-status=1.5", 0 }, { "cost", "query-status=", 0 },
	{ "cost", "=5", 0 }, { "cost", "query-status", 0 },
	/* octal, 0 to 0777 */
	{ "mode", "0", 1 }, { "mode", "0777", 1 },
	{ "mode", "1000", 0 }, { "mode", "8", 0 }, { "mode", "-1", 0 },
};

/*
 * Each value at an edge, given before --listen so that --mode and
 * --slow-client apply to it.  An accepted value starts the daemon: its
 * listener appears (the upstream need not exist; it connects in the
 * background), and SIGTERM ends it with status 0.  A refused value ends it at once
 * with status 1, a message naming the option and the value, and no
 * listener.
 */
START_TEST(test_option_edges)
{
	const struct edge	*e = &edges[_i];
	char			 opt[64], want[256], *up;
	const char		*argv[] = { t_bin("QMPMUXD"), "-d",
				    "--upstream", NULL, opt, e->arg,
				    "--listen", t_psock, NULL };
	struct stat		 st;
	int			 status;

	argv[3] = up = t_path("none.sock");
	snprintf(opt, sizeof(opt), "--%s", e->opt);
	t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
	if (e->ok) {
		ck_assert_msg(t_wait_socket(t_psock, T_WAIT_MS) == 0,
		    "%s %s: no listener; see %s/qmpmuxd.log", opt, e->arg,
		    t_dir());
		ck_assert_int_eq(t_wait_log("qmpmuxd.log", "qmpmuxd "
		    PACKAGE_VERSION " started\n", T_WAIT_MS), 0);
		status = t_stop(t_proxy_pid, SIGTERM);
		t_proxy_pid = -1;
		ck_assert_msg(t_exited(status, 0),
		    "%s %s: status %d after SIGTERM",
		    opt, e->arg, status);
	} else {
		status = t_wait_exit(t_proxy_pid, T_WAIT_MS);
		ck_assert_msg(status != -1, "%s %s: accepted, still running",
		    opt, e->arg);
		t_proxy_pid = -1;
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
		    "%s %s: status %d", opt, e->arg, status);
		snprintf(want, sizeof(want), "qmpmuxd: %s %s: expected ", opt,
		    e->arg);
		ck_assert_msg(t_log_count("qmpmuxd.log", want) == 1,
		    "no \"%s\" in %s/qmpmuxd.log", want, t_dir());
		ck_assert_int_eq(stat(t_psock, &st), -1);
	}
	free(up);
}
END_TEST

/*
 * SIGTERM the moment the listener appears, as a supervisor that waits
 * for the socket may: qmpmuxd(8) promises exit status 0 and the socket
 * removed.  Fifty tries, since the window is short.
 */
START_TEST(test_sigterm_at_listener)
{
	char		*up = t_path("none.sock");
	const char	*argv[] = { t_bin("QMPMUXD"), "-d", "--upstream", up,
			    "--listen", t_psock, NULL };
	struct stat	 st;
	int		 i, status, bad = 0;

	for (i = 0; i < 50; i++) {
		t_proxy_pid = t_spawn(argv, "qmpmuxd.log");
		ck_assert_int_eq(t_wait_socket(t_psock, T_WAIT_MS), 0);
		status = t_stop(t_proxy_pid, SIGTERM);
		t_proxy_pid = -1;
		if (status == -1 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0 || stat(t_psock, &st) == 0) {
			fprintf(stderr, "try %d: status %d, socket %s\n", i,
			    status, stat(t_psock, &st) == 0 ? "left" : "gone");
			bad++;
			unlink(t_psock);
		}
	}
	ck_assert_msg(bad == 0, "%d of 50 SIGTERMs killed qmpmuxd uncleanly",
	    bad);
	free(up);
}
END_TEST

/*
 * --help prints the usage on standard output and --version the version,
 * both with status 0; SIGINT ends the daemon as SIGTERM does, with
 * status 0 and the listener removed.
 */
START_TEST(test_help_version_sigint)
{
	char		*up = t_path("none.sock");
	const char	*help[] = { t_bin("QMPMUXD"), "--help", NULL };
	const char	*version[] = { t_bin("QMPMUXD"), "--version", NULL };
	const char	*run[] = { t_bin("QMPMUXD"), "-d", "--upstream", up,
			    "--listen", t_psock, NULL };
	struct stat	 st;
	int		 status;

	status = t_wait_exit(t_spawn_split(help, "help.out", "help.err"),
	    T_WAIT_MS);
	ck_assert(t_exited(status, 0));
	ck_assert_int_eq(t_log_count("help.out", "usage: qmpmuxd [-dnv] "
	    "[-f FILE] [--OPTION VALUE ...]"), 1);
	ck_assert_int_eq(t_log_count("help.out", "qmpmuxd [-dnv] "
	    "--upstream PATH --listen PATH"), 1);
	ck_assert_int_eq(t_log_count("help.out", "--allow GLOB"), 1);
	ck_assert_int_eq(t_log_count("help.err", ""), 0);
	status = t_wait_exit(t_spawn_split(version, "version.out",
	    "version.err"), T_WAIT_MS);
	ck_assert(t_exited(status, 0));
	ck_assert_int_eq(t_log_count("version.out", "qmpmuxd "
	    PACKAGE_VERSION "\n"), 1);
	ck_assert_int_eq(t_log_count("version.err", ""), 0);

	t_proxy_pid = t_spawn(run, "qmpmuxd.log");
	ck_assert_int_eq(t_wait_socket(t_psock, T_WAIT_MS), 0);
	status = t_stop(t_proxy_pid, SIGINT);
	t_proxy_pid = -1;
	ck_assert_msg(t_exited(status, 0),
	    "status %d after SIGINT", status);
	ck_assert_int_eq(stat(t_psock, &st), -1);
	free(up);
}
END_TEST

/* A file's whole text, NUL-terminated, or NULL. */
static char *
read_text(const char *path)
{
	char	*text = NULL;
	size_t	 size = 0;
	FILE	*f, *m;
	int	 ch;

	if ((f = fopen(path, "r")) == NULL ||
	    (m = open_memstream(&text, &size)) == NULL)
		return (NULL);
	while ((ch = getc(f)) != EOF)
		putc(ch, m);
	fclose(f);
	fclose(m);
	return (text);
}

/* Each run of white space in s made one space, in place, and trimmed. */
static void
squeeze(char *s)
{
	char	*r, *w = s;

	for (r = s; *r != '\0'; r++) {
		if (*r == ' ' || *r == '\t' || *r == '\n') {
			if (w != s && w[-1] != ' ')
				*w++ = ' ';
		} else
			*w++ = *r;
	}
	if (w != s && w[-1] == ' ')
		w--;
	*w = '\0';
}

/*
 * A line of the SYNOPSIS of qmpmuxd(8) as mandoc prints it, added to
 * out: its macros are Nm, Op, Fl, Ar, Cm and Ns, and ':' is a closing
 * delimiter, put without a space before it.
 */
static void
mdoc_synopsis(const char *line, FILE *out)
{
	char	*copy = strdup(line), *p, *tok;
	int	 op, first = 1, flag = 0, glue = 0;

	ck_assert_ptr_nonnull(copy);
	p = copy + 1;
	tok = strsep(&p, " ");
	op = strcmp(tok, "Op") == 0;
	flag = strcmp(tok, "Fl") == 0;
	fputs(op ? " [" : " ", out);
	while ((tok = strsep(&p, " ")) != NULL) {
		if (strcmp(tok, "Fl") == 0)
			flag = 1;
		else if (strcmp(tok, "Ns") == 0)
			glue = 1;
		else if (strcmp(tok, "Ar") != 0 && strcmp(tok, "Cm") != 0) {
			if (!first && !glue && strcmp(tok, ":") != 0)
				fputc(' ', out);
			fprintf(out, "%s%s", flag ? "-" : "", tok);
			first = flag = glue = 0;
		}
	}
	fputs(op ? "]" : "", out);
	free(copy);
}

/* Whether text holds word, not followed by more of an option's name. */
static int
has_word(const char *text, const char *word)
{
	const char	*p = text;
	size_t		 len = strlen(word);

	while ((p = strstr(p, word)) != NULL) {
		p += len;
		if (!isalnum((unsigned char)*p) && *p != '-')
			return (1);
	}
	return (0);
}

/*
 * The usage, qmpmuxd(8) and conf.c's option table cannot drift apart:
 * every option of the table is in --help as [--KEY ARG]; the SYNOPSIS
 * of the page, as mandoc prints it, is the usage word for word; each
 * option of the usage has an entry in the page's list of options, and
 * every long option the page names anywhere is one of the usage.
 */
START_TEST(test_help_is_man)
{
	const char	*help[] = { t_bin("QMPMUXD"), "--help", NULL };
	char		*out = t_path("help.out"), *usage, *man, *syn = NULL;
	char		*items = NULL, *p, *line, *w, flag[64], want[128];
	const char	*arg;
	size_t		 synsize = 0, itsize = 0, len;
	FILE		*sf, *itf;
	int		 i, section = 0, cont = 0;

	ck_assert(t_exited(t_wait_exit(t_spawn_split(help, "help.out",
	    "help.err"), T_WAIT_MS), 0));
	ck_assert_ptr_nonnull(usage = read_text(out));
	for (i = 0; i < conf_option_count(); i++) {
		conf_option_flag(i, flag, sizeof(flag));
		arg = conf_option_arg(i);
		snprintf(want, sizeof(want), "[--%s%s%s]", flag,
		    arg != NULL ? " " : "", arg != NULL ? arg : "");
		ck_assert_msg(strstr(usage, want) != NULL,
		    "--help has no %s:\n%s", want, usage);
	}

	/* the SYNOPSIS rendered, and the .It lines (with their \ lines) */
	ck_assert_ptr_nonnull(man = read_text(t_bin("QMPMUXD_MAN")));
	ck_assert_ptr_nonnull(sf = open_memstream(&syn, &synsize));
	ck_assert_ptr_nonnull(itf = open_memstream(&items, &itsize));
	fputs("usage:", sf);
	for (p = man; (line = strsep(&p, "\n")) != NULL;) {
		if (strncmp(line, ".Sh ", 4) == 0)
			section = strcmp(line, ".Sh SYNOPSIS") == 0 ? 1 :
			    strcmp(line, ".Sh DESCRIPTION") == 0 ? 2 : 3;
		else if (section == 1)
			mdoc_synopsis(line, sf);
		else if (section == 2 && (cont || strncmp(line, ".It ",
		    4) == 0)) {
			len = strlen(line);
			cont = len > 0 && line[len - 1] == '\\';
			fprintf(itf, "%.*s%s", (int)(len - (size_t)cont), line,
			    cont ? "" : "\n");
		}
		/* every long option the page names is one of the usage */
		for (w = line; (w = strstr(w, "Fl -")) != NULL; w += 4) {
			len = strspn(w + 4, "abcdefghijklmnopqrstuvwxyz"
			    "0123456789-");
			if (len == 0)
				continue;
			snprintf(want, sizeof(want), "--%.*s", (int)len, w + 4);
			ck_assert_msg(has_word(usage, want), "qmpmuxd.8 "
			    "names %s, which --help has not", want);
		}
	}
	fclose(sf);
	fclose(itf);
	squeeze(syn);
	squeeze(usage);
	ck_assert_str_eq(syn, usage);

	/* each option of the usage is described in the list of options */
	for (w = usage; (w = strstr(w, "--")) != NULL; w += 2) {
		len = strspn(w + 2, "abcdefghijklmnopqrstuvwxyz0123456789-");
		if (len == 0)
			continue;
		snprintf(want, sizeof(want), "Fl -%.*s", (int)len, w + 2);
		ck_assert_msg(has_word(items, want), "qmpmuxd.8 has no .It "
		    "for -%s", want + 3);
	}
	free(usage);
	free(man);
	free(syn);
	free(items);
	free(out);
}
END_TEST

/*
 * An option for the listeners that follow it, after the last --listen,
 * would apply to none: a --read-only there must not leave a listener
 * with full access unsaid.  It is refused.
 */
START_TEST(test_trailing_listener_option)
{
	static const char	*opts[] = { "--read-only", "--deny",
				    "--allow", "--mode", "--slow-client",
				    "--slow-client-timeout", "--full-access" };
	static const char	*args[] = { NULL, "stop", "query-*", "0600",
				    "block", "1", NULL };
	char			*up = t_path("none.sock"), want[128];
	const char		*argv[] = { t_bin("QMPMUXD"), "-d",
				    "--upstream", up, "--listen", t_psock, NULL,
				    NULL, NULL };
	int			 status;

	argv[6] = opts[_i];
	argv[7] = args[_i];
	status = t_wait_exit(t_spawn(argv, "qmpmuxd.log"), T_WAIT_MS);
	ck_assert_msg(t_exited(status, 1),
	    "%s: status %d", opts[_i], status);
	snprintf(want, sizeof(want), "qmpmuxd: %s after the last --listen "
	    "applies to no listener", opts[_i]);
	ck_assert_int_eq(t_log_count("qmpmuxd.log", want), 1);
	free(up);
}
END_TEST

/*
 * A client pipelining six slow commands in one write against
 * --max-client-pipeline 4 with room for eight in flight: the fake gets
 * exactly four, and the fifth only after it has answered the first,
 * since qmpmuxd reads nothing more from the client until then.  The
 * client is slowed, never refused: six replies, in order.  Each command
 * has its own, longer delay: equal ones set in one callback would fire
 * in no set order from libevent's timer heap, and the fake would answer
 * out of order where QEMU does not.
 */
START_TEST(test_pipeline_edge)
{
	const char	*fargs[] = { "--delay", "query-slow1=300", "--delay",
	    "query-slow2=310", "--delay", "query-slow3=320", "--delay",
	    "query-slow4=330", "--delay", "query-slow5=340", "--delay",
	    "query-slow6=350", NULL };
	const char	*opts[] = { "--max-inflight", "8",
	    "--max-client-pipeline", "4", NULL };
	struct t_client	*c;
	char		*m, want[128];
	int		 i, c4, a1, c5;

	t_start_fake(fargs, opts);
	ck_assert_ptr_nonnull(c = t_client_ready(t_psock));
	t_send(c, "{\"execute\":\"query-slow1\",\"id\":1}\n"
	    "{\"execute\":\"query-slow2\",\"id\":2}\n"
	    "{\"execute\":\"query-slow3\",\"id\":3}\n"
	    "{\"execute\":\"query-slow4\",\"id\":4}\n"
	    "{\"execute\":\"query-slow5\",\"id\":5}\n"
	    "{\"execute\":\"query-slow6\",\"id\":6}\n");
	for (i = 1; i <= 6; i++) {
		snprintf(want, sizeof(want), "{\"return\": {\"command\": "
		    "\"query-slow%d\", \"seq\": %d}, \"id\": %d}", i, i, i);
		m = t_recv(c, T_WAIT_MS);
		ck_assert_msg(m != NULL && strcmp(m, want) == 0,
		    "reply %d: %s", i, m != NULL ? m : "(nothing)");
		free(m);
	}
	/* the fake's log, in its order: four read, one answered, the 5th */
	t_log_scan("fakeqemu.log", "command query-slow", 4, &c4, NULL);
	t_log_scan("fakeqemu.log", "answered query-slow", 1, &a1, NULL);
	t_log_scan("fakeqemu.log", "command query-slow", 5, &c5, NULL);
	ck_assert_msg(c4 != -1 && c4 < a1 && a1 < c5, "4th command at line "
	    "%d, 1st answer %d, 5th command %d of %s/fakeqemu.log", c4, a1,
	    c5, t_dir());
	ck_assert_int_eq(t_log_count("fakeqemu.log", "command query-slow"), 6);
	t_client_free(c);
}
END_TEST

#define FLOOD		100000	/* ~9 MB: far past any socket's buffer */
#define FLOOD_S		"100000"

static const char *const flood_args[] = { "--flood", FLOOD_S, "--trigger",
	"flood", NULL };

/*
 * --max-queued-events N pauses reads at exactly N events, at the bound's
 * least value and at one far above a socket's worth.  It is exact
 * because vm_event adds events to the backlog one at a time and checks
 * the bound after each: the count goes N-1, N and stops, since the
 * monitor takes no message while paused.  Bytes stay far below the
 * default 4M, so the event count is the bound that binds.  One client
 * holds every event and another reads them (t_flood_start): the reader
 * gets the N events of the backlog, and then nothing.
 */
START_TEST(test_events_edge)
{
	static const char	*n[] = { "1", "1000" };
	const char		*opts[] = { "--max-queued-events", n[_i],
				    NULL };
	struct t_client		*c;
	struct t_flood		 r;

	c = t_flood_start(flood_args, opts, strtol(n[_i], NULL, 10),
	    SIZE_MAX, &r, NULL);
	ck_assert_int_eq(t_quiet(r.c, 500), T_SILENT);
	/* and paused, the fake cannot get the rest of its flood out */
	ck_assert_int_eq(t_log_count("fakeqemu.log", "flood of " FLOOD_S
	    " events written"), 0);
	t_client_free(r.c);
	t_client_free(c);
}
END_TEST

/*
 * --max-queued-bytes B, with the event bound at its largest: reads pause
 * on the event that takes the backlog to B or past it, so the backlog
 * is at least B, and was less than B before that event.  "100K" takes
 * the suffix too.  Then the holder gets the whole flood.
 */
START_TEST(test_bytes_edge)
{
	const char	*opts[] = { "--max-queued-events", "16777216",
	    "--max-queued-bytes", "100K", NULL };
	const size_t	 bound = 100 << 10;
	struct t_client	*c;
	struct t_flood	 r;
	size_t		 maxlen = 0;

	c = t_flood_start(flood_args, opts, LONG_MAX, bound, &r, NULL);
	ck_assert_int_eq(t_quiet(r.c, 500), T_SILENT);
	printf("bytes: paused at %ld events, %zu bytes, the last %zu; bound "
	    "%zu\n", r.n, r.bytes, r.last, bound);
	ck_assert_uint_ge(r.bytes, bound);
	ck_assert_uint_lt(r.bytes - r.last, bound);
	ck_assert_int_lt(r.n, 16777216);
	t_client_free(r.c);
	ck_assert_int_eq(t_read_flood(c, FLOOD, &maxlen), 0);
	t_client_free(c);
}
END_TEST

/*
 * Reads resume once the backlog is down to half: with the bound at N
 * events and one client holding them all, the reader gets N and then
 * nothing, until the holder has taken N/2 events (read, or in its
 * socket) and at most a tenth of N more than that; then the holder gets
 * all the flood in order, so reading did resume, as often as it paused.
 * N is 20,000, far more than a socket holds (about 2,000 events), so
 * that half of it cannot pass unseen in the holder's socket.
 */
START_TEST(test_resume_half)
{
	const char	*opts[] = { "--max-queued-events", "20000", NULL };
	const long	 n = 20000;
	struct t_client	*c;
	struct t_flood	 r, fc;
	long		 taken;

	c = t_flood_start(flood_args, opts, n, SIZE_MAX, &r, NULL);
	ck_assert_int_eq(t_quiet(r.c, 200), T_SILENT);
	t_flood_init(&fc, c);
	while (!t_ready(r.c))
		ck_assert_int_eq(t_flood_read(&fc, fc.n + 1, SIZE_MAX), 0);
	taken = fc.n + t_count_unread(c, "\"event\": \"FLOOD\"");
	printf("resume: the holder had read %ld events, %ld written to it, "
	    "when the reader got more\n", fc.n, taken);
	ck_assert_int_ge(taken, n / 2);
	/*
	 * Well before the end: by the time the reader's first event is
	 * out, the holder may have read what its socket held too (some
	 * 2000 events), and more if this process ran ahead meanwhile.
	 */
	ck_assert_int_le(fc.n, n / 2 + n / 4);
	t_client_free(r.c);
	ck_assert_int_eq(t_flood_read(&fc, FLOOD, SIZE_MAX), 0);
	t_client_free(c);
}
END_TEST

static Suite *
bounds_suite(void)
{
	Suite	*s = suite_create("bounds");
	TCase	*tc = t_tcase(s, "bounds", 60);

	tcase_add_loop_test(tc, test_option_edges, 0,
	    (int)(sizeof(edges) / sizeof(edges[0])));
	tcase_add_test(tc, test_sigterm_at_listener);
	tcase_add_test(tc, test_help_version_sigint);
	tcase_add_test(tc, test_help_is_man);
	tcase_add_loop_test(tc, test_trailing_listener_option, 0, 7);
	tcase_add_test(tc, test_pipeline_edge);
	tcase_add_loop_test(tc, test_events_edge, 0, 2);
	tcase_add_test(tc, test_bytes_edge);
	tcase_add_test(tc, test_resume_half);
	return (s);
}

int
main(void)
{
	return (t_run(bounds_suite()));
}
