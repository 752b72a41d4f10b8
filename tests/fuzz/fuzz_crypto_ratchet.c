/*
 * fuzz_crypto_ratchet.c — libFuzzer target for the crypto core's parsers: Double Ratchet
 * decrypt (single messages and sequences), session-state deserialisation, prekey bundle
 * and X3DH header parsing, Sender Key distribution / state / message parsing.
 *
 * libsodium's randombytes is replaced by a deterministic ChaCha20 stream that is reset
 * for every input, so the sessions built per input are identical from run to run and the
 * seed corpus (valid messages and states) reaches the authenticated paths. The first input
 * byte selects the target. Invariants checked (trap on violation): a session or bundle
 * that parses serialises back to the same bytes; failed decrypts zero their output.
 *
 * Build with -DPARLEY_FUZZ_SEED_MAIN (and without -fsanitize=fuzzer) to get a small
 * program that writes the seed corpus: ./a.out tests/fuzz/corpus/fuzz_crypto_ratchet
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "parley/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_counter;

static void rng_buf(void *const buf, const size_t size)
{
    static const uint8_t key[crypto_stream_chacha20_KEYBYTES] = {0x70, 0x61, 0x72,
                                                                 0x6c, 0x65, 0x79};
    uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
    uint64_t c = rng_counter++;
    int i;
    for (i = 0; i < 8; i++)
        nonce[i] = (uint8_t)(c >> (8 * i));
    crypto_stream_chacha20(buf, size, nonce, key);
}

static uint32_t rng_random(void)
{
    uint32_t v;
    rng_buf(&v, sizeof v);
    return v;
}

static const char *rng_name(void)
{
    return "parley-fuzz-deterministic";
}

static struct randombytes_implementation rng_impl = {rng_name, rng_random, NULL,
                                                     NULL,     rng_buf,    NULL};

#define CAP 2048

struct world {
    struct parley_identity ida, idb;
    struct parley_signed_prekey spk;
    struct parley_prekey opk;
    struct parley_ratchet *a, *b;
    struct parley_sender_key *own, *recv;
    uint8_t next_msg[CAP]; /* a valid message Alice -> Bob not yet delivered */
    size_t next_len;
    uint8_t group_msg[CAP];
    size_t group_len;
};

static void world_free(struct world *w)
{
    parley_ratchet_free(w->a);
    parley_ratchet_free(w->b);
    parley_sender_key_free(w->own);
    parley_sender_key_free(w->recv);
    sodium_memzero(w, sizeof *w);
}

/* Deterministic world: X3DH, one round trip, one pending message, one sender key. */
static int world_build(struct world *w)
{
    static const uint8_t seed_a[32] = {1}, seed_b[32] = {2};
    struct parley_bundle bundle;
    struct parley_x3dh_header hdr;
    uint8_t ct[CAP], pt[CAP], dist[PARLEY_SENDER_KEY_DISTRIBUTION_BYTES];
    size_t ct_len, pt_len;

    memset(w, 0, sizeof *w);
    rng_counter = 0;
    if (parley_identity_from_seed(&w->ida, seed_a) || parley_identity_from_seed(&w->idb, seed_b) ||
        parley_signed_prekey_generate(&w->spk, &w->idb, 1) || parley_prekey_generate(&w->opk, 2) ||
        parley_bundle_build(&bundle, &w->idb, &w->spk, &w->opk) ||
        parley_x3dh_initiate(&w->a, &w->ida, &bundle))
        return -1;
    if (parley_ratchet_encrypt(w->a, ct, sizeof ct, &ct_len, (const uint8_t *)"m0", 2, NULL, 0) ||
        parley_ratchet_prekey_header(&hdr, ct, ct_len) ||
        parley_x3dh_respond(&w->b, &w->idb, &w->spk, &w->opk, &hdr) ||
        parley_ratchet_decrypt(w->b, pt, sizeof pt, &pt_len, ct, ct_len, NULL, 0))
        return -1;
    if (parley_ratchet_encrypt(w->b, ct, sizeof ct, &ct_len, (const uint8_t *)"r0", 2, NULL, 0) ||
        parley_ratchet_decrypt(w->a, pt, sizeof pt, &pt_len, ct, ct_len, NULL, 0))
        return -1;
    if (parley_ratchet_encrypt(w->a, w->next_msg, sizeof w->next_msg, &w->next_len,
                               (const uint8_t *)"m1", 2, NULL, 0))
        return -1;
    if (parley_sender_key_new(&w->own) || parley_sender_key_distribution(w->own, dist) ||
        parley_sender_key_from_distribution(&w->recv, dist, sizeof dist) ||
        parley_sender_key_encrypt(w->own, w->group_msg, sizeof w->group_msg, &w->group_len,
                                  (const uint8_t *)"g0", 2))
        return -1;
    return 0;
}

static void check_zero_on_fail(enum parley_err rc, const uint8_t *out, size_t cap)
{
    if (rc != PARLEY_OK && !sodium_is_zero(out, cap))
        __builtin_trap();
}

static void fuzz_decrypt(struct parley_ratchet *s, const uint8_t *d, size_t n)
{
    static uint8_t out[CAP + PARLEY_RATCHET_MAX_PLAINTEXT_BYTES];
    size_t len = 0;
    enum parley_err rc;
    size_t cap = n < sizeof out ? n : sizeof out;

    rc = parley_ratchet_decrypt(s, out, cap, &len, d, n, NULL, 0);
    check_zero_on_fail(rc, out, cap);
    if (rc == PARLEY_OK && len > cap)
        __builtin_trap();
}

static void fuzz_state(struct world *w, const uint8_t *d, size_t n)
{
    struct parley_ratchet *s = NULL;
    uint8_t *buf;
    size_t len, got = 0;

    if (parley_ratchet_deserialize(&s, d, n) != PARLEY_OK)
        return;
    len = parley_ratchet_serialized_len(s);
    buf = malloc(len ? len : 1);
    if (!buf)
        abort();
    if (len != n || parley_ratchet_serialize(s, buf, len, &got) != PARLEY_OK || got != n ||
        memcmp(buf, d, n) != 0)
        __builtin_trap();
    free(buf);
    fuzz_decrypt(s, w->next_msg, w->next_len);
    parley_ratchet_free(s);
}

static void fuzz_bundle(struct world *w, const uint8_t *d, size_t n)
{
    struct parley_bundle b;
    struct parley_x3dh_header h;
    uint8_t buf[PARLEY_BUNDLE_MAX_BYTES], hb[PARLEY_X3DH_HEADER_BYTES];
    size_t len;

    if (parley_bundle_parse(&b, d, n) == PARLEY_OK) {
        struct parley_ratchet *s = NULL;
        if (parley_bundle_serialize(&b, buf, sizeof buf, &len) != PARLEY_OK || len != n ||
            memcmp(buf, d, n) != 0)
            __builtin_trap();
        if (parley_x3dh_initiate(&s, &w->ida, &b) == PARLEY_OK &&
            parley_bundle_verify(&b) != PARLEY_OK)
            __builtin_trap();
        parley_ratchet_free(s);
    }
    if (parley_x3dh_header_parse(&h, d, n) == PARLEY_OK) {
        if (parley_x3dh_header_serialize(&h, hb) != PARLEY_OK || memcmp(hb, d, n) != 0)
            __builtin_trap();
    }
    if (parley_ratchet_prekey_header(&h, d, n) == PARLEY_OK) {
        struct parley_ratchet *s = NULL;
        if (parley_x3dh_respond(&s, &w->idb, &w->spk, h.has_opk ? &w->opk : NULL, &h) == PARLEY_OK)
            fuzz_decrypt(s, d, n);
        parley_ratchet_free(s);
    }
}

static void fuzz_sender_key(struct world *w, const uint8_t *d, size_t n)
{
    static uint8_t out[CAP + PARLEY_SENDER_KEY_MAX_PLAINTEXT_BYTES];
    struct parley_sender_key *s = NULL;
    size_t len = 0, cap = n < sizeof out ? n : sizeof out;
    enum parley_err rc;

    if (parley_sender_key_from_distribution(&s, d, n) == PARLEY_OK) {
        rc = parley_sender_key_decrypt(s, out, cap, &len, w->group_msg, w->group_len);
        check_zero_on_fail(rc, out, cap);
        parley_sender_key_free(s);
        s = NULL;
    }
    if (parley_sender_key_deserialize(&s, d, n) == PARLEY_OK) {
        uint8_t *buf = malloc(n ? n : 1);
        size_t got = 0;
        if (!buf)
            abort();
        if (parley_sender_key_serialized_len(s) != n ||
            parley_sender_key_serialize(s, buf, n, &got) != PARLEY_OK || memcmp(buf, d, n) != 0)
            __builtin_trap();
        free(buf);
        parley_sender_key_free(s);
    }
    rc = parley_sender_key_decrypt(w->recv, out, cap, &len, d, n);
    check_zero_on_fail(rc, out, cap);
}

/* Sequence: [len_hi len_lo bytes]* fed to Bob then Alice alternately by a flag bit. */
static void fuzz_sequence(struct world *w, const uint8_t *d, size_t n)
{
    size_t pos = 0;
    int steps = 0;

    while (pos + 2 <= n && steps++ < 16) {
        size_t len = ((size_t)(d[pos] & 0x7f) << 8) | d[pos + 1];
        struct parley_ratchet *to = (d[pos] & 0x80) ? w->a : w->b;
        pos += 2;
        if (len > n - pos)
            len = n - pos;
        fuzz_decrypt(to, d + pos, len);
        pos += len;
    }
    fuzz_decrypt(w->b, w->next_msg, w->next_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct world w;

    if (!ready) {
        if (randombytes_set_implementation(&rng_impl) != 0 || parley_crypto_init() != PARLEY_OK)
            abort();
        ready = 1;
    }
    if (size < 1)
        return 0;
    if (world_build(&w) != 0)
        abort();
    switch (data[0] % 5) {
    case 0:
        fuzz_decrypt(w.b, data + 1, size - 1);
        fuzz_decrypt(w.a, data + 1, size - 1);
        break;
    case 1: fuzz_state(&w, data + 1, size - 1); break;
    case 2: fuzz_bundle(&w, data + 1, size - 1); break;
    case 3: fuzz_sender_key(&w, data + 1, size - 1); break;
    default: fuzz_sequence(&w, data + 1, size - 1); break;
    }
    world_free(&w);
    return 0;
}

#ifdef PARLEY_FUZZ_SEED_MAIN
static void write_seed(const char *dir, const char *name, uint8_t mode, const uint8_t *d, size_t n)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(&mode, 1, 1, f) != 1 || (n && fwrite(d, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    struct world w;
    uint8_t buf[200000], seq[CAP];
    size_t len;
    struct parley_bundle b;

    if (argc != 2 || randombytes_set_implementation(&rng_impl) != 0 ||
        parley_crypto_init() != PARLEY_OK)
        return 2;
    if (world_build(&w) != 0)
        return 1;
    /* self-check: a second world is identical, so the seed message opens in the fuzzer */
    {
        struct world w2;
        uint8_t pt[CAP];
        size_t pt_len;
        if (world_build(&w2) != 0 ||
            parley_ratchet_decrypt(w2.b, pt, sizeof pt, &pt_len, w.next_msg, w.next_len, NULL, 0) ||
            parley_sender_key_decrypt(w2.recv, pt, sizeof pt, &pt_len, w.group_msg, w.group_len)) {
            fprintf(stderr, "world is not deterministic\n");
            return 1;
        }
        world_free(&w2);
    }
    write_seed(argv[1], "msg_normal", 0, w.next_msg, w.next_len);
    if (parley_ratchet_serialize(w.b, buf, sizeof buf, &len) != PARLEY_OK)
        return 1;
    write_seed(argv[1], "state_bob", 1, buf, len);
    if (parley_bundle_build(&b, &w.idb, &w.spk, &w.opk) != PARLEY_OK ||
        parley_bundle_serialize(&b, buf, sizeof buf, &len) != PARLEY_OK)
        return 1;
    write_seed(argv[1], "bundle_opk", 2, buf, len);
    b.has_opk = false;
    if (parley_bundle_serialize(&b, buf, sizeof buf, &len) != PARLEY_OK)
        return 1;
    write_seed(argv[1], "bundle_no_opk", 2, buf, len);
    if (parley_sender_key_distribution(w.own, buf) != PARLEY_OK)
        return 1;
    write_seed(argv[1], "sk_distribution", 3, buf, PARLEY_SENDER_KEY_DISTRIBUTION_BYTES);
    write_seed(argv[1], "sk_message", 3, w.group_msg, w.group_len);
    /* sequence: the pending message twice (second is a replay) */
    seq[0] = (uint8_t)(w.next_len >> 8);
    seq[1] = (uint8_t)w.next_len;
    memcpy(seq + 2, w.next_msg, w.next_len);
    memcpy(seq + 2 + w.next_len, seq, 2 + w.next_len);
    write_seed(argv[1], "sequence_replay", 4, seq, 2 * (2 + w.next_len));
    world_free(&w);
    /* a prekey message: rebuild and capture the first message */
    {
        static const uint8_t seed_a[32] = {1}, seed_b[32] = {2};
        struct parley_identity ia, ib;
        struct parley_signed_prekey spk;
        struct parley_prekey opk;
        struct parley_ratchet *a = NULL;
        rng_counter = 0;
        if (parley_identity_from_seed(&ia, seed_a) || parley_identity_from_seed(&ib, seed_b) ||
            parley_signed_prekey_generate(&spk, &ib, 1) || parley_prekey_generate(&opk, 2) ||
            parley_bundle_build(&b, &ib, &spk, &opk) || parley_x3dh_initiate(&a, &ia, &b) ||
            parley_ratchet_encrypt(a, buf, sizeof buf, &len, (const uint8_t *)"m0", 2, NULL, 0))
            return 1;
        write_seed(argv[1], "msg_prekey", 2, buf, len);
        parley_ratchet_free(a);
    }
    return 0;
}
#endif
