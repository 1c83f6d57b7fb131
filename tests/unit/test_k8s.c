// SPDX-License-Identifier: GPL-2.0-only
/* kubeconfig parsing (userspace/k8s/kubeconfig.c): what is taken, what is refused and why. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "k8s/k8s.h"

static char dir[] = "/tmp/bw-test-k8s-XXXXXX";

static const char *write_kc(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	return path;
}

#define HEAD "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n" \
	     "contexts:\n- name: other\n  context: {cluster: nope, user: nobody}\n" \
	     "- name: ctx\n  context:\n    cluster: c1\n    user: u1\n"

static void test_files_relative(void **state)
{
	struct bw_k8s_auth a;
	char err[BW_ERR_LEN], want[300];
	(void)state;

	const char *p = write_kc("config", HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://10.0.0.1:6443/\n"
				 "    certificate-authority: ca.pem\nusers:\n- name: u1\n  user:\n    tokenFile: /abs/token\n");
	assert_int_equal(bw_k8s_kubeconfig_load(p, &a, err, sizeof(err)), 0);
	assert_string_equal(a.server, "https://10.0.0.1:6443");
	snprintf(want, sizeof(want), "%s/ca.pem", dir);
	assert_string_equal(a.ca_file, want);
	assert_string_equal(a.token_file, "/abs/token");
	assert_null(a.token.data);
	assert_null(a.ca.data);
	bw_k8s_auth_free(&a);
}

static void test_inline(void **state)
{
	struct bw_k8s_auth a;
	char err[BW_ERR_LEN];
	(void)state;

	/* "-----BEGIN X-----\n" and "key!" in base64 */
	const char *p = write_kc("inline", HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://api.example:443\n"
				 "    certificate-authority-data: LS0tLS1CRUdJTiBYLS0tLS0K\n"
				 "users:\n- name: u1\n  user:\n    token: abc.def\n"
				 "    client-certificate-data: LS0tLS1CRUdJTiBYLS0tLS0K\n    client-key-data: a2V5IQ==\n");
	assert_int_equal(bw_k8s_kubeconfig_load(p, &a, err, sizeof(err)), 0);
	assert_int_equal(a.ca.len, 18);
	assert_memory_equal(a.ca.data, "-----BEGIN X-----\n", 18);
	assert_string_equal((const char *)a.token.data, "abc.def");
	assert_int_equal(a.key.len, 4);
	assert_memory_equal(a.key.data, "key!", 4);
	assert_int_equal(a.cert.len, 18);
	bw_k8s_auth_free(&a);
}

static void refused(const char *text, const char *why)
{
	struct bw_k8s_auth a;
	char err[BW_ERR_LEN] = "";
	const char *p = write_kc("bad", text);

	assert_int_equal(bw_k8s_kubeconfig_load(p, &a, err, sizeof(err)), -EINVAL);
	if (!strstr(err, why) || !strstr(err, p))
		fail_msg("error '%s' should name the file and say '%s'", err, why);
	assert_null(a.token.data);
}

#define CL "clusters:\n- name: c1\n  cluster:\n    server: https://h:1\n"
static void test_refusals(void **state)
{
	(void)state;
	refused("- a\n- b\n", "no mapping");
	refused("a: [unclosed\n", "not YAML");
	refused("kind: Pod\n", "not Config");
	refused("kind: Config\n", "no current-context");
	refused("current-context: x\ncontexts: []\n", "not in contexts");
	refused(HEAD "clusters: []\n", "its cluster is not in clusters");
	refused(HEAD CL, "user u1 is not in users");
	refused(HEAD "clusters:\n- name: c1\n  cluster:\n    server: http://h:1\nusers:\n- name: u1\n  user: {}\n",
		"https://");
	refused(HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://h:1\n    insecure-skip-tls-verify: true\n"
		     "users:\n- name: u1\n  user: {}\n",
		"insecure-skip-tls-verify is refused");
	refused(HEAD CL "    certificate-authority-data: '%%%'\nusers:\n- name: u1\n  user: {}\n", "not base64");
	refused(HEAD CL "users:\n- name: u1\n  user:\n    exec: {command: aws}\n", "not supported");
	refused(HEAD CL "users:\n- name: u1\n  user:\n    username: x\n    password: y\n", "basic authentication");
	refused(HEAD CL "users:\n- name: u1\n  user:\n    client-certificate: c.pem\n", "needs its key");
	refused(HEAD CL "users:\n- name: u1\n  user:\n    client-key-data: a2V5IQ==\n", "needs its key");
}

static void test_missing_file(void **state)
{
	struct bw_k8s_auth a;
	char err[BW_ERR_LEN];
	(void)state;

	assert_int_equal(bw_k8s_kubeconfig_load("/nonexistent/kubeconfig", &a, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/kubeconfig"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_files_relative),
		cmocka_unit_test(test_inline),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_missing_file),
	};
	int r;

	if (!mkdtemp(dir))
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		r = r ? r : 1;
	return r;
}
