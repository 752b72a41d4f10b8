/*
 * sender_key.c — per-sender group chains (see parley/sender_key.h for the construction and
 * wire formats). Invariants: states live in sodium_malloc'd memory; decrypt verifies the
 * signature first, then derives keys into a staging area and commits only after the AEAD
 * tag has verified; skipped[] is oldest first (FIFO eviction), a separate
 * sodium_malloc'd array grown on demand and released when empty; used keys are deleted.
 */
#include <string.h>

#include <sodium.h>

#include "crypto_int.h"
#include "parley/kdf.h"
#include "parley/sender_key.h"

static const uint8_t msg_nonce[CRYPTO_MSG_NONCE_BYTES] = "parley-sender-key-v1";
#define HDR_BYTES 9U
#define SIG_BYTES 64U

struct sk_skipped {
    uint32_t it;
    uint8_t mk[32];
};

struct parley_sender_key {
    uint32_t key_id;
    uint32_t iteration; /* index of the next message key the chain yields */
    uint8_t ck[32];
    uint8_t sig_pk[32];
    uint8_t sig_sk[64];
    uint8_t has_sk;
    uint32_t nskipped;
    uint32_t cap;               /* capacity of skipped[] (grows on demand) */
    struct sk_skipped *skipped; /* sodium_allocarray'd; NULL while empty */
};

static struct parley_sender_key *state_alloc(void)
{
    struct parley_sender_key *s = sodium_malloc(sizeof *s);
    if (s)
        sodium_memzero(s, sizeof *s);
    return s;
}

void parley_sender_key_free(struct parley_sender_key *sk)
{
    if (sk)
        sodium_free(sk->skipped);
    sodium_free(sk);
}

/* Capacity for `want` stored keys (capped at the maximum); nothing else changes. */
static enum parley_err reserve(struct parley_sender_key *s, uint32_t want)
{
    struct sk_skipped *p;
    uint32_t cap;

    if (want > PARLEY_SENDER_KEY_MAX_STORED_KEYS)
        want = PARLEY_SENDER_KEY_MAX_STORED_KEYS;
    if (want <= s->cap)
        return PARLEY_OK;
    cap = s->cap ? s->cap * 2 : 16;
    if (cap < want)
        cap = want;
    if (cap > PARLEY_SENDER_KEY_MAX_STORED_KEYS)
        cap = PARLEY_SENDER_KEY_MAX_STORED_KEYS;
    p = sodium_allocarray(cap, sizeof *p);
    if (!p)
        return PARLEY_ERR_NOMEM;
    sodium_memzero(p, (size_t)cap * sizeof *p);
    if (s->nskipped)
        memcpy(p, s->skipped, (size_t)s->nskipped * sizeof *p);
    sodium_free(s->skipped);
    s->skipped = p;
    s->cap = cap;
    return PARLEY_OK;
}

static void release_if_empty(struct parley_sender_key *s)
{
    if (!s->nskipped && s->skipped) {
        sodium_free(s->skipped);
        s->skipped = NULL;
        s->cap = 0;
    }
}

uint32_t parley_sender_key_id(const struct parley_sender_key *sk)
{
    return sk ? sk->key_id : 0;
}

enum parley_err parley_sender_key_new(struct parley_sender_key **out)
{
    struct parley_sender_key *s;

    if (!out)
        return PARLEY_ERR_INVAL;
    *out = NULL;
    s = state_alloc();
    if (!s)
        return PARLEY_ERR_NOMEM;
    s->key_id = randombytes_random();
    randombytes_buf(s->ck, sizeof s->ck);
    crypto_sign_keypair(s->sig_pk, s->sig_sk);
    s->has_sk = 1;
    *out = s;
    return PARLEY_OK;
}

enum parley_err parley_sender_key_distribution(const struct parley_sender_key *sk,
                                               uint8_t out[PARLEY_SENDER_KEY_DISTRIBUTION_BYTES])
{
    if (!out)
        return PARLEY_ERR_INVAL;
    sodium_memzero(out, PARLEY_SENDER_KEY_DISTRIBUTION_BYTES);
    if (!sk)
        return PARLEY_ERR_INVAL;
    out[0] = PARLEY_SENDER_KEY_VERSION;
    store32_be(out + 1, sk->key_id);
    store32_be(out + 5, sk->iteration);
    memcpy(out + 9, sk->ck, 32);
    memcpy(out + 41, sk->sig_pk, 32);
    return PARLEY_OK;
}

/* 1 if pk decodes to an Ed25519 point usable for verification (not small order) */
static int sig_pk_ok(const uint8_t pk[32])
{
    uint8_t x[32];
    int ok = crypto_sign_ed25519_pk_to_curve25519(x, pk) == 0;
    sodium_memzero(x, sizeof x);
    return ok;
}

enum parley_err parley_sender_key_from_distribution(struct parley_sender_key **out,
                                                    const uint8_t *in, size_t len)
{
    struct parley_sender_key *s;

    if (!out)
        return PARLEY_ERR_INVAL;
    *out = NULL;
    if (!in || len != PARLEY_SENDER_KEY_DISTRIBUTION_BYTES || in[0] != PARLEY_SENDER_KEY_VERSION ||
        !sig_pk_ok(in + 41))
        return PARLEY_ERR_INVAL;
    s = state_alloc();
    if (!s)
        return PARLEY_ERR_NOMEM;
    s->key_id = load32_be(in + 1);
    s->iteration = load32_be(in + 5);
    memcpy(s->ck, in + 9, 32);
    memcpy(s->sig_pk, in + 41, 32);
    *out = s;
    return PARLEY_OK;
}

/*
 * AEAD key and nonce of a message: the key is the single-use message key mk itself and the
 * nonce a constant (Double Ratchet rev. 1 Sec. 5.2 allows "fixed to a constant" because
 * each mk is used once). XChaCha20 first derives a subkey HChaCha20(mk, nonce[0..15]), so
 * the constant also separates this use of mk from any other. Cannot fail.
 */
static enum parley_err msg_keys(uint8_t keys[CRYPTO_MSG_KEYS_BYTES], const uint8_t mk[32])
{
    memcpy(keys, mk, CRYPTO_MSG_KEY_BYTES);
    memcpy(keys + CRYPTO_MSG_KEY_BYTES, msg_nonce, CRYPTO_MSG_NONCE_BYTES);
    return PARLEY_OK;
}

enum parley_err parley_sender_key_encrypt(struct parley_sender_key *sk, uint8_t *out,
                                          size_t out_cap, size_t *out_len, const uint8_t *pt,
                                          size_t pt_len)
{
    uint8_t mk[32], ck[32], keys[CRYPTO_MSG_KEYS_BYTES];
    unsigned long long clen = 0;
    size_t total;
    enum parley_err rc = PARLEY_ERR_CRYPTO;

    if (out_len)
        *out_len = 0;
    if (!sk || !out || !out_len || (!pt && pt_len) ||
        pt_len > PARLEY_SENDER_KEY_MAX_PLAINTEXT_BYTES)
        return PARLEY_ERR_INVAL;
    total = pt_len + PARLEY_SENDER_KEY_OVERHEAD_BYTES;
    if (out_cap < total) {
        sodium_memzero(out, out_cap);
        return PARLEY_ERR_INVAL;
    }
    sodium_memzero(out, total);
    if (!sk->has_sk)
        return PARLEY_ERR_INVAL;
    if (sk->iteration == UINT32_MAX)
        return PARLEY_ERR_LIMIT;
    out[0] = PARLEY_SENDER_KEY_VERSION;
    store32_be(out + 1, sk->key_id);
    store32_be(out + 5, sk->iteration);
    memcpy(ck, sk->ck, 32);
    kdf_ck_step(mk, ck);
    if (msg_keys(keys, mk) != PARLEY_OK)
        goto out;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + HDR_BYTES, &clen, pt, pt_len, out, HDR_BYTES,
                                               NULL, keys + CRYPTO_MSG_KEY_BYTES, keys);
    if (crypto_sign_detached(out + HDR_BYTES + clen, NULL, out, HDR_BYTES + clen, sk->sig_sk) != 0)
        goto out;
    memcpy(sk->ck, ck, 32);
    sk->iteration++;
    *out_len = total;
    rc = PARLEY_OK;
out:
    if (rc != PARLEY_OK)
        sodium_memzero(out, total);
    sodium_memzero(mk, sizeof mk);
    sodium_memzero(ck, sizeof ck);
    sodium_memzero(keys, sizeof keys);
    return rc;
}

enum parley_err parley_sender_key_message_id(uint32_t *key_id, const uint8_t *ct, size_t ct_len)
{
    if (!key_id)
        return PARLEY_ERR_INVAL;
    *key_id = 0;
    if (!ct || ct_len < PARLEY_SENDER_KEY_OVERHEAD_BYTES || ct[0] != PARLEY_SENDER_KEY_VERSION ||
        ct_len - PARLEY_SENDER_KEY_OVERHEAD_BYTES > PARLEY_SENDER_KEY_MAX_PLAINTEXT_BYTES)
        return PARLEY_ERR_INVAL;
    *key_id = load32_be(ct + 1);
    return PARLEY_OK;
}

static enum parley_err open_with(uint8_t *out, size_t *out_len, const uint8_t *ct, size_t ct_len,
                                 const uint8_t mk[32])
{
    uint8_t keys[CRYPTO_MSG_KEYS_BYTES];
    unsigned long long mlen = 0;
    enum parley_err rc = PARLEY_ERR_CRYPTO;

    if (msg_keys(keys, mk) == PARLEY_OK &&
        crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, ct + HDR_BYTES,
                                                   ct_len - HDR_BYTES - SIG_BYTES, ct, HDR_BYTES,
                                                   keys + CRYPTO_MSG_KEY_BYTES, keys) == 0) {
        *out_len = (size_t)mlen;
        rc = PARLEY_OK;
    }
    sodium_memzero(keys, sizeof keys);
    return rc;
}

enum parley_err parley_sender_key_decrypt(struct parley_sender_key *sk, uint8_t *out,
                                          size_t out_cap, size_t *out_len, const uint8_t *ct,
                                          size_t ct_len)
{
    struct sk_skipped *pend = NULL;
    uint8_t ck[32], mk[32];
    uint32_t key_id, it, i, nskip;
    enum parley_err rc;

    if (out_len)
        *out_len = 0;
    if (!out || !out_len)
        return PARLEY_ERR_INVAL;
    if (out_cap)
        sodium_memzero(out, out_cap);
    if (!sk || parley_sender_key_message_id(&key_id, ct, ct_len) != PARLEY_OK ||
        out_cap < ct_len - PARLEY_SENDER_KEY_OVERHEAD_BYTES || key_id != sk->key_id)
        return PARLEY_ERR_INVAL;
    if (crypto_sign_verify_detached(ct + ct_len - SIG_BYTES, ct, ct_len - SIG_BYTES, sk->sig_pk) !=
        0)
        return PARLEY_ERR_CRYPTO;
    it = load32_be(ct + 5);

    if (it < sk->iteration) {
        rc = PARLEY_ERR_CRYPTO; /* used, expired or never stored */
        for (i = 0; i < sk->nskipped; i++) {
            if (sk->skipped[i].it != it)
                continue;
            rc = open_with(out, out_len, ct, ct_len, sk->skipped[i].mk);
            if (rc == PARLEY_OK) {
                sodium_memzero(&sk->skipped[i], sizeof sk->skipped[i]);
                memmove(&sk->skipped[i], &sk->skipped[i + 1],
                        (size_t)(sk->nskipped - i - 1) * sizeof sk->skipped[0]);
                sk->nskipped--;
                sodium_memzero(&sk->skipped[sk->nskipped], sizeof sk->skipped[0]);
                release_if_empty(sk);
            }
            break;
        }
        goto out;
    }
    if (it - sk->iteration > PARLEY_SENDER_KEY_MAX_SKIP) {
        rc = PARLEY_ERR_LIMIT;
        goto out;
    }
    if (it == UINT32_MAX) {
        rc = PARLEY_ERR_LIMIT;
        goto out;
    }
    nskip = it - sk->iteration;
    if (nskip) {
        pend = sodium_allocarray(nskip, sizeof *pend);
        if (!pend) {
            rc = PARLEY_ERR_NOMEM;
            goto out;
        }
    }
    memcpy(ck, sk->ck, 32);
    for (i = 0; i < nskip; i++) {
        pend[i].it = sk->iteration + i;
        kdf_ck_step(pend[i].mk, ck);
    }
    kdf_ck_step(mk, ck);
    rc = open_with(out, out_len, ct, ct_len, mk);
    if (rc == PARLEY_OK && nskip)
        rc = reserve(sk, sk->nskipped + nskip);
    if (rc != PARLEY_OK)
        goto out;
    /* commit */
    if (nskip) {
        if (sk->nskipped + nskip > PARLEY_SENDER_KEY_MAX_STORED_KEYS) {
            uint32_t drop = sk->nskipped + nskip - PARLEY_SENDER_KEY_MAX_STORED_KEYS;
            if (drop > sk->nskipped)
                drop = sk->nskipped;
            sodium_memzero(sk->skipped, (size_t)drop * sizeof sk->skipped[0]);
            memmove(sk->skipped, sk->skipped + drop,
                    (size_t)(sk->nskipped - drop) * sizeof sk->skipped[0]);
            sk->nskipped -= drop;
            sodium_memzero(sk->skipped + sk->nskipped, (size_t)drop * sizeof sk->skipped[0]);
        }
        memcpy(sk->skipped + sk->nskipped, pend, (size_t)nskip * sizeof *pend);
        sk->nskipped += nskip;
    }
    memcpy(sk->ck, ck, 32);
    sk->iteration = it + 1;
out:
    if (rc != PARLEY_OK) {
        sodium_memzero(out, out_cap);
        *out_len = 0;
    }
    sodium_free(pend);
    sodium_memzero(ck, sizeof ck);
    sodium_memzero(mk, sizeof mk);
    return rc;
}

size_t parley_sender_key_serialized_len(const struct parley_sender_key *sk)
{
    if (!sk)
        return 0;
    return PARLEY_SENDER_KEY_SERIALIZED_MIN_BYTES +
           (size_t)sk->nskipped * PARLEY_SENDER_KEY_SKIPPED_ENTRY_BYTES;
}

enum parley_err parley_sender_key_serialize(const struct parley_sender_key *sk, uint8_t *out,
                                            size_t out_cap, size_t *out_len)
{
    size_t need, pos = 0;
    uint32_t i;

    if (out_len)
        *out_len = 0;
    if (!sk || !out || !out_len)
        return PARLEY_ERR_INVAL;
    need = parley_sender_key_serialized_len(sk);
    if (out_cap < need) {
        sodium_memzero(out, out_cap);
        return PARLEY_ERR_INVAL;
    }
    out[pos++] = PARLEY_SENDER_KEY_VERSION;
    out[pos++] = sk->has_sk;
    store32_be(out + pos, sk->key_id), pos += 4;
    store32_be(out + pos, sk->iteration), pos += 4;
    memcpy(out + pos, sk->ck, 32), pos += 32;
    memcpy(out + pos, sk->sig_pk, 32), pos += 32;
    memcpy(out + pos, sk->sig_sk, 64), pos += 64;
    store32_be(out + pos, sk->nskipped), pos += 4;
    for (i = 0; i < sk->nskipped; i++) {
        store32_be(out + pos, sk->skipped[i].it), pos += 4;
        memcpy(out + pos, sk->skipped[i].mk, 32), pos += 32;
    }
    *out_len = pos;
    return PARLEY_OK;
}

/* 1 if the Ed25519 secret key (seed || pk) regenerates exactly pk */
static int sign_pair_ok(const uint8_t sk[64], const uint8_t pk[32])
{
    uint8_t pk2[32], sk2[64];
    int ok = crypto_sign_seed_keypair(pk2, sk2, sk) == 0 && sodium_memcmp(pk2, pk, 32) == 0 &&
             sodium_memcmp(sk2, sk, 64) == 0;
    sodium_memzero(sk2, sizeof sk2);
    return ok;
}

enum parley_err parley_sender_key_deserialize(struct parley_sender_key **out, const uint8_t *in,
                                              size_t len)
{
    struct parley_sender_key *s;
    size_t pos = 0;
    uint32_t i, n;

    if (!out)
        return PARLEY_ERR_INVAL;
    *out = NULL;
    if (!in || len < PARLEY_SENDER_KEY_SERIALIZED_MIN_BYTES || in[0] != PARLEY_SENDER_KEY_VERSION ||
        in[1] > 1)
        return PARLEY_ERR_INVAL;
    n = load32_be(in + PARLEY_SENDER_KEY_SERIALIZED_MIN_BYTES - 4);
    if (n > PARLEY_SENDER_KEY_MAX_STORED_KEYS ||
        len != PARLEY_SENDER_KEY_SERIALIZED_MIN_BYTES +
                   (size_t)n * PARLEY_SENDER_KEY_SKIPPED_ENTRY_BYTES)
        return PARLEY_ERR_INVAL;
    s = state_alloc();
    if (!s)
        return PARLEY_ERR_NOMEM;
    pos = 1;
    s->has_sk = in[pos++];
    s->key_id = load32_be(in + pos), pos += 4;
    s->iteration = load32_be(in + pos), pos += 4;
    memcpy(s->ck, in + pos, 32), pos += 32;
    memcpy(s->sig_pk, in + pos, 32), pos += 32;
    memcpy(s->sig_sk, in + pos, 64), pos += 64;
    if (reserve(s, n) != PARLEY_OK) {
        parley_sender_key_free(s);
        return PARLEY_ERR_NOMEM;
    }
    s->nskipped = load32_be(in + pos), pos += 4;
    for (i = 0; i < s->nskipped; i++) {
        s->skipped[i].it = load32_be(in + pos), pos += 4;
        memcpy(s->skipped[i].mk, in + pos, 32), pos += 32;
    }
    /* the signing key must be usable and, for an own state, match its secret half */
    if (!sig_pk_ok(s->sig_pk) || (s->has_sk && !sign_pair_ok(s->sig_sk, s->sig_pk)) ||
        (!s->has_sk && !sodium_is_zero(s->sig_sk, 64))) {
        parley_sender_key_free(s);
        return PARLEY_ERR_INVAL;
    }
    *out = s;
    return PARLEY_OK;
}
