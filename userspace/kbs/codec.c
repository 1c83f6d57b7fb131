// SPDX-License-Identifier: GPL-2.0-only
/* Encodings shared by client and service: JCS canonical JSON, strict JSON, report data. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "kbs/internal.h"
#include "kbs/kbs.h"

/* ---- JCS (RFC 8785) ---- */

static void jcs_string(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (c < 0x20)
				fprintf(f, "\\u%04x", c);
			else
				fputc(c, f);
		}
	}
	fputc('"', f);
}

/*
 * JCS orders members by their UTF-16 code units. For keys in the Basic Multilingual Plane that
 * equals byte order of their UTF-8 encoding except around surrogates; our protocol keys are
 * ASCII, and strcmp on UTF-8 is what serde_json_canonicalizer's peers get for them too.
 */
static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int jcs_value(FILE *f, struct json_object *o, int depth);

static int jcs_object(FILE *f, struct json_object *o, int depth)
{
	size_t n = (size_t)json_object_object_length(o), i = 0;
	_cleanup_free_ const char **keys = calloc(n ? n : 1, sizeof(*keys));
	int r = 0;

	if (!keys)
		return -ENOMEM;
	json_object_object_foreach(o, k, v) {
		(void)v;
		keys[i++] = k;
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	fputc('{', f);
	for (i = 0; i < n && r == 0; i++) {
		if (i)
			fputc(',', f);
		jcs_string(f, keys[i], strlen(keys[i]));
		fputc(':', f);
		r = jcs_value(f, json_object_object_get(o, keys[i]), depth + 1);
	}
	fputc('}', f);
	return r;
}

static int jcs_value(FILE *f, struct json_object *o, int depth)
{
	int r = 0;

	if (depth > 64)
		return -ELOOP;
	switch (json_object_get_type(o)) {
	case json_type_null: fputs("null", f); break;
	case json_type_boolean: fputs(json_object_get_boolean(o) ? "true" : "false", f); break;
	case json_type_int: {
		/* Integers beyond 2^53 have no exact ES6 number form. Compared without llabs():
		 * llabs(INT64_MIN) is undefined (and negative in practice, slipping past the check). */
		int64_t v = json_object_get_int64(o);
		if (v > (INT64_C(1) << 53) || v < -(INT64_C(1) << 53))
			return -ERANGE;
		fprintf(f, "%lld", (long long)v);
		break;
	}
	case json_type_double: return -ENOTSUP;
	case json_type_string:
		jcs_string(f, json_object_get_string(o), (size_t)json_object_get_string_len(o));
		break;
	case json_type_array:
		fputc('[', f);
		for (size_t i = 0; i < json_object_array_length(o) && r == 0; i++) {
			if (i)
				fputc(',', f);
			r = jcs_value(f, json_object_array_get_idx(o, i), depth + 1);
		}
		fputc(']', f);
		break;
	case json_type_object: r = jcs_object(f, o, depth); break;
	}
	return r;
}

int bw_jcs(struct json_object *o, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int r;

	if (!f)
		return -ENOMEM;
	r = jcs_value(f, o, 0);
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r < 0) {
		free(buf);
		return r;
	}
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

int bw_kbs_report_data(struct json_object *tee_pubkey, const char *nonce,
		       uint8_t out[BW_KBS_REPORT_DATA_LEN])
{
	struct json_object *rd = json_object_new_object();
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	if (!rd)
		return -ENOMEM;
	/* What Trustee rebuilds as primary runtime data (no additional device evidence). */
	json_object_object_add(rd, "tee-pubkey", json_object_get(tee_pubkey));
	json_object_object_add(rd, "nonce", json_object_new_string(nonce));
	json_object_object_add(rd, "additional-evidence", json_object_new_string(""));
	r = bw_jcs(rd, &text, &len);
	json_object_put(rd);
	if (r < 0)
		return r;
	SHA384((const unsigned char *)text, len, out);
	return 0;
}

/*
 * Strict JSON (RFC 8259), the way Trustee's serde_json reads it. json-c 0.16 with
 * JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 refuses comments, trailing commas, single-
 * quoted values, bare words, leading zeros and trailing bytes, but still accepts (measured on
 * 0.16): single-quoted member names, NaN / Infinity / -Infinity, "1.", raw control characters in
 * strings, overlong and surrogate UTF-8 (C0 AF, ED A0 80), lone surrogate escapes (made U+FFFD),
 * \u0000 (kept inside values, truncating member names: "tee\u0000x" becomes "tee"), integers
 * beyond 64 bits (saturated), 1e400 (infinity) and duplicate member names (the last one wins).
 * json-c keeps checking the structure; this pass over the text checks every token json-c lets
 * through and counts the name separators, which must equal the members json-c kept.
 */
struct lex {
	const unsigned char *p, *end;
	size_t colons;
};

static bool hex4(const unsigned char *p, const unsigned char *end, unsigned *v)
{
	*v = 0;
	if (end - p < 4)
		return false;
	for (int i = 0; i < 4; i++) {
		unsigned c = p[i];
		unsigned d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			     c >= 'A' && c <= 'F' ? c - 'A' + 10 : 16;
		if (d == 16)
			return false;
		*v = *v << 4 | d;
	}
	return true;
}

/* One UTF-8 sequence (RFC 3629: shortest form, no surrogates, at most U+10FFFF); its length or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

static bool lex_string(struct lex *l)
{
	const unsigned char *p = l->p + 1;
	unsigned u, lo;

	while (p < l->end && *p != '"') {
		if (*p < 0x20)
			return false;
		if (*p == '\\') {
			if (++p == l->end)
				return false;
			if (*p != 'u') {
				if (!strchr("\"\\/bfnrt", *p) || !*p)
					return false;
				p++;
				continue;
			}
			if (!hex4(p + 1, l->end, &u) || u == 0 || (u >= 0xdc00 && u <= 0xdfff))
				return false;
			p += 5;
			if (u >= 0xd800 && u <= 0xdbff) { /* a high surrogate needs its low half next */
				if (l->end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, l->end, &lo) ||
				    lo < 0xdc00 || lo > 0xdfff)
					return false;
				p += 6;
			}
			continue;
		}
		size_t n = utf8_len(p, l->end);
		if (!n)
			return false;
		p += n;
	}
	if (p == l->end)
		return false;
	l->p = p + 1;
	return true;
}

/* true / false / null, or a number of the RFC 8259 grammar that fits int64 or a finite double. */
static bool lex_bare(struct lex *l)
{
	const unsigned char *s = l->p, *p = s;
	bool integer = true;
	char buf[400], *end;

	while (p < l->end && (isalnum(*p) || *p == '-' || *p == '+' || *p == '.'))
		p++;
	l->p = p;
	if ((p - s == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "null", 4))) || (p - s == 5 && !memcmp(s, "false", 5)))
		return true;
	if ((size_t)(p - s) >= sizeof(buf))
		return false;
	const unsigned char *q = s;
	if (*q == '-')
		q++;
	if (q < p && *q == '0')
		q++;
	else if (q < p && *q >= '1' && *q <= '9')
		while (q < p && isdigit(*q))
			q++;
	else
		return false;
	if (q < p && *q == '.') {
		integer = false;
		if (++q == p || !isdigit(*q))
			return false;
		while (q < p && isdigit(*q))
			q++;
	}
	if (q < p && (*q == 'e' || *q == 'E')) {
		integer = false;
		if (++q < p && (*q == '+' || *q == '-'))
			q++;
		if (q == p || !isdigit(*q))
			return false;
		while (q < p && isdigit(*q))
			q++;
	}
	if (q != p)
		return false;
	memcpy(buf, s, (size_t)(p - s));
	buf[p - s] = '\0';
	errno = 0;
	if (integer)
		(void)strtoll(buf, &end, 10);
	else if (!isfinite(strtod(buf, &end)))
		return false;
	return errno != ERANGE || !integer;
}

static bool lex_check(const char *buf, size_t len, size_t *colons)
{
	struct lex l = { (const unsigned char *)buf, (const unsigned char *)buf + len, 0 };

	while (l.p < l.end) {
		unsigned char c = *l.p;
		if (c == '"') {
			if (!lex_string(&l))
				return false;
		} else if (c == ':' || c == ',' || c == '{' || c == '}' || c == '[' || c == ']' || c == ' ' ||
			   c == '\t' || c == '\n' || c == '\r') {
			l.colons += c == ':';
			l.p++;
		} else if (!lex_bare(&l)) {
			return false;
		}
	}
	*colons = l.colons;
	return true;
}

static size_t count_members(struct json_object *o)
{
	size_t n = 0;

	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, k, v) {
			(void)k;
			n += 1 + count_members(v);
		}
	} else if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			n += count_members(json_object_array_get_idx(o, i));
	}
	return n;
}

int bw_json_parse_object(const char *buf, size_t len, size_t max, struct json_object **out)
{
	struct json_tokener *tok;
	struct json_object *o;
	size_t colons;

	if (len > max || len > INT32_MAX)
		return -EFBIG;
	if (!lex_check(buf, len, &colons))
		return -EBADMSG;
	tok = json_tokener_new_ex(32);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	/* STRICT refuses trailing bytes; a truncated value is json_tokener_continue. */
	if (!o || json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(o, json_type_object) || count_members(o) != colons) {
		json_object_put(o);
		json_tokener_free(tok);
		return -EBADMSG;
	}
	json_tokener_free(tok);
	*out = o;
	return 0;
}

int bw_kbs_parse_object(const char *buf, size_t len, struct json_object **out)
{
	return bw_json_parse_object(buf, len, BW_KBS_MAX_BODY, out);
}

const char *bw_json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	/* Length-aware: a value with an embedded NUL must not compare equal to its prefix. */
	if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
		return NULL;
	return json_object_get_string(v);
}

bool bw_kbs_resource_path_valid(const char *path)
{
	int segs = 1;
	size_t seglen = 0;

	if (!path || !*path || strlen(path) > 255)
		return false;
	for (const char *p = path;; p++) {
		if (*p == '/' || !*p) {
			/* Empty, "." and ".." segments could escape a prefix match. */
			if (seglen == 0 || (seglen == 1 && p[-1] == '.') ||
			    (seglen == 2 && p[-1] == '.' && p[-2] == '.'))
				return false;
			if (!*p)
				break;
			segs++;
			seglen = 0;
			continue;
		}
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return false;
		seglen++;
	}
	return segs == 3;
}
