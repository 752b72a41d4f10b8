/* seen_filter.c — blocked Bloom filter of remembered message ids; see seen_filter.h. */
#include "seen_filter.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define WORDS_PER_BLOCK 8 /* 512 bits: one cache line */
#define PROBES 4          /* bits per key, 9 bits of the hash each */

static bool layer_init(struct seen_layer *l, size_t keys)
{
    if (keys < SEEN_FILTER_MIN_KEYS)
        keys = SEEN_FILTER_MIN_KEYS;
    if (keys > SEEN_FILTER_MAX_KEYS)
        keys = SEEN_FILTER_MAX_KEYS;
    size_t blocks = 1;
    while (blocks * WORDS_PER_BLOCK * 64 < keys * SEEN_FILTER_BITS_PER_KEY)
        blocks *= 2;
    l->words = calloc(blocks * WORDS_PER_BLOCK, sizeof *l->words);
    if (!l->words)
        return false;
    l->n_blocks = blocks;
    l->capacity = keys;
    l->n_keys = 0;
    return true;
}

enum parley_err seen_filter_init(struct seen_filter *f, size_t keys)
{
    memset(f, 0, sizeof *f);
    if (!layer_init(&f->layer[0], keys))
        return PARLEY_ERR_NOMEM;
    f->n_layers = 1;
    randombytes_buf(f->seed, sizeof f->seed);
    return PARLEY_OK;
}

void seen_filter_free(struct seen_filter *f)
{
    for (size_t i = 0; i < f->n_layers; i++)
        free(f->layer[i].words);
    memset(f, 0, sizeof *f);
}

bool seen_filter_full(const struct seen_filter *f)
{
    return f->n_layers > 1 || (f->n_layers == 1 && f->layer[0].n_keys > f->layer[0].capacity);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v * 0x9E3779B97F4A7C15ull;
    h = (h << 27 | h >> 37) * 0xBF58476D1CE4E5B9ull;
    return h;
}

static uint64_t mix_bytes(uint64_t h, const uint8_t *p, size_t n)
{
    uint64_t v;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&v, p, 8);
        h = mix(h, v);
    }
    v = (uint64_t)n << 56;
    for (size_t i = 0; i < n; i++) /* the tail (none for ids: 32 and 16 bytes) */
        v ^= (uint64_t)p[i] << (8 * i);
    return mix(h, v);
}

/* Not a MAC: the seed keeps clients from choosing ids that share bits on purpose, and
 * a collision only costs a database lookup. */
uint64_t seen_filter_hash(const struct seen_filter *f, const char *device, const uint8_t *msgid,
                          size_t msgid_len)
{
    uint64_t h = mix_bytes(f->seed[0], (const uint8_t *)device, strlen(device));
    h = mix_bytes(h ^ f->seed[1], msgid, msgid_len);
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    return h ^ h >> 29;
}

/* The block: the hash's low bits (at most 22 of them at the largest size); the bits
 * in it: 4 x 9 bits from bit 28 up. */
static uint64_t *block_of(const struct seen_layer *l, uint64_t h)
{
    return l->words + (h & (l->n_blocks - 1)) * WORDS_PER_BLOCK;
}

/* The layer new keys go to: the newest, or a new one once it holds its capacity (if
 * there is room for a layer and memory for it; else the newest takes more). */
static struct seen_layer *layer_for_add(struct seen_filter *f)
{
    struct seen_layer *top = &f->layer[f->n_layers - 1];
    if (top->n_keys < top->capacity || f->n_layers == SEEN_FILTER_LAYERS ||
        top->capacity == SEEN_FILTER_MAX_KEYS)
        return top;
    if (!layer_init(&f->layer[f->n_layers], top->capacity * SEEN_FILTER_GROWTH))
        return top;
    return &f->layer[f->n_layers++];
}

void seen_filter_add(struct seen_filter *f, uint64_t h)
{
    if (!f->n_layers)
        return; /* never allocated: it answers "maybe", so it must not learn keys */
    struct seen_layer *l = layer_for_add(f);
    uint64_t *b = block_of(l, h);
    for (int i = 0; i < PROBES; i++) {
        unsigned bit = (unsigned)(h >> (28 + 9 * i)) & 511u;
        b[bit >> 6] |= 1ull << (bit & 63);
    }
    l->n_keys++;
}

void seen_filter_prefetch(const struct seen_filter *f, uint64_t h)
{
    for (size_t i = 0; i < f->n_layers; i++)
        __builtin_prefetch(block_of(&f->layer[i], h));
}

static bool layer_maybe(const struct seen_layer *l, uint64_t h)
{
    const uint64_t *b = block_of(l, h);
    for (int i = 0; i < PROBES; i++) {
        unsigned bit = (unsigned)(h >> (28 + 9 * i)) & 511u;
        if (!(b[bit >> 6] & 1ull << (bit & 63)))
            return false;
    }
    return true;
}

bool seen_filter_maybe(const struct seen_filter *f, uint64_t h)
{
    if (!f->n_layers)
        return true;
    for (size_t i = f->n_layers; i-- > 0;) /* newest first: recent ids are retried most */
        if (layer_maybe(&f->layer[i], h))
            return true;
    return false;
}
