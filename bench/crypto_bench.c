/*
 * crypto_bench.c — single-core throughput of the crypto core, printed as name=value lines:
 *   ratchet_pairs_per_s           encrypt + decrypt of a 200-byte message, one direction
 *                                 (symmetric-key ratchet steps only: the common case of a
 *                                 burst of messages)
 *   ratchet_pingpong_pairs_per_s  the same with the direction alternating every message
 *                                 (a DH ratchet step on every message: the worst case)
 *   x3dh_setups_per_s             initiate (verify bundle, 4 DH) + respond (4 DH)
 *   oprf_blind_evaluate_per_s     server-side BlindEvaluate
 * Rates are per second of this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), i.e. per core,
 * so other load on the machine does not skew them much.
 * Usage: crypto_bench [CPU seconds per measurement, default 2]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parley/crypto.h"

#define MSG_BYTES 200

/* CPU time of this thread: "per second on one core" even on a busy machine. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, enum parley_err rc)
{
    fprintf(stderr, "crypto_bench: %s: %s\n", what, parley_strerror(rc));
    exit(1);
}

struct pair {
    struct parley_identity ida, idb;
    struct parley_signed_prekey spk;
    struct parley_prekey opk;
    struct parley_ratchet *a, *b;
};

static void setup(struct pair *p)
{
    struct parley_bundle bundle;
    struct parley_x3dh_header hdr;
    uint8_t ct[512], pt[512];
    size_t ct_len, pt_len;
    enum parley_err rc;

    if ((rc = parley_identity_keygen(&p->ida)) || (rc = parley_identity_keygen(&p->idb)) ||
        (rc = parley_signed_prekey_generate(&p->spk, &p->idb, 1)) ||
        (rc = parley_prekey_generate(&p->opk, 1)) ||
        (rc = parley_bundle_build(&bundle, &p->idb, &p->spk, &p->opk)) ||
        (rc = parley_x3dh_initiate(&p->a, &p->ida, &bundle)) ||
        (rc = parley_ratchet_encrypt(p->a, ct, sizeof ct, &ct_len, (const uint8_t *)"hi", 2, NULL,
                                     0)) ||
        (rc = parley_ratchet_prekey_header(&hdr, ct, ct_len)) ||
        (rc = parley_x3dh_respond(&p->b, &p->idb, &p->spk, &p->opk, &hdr)) ||
        (rc = parley_ratchet_decrypt(p->b, pt, sizeof pt, &pt_len, ct, ct_len, NULL, 0)) ||
        (rc = parley_ratchet_encrypt(p->b, ct, sizeof ct, &ct_len, (const uint8_t *)"ok", 2, NULL,
                                     0)) ||
        (rc = parley_ratchet_decrypt(p->a, pt, sizeof pt, &pt_len, ct, ct_len, NULL, 0)))
        die("setup", rc);
}

static double bench_ratchet(double secs, int pingpong)
{
    struct pair p;
    uint8_t msg[MSG_BYTES], ct[MSG_BYTES + PARLEY_RATCHET_PREKEY_OVERHEAD_BYTES],
        pt[MSG_BYTES + 64];
    size_t ct_len, pt_len;
    unsigned long n = 0;
    double t0, t;
    enum parley_err rc;

    memset(msg, 'x', sizeof msg);
    setup(&p);
    t0 = now();
    do {
        int i;
        for (i = 0; i < 1000; i++, n++) {
            struct parley_ratchet *from = (pingpong && (n & 1)) ? p.b : p.a;
            struct parley_ratchet *to = from == p.a ? p.b : p.a;
            if ((rc = parley_ratchet_encrypt(from, ct, sizeof ct, &ct_len, msg, sizeof msg, NULL,
                                             0)) ||
                (rc = parley_ratchet_decrypt(to, pt, sizeof pt, &pt_len, ct, ct_len, NULL, 0)))
                die("ratchet", rc);
        }
        t = now() - t0;
    } while (t < secs);
    parley_ratchet_free(p.a);
    parley_ratchet_free(p.b);
    return (double)n / t;
}

static double bench_x3dh(double secs)
{
    struct pair p;
    struct parley_bundle bundle;
    unsigned long n = 0;
    double t0, t;
    enum parley_err rc;

    setup(&p);
    if ((rc = parley_bundle_build(&bundle, &p.idb, &p.spk, &p.opk)))
        die("bundle", rc);
    t0 = now();
    do {
        int i;
        for (i = 0; i < 100; i++, n++) {
            struct parley_ratchet *a = NULL, *b = NULL;
            struct parley_x3dh_header hdr;
            /* the responder reads the X3DH header from the first (here empty) message */
            uint8_t ct[256];
            size_t ct_len;
            if ((rc = parley_x3dh_initiate(&a, &p.ida, &bundle)) ||
                (rc = parley_ratchet_encrypt(a, ct, sizeof ct, &ct_len, NULL, 0, NULL, 0)) ||
                (rc = parley_ratchet_prekey_header(&hdr, ct, ct_len)) ||
                (rc = parley_x3dh_respond(&b, &p.idb, &p.spk, &p.opk, &hdr)))
                die("x3dh", rc);
            parley_ratchet_free(a);
            parley_ratchet_free(b);
        }
        t = now() - t0;
    } while (t < secs);
    parley_ratchet_free(p.a);
    parley_ratchet_free(p.b);
    return (double)n / t;
}

static double bench_oprf(double secs)
{
    uint8_t sk[PARLEY_OPRF_SCALAR_BYTES], pk[PARLEY_OPRF_ELEMENT_BYTES], blind[32], blinded[32],
        ev[32];
    unsigned long n = 0;
    double t0, t;
    enum parley_err rc;

    if ((rc = parley_oprf_keygen(sk, pk)) ||
        (rc = parley_oprf_blind(blind, blinded, (const uint8_t *)"+48123456789", 12)))
        die("oprf setup", rc);
    t0 = now();
    do {
        int i;
        for (i = 0; i < 1000; i++, n++)
            if ((rc = parley_oprf_blind_evaluate(ev, sk, blinded)))
                die("oprf", rc);
        t = now() - t0;
    } while (t < secs);
    return (double)n / t;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? strtod(argv[1], NULL) : 2.0;

    if (secs <= 0 || parley_crypto_init() != PARLEY_OK) {
        fprintf(stderr, "usage: crypto_bench [seconds]\n");
        return 2;
    }
    printf("message_bytes=%d\n", MSG_BYTES);
    printf("ratchet_pairs_per_s=%.0f\n", bench_ratchet(secs, 0));
    printf("ratchet_pingpong_pairs_per_s=%.0f\n", bench_ratchet(secs, 1));
    printf("x3dh_setups_per_s=%.0f\n", bench_x3dh(secs));
    printf("oprf_blind_evaluate_per_s=%.0f\n", bench_oprf(secs));
    return 0;
}
