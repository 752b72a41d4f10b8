/*
 * seen_filter.h — a Bloom filter of the client message ids the queue remembers
 * (sent_msg_ids), so that a send with a new id, nearly every send, skips the lookup
 * that would find nothing. "Absent" is certain; "maybe" means: ask the database.
 *
 * Blocked layout: a key's 4 bits all fall in one 64-byte block (one cache line), chosen
 * by the key's 64-bit hash. At 16 bits per key the false-positive rate is about 0.3 %
 * (test_seen_filter measures it).
 *
 * It grows without a pause (a scalable Bloom filter): when the newest layer holds the
 * keys it was sized for, new keys go to a new layer SEEN_FILTER_GROWTH times larger, and
 * a lookup asks every layer. Each full layer adds its ~0.3 %, so after SEEN_FILTER_LAYERS
 * layers the newest one takes every further key and its rate rises. Keys are never
 * removed: a purged id stays a "maybe" until the filter is rebuilt from the table, as
 * one layer (sqlite_queue.c does that after a purge once the filter has grown).
 *
 * Not thread-safe: the caller serialises (sqlite_queue.c holds its mutex).
 */
#ifndef PARLEY_SERVER_STORE_SEEN_FILTER_H
#define PARLEY_SERVER_STORE_SEEN_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"

#define SEEN_FILTER_BITS_PER_KEY 16
#define SEEN_FILTER_MIN_KEYS 4096                /* 8 KiB: the smallest filter */
#define SEEN_FILTER_MAX_KEYS (128 * 1024 * 1024) /* 256 MiB: the largest layer */
#define SEEN_FILTER_LAYERS 8                     /* the first and up to 7 grown ones */
#define SEEN_FILTER_GROWTH 4                     /* each new layer this many times larger */

struct seen_layer {
    uint64_t *words; /* n_blocks * 8 */
    size_t n_blocks; /* a power of two */
    size_t capacity; /* keys it was sized for */
    size_t n_keys;   /* keys added to it (re-adds count again) */
};

struct seen_filter {
    struct seen_layer layer[SEEN_FILTER_LAYERS]; /* oldest first */
    size_t n_layers;  /* 0: the filter could not be allocated */
    uint64_t seed[2]; /* random per filter: ids are chosen by clients */
};

/* Size an empty filter for at least `keys` keys (clamped to the limits above).
 * PARLEY_ERR_NOMEM leaves f empty; an empty filter answers "maybe" to everything and
 * ignores keys. */
PARLEY_WUR enum parley_err seen_filter_init(struct seen_filter *f, size_t keys);
void seen_filter_free(struct seen_filter *f);
/* Whether f has outgrown the size it was built for (it has grown layers, or its one
 * layer is over capacity): a rebuild for the keys it should hold makes it lean again. */
bool seen_filter_full(const struct seen_filter *f);
/* The hash of a key: a sender device id (text) and a client message id. */
uint64_t seen_filter_hash(const struct seen_filter *f, const char *device, const uint8_t *msgid,
                          size_t msgid_len);
void seen_filter_add(struct seen_filter *f, uint64_t h);
/* false: certainly never added. */
bool seen_filter_maybe(const struct seen_filter *f, uint64_t h);
/* Start loading the cache lines seen_filter_maybe(f, h) will read: a caller with many
 * keys to look up prefetches them all first, so their cache misses overlap. */
void seen_filter_prefetch(const struct seen_filter *f, uint64_t h);

#endif
