/*
 * test_ratelimit.c — token buckets: burst, refill, Retry-After, independence of keys,
 * disabled limiters, bounded memory with eviction, concurrent use, and taking through a
 * key's precomputed digest.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <sodium.h>

#include "ratelimit.h"

#define S 1000000ull /* one second in us */

static void test_burst_and_refill(void **state)
{
    (void)state;
    struct ratelimit *rl = NULL;
    assert_int_equal(ratelimit_new(5, 60, 0, &rl), PARLEY_OK);
    uint64_t t0 = 1000 * S;
    uint32_t retry = 0;
    for (int i = 0; i < 5; i++)
        assert_true(ratelimit_take_at(rl, "alice", t0, &retry));
    assert_false(ratelimit_take_at(rl, "alice", t0, &retry));
    /* 5 per 60 s: one token every 12 s. */
    assert_int_equal(retry, 12);
    assert_false(ratelimit_take_at(rl, "alice", t0 + 11 * S, &retry));
    assert_int_equal(retry, 1);
    assert_true(ratelimit_take_at(rl, "alice", t0 + 12 * S, &retry));
    assert_false(ratelimit_take_at(rl, "alice", t0 + 12 * S, &retry));
    /* Other keys have their own buckets. */
    assert_true(ratelimit_take_at(rl, "bob", t0, &retry));
    /* A long pause refills to the burst, not beyond. */
    for (int i = 0; i < 5; i++)
        assert_true(ratelimit_take_at(rl, "alice", t0 + 10000 * S, NULL));
    assert_false(ratelimit_take_at(rl, "alice", t0 + 10000 * S, NULL));
    /* Time going backwards (it cannot with a monotonic clock, but) refills nothing. */
    assert_false(ratelimit_take_at(rl, "alice", t0, NULL));
    assert_int_equal(ratelimit_size(rl), 2);
    ratelimit_free(rl);
}

/* A key's digest, computed once, takes from the key's own bucket; a disabled limiter's
 * digest is zeros and always allowed. */
static void test_digest_shares_the_keys_bucket(void **state)
{
    (void)state;
    struct ratelimit *rl = NULL, *off = NULL;
    uint8_t d[RATELIMIT_DIGEST_BYTES], zero[RATELIMIT_DIGEST_BYTES] = {0};
    uint32_t retry = 0;
    assert_int_equal(ratelimit_new(3, 60, 0, &rl), PARLEY_OK);
    ratelimit_digest(rl, "device-1", d);
    assert_memory_not_equal(d, zero, sizeof d);
    assert_true(ratelimit_take_at(rl, "device-1", 5 * S, NULL));
    assert_true(ratelimit_take_digest(rl, d, 5 * S, NULL));
    assert_true(ratelimit_take_at(rl, "device-1", 5 * S, NULL));
    assert_false(ratelimit_take_digest(rl, d, 5 * S, &retry));
    assert_int_equal(retry, 20);
    assert_true(ratelimit_take_at(rl, "device-2", 5 * S, NULL));
    assert_int_equal(ratelimit_size(rl), 2);
    assert_int_equal(ratelimit_new(0, 60, 0, &off), PARLEY_OK);
    ratelimit_digest(off, "device-1", d);
    assert_memory_equal(d, zero, sizeof d);
    for (int i = 0; i < 10; i++)
        assert_true(ratelimit_take_digest(off, d, 5 * S, NULL));
    ratelimit_digest(NULL, "device-1", d);
    assert_true(ratelimit_take_digest(NULL, d, 5 * S, NULL));
    ratelimit_free(rl);
    ratelimit_free(off);
}

static void test_retry_after_hour(void **state)
{
    (void)state;
    struct ratelimit *rl = NULL;
    uint32_t retry = 0;
    assert_int_equal(ratelimit_new(1, 3600, 16, &rl), PARLEY_OK);
    assert_true(ratelimit_take_at(rl, "10.0.0.1", 5 * S, &retry));
    assert_false(ratelimit_take_at(rl, "10.0.0.1", 5 * S, &retry));
    assert_int_equal(retry, 3600);
    assert_false(ratelimit_take_at(rl, "10.0.0.1", 5 * S + 1800 * S + 1, &retry));
    assert_int_equal(retry, 1800);
    assert_true(ratelimit_take_at(rl, "10.0.0.1", 3605 * S, &retry));
    ratelimit_free(rl);
}

static void test_disabled_and_args(void **state)
{
    (void)state;
    struct ratelimit *rl = NULL;
    assert_int_equal(ratelimit_new(0, 60, 16, &rl), PARLEY_OK);
    for (int i = 0; i < 1000; i++)
        assert_true(ratelimit_take_at(rl, "x", 0, NULL));
    ratelimit_free(rl);
    assert_int_equal(ratelimit_new(1, 0, 16, &rl), PARLEY_ERR_INVAL);
    assert_int_equal(ratelimit_new(1, 1, 16, NULL), PARLEY_ERR_INVAL);
    ratelimit_free(NULL);
    assert_true(ratelimit_take(NULL, "x", NULL));
    assert_int_equal(ratelimit_size(NULL), 0);
}

static void test_bounded_memory(void **state)
{
    (void)state;
    struct ratelimit *rl = NULL;
    assert_int_equal(ratelimit_new(3, 60, 64, &rl), PARLEY_OK);
    char key[32];
    /* An attacker floods with fresh keys: memory stays bounded. */
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_true(ratelimit_take_at(rl, key, 1 * S, NULL));
    }
    assert_true(ratelimit_size(rl) <= 64);

    /* A key that spent its whole burst is kept over keys that spent less. */
    struct ratelimit *r2 = NULL;
    assert_int_equal(ratelimit_new(3, 3600, 256, &r2), PARLEY_OK);
    for (int i = 0; i < 3; i++)
        assert_true(ratelimit_take_at(r2, "victim", 1 * S, NULL));
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "flood%d", i);
        (void)ratelimit_take_at(r2, key, 2 * S, NULL);
    }
    assert_false(ratelimit_take_at(r2, "victim", 2 * S, NULL));
    /* Full buckets are forgotten first and lose nothing: a key that comes back after
     * its bucket refilled gets its full burst. */
    for (int i = 0; i < 3; i++)
        assert_true(ratelimit_take_at(r2, "k-late", 1 * S + 7200 * S, NULL));
    ratelimit_free(r2);
    ratelimit_free(rl);
}

struct worker {
    struct ratelimit *rl;
    int allowed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 1000; i++)
        if (ratelimit_take_at(w->rl, "shared", 5 * S, NULL))
            w->allowed++;
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    struct ratelimit *rl = NULL;
    assert_int_equal(ratelimit_new(100, 60, 0, &rl), PARLEY_OK);
    pthread_t t[8];
    struct worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){.rl = rl};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += w[i].allowed;
    }
    assert_int_equal(total, 100);
    assert_true(ratelimit_take(rl, "other", NULL));
    ratelimit_free(rl);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_and_refill),  cmocka_unit_test(test_retry_after_hour),
        cmocka_unit_test(test_disabled_and_args), cmocka_unit_test(test_bounded_memory),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_digest_shares_the_keys_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
