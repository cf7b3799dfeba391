/*
 * One reading of every byte, against the real QEMU.  Before the framer
 * read bytes as QEMU's lexer does, a \v or \f (whitespace to yajl, stray
 * bytes to QEMU) let any client of any listener wedge the monitor, take
 * another client's reply, or run a command its access list forbids.
 * Each test is one of those attacks, and asserts what QEMU itself would
 * have done had the client been its only one.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "testlib.h"

#define STRAY_VT	"{\"error\": {\"class\": \"GenericError\", \"desc\": " \
			"\"JSON parse error, stray '\\u000B'\"}}"
#define RUNNING		"{\"status\": \"running\", \"singlestep\": false, " \
			"\"running\": true}"

/*
 * A \v before a command without an id: QEMU's error for the stray byte,
 * then the command's reply, and the monitor goes on for everyone.  It
 * used to send QEMU an object that never closed, holding the only
 * in-flight slot for good.
 */
START_TEST(test_stray_no_wedge)
{
	struct t_client	*a, *b;

	t_start_qemu(NULL);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_send(a, "\v{\"execute\":\"query-status\"}\n");
	t_recv_eq(a, STRAY_VT);
	t_recv_eq(a, "{\"return\": " RUNNING "}");
	t_send(b, "{\"execute\":\"query-status\",\"id\":\"b\"}\n");
	t_recv_eq(b, "{\"return\": " RUNNING ", \"id\": \"b\"}");
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * Four \v before a command, with one command in flight at a time: QEMU
 * answers each stray byte with an error that has no id.  Those used to
 * be matched to the oldest command in flight, so b's command got a's
 * error and a's reply was lost.  Each must get its own.
 */
START_TEST(test_stray_no_theft)
{
	struct t_client	*a, *b;
	int		 i;

	t_start_qemu(NULL);
	ck_assert_ptr_nonnull(a = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(b = t_client_ready(t_psock));
	t_send(a, "\v\v\v\v{\"execute\":\"query-name\",\"id\":\"a\"}\n");
	t_send(b, "{\"execute\":\"query-status\",\"id\":\"b\"}\n");
	for (i = 0; i < 4; i++)
		t_recv_eq(a, STRAY_VT);
	t_recv_eq(a, "{\"return\": {}, \"id\": \"a\"}");
	t_recv_eq(b, "{\"return\": " RUNNING ", \"id\": \"b\"}");
	ck_assert_int_eq(t_quiet(a, 200), T_SILENT);
	t_client_free(a);
	t_client_free(b);
}
END_TEST

/*
 * A read-only listener must not run stop.  Two \v-prefixed queries used
 * to leave two objects open in QEMU's parser; a query whose arguments
 * nest 1021 brackets deep (1024 with its objects, within the proxy's
 * bound) then passed QEMU's nesting limit a token before a stop object,
 * which QEMU read afresh and ran.
 */
START_TEST(test_stray_no_acl_bypass)
{
	char		*ro = t_path("ro.sock"), *deep, *m;
	const char	*extra[] = { "--max-inflight", "8", "--read-only",
			    "--listen", ro, "--full-access", NULL };
	struct t_client	*r, *w;
	size_t		 i, n = 0, len = 64 + 2 * 1021 + 32;

	t_start_qemu(extra);
	ck_assert_ptr_nonnull(w = t_client_ready(t_psock));
	ck_assert_ptr_nonnull(r = t_client_ready(ro));
	ck_assert_ptr_nonnull(deep = malloc(len));
	n += (size_t)snprintf(deep, len,
	    "{\"execute\":\"query-name\",\"arguments\":{\"x\":");
	for (i = 0; i < 1021; i++)
		deep[n++] = '[';
	n += (size_t)snprintf(deep + n, len - n, "{\"execute\":\"stop\"}");
	for (i = 0; i < 1021; i++)
		deep[n++] = ']';
	n += (size_t)snprintf(deep + n, len - n, "}}\n");
	ck_assert_uint_lt(n, len);

	t_send(r, "\v{\"execute\":\"query-name\"}\n"
	    "\v{\"execute\":\"query-name\"}\n");
	t_send_raw(r, deep, n);
	t_send(r, "{\"execute\":\"query-name\",\"id\":\"last\"}\n");
	/* r's last reply: everything before it has been through QEMU */
	m = t_recv_reply(r, T_WAIT_MS);
	while (m != NULL && strstr(m, "\"last\"") == NULL) {
		free(m);
		m = t_recv_reply(r, T_WAIT_MS);
	}
	ck_assert_ptr_nonnull(m);
	free(m);
	/* no STOP event came first, and QEMU still runs */
	t_send(w, "{\"execute\":\"query-status\",\"id\":\"w\"}\n");
	t_recv_eq(w, "{\"return\": " RUNNING ", \"id\": \"w\"}");
	t_client_free(r);
	t_client_free(w);
	free(deep);
	free(ro);
}
END_TEST

static Suite *
framing_suite(void)
{
	Suite	*s = suite_create("framing");
	TCase	*tc = t_tcase(s, "stray bytes", 60);

	tcase_add_test(tc, test_stray_no_wedge);
	tcase_add_test(tc, test_stray_no_theft);
	tcase_add_test(tc, test_stray_no_acl_bypass);
	return (s);
}

int
main(void)
{
	return (t_run(framing_suite()));
}
