/* block_pool.c — blocks of one size kept for reuse; see block_pool.h. */
#include "block_pool.h"

#include <stdlib.h>
#include <string.h>

void block_pool_init(struct block_pool *p, size_t size, size_t max_free)
{
    pthread_mutex_init(&p->mu, NULL);
    p->free = NULL;
    p->n = 0;
    p->max = max_free;
    p->size = size < sizeof(void *) ? sizeof(void *) : size;
}

/* The link stored in a free block's first bytes (memcpy: blocks have no declared type). */
static void *next_of(void *b)
{
    void *next;
    memcpy(&next, b, sizeof next);
    return next;
}

void block_pool_cleanup(struct block_pool *p)
{
    while (p->free) {
        void *b = p->free;
        p->free = next_of(b);
        free(b);
    }
    p->n = 0;
    pthread_mutex_destroy(&p->mu);
}

void *block_pool_get(struct block_pool *p)
{
    pthread_mutex_lock(&p->mu);
    void *b = p->free;
    if (b) {
        p->free = next_of(b);
        p->n--;
    }
    pthread_mutex_unlock(&p->mu);
    return b ? b : malloc(p->size);
}

void block_pool_put(struct block_pool *p, void *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->n < p->max) {
        memcpy(b, &p->free, sizeof p->free);
        p->free = b;
        p->n++;
        b = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    free(b);
}
