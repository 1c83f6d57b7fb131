// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer: bw_tpm_verify. Two input forms:
 *  - JSON text (anything not starting with 0x01): the envelope parser and everything after it;
 *  - 0x01, u16 BE message length, u16 BE signature length, 24 x 32 PCR bytes, message,
 *    signature, ak_public DER (the rest): wrapped into a well-formed envelope here, so mutations
 *    land on the TPM structures and the key instead of on base64 text.
 * The seed corpus (tests/fuzz/corpus/fuzz_tpm_evidence) holds real swtpm quotes (RSA and ECC
 * AKs) in both forms, made for the report data below, so mutations reach the unmarshalling, the
 * signature and the PCR digest checks. Regenerate: X.json with
 *   tpmtool evidence --tcti T --ak-handle H --report-data 000102..1f (32 bytes)
 * and X.bin from it with
 *   python3 -c 'import base64,json,struct,sys; e=json.load(open(sys.argv[1])); q=e["tpm_quote"];
 *     m=base64.b64decode(q["message"]); s=base64.b64decode(q["signature"]);
 *     sys.stdout.buffer.write(b"\x01"+struct.pack(">HH",len(m),len(s))+b"".join(bytes.fromhex(p)
 *     for p in q["pcrs"])+m+s+base64.b64decode(e["ak_public"]))' X.json > X.bin
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/common.h"
#include "tpm/internal.h"
#include "tpm/tpm.h"

static const uint8_t rd[32] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
				16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31 };

static void add_b64(struct json_object *o, const char *key, const uint8_t *p, size_t n)
{
	char *s = NULL;

	(void)bw_base64_encode_alloc(p, n, 0, &s);

	json_object_object_add(o, key, json_object_new_string(s ? s : ""));
	free(s);
}

static struct json_object *from_binary(const uint8_t *d, size_t n)
{
	size_t ml, sl, i;
	struct json_object *ev, *q, *pcrs;

	if (n < 5 + 24 * 32)
		return NULL;
	ml = (size_t)d[1] << 8 | d[2];
	sl = (size_t)d[3] << 8 | d[4];
	d += 5;
	n -= 5;
	if (ml + sl > n - 24 * 32)
		return NULL;
	ev = json_object_new_object();
	q = json_object_new_object();
	pcrs = json_object_new_array();
	for (i = 0; i < 24; i++) {
		char hex[65];

		bw_hex_encode(d + 32 * i, 32, hex);
		json_object_array_add(pcrs, json_object_new_string(hex));
	}
	d += 24 * 32;
	n -= 24 * 32;
	add_b64(q, "message", d, ml);
	add_b64(q, "signature", d + ml, sl);
	json_object_object_add(q, "pcrs", pcrs);
	json_object_object_add(ev, "tpm_quote", q);
	add_b64(ev, "ak_public", d + ml + sl, n - ml - sl);
	return ev;
}

static struct json_object *from_json(const uint8_t *d, size_t n)
{
	struct json_tokener *tok = json_tokener_new_ex(16);
	struct json_object *ev;

	if (!tok)
		return NULL;
	ev = json_tokener_parse_ex(tok, (const char *)d, (int)(n > 1 << 20 ? 1 << 20 : n));
	json_tokener_free(tok);
	return ev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *ev = size && data[0] == 1 ? from_binary(data, size)
						      : from_json(data, size);
	struct bw_tpm_claims c;
	char err[BW_ERR_LEN] = "";
	int r;

	if (!ev)
		return 0;
	r = bw_tpm_verify(ev, rd, sizeof(rd), &c, err, sizeof(err));
	/* Every failure must say why; a success must carry a hex AK id. */
	if ((r < 0 && !err[0]) || (r == 0 && strlen(c.ak_id) != 64))
		abort();
	json_object_put(ev);
	return 0;
}
