/*
 * seal.c — see seal.h. XChaCha20-Poly1305 (IETF) from libsodium; random nonces are safe
 * with a 192-bit nonce, so no counter has to survive restarts.
 */
#include "seal.h"

#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#define AD_PREFIX "parley-queue-v1"
#define ID_CHARS 32
#define AD_BYTES (sizeof AD_PREFIX - 1 + 1 + 2 * ID_CHARS + 16)

struct seal_key {
    unsigned char k[SEAL_KEY_BYTES];
};

enum parley_err seal_key_new(const unsigned char *master, struct seal_key **out)
{
    if (!master || !out)
        return PARLEY_ERR_INVAL;
    struct seal_key *k = sodium_malloc(sizeof *k);
    if (!k)
        return PARLEY_ERR_NOMEM;
    if (crypto_kdf_derive_from_key(k->k, sizeof k->k, 1, "PQUEUE01", master) != 0) {
        sodium_free(k);
        return PARLEY_ERR_CRYPTO;
    }
    sodium_mprotect_readonly(k);
    *out = k;
    return PARLEY_OK;
}

void seal_key_free(struct seal_key *k)
{
    if (k)
        sodium_free(k); /* sodium_free wipes */
}

static bool make_ad(uint8_t ad[AD_BYTES], const char *recipient, const char *sender,
                    const uint8_t msgid[16])
{
    if (!recipient || !sender || !msgid || strlen(recipient) != ID_CHARS ||
        strlen(sender) != ID_CHARS)
        return false;
    size_t o = 0;
    memcpy(ad, AD_PREFIX, sizeof AD_PREFIX - 1);
    o += sizeof AD_PREFIX - 1;
    ad[o++] = SEAL_VERSION;
    memcpy(ad + o, recipient, ID_CHARS);
    o += ID_CHARS;
    memcpy(ad + o, sender, ID_CHARS);
    o += ID_CHARS;
    memcpy(ad + o, msgid, 16);
    return true;
}

enum parley_err seal_envelope(const struct seal_key *k, const char *recipient_device,
                              const char *sender_device, const uint8_t msgid[16],
                              const uint8_t *pt, size_t pt_len, uint8_t *out)
{
    uint8_t ad[AD_BYTES];
    if (!k || !out || (!pt && pt_len) || !make_ad(ad, recipient_device, sender_device, msgid))
        return PARLEY_ERR_INVAL;
    out[0] = SEAL_VERSION;
    randombytes_buf(out + 1, SEAL_NONCE_BYTES);
    unsigned long long clen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + SEAL_NONCE_BYTES, &clen, pt, pt_len,
                                                   ad, sizeof ad, NULL, out + 1, k->k) != 0)
        return PARLEY_ERR_CRYPTO;
    return PARLEY_OK;
}

enum parley_err seal_open(const struct seal_key *k, const char *recipient_device,
                          const char *sender_device, const uint8_t msgid[16],
                          const uint8_t *sealed, size_t sealed_len, uint8_t *out)
{
    uint8_t ad[AD_BYTES];
    if (!k || !out || !sealed || sealed_len < SEAL_OVERHEAD ||
        !make_ad(ad, recipient_device, sender_device, msgid))
        return PARLEY_ERR_INVAL;
    size_t pt_len = sealed_len - SEAL_OVERHEAD;
    if (sealed[0] != SEAL_VERSION) {
        memset(out, 0, pt_len);
        return PARLEY_ERR_CRYPTO;
    }
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, sealed + 1 + SEAL_NONCE_BYTES,
                                                   sealed_len - 1 - SEAL_NONCE_BYTES, ad,
                                                   sizeof ad, sealed + 1, k->k) != 0) {
        memset(out, 0, pt_len);
        return PARLEY_ERR_CRYPTO;
    }
    return PARLEY_OK;
}
