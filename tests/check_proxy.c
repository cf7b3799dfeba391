/* Integration tests: qmpmuxd in front of the real QEMU. */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "testlib.h"

static char	*qsock, *psock;
static pid_t	 qemu_pid, proxy_pid;

/* Each test: a fresh QEMU and a qmpmuxd in front of it. */
static void
setup(void)
{
	qsock = t_path("qemu.sock");
	psock = t_path("proxy.sock");
	qemu_pid = t_qemu(qsock);
	proxy_pid = t_qmpmuxd(qsock, psock, NULL);
}

static void
teardown(void)
{
	t_stop(proxy_pid, SIGTERM);
	t_stop(qemu_pid, SIGKILL);
	free(qsock);
	free(psock);
}

/* Two clients: each gets its own id back; STOP and RESUME reach both. */
START_TEST(test_two_clients_share)
{
	struct t_client	*a = t_client_ready(psock);
	struct t_client	*b = t_client_ready(psock);
	char		*m;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	m = t_cmd(a, "{\"execute\":\"stop\",\"id\":\"a-1\"}");
	ck_assert_str_eq(m, "{\"return\": {}, \"id\": \"a-1\"}");
	free(m);
	m = t_recv(b, T_WAIT_MS);
	ck_assert_ptr_nonnull(strstr(m, "\"event\": \"STOP\""));
	free(m);
	m = t_cmd(b, "{\"execute\":\"cont\",\"id\":[1, {\"b\":null}]}");
	ck_assert_str_eq(m, "{\"return\": {}, \"id\": [1, {\"b\":null}]}");
	free(m);
	/* a's STOP came before its reply and t_cmd passed it over */
	m = t_recv(a, T_WAIT_MS);
	ck_assert_ptr_nonnull(strstr(m, "\"event\": \"RESUME\""));
	free(m);
	t_client_free(a);
	t_client_free(b);
}
END_TEST

static Suite *
proxy_suite(void)
{
	Suite	*s = suite_create("proxy");
	TCase	*tc = tcase_create("share");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_two_clients_share);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(proxy_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
