/*
 * test_crypto_group.c — Sender Keys (distribution over pairwise sessions, round trips,
 * out-of-order, replay, tampering, forged signer, limits, serialisation, rotation that
 * locks out a removed member) and safety numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "parley/crypto.h"

#define CAP 512

struct gmsg {
    uint8_t b[CAP];
    size_t len;
};

static void genc(struct parley_sender_key *k, struct gmsg *m, const char *text)
{
    assert_int_equal(parley_sender_key_encrypt(k, m->b, sizeof m->b, &m->len, (const uint8_t *)text,
                                               strlen(text)),
                     PARLEY_OK);
    assert_int_equal(m->len, strlen(text) + PARLEY_SENDER_KEY_OVERHEAD_BYTES);
}

static enum parley_err gdec_rc(struct parley_sender_key *k, const struct gmsg *m, char *out)
{
    size_t n = 0;
    enum parley_err rc = parley_sender_key_decrypt(k, (uint8_t *)out, CAP - 1, &n, m->b, m->len);
    out[rc == PARLEY_OK ? n : 0] = 0;
    return rc;
}

static void gdec_ok(struct parley_sender_key *k, const struct gmsg *m, const char *want)
{
    char out[CAP];
    assert_int_equal(gdec_rc(k, m, out), PARLEY_OK);
    assert_string_equal(out, want);
}

static struct parley_sender_key *receive_copy(const struct parley_sender_key *own)
{
    uint8_t dist[PARLEY_SENDER_KEY_DISTRIBUTION_BYTES];
    struct parley_sender_key *r = NULL;
    assert_int_equal(parley_sender_key_distribution(own, dist), PARLEY_OK);
    assert_int_equal(parley_sender_key_from_distribution(&r, dist, sizeof dist), PARLEY_OK);
    sodium_memzero(dist, sizeof dist);
    return r;
}

/* The distribution message travels inside a pairwise Double Ratchet session. */
static void test_distribution_over_session(void **state)
{
    struct parley_identity ida, idb;
    struct parley_signed_prekey spk;
    struct parley_bundle bundle;
    struct parley_x3dh_header hdr;
    struct parley_ratchet *a = NULL, *b = NULL;
    struct parley_sender_key *own = NULL, *recv = NULL;
    uint8_t dist[PARLEY_SENDER_KEY_DISTRIBUTION_BYTES], ct[CAP], pt[CAP];
    size_t ct_len, pt_len;
    struct gmsg m;
    (void)state;

    assert_int_equal(parley_identity_keygen(&ida), PARLEY_OK);
    assert_int_equal(parley_identity_keygen(&idb), PARLEY_OK);
    assert_int_equal(parley_signed_prekey_generate(&spk, &idb, 1), PARLEY_OK);
    assert_int_equal(parley_bundle_build(&bundle, &idb, &spk, NULL), PARLEY_OK);
    assert_int_equal(parley_x3dh_initiate(&a, &ida, &bundle), PARLEY_OK);
    assert_int_equal(parley_sender_key_new(&own), PARLEY_OK);
    assert_int_equal(parley_sender_key_distribution(own, dist), PARLEY_OK);
    assert_int_equal(parley_ratchet_encrypt(a, ct, sizeof ct, &ct_len, dist, sizeof dist, NULL, 0),
                     PARLEY_OK);
    assert_int_equal(parley_ratchet_prekey_header(&hdr, ct, ct_len), PARLEY_OK);
    assert_int_equal(parley_x3dh_respond(&b, &idb, &spk, NULL, &hdr), PARLEY_OK);
    assert_int_equal(parley_ratchet_decrypt(b, pt, sizeof pt, &pt_len, ct, ct_len, NULL, 0),
                     PARLEY_OK);
    assert_int_equal(parley_sender_key_from_distribution(&recv, pt, pt_len), PARLEY_OK);
    assert_int_equal(parley_sender_key_id(recv), parley_sender_key_id(own));
    genc(own, &m, "hello group");
    gdec_ok(recv, &m, "hello group");
    parley_sender_key_free(own);
    parley_sender_key_free(recv);
    parley_ratchet_free(a);
    parley_ratchet_free(b);
    parley_identity_wipe(&ida);
    parley_identity_wipe(&idb);
    parley_signed_prekey_wipe(&spk);
}

static void test_round_trip_order_replay(void **state)
{
    struct parley_sender_key *own = NULL, *r1, *r2;
    struct gmsg m[6];
    char out[CAP], text[16];
    uint32_t id;
    int i;
    (void)state;
    assert_int_equal(parley_sender_key_new(&own), PARLEY_OK);
    r1 = receive_copy(own);
    for (i = 0; i < 6; i++) {
        snprintf(text, sizeof text, "g%d", i);
        genc(own, &m[i], text);
    }
    assert_int_equal(parley_sender_key_message_id(&id, m[0].b, m[0].len), PARLEY_OK);
    assert_int_equal(id, parley_sender_key_id(own));
    gdec_ok(r1, &m[5], "g5");
    gdec_ok(r1, &m[1], "g1");
    gdec_ok(r1, &m[0], "g0");
    assert_int_equal(gdec_rc(r1, &m[0], out), PARLEY_ERR_CRYPTO); /* replay */
    assert_int_equal(gdec_rc(r1, &m[5], out), PARLEY_ERR_CRYPTO);
    gdec_ok(r1, &m[3], "g3");
    /* a member who joins later gets the current iteration: earlier messages stay closed */
    r2 = receive_copy(own);
    assert_int_equal(gdec_rc(r2, &m[2], out), PARLEY_ERR_CRYPTO);
    genc(own, &m[0], "later");
    gdec_ok(r2, &m[0], "later");
    gdec_ok(r1, &m[0], "later");
    gdec_ok(r1, &m[2], "g2");
    /* a receiving copy cannot send */
    assert_int_equal(
        parley_sender_key_encrypt(r1, m[1].b, sizeof m[1].b, &m[1].len, (const uint8_t *)"x", 1),
        PARLEY_ERR_INVAL);
    parley_sender_key_free(own);
    parley_sender_key_free(r1);
    parley_sender_key_free(r2);
}

static void test_tamper_and_forgery(void **state)
{
    struct parley_sender_key *own = NULL, *r, *mallory = NULL, *mr;
    struct gmsg m, t;
    uint8_t dist[PARLEY_SENDER_KEY_DISTRIBUTION_BYTES];
    char out[CAP];
    size_t i;
    (void)state;
    assert_int_equal(parley_sender_key_new(&own), PARLEY_OK);
    r = receive_copy(own);
    genc(own, &m, "signed and sealed");
    for (i = 0; i < m.len; i++) {
        t = m;
        t.b[i] ^= 0x04;
        assert_int_not_equal(gdec_rc(r, &t, out), PARLEY_OK);
    }
    for (i = 0; i < m.len; i++) {
        t = m;
        t.len = i;
        assert_int_not_equal(gdec_rc(r, &t, out), PARLEY_OK);
    }
    /* a member who knows the chain key (any receiver) cannot forge: signature check */
    assert_int_equal(parley_sender_key_distribution(r, dist), PARLEY_OK);
    assert_int_equal(parley_sender_key_new(&mallory), PARLEY_OK);
    {
        /* Mallory builds an own state with the victim's id/chain but her signing key */
        size_t len = parley_sender_key_serialized_len(mallory), got;
        uint8_t *buf = sodium_malloc(len);
        assert_non_null(buf);
        assert_int_equal(parley_sender_key_serialize(mallory, buf, len, &got), PARLEY_OK);
        memcpy(buf + 2, dist + 1, 4 + 4 + 32); /* key_id, iteration, chain key */
        parley_sender_key_free(mallory);
        assert_int_equal(parley_sender_key_deserialize(&mallory, buf, len), PARLEY_OK);
        sodium_free(buf);
    }
    genc(mallory, &t, "forged");
    assert_int_equal(gdec_rc(r, &t, out), PARLEY_ERR_CRYPTO);
    gdec_ok(r, &m, "signed and sealed");
    /* distribution parsing */
    assert_int_equal(parley_sender_key_distribution(own, dist), PARLEY_OK);
    mr = NULL;
    assert_int_equal(parley_sender_key_from_distribution(&mr, dist, sizeof dist - 1),
                     PARLEY_ERR_INVAL);
    dist[0] = 9;
    assert_int_equal(parley_sender_key_from_distribution(&mr, dist, sizeof dist), PARLEY_ERR_INVAL);
    dist[0] = 1;
    memset(dist + 41, 0, 32); /* small-order signing key */
    dist[41] = 1;
    assert_int_equal(parley_sender_key_from_distribution(&mr, dist, sizeof dist), PARLEY_ERR_INVAL);
    assert_null(mr);
    /* wrong key id */
    {
        struct parley_sender_key *other = NULL, *ro;
        assert_int_equal(parley_sender_key_new(&other), PARLEY_OK);
        ro = receive_copy(other);
        genc(own, &t, "for the old key");
        assert_int_equal(gdec_rc(ro, &t, out), PARLEY_ERR_INVAL);
        parley_sender_key_free(other);
        parley_sender_key_free(ro);
    }
    parley_sender_key_free(own);
    parley_sender_key_free(r);
    parley_sender_key_free(mallory);
}

static void test_limits_and_serialization(void **state)
{
    struct parley_sender_key *own = NULL, *r, *r2 = NULL;
    struct gmsg first, m;
    char out[CAP];
    uint8_t *buf;
    size_t len, got;
    unsigned i;
    (void)state;
    assert_int_equal(parley_sender_key_new(&own), PARLEY_OK);
    r = receive_copy(own);
    genc(own, &first, "first");
    for (i = 1; i < PARLEY_SENDER_KEY_MAX_SKIP; i++)
        genc(own, &m, "skip");
    genc(own, &m, "at the limit");
    gdec_ok(r, &m, "at the limit");
    for (i = 0; i < PARLEY_SENDER_KEY_MAX_SKIP + 1; i++)
        genc(own, &m, "skip");
    genc(own, &m, "beyond");
    assert_int_equal(gdec_rc(r, &m, out), PARLEY_ERR_LIMIT);

    /* serialisation round trip keeps skipped keys */
    len = parley_sender_key_serialized_len(r);
    assert_int_equal(len, PARLEY_SENDER_KEY_SERIALIZED_MIN_BYTES +
                              PARLEY_SENDER_KEY_MAX_SKIP * PARLEY_SENDER_KEY_SKIPPED_ENTRY_BYTES);
    buf = sodium_malloc(len);
    assert_non_null(buf);
    assert_int_equal(parley_sender_key_serialize(r, buf, len, &got), PARLEY_OK);
    assert_int_equal(parley_sender_key_deserialize(&r2, buf, len), PARLEY_OK);
    gdec_ok(r2, &first, "first");
    assert_int_equal(parley_sender_key_deserialize(&r2, buf, len - 1), PARLEY_ERR_INVAL);
    buf[1] = 1; /* claims to be an own state with a zero secret key */
    assert_int_equal(parley_sender_key_deserialize(&r2, buf, len), PARLEY_ERR_INVAL);
    sodium_free(buf);
    /* own state round trip keeps sending */
    {
        struct parley_sender_key *own2 = NULL;
        len = parley_sender_key_serialized_len(own);
        buf = sodium_malloc(len);
        assert_non_null(buf);
        assert_int_equal(parley_sender_key_serialize(own, buf, len, &got), PARLEY_OK);
        assert_int_equal(parley_sender_key_deserialize(&own2, buf, len), PARLEY_OK);
        sodium_free(buf);
        r2 = NULL;
        r2 = receive_copy(own2);
        genc(own2, &m, "after reload");
        gdec_ok(r2, &m, "after reload");
        parley_sender_key_free(own2);
        parley_sender_key_free(r2);
    }
    parley_sender_key_free(own);
    parley_sender_key_free(r);
}

/* Stored skipped keys are capped: the oldest are evicted first. */
static void test_stored_key_cap(void **state)
{
    struct parley_sender_key *own = NULL, *r;
    struct gmsg oldest, second_burst, m;
    char out[CAP];
    unsigned i, burst;
    (void)state;
    assert_int_equal(parley_sender_key_new(&own), PARLEY_OK);
    r = receive_copy(own);
    for (burst = 0; burst < 3; burst++) {
        for (i = 0; i < PARLEY_SENDER_KEY_MAX_SKIP; i++) {
            if (burst == 0 && i == 0)
                genc(own, &oldest, "oldest");
            else if (burst == 1 && i == 0)
                genc(own, &second_burst, "second burst");
            else
                genc(own, &m, "skip");
        }
        genc(own, &m, "lands");
        gdec_ok(r, &m, "lands");
        assert_true(parley_sender_key_serialized_len(r) <=
                    PARLEY_SENDER_KEY_SERIALIZED_MIN_BYTES +
                        PARLEY_SENDER_KEY_MAX_STORED_KEYS * PARLEY_SENDER_KEY_SKIPPED_ENTRY_BYTES);
    }
    assert_int_equal(gdec_rc(r, &oldest, out), PARLEY_ERR_CRYPTO);
    gdec_ok(r, &second_burst, "second burst");
    parley_sender_key_free(own);
    parley_sender_key_free(r);
}

/* Alice, Bob, Carol in a group; Carol is removed; Alice rotates; Carol reads nothing new. */
static void test_removed_member(void **state)
{
    struct parley_sender_key *alice_v1 = NULL, *alice_v2 = NULL, *bob_v1, *carol_v1, *bob_v2;
    struct gmsg m;
    char out[CAP];
    (void)state;
    assert_int_equal(parley_sender_key_new(&alice_v1), PARLEY_OK);
    bob_v1 = receive_copy(alice_v1);
    carol_v1 = receive_copy(alice_v1);
    genc(alice_v1, &m, "all three");
    gdec_ok(bob_v1, &m, "all three");
    gdec_ok(carol_v1, &m, "all three");
    /* Carol removed: a new sender key, distributed to Bob only */
    assert_int_equal(parley_sender_key_new(&alice_v2), PARLEY_OK);
    assert_int_not_equal(parley_sender_key_id(alice_v2), parley_sender_key_id(alice_v1));
    bob_v2 = receive_copy(alice_v2);
    parley_sender_key_free(alice_v1);
    genc(alice_v2, &m, "without carol");
    gdec_ok(bob_v2, &m, "without carol");
    assert_int_not_equal(gdec_rc(carol_v1, &m, out), PARLEY_OK);
    /* even if Carol relabels the message with her old key id, signature and key differ */
    {
        uint8_t id[4];
        id[0] = (uint8_t)(parley_sender_key_id(carol_v1) >> 24);
        id[1] = (uint8_t)(parley_sender_key_id(carol_v1) >> 16);
        id[2] = (uint8_t)(parley_sender_key_id(carol_v1) >> 8);
        id[3] = (uint8_t)parley_sender_key_id(carol_v1);
        memcpy(m.b + 1, id, 4);
        assert_int_equal(gdec_rc(carol_v1, &m, out), PARLEY_ERR_CRYPTO);
    }
    parley_sender_key_free(alice_v2);
    parley_sender_key_free(bob_v1);
    parley_sender_key_free(bob_v2);
    parley_sender_key_free(carol_v1);
}

static void test_safety_number(void **state)
{
    struct parley_identity a, b;
    char ab[PARLEY_SAFETY_NUMBER_BYTES], ba[PARLEY_SAFETY_NUMBER_BYTES],
        other[PARLEY_SAFETY_NUMBER_BYTES];
    size_t i;
    (void)state;
    assert_int_equal(parley_identity_keygen(&a), PARLEY_OK);
    assert_int_equal(parley_identity_keygen(&b), PARLEY_OK);
    assert_int_equal(parley_safety_number(ab, a.pk, (const uint8_t *)"alice", 5, b.pk,
                                          (const uint8_t *)"bob", 3),
                     PARLEY_OK);
    assert_int_equal(parley_safety_number(ba, b.pk, (const uint8_t *)"bob", 3, a.pk,
                                          (const uint8_t *)"alice", 5),
                     PARLEY_OK);
    assert_int_equal(strlen(ab), 60);
    for (i = 0; i < 60; i++)
        assert_true(ab[i] >= '0' && ab[i] <= '9');
    assert_string_equal(ab, ba);
    /* a different key (MITM) changes it */
    b.pk[0] ^= 1;
    assert_int_equal(parley_safety_number(other, a.pk, (const uint8_t *)"alice", 5, b.pk,
                                          (const uint8_t *)"bob", 3),
                     PARLEY_OK);
    assert_string_not_equal(ab, other);
    /* fixed inputs give a fixed number: regression value, recomputed independently with
     * Python's hashlib from the construction in safety_number.h */
    {
        uint8_t k1[32], k2[32];
        char n1[PARLEY_SAFETY_NUMBER_BYTES], n2[PARLEY_SAFETY_NUMBER_BYTES];
        memset(k1, 0x11, sizeof k1);
        memset(k2, 0x22, sizeof k2);
        assert_int_equal(parley_safety_number(n1, k1, (const uint8_t *)"alice", 5, k2,
                                              (const uint8_t *)"bob", 3),
                         PARLEY_OK);
        assert_int_equal(parley_safety_number(n2, k2, (const uint8_t *)"bob", 3, k1,
                                              (const uint8_t *)"alice", 5),
                         PARLEY_OK);
        assert_string_equal(n1, "132553978508914888266047484892507747774365245670442911420001");
        assert_string_equal(n1, n2);
    }
    assert_int_equal(parley_safety_number(other, a.pk, NULL, 1, b.pk, NULL, 0), PARLEY_ERR_INVAL);
    assert_string_equal(other, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distribution_over_session),
        cmocka_unit_test(test_round_trip_order_replay),
        cmocka_unit_test(test_tamper_and_forgery),
        cmocka_unit_test(test_limits_and_serialization),
        cmocka_unit_test(test_stored_key_cap),
        cmocka_unit_test(test_removed_member),
        cmocka_unit_test(test_safety_number),
    };
    if (parley_crypto_init() != PARLEY_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
