/*
 * test_crypto_ratchet.c — X3DH + Double Ratchet end to end: set-up with and without a
 * one-time prekey, signature check, round trips, out-of-order / loss / duplicates,
 * tampering (ciphertext, header, AD), skipped-key limits and expiry, session
 * serialisation, forward secrecy and post-compromise recovery.
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

#define MSG_CAP 512

struct msg {
    uint8_t b[MSG_CAP];
    size_t len;
};

struct peers {
    struct parley_identity ida, idb;
    struct parley_signed_prekey spk;
    struct parley_prekey opk;
    struct parley_ratchet *a, *b;
};

static void enc(struct parley_ratchet *s, struct msg *m, const char *text)
{
    assert_int_equal(parley_ratchet_encrypt(s, m->b, sizeof m->b, &m->len, (const uint8_t *)text,
                                            strlen(text), NULL, 0),
                     PARLEY_OK);
    assert_true(m->len == PARLEY_RATCHET_OVERHEAD_BYTES + strlen(text) ||
                m->len == PARLEY_RATCHET_PREKEY_OVERHEAD_BYTES + strlen(text));
}

static enum parley_err dec_rc(struct parley_ratchet *s, const struct msg *m, char *out, size_t cap)
{
    size_t n = 0;
    enum parley_err rc =
        parley_ratchet_decrypt(s, (uint8_t *)out, cap - 1, &n, m->b, m->len, NULL, 0);
    out[rc == PARLEY_OK ? n : 0] = 0;
    return rc;
}

static void dec_ok(struct parley_ratchet *s, const struct msg *m, const char *want)
{
    char out[MSG_CAP];
    assert_int_equal(dec_rc(s, m, out, sizeof out), PARLEY_OK);
    assert_string_equal(out, want);
}

/* Full set-up: Alice fetches Bob's bundle, sends a prekey message, Bob responds. */
static void setup_peers(struct peers *p, bool with_opk)
{
    struct parley_bundle bundle, parsed;
    struct parley_x3dh_header hdr;
    uint8_t buf[PARLEY_BUNDLE_MAX_BYTES];
    size_t len;
    struct msg m;

    memset(p, 0, sizeof *p);
    assert_int_equal(parley_identity_keygen(&p->ida), PARLEY_OK);
    assert_int_equal(parley_identity_keygen(&p->idb), PARLEY_OK);
    assert_int_equal(parley_signed_prekey_generate(&p->spk, &p->idb, 7), PARLEY_OK);
    assert_int_equal(parley_prekey_generate(&p->opk, 42), PARLEY_OK);
    assert_int_equal(parley_bundle_build(&bundle, &p->idb, &p->spk, with_opk ? &p->opk : NULL),
                     PARLEY_OK);
    assert_int_equal(parley_bundle_serialize(&bundle, buf, sizeof buf, &len), PARLEY_OK);
    assert_int_equal(len, with_opk ? PARLEY_BUNDLE_MAX_BYTES : PARLEY_BUNDLE_MIN_BYTES);
    assert_int_equal(parley_bundle_parse(&parsed, buf, len), PARLEY_OK);
    assert_int_equal(parley_bundle_verify(&parsed), PARLEY_OK);

    assert_int_equal(parley_x3dh_initiate(&p->a, &p->ida, &parsed), PARLEY_OK);
    enc(p->a, &m, "hello bob");
    assert_int_equal(m.b[1], PARLEY_RATCHET_TYPE_PREKEY);
    assert_int_equal(m.len, PARLEY_RATCHET_PREKEY_OVERHEAD_BYTES + 9);
    assert_int_equal(parley_ratchet_prekey_header(&hdr, m.b, m.len), PARLEY_OK);
    assert_memory_equal(hdr.identity_pk, p->ida.pk, 32);
    assert_int_equal(hdr.spk_id, 7);
    assert_int_equal(hdr.has_opk, with_opk);
    if (with_opk)
        assert_int_equal(hdr.opk_id, 42);
    assert_int_equal(parley_x3dh_respond(&p->b, &p->idb, &p->spk, with_opk ? &p->opk : NULL, &hdr),
                     PARLEY_OK);
    dec_ok(p->b, &m, "hello bob");
}

static void teardown_peers(struct peers *p)
{
    parley_ratchet_free(p->a);
    parley_ratchet_free(p->b);
    parley_identity_wipe(&p->ida);
    parley_identity_wipe(&p->idb);
    parley_signed_prekey_wipe(&p->spk);
    parley_prekey_wipe(&p->opk);
}

static void conversation(struct peers *p)
{
    struct msg m;
    char text[64];
    int i;

    for (i = 0; i < 50; i++) {
        struct parley_ratchet *from = (i % 3 == 0) ? p->a : p->b, *to = from == p->a ? p->b : p->a;
        snprintf(text, sizeof text, "message %d", i);
        enc(from, &m, text);
        dec_ok(to, &m, text);
    }
}

static void test_x3dh_with_opk(void **state)
{
    struct peers p;
    uint8_t peer[32];
    (void)state;
    setup_peers(&p, true);
    conversation(&p);
    assert_int_equal(parley_ratchet_peer_identity(p.a, peer), PARLEY_OK);
    assert_memory_equal(peer, p.idb.pk, 32);
    assert_int_equal(parley_ratchet_peer_identity(p.b, peer), PARLEY_OK);
    assert_memory_equal(peer, p.ida.pk, 32);
    teardown_peers(&p);
}

static void test_x3dh_without_opk(void **state)
{
    struct peers p;
    (void)state;
    setup_peers(&p, false);
    conversation(&p);
    teardown_peers(&p);
}

static void test_prekey_messages_until_reply(void **state)
{
    struct peers p;
    struct msg m1, m2, r;
    (void)state;
    setup_peers(&p, true);
    /* Alice has not heard back: still prekey messages */
    enc(p.a, &m1, "two");
    enc(p.a, &m2, "three");
    assert_int_equal(m1.b[1], PARLEY_RATCHET_TYPE_PREKEY);
    dec_ok(p.b, &m2, "three");
    dec_ok(p.b, &m1, "two");
    enc(p.b, &r, "reply");
    assert_int_equal(r.b[1], PARLEY_RATCHET_TYPE_NORMAL);
    dec_ok(p.a, &r, "reply");
    enc(p.a, &m1, "normal now");
    assert_int_equal(m1.b[1], PARLEY_RATCHET_TYPE_NORMAL);
    assert_int_equal(m1.len, PARLEY_RATCHET_OVERHEAD_BYTES + 10);
    dec_ok(p.b, &m1, "normal now");
    teardown_peers(&p);
}

static void test_bad_bundle_signature(void **state)
{
    struct parley_identity ida, idb, other;
    struct parley_signed_prekey spk;
    struct parley_bundle b;
    struct parley_ratchet *s = (struct parley_ratchet *)&s;
    (void)state;
    assert_int_equal(parley_identity_keygen(&ida), PARLEY_OK);
    assert_int_equal(parley_identity_keygen(&idb), PARLEY_OK);
    assert_int_equal(parley_identity_keygen(&other), PARLEY_OK);
    assert_int_equal(parley_signed_prekey_generate(&spk, &other, 1), PARLEY_OK);
    /* signed by someone else */
    assert_int_equal(parley_bundle_build(&b, &idb, &spk, NULL), PARLEY_OK);
    assert_int_equal(parley_x3dh_initiate(&s, &ida, &b), PARLEY_ERR_CRYPTO);
    assert_null(s);
    /* properly signed, then the key or the id tampered */
    assert_int_equal(parley_signed_prekey_generate(&spk, &idb, 1), PARLEY_OK);
    assert_int_equal(parley_bundle_build(&b, &idb, &spk, NULL), PARLEY_OK);
    assert_int_equal(parley_bundle_verify(&b), PARLEY_OK);
    b.spk_pk[3] ^= 1;
    assert_int_equal(parley_x3dh_initiate(&s, &ida, &b), PARLEY_ERR_CRYPTO);
    b.spk_pk[3] ^= 1;
    b.spk_id = 2;
    assert_int_equal(parley_x3dh_initiate(&s, &ida, &b), PARLEY_ERR_CRYPTO);
    assert_null(s);
}

static void test_respond_wrong_prekeys(void **state)
{
    struct peers p;
    struct parley_bundle b;
    struct parley_ratchet *a = NULL, *bob = NULL;
    struct parley_x3dh_header hdr;
    struct parley_prekey other;
    struct msg m;
    char out[MSG_CAP];
    (void)state;
    setup_peers(&p, true);
    assert_int_equal(parley_bundle_build(&b, &p.idb, &p.spk, &p.opk), PARLEY_OK);
    assert_int_equal(parley_x3dh_initiate(&a, &p.ida, &b), PARLEY_OK);
    enc(a, &m, "x");
    assert_int_equal(parley_ratchet_prekey_header(&hdr, m.b, m.len), PARLEY_OK);
    /* missing one-time prekey / wrong id */
    assert_int_equal(parley_x3dh_respond(&bob, &p.idb, &p.spk, NULL, &hdr), PARLEY_ERR_INVAL);
    assert_int_equal(parley_prekey_generate(&other, 43), PARLEY_OK);
    assert_int_equal(parley_x3dh_respond(&bob, &p.idb, &p.spk, &other, &hdr), PARLEY_ERR_INVAL);
    /* right id, wrong key: the session builds but the message does not open */
    other.id = 42;
    assert_int_equal(parley_x3dh_respond(&bob, &p.idb, &p.spk, &other, &hdr), PARLEY_OK);
    assert_int_equal(dec_rc(bob, &m, out, sizeof out), PARLEY_ERR_CRYPTO);
    /* responder cannot send before it has received */
    assert_int_equal(
        parley_ratchet_encrypt(bob, m.b, sizeof m.b, &m.len, (const uint8_t *)"y", 1, NULL, 0),
        PARLEY_ERR_INVAL);
    parley_ratchet_free(bob);
    /* header not a prekey message */
    assert_int_equal(parley_ratchet_prekey_header(&hdr, m.b, 10), PARLEY_ERR_INVAL);
    parley_ratchet_free(a);
    teardown_peers(&p);
}

static void test_out_of_order_loss_duplicates(void **state)
{
    struct peers p;
    struct msg m[10], r, r2;
    char text[32], out[MSG_CAP];
    int i;
    (void)state;
    setup_peers(&p, true);
    for (i = 0; i < 10; i++) {
        snprintf(text, sizeof text, "a%d", i);
        enc(p.a, &m[i], text);
    }
    /* reverse order, skipping 4 (lost) */
    for (i = 9; i >= 0; i--) {
        if (i == 4)
            continue;
        snprintf(text, sizeof text, "a%d", i);
        dec_ok(p.b, &m[i], text);
    }
    /* duplicates are rejected and leave the session usable */
    assert_int_equal(dec_rc(p.b, &m[9], out, sizeof out), PARLEY_ERR_CRYPTO);
    assert_int_equal(dec_rc(p.b, &m[0], out, sizeof out), PARLEY_ERR_CRYPTO);
    /* across a DH ratchet step: Bob replies, Alice sends a new chain; a late message from
     * Alice's previous chain still opens */
    enc(p.b, &r, "b0");
    dec_ok(p.a, &r, "b0");
    enc(p.a, &r2, "a-new");
    dec_ok(p.b, &r2, "a-new");
    dec_ok(p.b, &m[4], "a4");
    assert_int_equal(dec_rc(p.b, &m[4], out, sizeof out), PARLEY_ERR_CRYPTO);
    /* every skipped key has been used: nothing is stored any more */
    assert_int_equal(parley_ratchet_serialized_len(p.b), PARLEY_RATCHET_SERIALIZED_MIN_BYTES);
    /* previous-chain skip via PN: Bob sends 3, Alice only gets the 3rd after a new chain */
    {
        struct msg b1, b2, b3, b4;
        enc(p.b, &b1, "b1");
        enc(p.b, &b2, "b2");
        dec_ok(p.a, &b2, "b2");
        enc(p.a, &r, "ack");
        dec_ok(p.b, &r, "ack");
        enc(p.b, &b3, "b3");
        enc(p.b, &b4, "b4");
        dec_ok(p.a, &b4, "b4");
        dec_ok(p.a, &b1, "b1");
        dec_ok(p.a, &b3, "b3");
    }
    conversation(&p);
    teardown_peers(&p);
}

static void test_tampering(void **state)
{
    struct peers p;
    struct msg m, t;
    char out[MSG_CAP];
    size_t i, n;
    (void)state;
    setup_peers(&p, true);
    enc(p.b, &m, "authentic");
    dec_ok(p.a, &m, "authentic");
    enc(p.b, &m, "second one");
    /* every single-bit flip of every byte (version, type, header, ciphertext, tag) fails */
    for (i = 0; i < m.len; i++) {
        t = m;
        t.b[i] ^= 0x01;
        assert_int_not_equal(dec_rc(p.a, &t, out, sizeof out), PARLEY_OK);
        t.b[i] ^= 0x81;
        assert_int_not_equal(dec_rc(p.a, &t, out, sizeof out), PARLEY_OK);
    }
    /* truncations */
    for (i = 0; i < m.len; i++) {
        t = m;
        t.len = i;
        assert_int_not_equal(dec_rc(p.a, &t, out, sizeof out), PARLEY_OK);
    }
    /* extended */
    t = m;
    t.b[t.len++] = 0;
    assert_int_not_equal(dec_rc(p.a, &t, out, sizeof out), PARLEY_OK);
    /* caller AD must match */
    assert_int_equal(parley_ratchet_encrypt(p.b, t.b, sizeof t.b, &t.len, (const uint8_t *)"hi", 2,
                                            (const uint8_t *)"env-1", 5),
                     PARLEY_OK);
    assert_int_equal(parley_ratchet_decrypt(p.a, (uint8_t *)out, sizeof out, &n, t.b, t.len,
                                            (const uint8_t *)"env-2", 5),
                     PARLEY_ERR_CRYPTO);
    assert_true(sodium_is_zero((const uint8_t *)out, sizeof out));
    assert_int_equal(
        parley_ratchet_decrypt(p.a, (uint8_t *)out, sizeof out, &n, t.b, t.len, NULL, 0),
        PARLEY_ERR_CRYPTO);
    assert_int_equal(parley_ratchet_decrypt(p.a, (uint8_t *)out, sizeof out, &n, t.b, t.len,
                                            (const uint8_t *)"env-1", 5),
                     PARLEY_OK);
    assert_int_equal(n, 2);
    /* after all that the untouched message still decrypts: failures left no trace */
    dec_ok(p.a, &m, "second one");
    teardown_peers(&p);
}

/* A third party's session (different identity keys in the AD) cannot open the message. */
static void test_identity_binding(void **state)
{
    struct peers p;
    struct parley_ratchet *x = NULL, *y = NULL;
    uint8_t sk[32], ika[32], ikb[32], ikc[32];
    struct parley_signed_prekey spk;
    struct parley_identity idb;
    struct msg m;
    char out[MSG_CAP];
    (void)state;
    (void)p;
    randombytes_buf(sk, sizeof sk);
    randombytes_buf(ika, 32), randombytes_buf(ikb, 32), randombytes_buf(ikc, 32);
    assert_int_equal(parley_identity_keygen(&idb), PARLEY_OK);
    assert_int_equal(parley_signed_prekey_generate(&spk, &idb, 1), PARLEY_OK);
    assert_int_equal(parley_ratchet_new_initiator(&x, sk, ika, ikb, spk.pk), PARLEY_OK);
    assert_int_equal(parley_ratchet_new_responder(&y, sk, ika, ikc, spk.sk, spk.pk), PARLEY_OK);
    enc(x, &m, "bound");
    assert_int_equal(dec_rc(y, &m, out, sizeof out), PARLEY_ERR_CRYPTO);
    parley_ratchet_free(y);
    assert_int_equal(parley_ratchet_new_responder(&y, sk, ika, ikb, spk.sk, spk.pk), PARLEY_OK);
    dec_ok(y, &m, "bound");
    parley_ratchet_free(x);
    parley_ratchet_free(y);
}

static void test_skip_limits(void **state)
{
    struct peers p;
    struct msg m, first, mid;
    char out[MSG_CAP];
    unsigned i;
    (void)state;
    setup_peers(&p, true);
    /* exactly MAX_SKIP skipped: accepted */
    enc(p.a, &first, "first-skipped");
    for (i = 1; i < PARLEY_RATCHET_MAX_SKIP; i++)
        enc(p.a, &m, "skip");
    enc(p.a, &m, "lands");
    dec_ok(p.b, &m, "lands");
    assert_int_equal(parley_ratchet_serialized_len(p.b),
                     PARLEY_RATCHET_SERIALIZED_MIN_BYTES +
                         PARLEY_RATCHET_MAX_SKIP * PARLEY_RATCHET_SKIPPED_ENTRY_BYTES);
    /* MAX_SKIP + 1 ahead: refused with LIMIT, state unchanged */
    for (i = 0; i < PARLEY_RATCHET_MAX_SKIP + 1; i++)
        enc(p.a, &m, "skip");
    enc(p.a, &m, "too far");
    assert_int_equal(dec_rc(p.b, &m, out, sizeof out), PARLEY_ERR_LIMIT);
    assert_int_equal(parley_ratchet_serialized_len(p.b),
                     PARLEY_RATCHET_SERIALIZED_MIN_BYTES +
                         PARLEY_RATCHET_MAX_SKIP * PARLEY_RATCHET_SKIPPED_ENTRY_BYTES);
    teardown_peers(&p);

    /* storage cap: three chains with 1000 skipped each; the oldest are evicted */
    setup_peers(&p, true);
    enc(p.a, &first, "oldest");
    for (i = 1; i < PARLEY_RATCHET_MAX_SKIP; i++)
        enc(p.a, &m, "skip");
    enc(p.a, &m, "c1");
    dec_ok(p.b, &m, "c1");
    {
        struct msg r;
        int round;
        for (round = 0; round < 2; round++) {
            enc(p.b, &r, "turn");
            dec_ok(p.a, &r, "turn");
            enc(p.a, &mid, "middle");
            for (i = 1; i < PARLEY_RATCHET_MAX_SKIP; i++)
                enc(p.a, &m, "skip");
            enc(p.a, &m, "cN");
            dec_ok(p.b, &m, "cN");
            assert_true(parley_ratchet_serialized_len(p.b) <= PARLEY_RATCHET_SERIALIZED_MAX_BYTES);
        }
    }
    assert_int_equal(parley_ratchet_serialized_len(p.b), PARLEY_RATCHET_SERIALIZED_MAX_BYTES);
    assert_int_equal(dec_rc(p.b, &first, out, sizeof out), PARLEY_ERR_CRYPTO); /* evicted */
    dec_ok(p.b, &mid, "middle");                                               /* still kept */
    teardown_peers(&p);
}

static void test_skipped_expire(void **state)
{
    struct peers p;
    struct msg late, m;
    char out[MSG_CAP];
    unsigned i;
    (void)state;
    setup_peers(&p, true);
    enc(p.a, &late, "late");
    enc(p.a, &m, "on time");
    dec_ok(p.b, &m, "on time");
    for (i = 0; i < PARLEY_RATCHET_SKIPPED_MAX_AGE + 2; i++) {
        enc(p.b, &m, "b");
        dec_ok(p.a, &m, "b");
        enc(p.a, &m, "a");
        dec_ok(p.b, &m, "a");
    }
    assert_int_equal(dec_rc(p.b, &late, out, sizeof out), PARLEY_ERR_CRYPTO);
    teardown_peers(&p);
}

static struct parley_ratchet *clone_session(const struct parley_ratchet *s)
{
    size_t len = parley_ratchet_serialized_len(s), got = 0;
    uint8_t *buf = sodium_malloc(len);
    struct parley_ratchet *c = NULL;
    assert_non_null(buf);
    assert_int_equal(parley_ratchet_serialize(s, buf, len, &got), PARLEY_OK);
    assert_int_equal(got, len);
    assert_int_equal(parley_ratchet_deserialize(&c, buf, len), PARLEY_OK);
    sodium_free(buf);
    return c;
}

static void test_serialization(void **state)
{
    struct peers p;
    struct msg m[3], r;
    struct parley_ratchet *b2, *a2, *bad = NULL;
    uint8_t *buf;
    size_t len, got, i;
    (void)state;
    setup_peers(&p, true);
    enc(p.a, &m[0], "zero");
    enc(p.a, &m[1], "one");
    enc(p.a, &m[2], "two");
    dec_ok(p.b, &m[2], "two");
    /* Alice still pending a reply (prekey header kept); Bob holds two skipped keys */
    a2 = clone_session(p.a);
    b2 = clone_session(p.b);
    parley_ratchet_free(p.a);
    parley_ratchet_free(p.b);
    p.a = a2;
    p.b = b2;
    dec_ok(p.b, &m[0], "zero");
    enc(p.a, &r, "still prekey");
    assert_int_equal(r.b[1], PARLEY_RATCHET_TYPE_PREKEY);
    dec_ok(p.b, &r, "still prekey");
    enc(p.b, &r, "reply");
    dec_ok(p.a, &r, "reply");
    dec_ok(p.b, &m[1], "one");
    conversation(&p);

    /* malformed state is refused: truncation, extension, bad version, bad count, bad flags */
    len = parley_ratchet_serialized_len(p.b);
    buf = sodium_malloc(len + 1);
    assert_non_null(buf);
    assert_int_equal(parley_ratchet_serialize(p.b, buf, len + 1, &got), PARLEY_OK);
    assert_int_equal(parley_ratchet_serialize(p.b, buf, len - 1, &got), PARLEY_ERR_INVAL);
    assert_int_equal(parley_ratchet_serialize(p.b, buf, len, &got), PARLEY_OK);
    for (i = 0; i < len; i += 7) {
        assert_int_equal(parley_ratchet_deserialize(&bad, buf, i), PARLEY_ERR_INVAL);
        assert_null(bad);
    }
    assert_int_equal(parley_ratchet_deserialize(&bad, buf, len + 1), PARLEY_ERR_INVAL);
    buf[0] = 2;
    assert_int_equal(parley_ratchet_deserialize(&bad, buf, len), PARLEY_ERR_INVAL);
    buf[0] = 1;
    buf[1] |= 0x80;
    assert_int_equal(parley_ratchet_deserialize(&bad, buf, len), PARLEY_ERR_INVAL);
    buf[1] &= 0x7f;
    buf[2 + 32 + 5] ^= 1; /* dhs_sk no longer matches dhs_pk */
    assert_int_equal(parley_ratchet_deserialize(&bad, buf, len), PARLEY_ERR_INVAL);
    buf[2 + 32 + 5] ^= 1;
    buf[PARLEY_RATCHET_SERIALIZED_MIN_BYTES - 1] ^= 1; /* skipped count */
    assert_int_equal(parley_ratchet_deserialize(&bad, buf, len), PARLEY_ERR_INVAL);
    buf[PARLEY_RATCHET_SERIALIZED_MIN_BYTES - 1] ^= 1;
    assert_int_equal(parley_ratchet_deserialize(&bad, buf, len), PARLEY_OK);
    parley_ratchet_free(bad);
    sodium_free(buf);
    teardown_peers(&p);
}

/*
 * Forward secrecy: once Bob has decrypted a message and ratcheted, his current state
 * (what an attacker would steal) cannot decrypt that message again or earlier ones.
 * Post-compromise security: an attacker holding a copy of Bob's full state at time T
 * (including Bob's current ratchet private key B1) and seeing every ciphertext can follow
 * the conversation only until Bob's next DH ratchet step: once Bob sends under a fresh key
 * pair B2 that the attacker never saw and Alice has replied under a new key A4, the stale
 * copy decrypts nothing (spec Sec. 6.5, "break-in recovery").
 */
static void test_forward_secrecy_and_recovery(void **state)
{
    struct peers p;
    struct msg old1, old2, m, r;
    struct parley_ratchet *stolen;
    char out[MSG_CAP];
    (void)state;
    setup_peers(&p, true);
    enc(p.a, &old1, "before");
    dec_ok(p.b, &old1, "before");
    enc(p.b, &r, "reply");
    dec_ok(p.a, &r, "reply");
    enc(p.a, &old2, "before 2");
    dec_ok(p.b, &old2, "before 2");

    /* compromise of Bob's state now */
    stolen = clone_session(p.b);
    /* forward secrecy: messages already received are gone */
    assert_int_equal(dec_rc(stolen, &old1, out, sizeof out), PARLEY_ERR_CRYPTO);
    assert_int_equal(dec_rc(stolen, &old2, out, sizeof out), PARLEY_ERR_CRYPTO);
    /* until recovery the attacker follows along (expected) */
    enc(p.a, &m, "same chain");
    dec_ok(stolen, &m, "same chain");
    dec_ok(p.b, &m, "same chain");
    enc(p.b, &r, "under B1");
    dec_ok(p.a, &r, "under B1");
    enc(p.a, &m, "under A3");
    dec_ok(stolen, &m, "under A3"); /* B1 is compromised */
    dec_ok(p.b, &m, "under A3");
    /* recovery: Bob's fresh key pair B2, then Alice's A4 */
    enc(p.b, &r, "under B2");
    dec_ok(p.a, &r, "under B2");
    enc(p.a, &m, "after recovery");
    assert_int_equal(dec_rc(stolen, &m, out, sizeof out), PARLEY_ERR_CRYPTO);
    dec_ok(p.b, &m, "after recovery");
    /* the stale state cannot impersonate Bob towards Alice either */
    {
        struct msg forged;
        enc(stolen, &forged, "forged");
        assert_int_not_equal(dec_rc(p.a, &forged, out, sizeof out), PARLEY_OK);
    }
    /* and Bob's state after the step cannot open what came before it */
    assert_int_equal(dec_rc(p.b, &old2, out, sizeof out), PARLEY_ERR_CRYPTO);
    parley_ratchet_free(stolen);
    teardown_peers(&p);
}

/* The sending counter is 32 bits: at the end of a chain encrypt refuses with LIMIT. */
static void test_counter_exhausted(void **state)
{
    struct peers p;
    struct parley_ratchet *c = NULL;
    struct msg m;
    uint8_t *buf;
    size_t len, got;
    const size_t ns_off = 1 + 1 + 6 * 32 + 64 + PARLEY_X3DH_HEADER_BYTES;
    (void)state;
    setup_peers(&p, false);
    enc(p.b, &m, "x");
    dec_ok(p.a, &m, "x");
    len = parley_ratchet_serialized_len(p.b);
    buf = sodium_malloc(len);
    assert_non_null(buf);
    assert_int_equal(parley_ratchet_serialize(p.b, buf, len, &got), PARLEY_OK);
    memset(buf + ns_off, 0xff, 4);
    assert_int_equal(parley_ratchet_deserialize(&c, buf, len), PARLEY_OK);
    assert_int_equal(
        parley_ratchet_encrypt(c, m.b, sizeof m.b, &m.len, (const uint8_t *)"y", 1, NULL, 0),
        PARLEY_ERR_LIMIT);
    assert_int_equal(m.len, 0);
    parley_ratchet_free(c);
    sodium_free(buf);
    teardown_peers(&p);
}

static void test_bad_arguments(void **state)
{
    struct peers p;
    struct msg m;
    uint8_t small[8];
    size_t n = 99;
    (void)state;
    setup_peers(&p, false);
    assert_int_equal(
        parley_ratchet_encrypt(p.b, small, sizeof small, &n, (const uint8_t *)"x", 1, NULL, 0),
        PARLEY_ERR_INVAL);
    assert_int_equal(n, 0);
    assert_int_equal(parley_ratchet_encrypt(p.b, m.b, sizeof m.b, &n, NULL, 1, NULL, 0),
                     PARLEY_ERR_INVAL);
    assert_int_equal(parley_ratchet_encrypt(p.b, m.b, sizeof m.b, &n, (const uint8_t *)"x", 1, NULL,
                                            PARLEY_RATCHET_MAX_AD_BYTES + 1),
                     PARLEY_ERR_INVAL);
    enc(p.b, &m, "0123456789");
    assert_int_equal(parley_ratchet_decrypt(p.a, small, sizeof small, &n, m.b, m.len, NULL, 0),
                     PARLEY_ERR_INVAL);
    dec_ok(p.a, &m, "0123456789");
    /* empty plaintext works */
    assert_int_equal(parley_ratchet_encrypt(p.a, m.b, sizeof m.b, &m.len, NULL, 0, NULL, 0),
                     PARLEY_OK);
    assert_int_equal(parley_ratchet_decrypt(p.b, small, sizeof small, &n, m.b, m.len, NULL, 0),
                     PARLEY_OK);
    assert_int_equal(n, 0);
    parley_ratchet_free(NULL);
    teardown_peers(&p);
}

static void test_key_serialization(void **state)
{
    struct parley_identity id, id2;
    struct parley_signed_prekey spk, spk2;
    struct parley_prekey opk, opk2;
    struct parley_x3dh_header h, h2;
    uint8_t a[PARLEY_IDENTITY_SERIALIZED_BYTES], b[PARLEY_SIGNED_PREKEY_SERIALIZED_BYTES],
        c[PARLEY_PREKEY_SERIALIZED_BYTES], d[PARLEY_X3DH_HEADER_BYTES];
    (void)state;
    assert_int_equal(parley_identity_keygen(&id), PARLEY_OK);
    assert_int_equal(parley_identity_serialize(&id, a), PARLEY_OK);
    assert_int_equal(parley_identity_deserialize(&id2, a, sizeof a), PARLEY_OK);
    assert_memory_equal(&id, &id2, sizeof id);
    assert_int_equal(parley_identity_deserialize(&id2, a, sizeof a - 1), PARLEY_ERR_INVAL);
    assert_true(sodium_is_zero((const uint8_t *)&id2, sizeof id2));

    assert_int_equal(parley_signed_prekey_generate(&spk, &id, 0xdeadbeef), PARLEY_OK);
    assert_int_equal(parley_signed_prekey_serialize(&spk, b), PARLEY_OK);
    assert_int_equal(parley_signed_prekey_deserialize(&spk2, b, sizeof b), PARLEY_OK);
    assert_memory_equal(&spk, &spk2, sizeof spk);
    b[40] ^= 1;
    assert_int_equal(parley_signed_prekey_deserialize(&spk2, b, sizeof b), PARLEY_ERR_INVAL);

    assert_int_equal(parley_prekey_generate(&opk, 5), PARLEY_OK);
    assert_int_equal(parley_prekey_serialize(&opk, c), PARLEY_OK);
    assert_int_equal(parley_prekey_deserialize(&opk2, c, sizeof c), PARLEY_OK);
    assert_memory_equal(&opk, &opk2, sizeof opk);

    memset(&h, 0, sizeof h);
    memcpy(h.identity_pk, id.pk, 32);
    h.spk_id = 9;
    h.has_opk = true;
    h.opk_id = 77;
    assert_int_equal(parley_x3dh_header_serialize(&h, d), PARLEY_OK);
    assert_int_equal(parley_x3dh_header_parse(&h2, d, sizeof d), PARLEY_OK);
    assert_memory_equal(&h, &h2, sizeof h);
    d[69] = 2;
    assert_int_equal(parley_x3dh_header_parse(&h2, d, sizeof d), PARLEY_ERR_INVAL);
    d[69] = 0; /* no flag but an id: not canonical */
    assert_int_equal(parley_x3dh_header_parse(&h2, d, sizeof d), PARLEY_ERR_INVAL);
    parley_identity_wipe(&id);
    parley_identity_wipe(&id2);
}

static void test_bundle_parse(void **state)
{
    struct parley_identity id;
    struct parley_signed_prekey spk;
    struct parley_prekey opk;
    struct parley_bundle b, b2;
    uint8_t buf[PARLEY_BUNDLE_MAX_BYTES + 1];
    size_t len, i;
    (void)state;
    assert_int_equal(parley_identity_keygen(&id), PARLEY_OK);
    assert_int_equal(parley_signed_prekey_generate(&spk, &id, 3), PARLEY_OK);
    assert_int_equal(parley_prekey_generate(&opk, 4), PARLEY_OK);
    assert_int_equal(parley_bundle_build(&b, &id, &spk, &opk), PARLEY_OK);
    assert_int_equal(parley_bundle_serialize(&b, buf, sizeof buf, &len), PARLEY_OK);
    assert_int_equal(parley_bundle_parse(&b2, buf, len), PARLEY_OK);
    assert_memory_equal(&b, &b2, sizeof b);
    assert_int_equal(parley_bundle_serialize(&b, buf, PARLEY_BUNDLE_MAX_BYTES - 1, &len),
                     PARLEY_ERR_INVAL);
    assert_int_equal(parley_bundle_serialize(&b, buf, sizeof buf, &len), PARLEY_OK);
    for (i = 0; i < len + 1; i++)
        if (i != PARLEY_BUNDLE_MIN_BYTES && i != len)
            assert_int_equal(parley_bundle_parse(&b2, buf, i), PARLEY_ERR_INVAL);
    /* min length with the flag set: refused */
    assert_int_equal(parley_bundle_parse(&b2, buf, PARLEY_BUNDLE_MIN_BYTES), PARLEY_ERR_INVAL);
    buf[0] = 2;
    assert_int_equal(parley_bundle_parse(&b2, buf, len), PARLEY_ERR_INVAL);
    buf[0] = 1;
    buf[133] = 3;
    assert_int_equal(parley_bundle_parse(&b2, buf, len), PARLEY_ERR_INVAL);
    buf[133] = 1;
    /* tampered signature parses but does not verify */
    buf[100] ^= 1;
    assert_int_equal(parley_bundle_parse(&b2, buf, len), PARLEY_OK);
    assert_int_equal(parley_bundle_verify(&b2), PARLEY_ERR_CRYPTO);
    /* a small-order identity key is refused at parse */
    memset(buf + 1, 0, 32);
    buf[1] = 1; /* the Ed25519 identity point (0, 1) */
    assert_int_equal(parley_bundle_parse(&b2, buf, len), PARLEY_ERR_INVAL);
    parley_identity_wipe(&id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x3dh_with_opk),
        cmocka_unit_test(test_x3dh_without_opk),
        cmocka_unit_test(test_prekey_messages_until_reply),
        cmocka_unit_test(test_bad_bundle_signature),
        cmocka_unit_test(test_respond_wrong_prekeys),
        cmocka_unit_test(test_out_of_order_loss_duplicates),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_identity_binding),
        cmocka_unit_test(test_skip_limits),
        cmocka_unit_test(test_skipped_expire),
        cmocka_unit_test(test_serialization),
        cmocka_unit_test(test_forward_secrecy_and_recovery),
        cmocka_unit_test(test_counter_exhausted),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_key_serialization),
        cmocka_unit_test(test_bundle_parse),
    };
    if (parley_crypto_init() != PARLEY_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
