/*
 * audit_chain.h — the hash chain of the audit log (POLICY P26), as pure functions so
 * the store (which appends) and the verifier (audit.c) compute exactly the same bytes.
 *
 * hash(entry) = SHA-256(prev_hash || canonical(entry)), prev_hash of the first entry is
 * 32 zero bytes, and canonical(entry) is
 *     "parley-audit-v1" || u64be(seq) || u64be(at) ||
 *     u32be(len) || actor || u32be(len) || kind || u32be(len) || subject ||
 *     u32be(len) || detail
 * (length-prefixed, so no two different entries encode the same). The sequence number
 * is inside the hash, so reordering or renumbering entries breaks the chain, and each
 * entry's prev_hash names its predecessor, so removing one breaks the next.
 *
 * Any thread; no allocation.
 */
#ifndef PARLEY_SERVER_STORE_AUDIT_CHAIN_H
#define PARLEY_SERVER_STORE_AUDIT_CHAIN_H

#include <stdint.h>
#include "store_privacy.h"

/* out = hash of e given prev (e->prev_hash and e->hash are not read). */
void audit_chain_hash(const uint8_t prev[STORE_AUDIT_HASH_BYTES],
                      const struct store_audit_entry *e, uint8_t out[STORE_AUDIT_HASH_BYTES]);

#endif
