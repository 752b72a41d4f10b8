/*
 * test_seen_filter.c — the Bloom filter of remembered message ids (server/store/
 * seen_filter.h): no key added is ever reported absent; at the load it was sized for,
 * false positives stay near the designed 0.3 %; a filter that could not be allocated
 * answers "maybe" to everything; "full" once past its size; grown far past its size it
 * still has no false negatives and few false positives; the hash tells apart keys that
 * differ in the device or in one byte of the id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "store/seen_filter.h"

#define KEYS (SEEN_FILTER_MIN_KEYS * 2)

/* Key i: a device id out of 50 and a 16-byte id derived from i (and `salt`). */
static uint64_t key(const struct seen_filter *f, uint32_t i, uint32_t salt)
{
    char dev[33];
    snprintf(dev, sizeof dev, "%032u", i % 50);
    uint8_t id[16] = {0};
    memcpy(id, &i, sizeof i);
    memcpy(id + 4, &salt, sizeof salt);
    return seen_filter_hash(f, dev, id, sizeof id);
}

static void test_no_false_negatives_and_few_false_positives(void **state)
{
    (void)state;
    struct seen_filter f;
    assert_int_equal(seen_filter_init(&f, KEYS), PARLEY_OK);
    for (uint32_t i = 0; i < KEYS; i++) {
        assert_false(seen_filter_full(&f));
        seen_filter_add(&f, key(&f, i, 0));
    }
    for (uint32_t i = 0; i < KEYS; i++)
        assert_true(seen_filter_maybe(&f, key(&f, i, 0)));
    size_t fp = 0;
    for (uint32_t i = 0; i < KEYS; i++)
        fp += seen_filter_maybe(&f, key(&f, i, 1));
    double rate = (double)fp / KEYS;
    printf("false positives at capacity: %.3f %%\n", rate * 100);
    assert_true(rate < 0.015);
    seen_filter_add(&f, key(&f, 0, 2));
    assert_true(seen_filter_full(&f));
    seen_filter_free(&f);
}

static void test_empty_filter_says_maybe(void **state)
{
    (void)state;
    struct seen_filter f;
    memset(&f, 0, sizeof f); /* what a failed seen_filter_init leaves */
    assert_true(seen_filter_maybe(&f, 12345));
    seen_filter_add(&f, 12345); /* ignored, no crash */
    assert_true(seen_filter_maybe(&f, 999));
    seen_filter_free(&f);
}

static void test_fresh_filter_says_absent(void **state)
{
    (void)state;
    struct seen_filter f;
    assert_int_equal(seen_filter_init(&f, 0), PARLEY_OK);
    assert_int_equal(f.n_layers, 1);
    assert_int_equal(f.layer[0].capacity, SEEN_FILTER_MIN_KEYS);
    size_t hits = 0;
    for (uint32_t i = 0; i < 10000; i++)
        hits += seen_filter_maybe(&f, key(&f, i, 0));
    assert_int_equal(hits, 0);
    seen_filter_free(&f);
}

/* Far past its first size, the filter grows layers instead of filling up: the keys of a
 * busy server between two purges. */
static void test_grows_without_losing_keys(void **state)
{
    (void)state;
    struct seen_filter f;
    const uint32_t n = SEEN_FILTER_MIN_KEYS * 150; /* 614,400: past four layers */
    assert_int_equal(seen_filter_init(&f, 0), PARLEY_OK);
    for (uint32_t i = 0; i < n; i++)
        seen_filter_add(&f, key(&f, i, 0));
    assert_true(seen_filter_full(&f));
    assert_int_equal(f.n_layers, 5); /* 4,096 + 16 Ki + 64 Ki + 256 Ki + 1 Mi keys */
    for (uint32_t i = 0; i < n; i++)
        assert_true(seen_filter_maybe(&f, key(&f, i, 0)));
    size_t fp = 0;
    const uint32_t probes = 200000;
    for (uint32_t i = 0; i < probes; i++)
        fp += seen_filter_maybe(&f, key(&f, i, 1));
    /* Four full layers at ~0.3 % each, the newest lightly filled. */
    printf("seen_filter: %zu layers, %zu false positives in %u (%.2f %%)\n", f.n_layers, fp,
           probes, 100.0 * (double)fp / probes);
    assert_true(fp < probes / 50); /* < 2 % */
    seen_filter_free(&f);
}

static void test_hash_separates_keys(void **state)
{
    (void)state;
    struct seen_filter f, g;
    assert_int_equal(seen_filter_init(&f, 0), PARLEY_OK);
    assert_int_equal(seen_filter_init(&g, 0), PARLEY_OK);
    uint8_t id[16] = {1, 2, 3};
    uint64_t h = seen_filter_hash(&f, "device-a", id, sizeof id);
    assert_int_equal(h, seen_filter_hash(&f, "device-a", id, sizeof id));
    assert_int_not_equal(h, seen_filter_hash(&f, "device-b", id, sizeof id));
    assert_int_not_equal(h, seen_filter_hash(&g, "device-a", id, sizeof id)); /* seeded */
    for (size_t i = 0; i < sizeof id; i++) {
        id[i] ^= 0x80;
        assert_int_not_equal(h, seen_filter_hash(&f, "device-a", id, sizeof id));
        id[i] ^= 0x80;
    }
    seen_filter_free(&f);
    seen_filter_free(&g);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_false_negatives_and_few_false_positives),
        cmocka_unit_test(test_empty_filter_says_maybe),
        cmocka_unit_test(test_fresh_filter_says_absent),
        cmocka_unit_test(test_grows_without_losing_keys),
        cmocka_unit_test(test_hash_separates_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
