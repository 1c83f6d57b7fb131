/* SPDX-License-Identifier: GPL-2.0-only */
/* Helpers shared by the evidence and verification halves of the tpm component. */
#ifndef BULWARK_TPM_INTERNAL_H
#define BULWARK_TPM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

/* The SHA-256 bank, PCRs 0-23: the only selection we produce and accept. */
void bw_tpm_pcr_selection(TPML_PCR_SELECTION *sel);

/* The 32-byte qualifying data for report data: truncated or zero-padded. */
void bw_tpm_nonce(const uint8_t *report_data, size_t len, uint8_t out[32]);

/* SHA-256 over the 24 PCR values in order: what a quote's pcrDigest must be. */
int bw_tpm_pcr_digest(const uint8_t pcrs[][32], uint8_t out[32]);

/* Standard base64 with padding; returns a malloc'ed NUL-terminated string or NULL. */
char *bw_tpm_b64(const uint8_t *in, size_t len);
/*
 * Strict base64 decode (standard alphabet, padding required, no whitespace) of at most max
 * decoded bytes into out. Returns the decoded length or -EINVAL (bad text) / -E2BIG (too long).
 */
int bw_tpm_unb64(const char *in, uint8_t *out, size_t max);

/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void bw_tpm_hex(const uint8_t *in, size_t n, char *out);
/* Exactly 2n hex digits (either case) into n bytes; -EINVAL otherwise. */
int bw_tpm_unhex(const char *in, uint8_t *out, size_t n);

#endif
