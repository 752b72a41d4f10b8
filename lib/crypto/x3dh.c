/*
 * x3dh.c — device identity (Ed25519, X25519 form for DH), signed and one-time prekeys,
 * public bundles and X3DH (Signal X3DH spec rev. 1, Sec. 3). The DH values and every
 * derived secret live on the stack for one call and are wiped on every path.
 *
 * SK = HKDF-SHA256(salt = 0*32, IKM = 0xFF*32 || DH1 || DH2 || DH3 [|| DH4],
 *                  info = "parley-x3dh-v1", L = 32)
 */
#include <string.h>

#include <sodium.h>

#include "crypto_int.h"
#include "parley/kdf.h"
#include "parley/ratchet.h"
#include "parley/x3dh.h"

static const uint8_t parley_x3dh_info[] = "parley-x3dh-v1";
const struct parley_x3dh_params parley_x3dh_params_default = {parley_x3dh_info,
                                                              sizeof parley_x3dh_info - 1, -1};

static const uint8_t spk_sig_context[] = "parley-spk-v1";
#define SPK_SIG_MSG_BYTES (sizeof spk_sig_context - 1 + 4 + 32)

static void spk_sig_message(uint8_t msg[SPK_SIG_MSG_BYTES], uint32_t id, const uint8_t pk[32])
{
    memcpy(msg, spk_sig_context, sizeof spk_sig_context - 1);
    store32_be(msg + sizeof spk_sig_context - 1, id);
    memcpy(msg + sizeof spk_sig_context - 1 + 4, pk, 32);
}

/* ---- identity ---- */

void parley_identity_wipe(struct parley_identity *id)
{
    if (id)
        sodium_memzero(id, sizeof *id);
}

enum parley_err parley_identity_from_seed(struct parley_identity *id,
                                          const uint8_t seed[PARLEY_IDENTITY_SEED_BYTES])
{
    uint8_t x[32];

    if (!id)
        return PARLEY_ERR_INVAL;
    parley_identity_wipe(id);
    if (!seed)
        return PARLEY_ERR_INVAL;
    if (crypto_sign_seed_keypair(id->pk, id->sk, seed) != 0 ||
        crypto_sign_ed25519_pk_to_curve25519(x, id->pk) != 0) {
        parley_identity_wipe(id);
        return PARLEY_ERR_CRYPTO;
    }
    return PARLEY_OK;
}

enum parley_err parley_identity_keygen(struct parley_identity *id)
{
    uint8_t seed[PARLEY_IDENTITY_SEED_BYTES];
    enum parley_err rc;

    randombytes_buf(seed, sizeof seed);
    rc = parley_identity_from_seed(id, seed);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

enum parley_err parley_identity_serialize(const struct parley_identity *id,
                                          uint8_t out[PARLEY_IDENTITY_SERIALIZED_BYTES])
{
    if (!out)
        return PARLEY_ERR_INVAL;
    sodium_memzero(out, PARLEY_IDENTITY_SERIALIZED_BYTES);
    if (!id)
        return PARLEY_ERR_INVAL;
    out[0] = PARLEY_X3DH_VERSION;
    /* libsodium's Ed25519 secret key is seed || pk */
    memcpy(out + 1, id->sk, PARLEY_IDENTITY_SEED_BYTES);
    return PARLEY_OK;
}

enum parley_err parley_identity_deserialize(struct parley_identity *id, const uint8_t *in,
                                            size_t len)
{
    if (!id)
        return PARLEY_ERR_INVAL;
    parley_identity_wipe(id);
    if (!in || len != PARLEY_IDENTITY_SERIALIZED_BYTES || in[0] != PARLEY_X3DH_VERSION)
        return PARLEY_ERR_INVAL;
    return parley_identity_from_seed(id, in + 1) == PARLEY_OK ? PARLEY_OK : PARLEY_ERR_INVAL;
}

/* ---- prekeys ---- */

void parley_signed_prekey_wipe(struct parley_signed_prekey *spk)
{
    if (spk)
        sodium_memzero(spk, sizeof *spk);
}

void parley_prekey_wipe(struct parley_prekey *opk)
{
    if (opk)
        sodium_memzero(opk, sizeof *opk);
}

enum parley_err parley_signed_prekey_generate(struct parley_signed_prekey *spk,
                                              const struct parley_identity *identity, uint32_t id)
{
    uint8_t msg[SPK_SIG_MSG_BYTES];

    if (!spk)
        return PARLEY_ERR_INVAL;
    parley_signed_prekey_wipe(spk);
    if (!identity)
        return PARLEY_ERR_INVAL;
    spk->id = id;
    crypto_box_keypair(spk->pk, spk->sk);
    spk_sig_message(msg, id, spk->pk);
    if (crypto_sign_detached(spk->sig, NULL, msg, sizeof msg, identity->sk) != 0) {
        parley_signed_prekey_wipe(spk);
        return PARLEY_ERR_CRYPTO;
    }
    return PARLEY_OK;
}

enum parley_err parley_signed_prekey_serialize(const struct parley_signed_prekey *spk,
                                               uint8_t out[PARLEY_SIGNED_PREKEY_SERIALIZED_BYTES])
{
    if (!out)
        return PARLEY_ERR_INVAL;
    sodium_memzero(out, PARLEY_SIGNED_PREKEY_SERIALIZED_BYTES);
    if (!spk)
        return PARLEY_ERR_INVAL;
    out[0] = PARLEY_X3DH_VERSION;
    store32_be(out + 1, spk->id);
    memcpy(out + 5, spk->pk, 32);
    memcpy(out + 37, spk->sk, 32);
    memcpy(out + 69, spk->sig, 64);
    return PARLEY_OK;
}

/* 1 if pk == X25519(sk, base) */
static int dh_pair_consistent(const uint8_t sk[32], const uint8_t pk[32])
{
    uint8_t chk[32];
    int ok = crypto_scalarmult_base(chk, sk) == 0 && sodium_memcmp(chk, pk, 32) == 0;
    sodium_memzero(chk, sizeof chk);
    return ok;
}

enum parley_err parley_signed_prekey_deserialize(struct parley_signed_prekey *spk,
                                                 const uint8_t *in, size_t len)
{
    if (!spk)
        return PARLEY_ERR_INVAL;
    parley_signed_prekey_wipe(spk);
    if (!in || len != PARLEY_SIGNED_PREKEY_SERIALIZED_BYTES || in[0] != PARLEY_X3DH_VERSION)
        return PARLEY_ERR_INVAL;
    spk->id = load32_be(in + 1);
    memcpy(spk->pk, in + 5, 32);
    memcpy(spk->sk, in + 37, 32);
    memcpy(spk->sig, in + 69, 64);
    if (!dh_pair_consistent(spk->sk, spk->pk)) {
        parley_signed_prekey_wipe(spk);
        return PARLEY_ERR_INVAL;
    }
    return PARLEY_OK;
}

enum parley_err parley_prekey_generate(struct parley_prekey *opk, uint32_t id)
{
    if (!opk)
        return PARLEY_ERR_INVAL;
    parley_prekey_wipe(opk);
    opk->id = id;
    crypto_box_keypair(opk->pk, opk->sk);
    return PARLEY_OK;
}

enum parley_err parley_prekey_serialize(const struct parley_prekey *opk,
                                        uint8_t out[PARLEY_PREKEY_SERIALIZED_BYTES])
{
    if (!out)
        return PARLEY_ERR_INVAL;
    sodium_memzero(out, PARLEY_PREKEY_SERIALIZED_BYTES);
    if (!opk)
        return PARLEY_ERR_INVAL;
    out[0] = PARLEY_X3DH_VERSION;
    store32_be(out + 1, opk->id);
    memcpy(out + 5, opk->pk, 32);
    memcpy(out + 37, opk->sk, 32);
    return PARLEY_OK;
}

enum parley_err parley_prekey_deserialize(struct parley_prekey *opk, const uint8_t *in, size_t len)
{
    if (!opk)
        return PARLEY_ERR_INVAL;
    parley_prekey_wipe(opk);
    if (!in || len != PARLEY_PREKEY_SERIALIZED_BYTES || in[0] != PARLEY_X3DH_VERSION)
        return PARLEY_ERR_INVAL;
    opk->id = load32_be(in + 1);
    memcpy(opk->pk, in + 5, 32);
    memcpy(opk->sk, in + 37, 32);
    if (!dh_pair_consistent(opk->sk, opk->pk)) {
        parley_prekey_wipe(opk);
        return PARLEY_ERR_INVAL;
    }
    return PARLEY_OK;
}

/* ---- bundles ---- */

enum parley_err parley_bundle_build(struct parley_bundle *bundle,
                                    const struct parley_identity *identity,
                                    const struct parley_signed_prekey *spk,
                                    const struct parley_prekey *opk)
{
    if (!bundle)
        return PARLEY_ERR_INVAL;
    memset(bundle, 0, sizeof *bundle);
    if (!identity || !spk)
        return PARLEY_ERR_INVAL;
    memcpy(bundle->identity_pk, identity->pk, 32);
    bundle->spk_id = spk->id;
    memcpy(bundle->spk_pk, spk->pk, 32);
    memcpy(bundle->spk_sig, spk->sig, 64);
    if (opk) {
        bundle->has_opk = true;
        bundle->opk_id = opk->id;
        memcpy(bundle->opk_pk, opk->pk, 32);
    }
    return PARLEY_OK;
}

enum parley_err parley_bundle_serialize(const struct parley_bundle *bundle, uint8_t *out,
                                        size_t out_cap, size_t *out_len)
{
    size_t need;

    if (out_len)
        *out_len = 0;
    if (!bundle || !out || !out_len)
        return PARLEY_ERR_INVAL;
    need = bundle->has_opk ? PARLEY_BUNDLE_MAX_BYTES : PARLEY_BUNDLE_MIN_BYTES;
    if (out_cap < need)
        return PARLEY_ERR_INVAL;
    out[0] = PARLEY_X3DH_VERSION;
    memcpy(out + 1, bundle->identity_pk, 32);
    store32_be(out + 33, bundle->spk_id);
    memcpy(out + 37, bundle->spk_pk, 32);
    memcpy(out + 69, bundle->spk_sig, 64);
    out[133] = bundle->has_opk ? 1 : 0;
    if (bundle->has_opk) {
        store32_be(out + 134, bundle->opk_id);
        memcpy(out + 138, bundle->opk_pk, 32);
    }
    *out_len = need;
    return PARLEY_OK;
}

enum parley_err parley_bundle_parse(struct parley_bundle *bundle, const uint8_t *in, size_t len)
{
    uint8_t x[32];

    if (!bundle)
        return PARLEY_ERR_INVAL;
    memset(bundle, 0, sizeof *bundle);
    if (!in || len < PARLEY_BUNDLE_MIN_BYTES || in[0] != PARLEY_X3DH_VERSION)
        return PARLEY_ERR_INVAL;
    if (in[133] > 1 || len != (in[133] ? PARLEY_BUNDLE_MAX_BYTES : PARLEY_BUNDLE_MIN_BYTES))
        return PARLEY_ERR_INVAL;
    memcpy(bundle->identity_pk, in + 1, 32);
    bundle->spk_id = load32_be(in + 33);
    memcpy(bundle->spk_pk, in + 37, 32);
    memcpy(bundle->spk_sig, in + 69, 64);
    if (in[133]) {
        bundle->has_opk = true;
        bundle->opk_id = load32_be(in + 134);
        memcpy(bundle->opk_pk, in + 138, 32);
    }
    if (crypto_sign_ed25519_pk_to_curve25519(x, bundle->identity_pk) != 0) {
        memset(bundle, 0, sizeof *bundle);
        return PARLEY_ERR_INVAL;
    }
    return PARLEY_OK;
}

enum parley_err parley_bundle_verify(const struct parley_bundle *bundle)
{
    uint8_t msg[SPK_SIG_MSG_BYTES];

    if (!bundle)
        return PARLEY_ERR_INVAL;
    spk_sig_message(msg, bundle->spk_id, bundle->spk_pk);
    if (crypto_sign_verify_detached(bundle->spk_sig, msg, sizeof msg, bundle->identity_pk) != 0)
        return PARLEY_ERR_CRYPTO;
    return PARLEY_OK;
}

/* ---- X3DH header ---- */

enum parley_err parley_x3dh_header_serialize(const struct parley_x3dh_header *hdr,
                                             uint8_t out[PARLEY_X3DH_HEADER_BYTES])
{
    if (!out)
        return PARLEY_ERR_INVAL;
    memset(out, 0, PARLEY_X3DH_HEADER_BYTES);
    if (!hdr)
        return PARLEY_ERR_INVAL;
    out[0] = PARLEY_X3DH_VERSION;
    memcpy(out + 1, hdr->identity_pk, 32);
    memcpy(out + 33, hdr->ephemeral_pk, 32);
    store32_be(out + 65, hdr->spk_id);
    out[69] = hdr->has_opk ? 1 : 0;
    store32_be(out + 70, hdr->has_opk ? hdr->opk_id : 0);
    return PARLEY_OK;
}

enum parley_err parley_x3dh_header_parse(struct parley_x3dh_header *hdr, const uint8_t *in,
                                         size_t len)
{
    if (!hdr)
        return PARLEY_ERR_INVAL;
    memset(hdr, 0, sizeof *hdr);
    if (!in || len != PARLEY_X3DH_HEADER_BYTES || in[0] != PARLEY_X3DH_VERSION || in[69] > 1)
        return PARLEY_ERR_INVAL;
    /* a canonical encoding: no opk id without the flag */
    if (!in[69] && load32_be(in + 70) != 0)
        return PARLEY_ERR_INVAL;
    memcpy(hdr->identity_pk, in + 1, 32);
    memcpy(hdr->ephemeral_pk, in + 33, 32);
    hdr->spk_id = load32_be(in + 65);
    hdr->has_opk = in[69] != 0;
    hdr->opk_id = load32_be(in + 70);
    return PARLEY_OK;
}

/* ---- X3DH ---- */

#define KM_MAX_BYTES (32U + 4U * 32U)

enum parley_err parley_x3dh_kdf(uint8_t *out, size_t out_len,
                                const struct parley_x3dh_params *params, const uint8_t *km,
                                size_t km_len)
{
    uint8_t ikm[KM_MAX_BYTES];
    enum parley_err rc;

    if (!out || !out_len || out_len > PARLEY_HKDF_SHA256_MAX_BYTES)
        return PARLEY_ERR_INVAL;
    sodium_memzero(out, out_len);
    if (!params || !km || !km_len || km_len > KM_MAX_BYTES - 32 ||
        (!params->info && params->info_len))
        return PARLEY_ERR_INVAL;
    memset(ikm, 0xFF, 32); /* F: 32 0xFF bytes for X25519 (spec Sec. 2.2) */
    memcpy(ikm + 32, km, km_len);
    rc =
        parley_hkdf_sha256(out, out_len, NULL, 0, ikm, 32 + km_len, params->info, params->info_len);
    sodium_memzero(ikm, sizeof ikm);
    return rc;
}

/* Decode Encode(PK) per params; returns a pointer to the 32 raw bytes or NULL. */
static const uint8_t *decode_pub(const struct parley_x3dh_params *p, const uint8_t *enc, size_t len)
{
    if (!enc)
        return NULL;
    if (p->key_prefix < 0)
        return len == 32 ? enc : NULL;
    if (len != 33 || enc[0] != (uint8_t)p->key_prefix)
        return NULL;
    return enc + 1;
}

/*
 * Both sides: km = DH(a1,B1) || DH(a2,B2) || DH(a3,B3) [|| DH(a4,B4)], then the KDF.
 */
static enum parley_err agree(uint8_t *out, size_t out_len, const struct parley_x3dh_params *p,
                             const uint8_t *const sks[4], const uint8_t *const pks[4], int n)
{
    uint8_t km[4 * 32];
    enum parley_err rc = PARLEY_ERR_CRYPTO;
    int i;

    for (i = 0; i < n; i++) {
        if (crypto_scalarmult(km + 32 * i, sks[i], pks[i]) != 0)
            goto out;
    }
    rc = parley_x3dh_kdf(out, out_len, p, km, (size_t)n * 32);
out:
    sodium_memzero(km, sizeof km);
    if (rc != PARLEY_OK && out && out_len)
        sodium_memzero(out, out_len);
    return rc;
}

enum parley_err parley_x3dh_agree_initiator_raw(uint8_t *out, size_t out_len,
                                                const struct parley_x3dh_params *params,
                                                const uint8_t ik_a_sk[32],
                                                const uint8_t ek_a_sk[32], const uint8_t *ik_b_pub,
                                                const uint8_t *spk_b_pub, const uint8_t *opk_b_pub,
                                                size_t pub_len)
{
    const uint8_t *ikb, *spkb, *opkb = NULL;

    if (!out || !out_len || out_len > PARLEY_HKDF_SHA256_MAX_BYTES)
        return PARLEY_ERR_INVAL;
    sodium_memzero(out, out_len);
    if (!params || !ik_a_sk || !ek_a_sk)
        return PARLEY_ERR_INVAL;
    ikb = decode_pub(params, ik_b_pub, pub_len);
    spkb = decode_pub(params, spk_b_pub, pub_len);
    if (opk_b_pub)
        opkb = decode_pub(params, opk_b_pub, pub_len);
    if (!ikb || !spkb || (opk_b_pub && !opkb))
        return PARLEY_ERR_INVAL;
    {
        const uint8_t *const sks[4] = {ik_a_sk, ek_a_sk, ek_a_sk, ek_a_sk};
        const uint8_t *const pks[4] = {spkb, ikb, spkb, opkb};
        return agree(out, out_len, params, sks, pks, opkb ? 4 : 3);
    }
}

enum parley_err parley_x3dh_agree_responder_raw(uint8_t *out, size_t out_len,
                                                const struct parley_x3dh_params *params,
                                                const uint8_t ik_b_sk[32],
                                                const uint8_t spk_b_sk[32], const uint8_t *opk_b_sk,
                                                const uint8_t *ik_a_pub, const uint8_t *ek_a_pub,
                                                size_t pub_len)
{
    const uint8_t *ika, *eka;

    if (!out || !out_len || out_len > PARLEY_HKDF_SHA256_MAX_BYTES)
        return PARLEY_ERR_INVAL;
    sodium_memzero(out, out_len);
    if (!params || !ik_b_sk || !spk_b_sk)
        return PARLEY_ERR_INVAL;
    ika = decode_pub(params, ik_a_pub, pub_len);
    eka = decode_pub(params, ek_a_pub, pub_len);
    if (!ika || !eka)
        return PARLEY_ERR_INVAL;
    {
        const uint8_t *const sks[4] = {spk_b_sk, ik_b_sk, spk_b_sk, opk_b_sk};
        const uint8_t *const pks[4] = {ika, eka, eka, eka};
        return agree(out, out_len, params, sks, pks, opk_b_sk ? 4 : 3);
    }
}

enum parley_err parley_x3dh_initiate(struct parley_ratchet **out,
                                     const struct parley_identity *self,
                                     const struct parley_bundle *peer)
{
    uint8_t ik_a_x[32], ik_b_x[32], ek_sk[32];
    uint8_t sk[PARLEY_X3DH_SECRET_BYTES];
    uint8_t hdr_bytes[PARLEY_X3DH_HEADER_BYTES];
    struct parley_x3dh_header hdr;
    struct parley_ratchet *s = NULL;
    enum parley_err rc;

    if (!out)
        return PARLEY_ERR_INVAL;
    *out = NULL;
    if (!self || !peer)
        return PARLEY_ERR_INVAL;
    memset(&hdr, 0, sizeof hdr);

    rc = parley_bundle_verify(peer);
    if (rc != PARLEY_OK)
        goto out;
    rc = PARLEY_ERR_CRYPTO;
    if (crypto_sign_ed25519_sk_to_curve25519(ik_a_x, self->sk) != 0 ||
        crypto_sign_ed25519_pk_to_curve25519(ik_b_x, peer->identity_pk) != 0)
        goto out;
    memcpy(hdr.identity_pk, self->pk, 32);
    crypto_box_keypair(hdr.ephemeral_pk, ek_sk);
    hdr.spk_id = peer->spk_id;
    hdr.has_opk = peer->has_opk;
    hdr.opk_id = peer->has_opk ? peer->opk_id : 0;

    rc = parley_x3dh_agree_initiator_raw(sk, sizeof sk, &parley_x3dh_params_default, ik_a_x, ek_sk,
                                         ik_b_x, peer->spk_pk, peer->has_opk ? peer->opk_pk : NULL,
                                         32);
    if (rc != PARLEY_OK)
        goto out;
    rc = parley_x3dh_header_serialize(&hdr, hdr_bytes);
    if (rc != PARLEY_OK)
        goto out;
    rc = parley_ratchet_new_initiator(&s, sk, self->pk, peer->identity_pk, peer->spk_pk);
    if (rc != PARLEY_OK)
        goto out;
    ratchet_set_prekey_header(s, hdr_bytes);
    *out = s;
    s = NULL;
out:
    parley_ratchet_free(s);
    sodium_memzero(ik_a_x, sizeof ik_a_x);
    sodium_memzero(ek_sk, sizeof ek_sk);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

enum parley_err parley_x3dh_respond(struct parley_ratchet **out, const struct parley_identity *self,
                                    const struct parley_signed_prekey *spk,
                                    const struct parley_prekey *opk,
                                    const struct parley_x3dh_header *hdr)
{
    uint8_t ik_b_x[32], ik_a_x[32];
    uint8_t sk[PARLEY_X3DH_SECRET_BYTES];
    enum parley_err rc;

    if (!out)
        return PARLEY_ERR_INVAL;
    *out = NULL;
    if (!self || !spk || !hdr || hdr->spk_id != spk->id || hdr->has_opk != (opk != NULL) ||
        (opk && hdr->opk_id != opk->id))
        return PARLEY_ERR_INVAL;
    rc = PARLEY_ERR_CRYPTO;
    if (crypto_sign_ed25519_sk_to_curve25519(ik_b_x, self->sk) != 0 ||
        crypto_sign_ed25519_pk_to_curve25519(ik_a_x, hdr->identity_pk) != 0)
        goto out;
    rc =
        parley_x3dh_agree_responder_raw(sk, sizeof sk, &parley_x3dh_params_default, ik_b_x, spk->sk,
                                        opk ? opk->sk : NULL, ik_a_x, hdr->ephemeral_pk, 32);
    if (rc != PARLEY_OK)
        goto out;
    rc = parley_ratchet_new_responder(out, sk, hdr->identity_pk, self->pk, spk->sk, spk->pk);
out:
    sodium_memzero(ik_b_x, sizeof ik_b_x);
    sodium_memzero(sk, sizeof sk);
    return rc;
}
