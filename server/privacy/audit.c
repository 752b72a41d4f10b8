/* audit.c — the operator audit log; see audit.h. */
#include "audit.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "master_key.h"
#include "store/audit_chain.h"

#define AUDIT_KDF_ID 1
static const char audit_kdf_ctx[crypto_kdf_CONTEXTBYTES + 1] = "parl_aud";

_Static_assert(MASTER_KEY_BYTES == crypto_kdf_KEYBYTES, "master key size");

void audit_subject(const unsigned char *master_key, const char *user_id,
                   char out[AUDIT_SUBJECT_LEN + 1])
{
    unsigned char k[crypto_auth_hmacsha256_KEYBYTES];
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_kdf_derive_from_key(k, sizeof k, AUDIT_KDF_ID, audit_kdf_ctx, master_key);
    crypto_auth_hmacsha256(mac, (const unsigned char *)user_id, strlen(user_id), k);
    out[0] = 'u';
    out[1] = '_';
    sodium_bin2hex(out + 2, AUDIT_SUBJECT_LEN - 1, mac, (AUDIT_SUBJECT_LEN - 2) / 2);
    sodium_memzero(k, sizeof k);
    sodium_memzero(mac, sizeof mac);
}

static bool copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap);
    if (n >= cap)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

enum parley_err audit_record(struct store *s, const unsigned char *master_key, const char *actor,
                             const char *kind, const char *user_id, const char *detail,
                             int64_t now, int64_t *seq_out)
{
    struct store_audit_entry e;
    memset(&e, 0, sizeof e);
    if (!s || !master_key || !actor || !kind)
        return PARLEY_ERR_INVAL;
    if (!copy_field(e.actor, sizeof e.actor, actor) || !copy_field(e.kind, sizeof e.kind, kind) ||
        !copy_field(e.detail, sizeof e.detail, detail ? detail : ""))
        return PARLEY_ERR_INVAL;
    if (user_id)
        audit_subject(master_key, user_id, e.subject);
    e.at = now;
    enum parley_err err = store_audit_append(s, &e);
    if (!err && seq_out)
        *seq_out = e.seq;
    return err;
}

#define VERIFY_PAGE 500

enum parley_err audit_verify(struct store *s, size_t *n_out, uint8_t head[STORE_AUDIT_HASH_BYTES],
                             int64_t *bad_seq, char *reason, size_t reason_cap)
{
    uint8_t prev[STORE_AUDIT_HASH_BYTES] = {0};
    uint8_t h[STORE_AUDIT_HASH_BYTES];
    int64_t expect = 1, after = 0;
    size_t total = 0;
    for (;;) {
        struct store_audit_entry *v = NULL;
        size_t n = 0;
        enum parley_err err = store_audit_list(s, after, VERIFY_PAGE, &v, &n);
        if (err)
            return err;
        for (size_t i = 0; i < n; i++) {
            const struct store_audit_entry *e = &v[i];
            const char *why = NULL;
            if (e->seq != expect)
                why = "sequence gap or reordering (an entry is missing or renumbered)";
            else if (sodium_memcmp(e->prev_hash, prev, sizeof prev) != 0)
                why = "prev_hash does not match the previous entry (removed or reordered)";
            else {
                audit_chain_hash(prev, e, h);
                if (sodium_memcmp(h, e->hash, sizeof h) != 0)
                    why = "hash does not match the entry's content (edited)";
            }
            if (why) {
                *bad_seq = e->seq;
                snprintf(reason, reason_cap, "%s", why);
                free(v);
                return PARLEY_ERR_CRYPTO;
            }
            memcpy(prev, e->hash, sizeof prev);
            expect++;
            total++;
            after = e->seq;
        }
        free(v);
        if (n < VERIFY_PAGE)
            break;
    }
    *n_out = total;
    memcpy(head, prev, sizeof prev);
    return PARLEY_OK;
}
