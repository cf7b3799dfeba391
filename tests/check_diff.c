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
 * Replies are compared as text, with one exception: events carry the
 * time they happened, which differs between two QEMUs, so an event is
 * compared by its "event" name only.  Ids are compared as text too:
 * QEMU writes back the id it parsed (1.50 becomes 1.5, 'x' becomes
 * "x", "\u00e9" becomes "\u00E9", {"a":1} becomes {"a": 1}), and so
 * must qmpmuxd (the "ids" case).
 *
 * Errors are compared exactly, JSON parse errors included: qmpmuxd reads
 * bytes as QEMU's lexer and parser do, and says what QEMU says.  The
 * sweeps put every byte value before a command, between two, between
 * the tokens of one and inside its strings: whitespace, control bytes,
 * stray bytes, bytes that are not UTF-8.  A closing "}]" after each
 * sweep step ends whatever a '{' or '[' opened, on both sides alike.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "testlib.h"

/* One input (the sweeps send bytes a C string cannot hold). */
struct step {
	const char	*in;
};

/* Where a sweep puts its byte, and the command around it. */
enum sweep {
	SWEEP_NONE,
	SWEEP_BEFORE,		/* <b>{"execute":...} */
	SWEEP_BETWEEN,		/* {...}<b>{...} */
	SWEEP_TOKENS,		/* {"execute":<b>"query-name",...} */
	SWEEP_STRING,		/* {"execute":"query-<b>name",...} */
};

/* Steps from a table, or the 256 of a sweep; all NULL: a new session. */
struct script {
	const struct step *steps;
	size_t		 n;
	enum sweep	 sweep;
};

static struct t_diff	 td;

/* Two QEMUs: one reached directly, one behind qmpmuxd. */
static void
setup(void)
{
	t_diff_start(&td);
}

static void
teardown(void)
{
	t_diff_stop(&td);
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
side_run(struct side *s, const char *in, size_t len, const char *sync)
{
	char	*m, needle[48];
	int	 last;

	side_clear(s);
	t_send_raw(s->c, in, len);
	t_send(s->c, "\n{\"execute\":\"query-name\",\"id\":\"%s\"}\n", sync);
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

/* Append both sides' replies to one step to the report. */
static void
report_step(FILE *f, int n, const char *in, size_t len, struct side *q,
    struct side *p)
{
	struct side	*s;
	int		 i, k;

	fprintf(f, "step %d: ", n);
	t_diff_print(f, in, len);
	fputc('\n', f);
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
	r->q.c = t_client_new(td.dsock);
	r->p.c = t_client_new(td.psock);
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

/* The input of step i of a sweep: the byte i where the sweep puts it. */
static size_t
sweep_input(enum sweep sweep, size_t i, char *buf, size_t size)
{
	int	 n = 0;

	/* a NUL byte too: the length is what snprintf wrote */
	switch (sweep) {
	case SWEEP_BEFORE:
		n = snprintf(buf, size, "%c{\"execute\":\"query-name\","
		    "\"id\":%zu}", (int)i, i);
		break;
	case SWEEP_BETWEEN:
		n = snprintf(buf, size, "{\"execute\":\"query-name\",\"id\":1}"
		    "%c{\"execute\":\"query-name\",\"id\":%zu}", (int)i, i);
		break;
	case SWEEP_TOKENS:
		n = snprintf(buf, size, "{\"execute\":%c\"query-name\","
		    "\"id\":%zu}", (int)i, i);
		break;
	case SWEEP_STRING:
		n = snprintf(buf, size, "{\"execute\":\"query-%cname\","
		    "\"id\":%zu}", (int)i, i);
		break;
	case SWEEP_NONE:
		break;
	}
	ck_assert(n > 0 && (size_t)n + 3 < size);
	/* close what a '{' or '[' opened, the same on both sides */
	memcpy(buf + n, "}]", 3);
	return ((size_t)n + 2);
}

/* Run one script on both sides. */
static void
run_script(struct run *r, const struct script *sc)
{
	const char	*in;
	char		 sync[32], buf[128];
	size_t		 i, len;
	int		 k, ok;

	for (i = 0; i < sc->n; i++) {
		if (sc->sweep != SWEEP_NONE) {
			len = sweep_input(sc->sweep, i, buf, sizeof(buf));
			in = buf;
		} else {
			in = sc->steps[i].in;
			len = strlen(in);
		}
		r->step++;
		snprintf(sync, sizeof(sync), "sync-%d", r->step);
		side_run(&r->q, in, len, sync);
		side_run(&r->p, in, len, sync);
		ok = !r->q.lost && !r->p.lost && r->q.n == r->p.n;
		for (k = 0; ok && k < r->q.n; k++)
			ok = t_diff_same(r->q.msgs[k], r->p.msgs[k]);
		if (!ok) {
			r->bad++;
			report_step(r->f, r->step, in, len, &r->q, &r->p);
		}
		ck_assert_msg(!r->q.lost, "QEMU went away at step %d",
		    r->step);
		/* a lost proxy ends the run; what differed so far is told */
		if (r->p.lost)
			break;
	}
}

/* Fail with the whole report if any step differed. */
static void
run_end(struct run *r, const char *name)
{
	fclose(r->f);
	if (r->bad > 0)
		fprintf(stderr, "differential %s: %d of %d steps differ:\n%s",
		    name, r->bad, r->step, r->text);
	ck_assert_msg(r->bad == 0, "%s: %d of %d steps differ:\n%s", name,
	    r->bad, r->step, r->text);
	side_clear(&r->q);
	side_clear(&r->p);
	t_client_free(r->q.c);
	t_client_free(r->p.c);
	free(r->text);
}

/* Before negotiation: every kind of input but qmp_capabilities. */
static const struct step pre[] = {
	{ "{\"execute\":\"query-status\",\"id\":1}" },
	{ "{\"execute\":\"query-status\"}" },
	{ "{\"execute\":\"stop\",\"id\":\"s\"}" },
	{ "{\"execute\":\"query-name\",\"id\":"
	    "{\"a\": [1, {\"b\": null}]}}" },
	{ "{\"execute\":\"nope\",\"id\":null}" },
	{ "{\"id\":[], \"execute\":\"query-name\"}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":\"oob\"}}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"foo\":1}}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"foo\"]}}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":null},\"id\":1}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"foo\"]},\"id\":{\"z\": []}}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":[]}" },
	{ "{\"execute\":\"qmp_capabilities\",\"foo\":1}" },
	{ "[1,2]" },
	{ "3" },
	{ "\"str\"" },
	{ "null" },
	{ "true" },
	{ "[]" },
	{ "{\"foo\":1}" },
	{ "{\"foo\":1,\"id\":2}" },
	{ "{\"execute\":3}" },
	{ "{\"execute\":3,\"id\":\"s\"}" },
	{ "{\"execute\":null,\"id\":[]}" },
	{ "{\"execute\":\"query-status\",\"arguments\":[]}" },
	{ "{\"execute\":\"query-status\",\"arguments\":\"x\",\"id\":-1}" },
	{ "{}" },
	{ "{\"id\":5}" },
	{ "{\"arguments\":{}}" },
	{ "{\"exec-oob\":\"query-name\",\"id\":1}" },
	{ "{\"exec-oob\":\"query-name\"}" },
	{ "{\"execute\":\"query-status\",\"id\":\"x\",\"id\":\"y\"}" },
	{ "{\"execute\":\"query-status\",\"execute\":\"query-name\"}" },
	{ "{\"execute\": }" },
	{ "{\"execute\":\"query-status\",}" },
	{ "{\"execute\" \"x\"}" },
	{ "nonsense" },
	{ "]" },
	{ "{\"execute\":\"query-name\",\"id\":tru}" },
};

/* A good qmp_capabilities with oob, then more of them. */
static const struct step caps_oob[] = {
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"oob\"]},\"id\":\"caps\"}" },
	{ "{\"execute\":\"qmp_capabilities\"}" },
	{ "{\"execute\":\"qmp_capabilities\",\"id\":7}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"oob\"]},\"id\":\"again\"}" },
};

/* A good qmp_capabilities without oob, then more of them. */
static const struct step caps_plain[] = {
	{ "{\"execute\":\"qmp_capabilities\"}" },
	{ "{\"execute\":\"qmp_capabilities\"}" },
	{ "{\"execute\":\"qmp_capabilities\",\"id\":[1, 2]}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":{},\"id\":0}" },
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
	{ "{\"execute\":\"query-status\",\"id\":1}" },
	{ "{\"execute\":\"query-status\",\"id\":-5}" },
	{ "{\"execute\":\"query-status\",\"id\":0}" },
	{ "{\"execute\":\"query-status\",\"id\":18446744073709551615}" },
	{ "{\"execute\":\"query-status\",\"id\":\"s\"}" },
	{ "{\"execute\":\"query-status\",\"id\":\"\"}" },
	{ "{\"execute\":\"query-status\",\"id\":{\"a\": 1}}" },
	{ "{\"execute\":\"query-status\",\"id\":[1, \"b\"]}" },
	{ "{\"execute\":\"query-status\",\"id\":[]}" },
	{ "{\"execute\":\"query-status\",\"id\":{}}" },
	{ "{\"execute\":\"query-status\",\"id\":null}" },
	{ "{\"execute\":\"query-status\",\"id\":true}" },
	{ "{\"execute\":\"query-status\",\"id\":false}" },
	{ "{\"execute\":\"query-status\"}" },
	{ "{\"id\":{\"a\": [1, {\"b\": null}]},\"execute\":\"query-status\"}" },
	{ "{\"execute\":\"query-name\",\"id\":2}" },
	{ "{\"execute\":\"query-name\",\"id\":\"n\"}" },
	{ "{\"execute\":\"query-name\",\"id\":[null]}" },
	{ "{\"execute\":\"query-name\"}" },
	{ "{\"execute\":\"stop\",\"id\":\"stop\"}" },
	{ "{\"execute\":\"query-status\",\"id\":{\"paused\": true}}" },
	{ "{\"execute\":\"stop\",\"id\":[\"again\"]}" },
	{ "{\"execute\":\"cont\",\"id\":{\"c\": 1}}" },
	{ "{\"execute\":\"query-status\",\"id\":3}" },
	{ "{\"execute\":\"stop\"}" },
	{ "{\"execute\":\"cont\"}" },
	{ "{\"execute\":\"cont\",\"id\":null}" },
	{ "{\"execute\":\"nope\",\"id\":null}" },
	{ "{\"execute\":\"nope\"}" },
	{ "{\"execute\":\"\",\"id\":\"\"}" },
	{ "{\"execute\":\"query-status\",\"arguments\":{\"x\":1},"
	    "\"id\":\"args\"}" },
	{ "{\"execute\":\"query-status\",\"arguments\":{},\"id\":\"args\"}" },
	{ "{\"execute\":\"human-monitor-command\",\"id\":3}" },
	{ "{\"execute\":\"query-commands\",\"id\":\"long\"}" },
	{ "[1,2]" },
	{ "3" },
	{ "\"str\"" },
	{ "{\"foo\":1}" },
	{ "{\"execute\":\"query-status\",\"foo\":1,\"id\":9}" },
	{ "{\"execute\":3,\"id\":\"s\"}" },
	{ "{\"execute\":\"stop\",\"arguments\":[],\"id\":[]}" },
	{ "{\"execute\":\"stop\",\"arguments\":1}" },
	{ "{\"id\":5}" },
	{ "{}" },
	{ "{\"execute\":\"stop\",\"id\":1,\"id\":2}" },
	{ "{\"execute\":\"stop\",\"execute\":\"stop\",\"id\":1}" },
	{ "{\"execute\": }" },
	{ "{\"execute\":\"stop\",}" },
	{ "nonsense" },
	{ DEEP_ID },
	{ "{\"execute\":\"query-status\",\"id\":\"after\"}" },
};

/* Negotiated with oob: exec-oob reaches QEMU's own checks. */
static const struct step post_oob[] = {
	{ "{\"exec-oob\":\"query-name\",\"id\":1}" },
	{ "{\"exec-oob\":\"query-name\",\"id\":\"x\"}" },
	{ "{\"exec-oob\":\"query-status\",\"id\":{\"a\": 1}}" },
	{ "{\"exec-oob\":\"query-name\"}" },
	{ "{\"exec-oob\":\"migrate-pause\",\"id\":\"mp\"}" },
	{ "{\"exec-oob\":\"migrate-pause\"}" },
	{ "{\"exec-oob\":\"nope\",\"id\":2}" },
	{ "{\"exec-oob\":3,\"id\":1}" },
	{ "{\"exec-oob\":\"query-name\",\"execute\":\"query-name\",\"id\":1}" },
	{ "{\"exec-oob\":\"query-name\",\"foo\":1,\"id\":1}" },
	/*
	 * QEMU runs exec-oob as it reads it, and queues what follows:
	 * the proxy's own replies to the input after it (a parse error, a
	 * non-object, a second qmp_capabilities) come after its reply
	 * (fuzz_diff, seed 2).
	 */
	{ "{\"exec-oob\":\"query-status\",\"id\":\"o1\"}}" },
	{ "{\"exec-oob\":\"query-name\",\"id\":\"o2\"}[1]" },
	{ "{\"exec-oob\":\"query-name\",\"id\":\"o3\"}"
	    "{\"execute\":\"qmp_capabilities\",\"id\":\"again\"}" },
	{ "{\"execute\":\"query-name\",\"id\":\"inband\"}" },
};

/* Negotiated without oob: exec-oob is a stranger. */
static const struct step post_plain[] = {
	{ "{\"exec-oob\":\"query-name\",\"id\":1}" },
	{ "{\"exec-oob\":\"migrate-pause\"}" },
	{ "{\"exec-oob\":3,\"id\":[1]}" },
	{ "{\"execute\":\"query-name\",\"id\":\"inband\"}" },
};

/* qmp_capabilities with a non-string capability, before negotiation. */
static const struct step caps_elem[] = {
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[1]}}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"oob\", null]},\"id\":2}" },
};

/* After negotiation, a qmp_capabilities with bad arguments. */
static const struct step caps_bad_again[] = {
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":\"oob\"},\"id\":\"again\"}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"foo\":1}}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[\"foo\"]},\"id\":1}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":null}}" },
};


/* Duplicate keys below the top level: QEMU rejects them all. */
static const struct step dup_pre[] = {
	{ "[{\"a\": 1, \"a\": 2}]" },
	{ "{\"execute\":\"query-status\",\"id\":{\"a\": 1, \"a\": 2}}" },
	{ "{\"execute\":\"query-status\",\"arguments\":"
	    "{\"a\": 1, \"a\": 2},\"id\":5}" },
};

static const struct step dup_post[] = {
	{ "[{\"a\": 1, \"a\": 2}]" },
	{ "{\"execute\":\"query-status\",\"id\":{\"a\": 1, \"a\": 2}}" },
	{ "{\"execute\":\"stop\",\"id\":[{\"a\": 1, \"a\": 2}]}" },
	{ "{\"execute\":\"query-status\",\"id\":\"running?\"}" },
	{ "{\"execute\":\"query-status\",\"arguments\":"
	    "{\"a\": 1, \"a\": 2},\"id\":5}" },
};

/* qmp_capabilities whose arguments repeat a key: not a negotiation. */
static const struct step dup_caps[] = {
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\": [], \"enable\": []}}" },
	{ "{\"execute\":\"query-status\",\"id\":\"negotiated?\"}" },
};

/*
 * Members QEMU meets in its hash table's order: with several strangers,
 * or a stranger beside a bad execute or arguments, the one it names
 * depends on that order, not the input's.
 */
static const struct step order[] = {
	{ "{\"execute\":\"query-name\",\"foo\":1,\"bar\":2,\"baz\":3}" },
	{ "{\"zzz\":1,\"execute\":3,\"aaa\":2}" },
	{ "{\"arguments\":1,\"abc\":2,\"execute\":\"query-name\"}" },
	{ "{\"execute\":\"query-name\",\"arguments\":[],\"x\":1,\"y\":2,"
	    "\"z\":3,\"w\":4,\"v\":5,\"u\":6,\"t\":7,\"s\":8,\"r\":9}" },
	{ "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,"
	    "\"i\":9,\"j\":10,\"execute\":\"query-name\"}" },
	{ "{\"exec-oob\":3,\"execute\":4,\"arguments\":5,\"q\":6}" },
	{ "{\"execute\":\"query-name\",\"id\":1,\"ID\":2,\"Id\":3}" },
};

/* What QEMU's lexer takes that a JSON parser would not, and back. */
static const struct step lexical[] = {
	{ "{'execute':'query-name','id':\"sq\"}" },
	{ "{\"execute\":'query-\"name\"'}" },
	{ "{\"execute\":\"query-\\u006eame\",\"id\":\"esc\"}" },
	{ "{\"\\u0065xecute\":\"query-name\",\"id\":\"key\"}" },
	{ "{\"execute\":\"query-name\",\"arguments\":"
	    "{\"x\":\"\\/\\b\\f\\n\\r\\t\\'\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":\"\\u0000\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":\"\\ud800\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":\"\\udc00x\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":\"\\uFFFE\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":\"\\u12\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":\"\\q\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":"
	    "\"\xc0\x80\xf0\x9f\x98\x80\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":\"\xc1\xbf\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":\"\xed\xb0\x80\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":"
	    "\"\xf4\x90\x80\x80\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":\"\xef\xb7\x90\"}}" },
	{ "{\"execute\":\"query-name\",\"arguments\":{\"x\":\"\xe2\x82\"}}" },
	{ "{\"execute\":\"query-name\",\"id\":\"\xff\"}" },
	{ "{\"execute\":\"query-name\",\"id\":01}" },
	{ "{\"execute\":\"query-name\",\"id\":1.}" },
	{ "{\"execute\":\"query-name\",\"id\":-}" },
	{ "{\"execute\":\"query-name\",\"id\":1e}" },
	{ "{\"execute\":\"query-name\",\"id\":tru}" },
	{ "{\"execute\":\"query-name\",\"id\":%d}" },
	{ "{\"execute\":\"query-name\",\"id\":1}}]]" },
	{ "{\"execute\":\"query-name\" \"id\":1}" },
	{ "{\"execute\":\"query-name\",,\"id\":1}" },
	{ "{1:\"query-name\"}" },
	{ "{[1, 2]:3}" },
	{ "{\"a\":1,\"a\":[1 2]}" },
	{ "\v\f\v{\"execute\":\"query-name\",\"id\":\"vf\"}" },
	{ "{\"execute\":\"query-name\"\v,\"id\":1}" },
	{ "\"unterminated" },
	{ "'unterminated" },
};

/*
 * qmp_capabilities in single quotes, before negotiation and after: the
 * proxy answers it from the reader's reading, not a second parser's
 * (fuzz_diff, seed 20261207, input 2259).
 */
static const struct step caps_quoted[] = {
	{ "{'execute': 'qmp_capabilities', 'id': 'neg'}" },
	{ "{'execute': 'qmp_capabilities', 'id': 'neg'}" },
	{ "{'execute': 'qmp_capabilities', 'arguments': {'enable': 'oob'}}" },
	{ "{'execute': 'qmp_capabilities', 'arguments': "
	    "{'en\\u0061ble': ['\\u006fob']}, 'id': \"caf\\u00e9\"}" },
};

/* The same, with oob enabled in single quotes. */
static const struct step caps_quoted_oob[] = {
	{ "{'execute': 'qmp_capabilities', 'arguments': {'enable': ['oob']},"
	    " 'id': {'a': \"b\"}}" },
	{ "{'exec-oob': 'query-name', 'id': 'o'}" },
};

/*
 * Ids of every form QEMU writes back otherwise than they came: quotes,
 * escapes, numbers it reads as another number, spaces, members in its
 * hash order, doubles, integers past 64 bits, characters past the BMP.
 * (QEMU writes 1e999 back as inf, which is no JSON and which no client
 * reads: check_qmp holds the writer to that.)
 */
static const struct step ids[] = {
	{ "{\"execute\":\"query-name\",\"id\":'x'}" },
	{ "{\"execute\":\"query-name\",\"id\":\"caf\\u00e9\"}" },
	{ "{\"execute\":\"query-name\",\"id\":\"\\/a\"}" },
	{ "{\"execute\":\"query-name\",\"id\":1.0e2}" },
	{ "{\"execute\":\"query-name\",\"id\":-0}" },
	{ "{\"execute\":\"query-name\",\"id\":-0.0}" },
	{ "{\"execute\":\"query-name\",\"id\":{'a': \"b\"}}" },
	{ "{\"execute\":\"query-name\",\"id\":0.1}" },
	{ "{\"execute\":\"query-name\",\"id\":1.50}" },
	{ "{\"execute\":\"query-name\",\"id\":1e3}" },
	{ "{\"execute\":\"query-name\",\"id\":1E-7}" },
	{ "{\"execute\":\"query-name\",\"id\":123456789012345678}" },
	{ "{\"execute\":\"query-name\",\"id\":9223372036854775807}" },
	{ "{\"execute\":\"query-name\",\"id\":9223372036854775808}" },
	{ "{\"execute\":\"query-name\",\"id\":18446744073709551616}" },
	{ "{\"execute\":\"query-name\",\"id\":-9223372036854775808}" },
	{ "{\"execute\":\"query-name\",\"id\":-9223372036854775809}" },
	{ "{\"execute\":\"query-name\",\"id\":"
	    "123456789012345678901234567890}" },
	{ "{\"execute\":\"query-name\",\"id\":"
	    "{\"c\":1,\"b\":2,\"a\":3,\"id\":4,\"execute\":5}}" },
	{ "{\"execute\":\"query-name\",\"id\":"
	    "{ \"a\" : { \"b\" : [ 1 ,2, { } ] } }}" },
	{ "{\"execute\":\"query-name\",\"id\":\"\\ud83d\\ude00\"}" },
	{ "{\"execute\":\"query-name\",\"id\":\"\xf0\x9f\x98\x80\"}" },
	{ "{\"execute\":\"query-name\",\"id\":\"\xc3\xa9\x7f\"}" },
	{ "{\"execute\":\"query-name\",\"id\":"
	    "\"\\b\\f\\n\\r\\t\\\"\\\\\\u0001\\u0000\"}" },
	{ "{\"execute\":\"query-name\",\"id\":'it\\'s \"q\"'}" },
	{ "{\"execute\":\"query-name\",\"id\":[true, false, null]}" },
	{ "{\"execute\":\"nope\",\"id\":'x'}" },
	{ "{\"execute\":\"query-status\",\"arguments\":[],\"id\":1.0}" },
	{ "{\"execute\":\"query-status\",\"foo\":1,\"id\":{'z': 0, 'a': []}}" },
};

/* Unexpected arguments of qmp_capabilities, named in glib's order. */
static const struct step caps_args[] = {
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"b\":1,\"a\":2}}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"b\":1,\"a\":2,\"enable\":5}}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"enable\":[],\"x\":1,\"y\":2,\"z\":3}}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"zz\":1,\"enable\":[\"oob\"],\"aa\":2,\"mm\":3,"
	    "\"foo\":4,\"bar\":5,\"baz\":6}}" },
	{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
	    "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,"
	    "\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"k\":11}}" },
};

#define SCRIPT(s)	{ (s), (sizeof(s) / sizeof((s)[0])), SWEEP_NONE }
#define SWEEP(w)	{ NULL, 256, (w) }
#define SESSION		{ NULL, 0, SWEEP_NONE }
#define NSCRIPTS	8

/* Each case: its scripts in order, on one pair of QEMUs and a qmpmuxd. */
static const struct diffcase {
	const char	*name;
	struct script	 scripts[NSCRIPTS];
} cases[] = {
	/* before negotiation, qmpmuxd answers every input as QEMU does */
	{ "pre-negotiation", { SCRIPT(pre) } },
	/* before, negotiation and after, with exec-oob of every kind */
	{ "oob", { SCRIPT(pre), SCRIPT(caps_oob), SCRIPT(post),
	    SCRIPT(post_oob) } },
	/* negotiated without oob: exec-oob is refused as by QEMU */
	{ "plain", { SCRIPT(caps_plain), SCRIPT(post), SCRIPT(post_plain) } },
	/* a second session on the same monitors starts afresh */
	{ "second session", { SCRIPT(caps_oob), SCRIPT(post_oob), SESSION,
	    SCRIPT(pre), SCRIPT(caps_plain), SCRIPT(post_plain) } },
	/* a capability that is not a string is named as QEMU names it */
	{ "caps element", { SCRIPT(caps_elem), SCRIPT(caps_plain) } },
	/* QEMU checks the arguments before it says it is too late */
	{ "caps bad again", { SCRIPT(caps_plain), SCRIPT(caps_bad_again) } },
	{ "caps bad again, oob", { SCRIPT(caps_oob),
	    SCRIPT(caps_bad_again) } },
	/* a key repeated in the id or arguments: nothing of it may run */
	{ "nested dupkey", { SCRIPT(dup_pre), SCRIPT(caps_plain),
	    SCRIPT(dup_post) } },
	/* a qmp_capabilities with a repeated argument does not negotiate */
	{ "caps dupkey", { SCRIPT(dup_caps) } },
	{ "hash order", { SCRIPT(order), SCRIPT(caps_plain),
	    SCRIPT(order) } },
	{ "lexical", { SCRIPT(lexical), SCRIPT(caps_plain),
	    SCRIPT(lexical) } },
	/* ids come back as QEMU writes them, before negotiation too */
	{ "ids", { SCRIPT(ids), SCRIPT(caps_plain), SCRIPT(ids) } },
	{ "caps quoted", { SCRIPT(caps_quoted), SCRIPT(ids) } },
	{ "caps quoted, oob", { SCRIPT(caps_quoted_oob), SCRIPT(ids) } },
	{ "caps arguments", { SCRIPT(caps_args), SCRIPT(caps_plain),
	    SCRIPT(caps_args) } },
	/* every byte before, between and inside messages */
	{ "bytes before", { SWEEP(SWEEP_BEFORE), SCRIPT(caps_plain),
	    SWEEP(SWEEP_BEFORE) } },
	{ "bytes between", { SCRIPT(caps_plain), SWEEP(SWEEP_BETWEEN) } },
	{ "bytes in tokens", { SCRIPT(caps_plain), SWEEP(SWEEP_TOKENS) } },
	{ "bytes in strings", { SCRIPT(caps_plain), SWEEP(SWEEP_STRING) } },
};
#define NCASES	(sizeof(cases) / sizeof(cases[0]))

/* One case, its sessions one after the other. */
START_TEST(test_diff)
{
	const struct diffcase	*dc = &cases[_i];
	struct run		 r;
	size_t			 i;

	run_start(&r);
	for (i = 0; i < NSCRIPTS; i++) {
		if (dc->scripts[i].n == 0 && i + 1 < NSCRIPTS &&
		    dc->scripts[i + 1].n != 0) {
			run_end(&r, dc->name);
			run_start(&r);
		} else if (dc->scripts[i].n != 0)
			run_script(&r, &dc->scripts[i]);
	}
	run_end(&r, dc->name);
}
END_TEST

/* One TCase: every case gets its own pair of QEMUs and qmpmuxd. */
static Suite *
diff_suite(void)
{
	Suite	*s = suite_create("diff");
	TCase	*tc = t_tcase_with(s, "qemu", 120, setup, teardown);

	tcase_add_loop_test(tc, test_diff, 0, NCASES);
	return (s);
}

int
main(void)
{
	return (t_run(diff_suite()));
}
