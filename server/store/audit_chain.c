/* audit_chain.c — the audit log's hash chain; see audit_chain.h. */
#include "audit_chain.h"

#include <sodium.h>
#include <string.h>

static void put_u64(crypto_hash_sha256_state *st, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    crypto_hash_sha256_update(st, b, sizeof b);
}

static void put_str(crypto_hash_sha256_state *st, const char *s)
{
    size_t n = strnlen(s, STORE_AUDIT_FIELD_MAX + 1);
    uint8_t b[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    crypto_hash_sha256_update(st, b, sizeof b);
    crypto_hash_sha256_update(st, (const unsigned char *)s, n);
}

void audit_chain_hash(const uint8_t prev[STORE_AUDIT_HASH_BYTES],
                      const struct store_audit_entry *e, uint8_t out[STORE_AUDIT_HASH_BYTES])
{
    static const char tag[] = "parley-audit-v1";
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, prev, STORE_AUDIT_HASH_BYTES);
    crypto_hash_sha256_update(&st, (const unsigned char *)tag, sizeof tag - 1);
    put_u64(&st, (uint64_t)e->seq);
    put_u64(&st, (uint64_t)e->at);
    put_str(&st, e->actor);
    put_str(&st, e->kind);
    put_str(&st, e->subject);
    put_str(&st, e->detail);
    crypto_hash_sha256_final(&st, out);
}
