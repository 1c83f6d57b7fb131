// SPDX-License-Identifier: GPL-2.0-only
/* Sessions: cookie id -> nonce and state; chained hash table, expiry on lookup and by purge. */
#include <errno.h>
#include <string.h>
#include <openssl/rand.h>
#include "keyservice/keyservice.h"

#define BUCKETS 4096

struct ks_sessions {
	struct ks_session *b[BUCKETS];
	size_t count, max;
	time_t lifetime;
};

struct ks_sessions *ks_sessions_new(size_t max, time_t lifetime)
{
	struct ks_sessions *s = calloc(1, sizeof(*s));

	if (s) {
		s->max = max;
		s->lifetime = lifetime;
	}
	return s;
}

static void session_free(struct ks_session *x)
{
	if (x->token)
		OPENSSL_cleanse(x->token, strlen(x->token));
	free(x->token);
	OPENSSL_cleanse(x, sizeof(*x));
	free(x);
}

void ks_sessions_free(struct ks_sessions *s)
{
	if (!s)
		return;
	ks_sessions_purge(s, (time_t)INT64_MAX / 2);
	free(s);
}

/* Ids are random, so their leading hex digits spread evenly. */
static size_t bucket(const char *id)
{
	return strtoul((char[4]){ id[0], id[1], id[2], 0 }, NULL, 16) % BUCKETS;
}

static bool expired(const struct ks_sessions *s, const struct ks_session *x, time_t now)
{
	return now - x->created >= s->lifetime;
}

size_t ks_sessions_purge(struct ks_sessions *s, time_t now)
{
	size_t n = 0;

	for (size_t i = 0; i < BUCKETS; i++) {
		struct ks_session **pp = &s->b[i];
		while (*pp) {
			struct ks_session *x = *pp;
			if (expired(s, x, now)) {
				*pp = x->next;
				session_free(x);
				s->count--;
				n++;
			} else {
				pp = &x->next;
			}
		}
	}
	return n;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

struct ks_session *ks_session_create(struct ks_sessions *s, const char *tee, time_t now)
{
	struct ks_session *x;
	uint8_t id[32], nonce[32];

	if (s->count >= s->max && (ks_sessions_purge(s, now) == 0 || s->count >= s->max))
		return NULL;
	if (strlen(tee) >= sizeof(x->tee) || RAND_bytes(id, sizeof(id)) <= 0 ||
	    RAND_bytes(nonce, sizeof(nonce)) <= 0)
		return NULL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	hex(id, sizeof(id), x->id);
	/* Trustee sends the nonce as standard base64 of 32 random bytes. */
	EVP_EncodeBlock((unsigned char *)x->nonce, nonce, sizeof(nonce));
	strcpy(x->tee, tee);
	x->created = now;
	x->next = s->b[bucket(x->id)];
	s->b[bucket(x->id)] = x;
	s->count++;
	return x;
}

struct ks_session *ks_session_find(struct ks_sessions *s, const char *id, time_t now)
{
	if (!id || strlen(id) != 64 || strspn(id, "0123456789abcdef") != 64)
		return NULL;
	for (struct ks_session *x = s->b[bucket(id)]; x; x = x->next)
		if (bw_memeq_ct(x->id, id, 64))
			return expired(s, x, now) ? NULL : x;
	return NULL;
}

size_t ks_sessions_count(const struct ks_sessions *s) { return s->count; }
