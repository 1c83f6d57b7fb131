/* SPDX-License-Identifier: GPL-2.0-only */
/* Map definitions shared by every bulwark program; pinned by name so all attach points share them. */
#ifndef BW_LIB_MAPS_H
#define BW_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "bulwark_abi.h"

#define BW_MAX_PROTECT 4096
#define BW_MAX_PEERS 262144
#define BW_MAX_ALLOW 256
#define BW_EVENTS_BYTES (1 << 20)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bw_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BW_MAX_PROTECT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bw_lpm_v4);
	__type(value, struct bw_prefix);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_protect_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BW_MAX_PROTECT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bw_lpm_v6);
	__type(value, struct bw_prefix);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_protect_v6 SEC(".maps");

/* Hashes probed per prefix length in use (bulwark_abi.h): the cost does not grow with the size. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BW_MAX_PEERS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bw_lpm_v4);
	__type(value, struct bw_peer);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_peer_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BW_MAX_PEERS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bw_lpm_v6);
	__type(value, struct bw_peer);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_peer_v6 SEC(".maps");

/* mmap-able: userspace sets a length's bit with an atomic OR (no read-modify-write race). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct bw_peer_lens);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_peer_lens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BW_MAX_ALLOW);
	__type(key, struct bw_allow_key);
	__type(value, struct bw_allow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BW_STAT_ENTRIES);
	__type(key, __u32); /* BW_STAT_KEY(reason, dir) */
	__type(value, struct bw_stat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bw_ratelimit);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_ratelimit SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, BW_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_events SEC(".maps");

/* Per CPU, direct-mapped (bulwark_abi.h): a hash map's elements are recycled under readers. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BW_FLOW_SLOTS);
	__type(key, __u32);
	__type(value, struct bw_flow_v4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_flow_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BW_FLOW_SLOTS);
	__type(key, __u32);
	__type(value, struct bw_flow_v6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_flow_v6 SEC(".maps");

/* mmap-able so that userspace can increment it atomically without a read-modify-write race. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct bw_flow_gen);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bw_flow_gen SEC(".maps");

#endif
