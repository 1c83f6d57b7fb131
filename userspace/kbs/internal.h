/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kbs internals: what only this component (client, JOSE, attesters) and its tests use. Other
 * components use kbs/kbs.h only.
 */
#ifndef BULWARK_KBS_INTERNAL_H
#define BULWARK_KBS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include "common/common.h"
#include "kbs/kbs.h"

/* RFC 8785 JSON canonicalization of a json-c value (strings, integers, booleans, null,
 * objects, arrays; doubles are refused with -ENOTSUP). *out is malloc'ed, NUL-terminated. */
int bw_jcs(struct json_object *o, char **out, size_t *len);

/* ---- JWK / JWE, the client's half ---- */
/* Public JWK with "alg": ECDH-ES+A256KW (EC P-256) or RSA-OAEP-256 (RSA). */
int bw_jwk_public(EVP_PKEY *key, struct json_object **out);
/* Encrypt pt to the public JWK; *out is the JSON text (malloc'ed). */
int bw_jwe_encrypt(struct json_object *jwk, const uint8_t *pt, size_t len, char **out);
/* Decrypt a flattened JWE with the private key; the plaintext lands in locked memory. */
int bw_jwe_decrypt(EVP_PKEY *key, const char *jwe, size_t len, struct bw_secret *out,
		   char *err, size_t errlen);

/* The same into the caller's (locked) buffer of cap bytes; -EMSGSIZE when it does not fit. */
int bw_jwe_decrypt_into(EVP_PKEY *key, const char *jwe, size_t len, uint8_t *out, size_t cap,
			size_t *outlen, char *err, size_t errlen);

/* ---- client, for callers that fetch on connections of their own (the open-loop benchmark) ---- */
/* Decrypt a resource reply (flattened JWE) sent to the client's tee key, as
 * bw_kbs_get_resource_into does; -ENOKEY before a handshake. */
int bw_kbs_client_decrypt_into(struct bw_kbs_client *c, const char *jwe, size_t len, uint8_t *out, size_t cap,
				size_t *outlen, char *err, size_t errlen);
/* Close the client's own connection to the service; the token and tee key stay. */
int bw_kbs_client_disconnect(struct bw_kbs_client *c);

/* ---- attesters, exposed for unit tests ---- */
/* tsm request building: the 64-byte inblob (report data zero-padded). */
int bw_tsm_inblob(const uint8_t *report_data, size_t len, uint8_t out[64]);
/* The KBS tee for a configfs-tsm provider name: "tdx_guest" -> "tdx", "sev_guest" -> "snp". */
const char *bw_tsm_tee(const char *provider);
/* The sample attester's evidence. */
int bw_sample_evidence(const uint8_t *report_data, size_t len, struct json_object **out);

#endif
