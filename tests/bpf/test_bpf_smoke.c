// SPDX-License-Identifier: GPL-2.0-only
/* Proves the BPF toolchain end to end on the host kernel: skeleton load + BPF_PROG_TEST_RUN. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <string.h>
#include <linux/pkt_cls.h>
#include <cmocka.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bw_smoke.skel.h"

static void test_run_counts(void **state)
{
	struct bw_smoke *skel = bw_smoke__open_and_load();
	unsigned char pkt[64] = { 0 };
	struct { __u64 packets, bytes; } c;
	__u32 key = 0;
	(void)state;

	assert_non_null(skel);
	pkt[12] = 0x08; /* ethertype IPv4, otherwise empty */
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = 3);
	assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.bw_smoke), &opts), 0);
	assert_int_equal(opts.retval, TC_ACT_OK);
	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(skel->maps.bw_smoke_stats), &key, &c), 0);
	assert_int_equal(c.packets, 3);
	assert_int_equal(c.bytes, 3 * sizeof(pkt));
	bw_smoke__destroy(skel);
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_run_counts) };
	return cmocka_run_group_tests_name("bpf_smoke", tests, NULL, NULL);
}
