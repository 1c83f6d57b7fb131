// SPDX-License-Identifier: GPL-2.0-only
/*
 * Policy file: deny by default. Example:
 *   { "sample": false,
 *     "rules": [ { "name": "workers", "tee": "tpm",
 *                  "trusted_aks": ["<sha256 hex of AK SPKI DER>"],
 *                  "pcrs": { "0": "<hex>", "7": "<hex>" },
 *                  "resources": ["bulwark/volume/", "bulwark/statedisk/node-1"] } ] }
 * A rule matches evidence whose tee is its tee and whose claims satisfy every reference value
 * it lists; a tpm rule must list at least one trusted AK. Unknown members are errors, so a typo
 * cannot silently widen access.
 */
#include <errno.h>
#include <string.h>
#include "keyservice/keyservice.h"

#define FAIL(code, ...) do { snprintf(err, errlen, __VA_ARGS__); return (code); } while (0)
#define MAX_POLICY (1 << 20)

static bool is_hex(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

static int hex_decode(const char *s, uint8_t *out, size_t len)
{
	/* Lowercase only, like the identities and claims it is compared with. */
	return is_hex(s, 2 * len) ? bw_hex_decode(s, out, len) : -EINVAL;
}

static int str_array(struct json_object *a, char ***out, size_t *n, bool (*ok)(const char *))
{
	size_t len;

	if (!json_object_is_type(a, json_type_array))
		return -EINVAL;
	len = json_object_array_length(a);
	*out = calloc(len ? len : 1, sizeof(char *));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		struct json_object *v = json_object_array_get_idx(a, i);
		if (!json_object_is_type(v, json_type_string) || !ok(json_object_get_string(v)))
			return -EINVAL;
		(*out)[i] = strdup(json_object_get_string(v));
		if (!(*out)[i])
			return -ENOMEM;
		*n = i + 1;
	}
	return 0;
}

static bool ak_ok(const char *s) { return is_hex(s, 64); }

static bool resource_ok(const char *s)
{
	size_t n = strlen(s);
	char buf[300];

	if (!strcmp(s, "*"))
		return true;
	if (n == 0 || n > 255)
		return false;
	/* "a/" and "a/b/" are prefixes: validate them as if completed to a full path. */
	snprintf(buf, sizeof(buf), "%s%s", s, s[n - 1] != '/' ? "" : strchr(s, '/') == s + n - 1 ? "x/x" : "x");
	return bw_kbs_resource_path_valid(buf);
}

static int parse_pcrs(struct json_object *o, struct bw_ks_rule *r)
{
	if (!json_object_is_type(o, json_type_object))
		return -EINVAL;
	json_object_object_foreach(o, k, v) {
		char *end;
		long i = strtol(k, &end, 10);
		if (*end || end == k || i < 0 || i >= BW_TPM_PCRS || !json_object_is_type(v, json_type_string) ||
		    hex_decode(json_object_get_string(v), r->pcr[i], 32) < 0)
			return -EINVAL;
		r->has_pcr[i] = true;
	}
	return 0;
}

static void rule_ref(struct json_object *o, struct bw_ks_rule *r)
{
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	uint8_t md[32];
	int n = snprintf(r->ref, sizeof(r->ref), "%.60s@", r->name);

	EVP_Digest(text, strlen(text), md, NULL, EVP_sha256(), NULL);
	if (n >= 0 && (size_t)n + 17 <= sizeof(r->ref))
		bw_hex_encode(md, 8, r->ref + n);
}

static int parse_rule(struct json_object *o, struct bw_ks_rule *r, char *err, size_t errlen)
{
	const char *name = bw_json_str(o, "name"), *tee = bw_json_str(o, "tee");
	struct json_object *res;

	if (!json_object_is_type(o, json_type_object) || !name || !tee)
		FAIL(-EINVAL, "rule needs \"name\" and \"tee\"");
	r->name = strdup(name);
	r->tee = strdup(tee);
	if (!r->name || !r->tee)
		return -ENOMEM;
	if (strcmp(tee, "sample") && strcmp(tee, "tpm"))
		FAIL(-EINVAL, "rule %s: tee must be sample or tpm", name);
	json_object_object_foreach(o, k, v) {
		int e = 0;
		if (!strcmp(k, "trusted_aks"))
			e = str_array(v, &r->aks, &r->n_aks, ak_ok);
		else if (!strcmp(k, "pcrs"))
			e = parse_pcrs(v, r);
		else if (!strcmp(k, "resources"))
			e = str_array(v, &r->resources, &r->n_resources, resource_ok);
		else if (strcmp(k, "name") && strcmp(k, "tee"))
			FAIL(-EINVAL, "rule %s: unknown member \"%s\"", name, k);
		if (e < 0)
			FAIL(e, "rule %s: bad \"%s\"", name, k);
	}
	if (!json_object_object_get_ex(o, "resources", &res) || r->n_resources == 0)
		FAIL(-EINVAL, "rule %s: needs a non-empty \"resources\" list", name);
	if (!strcmp(tee, "tpm") && r->n_aks == 0)
		FAIL(-EINVAL, "rule %s: a tpm rule must list trusted_aks", name);
	if (!strcmp(tee, "sample") && (r->n_aks || memchr(r->has_pcr, true, BW_TPM_PCRS)))
		FAIL(-EINVAL, "rule %s: sample rules take no reference values", name);
	rule_ref(o, r);
	return 0;
}

int bw_ks_policy_parse(const char *text, size_t len, struct bw_ks_policy *p, char *err, size_t errlen)
{
	struct json_object *o = NULL, *rules = NULL;
	int r = 0;

	*p = (struct bw_ks_policy){ 0 };
	if (len > MAX_POLICY)
		FAIL(-EFBIG, "policy larger than %d bytes", MAX_POLICY);
	/* The same strict parser as the protocol messages, with the policy's own size bound. */
	if (bw_json_parse_object(text, len, MAX_POLICY, &o) < 0)
		FAIL(-EBADMSG, "policy is not a strict JSON object (RFC 8259: no comments, trailing commas, "
			       "single quotes, NaN, duplicate names; valid UTF-8)");
	json_object_object_foreach(o, k, v) {
		if (!strcmp(k, "sample") && json_object_is_type(v, json_type_boolean))
			p->sample = json_object_get_boolean(v);
		else if (!strcmp(k, "rules") && json_object_is_type(v, json_type_array))
			rules = v;
		else {
			snprintf(err, errlen, "policy: unknown or mistyped member \"%s\"", k);
			r = -EINVAL;
			break;
		}
	}
	if (r == 0 && rules) {
		p->n_rules = json_object_array_length(rules);
		p->rules = calloc(p->n_rules ? p->n_rules : 1, sizeof(*p->rules));
		r = p->rules ? 0 : -ENOMEM;
		for (size_t i = 0; r == 0 && i < p->n_rules; i++)
			r = parse_rule(json_object_array_get_idx(rules, i), &p->rules[i], err, errlen);
	}
	json_object_put(o);
	if (r < 0)
		bw_ks_policy_free(p);
	return r;
}

int bw_ks_policy_load(const char *path, struct bw_ks_policy *p, char *err, size_t errlen)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = bw_read_file(path, MAX_POLICY, &text, &len);

	if (r < 0)
		FAIL(r, "policy %s: %s", path, strerror(-r));
	return bw_ks_policy_parse(text, len, p, err, errlen);
}

static void free_strs(char **s, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		free(s[i]);
	free(s);
}

void bw_ks_policy_free(struct bw_ks_policy *p)
{
	for (size_t i = 0; p->rules && i < p->n_rules; i++) {
		free(p->rules[i].name);
		free(p->rules[i].tee);
		free_strs(p->rules[i].aks, p->rules[i].n_aks);
		free_strs(p->rules[i].resources, p->rules[i].n_resources);
	}
	free(p->rules);
	*p = (struct bw_ks_policy){ 0 };
}

static bool tpm_matches(const struct bw_ks_rule *r, struct json_object *claims)
{
	const char *ak = bw_json_str(claims, "ak");
	struct json_object *pcrs;
	bool trusted = false;

	for (size_t i = 0; ak && i < r->n_aks; i++)
		trusted |= !strcmp(ak, r->aks[i]);
	if (!trusted || !json_object_object_get_ex(claims, "pcrs", &pcrs) ||
	    !json_object_is_type(pcrs, json_type_array) || json_object_array_length(pcrs) != BW_TPM_PCRS)
		return false;
	for (int i = 0; i < BW_TPM_PCRS; i++) {
		uint8_t v[32];
		struct json_object *e = json_object_array_get_idx(pcrs, (size_t)i);
		if (!r->has_pcr[i])
			continue;
		if (!json_object_is_type(e, json_type_string) || hex_decode(json_object_get_string(e), v, 32) < 0 ||
		    memcmp(v, r->pcr[i], 32))
			return false;
	}
	return true;
}

struct json_object *bw_ks_policy_match(const struct bw_ks_policy *p, struct json_object *claims)
{
	struct json_object *names = json_object_new_array();
	const char *tee = bw_json_str(claims, "tee");

	for (size_t i = 0; names && tee && i < p->n_rules; i++) {
		const struct bw_ks_rule *r = &p->rules[i];
		if (strcmp(r->tee, tee))
			continue;
		if (!strcmp(tee, "tpm") && !tpm_matches(r, claims))
			continue;
		json_object_array_add(names, json_object_new_string(r->ref));
	}
	return names;
}

static bool resource_matches(const char *pat, const char *path)
{
	size_t n = strlen(pat);

	if (!strcmp(pat, "*"))
		return true;
	return pat[n - 1] == '/' ? !strncmp(pat, path, n) : !strcmp(pat, path);
}

bool bw_ks_policy_allows(const struct bw_ks_policy *p, struct json_object *rule_names, const char *tee,
			 const char *path)
{
	if (!json_object_is_type(rule_names, json_type_array) || !tee)
		return false;
	for (size_t i = 0; i < json_object_array_length(rule_names); i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(rule_names, i));
		for (size_t j = 0; name && j < p->n_rules; j++) {
			const struct bw_ks_rule *r = &p->rules[j];
			if (strcmp(r->ref, name) || strcmp(r->tee, tee))
				continue;
			for (size_t k = 0; k < r->n_resources; k++)
				if (resource_matches(r->resources[k], path))
					return true;
		}
	}
	return false;
}
