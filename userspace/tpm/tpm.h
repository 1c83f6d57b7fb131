/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bulwark TPM attestation: quote evidence in the shape of the Confidential Containers TPM
 * attester, and its verification.
 *
 * Evidence (JSON):
 *   {"tpm_quote": {"signature": b64(marshalled TPMT_SIGNATURE),
 *                  "message":   b64(marshalled TPMS_ATTEST),
 *                  "pcrs":      [24 lowercase hex SHA-256 PCR values, PCR 0 first]},
 *    "ak_public": b64(DER SubjectPublicKeyInfo of the attestation key)}
 *
 * The quote covers SHA-256 PCRs 0-23; its qualifying data is the report data truncated or
 * zero-padded to 32 bytes. bw_tpm_evidence talks to a TPM (tpm2-tss ESAPI); bw_tpm_verify needs
 * no TPM (OpenSSL 3 and libtss2-mu only). See userspace/tpm/README.md.
 */
#ifndef BULWARK_TPM_H
#define BULWARK_TPM_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#define BW_TPM_PCRS 24
#define BW_TPM_NONCE_LEN 32           /* qualifying data: report data truncated/zero-padded */
#define BW_TPM_AK_HANDLE 0x81010002u  /* CoCo's default AK handle */

struct bw_tpm_opts {
	const char *tcti;   /* e.g. "swtpm:host=127.0.0.1,port=2321"; NULL = default device */
	uint32_t ak_handle; /* 0 = 0x81010002 */
};

/* tpm2-tss (esys, mu, rc, tctildr) is loaded on first use (dlopen); 0, or -ELIBACC and why. */
int bw_tpm_load(char *err, size_t len);
/*
 * Quote PCRs 0-23 (SHA-256) with the AK at o->ak_handle, qualifying data = report_data
 * truncated/zero-padded to 32 bytes. Signs with RSASSA-SHA256 (RSA AK) or ECDSA-SHA256 (ECC AK).
 * On success *evidence is a new JSON object (caller puts it). Negative errno: -EINVAL bad
 * arguments, -ENOENT no AK at the handle, -ENOTSUP unsupported AK type, -ENODEV no TPM device
 * (bw_tpm_present), -EIO TPM/TCTI failure (tpm2-tss's own logging is off unless TSS2_LOG is set),
 * -ELIBACC tpm2-tss missing, -ENOMEM; err (may be NULL) says what failed, nothing is logged.
 */
/*
 * Is there a local TPM to talk to? tcti NULL: /dev/tpmrm0 or /dev/tpm0 must exist; "device:PATH"
 * (or "device" alone: /dev/tpm0): PATH must exist. Other TCTIs (swtpm, mssim...) are reached over
 * a socket: not checked here. 0, or -ENODEV (a local failure, never worth a retry).
 */
int bw_tpm_present(const char *tcti);
int bw_tpm_evidence(const struct bw_tpm_opts *o, const uint8_t *report_data, size_t len,
		    struct json_object **evidence, char *err, size_t errlen);

struct bw_tpm_claims {
	uint8_t pcrs[BW_TPM_PCRS][32]; /* SHA-256 PCR values, as quoted */
	char ak_id[65];                /* lowercase hex SHA-256 of the ak_public DER */
};

/*
 * Verify evidence against the expected report data: strict bounded parse, TPMS_ATTEST magic and
 * type (quote), PCR selection = SHA-256 0-23, signature by ak_public (RSASSA or ECDSA, SHA-256),
 * extraData == report data truncated/zero-padded to 32 bytes, pcrDigest == SHA-256 of the PCR
 * values. Whether the AK and PCR values are *trusted* is the caller's policy: compare
 * claims->ak_id and claims->pcrs with reference values.
 * Returns 0 and fills *claims; -EINVAL malformed evidence, -EBADMSG signature, nonce or PCR
 * digest mismatch; err (may be NULL) gets a message naming what failed. claims is zeroed on
 * failure.
 */
int bw_tpm_verify(struct json_object *evidence, const uint8_t *report_data, size_t len,
		  struct bw_tpm_claims *claims, char *err, size_t errlen);

#endif
