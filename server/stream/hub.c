/*
 * hub.c — see hub.h. Keys are device ids and user ids (random, so str_hash, a word-wise FNV,
 * spreads them; an attacker cannot choose them: they come from the store).
 *
 * Two tables of the same shape: d (device id -> connection, holds the references) and
 * u (user id -> connections, linked through the connections themselves, no references). A
 * connection is in u exactly while it is in d; both change under the device shard's
 * lock, the user shard's lock taken inside it.
 */
#include "hub.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "str.h"
#include "stream_int.h"

#define HUB_SHARDS 16
#define HUB_BUCKETS 256 /* per shard */

/* The chains are intrusive (c->hub_next for the device index, c->hub_user_next for the
 * user index): no node allocation per connection, registration cannot run out of
 * memory, and an idle stream stays small (issue #5). */
enum hub_index { HUB_DEV, HUB_USER };

struct hub_shard {
    pthread_mutex_t mu;
    struct sconn *b[HUB_BUCKETS];
    size_t n;
};

struct hub {
    struct hub_shard d[HUB_SHARDS]; /* by device id */
    struct hub_shard u[HUB_SHARDS]; /* by user id */
};

static uint32_t hash(const char *k)
{
    uint64_t h = str_hash(STR_HASH_INIT, k);
    return (uint32_t)(h ^ h >> 32);
}

static struct sconn **next_of(struct sconn *c, enum hub_index ix)
{
    return ix == HUB_DEV ? &c->hub_next : &c->hub_user_next;
}

enum parley_err hub_new(struct hub **out)
{
    struct hub *h = calloc(1, sizeof *h);
    if (!h)
        return PARLEY_ERR_NOMEM;
    for (size_t i = 0; i < HUB_SHARDS; i++) {
        pthread_mutex_init(&h->d[i].mu, NULL);
        pthread_mutex_init(&h->u[i].mu, NULL);
    }
    *out = h;
    return PARLEY_OK;
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < HUB_SHARDS; i++) {
        for (size_t j = 0; j < HUB_BUCKETS; j++) {
            struct sconn *c = h->d[i].b[j];
            while (c) {
                struct sconn *next = c->hub_next;
                sconn_unref(c); /* the user index holds no references */
                c = next;
            }
        }
        pthread_mutex_destroy(&h->d[i].mu);
        pthread_mutex_destroy(&h->u[i].mu);
    }
    free(h);
}

static struct sconn **slot(struct hub_shard *t, const char *key, struct hub_shard **sh)
{
    uint32_t x = hash(key);
    *sh = &t[x % HUB_SHARDS];
    return &(*sh)->b[(x / HUB_SHARDS) % HUB_BUCKETS];
}

/* Unlink c from the chain at p (a shard's bucket, under its lock); false if absent. */
static bool chain_remove(struct sconn **p, const struct sconn *c, enum hub_index ix)
{
    for (; *p; p = next_of(*p, ix)) {
        if (*p == c) {
            *p = *next_of(*p, ix);
            return true;
        }
    }
    return false;
}

/* Under the device shard's lock: put c into the user index. */
static void user_add(struct hub *h, struct sconn *c)
{
    struct hub_shard *sh;
    struct sconn **head = slot(h->u, c->user_id, &sh);
    pthread_mutex_lock(&sh->mu);
    c->hub_user_next = *head;
    *head = c;
    sh->n++;
    pthread_mutex_unlock(&sh->mu);
}

/* Under the device shard's lock: take c out of the user index. */
static void user_remove(struct hub *h, const struct sconn *c)
{
    struct hub_shard *sh;
    struct sconn **p = slot(h->u, c->user_id, &sh);
    pthread_mutex_lock(&sh->mu);
    if (chain_remove(p, c, HUB_USER))
        sh->n--;
    pthread_mutex_unlock(&sh->mu);
}

enum parley_err hub_register(struct hub *h, struct sconn *c, struct sconn **old)
{
    struct hub_shard *sh;
    struct sconn **p = slot(h->d, c->device_id, &sh);
    *old = NULL;
    sconn_ref(c);
    pthread_mutex_lock(&sh->mu);
    for (; *p; p = &(*p)->hub_next) {
        if (strcmp((*p)->device_id, c->device_id) == 0) {
            *old = *p; /* the hub's reference goes to the caller */
            user_remove(h, *old);
            c->hub_next = (*old)->hub_next;
            *p = c;
            user_add(h, c);
            pthread_mutex_unlock(&sh->mu);
            return PARLEY_OK;
        }
    }
    /* p is the end of the chain: append. */
    c->hub_next = NULL;
    *p = c;
    sh->n++;
    user_add(h, c);
    pthread_mutex_unlock(&sh->mu);
    return PARLEY_OK;
}

void hub_unregister(struct hub *h, struct sconn *c)
{
    struct hub_shard *sh;
    struct sconn **p = slot(h->d, c->device_id, &sh);
    bool gone;
    pthread_mutex_lock(&sh->mu);
    gone = chain_remove(p, c, HUB_DEV);
    if (gone) {
        sh->n--;
        user_remove(h, c);
    }
    pthread_mutex_unlock(&sh->mu);
    if (gone)
        sconn_unref(c);
}

struct sconn *hub_lookup(struct hub *h, const char *device_id)
{
    struct hub_shard *sh;
    struct sconn **head = slot(h->d, device_id, &sh);
    struct sconn *c = NULL;
    pthread_mutex_lock(&sh->mu);
    for (struct sconn *x = *head; x; x = x->hub_next) {
        if (strcmp(x->device_id, device_id) == 0) {
            c = x;
            sconn_ref(c);
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return c;
}

enum parley_err hub_user_connections(struct hub *h, const char *user_id, struct sconn ***out,
                                     size_t *n_out)
{
    struct hub_shard *sh;
    struct sconn **head = slot(h->u, user_id, &sh);
    struct sconn **v = NULL;
    size_t n = 0;
    *out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&sh->mu);
    for (struct sconn *x = *head; x; x = x->hub_user_next)
        if (strcmp(x->user_id, user_id) == 0)
            n++;
    if (n) {
        v = malloc(n * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&sh->mu);
            return PARLEY_ERR_NOMEM;
        }
        n = 0;
        for (struct sconn *x = *head; x; x = x->hub_user_next) {
            if (strcmp(x->user_id, user_id) == 0) {
                sconn_ref(x);
                v[n++] = x;
            }
        }
    }
    pthread_mutex_unlock(&sh->mu);
    *out = v;
    *n_out = n;
    return PARLEY_OK;
}

size_t hub_size(struct hub *h)
{
    size_t n = 0;
    for (size_t i = 0; i < HUB_SHARDS; i++) {
        pthread_mutex_lock(&h->d[i].mu);
        n += h->d[i].n;
        pthread_mutex_unlock(&h->d[i].mu);
    }
    return n;
}
