// SPDX-License-Identifier: GPL-2.0-only
/*
 * A kubeconfig file (k8s.h): the current context's cluster (server, certificate-authority or
 * -data) and user (token, tokenFile, client-certificate/-key or -data). Parsed with libyaml's
 * document loader; nothing else of the file is used. Relative paths are relative to the file's
 * directory, as kubectl resolves them. The file is read again for every request (a rotated token
 * or certificate is picked up); key material is wiped from every buffer it passed through.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <yaml.h>
#include "common/common.h"
#include "k8s/k8s.h"


#define KUBECONFIG_MAX (1u << 20)

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *m, const char *key)
{
	if (!m || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);
		if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
		    !memcmp(k->data.scalar.value, key, k->data.scalar.length))
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

/* The scalar as a C string (NULL when absent, not a scalar or holding a NUL). */
static const char *scalar(yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE || strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return NULL;
	return (const char *)n->data.scalar.value;
}

/* The entry named name in a list of {name: ..., <field>: {...}} (clusters, users, contexts). */
static yaml_node_t *named(yaml_document_t *d, yaml_node_t *root, const char *list, const char *field,
			  const char *name)
{
	yaml_node_t *l = map_get(d, root, list);

	if (!l || l->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (yaml_node_item_t *i = l->data.sequence.items.start; i < l->data.sequence.items.top; i++) {
		yaml_node_t *e = yaml_document_get_node(d, *i);
		const char *n = scalar(map_get(d, e, "name"));
		if (n && !strcmp(n, name))
			return map_get(d, e, field);
	}
	return NULL;
}

/* A path from the file: relative ones are relative to the kubeconfig's directory. */
static int path_of(const char *kubeconfig, const char *p, char *out, size_t len)
{
	const char *slash = strrchr(kubeconfig, '/');
	int n;

	if (p[0] == '/' || !slash)
		n = snprintf(out, len, "%s", p);
	else
		n = snprintf(out, len, "%.*s/%s", (int)(slash - kubeconfig), kubeconfig, p);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* base64 (kubeconfig *-data) into locked memory. */
static int b64_secret(const char *s, struct bw_secret *out)
{
	size_t n = strlen(s), got = 0;
	int r;

	if (!n || n % 4 || n > KUBECONFIG_MAX)
		return -EINVAL;
	if ((r = bw_secret_new(out, n / 4 * 3)) < 0)
		return r;
	if ((r = bw_base64_decode(s, n, 0, out->data, out->len, &got)) < 0) {
		bw_secret_free(out);
		return r;
	}
	out->len = got;
	return 0;
}

/* <field>-data (base64, into locked memory) or else <field> (a path). 1 given, 0 neither,
 * -EINVAL not base64, -ENAMETOOLONG path too long. */
static int data_or_file(yaml_document_t *d, yaml_node_t *m, const char *field, const char *kubeconfig,
			struct bw_secret *data, char *file, size_t filelen)
{
	char key[64];
	const char *s;

	snprintf(key, sizeof(key), "%s-data", field);
	if ((s = scalar(map_get(d, m, key))) && s[0])
		return b64_secret(s, data) < 0 ? -EINVAL : 1;
	if ((s = scalar(map_get(d, m, field))) && s[0])
		return path_of(kubeconfig, s, file, filelen) < 0 ? -ENAMETOOLONG : 1;
	return 0;
}

static void wipe_parser(yaml_parser_t *p, yaml_document_t *d, bool have_doc)
{
	if (have_doc)
		for (yaml_node_t *n = d->nodes.start; n < d->nodes.top; n++)
			if (n->type == YAML_SCALAR_NODE)
				OPENSSL_cleanse(n->data.scalar.value, n->data.scalar.length);
	if (p->buffer.start)
		OPENSSL_cleanse(p->buffer.start, (size_t)(p->buffer.end - p->buffer.start));
	if (p->raw_buffer.start)
		OPENSSL_cleanse(p->raw_buffer.start, (size_t)(p->raw_buffer.end - p->raw_buffer.start));
}

void bw_k8s_auth_free(struct bw_k8s_auth *a)
{
	bw_secret_free(&a->token);
	bw_secret_free(&a->ca);
	bw_secret_free(&a->cert);
	bw_secret_free(&a->key);
	memset(a, 0, sizeof(*a));
}

#define FAIL(...) do { r = bw_errf(err, errlen, -EINVAL, __VA_ARGS__); goto out; } while (0)

int bw_k8s_kubeconfig_load(const char *path, struct bw_k8s_auth *a, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	memset(a, 0, sizeof(*a));
	if ((r = bw_read_file(path, KUBECONFIG_MAX, &text, &len)) < 0)
		return bw_errf(err, errlen, r, "kubeconfig %s: %s", path, r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
	r = bw_k8s_kubeconfig_parse(path, text, len, a, err, errlen);
	OPENSSL_cleanse(text, len);
	free(text);
	return r;
}

int bw_k8s_kubeconfig_parse(const char *path, const char *text, size_t len, struct bw_k8s_auth *a, char *err,
			    size_t errlen)
{
	yaml_parser_t p;
	yaml_document_t d;
	bool have_doc = false;
	yaml_node_t *root, *ctx, *cl, *us;
	const char *cur, *cname, *uname, *s;
	int r;

	memset(a, 0, sizeof(*a));
	if (len > KUBECONFIG_MAX)
		return bw_errf(err, errlen, -EFBIG, "kubeconfig %s: larger than 1 MiB", path);
	if (!yaml_parser_initialize(&p))
		return bw_errf(err, errlen, -ENOMEM, "kubeconfig %s: out of memory", path);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	if (!yaml_parser_load(&p, &d))
		FAIL("kubeconfig %s:%zu: not YAML: %s", path, p.problem_mark.line + 1, p.problem ? p.problem : "?");
	have_doc = true;
	if (!(root = yaml_document_get_root_node(&d)) || root->type != YAML_MAPPING_NODE)
		FAIL("kubeconfig %s: not a kubeconfig (no mapping at the top)", path);
	if ((s = scalar(map_get(&d, root, "kind"))) && strcmp(s, "Config"))
		FAIL("kubeconfig %s: kind %s, not Config", path, s);
	if (!(cur = scalar(map_get(&d, root, "current-context"))) || !cur[0])
		FAIL("kubeconfig %s: no current-context", path);
	if (!(ctx = named(&d, root, "contexts", "context", cur)))
		FAIL("kubeconfig %s: current-context %s is not in contexts", path, cur);
	if (!(cname = scalar(map_get(&d, ctx, "cluster"))) || !(cl = named(&d, root, "clusters", "cluster", cname)))
		FAIL("kubeconfig %s: context %s: its cluster is not in clusters", path, cur);
	/* A user is optional (anonymous); named but missing is an error. */
	uname = scalar(map_get(&d, ctx, "user"));
	us = uname && uname[0] ? named(&d, root, "users", "user", uname) : NULL;
	if (uname && uname[0] && !us)
		FAIL("kubeconfig %s: context %s: user %s is not in users", path, cur, uname);

	/* cluster */
	if (!(s = scalar(map_get(&d, cl, "server"))) || strncmp(s, "https://", 8) || strlen(s) >= sizeof(a->server) ||
	    strpbrk(s, " \t\r\n"))
		FAIL("kubeconfig %s: cluster %s: server must be an https:// URL", path, cname);
	snprintf(a->server, sizeof(a->server), "%s", s);
	while (strlen(a->server) > 8 && a->server[strlen(a->server) - 1] == '/')
		a->server[strlen(a->server) - 1] = '\0';
	if ((s = scalar(map_get(&d, cl, "insecure-skip-tls-verify"))) && !strcmp(s, "true"))
		FAIL("kubeconfig %s: cluster %s: insecure-skip-tls-verify is refused (the API's certificate is always verified)",
		     path, cname);
	if ((r = data_or_file(&d, cl, "certificate-authority", path, &a->ca, a->ca_file, sizeof(a->ca_file))) < 0)
		FAIL("kubeconfig %s: cluster %s: certificate-authority%s", path, cname,
		     r == -EINVAL ? "-data is not base64" : " path too long");
	if ((s = scalar(map_get(&d, cl, "tls-server-name"))) && s[0])
		FAIL("kubeconfig %s: cluster %s: tls-server-name is not supported (the server URL's host must be in the API certificate)",
		     path, cname);

	/* user */
	if (us) {
		if (map_get(&d, us, "exec") || map_get(&d, us, "auth-provider"))
			FAIL("kubeconfig %s: user %s: exec and auth-provider plugins are not supported (use a token, tokenFile or a client certificate)",
			     path, uname);
		if (map_get(&d, us, "username") || map_get(&d, us, "password"))
			FAIL("kubeconfig %s: user %s: basic authentication is not supported", path, uname);
		if ((s = scalar(map_get(&d, us, "token"))) && s[0]) {
			if (strpbrk(s, "\r\n") || (r = bw_secret_new(&a->token, strlen(s) + 1)) < 0)
				FAIL("kubeconfig %s: user %s: token is not one line", path, uname);
			memcpy(a->token.data, s, strlen(s) + 1);
			a->token.len = strlen(s);
		} else if ((s = scalar(map_get(&d, us, "tokenFile"))) && s[0]) {
			if (path_of(path, s, a->token_file, sizeof(a->token_file)) < 0)
				FAIL("kubeconfig %s: user %s: tokenFile path too long", path, uname);
		}
		if ((r = data_or_file(&d, us, "client-certificate", path, &a->cert, a->cert_file, sizeof(a->cert_file))) < 0)
			FAIL("kubeconfig %s: user %s: client-certificate%s", path, uname,
			     r == -EINVAL ? "-data is not base64" : " path too long");
		if ((r = data_or_file(&d, us, "client-key", path, &a->key, a->key_file, sizeof(a->key_file))) < 0)
			FAIL("kubeconfig %s: user %s: client-key%s", path, uname,
			     r == -EINVAL ? "-data is not base64" : " path too long");
		if ((a->cert.data || a->cert_file[0]) != (a->key.data || a->key_file[0]))
			FAIL("kubeconfig %s: user %s: a client certificate needs its key and a key its certificate", path, uname);
	}
	r = 0;
out:
	wipe_parser(&p, &d, have_doc);
	if (have_doc)
		yaml_document_delete(&d);
	yaml_parser_delete(&p);
	if (r < 0)
		bw_k8s_auth_free(a);
	return r;
}
