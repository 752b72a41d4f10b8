/*
 * ratchet.c — the Double Ratchet (Signal spec rev. 1) with parley's KDFs and
 * XChaCha20-Poly1305; see parley/ratchet.h for the wire format and limits.
 *
 * Invariants:
 *  - the session lives in sodium_malloc'd memory and is wiped by sodium_free;
 *  - decrypt never mutates the session until the AEAD tag has verified: the would-be new
 *    state (root key, chain keys, counters, next DH pair, keys to remember for skipped
 *    messages) is computed into a staging area first and committed only on success, so a
 *    forged or replayed message cannot advance, desynchronise or exhaust the session;
 *  - skipped[] is ordered oldest first (eviction is FIFO); each message key is deleted
 *    when used, which is what makes replays fail. It is a separate sodium_malloc'd array
 *    that grows on demand up to PARLEY_RATCHET_MAX_STORED_KEYS entries and is released
 *    when it empties, so an idle session costs one page, not 144 KiB;
 *  - every temporary secret on the stack is wiped before returning, on every path.
 */
#include <string.h>

#include <sodium.h>

#include "crypto_int.h"
#include "parley/kdf.h"
#include "parley/ratchet.h"

#define F_HAS_DHR 0x01U
#define F_HAS_CKS 0x02U
#define F_HAS_CKR 0x04U
#define F_PENDING_PREKEY 0x08U
#define F_INITIATOR 0x10U
#define F_ALL (F_HAS_DHR | F_HAS_CKS | F_HAS_CKR | F_PENDING_PREKEY | F_INITIATOR)

static const uint8_t info_root[] = "parley-ratchet-root-v1";
static const uint8_t msg_nonce[CRYPTO_MSG_NONCE_BYTES] = "parley-ratchet-msg-v1";

struct skipped_key {
    uint8_t dh[32];
    uint32_t n;
    uint32_t step;
    uint8_t mk[32];
};

struct parley_ratchet {
    uint8_t rk[32];
    uint8_t dhs_sk[32];
    uint8_t dhs_pk[32];
    uint8_t dhr[32];
    uint8_t cks[32];
    uint8_t ckr[32];
    uint8_t ad[64]; /* IK_initiator || IK_responder */
    uint8_t prekey_hdr[PARLEY_X3DH_HEADER_BYTES];
    uint32_t ns, nr, pn;
    uint32_t step; /* number of DH ratchet steps taken on receipt */
    uint32_t flags;
    uint32_t nskipped;
    uint32_t cap;                /* capacity of skipped[] (grows on demand) */
    struct skipped_key *skipped; /* sodium_allocarray'd; NULL while empty */
};

static struct parley_ratchet *session_alloc(void)
{
    struct parley_ratchet *s = sodium_malloc(sizeof *s);
    if (s)
        sodium_memzero(s, sizeof *s);
    return s;
}

void parley_ratchet_free(struct parley_ratchet *s)
{
    if (s)
        sodium_free(s->skipped);
    sodium_free(s); /* wipes; NULL is a no-op */
}

/* Make room for `want` stored keys (capped at the maximum). No other state changes. */
static enum parley_err reserve(struct parley_ratchet *s, uint32_t want)
{
    struct skipped_key *p;
    uint32_t cap;

    if (want > PARLEY_RATCHET_MAX_STORED_KEYS)
        want = PARLEY_RATCHET_MAX_STORED_KEYS;
    if (want <= s->cap)
        return PARLEY_OK;
    cap = s->cap ? s->cap * 2 : 16;
    if (cap < want)
        cap = want;
    if (cap > PARLEY_RATCHET_MAX_STORED_KEYS)
        cap = PARLEY_RATCHET_MAX_STORED_KEYS;
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

/* Release the array once it is empty. */
static void release_if_empty(struct parley_ratchet *s)
{
    if (!s->nskipped && s->skipped) {
        sodium_free(s->skipped);
        s->skipped = NULL;
        s->cap = 0;
    }
}

void ratchet_set_prekey_header(struct parley_ratchet *s, const uint8_t *x3dh_hdr)
{
    memcpy(s->prekey_hdr, x3dh_hdr, PARLEY_X3DH_HEADER_BYTES);
    s->flags |= F_PENDING_PREKEY;
}

/* KDF_RK: (rk, ck) = HKDF(salt = rk, ikm = dh_out, info_root, 64) */
static enum parley_err kdf_rk(uint8_t rk_out[32], uint8_t ck_out[32], const uint8_t rk[32],
                              const uint8_t dh_out[32])
{
    uint8_t okm[64];
    enum parley_err rc;

    rc = parley_hkdf_sha256(okm, sizeof okm, rk, 32, dh_out, 32, info_root, sizeof info_root - 1);
    if (rc == PARLEY_OK) {
        memcpy(rk_out, okm, 32);
        memcpy(ck_out, okm + 32, 32);
    }
    sodium_memzero(okm, sizeof okm);
    return rc;
}

/* DH then KDF_RK; fails (PARLEY_ERR_CRYPTO) on a low-order peer key. */
static enum parley_err dh_ratchet_step(uint8_t rk_out[32], uint8_t ck_out[32], const uint8_t rk[32],
                                       const uint8_t our_sk[32], const uint8_t their_pk[32])
{
    uint8_t dh[32];
    enum parley_err rc = PARLEY_ERR_CRYPTO;

    if (crypto_scalarmult(dh, our_sk, their_pk) == 0)
        rc = kdf_rk(rk_out, ck_out, rk, dh);
    sodium_memzero(dh, sizeof dh);
    return rc;
}

/* message keys from a message key seed */
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

enum parley_err parley_ratchet_new_initiator(struct parley_ratchet **out,
                                             const uint8_t sk[PARLEY_RATCHET_SECRET_BYTES],
                                             const uint8_t ik_initiator[32],
                                             const uint8_t ik_responder[32],
                                             const uint8_t peer_ratchet_pk[32])
{
    struct parley_ratchet *s = NULL;
    enum parley_err rc;

    if (!out)
        return PARLEY_ERR_INVAL;
    *out = NULL;
    if (!sk || !ik_initiator || !ik_responder || !peer_ratchet_pk)
        return PARLEY_ERR_INVAL;
    s = session_alloc();
    if (!s)
        return PARLEY_ERR_NOMEM;
    memcpy(s->ad, ik_initiator, 32);
    memcpy(s->ad + 32, ik_responder, 32);
    crypto_box_keypair(s->dhs_pk, s->dhs_sk);
    memcpy(s->dhr, peer_ratchet_pk, 32);
    rc = dh_ratchet_step(s->rk, s->cks, sk, s->dhs_sk, s->dhr);
    if (rc != PARLEY_OK) {
        parley_ratchet_free(s);
        return rc;
    }
    s->flags = F_HAS_DHR | F_HAS_CKS | F_INITIATOR;
    *out = s;
    return PARLEY_OK;
}

enum parley_err parley_ratchet_new_responder(struct parley_ratchet **out,
                                             const uint8_t sk[PARLEY_RATCHET_SECRET_BYTES],
                                             const uint8_t ik_initiator[32],
                                             const uint8_t ik_responder[32],
                                             const uint8_t own_ratchet_sk[32],
                                             const uint8_t own_ratchet_pk[32])
{
    struct parley_ratchet *s;

    if (!out)
        return PARLEY_ERR_INVAL;
    *out = NULL;
    if (!sk || !ik_initiator || !ik_responder || !own_ratchet_sk || !own_ratchet_pk)
        return PARLEY_ERR_INVAL;
    s = session_alloc();
    if (!s)
        return PARLEY_ERR_NOMEM;
    memcpy(s->ad, ik_initiator, 32);
    memcpy(s->ad + 32, ik_responder, 32);
    memcpy(s->dhs_sk, own_ratchet_sk, 32);
    memcpy(s->dhs_pk, own_ratchet_pk, 32);
    memcpy(s->rk, sk, 32);
    s->flags = 0;
    *out = s;
    return PARLEY_OK;
}

static size_t header_len(const struct parley_ratchet *s)
{
    return 2 + ((s->flags & F_PENDING_PREKEY) ? PARLEY_X3DH_HEADER_BYTES : 0) +
           PARLEY_RATCHET_HEADER_BYTES;
}

size_t parley_ratchet_ciphertext_len(const struct parley_ratchet *s, size_t pt_len)
{
    if (!s || pt_len > PARLEY_RATCHET_MAX_PLAINTEXT_BYTES)
        return 0;
    return header_len(s) + pt_len + PARLEY_RATCHET_TAG_BYTES;
}

enum parley_err parley_ratchet_peer_identity(const struct parley_ratchet *s, uint8_t out[32])
{
    if (!out)
        return PARLEY_ERR_INVAL;
    memset(out, 0, 32);
    if (!s)
        return PARLEY_ERR_INVAL;
    memcpy(out, (s->flags & F_INITIATOR) ? s->ad + 32 : s->ad, 32);
    return PARLEY_OK;
}

#define AD_MAX                                                                                     \
    (64U + 2U + PARLEY_X3DH_HEADER_BYTES + PARLEY_RATCHET_HEADER_BYTES +                           \
     PARLEY_RATCHET_MAX_AD_BYTES)

/* full AD = IK_A || IK_B || header bytes || caller AD */
static size_t build_ad(uint8_t full[AD_MAX], const struct parley_ratchet *s, const uint8_t *hdr,
                       size_t hdr_len, const uint8_t *ad, size_t ad_len)
{
    memcpy(full, s->ad, 64);
    memcpy(full + 64, hdr, hdr_len);
    if (ad_len)
        memcpy(full + 64 + hdr_len, ad, ad_len);
    return 64 + hdr_len + ad_len;
}

enum parley_err parley_ratchet_encrypt(struct parley_ratchet *s, uint8_t *out, size_t out_cap,
                                       size_t *out_len, const uint8_t *pt, size_t pt_len,
                                       const uint8_t *ad, size_t ad_len)
{
    uint8_t mk[32], next_ck[32], keys[CRYPTO_MSG_KEYS_BYTES], full_ad[AD_MAX];
    size_t hlen, fal, pos;
    unsigned long long clen = 0;
    enum parley_err rc = PARLEY_ERR_INVAL;

    if (out_len)
        *out_len = 0;
    if (!s || !out || !out_len || (!pt && pt_len) || (!ad && ad_len) ||
        pt_len > PARLEY_RATCHET_MAX_PLAINTEXT_BYTES || ad_len > PARLEY_RATCHET_MAX_AD_BYTES)
        return PARLEY_ERR_INVAL;
    hlen = header_len(s);
    if (out_cap < hlen + pt_len + PARLEY_RATCHET_TAG_BYTES) {
        sodium_memzero(out, out_cap);
        return PARLEY_ERR_INVAL;
    }
    sodium_memzero(out, hlen + pt_len + PARLEY_RATCHET_TAG_BYTES);
    if (!(s->flags & F_HAS_CKS))
        return PARLEY_ERR_INVAL;
    if (s->ns == UINT32_MAX)
        return PARLEY_ERR_LIMIT;

    pos = 0;
    out[pos++] = PARLEY_RATCHET_VERSION;
    if (s->flags & F_PENDING_PREKEY) {
        out[pos++] = PARLEY_RATCHET_TYPE_PREKEY;
        memcpy(out + pos, s->prekey_hdr, PARLEY_X3DH_HEADER_BYTES);
        pos += PARLEY_X3DH_HEADER_BYTES;
    } else {
        out[pos++] = PARLEY_RATCHET_TYPE_NORMAL;
    }
    memcpy(out + pos, s->dhs_pk, 32);
    store32_be(out + pos + 32, s->pn);
    store32_be(out + pos + 36, s->ns);
    pos += PARLEY_RATCHET_HEADER_BYTES;

    if (parley_kdf_ck(mk, next_ck, s->cks) != PARLEY_OK || msg_keys(keys, mk) != PARLEY_OK) {
        rc = PARLEY_ERR_CRYPTO;
        goto out;
    }
    fal = build_ad(full_ad, s, out, hlen, ad, ad_len);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + hlen, &clen, pt, pt_len, full_ad, fal, NULL,
                                               keys + CRYPTO_MSG_KEY_BYTES, keys);
    memcpy(s->cks, next_ck, 32);
    s->ns++;
    *out_len = hlen + (size_t)clen;
    rc = PARLEY_OK;
out:
    if (rc != PARLEY_OK)
        sodium_memzero(out, hlen + pt_len + PARLEY_RATCHET_TAG_BYTES);
    sodium_memzero(mk, sizeof mk);
    sodium_memzero(next_ck, sizeof next_ck);
    sodium_memzero(keys, sizeof keys);
    return rc;
}

/* ---- decrypt ---- */

struct parsed {
    const uint8_t *hdr; /* start of message (header bytes for the AD) */
    size_t hdr_len;
    const uint8_t *dh;
    uint32_t pn, n;
    const uint8_t *ct;
    size_t ct_len;
};

static enum parley_err parse_message(struct parsed *p, const uint8_t *msg, size_t len)
{
    size_t pos = 2;

    if (len < 2 || msg[0] != PARLEY_RATCHET_VERSION)
        return PARLEY_ERR_INVAL;
    if (msg[1] == PARLEY_RATCHET_TYPE_PREKEY) {
        struct parley_x3dh_header h;
        if (len < 2 + PARLEY_X3DH_HEADER_BYTES ||
            parley_x3dh_header_parse(&h, msg + 2, PARLEY_X3DH_HEADER_BYTES) != PARLEY_OK)
            return PARLEY_ERR_INVAL;
        pos += PARLEY_X3DH_HEADER_BYTES;
    } else if (msg[1] != PARLEY_RATCHET_TYPE_NORMAL) {
        return PARLEY_ERR_INVAL;
    }
    if (len < pos + PARLEY_RATCHET_HEADER_BYTES + PARLEY_RATCHET_TAG_BYTES)
        return PARLEY_ERR_INVAL;
    p->hdr = msg;
    p->dh = msg + pos;
    p->pn = load32_be(msg + pos + 32);
    p->n = load32_be(msg + pos + 36);
    pos += PARLEY_RATCHET_HEADER_BYTES;
    p->hdr_len = pos;
    p->ct = msg + pos;
    p->ct_len = len - pos;
    if (p->ct_len - PARLEY_RATCHET_TAG_BYTES > PARLEY_RATCHET_MAX_PLAINTEXT_BYTES)
        return PARLEY_ERR_INVAL;
    return PARLEY_OK;
}

enum parley_err parley_ratchet_prekey_header(struct parley_x3dh_header *hdr, const uint8_t *msg,
                                             size_t len)
{
    struct parsed p;

    if (!hdr)
        return PARLEY_ERR_INVAL;
    memset(hdr, 0, sizeof *hdr);
    if (!msg || parse_message(&p, msg, len) != PARLEY_OK || msg[1] != PARLEY_RATCHET_TYPE_PREKEY)
        return PARLEY_ERR_INVAL;
    return parley_x3dh_header_parse(hdr, msg + 2, PARLEY_X3DH_HEADER_BYTES);
}

static enum parley_err open_with(uint8_t *out, size_t *out_len, const struct parsed *p,
                                 const uint8_t mk[32], const uint8_t *full_ad, size_t fal)
{
    uint8_t keys[CRYPTO_MSG_KEYS_BYTES];
    unsigned long long mlen = 0;
    enum parley_err rc = PARLEY_ERR_CRYPTO;

    if (msg_keys(keys, mk) == PARLEY_OK &&
        crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, p->ct, p->ct_len, full_ad, fal,
                                                   keys + CRYPTO_MSG_KEY_BYTES, keys) == 0) {
        *out_len = (size_t)mlen;
        rc = PARLEY_OK;
    }
    sodium_memzero(keys, sizeof keys);
    return rc;
}

static void remove_skipped(struct parley_ratchet *s, uint32_t i)
{
    sodium_memzero(&s->skipped[i], sizeof s->skipped[i]);
    if (i + 1 < s->nskipped)
        memmove(&s->skipped[i], &s->skipped[i + 1],
                (size_t)(s->nskipped - i - 1) * sizeof s->skipped[0]);
    s->nskipped--;
    sodium_memzero(&s->skipped[s->nskipped], sizeof s->skipped[0]);
    release_if_empty(s);
}

/* Drop the `count` oldest entries. */
static void evict_oldest(struct parley_ratchet *s, uint32_t count)
{
    if (count > s->nskipped)
        count = s->nskipped;
    if (!count)
        return;
    sodium_memzero(s->skipped, (size_t)count * sizeof s->skipped[0]);
    memmove(s->skipped, s->skipped + count, (size_t)(s->nskipped - count) * sizeof s->skipped[0]);
    s->nskipped -= count;
    sodium_memzero(s->skipped + s->nskipped, (size_t)count * sizeof s->skipped[0]);
}

/* Drop keys stored more than PARLEY_RATCHET_SKIPPED_MAX_AGE steps ago (they are the oldest). */
static void expire_skipped(struct parley_ratchet *s)
{
    uint32_t i = 0;

    while (i < s->nskipped && s->step - s->skipped[i].step > PARLEY_RATCHET_SKIPPED_MAX_AGE)
        i++;
    evict_oldest(s, i);
}

/*
 * Derive into pend[] the message keys for counters from..to-1 of chain ck (advanced in
 * place), tagged with dh.
 */
static void stage_skips(struct skipped_key *pend, uint32_t *npend, uint8_t ck[32],
                        const uint8_t dh[32], uint32_t from, uint32_t to, uint32_t step)
{
    uint32_t i;

    for (i = from; i < to; i++) {
        struct skipped_key *k = &pend[(*npend)++];
        kdf_ck_step(k->mk, ck);
        memcpy(k->dh, dh, 32);
        k->n = i;
        k->step = step;
    }
}

/* Append pend[]; the caller has reserved capacity for min(nskipped + npend, max). */
static void commit_skips(struct parley_ratchet *s, const struct skipped_key *pend, uint32_t npend)
{
    if (!npend)
        return;
    if (s->nskipped + npend > PARLEY_RATCHET_MAX_STORED_KEYS)
        evict_oldest(s, s->nskipped + npend - PARLEY_RATCHET_MAX_STORED_KEYS);
    memcpy(s->skipped + s->nskipped, pend, (size_t)npend * sizeof *pend);
    s->nskipped += npend;
}

/* the staged new state of a decrypt */
struct stage {
    uint8_t rk[32];
    uint8_t ckr[32];
    uint8_t cks[32];
    uint8_t dhs_sk[32];
    uint8_t dhs_pk[32];
    uint8_t mk[32];
};

enum parley_err parley_ratchet_decrypt(struct parley_ratchet *s, uint8_t *out, size_t out_cap,
                                       size_t *out_len, const uint8_t *ct, size_t ct_len,
                                       const uint8_t *ad, size_t ad_len)
{
    struct parsed p;
    struct stage st;
    uint8_t full_ad[AD_MAX];
    struct skipped_key *pend = NULL;
    uint32_t npend = 0, i, n_old_skip = 0, n_new_skip;
    size_t fal, pt_len;
    bool new_chain;
    enum parley_err rc = PARLEY_ERR_INVAL;

    if (out_len)
        *out_len = 0;
    if (!out || !out_len)
        return PARLEY_ERR_INVAL;
    if (out_cap)
        sodium_memzero(out, out_cap);
    if (!s || !ct || (!ad && ad_len) || ad_len > PARLEY_RATCHET_MAX_AD_BYTES)
        return PARLEY_ERR_INVAL;
    if (parse_message(&p, ct, ct_len) != PARLEY_OK)
        return PARLEY_ERR_INVAL;
    pt_len = p.ct_len - PARLEY_RATCHET_TAG_BYTES;
    if (out_cap < pt_len)
        return PARLEY_ERR_INVAL;
    memset(&st, 0, sizeof st);
    fal = build_ad(full_ad, s, p.hdr, p.hdr_len, ad, ad_len);

    /* 1. a key remembered for a skipped message */
    for (i = 0; i < s->nskipped; i++) {
        if (s->skipped[i].n == p.n && memcmp(s->skipped[i].dh, p.dh, 32) == 0) {
            rc = open_with(out, out_len, &p, s->skipped[i].mk, full_ad, fal);
            if (rc == PARLEY_OK) {
                remove_skipped(s, i);
                s->flags &= ~F_PENDING_PREKEY;
            }
            goto out;
        }
    }

    new_chain = !(s->flags & F_HAS_DHR) || !(s->flags & F_HAS_CKR) || memcmp(p.dh, s->dhr, 32) != 0;
    /* An initiator has DHr = the peer's signed prekey but no receiving chain yet: a message
     * under that same key would be the responder's, which always ratchets first. */
    if (!new_chain) {
        /* 2. the current receiving chain */
        if (p.n < s->nr) {
            rc = PARLEY_ERR_CRYPTO; /* already used: replay or expired */
            goto out;
        }
        if (p.n - s->nr > PARLEY_RATCHET_MAX_SKIP) {
            rc = PARLEY_ERR_LIMIT;
            goto out;
        }
        n_new_skip = p.n - s->nr;
        memcpy(st.ckr, s->ckr, 32);
        if (n_new_skip) {
            pend = sodium_allocarray(n_new_skip, sizeof *pend);
            if (!pend) {
                rc = PARLEY_ERR_NOMEM;
                goto out;
            }
            stage_skips(pend, &npend, st.ckr, s->dhr, s->nr, p.n, s->step);
        }
        kdf_ck_step(st.mk, st.ckr);
        rc = open_with(out, out_len, &p, st.mk, full_ad, fal);
        if (rc == PARLEY_OK)
            rc = reserve(s, s->nskipped + npend);
        if (rc != PARLEY_OK)
            goto out;
        commit_skips(s, pend, npend);
        memcpy(s->ckr, st.ckr, 32);
        s->nr = p.n + 1;
        s->flags &= ~F_PENDING_PREKEY;
        goto out;
    }

    /* 3. a new ratchet public key: finish the old receiving chain, DH-ratchet, new chain */
    if ((s->flags & F_HAS_CKR) && p.pn > s->nr) {
        if (p.pn - s->nr > PARLEY_RATCHET_MAX_SKIP) {
            rc = PARLEY_ERR_LIMIT;
            goto out;
        }
        n_old_skip = p.pn - s->nr;
    }
    if (p.n > PARLEY_RATCHET_MAX_SKIP) {
        rc = PARLEY_ERR_LIMIT;
        goto out;
    }
    n_new_skip = p.n;
    if (n_old_skip + n_new_skip) {
        pend = sodium_allocarray(n_old_skip + n_new_skip, sizeof *pend);
        if (!pend) {
            rc = PARLEY_ERR_NOMEM;
            goto out;
        }
    }
    if (n_old_skip) {
        uint8_t ck[32];
        memcpy(ck, s->ckr, 32);
        stage_skips(pend, &npend, ck, s->dhr, s->nr, p.pn, s->step + 1);
        sodium_memzero(ck, sizeof ck);
    }
    rc = dh_ratchet_step(st.rk, st.ckr, s->rk, s->dhs_sk, p.dh);
    if (rc != PARLEY_OK)
        goto out;
    stage_skips(pend, &npend, st.ckr, p.dh, 0, p.n, s->step + 1);
    kdf_ck_step(st.mk, st.ckr);
    rc = open_with(out, out_len, &p, st.mk, full_ad, fal);
    if (rc != PARLEY_OK)
        goto out;
    /* new sending chain: computed before the commit so that the commit cannot fail */
    crypto_box_keypair(st.dhs_pk, st.dhs_sk);
    rc = dh_ratchet_step(st.rk, st.cks, st.rk, st.dhs_sk, p.dh);
    if (rc == PARLEY_OK)
        rc = reserve(s, s->nskipped + npend);
    if (rc != PARLEY_OK)
        goto out;

    /* commit */
    s->step++;
    expire_skipped(s);
    commit_skips(s, pend, npend);
    s->pn = s->ns;
    s->ns = 0;
    s->nr = p.n + 1;
    memcpy(s->dhr, p.dh, 32);
    memcpy(s->rk, st.rk, 32);
    memcpy(s->ckr, st.ckr, 32);
    memcpy(s->cks, st.cks, 32);
    memcpy(s->dhs_sk, st.dhs_sk, 32);
    memcpy(s->dhs_pk, st.dhs_pk, 32);
    s->flags |= F_HAS_DHR | F_HAS_CKR | F_HAS_CKS;
    s->flags &= ~F_PENDING_PREKEY;
    release_if_empty(s);
    rc = PARLEY_OK;
out:
    if (rc != PARLEY_OK) {
        sodium_memzero(out, out_cap);
        *out_len = 0;
    }
    sodium_free(pend);
    sodium_memzero(&st, sizeof st);
    return rc;
}

/* ---- serialisation ---- */

size_t parley_ratchet_serialized_len(const struct parley_ratchet *s)
{
    if (!s)
        return 0;
    return PARLEY_RATCHET_SERIALIZED_MIN_BYTES +
           (size_t)s->nskipped * PARLEY_RATCHET_SKIPPED_ENTRY_BYTES;
}

enum parley_err parley_ratchet_serialize(const struct parley_ratchet *s, uint8_t *out,
                                         size_t out_cap, size_t *out_len)
{
    size_t need, pos = 0;
    uint32_t i;

    if (out_len)
        *out_len = 0;
    if (!s || !out || !out_len)
        return PARLEY_ERR_INVAL;
    need = parley_ratchet_serialized_len(s);
    if (out_cap < need) {
        sodium_memzero(out, out_cap);
        return PARLEY_ERR_INVAL;
    }
    out[pos++] = PARLEY_RATCHET_VERSION;
    out[pos++] = (uint8_t)s->flags;
    memcpy(out + pos, s->rk, 32), pos += 32;
    memcpy(out + pos, s->dhs_sk, 32), pos += 32;
    memcpy(out + pos, s->dhs_pk, 32), pos += 32;
    memcpy(out + pos, s->dhr, 32), pos += 32;
    memcpy(out + pos, s->cks, 32), pos += 32;
    memcpy(out + pos, s->ckr, 32), pos += 32;
    memcpy(out + pos, s->ad, 64), pos += 64;
    memcpy(out + pos, s->prekey_hdr, PARLEY_X3DH_HEADER_BYTES), pos += PARLEY_X3DH_HEADER_BYTES;
    store32_be(out + pos, s->ns), pos += 4;
    store32_be(out + pos, s->nr), pos += 4;
    store32_be(out + pos, s->pn), pos += 4;
    store32_be(out + pos, s->step), pos += 4;
    store32_be(out + pos, s->nskipped), pos += 4;
    for (i = 0; i < s->nskipped; i++) {
        const struct skipped_key *k = &s->skipped[i];
        memcpy(out + pos, k->dh, 32), pos += 32;
        store32_be(out + pos, k->n), pos += 4;
        store32_be(out + pos, k->step), pos += 4;
        memcpy(out + pos, k->mk, 32), pos += 32;
    }
    *out_len = pos;
    return PARLEY_OK;
}

enum parley_err parley_ratchet_deserialize(struct parley_ratchet **out, const uint8_t *in,
                                           size_t len)
{
    struct parley_ratchet *s = NULL;
    size_t pos = 0;
    uint32_t i, nskipped;

    if (!out)
        return PARLEY_ERR_INVAL;
    *out = NULL;
    if (!in || len < PARLEY_RATCHET_SERIALIZED_MIN_BYTES || in[0] != PARLEY_RATCHET_VERSION ||
        (in[1] & ~F_ALL))
        return PARLEY_ERR_INVAL;
    nskipped = load32_be(in + PARLEY_RATCHET_SERIALIZED_MIN_BYTES - 4);
    if (nskipped > PARLEY_RATCHET_MAX_STORED_KEYS ||
        len != PARLEY_RATCHET_SERIALIZED_MIN_BYTES +
                   (size_t)nskipped * PARLEY_RATCHET_SKIPPED_ENTRY_BYTES)
        return PARLEY_ERR_INVAL;
    s = session_alloc();
    if (!s)
        return PARLEY_ERR_NOMEM;
    pos = 1;
    s->flags = in[pos++];
    memcpy(s->rk, in + pos, 32), pos += 32;
    memcpy(s->dhs_sk, in + pos, 32), pos += 32;
    memcpy(s->dhs_pk, in + pos, 32), pos += 32;
    memcpy(s->dhr, in + pos, 32), pos += 32;
    memcpy(s->cks, in + pos, 32), pos += 32;
    memcpy(s->ckr, in + pos, 32), pos += 32;
    memcpy(s->ad, in + pos, 64), pos += 64;
    memcpy(s->prekey_hdr, in + pos, PARLEY_X3DH_HEADER_BYTES), pos += PARLEY_X3DH_HEADER_BYTES;
    s->ns = load32_be(in + pos), pos += 4;
    s->nr = load32_be(in + pos), pos += 4;
    s->pn = load32_be(in + pos), pos += 4;
    s->step = load32_be(in + pos), pos += 4;
    if (reserve(s, nskipped) != PARLEY_OK) {
        parley_ratchet_free(s);
        return PARLEY_ERR_NOMEM;
    }
    s->nskipped = load32_be(in + pos), pos += 4;
    for (i = 0; i < s->nskipped; i++) {
        struct skipped_key *k = &s->skipped[i];
        memcpy(k->dh, in + pos, 32), pos += 32;
        k->n = load32_be(in + pos), pos += 4;
        k->step = load32_be(in + pos), pos += 4;
        memcpy(k->mk, in + pos, 32), pos += 32;
    }
    /* consistency: the DH pair matches; a pending prekey header parses; the flags agree */
    {
        uint8_t chk[32];
        struct parley_x3dh_header h;
        int ok =
            crypto_scalarmult_base(chk, s->dhs_sk) == 0 && sodium_memcmp(chk, s->dhs_pk, 32) == 0;
        sodium_memzero(chk, sizeof chk);
        if (ok && (s->flags & F_PENDING_PREKEY))
            ok = parley_x3dh_header_parse(&h, s->prekey_hdr, sizeof s->prekey_hdr) == PARLEY_OK;
        if (ok && (s->flags & F_HAS_CKR) && !(s->flags & F_HAS_DHR))
            ok = 0;
        if (!ok) {
            parley_ratchet_free(s);
            return PARLEY_ERR_INVAL;
        }
    }
    *out = s;
    return PARLEY_OK;
}
