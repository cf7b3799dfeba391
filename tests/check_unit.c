/*
 * Unit suites of the proxy's pure logic, in the test's process, with no
 * daemon, QEMU or socket: the upstream ids of src/cmd.c (made, read
 * back, and every other form refused), what a reload changes
 * (conf_diff), the access lists of src/acl.c, and the names of the fd
 * store (src/fdstore.c).  The queue's order needs a VM with a monitor
 * and clients on bufferevents: check_proxy and check_stuck test it.
 */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>

#include "qmpmux.h"
#include "testlib.h"

/* A message of QEMU's with id as its id's text, read by the framer. */
static void
u_msg(const char *id, struct qmp_msg *msg)
{
	struct qmp_reader	*r;
	struct evbuffer		*b;

	ck_assert_ptr_nonnull(r = qmp_reader_new(QMP_SIZE_MAX, QMP_DEPTH_MAX,
	    0));
	ck_assert_ptr_nonnull(b = evbuffer_new());
	evbuffer_add_printf(b, "{\"return\": {}, \"id\": %s}", id);
	ck_assert_msg(qmp_reader_next(r, b, msg) == QMP_MESSAGE, "not read: "
	    "%s", id);
	evbuffer_free(b);
	qmp_reader_free(r);
}

/* The parts of an upstream id, as cmd_parse_id reads them. */
struct u_id {
	unsigned int	 epoch;
	uint64_t	 seq;
	int		 client;
	char		 hex[2 * CMD_ID_CARRIED + 2];
};

/* cmd_parse_id of a reply whose id's text is id: 0, or -1. */
static int
u_parse(const char *id, struct u_id *out)
{
	struct qmp_msg	 msg;
	const char	*hex;
	size_t		 hexlen;
	int		 rv;

	memset(out, 0, sizeof(*out));
	u_msg(id, &msg);
	rv = cmd_parse_id(&msg, &out->epoch, &out->seq, &out->client, &hex,
	    &hexlen);
	if (rv == 0) {
		ck_assert_uint_lt(hexlen, sizeof(out->hex));
		memcpy(out->hex, hex, hexlen);
	}
	qmp_msg_clear(&msg);
	return (rv);
}

/* The upstream id of a command: cmd_upstream_id's text, as a string. */
static char *
u_upstream_id(unsigned int epoch, uint64_t seq, int owner, const char *id,
    size_t idlen)
{
	struct server	 srv;
	struct vm	 vm;
	struct cmd	 cmd;
	struct evbuffer	*b;
	char		*s;

	memset(&srv, 0, sizeof(srv));
	memset(&vm, 0, sizeof(vm));
	memset(&cmd, 0, sizeof(cmd));
	srv.epoch = epoch;
	vm.server = &srv;
	cmd.vm = &vm;
	cmd.upstream_id = seq;
	cmd.owner = owner;
	cmd.client_id = (char *)(uintptr_t)id;
	cmd.client_id_len = idlen;
	ck_assert_ptr_nonnull(b = evbuffer_new());
	cmd_upstream_id(b, &cmd);
	evbuffer_add(b, "", 1);
	ck_assert_ptr_nonnull(s = strdup((const char *)evbuffer_pullup(b,
	    -1)));
	evbuffer_free(b);
	return (s);
}

/* Upstream ids as cmd_upstream_id writes them, at their widest too. */
START_TEST(test_id_parse)
{
	struct u_id	 p;
	char		*up;

	up = u_upstream_id(0x12345678, 3, 1, NULL, 0);
	ck_assert_str_eq(up, "\"12345678.3.1.-\"");
	free(up);
	ck_assert_int_eq(u_parse("\"12345678.3.1.-\"", &p), 0);
	ck_assert_uint_eq(p.epoch, 0x12345678);
	ck_assert_uint_eq(p.seq, 3);
	ck_assert_int_eq(p.client, 1);
	ck_assert_str_eq(p.hex, "-");
	ck_assert_int_eq(u_parse("\"ffffffff.18446744073709551615."
	    "2147483647.~\"", &p), 0);
	ck_assert_uint_eq(p.epoch, 0xffffffff);
	ck_assert_uint_eq(p.seq, UINT64_MAX);
	ck_assert_int_eq(p.client, INT_MAX);
	ck_assert_str_eq(p.hex, "~");
	ck_assert_int_eq(u_parse("\"00000000.0.0.2261\"", &p), 0);
	ck_assert_uint_eq(p.epoch, 0);
	ck_assert_uint_eq(p.seq, 0);
	ck_assert_int_eq(p.client, 0);
	ck_assert_str_eq(p.hex, "2261");
}
END_TEST

/* The text of ids that are not cmd_upstream_id's: each is refused. */
static const char *const u_bad_ids[] = {
	/* not a string */
	"12345678", "null", "[\"12345678.3.1.-\"]", "{}", "\"\"",
	/* the epoch: 8 lowercase hex digits */
	"\"1234567.3.1.-\"", "\"123456789.3.1.-\"", "\"1234567g.3.1.-\"",
	"\"ABCDEF01.3.1.-\"", "\" 2345678.3.1.-\"", "\"+2345678.3.1.-\"",
	"\"-2345678.3.1.-\"", "\"0x345678.3.1.-\"", "\".3.1.-\"",
	"\"12345678\"", "\"12345678.\"", "\"12345678-3.1.-\"",
	/* the command number: decimal, as %llu writes it */
	"\"12345678..1.-\"", "\"12345678.03.1.-\"", "\"12345678.-3.1.-\"",
	"\"12345678.+3.1.-\"", "\"12345678. 3.1.-\"", "\"12345678.3 .1.-\"",
	"\"12345678.0x3.1.-\"", "\"12345678.18446744073709551616.1.-\"",
	"\"12345678.99999999999999999999.1.-\"", "\"12345678.3\"",
	"\"12345678.3.\"", "\"12345678.a.1.-\"",
	/* the client: decimal, to INT_MAX */
	"\"12345678.3..-\"", "\"12345678.3.01.-\"", "\"12345678.3.-1.-\"",
	"\"12345678.3.+1.-\"", "\"12345678.3.2147483648.-\"",
	"\"12345678.3.1\"", "\"12345678.3.1-\"", "\"12345678.3.x.-\"",
	/* the client's id: -, ~ or its bytes in lowercase hex */
	"\"12345678.3.1.\"", "\"12345678.3.1.--\"", "\"12345678.3.1.-~\"",
	"\"12345678.3.1.~~\"", "\"12345678.3.1.a\"", "\"12345678.3.1.abc\"",
	"\"12345678.3.1.AB\"", "\"12345678.3.1.zz\"", "\"12345678.3.1.61 \"",
	"\"12345678.3.1. 61\"", "\"12345678.3.1.6.1\"", "\"12345678.3.1.-.\"",
	/* escapes: the same text to JSON, but not as it was written */
	"\"12345678.3.1.\\u002d\"", "\"\\u0031\\u0032345678.3.1.-\"",
	"\"12345678.3.1.\\\"\"",
};

/* Every malformed form of an upstream id is refused. */
START_TEST(test_id_bad)
{
	struct u_id	 p;

	ck_assert_msg(u_parse(u_bad_ids[_i], &p) == -1, "taken: %s",
	    u_bad_ids[_i]);
}
END_TEST

/* The client's id in hex at CMD_ID_CARRIED bytes is taken, past it not. */
START_TEST(test_id_carried)
{
	struct u_id	 p;
	char		*id;
	size_t		 n;

	for (n = CMD_ID_CARRIED; n <= CMD_ID_CARRIED + 1; n++) {
		ck_assert_ptr_nonnull(id = calloc(1, 2 * n + 32));
		memcpy(id, "\"12345678.3.1.", 14);
		memset(id + 14, 'a', 2 * n);
		id[14 + 2 * n] = '"';
		ck_assert_int_eq(u_parse(id, &p), n == CMD_ID_CARRIED ? 0 : -1);
		if (n == CMD_ID_CARRIED)
			ck_assert_uint_eq(strlen(p.hex), 2 * n);
		free(id);
	}
}
END_TEST

/*
 * A client's id goes to QEMU in the upstream id and comes back out of
 * it the same bytes, with the epoch, command and client; one longer than
 * CMD_ID_CARRIED is not carried ("~"), and none is "-".
 */
START_TEST(test_id_round_trip)
{
	static const char *const ids[] = { "\"a\"", "1", "-0.5e3", "null",
	    "{\"x\": [1, \"\\u00e9\"]}", "\"\\\"quoted\\\"\"", "[]" };
	struct u_id	 p;
	unsigned char	 back[CMD_ID_CARRIED + 1];
	char		*up, *big;
	size_t		 i, n;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		up = u_upstream_id(0xa0b0c0d0, 1000 + i, (int)i + 1, ids[i],
		    strlen(ids[i]));
		ck_assert_int_eq(u_parse(up, &p), 0);
		ck_assert_uint_eq(p.epoch, 0xa0b0c0d0);
		ck_assert_uint_eq(p.seq, 1000 + i);
		ck_assert_int_eq(p.client, (int)i + 1);
		n = strlen(p.hex);
		ck_assert_uint_eq(n, 2 * strlen(ids[i]));
		ck_assert_int_eq(util_hex_decode(back, p.hex, n / 2), 0);
		ck_assert_msg(memcmp(back, ids[i], n / 2) == 0, "%s came back "
		    "as %.*s", ids[i], (int)(n / 2), back);
		free(up);
	}
	/* a client gone (owner -1) is client 0 */
	up = u_upstream_id(1, UINT64_MAX, -1, NULL, 0);
	ck_assert_str_eq(up, "\"00000001.18446744073709551615.0.-\"");
	ck_assert_int_eq(u_parse(up, &p), 0);
	ck_assert_uint_eq(p.seq, UINT64_MAX);
	ck_assert_int_eq(p.client, 0);
	free(up);
	/* at the bound, carried; past it, not */
	ck_assert_ptr_nonnull(big = malloc(CMD_ID_CARRIED + 1));
	memset(big, '7', CMD_ID_CARRIED + 1);
	for (n = CMD_ID_CARRIED; n <= CMD_ID_CARRIED + 1; n++) {
		up = u_upstream_id(2, 5, INT_MAX, big, n);
		ck_assert_int_eq(u_parse(up, &p), 0);
		ck_assert_int_eq(p.client, INT_MAX);
		if (n > CMD_ID_CARRIED)
			ck_assert_str_eq(p.hex, "~");
		else {
			ck_assert_uint_eq(strlen(p.hex), 2 * n);
			ck_assert_int_eq(util_hex_decode(back, p.hex, n), 0);
			ck_assert(memcmp(back, big, n) == 0);
		}
		free(up);
	}
	free(big);
}
END_TEST

/* A VM's conf with an upstream and two listeners, the defaults else. */
static void
u_vm(struct vm_conf *vc)
{
	struct listener_conf	*lc;
	char			 err[CONF_ERR_MAX];

	conf_vm_init(vc);
	ck_assert_ptr_nonnull(vc->name = strdup("vm1"));
	ck_assert_msg(conf_set_upstream(vc, "connect:/run/q.sock", err,
	    sizeof(err)) == 0, "%s", err);
	lc = conf_listener_new("/run/a.sock");
	TAILQ_INSERT_TAIL(&vc->listeners, lc, entry);
	lc = conf_listener_new("/run/b.sock");
	TAILQ_INSERT_TAIL(&vc->listeners, lc, entry);
}

/* Set a key of a VM, or of its n-th listener if n >= 0. */
static void
u_set(struct vm_conf *vc, int n, const char *key, const char *value)
{
	struct listener_conf	*lc;
	char			 err[CONF_ERR_MAX];

	if (n < 0) {
		ck_assert_msg(conf_set_vm(vc, key, value, err, sizeof(err)) ==
		    0, "%s = %s: %s", key, value, err);
		return;
	}
	for (lc = TAILQ_FIRST(&vc->listeners); n > 0; n--)
		lc = TAILQ_NEXT(lc, entry);
	ck_assert_msg(conf_set_listener(lc, key, value, err, sizeof(err)) ==
	    0, "%s = %s: %s", key, value, err);
}

/* conf_diff of a and b, which must be the same both ways. */
static int
u_diff(const struct vm_conf *a, const struct vm_conf *b)
{
	int	 d = conf_diff(a, b);

	ck_assert_int_eq(conf_diff(b, a), d);
	return (d);
}

/* Equal confs, made apart or copied, differ in nothing. */
START_TEST(test_diff_equal)
{
	struct vm_conf	 a, b, c;

	u_vm(&a);
	u_vm(&b);
	ck_assert_int_eq(u_diff(&a, &a), 0);
	ck_assert_int_eq(u_diff(&a, &b), 0);
	u_set(&a, -1, "timeout.stop", "3");
	u_set(&a, -1, "timeout.cont", "4");
	u_set(&a, 0, "allow", "query-* cont");
	u_set(&a, 1, "deny", "stop");
	conf_vm_copy(&c, &a);
	ck_assert_int_eq(u_diff(&a, &c), 0);
	/* what only says where it came from is no change */
	free(c.where);
	ck_assert_ptr_nonnull(c.where = strdup("elsewhere:9"));
	c.from_file = !a.from_file;
	ck_assert_int_eq(u_diff(&a, &c), 0);
	conf_vm_clear(&a);
	conf_vm_clear(&b);
	conf_vm_clear(&c);
}
END_TEST

/* One change of a reload, and the one bit it must give. */
struct u_change {
	int		 listener;	/* -1: the VM's key */
	const char	*key;
	const char	*value;
	int		 bit;
};

static const struct u_change u_changes[] = {
	{ -1, "upstream", "connect:/run/q2.sock", CONF_DIFF_UPSTREAM },
	{ -1, "upstream", "listen:/run/q.sock", CONF_DIFF_UPSTREAM },
	{ -1, "handshake_timeout", "7", CONF_DIFF_BOUNDS },
	{ -1, "greeting_timeout", "7", CONF_DIFF_BOUNDS },
	{ -1, "backoff_max", "7", CONF_DIFF_BOUNDS },
	{ -1, "max_upstream_message", "7", CONF_DIFF_BOUNDS },
	{ -1, "max_client_message", "7", CONF_DIFF_BOUNDS },
	{ -1, "max_client_output", "7", CONF_DIFF_BOUNDS },
	{ -1, "max_json_depth", "7", CONF_DIFF_BOUNDS },
	{ -1, "command_timeout", "7", CONF_DIFF_BOUNDS },
	{ -1, "command_timeout", "0", CONF_DIFF_BOUNDS },
	{ -1, "max_inflight", "7", CONF_DIFF_BOUNDS },
	{ -1, "max_client_pipeline", "7", CONF_DIFF_BOUNDS },
	{ -1, "max_queued_commands", "7", CONF_DIFF_BOUNDS },
	{ -1, "priority_relief", "7", CONF_DIFF_BOUNDS },
	{ -1, "priority_relief", "0", CONF_DIFF_BOUNDS },
	{ -1, "manager_quiet", "0", CONF_DIFF_BOUNDS },
	{ -1, "introspection_cache", "0", CONF_DIFF_BOUNDS },
	{ -1, "lock_default_hold", "7", CONF_DIFF_BOUNDS },
	{ -1, "lock_max_hold", "7", CONF_DIFF_BOUNDS },
	{ -1, "lock_max_wait", "7", CONF_DIFF_BOUNDS },
	{ -1, "lock_max_waiters", "7", CONF_DIFF_BOUNDS },
	{ -1, "max_queued_events", "7", CONF_DIFF_BOUNDS },
	{ -1, "max_queued_bytes", "7", CONF_DIFF_BOUNDS },
	{ -1, "timeout.stop", "7", CONF_DIFF_BOUNDS },
	{ -1, "cost.stop", "7", CONF_DIFF_BOUNDS },
	{ 0, "mode", "0640", CONF_DIFF_LISTENERS },
	{ 1, "mode", "0666", CONF_DIFF_LISTENERS },
	{ 0, "owner", "root", CONF_DIFF_LISTENERS },
	{ 1, "group", "root", CONF_DIFF_LISTENERS },
	{ 0, "allowed_uids", "0", CONF_DIFF_LISTENERS },
	{ 1, "read_only", "yes", CONF_DIFF_LISTENERS },
	{ 0, "allow", "query-*", CONF_DIFF_LISTENERS },
	{ 1, "deny", "stop", CONF_DIFF_LISTENERS },
	{ 0, "slow_client", "disconnect", CONF_DIFF_LISTENERS },
	{ 1, "slow_client_timeout", "7", CONF_DIFF_LISTENERS },
	{ 0, "priority", "manager", CONF_DIFF_LISTENERS },
	{ 1, "priority", "background", CONF_DIFF_LISTENERS },
	{ 0, "rate_limit", "10", CONF_DIFF_LISTENERS },
	{ 1, "rate_burst", "4", CONF_DIFF_LISTENERS },
};

/* Each kind of change gives its bit, and no other. */
START_TEST(test_diff_each)
{
	const struct u_change	*ch = &u_changes[_i];
	struct vm_conf		 a, b;
	char			 err[CONF_ERR_MAX];

	u_vm(&a);
	conf_vm_copy(&b, &a);
	if (strcmp(ch->key, "upstream") == 0)
		ck_assert_msg(conf_set_upstream(&b, ch->value, err,
		    sizeof(err)) == 0, "%s", err);
	else
		u_set(&b, ch->listener, ch->key, ch->value);
	ck_assert_msg(u_diff(&a, &b) == ch->bit, "%s = %s: %#x, not %#x",
	    ch->key, ch->value, conf_diff(&a, &b), ch->bit);
	conf_vm_clear(&a);
	conf_vm_clear(&b);
}
END_TEST

/*
 * The listeners as a list: one added, one removed, two swapped, a path
 * changed, the globs of an access list reordered; the per-command
 * timeouts and costs likewise; backoff_min, which no key sets.
 */
START_TEST(test_diff_lists)
{
	struct vm_conf		 a, b;
	struct listener_conf	*lc;
	char			 err[CONF_ERR_MAX];

	u_vm(&a);
	conf_vm_copy(&b, &a);
	lc = conf_listener_new("/run/c.sock");
	TAILQ_INSERT_TAIL(&b.listeners, lc, entry);
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_LISTENERS);
	lc = TAILQ_LAST(&b.listeners, listener_confs);
	TAILQ_REMOVE(&b.listeners, lc, entry);
	conf_listener_free(lc);
	ck_assert_int_eq(u_diff(&a, &b), 0);
	lc = TAILQ_FIRST(&b.listeners);
	TAILQ_REMOVE(&b.listeners, lc, entry);
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_LISTENERS);
	/* the same two, the other way round */
	TAILQ_INSERT_TAIL(&b.listeners, lc, entry);
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_LISTENERS);
	conf_vm_clear(&b);
	conf_vm_copy(&b, &a);
	free(TAILQ_FIRST(&b.listeners)->path);
	ck_assert_ptr_nonnull(TAILQ_FIRST(&b.listeners)->path =
	    strdup("/run/a2.sock"));
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_LISTENERS);
	conf_vm_clear(&b);
	/* the same globs in another order: another list */
	u_set(&a, 0, "allow", "query-* cont");
	conf_vm_copy(&b, &a);
	acl_clear(&TAILQ_FIRST(&b.listeners)->acl);
	u_set(&b, 0, "allow", "cont query-*");
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_LISTENERS);
	conf_vm_clear(&b);
	/* a timeout added, and one with a value of its own */
	u_set(&a, -1, "timeout.stop", "3");
	conf_vm_copy(&b, &a);
	u_set(&b, -1, "timeout.cont", "3");
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_BOUNDS);
	conf_vm_clear(&b);
	conf_vm_copy(&b, &a);
	TAILQ_FIRST(&b.per_command)->value = 4;
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_BOUNDS);
	conf_vm_clear(&b);
	/* a cost of the same command and value: another key */
	conf_vm_copy(&b, &a);
	TAILQ_FIRST(&b.per_command)->key = CMD_KEY_COST;
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_BOUNDS);
	conf_vm_clear(&b);
	conf_vm_copy(&b, &a);
	u_set(&b, -1, "cost.query-version", "7");
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_BOUNDS);
	ck_assert_uint_eq(conf_vm_cost(&b, "query-version"), 7);
	ck_assert_uint_eq(conf_vm_cost(&b, "query-qmp-schema"), 50);
	ck_assert_uint_eq(conf_vm_cost(&b, "query-status"), 1);
	conf_vm_clear(&b);
	conf_vm_copy(&b, &a);
	b.backoff_min = a.backoff_min * 2;
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_BOUNDS);
	/* changes of every kind at once: every bit */
	ck_assert_int_eq(conf_set_upstream(&b, "connect:/run/q3.sock", err,
	    sizeof(err)), 0);
	u_set(&b, 1, "read_only", "yes");
	ck_assert_int_eq(u_diff(&a, &b), CONF_DIFF_BOUNDS |
	    CONF_DIFF_UPSTREAM | CONF_DIFF_LISTENERS);
	conf_vm_clear(&a);
	conf_vm_clear(&b);
}
END_TEST

/* An access list of read_only, allow globs and deny globs. */
static void
u_acl(struct acl *acl, int read_only, const char *allow, const char *deny)
{
	char	*w, *s, *save;
	int	 k;

	memset(acl, 0, sizeof(*acl));
	acl->read_only = read_only;
	for (k = 0; k < 2; k++) {
		if ((k == 0 ? allow : deny) == NULL)
			continue;
		ck_assert_ptr_nonnull(s = strdup(k == 0 ? allow : deny));
		for (w = strtok_r(s, " ", &save); w != NULL;
		    w = strtok_r(NULL, " ", &save))
			acl_add(acl, k, w);
		free(s);
	}
}

/* One case of acl_allows: a list, a name, and whether it may go. */
struct u_allow {
	int		 read_only;
	const char	*allow;
	const char	*deny;
	const char	*name;
	int		 allowed;
};

static const struct u_allow u_allows[] = {
	/* empty lists: everything */
	{ 0, NULL, NULL, "stop", 1 },
	{ 0, NULL, NULL, "", 1 },
	{ 0, NULL, NULL, "query-status", 1 },
	/* read-only: query-* only */
	{ 1, NULL, NULL, "query-status", 1 },
	{ 1, NULL, NULL, "query-", 1 },
	{ 1, NULL, NULL, "stop", 0 },
	{ 1, NULL, NULL, "query", 0 },
	{ 1, NULL, NULL, "xquery-status", 0 },
	{ 1, NULL, NULL, "Query-status", 0 },
	{ 1, NULL, NULL, "", 0 },
	{ 1, NULL, NULL, "x-query-status", 0 },
	/* and the lock's query, a read, not its other commands */
	{ 1, NULL, NULL, "__org.qmpmux_x-query-lock", 1 },
	{ 1, NULL, NULL, "__org.qmpmux_x-query-lockx", 0 },
	{ 1, NULL, NULL, "__org.qmpmux_x-lock-acquire", 0 },
	{ 1, NULL, NULL, "__org.qmpmux_x-lock-release", 0 },
	{ 1, "query-*", NULL, "__org.qmpmux_x-query-lock", 0 },
	/* allow globs: those only */
	{ 0, "query-* cont", NULL, "cont", 1 },
	{ 0, "query-* cont", NULL, "query-block", 1 },
	{ 0, "query-* cont", NULL, "stop", 0 },
	{ 0, "query-* cont", NULL, "continue", 0 },
	{ 0, "query-* cont", NULL, "", 0 },
	{ 0, "[a-c]?", NULL, "b1", 1 },
	{ 0, "[a-c]?", NULL, "d1", 0 },
	{ 0, "[a-c]?", NULL, "b", 0 },
	{ 0, "\\*", NULL, "*", 1 },
	{ 0, "\\*", NULL, "stop", 0 },
	{ 0, "*", NULL, "a/b", 1 },
	/* deny globs: all but those */
	{ 0, NULL, "stop", "stop", 0 },
	{ 0, NULL, "stop", "stopx", 1 },
	{ 0, NULL, "stop", "cont", 1 },
	{ 0, NULL, "*", "", 0 },
	{ 0, NULL, "*", "query-status", 0 },
	{ 0, NULL, "x-*", "x-debug", 0 },
	{ 0, NULL, "x-*", "xdebug", 1 },
	/* deny wins over allow, read-only over both */
	{ 0, "query-*", "query-secret*", "query-status", 1 },
	{ 0, "query-*", "query-secret*", "query-secret-x", 0 },
	{ 0, "stop", "stop", "stop", 0 },
	{ 1, "stop", NULL, "stop", 0 },
	{ 1, "stop", NULL, "query-status", 0 },
	{ 1, NULL, "query-status", "query-status", 0 },
	{ 1, NULL, "query-status", "query-block", 1 },
	/* qmp_capabilities, whatever the list */
	{ 1, "x", "*", "qmp_capabilities", 1 },
	{ 0, NULL, "qmp_capabilities", "qmp_capabilities", 1 },
	{ 0, NULL, "qmp_*", "qmp_capabilitiesx", 0 },
	{ 1, NULL, NULL, "qmp_capabilitie", 0 },
};

/* Each name is allowed or refused as the lists say. */
START_TEST(test_acl_allows)
{
	const struct u_allow	*t = &u_allows[_i];
	struct acl		 acl;

	u_acl(&acl, t->read_only, t->allow, t->deny);
	ck_assert_msg(acl_allows(&acl, t->name) == t->allowed, "read_only %d "
	    "allow \"%s\" deny \"%s\": \"%s\" %s", t->read_only,
	    t->allow != NULL ? t->allow : "", t->deny != NULL ? t->deny : "",
	    t->name, t->allowed ? "refused" : "allowed");
	acl_clear(&acl);
}
END_TEST

/* A name far longer than any command's, against every kind of list. */
START_TEST(test_acl_long_name)
{
	struct acl	 acl;
	char		 name[4096];

	memset(name, 'q', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	u_acl(&acl, 0, "q*", NULL);
	ck_assert_int_eq(acl_allows(&acl, name), 1);
	acl_clear(&acl);
	u_acl(&acl, 0, NULL, "*q");
	ck_assert_int_eq(acl_allows(&acl, name), 0);
	acl_clear(&acl);
	memcpy(name, "query-", 6);
	u_acl(&acl, 1, NULL, NULL);
	ck_assert_int_eq(acl_allows(&acl, name), 1);
	acl_clear(&acl);
}
END_TEST

/* acl_equal: the same flag and globs, in the same order and lists. */
START_TEST(test_acl_equal)
{
	struct acl	 a, b;

	u_acl(&a, 0, NULL, NULL);
	u_acl(&b, 0, NULL, NULL);
	ck_assert_int_eq(acl_equal(&a, &b), 1);
	b.read_only = 1;
	ck_assert_int_eq(acl_equal(&a, &b), 0);
	ck_assert_int_eq(acl_equal(&b, &a), 0);
	acl_clear(&a);
	acl_clear(&b);
	u_acl(&a, 1, "a b", "c");
	u_acl(&b, 1, "a b", "c");
	ck_assert_int_eq(acl_equal(&a, &b), 1);
	acl_clear(&b);
	u_acl(&b, 1, "b a", "c");
	ck_assert_int_eq(acl_equal(&a, &b), 0);
	acl_clear(&b);
	u_acl(&b, 1, "a b c", NULL);
	ck_assert_int_eq(acl_equal(&a, &b), 0);
	acl_clear(&b);
	u_acl(&b, 1, "a", "b c");
	ck_assert_int_eq(acl_equal(&a, &b), 0);
	acl_clear(&b);
	u_acl(&b, 1, "a b", "c d");
	ck_assert_int_eq(acl_equal(&a, &b), 0);
	ck_assert_int_eq(acl_equal(&b, &a), 0);
	acl_clear(&b);
	u_acl(&b, 1, "a b", "C");
	ck_assert_int_eq(acl_equal(&a, &b), 0);
	acl_clear(&b);
	u_acl(&b, 1, "a b", NULL);
	ck_assert_int_eq(acl_equal(&a, &b), 0);
	acl_clear(&a);
	acl_clear(&b);
}
END_TEST

/*
 * acl_copy: an equal list of its own, that allows the same; the
 * original cleared, the copy still holds; an empty one copies empty.
 */
START_TEST(test_acl_copy)
{
	struct acl	 a, b;

	u_acl(&a, 1, "query-* x", "query-secret");
	acl_copy(&b, &a);
	ck_assert_int_eq(acl_equal(&a, &b), 1);
	ck_assert_ptr_ne(a.allow, b.allow);
	ck_assert_ptr_ne(a.allow[0], b.allow[0]);
	ck_assert_ptr_ne(a.deny[0], b.deny[0]);
	acl_clear(&a);
	ck_assert_int_eq(a.nallow + a.ndeny + (size_t)a.read_only, 0);
	ck_assert_int_eq(acl_allows(&a, "stop"), 1);
	ck_assert_int_eq(b.read_only, 1);
	ck_assert_uint_eq(b.nallow, 2);
	ck_assert_str_eq(b.allow[0], "query-*");
	ck_assert_str_eq(b.allow[1], "x");
	ck_assert_uint_eq(b.ndeny, 1);
	ck_assert_str_eq(b.deny[0], "query-secret");
	ck_assert_int_eq(acl_allows(&b, "query-status"), 1);
	ck_assert_int_eq(acl_allows(&b, "query-secret"), 0);
	ck_assert_int_eq(acl_allows(&b, "stop"), 0);
	acl_copy(&a, &b);
	ck_assert_int_eq(acl_equal(&a, &b), 1);
	acl_clear(&a);
	acl_clear(&b);
	u_acl(&a, 0, NULL, NULL);
	memset(&b, 0xff, sizeof(b));
	acl_copy(&b, &a);
	ck_assert_int_eq(acl_equal(&a, &b), 1);
	ck_assert_int_eq(b.read_only, 0);
	ck_assert_uint_eq(b.nallow + b.ndeny, 0);
	acl_clear(&b);
}
END_TEST

/* Whether two parts of names are the same. */
static int
u_same_part(const struct fdstore_part *a, const struct fdstore_part *b)
{
	return (a->kind == b->kind && strcmp(a->vm, b->vm) == 0 &&
	    a->gen == b->gen && a->id == b->id && a->st == b->st &&
	    a->hash == b->hash);
}

/* One name of each kind, as written and as read back. */
static const struct {
	struct fdstore_part	 part;
	const char		*name;
} u_names[] = {
	{ { 'k', "", 0, 0, 0, 0xdeadbeef }, "k.deadbeef" },
	{ { 'k', "", 0, 0, 0, 0 }, "k.00000000" },
	{ { 'l', "vm1", 1, 0, 0, 0x0000abcd }, "l.766d31.1.0000abcd" },
	{ { 'm', "vm1", 2, 0, 0, 0 }, "m.766d31.2" },
	{ { 'u', "v", 4294967295U, 0, 0, 0 }, "u.76.4294967295" },
	{ { 'v', "a.b", 10, 0, 0, 0 }, "v.612e62.10" },
	{ { 'c', "vm1", 1, 1, 'w', 0xffffffff }, "c.766d31.1.1.w.ffffffff" },
	{ { 'c', "vm1", 1, 2, 'c', 1 }, "c.766d31.1.2.c.00000001" },
	{ { 'c', "vm1", 1, 3, 'r', 2 }, "c.766d31.1.3.r.00000002" },
	{ { 'c', "vm1", 3, 2147483647, 'o', 3 },
	    "c.766d31.3.2147483647.o.00000003" },
};

/* Each kind of name: written as expected, read back into its parts. */
START_TEST(test_fdname_round_trip)
{
	struct fdstore_part	 p;
	char			 buf[FDSTORE_NAME_MAX + 1];

	fdstore_name_parts(buf, sizeof(buf), &u_names[_i].part);
	ck_assert_str_eq(buf, u_names[_i].name);
	ck_assert_int_eq(fdstore_valid_name(buf), 1);
	ck_assert_msg(fdstore_parse(buf, &p) == 0, "refused: %s", buf);
	ck_assert_msg(u_same_part(&p, &u_names[_i].part), "%s read back as "
	    "%c %s %u %d %c %08x", buf, p.kind, p.vm, p.gen, p.id,
	    p.st ? p.st : '-', p.hash);
}
END_TEST

/*
 * The longest name of each kind (a VM's name of 64 bytes, the widest
 * numbers) is within systemd's 255 and reads back; a name of 65 bytes
 * is no VM's.
 */
START_TEST(test_fdname_longest)
{
	static const char	 kinds[] = "lmucv";
	struct fdstore_part	 w, p;
	char			 buf[FDSTORE_NAME_MAX + 1];
	size_t			 i;

	for (i = 0; kinds[i] != '\0'; i++) {
		memset(&w, 0, sizeof(w));
		w.kind = kinds[i];
		memset(w.vm, '~', 64);
		w.gen = UINT_MAX;
		if (w.kind == 'c') {
			w.id = INT_MAX;
			w.st = 'o';
		}
		if (w.kind == 'c' || w.kind == 'l')
			w.hash = UINT_MAX;
		fdstore_name_parts(buf, sizeof(buf), &w);
		ck_assert_uint_le(strlen(buf), FDSTORE_NAME_MAX);
		ck_assert_int_eq(fdstore_valid_name(buf), 1);
		ck_assert_msg(fdstore_parse(buf, &p) == 0, "refused: %s", buf);
		ck_assert(u_same_part(&p, &w));
		w.vm[64] = '~';
		fdstore_name_parts(buf, sizeof(buf), &w);
		ck_assert_msg(fdstore_parse(buf, &p) == -1, "taken: %s", buf);
	}
}
END_TEST

/*
 * A buffer shorter than the kind: the name is cut short, NUL-terminated
 * inside the buffer, whatever follows (ASan sees a write past it).
 */
START_TEST(test_fdname_short_buffer)
{
	char	*buf;
	size_t	 len;

	for (len = 1; len <= 8; len++) {
		ck_assert_ptr_nonnull(buf = malloc(len));
		fdstore_name(buf, len, "cccc", "vm", 1, "%d", 7);
		ck_assert_uint_eq(strlen(buf), len - 1);
		fdstore_name(buf, len, "k", NULL, 0, "%08x", 1U);
		ck_assert_uint_le(strlen(buf), len - 1);
		free(buf);
	}
}
END_TEST

/* systemd's FDNAME: 1 to 255 printable ASCII bytes but ':'. */
START_TEST(test_fdname_valid)
{
	char			 buf[FDSTORE_NAME_MAX + 2];
	int			 c;

	memset(buf, 'a', sizeof(buf));
	buf[FDSTORE_NAME_MAX] = '\0';
	ck_assert_int_eq(fdstore_valid_name(buf), 1);
	buf[FDSTORE_NAME_MAX] = 'a';
	buf[FDSTORE_NAME_MAX + 1] = '\0';
	ck_assert_int_eq(fdstore_valid_name(buf), 0);
	ck_assert_int_eq(fdstore_valid_name(""), 0);
	ck_assert_int_eq(fdstore_valid_name(" "), 1);
	ck_assert_int_eq(fdstore_valid_name("~"), 1);
	for (c = 1; c < 256; c++) {
		buf[0] = 'a';
		buf[1] = (char)c;
		buf[2] = '\0';
		ck_assert_msg(fdstore_valid_name(buf) == (c >= ' ' && c <= '~' &&
		    c != ':'), "byte %#x", c);
	}
}
END_TEST

/* Names that are none of ours: each refused. */
static const char *const u_bad_names[] = {
	"", "k", "k.", "k.1234567", "k.123456789", "k.DEADBEEF", "k.deadbeeg",
	"k..deadbeef", "kk.deadbeef", "K.deadbeef", "x.766d31.1", "l.766d31.1",
	"l.766d31.1.", "l.766d31.1.abcd", "l.766d31.1.0000abcd.",
	"m.766d31.1.5", "m.766d31.1.", "m.766d3.1", "m.766D31.1", "m..1",
	"m.766d31", "m.766d31.", "m.766d31.0", "m.766d31.01",
	"m.766d31.4294967296", "m.766d31.-1", "m.766d31.+1", "m.766d31. 1",
	"m.766d2031.1", "m.766d2f31.1", "m.766d0031.1", "m.766d2231.1",
	"m.766d5c31.1", "m.766d7f31.1", "m.766d31.1\n", "m.766d31:1",
	"u.766d31.1.1", "v.766d31.1.x", "c.766d31.1", "c.766d31.1.1",
	"c.766d31.1.1.r", "c.766d31.1.1.r.", "c.766d31.1.0.r.deadbeef",
	"c.766d31.1.01.r.deadbeef", "c.766d31.1.2147483648.r.deadbeef",
	"c.766d31.1.-1.r.deadbeef", "c.766d31.1.1.x.deadbeef",
	"c.766d31.1.1.R.deadbeef", "c.766d31.1.1.rr.deadbeef",
	"c.766d31.1.1..deadbeef", "c.766d31.1.1.r.deadbee",
	"c.766d31.1.1.r.deadbeef0", "c.766d31.1.1.r.deadbeef.",
	/* a VM's name of 65 bytes */
	"m.7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e"
	    "7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e"
	    "7e.1",
};

START_TEST(test_fdname_bad)
{
	struct fdstore_part	 p;

	ck_assert_msg(fdstore_parse(u_bad_names[_i], &p) == -1, "taken: %s",
	    u_bad_names[_i]);
}
END_TEST

static void
u_setup(void)
{
	log_init(1, 0);
}

#define U_N(a)	((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
unit_suite(void)
{
	Suite	*s = suite_create("unit");
	TCase	*tc;

	tc = t_tcase_with(s, "ids", 30, u_setup, NULL);
	tcase_add_test(tc, test_id_parse);
	tcase_add_loop_test(tc, test_id_bad, 0, U_N(u_bad_ids));
	tcase_add_test(tc, test_id_carried);
	tcase_add_test(tc, test_id_round_trip);
	tc = t_tcase_with(s, "conf_diff", 30, u_setup, NULL);
	tcase_add_test(tc, test_diff_equal);
	tcase_add_loop_test(tc, test_diff_each, 0, U_N(u_changes));
	tcase_add_test(tc, test_diff_lists);
	tc = t_tcase_with(s, "acl", 30, u_setup, NULL);
	tcase_add_loop_test(tc, test_acl_allows, 0, U_N(u_allows));
	tcase_add_test(tc, test_acl_long_name);
	tcase_add_test(tc, test_acl_equal);
	tcase_add_test(tc, test_acl_copy);
	tc = t_tcase_with(s, "fdstore names", 30, u_setup, NULL);
	tcase_add_loop_test(tc, test_fdname_round_trip, 0, U_N(u_names));
	tcase_add_test(tc, test_fdname_longest);
	tcase_add_test(tc, test_fdname_short_buffer);
	tcase_add_test(tc, test_fdname_valid);
	tcase_add_loop_test(tc, test_fdname_bad, 0, U_N(u_bad_names));
	return (s);
}

int
main(void)
{
	return (t_run(unit_suite()));
}
