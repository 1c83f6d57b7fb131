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

#endif
