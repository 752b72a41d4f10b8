/*
 * block_pool.h — blocks of one size kept for reuse, shared by threads (one mutex).
 *
 * For objects made on one thread and freed on another, a batch at a time: glibc's
 * per-thread caches hold a few chunks of a size, so such a flow takes malloc's and
 * free's slow paths both ways. A pool keeps up to max_free blocks; past that, a block
 * given back is freed. A free block's first bytes hold the list link.
 */
#ifndef PARLEY_COMMON_BLOCK_POOL_H
#define PARLEY_COMMON_BLOCK_POOL_H

#include <pthread.h>
#include <stddef.h>

struct block_pool {
    pthread_mutex_t mu;
    void *free;        /* free blocks, linked through their first word */
    size_t n, max;     /* free blocks kept, and at most */
    size_t size;       /* of every block, at least sizeof(void *) */
};

/* An empty pool of blocks of size bytes keeping at most max_free of them. */
void block_pool_init(struct block_pool *p, size_t size, size_t max_free);
/* Free the blocks kept; every block taken must have been given back or freed. */
void block_pool_cleanup(struct block_pool *p);
/* A block of p->size bytes, contents undefined; NULL when out of memory. */
void *block_pool_get(struct block_pool *p);
/* Give b (from block_pool_get) back. Accepts NULL. */
void block_pool_put(struct block_pool *p, void *b);

#endif
