/*
 * seal.c — see seal.h. v1: XChaCha20-Poly1305 (IETF) with random 24-byte nonces. v2:
 * AES-256-GCM through libsodium's precomputed state (AES key schedule and GHASH powers
 * expanded once in seal_key_new), nonce = random prefix || random start + atomic counter.
 */
#include "seal.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AD_PREFIX "parley-queue-v1"
#define ID_CHARS 32
#define AD_BYTES (sizeof AD_PREFIX - 1 + 1 + 2 * ID_CHARS + 16)
#define KDF_CONTEXT "PQUEUE01"
#define SUBKEY_XCHACHA 1
#define SUBKEY_AESGCM 2

_Static_assert(SEAL_OVERHEAD >= SEAL_V1_OVERHEAD && SEAL_OVERHEAD >= SEAL_V2_OVERHEAD,
               "SEAL_OVERHEAD is the largest overhead");
_Static_assert(SEAL_MIN_OVERHEAD <= SEAL_V1_OVERHEAD && SEAL_MIN_OVERHEAD <= SEAL_V2_OVERHEAD,
               "SEAL_MIN_OVERHEAD is the smallest overhead");
_Static_assert(SEAL_V1_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "v1 nonce");
_Static_assert(SEAL_V2_NONCE_BYTES == crypto_aead_aes256gcm_NPUBBYTES, "v2 nonce");
_Static_assert(SEAL_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES &&
                   SEAL_TAG_BYTES == crypto_aead_aes256gcm_ABYTES,
               "tag");

/* The secrets: sodium_malloc'd, read-only once made. sodium_malloc places the block so it
 * ends on a page boundary, so it starts 16-byte aligned when its size is a multiple of 16
 * — which sizeof guarantees here, the GCM state being CRYPTO_ALIGN(16). Checked at run
 * time too. */
struct seal_secret {
    crypto_aead_aes256gcm_state gcm; /* first: needs 16-byte alignment */
    unsigned char xk[SEAL_KEY_BYTES];
};

/* Ordinary memory: nothing secret here, and the counter must stay writable. */
struct seal_key {
    struct seal_secret *sec;
    uint8_t version; /* what new seals get */
    bool have_gcm;   /* sec->gcm is set (AES-256-GCM runs on this CPU) */
    uint8_t gcm_prefix[4];
    uint64_t gcm_start;
    /* Points at gcm_next_store: the functions take the key const, the counter is not. */
    _Atomic uint64_t *gcm_next;
    _Atomic uint64_t gcm_next_store;
};

void seal_key_free(struct seal_key *k)
{
    if (!k)
        return;
    if (k->sec)
        sodium_free(k->sec); /* sodium_free wipes */
    sodium_memzero(k, sizeof *k);
    free(k);
}

enum parley_err seal_key_new_version(const unsigned char *master, uint8_t version,
                                     struct seal_key **out)
{
    if (!master || !out || (version != SEAL_V1 && version != SEAL_V2))
        return PARLEY_ERR_INVAL;
    *out = NULL;
    if (sodium_init() < 0) /* idempotent; CPU feature detection needs it */
        return PARLEY_ERR_CRYPTO;
    bool have_gcm = crypto_aead_aes256gcm_is_available() != 0;
    if (version == SEAL_V2 && !have_gcm)
        return PARLEY_ERR_CRYPTO;
    if (crypto_aead_aes256gcm_statebytes() > sizeof(crypto_aead_aes256gcm_state))
        return PARLEY_ERR_CRYPTO;
    struct seal_key *k = calloc(1, sizeof *k);
    if (!k)
        return PARLEY_ERR_NOMEM;
    k->version = version;
    k->have_gcm = have_gcm;
    k->gcm_next = &k->gcm_next_store;
    atomic_init(k->gcm_next, 0);
    randombytes_buf(k->gcm_prefix, sizeof k->gcm_prefix);
    randombytes_buf(&k->gcm_start, sizeof k->gcm_start);
    if (!(k->sec = sodium_malloc(sizeof *k->sec))) {
        free(k);
        return PARLEY_ERR_NOMEM;
    }
    enum parley_err err = PARLEY_OK;
    if ((uintptr_t)(void *)k->sec % 16 != 0 ||
        crypto_kdf_derive_from_key(k->sec->xk, sizeof k->sec->xk, SUBKEY_XCHACHA, KDF_CONTEXT,
                                   master) != 0)
        err = PARLEY_ERR_CRYPTO;
    if (!err && have_gcm) {
        /* The raw AES key is only needed to expand the state: derived into its own
         * sodium_malloc'd block, freed (wiped) right after. */
        unsigned char *gk = sodium_malloc(crypto_aead_aes256gcm_KEYBYTES);
        if (!gk)
            err = PARLEY_ERR_NOMEM;
        else {
            if (crypto_kdf_derive_from_key(gk, crypto_aead_aes256gcm_KEYBYTES, SUBKEY_AESGCM,
                                           KDF_CONTEXT, master) != 0 ||
                crypto_aead_aes256gcm_beforenm(&k->sec->gcm, gk) != 0)
                err = PARLEY_ERR_CRYPTO;
            sodium_free(gk); /* wipes */
        }
    }
    if (err) {
        seal_key_free(k);
        return err;
    }
    sodium_mprotect_readonly(k->sec);
    *out = k;
    return PARLEY_OK;
}

enum parley_err seal_key_new(const unsigned char *master, struct seal_key **out)
{
    if (!master || !out)
        return PARLEY_ERR_INVAL;
    if (sodium_init() < 0)
        return PARLEY_ERR_CRYPTO;
    return seal_key_new_version(master, crypto_aead_aes256gcm_is_available() ? SEAL_V2 : SEAL_V1,
                                out);
}

uint8_t seal_key_version(const struct seal_key *k)
{
    return k ? k->version : 0;
}

static bool make_ad(uint8_t ad[AD_BYTES], uint8_t version, const char *recipient,
                    const char *sender, const uint8_t msgid[16])
{
    if (!recipient || !sender || !msgid || strlen(recipient) != ID_CHARS ||
        strlen(sender) != ID_CHARS)
        return false;
    size_t o = 0;
    memcpy(ad, AD_PREFIX, sizeof AD_PREFIX - 1);
    o += sizeof AD_PREFIX - 1;
    ad[o++] = version;
    memcpy(ad + o, recipient, ID_CHARS);
    o += ID_CHARS;
    memcpy(ad + o, sender, ID_CHARS);
    o += ID_CHARS;
    memcpy(ad + o, msgid, 16);
    return true;
}

/* The next v2 nonce of k: prefix || big-endian(start + n), n unique per seal. */
static void gcm_nonce(const struct seal_key *k, uint8_t nonce[SEAL_V2_NONCE_BYTES])
{
    uint64_t n = atomic_fetch_add_explicit(k->gcm_next, 1, memory_order_relaxed);
    uint64_t v = k->gcm_start + n; /* wraps mod 2^64 */
    memcpy(nonce, k->gcm_prefix, 4);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(v >> (56 - 8 * i));
}

enum parley_err seal_envelope(const struct seal_key *k, const char *recipient_device,
                              const char *sender_device, const uint8_t msgid[16], const uint8_t *pt,
                              size_t pt_len, uint8_t *out, size_t *sealed_len)
{
    if (sealed_len)
        *sealed_len = 0;
    uint8_t ad[AD_BYTES];
    if (!k || !out || !sealed_len || (!pt && pt_len) ||
        !make_ad(ad, k->version, recipient_device, sender_device, msgid))
        return PARLEY_ERR_INVAL;
    unsigned long long clen = 0;
    if (k->version == SEAL_V2) {
        if (pt_len > crypto_aead_aes256gcm_MESSAGEBYTES_MAX)
            return PARLEY_ERR_INVAL;
        out[0] = SEAL_V2;
        gcm_nonce(k, out + 1);
        if (crypto_aead_aes256gcm_encrypt_afternm(out + 1 + SEAL_V2_NONCE_BYTES, &clen, pt, pt_len,
                                                  ad, sizeof ad, NULL, out + 1, &k->sec->gcm) != 0)
            return PARLEY_ERR_CRYPTO;
        *sealed_len = pt_len + SEAL_V2_OVERHEAD;
        return PARLEY_OK;
    }
    if (pt_len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
        return PARLEY_ERR_INVAL;
    out[0] = SEAL_V1;
    randombytes_buf(out + 1, SEAL_V1_NONCE_BYTES);
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + SEAL_V1_NONCE_BYTES, &clen, pt, pt_len,
                                                   ad, sizeof ad, NULL, out + 1, k->sec->xk) != 0)
        return PARLEY_ERR_CRYPTO;
    *sealed_len = pt_len + SEAL_V1_OVERHEAD;
    return PARLEY_OK;
}

enum parley_err seal_open(const struct seal_key *k, const char *recipient_device,
                          const char *sender_device, const uint8_t msgid[16], const uint8_t *sealed,
                          size_t sealed_len, uint8_t *out, size_t *pt_len)
{
    if (pt_len)
        *pt_len = 0;
    uint8_t ad[AD_BYTES];
    if (!k || !out || !pt_len || !sealed || sealed_len < SEAL_MIN_OVERHEAD)
        return PARLEY_ERR_INVAL;
    uint8_t version = sealed[0];
    size_t overhead = version == SEAL_V1   ? SEAL_V1_OVERHEAD
                      : version == SEAL_V2 ? SEAL_V2_OVERHEAD
                                           : SEAL_MIN_OVERHEAD;
    if (sealed_len < overhead || !make_ad(ad, version, recipient_device, sender_device, msgid))
        return PARLEY_ERR_INVAL;
    size_t len = sealed_len - overhead;
    unsigned long long plen = 0;
    int rc = -1;
    if (version == SEAL_V1)
        rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, &plen, NULL, sealed + 1 + SEAL_V1_NONCE_BYTES,
            sealed_len - 1 - SEAL_V1_NONCE_BYTES, ad, sizeof ad, sealed + 1, k->sec->xk);
    else if (version == SEAL_V2 && k->have_gcm)
        rc = crypto_aead_aes256gcm_decrypt_afternm(
            out, &plen, NULL, sealed + 1 + SEAL_V2_NONCE_BYTES,
            sealed_len - 1 - SEAL_V2_NONCE_BYTES, ad, sizeof ad, sealed + 1, &k->sec->gcm);
    /* else: unknown version, or v2 on a CPU without AES-GCM: as if sealed with another key */
    if (rc != 0 || plen != len) {
        memset(out, 0, len);
        return PARLEY_ERR_CRYPTO;
    }
    *pt_len = len;
    return PARLEY_OK;
}
