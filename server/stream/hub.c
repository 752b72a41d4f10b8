/*
 * hub.c — see hub.h. Keys are device ids and user ids (random, so a plain FNV hash
 * spreads them; an attacker cannot choose them: they come from the store).
 *
 * Two tables of the same shape: d (device id -> connection, holds the references) and
 * u (user id -> connections, one node per registered connection, no references). A
 * connection is in u exactly while it is in d; both change under the device shard's
 * lock, the user shard's lock taken inside it.
 */
#include "hub.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "stream_int.h"

#define HUB_SHARDS 16
#define HUB_BUCKETS 256 /* per shard */

struct hub_node {
    struct hub_node *next;
    struct sconn *c;
};

struct hub_shard {
    pthread_mutex_t mu;
    struct hub_node *b[HUB_BUCKETS];
    size_t n;
};

struct hub {
    struct hub_shard d[HUB_SHARDS]; /* by device id */
    struct hub_shard u[HUB_SHARDS]; /* by user id */
};

static uint32_t hash(const char *k)
{
    uint32_t h = 2166136261u;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 16777619u;
    return h;
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

static void free_table(struct hub_shard *t, bool unref)
{
    for (size_t i = 0; i < HUB_SHARDS; i++) {
        for (size_t j = 0; j < HUB_BUCKETS; j++) {
            struct hub_node *n = t[i].b[j];
            while (n) {
                struct hub_node *next = n->next;
                if (unref)
                    sconn_unref(n->c);
                free(n);
                n = next;
            }
        }
        pthread_mutex_destroy(&t[i].mu);
    }
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    free_table(h->u, false);
    free_table(h->d, true);
    free(h);
}

static struct hub_node **slot(struct hub_shard *t, const char *key, struct hub_shard **sh)
{
    uint32_t x = hash(key);
    *sh = &t[x % HUB_SHARDS];
    return &(*sh)->b[(x / HUB_SHARDS) % HUB_BUCKETS];
}

/* Under the device shard's lock: put node un (for c) into the user index. */
static void user_add(struct hub *h, struct hub_node *un, struct sconn *c)
{
    struct hub_shard *sh;
    struct hub_node **head = slot(h->u, c->user_id, &sh);
    un->c = c;
    pthread_mutex_lock(&sh->mu);
    un->next = *head;
    *head = un;
    sh->n++;
    pthread_mutex_unlock(&sh->mu);
}

/* Under the device shard's lock: unlink c's node from the user index and return it
 * (the caller frees it after unlocking), or NULL. */
static struct hub_node *user_remove(struct hub *h, const struct sconn *c)
{
    struct hub_shard *sh;
    struct hub_node **p = slot(h->u, c->user_id, &sh);
    struct hub_node *gone = NULL;
    pthread_mutex_lock(&sh->mu);
    for (; *p; p = &(*p)->next) {
        if ((*p)->c == c) {
            gone = *p;
            *p = gone->next;
            sh->n--;
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return gone;
}

enum parley_err hub_register(struct hub *h, struct sconn *c, struct sconn **old)
{
    struct hub_shard *sh;
    struct hub_node **head = slot(h->d, c->device_id, &sh);
    struct hub_node *dn = malloc(sizeof *dn), *un = malloc(sizeof *un), *spare = NULL;
    *old = NULL;
    if (!dn || !un) {
        free(dn);
        free(un);
        return PARLEY_ERR_NOMEM;
    }
    pthread_mutex_lock(&sh->mu);
    for (struct hub_node *n = *head; n; n = n->next) {
        if (strcmp(n->c->device_id, c->device_id) == 0) {
            *old = n->c; /* the hub's reference goes to the caller */
            spare = user_remove(h, n->c);
            sconn_ref(c);
            n->c = c;
            user_add(h, un, c);
            pthread_mutex_unlock(&sh->mu);
            free(dn);
            free(spare);
            return PARLEY_OK;
        }
    }
    sconn_ref(c);
    dn->c = c;
    dn->next = *head;
    *head = dn;
    sh->n++;
    user_add(h, un, c);
    pthread_mutex_unlock(&sh->mu);
    return PARLEY_OK;
}

void hub_unregister(struct hub *h, struct sconn *c)
{
    struct hub_shard *sh;
    struct hub_node **p = slot(h->d, c->device_id, &sh);
    struct hub_node *gone = NULL, *ugone = NULL;
    pthread_mutex_lock(&sh->mu);
    for (; *p; p = &(*p)->next) {
        if ((*p)->c == c) {
            gone = *p;
            *p = gone->next;
            sh->n--;
            ugone = user_remove(h, c);
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    free(ugone);
    if (gone) {
        sconn_unref(gone->c);
        free(gone);
    }
}

struct sconn *hub_lookup(struct hub *h, const char *device_id)
{
    struct hub_shard *sh;
    struct hub_node **head = slot(h->d, device_id, &sh);
    struct sconn *c = NULL;
    pthread_mutex_lock(&sh->mu);
    for (struct hub_node *n = *head; n; n = n->next) {
        if (strcmp(n->c->device_id, device_id) == 0) {
            c = n->c;
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
    struct hub_node **head = slot(h->u, user_id, &sh);
    struct sconn **v = NULL;
    size_t n = 0;
    *out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&sh->mu);
    for (struct hub_node *x = *head; x; x = x->next)
        if (strcmp(x->c->user_id, user_id) == 0)
            n++;
    if (n) {
        v = malloc(n * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&sh->mu);
            return PARLEY_ERR_NOMEM;
        }
        n = 0;
        for (struct hub_node *x = *head; x; x = x->next) {
            if (strcmp(x->c->user_id, user_id) == 0) {
                sconn_ref(x->c);
                v[n++] = x->c;
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
