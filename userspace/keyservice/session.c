// SPDX-License-Identifier: GPL-2.0-only
/*
 * Sessions: cookie id -> nonce and state. A chained hash table for lookups, and two lists in
 * expiry order: sessions still waiting for their attestation (short lifetime: a client attests
 * right after /auth) and attested ones (the full lifetime from the attestation). Both lifetimes
 * are uniform per list, so expired sessions are always at the heads and purging costs O(expired).
 *
 * POST /auth needs no authentication, so the table must not be fillable by one client: at the
 * per-source quota the source's oldest unattested session makes room, and at the global limit
 * the oldest unattested session anywhere (then the oldest attested one: a client holding the
 * token as bearer keeps working). A new session therefore always gets a place.
 */
#include <errno.h>
#include <string.h>
#include <openssl/rand.h>
#include "keyservice/keyservice.h"

#define BUCKETS 4096

struct list {
	struct bw_ks_session *head, *tail;
};

struct bw_ks_source {
	char addr[BW_KS_SOURCE_LEN];
	size_t total;            /* sessions of this source (frees the record at 0) */
	size_t unattested;
	struct list pending;     /* its unattested sessions, oldest first (src_prev/src_next) */
	struct bw_ks_source *next;  /* hash chain */
};

struct bw_ks_sessions {
	struct bw_ks_session *b[BUCKETS];
	struct bw_ks_source *src[BUCKETS];
	struct list pending, attested; /* prev/next, oldest first */
	size_t count, n_pending, max, per_source;
	time_t lifetime, unattested_lifetime;
	uint64_t evicted;
};

struct bw_ks_sessions *bw_ks_sessions_new(const struct bw_ks_session_limits *l)
{
	struct bw_ks_sessions *s = calloc(1, sizeof(*s));

	if (s) {
		s->max = l->max ? l->max : 1;
		s->per_source = l->per_source ? l->per_source : s->max;
		s->lifetime = l->lifetime;
		s->unattested_lifetime = l->unattested_lifetime && l->unattested_lifetime < l->lifetime
						 ? l->unattested_lifetime : l->lifetime;
	}
	return s;
}

/* Ids are random, so their leading hex digits spread evenly. */
static size_t bucket(const char *id)
{
	return strtoul((char[4]){ id[0], id[1], id[2], 0 }, NULL, 16) % BUCKETS;
}

static size_t src_bucket(const char *addr)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *addr; addr++)
		h = (h ^ (uint8_t)*addr) * 16777619u;
	return h % BUCKETS;
}

static void list_del(struct list *l, struct bw_ks_session *x, bool src)
{
	struct bw_ks_session **prev = src ? &x->src_prev : &x->prev, **next = src ? &x->src_next : &x->next;
	struct bw_ks_session *p = *prev, *n = *next;

	if (p)
		*(src ? &p->src_next : &p->next) = n;
	else
		l->head = n;
	if (n)
		*(src ? &n->src_prev : &n->prev) = p;
	else
		l->tail = p;
	*prev = *next = NULL;
}

static void list_add_tail(struct list *l, struct bw_ks_session *x, bool src)
{
	if (src) {
		x->src_prev = l->tail;
		x->src_next = NULL;
		if (l->tail)
			l->tail->src_next = x;
	} else {
		x->prev = l->tail;
		x->next = NULL;
		if (l->tail)
			l->tail->next = x;
	}
	if (!l->head)
		l->head = x;
	l->tail = x;
}

static struct bw_ks_source *source_get(struct bw_ks_sessions *s, const char *addr, bool create)
{
	size_t b = src_bucket(addr);
	struct bw_ks_source *x;

	for (x = s->src[b]; x; x = x->next)
		if (!strcmp(x->addr, addr))
			return x;
	if (!create || !(x = calloc(1, sizeof(*x))))
		return NULL;
	snprintf(x->addr, sizeof(x->addr), "%s", addr);
	x->next = s->src[b];
	s->src[b] = x;
	return x;
}

static void source_put(struct bw_ks_sessions *s, struct bw_ks_source *x)
{
	struct bw_ks_source **pp;

	if (x->total)
		return;
	for (pp = &s->src[src_bucket(x->addr)]; *pp != x; pp = &(*pp)->next)
		;
	*pp = x->next;
	free(x);
}

/* Unlink x from every structure and free it. */
static void session_drop(struct bw_ks_sessions *s, struct bw_ks_session *x)
{
	struct bw_ks_session **pp;
	struct bw_ks_source *src = x->src;

	for (pp = &s->b[bucket(x->id)]; *pp != x; pp = &(*pp)->bnext)
		;
	*pp = x->bnext;
	if (x->token) {
		list_del(&s->attested, x, false);
	} else {
		list_del(&s->pending, x, false);
		list_del(&src->pending, x, true);
		src->unattested--;
		s->n_pending--;
	}
	src->total--;
	source_put(s, src);
	s->count--;
	if (x->token)
		OPENSSL_cleanse(x->token, strlen(x->token));
	free(x->token);
	OPENSSL_cleanse(x, sizeof(*x));
	free(x);
}

void bw_ks_session_drop(struct bw_ks_sessions *s, struct bw_ks_session *x) { session_drop(s, x); }

size_t bw_ks_sessions_purge(struct bw_ks_sessions *s, time_t now)
{
	size_t n = 0;

	while (s->pending.head && s->pending.head->expires <= now) {
		session_drop(s, s->pending.head);
		n++;
	}
	while (s->attested.head && s->attested.head->expires <= now) {
		session_drop(s, s->attested.head);
		n++;
	}
	return n;
}

void bw_ks_sessions_free(struct bw_ks_sessions *s)
{
	if (!s)
		return;
	while (s->pending.head)
		session_drop(s, s->pending.head);
	while (s->attested.head)
		session_drop(s, s->attested.head);
	free(s);
}

struct bw_ks_session *bw_ks_session_create(struct bw_ks_sessions *s, const char *tee, const char *source, time_t now)
{
	struct bw_ks_session *x;
	struct bw_ks_source *src;
	uint8_t id[32], nonce[32];

	if (!source || strlen(source) >= BW_KS_SOURCE_LEN)
		source = "?";
	if (strlen(tee) >= sizeof(x->tee) || RAND_bytes(id, sizeof(id)) <= 0 || RAND_bytes(nonce, sizeof(nonce)) <= 0)
		return NULL;
	bw_ks_sessions_purge(s, now);
	src = source_get(s, source, true);
	if (!src)
		return NULL;
	src->total++; /* reserved for the new session: no eviction below can free the record */
	/* Make room: this source's oldest pending session, else the oldest pending, else attested. */
	if (src->unattested >= s->per_source && src->pending.head) {
		session_drop(s, src->pending.head);
		s->evicted++;
	}
	while (s->count >= s->max && (s->pending.head || s->attested.head)) {
		session_drop(s, s->pending.head ? s->pending.head : s->attested.head);
		s->evicted++;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		src->total--;
		source_put(s, src);
		return NULL;
	}
	bw_hex_encode(id, sizeof(id), x->id);
	/* Trustee sends the nonce as standard base64 of 32 random bytes. */
	bw_base64_encode(nonce, sizeof(nonce), 0, x->nonce);
	strcpy(x->tee, tee);
	x->created = now;
	x->expires = now + s->unattested_lifetime;
	x->src = src;
	x->bnext = s->b[bucket(x->id)];
	s->b[bucket(x->id)] = x;
	list_add_tail(&s->pending, x, false);
	list_add_tail(&src->pending, x, true);
	src->unattested++;
	s->n_pending++;
	s->count++;
	return x;
}

int bw_ks_session_attested(struct bw_ks_sessions *s, struct bw_ks_session *x, char *token, time_t now)
{
	if (x->token || !token)
		return -EINVAL;
	list_del(&s->pending, x, false);
	list_del(&x->src->pending, x, true);
	x->src->unattested--;
	s->n_pending--;
	x->token = token;
	x->expires = now + s->lifetime;
	list_add_tail(&s->attested, x, false);
	return 0;
}

struct bw_ks_session *bw_ks_session_find(struct bw_ks_sessions *s, const char *id, time_t now)
{
	if (!id || strlen(id) != 64 || strspn(id, "0123456789abcdef") != 64)
		return NULL;
	for (struct bw_ks_session *x = s->b[bucket(id)]; x; x = x->bnext)
		if (bw_memeq_ct(x->id, id, 64))
			return x->expires <= now ? NULL : x;
	return NULL;
}

size_t bw_ks_sessions_count(const struct bw_ks_sessions *s) { return s->count; }
size_t bw_ks_sessions_pending(const struct bw_ks_sessions *s) { return s->n_pending; }
uint64_t bw_ks_sessions_evicted(const struct bw_ks_sessions *s) { return s->evicted; }
