/*
 * The differential test: the same script of inputs goes to a QEMU
 * directly (a client on QEMU's own socket) and through qmpmuxd to a
 * second, identical QEMU, and the replies must be the same text.
 *
 * QEMU accepts one client per monitor, so each test runs two QEMUs side
 * by side.  After every input, both sides get a sync command with an id
 * of its own; everything up to the sync's reply is what that input
 * caused, so each input's replies (none, one or several) are compared
 * as a list, with no waiting on time.
 *
 * Replies are compared as text, with three exceptions:
 *
 * (a) Events carry the time they happened, which differs between two
 *     QEMUs: an event is compared by its "event" name only.
 *
 * (b) QEMU re-serialises the id it echoes (1.50 becomes 1.5, "\u00e9"
 *     becomes "\u00E9", {"a":1} becomes {"a": 1}), while qmpmuxd gives
 *     back the client's exact bytes on purpose (check_proxy tests that).
 *     The script therefore writes every id the way QEMU itself would
 *     write it, and the replies can be compared as text.
 *
 * (c) Invalid JSON: qmpmuxd describes the error in yajl's words, QEMU in
 *     its own.  For the steps marked D_PARSE, a reply whose desc starts
 *     "JSON parse error" on the QEMU side matches one on the proxy side
 *     with the same class and the same prefix.  Only inputs on which QEMU
 *     reports exactly one error are used: on some (e.g. the number 01)
 *     QEMU's lexer reports two, where qmpmuxd drops the line after one.
 *
 * Not in the script, as no proxy could match them: an object with
 * several unknown members (QEMU names the first in its hash table's
 * order, not the input's); single-quoted strings (a QEMU extension to
 * JSON that qmpmuxd rejects as invalid JSON); and nesting past the
 * limit, where QEMU says "JSON nesting depth limit exceeded" and then
 * lexes the rest of the line into a stream of further errors.  Nesting
 * right at the limit (1024 levels, both accept it) is in the script.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "testlib.h"

#define D_PARSE		0x1	/* exception (c) applies */

struct step {
	const char	*in;
	int		 flags;
};

static char	*dsock, *qsock, *psock;
static pid_t	 direct_pid, qemu_pid, proxy_pid;

/* Two QEMUs: one reached directly, one behind qmpmuxd. */
static void
setup(void)
{
	dsock = t_path("direct.sock");
	qsock = t_path("qemu.sock");
	psock = t_path("proxy.sock");
	direct_pid = t_qemu(dsock);
	qemu_pid = t_qemu(qsock);
	proxy_pid = t_qmpmuxd(qsock, psock, NULL);
}

/* Stop both QEMUs and qmpmuxd. */
static void
teardown(void)
{
	t_stop(proxy_pid, SIGTERM);
	t_stop(qemu_pid, SIGKILL);
	t_stop(direct_pid, SIGKILL);
	free(dsock);
	free(qsock);
	free(psock);
}

/* One side of the comparison: a client and what it has received. */
struct side {
	const char	*name;
	struct t_client	*c;
	char		*msgs[32];
	int		 n;
	int		 lost;		/* no sync reply: closed or stuck */
};

/* Forget the replies of the last step. */
static void
side_clear(struct side *s)
{
	int	 i;

	for (i = 0; i < s->n; i++)
		free(s->msgs[i]);
	s->n = 0;
}

/* Send one input and the sync, and collect replies up to the sync's. */
static void
side_run(struct side *s, const char *in, const char *sync)
{
	char	*m, needle[48];
	int	 last;

	side_clear(s);
	t_send(s->c, "%s\n{\"execute\":\"query-name\",\"id\":\"%s\"}\n", in,
	    sync);
	/* quoted, so that sync-1 is not found in sync-12 */
	snprintf(needle, sizeof(needle), "\"%s\"", sync);
	for (;;) {
		if ((m = t_recv(s->c, T_WAIT_MS)) == NULL) {
			s->lost = 1;
			return;
		}
		last = strstr(m, needle) != NULL;
		if (s->n < (int)(sizeof(s->msgs) / sizeof(s->msgs[0])))
			s->msgs[s->n++] = m;
		else
			free(m);
		if (last)
			return;
	}
}

/* Whether desc is a JSON parse error: exception (c). */
static int
parse_error(yajl_val v, const char **class)
{
	const char	*desc = t_get_str(v, "error", "desc");

	*class = t_get_str(v, "error", "class");
	return (desc != NULL && *class != NULL &&
	    strncmp(desc, "JSON parse error", 16) == 0);
}

/* Whether two messages match, with the exceptions (a) and (c). */
static int
same(const char *q, const char *p, int flags)
{
	yajl_val	 vq, vp;
	const char	*eq, *ep, *cq, *cp;
	int		 ok;

	if (strcmp(q, p) == 0)
		return (1);
	vq = t_json(q);
	vp = t_json(p);
	eq = t_get_str(vq, "event", NULL);
	ep = t_get_str(vp, "event", NULL);
	if (eq != NULL || ep != NULL)
		ok = eq != NULL && ep != NULL && strcmp(eq, ep) == 0;
	else if ((flags & D_PARSE) && parse_error(vq, &cq))
		ok = parse_error(vp, &cp) && strcmp(cq, cp) == 0;
	else
		ok = 0;
	yajl_tree_free(vq);
	yajl_tree_free(vp);
	return (ok);
}

/* Append both sides' replies to one step to the report. */
static void
report_step(FILE *f, int n, const char *in, struct side *q,
    struct side *p)
{
	struct side	*s;
	int		 i, k;

	fprintf(f, "step %d: %s\n", n, in);
	for (k = 0; k < 2; k++) {
		s = k == 0 ? q : p;
		for (i = 0; i < s->n; i++)
			fprintf(f, "  %-5s %s\n", s->name, s->msgs[i]);
		if (s->lost)
			fprintf(f, "  %-5s (closed, or no reply in time)\n",
			    s->name);
	}
}

/*
 * A run of the two sides: the greetings, then the scripts in order.
 * Every difference is reported, not just the first.
 */
struct run {
	struct side	 q, p;
	int		 step, bad;
	char		*text;
	size_t		 size;
	FILE		*f;
};

/* Connect both sides and compare the greetings. */
static void
run_start(struct run *r)
{
	char	*gq, *gp;

	memset(r, 0, sizeof(*r));
	if ((r->f = open_memstream(&r->text, &r->size)) == NULL)
		abort();
	r->q.name = "qemu";
	r->p.name = "proxy";
	r->q.c = t_client_new(dsock);
	r->p.c = t_client_new(psock);
	ck_assert_ptr_nonnull(r->q.c);
	ck_assert_ptr_nonnull(r->p.c);
	gq = t_recv(r->q.c, T_WAIT_MS);
	gp = t_recv(r->p.c, T_WAIT_MS);
	ck_assert_ptr_nonnull(gq);
	ck_assert_msg(gp != NULL && strcmp(gq, gp) == 0,
	    "greetings differ:\n  qemu  %s\n  proxy %s", gq,
	    gp != NULL ? gp : "(nothing)");
	free(gq);
	free(gp);
}

/* Run one script on both sides. */
static void
run_script(struct run *r, const struct step *steps, size_t n)
{
	char	 sync[32];
	size_t	 i;
	int	 k, ok;

	for (i = 0; i < n; i++) {
		r->step++;
		snprintf(sync, sizeof(sync), "sync-%d", r->step);
		side_run(&r->q, steps[i].in, sync);
		side_run(&r->p, steps[i].in, sync);
		ok = !r->q.lost && !r->p.lost && r->q.n == r->p.n;
		for (k = 0; ok && k < r->q.n; k++)
			ok = same(r->q.msgs[k], r->p.msgs[k], steps[i].flags);
		if (!ok) {
			r->bad++;
			report_step(r->f, r->step, steps[i].in, &r->q, &r->p);
		}
		ck_assert_msg(!r->q.lost, "QEMU went away at step %d: %s",
		    r->step, steps[i].in);
		/* a lost proxy ends the run; what differed so far is told */
		if (r->p.lost)
			break;
	}
}

/* Fail with the whole report if any step differed. */
static void
run_end(struct run *r)
{
	fclose(r->f);
	if (r->bad > 0)
		fprintf(stderr, "differential: %d of %d steps differ:\n%s",
		    r->bad, r->step, r->text);
	ck_assert_msg(r->bad == 0, "%d of %d steps differ:\n%s", r->bad,
	    r->step, r->text);
	side_clear(&r->q);
	side_clear(&r->p);
	t_client_free(r->q.c);
	t_client_free(r->p.c);
	free(r->text);
}

/* Before negotiation: every kind of input but qmp_capabilities. */
static const struct step pre[] = {
	{ "{\"execute\":\"query-status\",\"id\":1}", 0 },
	{ "{\"execute\":\"query-status\"}", 0 },
	{ "{\"execute\":\"stop\",\"id\":\"s\"}", 0 },
	{ "{\"execute\":\"query-name\",\"id\":"
	    "{\"a\": [1, {\"b\": null}]}}", 0 },
	{ "{\"execute\":\"nope\",\"id\":null}", 0 },
	{ "{\"id\":[], \"execute\":\"query-name\"}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":\"oob\"}}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"foo\":1}}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"foo\"]}}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":null},\"id\":1}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"foo\"]},\"id\":{\"z\": []}}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":[]}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"foo\":1}", 0 },
	{ "[1,2]", 0 },
	{ "3", 0 },
	{ "\"str\"", 0 },
	{ "null", 0 },
	{ "true", 0 },
	{ "[]", 0 },
	{ "{\"foo\":1}", 0 },
	{ "{\"foo\":1,\"id\":2}", 0 },
	{ "{\"execute\":3}", 0 },
	{ "{\"execute\":3,\"id\":\"s\"}", 0 },
	{ "{\"execute\":null,\"id\":[]}", 0 },
	{ "{\"execute\":\"query-status\",\"arguments\":[]}", 0 },
	{ "{\"execute\":\"query-status\",\"arguments\":\"x\",\"id\":-1}", 0 },
	{ "{}", 0 },
	{ "{\"id\":5}", 0 },
	{ "{\"arguments\":{}}", 0 },
	{ "{\"exec-oob\":\"query-name\",\"id\":1}", 0 },
	{ "{\"exec-oob\":\"query-name\"}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":\"x\",\"id\":\"y\"}", 0 },
	{ "{\"execute\":\"query-status\",\"execute\":\"query-name\"}", 0 },
	{ "{\"execute\": }", D_PARSE },
	{ "{\"execute\":\"query-status\",}", D_PARSE },
	{ "{\"execute\" \"x\"}", D_PARSE },
	{ "nonsense", D_PARSE },
	{ "]", D_PARSE },
	{ "{\"execute\":\"query-name\",\"id\":tru}", D_PARSE },
};

/* A good qmp_capabilities with oob, then more of them. */
static const struct step caps_oob[] = {
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"oob\"]},\"id\":\"caps\"}", 0 },
	{ "{\"execute\":\"qmp_capabilities\"}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"id\":7}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"oob\"]},\"id\":\"again\"}", 0 },
};

/* A good qmp_capabilities without oob, then more of them. */
static const struct step caps_plain[] = {
	{ "{\"execute\":\"qmp_capabilities\"}", 0 },
	{ "{\"execute\":\"qmp_capabilities\"}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"id\":[1, 2]}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":{},\"id\":0}", 0 },
};

/* An id nested 1023 deep: with the object, QEMU's limit of 1024. */
#define B10	"[[[[[[[[[["
#define E10	"]]]]]]]]]]"
#define B100	B10 B10 B10 B10 B10 B10 B10 B10 B10 B10
#define E100	E10 E10 E10 E10 E10 E10 E10 E10 E10 E10
#define B1000	B100 B100 B100 B100 B100 B100 B100 B100 B100 B100
#define E1000	E100 E100 E100 E100 E100 E100 E100 E100 E100 E100
#define DEEP_ID	"{\"execute\":\"query-name\",\"id\":" \
		B1000 B10 B10 "[[[" E1000 E10 E10 "]]]}"

/* Negotiated: commands with ids of every type, and malformed input. */
static const struct step post[] = {
	{ "{\"execute\":\"query-status\",\"id\":1}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":-5}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":0}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":18446744073709551615}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":\"s\"}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":\"\"}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":{\"a\": 1}}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":[1, \"b\"]}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":[]}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":{}}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":null}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":true}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":false}", 0 },
	{ "{\"execute\":\"query-status\"}", 0 },
	{ "{\"id\":{\"a\": [1, {\"b\": null}]},\"execute\":\"query-status\"}",
	    0 },
	{ "{\"execute\":\"query-name\",\"id\":2}", 0 },
	{ "{\"execute\":\"query-name\",\"id\":\"n\"}", 0 },
	{ "{\"execute\":\"query-name\",\"id\":[null]}", 0 },
	{ "{\"execute\":\"query-name\"}", 0 },
	{ "{\"execute\":\"stop\",\"id\":\"stop\"}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":{\"paused\": true}}", 0 },
	{ "{\"execute\":\"stop\",\"id\":[\"again\"]}", 0 },
	{ "{\"execute\":\"cont\",\"id\":{\"c\": 1}}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":3}", 0 },
	{ "{\"execute\":\"stop\"}", 0 },
	{ "{\"execute\":\"cont\"}", 0 },
	{ "{\"execute\":\"cont\",\"id\":null}", 0 },
	{ "{\"execute\":\"nope\",\"id\":null}", 0 },
	{ "{\"execute\":\"nope\"}", 0 },
	{ "{\"execute\":\"\",\"id\":\"\"}", 0 },
	{ "{\"execute\":\"query-status\",\"arguments\":{\"x\":1},"
	    "\"id\":\"args\"}", 0 },
	{ "{\"execute\":\"query-status\",\"arguments\":{},\"id\":\"args\"}",
	    0 },
	{ "{\"execute\":\"human-monitor-command\",\"id\":3}", 0 },
	{ "{\"execute\":\"query-commands\",\"id\":\"long\"}", 0 },
	{ "[1,2]", 0 },
	{ "3", 0 },
	{ "\"str\"", 0 },
	{ "{\"foo\":1}", 0 },
	{ "{\"execute\":\"query-status\",\"foo\":1,\"id\":9}", 0 },
	{ "{\"execute\":3,\"id\":\"s\"}", 0 },
	{ "{\"execute\":\"stop\",\"arguments\":[],\"id\":[]}", 0 },
	{ "{\"execute\":\"stop\",\"arguments\":1}", 0 },
	{ "{\"id\":5}", 0 },
	{ "{}", 0 },
	{ "{\"execute\":\"stop\",\"id\":1,\"id\":2}", 0 },
	{ "{\"execute\":\"stop\",\"execute\":\"stop\",\"id\":1}", 0 },
	{ "{\"execute\": }", D_PARSE },
	{ "{\"execute\":\"stop\",}", D_PARSE },
	{ "nonsense", D_PARSE },
	{ DEEP_ID, 0 },
	{ "{\"execute\":\"query-status\",\"id\":\"after\"}", 0 },
};

/* Negotiated with oob: exec-oob reaches QEMU's own checks. */
static const struct step post_oob[] = {
	{ "{\"exec-oob\":\"query-name\",\"id\":1}", 0 },
	{ "{\"exec-oob\":\"query-name\",\"id\":\"x\"}", 0 },
	{ "{\"exec-oob\":\"query-status\",\"id\":{\"a\": 1}}", 0 },
	{ "{\"exec-oob\":\"query-name\"}", 0 },
	{ "{\"exec-oob\":\"migrate-pause\",\"id\":\"mp\"}", 0 },
	{ "{\"exec-oob\":\"migrate-pause\"}", 0 },
	{ "{\"exec-oob\":\"nope\",\"id\":2}", 0 },
	{ "{\"exec-oob\":3,\"id\":1}", 0 },
	{ "{\"exec-oob\":\"query-name\",\"execute\":\"query-name\",\"id\":1}",
	    0 },
	{ "{\"exec-oob\":\"query-name\",\"foo\":1,\"id\":1}", 0 },
	{ "{\"execute\":\"query-name\",\"id\":\"inband\"}", 0 },
};

/* Negotiated without oob: exec-oob is a stranger. */
static const struct step post_plain[] = {
	{ "{\"exec-oob\":\"query-name\",\"id\":1}", 0 },
	{ "{\"exec-oob\":\"migrate-pause\"}", 0 },
	{ "{\"exec-oob\":3,\"id\":[1]}", 0 },
	{ "{\"execute\":\"query-name\",\"id\":\"inband\"}", 0 },
};

/* qmp_capabilities with a non-string capability, before negotiation. */
static const struct step caps_elem[] = {
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[1]}}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"oob\", null]},\"id\":2}", 0 },
};

/* After negotiation, a qmp_capabilities with bad arguments. */
static const struct step caps_bad_again[] = {
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":\"oob\"},\"id\":\"again\"}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"foo\":1}}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"foo\"]},\"id\":1}", 0 },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":null}}", 0 },
};


/* Duplicate keys below the top level: QEMU rejects them all. */
static const struct step dup_pre[] = {
	{ "[{\"a\": 1, \"a\": 2}]", 0 },
	{ "{\"execute\":\"query-status\",\"id\":{\"a\": 1, \"a\": 2}}", 0 },
	{ "{\"execute\":\"query-status\",\"arguments\":"
	    "{\"a\": 1, \"a\": 2},\"id\":5}", 0 },
};

static const struct step dup_post[] = {
	{ "[{\"a\": 1, \"a\": 2}]", 0 },
	{ "{\"execute\":\"query-status\",\"id\":{\"a\": 1, \"a\": 2}}", 0 },
	{ "{\"execute\":\"stop\",\"id\":[{\"a\": 1, \"a\": 2}]}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":\"running?\"}", 0 },
	{ "{\"execute\":\"query-status\",\"arguments\":"
	    "{\"a\": 1, \"a\": 2},\"id\":5}", 0 },
};

/* qmp_capabilities whose arguments repeat a key: not a negotiation. */
static const struct step dup_caps[] = {
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\": [], \"enable\": []}}", 0 },
	{ "{\"execute\":\"query-status\",\"id\":\"negotiated?\"}", 0 },
};

#define SCRIPT(s)	(s), (sizeof(s) / sizeof((s)[0]))

/* Before negotiation, qmpmuxd answers every input as QEMU does. */
START_TEST(test_diff_pre_negotiation)
{
	struct run	 r;

	run_start(&r);
	run_script(&r, SCRIPT(pre));
	run_end(&r);
}
END_TEST

/*
 * The whole script with oob: before, negotiation, and after, including
 * exec-oob of commands that do not support it.
 */
START_TEST(test_diff_oob)
{
	struct run	 r;

	run_start(&r);
	run_script(&r, SCRIPT(pre));
	run_script(&r, SCRIPT(caps_oob));
	run_script(&r, SCRIPT(post));
	run_script(&r, SCRIPT(post_oob));
	run_end(&r);
}
END_TEST

/* The script negotiated without oob: exec-oob is refused as by QEMU. */
START_TEST(test_diff_plain)
{
	struct run	 r;

	run_start(&r);
	run_script(&r, SCRIPT(caps_plain));
	run_script(&r, SCRIPT(post));
	run_script(&r, SCRIPT(post_plain));
	run_end(&r);
}
END_TEST

/* A capability that is not a string is named as QEMU names it. */
START_TEST(test_diff_caps_elem)
{
	struct run	 r;

	run_start(&r);
	run_script(&r, SCRIPT(caps_elem));
	run_script(&r, SCRIPT(caps_plain));
	run_end(&r);
}
END_TEST

/*
 * After negotiation QEMU checks qmp_capabilities' arguments before it
 * says negotiation is complete; so must qmpmuxd.
 */
START_TEST(test_diff_caps_bad_again)
{
	struct run	 r;

	run_start(&r);
	run_script(&r, SCRIPT(caps_plain));
	run_script(&r, SCRIPT(caps_bad_again));
	run_end(&r);
}
END_TEST

/* The same after a negotiation that enabled oob. */
START_TEST(test_diff_caps_bad_again_oob)
{
	struct run	 r;

	run_start(&r);
	run_script(&r, SCRIPT(caps_oob));
	run_script(&r, SCRIPT(caps_bad_again));
	run_end(&r);
}
END_TEST

/*
 * A key repeated inside the id or the arguments is a JSON parse error
 * to QEMU, before and after negotiation; nothing of it may run.
 */
START_TEST(test_diff_nested_dupkey)
{
	struct run	 r;

	run_start(&r);
	run_script(&r, SCRIPT(dup_pre));
	run_script(&r, SCRIPT(caps_plain));
	run_script(&r, SCRIPT(dup_post));
	run_end(&r);
}
END_TEST

/* A qmp_capabilities with a repeated argument does not negotiate. */
START_TEST(test_diff_caps_dupkey)
{
	struct run	 r;

	run_start(&r);
	run_script(&r, SCRIPT(dup_caps));
	run_end(&r);
}
END_TEST

/* A second session on the same monitors starts afresh on both sides. */
START_TEST(test_diff_second_session)
{
	struct run	 r;

	run_start(&r);
	run_script(&r, SCRIPT(caps_oob));
	run_script(&r, SCRIPT(post_oob));
	run_end(&r);
	run_start(&r);
	run_script(&r, SCRIPT(pre));
	run_script(&r, SCRIPT(caps_plain));
	run_script(&r, SCRIPT(post_plain));
	run_end(&r);
}
END_TEST

/* One TCase: every test gets its own pair of QEMUs and qmpmuxd. */
static Suite *
diff_suite(void)
{
	Suite	*s = suite_create("diff");
	TCase	*tc = tcase_create("qemu");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_diff_pre_negotiation);
	tcase_add_test(tc, test_diff_oob);
	tcase_add_test(tc, test_diff_plain);
	tcase_add_test(tc, test_diff_second_session);
	tcase_add_test(tc, test_diff_caps_elem);
	tcase_add_test(tc, test_diff_caps_bad_again);
	tcase_add_test(tc, test_diff_caps_bad_again_oob);
	tcase_add_test(tc, test_diff_nested_dupkey);
	tcase_add_test(tc, test_diff_caps_dupkey);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (t_run(diff_suite()));
}
