/*
 * ratelimit.c — striped, bounded token-bucket table; see ratelimit.h.
 *
 * Each bucket is kept as GCRA's "theoretical arrival time" (tat): one event costs an
 * emission interval T = period/limit, an event is allowed while tat + T - now <= limit*T
 * (the burst window), and the bucket is full once tat <= now. This is the token bucket
 * exactly, in one integer per key and without accumulated rounding.
 *
 * Layout: STRIPES independent shards chosen by the key digest, each with its own
 * mutex, a fixed pool of entries (max_keys / STRIPES) and a chained hash index over
 * them (uint32 indices, no allocation after creation).
 */
#include "ratelimit.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define STRIPES 16
#define DIGEST_BYTES RATELIMIT_DIGEST_BYTES
#define US 1000000ull
#define NIL UINT32_MAX
#define DEFAULT_MAX_KEYS 65536

struct entry {
    uint8_t key[DIGEST_BYTES];
    uint64_t tat;    /* theoretical arrival time, monotonic us */
    uint32_t next;   /* chain in the hash index, or the free list */
    uint32_t bucket; /* index slot, for unlinking */
};

struct stripe {
    pthread_mutex_t mu;
    struct entry *pool;
    uint32_t *index; /* nbuckets heads */
    uint32_t free_head;
    uint32_t used;
};

struct ratelimit {
    uint64_t interval_us; /* T: cost of one event */
    uint64_t window_us;   /* limit * T: the burst */
    uint32_t per_stripe;  /* entries per stripe */
    uint32_t nbuckets;    /* index slots per stripe */
    unsigned char hkey[crypto_shorthash_siphashx24_KEYBYTES];
    bool disabled;
    struct stripe stripes[STRIPES];
};

static void stripe_cleanup(struct stripe *s)
{
    free(s->pool);
    free(s->index);
    pthread_mutex_destroy(&s->mu);
}

enum parley_err ratelimit_new(unsigned limit, uint32_t period_s, size_t max_keys,
                              struct ratelimit **out)
{
    if (!out || period_s == 0)
        return PARLEY_ERR_INVAL;
    if (max_keys == 0)
        max_keys = DEFAULT_MAX_KEYS;
    if (max_keys > (size_t)UINT32_MAX / 2)
        return PARLEY_ERR_INVAL;
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return PARLEY_ERR_NOMEM;
    rl->disabled = limit == 0;
    if (!rl->disabled) {
        uint64_t period_us = (uint64_t)period_s * US;
        rl->interval_us = (period_us + limit - 1) / limit; /* rounded up: never laxer */
        rl->window_us = rl->interval_us * limit;
    }
    rl->per_stripe = (uint32_t)((max_keys + STRIPES - 1) / STRIPES);
    rl->nbuckets = rl->per_stripe;
    randombytes_buf(rl->hkey, sizeof rl->hkey);
    size_t i;
    for (i = 0; i < STRIPES; i++) {
        struct stripe *s = &rl->stripes[i];
        if (pthread_mutex_init(&s->mu, NULL) != 0)
            goto fail;
        s->pool = calloc(rl->per_stripe, sizeof *s->pool);
        s->index = malloc(rl->nbuckets * sizeof *s->index);
        if (!s->pool || !s->index) {
            i++;
            goto fail;
        }
        for (uint32_t b = 0; b < rl->nbuckets; b++)
            s->index[b] = NIL;
        for (uint32_t e = 0; e < rl->per_stripe; e++)
            s->pool[e].next = e + 1 < rl->per_stripe ? e + 1 : NIL;
        s->free_head = 0;
    }
    *out = rl;
    return PARLEY_OK;
fail:
    while (i-- > 0)
        stripe_cleanup(&rl->stripes[i]);
    free(rl);
    return PARLEY_ERR_NOMEM;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < STRIPES; i++)
        stripe_cleanup(&rl->stripes[i]);
    sodium_memzero(rl, sizeof *rl);
    free(rl);
}

static void unlink_entry(struct stripe *s, uint32_t idx)
{
    uint32_t *p = &s->index[s->pool[idx].bucket];
    while (*p != idx)
        p = &s->pool[*p].next;
    *p = s->pool[idx].next;
    s->pool[idx].next = s->free_head;
    s->free_head = idx;
    s->used--;
}

/* Make room in a full stripe: drop every full bucket (tat <= now), or else the fullest
 * one (smallest tat: the key that has spent the least). */
static void evict(const struct ratelimit *rl, struct stripe *s, uint64_t now)
{
    uint32_t best = NIL;
    uint64_t best_tat = 0;
    for (uint32_t b = 0; b < rl->nbuckets; b++) {
        uint32_t i = s->index[b];
        while (i != NIL) {
            uint32_t next = s->pool[i].next;
            uint64_t tat = s->pool[i].tat;
            if (tat <= now) {
                unlink_entry(s, i);
            } else if (best == NIL || tat < best_tat) {
                best = i;
                best_tat = tat;
            }
            i = next;
        }
    }
    if (s->free_head == NIL && best != NIL)
        unlink_entry(s, best);
}

void ratelimit_digest(const struct ratelimit *rl, const char *key, uint8_t d[DIGEST_BYTES])
{
    memset(d, 0, DIGEST_BYTES);
    if (!rl || rl->disabled)
        return;
    crypto_shorthash_siphashx24(d, (const unsigned char *)(key ? key : ""), key ? strlen(key) : 0,
                                rl->hkey);
}

bool ratelimit_take_at(struct ratelimit *rl, const char *key, uint64_t now_us,
                       uint32_t *retry_after_s)
{
    uint8_t d[DIGEST_BYTES];
    ratelimit_digest(rl, key, d);
    return ratelimit_take_digest(rl, d, now_us, retry_after_s);
}

bool ratelimit_take_digest(struct ratelimit *rl, const uint8_t d[DIGEST_BYTES], uint64_t now_us,
                           uint32_t *retry_after_s)
{
    if (!rl || rl->disabled)
        return true;
    uint64_t h;
    memcpy(&h, d, sizeof h);
    struct stripe *s = &rl->stripes[h % STRIPES];
    uint32_t bucket = (uint32_t)((h / STRIPES) % rl->nbuckets);
    bool allowed;

    pthread_mutex_lock(&s->mu);
    uint32_t i = s->index[bucket];
    while (i != NIL && memcmp(s->pool[i].key, d, DIGEST_BYTES) != 0)
        i = s->pool[i].next;
    if (i == NIL) {
        if (s->free_head == NIL)
            evict(rl, s, now_us);
        i = s->free_head;
        s->free_head = s->pool[i].next;
        s->used++;
        struct entry *e = &s->pool[i];
        memcpy(e->key, d, DIGEST_BYTES);
        e->tat = now_us;
        e->bucket = bucket;
        e->next = s->index[bucket];
        s->index[bucket] = i;
    }
    struct entry *e = &s->pool[i];
    uint64_t tat = e->tat > now_us ? e->tat : now_us;
    uint64_t next_tat = tat + rl->interval_us;
    if (next_tat - now_us <= rl->window_us) {
        e->tat = next_tat;
        allowed = true;
    } else {
        allowed = false;
        if (retry_after_s) {
            uint64_t wait = next_tat - now_us - rl->window_us;
            uint64_t sec = (wait + US - 1) / US;
            *retry_after_s = sec == 0 ? 1 : sec > UINT32_MAX ? UINT32_MAX : (uint32_t)sec;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return allowed;
}

bool ratelimit_take(struct ratelimit *rl, const char *key, uint32_t *retry_after_s)
{
    return ratelimit_take_at(rl, key, clock_mono_us(), retry_after_s);
}

size_t ratelimit_size(struct ratelimit *rl)
{
    size_t n = 0;
    if (!rl)
        return 0;
    for (size_t i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&rl->stripes[i].mu);
        n += rl->stripes[i].used;
        pthread_mutex_unlock(&rl->stripes[i].mu);
    }
    return n;
}
