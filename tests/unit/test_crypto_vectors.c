/*
 * test_crypto_vectors.c — every hand-built primitive of lib/crypto/ against the published
 * vectors in tests/data/vectors/ (parsed with jansson): RFC 5869 HKDF-SHA256 A.1-A.3,
 * RFC 9380 K.3 expand_message_xmd(SHA-512), RFC 9497 A.1.1 OPRF ristretto255-SHA512,
 * ristretto255 KATs (encodings, invalid points, one-way map), libsignal's chain-key step
 * and X3DH-derived chain key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "parley/crypto.h"

static json_t *load(const char *name)
{
    char path[1024];
    json_error_t err;
    json_t *j;

    snprintf(path, sizeof path, "%s/%s", PARLEY_VECTORS_DIR, name);
    j = json_load_file(path, 0, &err);
    if (!j)
        fail_msg("cannot load %s: %s", path, err.text);
    return j;
}

/* hex field -> buffer (heap, caller frees); *len = bytes */
static uint8_t *hex(json_t *obj, const char *key, size_t *len)
{
    json_t *v = json_object_get(obj, key);
    const char *s;
    size_t n, out_len = 0;
    uint8_t *buf;

    assert_non_null(v);
    s = json_string_value(v);
    assert_non_null(s);
    n = strlen(s) / 2;
    buf = malloc(n + 1);
    assert_non_null(buf);
    assert_int_equal(sodium_hex2bin(buf, n + 1, s, strlen(s), NULL, &out_len, NULL), 0);
    assert_int_equal(out_len, n);
    *len = n;
    return buf;
}

static void expect_hex(json_t *obj, const char *key, const uint8_t *got, size_t got_len)
{
    size_t n;
    uint8_t *want = hex(obj, key, &n);
    assert_int_equal(n, got_len);
    assert_memory_equal(want, got, n);
    free(want);
}

static void test_hkdf_rfc5869(void **state)
{
    json_t *j = load("rfc5869_hkdf_sha256.json"), *tests = json_object_get(j, "tests"), *t;
    size_t idx;
    (void)state;

    assert_int_equal(json_array_size(tests), 3);
    json_array_foreach(tests, idx, t)
    {
        size_t ikm_len, salt_len, info_len, l = (size_t)json_integer_value(json_object_get(t, "L"));
        uint8_t *ikm = hex(t, "IKM", &ikm_len), *salt = hex(t, "salt", &salt_len),
                *info = hex(t, "info", &info_len);
        uint8_t prk[32], okm[128];

        assert_true(l <= sizeof okm);
        assert_int_equal(parley_hkdf_sha256_extract(prk, salt, salt_len, ikm, ikm_len), PARLEY_OK);
        expect_hex(t, "PRK", prk, 32);
        assert_int_equal(parley_hkdf_sha256_expand(okm, l, prk, info, info_len), PARLEY_OK);
        expect_hex(t, "OKM", okm, l);
        memset(okm, 0, sizeof okm);
        assert_int_equal(parley_hkdf_sha256(okm, l, salt, salt_len, ikm, ikm_len, info, info_len),
                         PARLEY_OK);
        expect_hex(t, "OKM", okm, l);
        free(ikm);
        free(salt);
        free(info);
    }
    json_decref(j);
}

static void test_hkdf_limits(void **state)
{
    uint8_t prk[32] = {1}, out[8];
    (void)state;
    assert_int_equal(parley_hkdf_sha256_expand(out, 0, prk, NULL, 0), PARLEY_ERR_INVAL);
    assert_int_equal(parley_hkdf_sha256_expand(out, PARLEY_HKDF_SHA256_MAX_BYTES + 1, prk, NULL, 0),
                     PARLEY_ERR_INVAL);
    assert_int_equal(parley_hkdf_sha256_extract(prk, NULL, 3, NULL, 0), PARLEY_ERR_INVAL);
    /* failure zeroes the output */
    assert_true(sodium_is_zero(prk, sizeof prk));
}

static void test_xmd_rfc9380(void **state)
{
    json_t *j = load("rfc9380_expand_message_xmd_sha512.json"),
           *tests = json_object_get(j, "tests"), *t;
    const char *dst = json_string_value(json_object_get(j, "DST"));
    size_t idx;
    (void)state;

    assert_non_null(dst);
    assert_int_equal(json_array_size(tests), 10);
    json_array_foreach(tests, idx, t)
    {
        const char *msg = json_string_value(json_object_get(t, "msg"));
        size_t l = (size_t)json_integer_value(json_object_get(t, "len_in_bytes"));
        uint8_t out[256];
        assert_true(l <= sizeof out);
        assert_int_equal(parley_xmd_sha512_expand(out, l, (const uint8_t *)msg, strlen(msg),
                                                  (const uint8_t *)dst, strlen(dst)),
                         PARLEY_OK);
        expect_hex(t, "uniform_bytes", out, l);
    }
    json_decref(j);
}

/* RFC 9380 Sec. 5.3.3: a DST longer than 255 bytes is replaced by
 * SHA-512("H2C-OVERSIZE-DST-" || DST). */
static void test_xmd_oversize_dst(void **state)
{
    uint8_t dst[300], short_dst[64], a[64], b[64];
    crypto_hash_sha512_state st;
    (void)state;
    memset(dst, 'D', sizeof dst);
    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, (const uint8_t *)"H2C-OVERSIZE-DST-", 17);
    crypto_hash_sha512_update(&st, dst, sizeof dst);
    crypto_hash_sha512_final(&st, short_dst);
    assert_int_equal(
        parley_xmd_sha512_expand(a, sizeof a, (const uint8_t *)"abc", 3, dst, sizeof dst),
        PARLEY_OK);
    assert_int_equal(parley_xmd_sha512_expand(b, sizeof b, (const uint8_t *)"abc", 3, short_dst,
                                              sizeof short_dst),
                     PARLEY_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(parley_xmd_sha512_expand(a, sizeof a, (const uint8_t *)"abc", 3, dst, 0),
                     PARLEY_ERR_INVAL);
    assert_true(sodium_is_zero(a, sizeof a));
}

static void test_oprf_rfc9497(void **state)
{
    json_t *j = load("rfc9497_oprf_ristretto255_sha512.json"),
           *vecs = json_object_get(j, "vectors"), *v;
    size_t seed_len, info_len, idx;
    uint8_t *seed = hex(j, "Seed", &seed_len), *info = hex(j, "KeyInfo", &info_len);
    uint8_t sk[32], pk[32];
    (void)state;

    assert_int_equal(seed_len, 32);
    assert_int_equal(parley_oprf_derive_keypair(sk, pk, seed, info, info_len), PARLEY_OK);
    expect_hex(j, "skSm", sk, 32);
    assert_int_equal(json_array_size(vecs), 2);
    json_array_foreach(vecs, idx, v)
    {
        size_t in_len, bl_len;
        uint8_t *input = hex(v, "Input", &in_len), *blind = hex(v, "Blind", &bl_len);
        uint8_t blinded[32], evaluated[32], out[64], out2[64];

        assert_int_equal(parley_oprf_blind_with(blinded, blind, input, in_len), PARLEY_OK);
        expect_hex(v, "BlindedElement", blinded, 32);
        assert_int_equal(parley_oprf_blind_evaluate(evaluated, sk, blinded), PARLEY_OK);
        expect_hex(v, "EvaluationElement", evaluated, 32);
        assert_int_equal(parley_oprf_finalize(out, input, in_len, blind, evaluated), PARLEY_OK);
        expect_hex(v, "Output", out, 64);
        assert_int_equal(parley_oprf_evaluate(out2, sk, input, in_len), PARLEY_OK);
        assert_memory_equal(out, out2, 64);
        /* with a random blind the output is the same */
        assert_int_equal(parley_oprf_blind(blind, blinded, input, in_len), PARLEY_OK);
        assert_int_equal(parley_oprf_blind_evaluate(evaluated, sk, blinded), PARLEY_OK);
        assert_int_equal(parley_oprf_finalize(out2, input, in_len, blind, evaluated), PARLEY_OK);
        assert_memory_equal(out, out2, 64);
        free(input);
        free(blind);
    }
    free(seed);
    free(info);
    json_decref(j);
}

/* Internal to lib/crypto (crypto_int.h): DeriveKeyPair for another mode byte. */
enum parley_err oprf_derive_keypair_mode(uint8_t sk[32], uint8_t pk[32], const uint8_t seed[32],
                                         const uint8_t *info, size_t info_len, uint8_t mode);

/* RFC 9497 A.1.2 / A.1.3: DeriveKeyPair and ScalarMultGen against published skSm, pkSm. */
static void test_oprf_other_mode_keys(void **state)
{
    json_t *j = load("rfc9497_oprf_ristretto255_sha512.json"),
           *keys = json_object_get(j, "other_mode_keys"), *k;
    size_t idx;
    (void)state;
    assert_int_equal(json_array_size(keys), 2);
    json_array_foreach(keys, idx, k)
    {
        size_t seed_len, info_len;
        uint8_t *seed = hex(k, "Seed", &seed_len), *info = hex(k, "KeyInfo", &info_len);
        uint8_t sk[32], pk[32];
        int mode = (int)json_integer_value(json_object_get(k, "mode"));
        assert_true(mode == 1 || mode == 2);
        assert_int_equal(oprf_derive_keypair_mode(sk, pk, seed, info, info_len, (uint8_t)mode),
                         PARLEY_OK);
        expect_hex(k, "skSm", sk, 32);
        expect_hex(k, "pkSm", pk, 32);
        free(seed);
        free(info);
    }
    json_decref(j);
}

/* Identity, invalid encodings (ristretto255 KATs) and non-canonical scalars rejected. */
static void test_oprf_rejects(void **state)
{
    json_t *j = load("ristretto255_kats.json"), *inv = json_object_get(j, "invalid_encodings"), *e;
    uint8_t sk[32], pk[32], out[32], fin[64], zero[32] = {0}, blind[32];
    size_t idx;
    (void)state;

    assert_int_equal(parley_oprf_keygen(sk, pk), PARLEY_OK);
    /* identity element */
    assert_int_equal(parley_oprf_blind_evaluate(out, sk, zero), PARLEY_ERR_CRYPTO);
    assert_true(sodium_is_zero(out, 32));
    json_array_foreach(inv, idx, e)
    {
        size_t n = 0;
        uint8_t p[32];
        const char *s = json_string_value(e);
        assert_int_equal(sodium_hex2bin(p, 32, s, strlen(s), NULL, &n, NULL), 0);
        assert_int_equal(n, 32);
        assert_false(parley_oprf_element_is_valid(p));
        assert_int_equal(parley_oprf_blind_evaluate(out, sk, p), PARLEY_ERR_CRYPTO);
        memcpy(blind, sk, 32);
        assert_int_equal(parley_oprf_finalize(fin, NULL, 0, blind, p), PARLEY_ERR_CRYPTO);
    }
    /* non-canonical scalars: L itself, all-ones, zero */
    {
        static const uint8_t l[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                      0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                      0,    0,    0,    0,    0,    0,    0,    0,
                                      0,    0,    0,    0,    0,    0,    0,    0x10};
        uint8_t ones[32];
        memset(ones, 0xff, sizeof ones);
        assert_false(parley_oprf_scalar_is_valid(l));
        assert_false(parley_oprf_scalar_is_valid(ones));
        assert_false(parley_oprf_scalar_is_valid(zero));
        assert_int_equal(parley_oprf_blind_evaluate(out, l, pk), PARLEY_ERR_CRYPTO);
        assert_int_equal(parley_oprf_blind_evaluate(out, ones, pk), PARLEY_ERR_CRYPTO);
        assert_int_equal(parley_oprf_blind_with(out, zero, (const uint8_t *)"x", 1),
                         PARLEY_ERR_CRYPTO);
        assert_true(sodium_is_zero(out, 32));
    }
    json_decref(j);
}

static void test_ristretto_kats(void **state)
{
    json_t *j = load("ristretto255_kats.json"),
           *mult = json_object_get(j, "multiples_of_generator"),
           *fh = json_object_get(j, "from_hash"), *e;
    size_t idx;
    (void)state;

    assert_int_equal(json_array_size(mult), 16);
    json_array_foreach(mult, idx, e)
    {
        uint8_t s[32] = {0}, p[32], want[32];
        size_t n = 0;
        const char *hs = json_string_value(e);
        assert_int_equal(sodium_hex2bin(want, 32, hs, strlen(hs), NULL, &n, NULL), 0);
        s[0] = (uint8_t)idx;
        if (idx == 0) {
            assert_int_equal(crypto_scalarmult_ristretto255_base(p, s), -1);
            assert_false(parley_oprf_element_is_valid(want)); /* the identity */
            continue;
        }
        assert_int_equal(crypto_scalarmult_ristretto255_base(p, s), 0);
        assert_memory_equal(p, want, 32);
        assert_true(parley_oprf_element_is_valid(want));
    }
    json_array_foreach(fh, idx, e)
    {
        size_t n;
        uint8_t *in = hex(e, "input", &n), p[32];
        assert_int_equal(n, 64);
        assert_int_equal(crypto_core_ristretto255_from_hash(p, in), 0);
        expect_hex(e, "output", p, 32);
        free(in);
    }
    json_decref(j);
}

static void test_signal_chain_key(void **state)
{
    json_t *j = load("libsignal_ratchet_vectors.json"), *v = json_object_get(j, "chain_key_kdf_ck");
    const char *info = json_string_value(json_object_get(v, "info_ascii"));
    size_t n;
    uint8_t *ck = hex(v, "chain_key", &n), mk[32], next[32], keys[80];
    (void)state;

    assert_int_equal(n, 32);
    assert_int_equal(parley_kdf_ck(mk, next, ck), PARLEY_OK);
    expect_hex(v, "next_chain_key", next, 32);
    assert_int_equal(
        parley_hkdf_sha256(keys, sizeof keys, NULL, 0, mk, 32, (const uint8_t *)info, strlen(info)),
        PARLEY_OK);
    expect_hex(v, "cipher_key", keys, 32);
    expect_hex(v, "mac_key", keys + 32, 32);
    /* in place */
    assert_int_equal(parley_kdf_ck(mk, ck, ck), PARLEY_OK);
    assert_memory_equal(ck, next, 32);
    free(ck);
    json_decref(j);
}

static void test_signal_x3dh(void **state)
{
    json_t *j = load("libsignal_ratchet_vectors.json"),
           *v = json_object_get(j, "x3dh_session_init_no_opk");
    const char *info = json_string_value(json_object_get(v, "info_ascii"));
    struct parley_x3dh_params p = {(const uint8_t *)info, strlen(info), 0x05};
    size_t n1, n2, n3, n4, n5, n6, n7, n8;
    uint8_t *a_ik_pub = hex(v, "alice_identity_public", &n1),
            *a_ik_priv = hex(v, "alice_identity_private", &n2),
            *a_base_pub = hex(v, "alice_base_public", &n3),
            *a_base_priv = hex(v, "alice_base_private", &n4),
            *b_ik_pub = hex(v, "bob_identity_public", &n5),
            *b_ik_priv = hex(v, "bob_identity_private", &n6),
            *b_spk_pub = hex(v, "bob_signed_prekey_public", &n7),
            *b_spk_priv = hex(v, "bob_signed_prekey_private", &n8);
    uint8_t okm_b[64], okm_a[64];
    (void)state;

    assert_int_equal(n1, 33);
    assert_int_equal(parley_x3dh_agree_responder_raw(okm_b, 64, &p, b_ik_priv, b_spk_priv, NULL,
                                                     a_ik_pub, a_base_pub, 33),
                     PARLEY_OK);
    expect_hex(v, "expected_chain_key", okm_b + 32, 32);
    assert_int_equal(parley_x3dh_agree_initiator_raw(okm_a, 64, &p, a_ik_priv, a_base_priv,
                                                     b_ik_pub, b_spk_pub, NULL, 33),
                     PARLEY_OK);
    assert_memory_equal(okm_a, okm_b, 64);
    /* the wrong prefix or a raw key is refused under Signal's parameters */
    a_ik_pub[0] = 0x06;
    assert_int_equal(parley_x3dh_agree_responder_raw(okm_b, 64, &p, b_ik_priv, b_spk_priv, NULL,
                                                     a_ik_pub, a_base_pub, 33),
                     PARLEY_ERR_INVAL);
    assert_true(sodium_is_zero(okm_b, 64));
    /* parley's own info string gives a different key */
    assert_int_equal(parley_x3dh_agree_initiator_raw(okm_b, 64, &parley_x3dh_params_default,
                                                     a_ik_priv, a_base_priv, b_ik_pub + 1,
                                                     b_spk_pub + 1, NULL, 32),
                     PARLEY_OK);
    assert_memory_not_equal(okm_a, okm_b, 64);
    free(a_ik_pub), free(a_ik_priv), free(a_base_pub), free(a_base_priv);
    free(b_ik_pub), free(b_ik_priv), free(b_spk_pub), free(b_spk_priv);
    (void)n2, (void)n3, (void)n4, (void)n5, (void)n6, (void)n7, (void)n8;
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hkdf_rfc5869),     cmocka_unit_test(test_hkdf_limits),
        cmocka_unit_test(test_xmd_rfc9380),      cmocka_unit_test(test_xmd_oversize_dst),
        cmocka_unit_test(test_oprf_rfc9497),     cmocka_unit_test(test_oprf_other_mode_keys),
        cmocka_unit_test(test_oprf_rejects),     cmocka_unit_test(test_ristretto_kats),
        cmocka_unit_test(test_signal_chain_key), cmocka_unit_test(test_signal_x3dh),
    };
    if (parley_crypto_init() != PARLEY_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
