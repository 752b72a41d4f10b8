/*
 * hub.c — see hub.h. Keys are device ids (random, so a plain FNV hash spreads them; an
 * attacker cannot choose them: they come from the store).
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
    struct hub_shard s[HUB_SHARDS];
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
    for (size_t i = 0; i < HUB_SHARDS; i++)
        pthread_mutex_init(&h->s[i].mu, NULL);
    *out = h;
    return PARLEY_OK;
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < HUB_SHARDS; i++) {
        for (size_t j = 0; j < HUB_BUCKETS; j++) {
            struct hub_node *n = h->s[i].b[j];
            while (n) {
                struct hub_node *next = n->next;
                sconn_unref(n->c);
                free(n);
                n = next;
            }
        }
        pthread_mutex_destroy(&h->s[i].mu);
    }
    free(h);
}

static struct hub_node **slot(struct hub *h, const char *dev, struct hub_shard **sh)
{
    uint32_t x = hash(dev);
    *sh = &h->s[x % HUB_SHARDS];
    return &(*sh)->b[(x / HUB_SHARDS) % HUB_BUCKETS];
}

enum parley_err hub_register(struct hub *h, struct sconn *c, struct sconn **old)
{
    struct hub_shard *sh;
    struct hub_node **head = slot(h, c->device_id, &sh);
    *old = NULL;
    pthread_mutex_lock(&sh->mu);
    for (struct hub_node *n = *head; n; n = n->next) {
        if (strcmp(n->c->device_id, c->device_id) == 0) {
            *old = n->c; /* the hub's reference goes to the caller */
            sconn_ref(c);
            n->c = c;
            pthread_mutex_unlock(&sh->mu);
            return PARLEY_OK;
        }
    }
    struct hub_node *n = malloc(sizeof *n);
    if (!n) {
        pthread_mutex_unlock(&sh->mu);
        return PARLEY_ERR_NOMEM;
    }
    sconn_ref(c);
    n->c = c;
    n->next = *head;
    *head = n;
    sh->n++;
    pthread_mutex_unlock(&sh->mu);
    return PARLEY_OK;
}

void hub_unregister(struct hub *h, struct sconn *c)
{
    struct hub_shard *sh;
    struct hub_node **p = slot(h, c->device_id, &sh);
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
    if (gone) {
        sconn_unref(gone->c);
        free(gone);
    }
}

struct sconn *hub_lookup(struct hub *h, const char *device_id)
{
    struct hub_shard *sh;
    struct hub_node **head = slot(h, device_id, &sh);
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

size_t hub_size(struct hub *h)
{
    size_t n = 0;
    for (size_t i = 0; i < HUB_SHARDS; i++) {
        pthread_mutex_lock(&h->s[i].mu);
        n += h->s[i].n;
        pthread_mutex_unlock(&h->s[i].mu);
    }
    return n;
}
