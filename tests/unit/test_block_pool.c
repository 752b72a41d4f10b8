/*
 * test_block_pool.c — common/block_pool.c: a block given back is the next one handed
 * out; at most max_free are kept (the rest freed: ASan's leak check sees the count);
 * blocks are writable over their whole size; NULL is accepted back; blocks go back and
 * forth between two threads, as a writer's and a loop's do.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "block_pool.h"

static void test_reuse_and_bound(void **state)
{
    (void)state;
    struct block_pool p;
    block_pool_init(&p, 100, 2);
    void *b[3];
    for (int i = 0; i < 3; i++) {
        assert_non_null(b[i] = block_pool_get(&p));
        memset(b[i], 0xab, 100);
    }
    assert_int_equal(p.n, 0);
    block_pool_put(&p, b[0]);
    block_pool_put(&p, b[1]);
    block_pool_put(&p, b[2]); /* over the bound: freed */
    block_pool_put(&p, NULL);
    assert_int_equal(p.n, 2);
    assert_ptr_equal(block_pool_get(&p), b[1]); /* last in, first out */
    assert_int_equal(p.n, 1);
    block_pool_put(&p, b[1]);
    block_pool_cleanup(&p);
}

static void test_tiny_blocks_hold_the_link(void **state)
{
    (void)state;
    struct block_pool p;
    block_pool_init(&p, 1, 4);
    assert_true(p.size >= sizeof(void *));
    void *a = block_pool_get(&p), *b = block_pool_get(&p);
    block_pool_put(&p, a);
    block_pool_put(&p, b);
    assert_ptr_equal(block_pool_get(&p), b);
    assert_ptr_equal(block_pool_get(&p), a);
    block_pool_put(&p, a);
    block_pool_put(&p, b);
    block_pool_cleanup(&p);
}

#define ROUNDS 20000

static void *give_back(void *arg)
{
    struct block_pool *p = arg;
    for (int i = 0; i < ROUNDS; i++) {
        uint8_t *b = block_pool_get(p);
        memset(b, (int)(i & 0xff), p->size);
        block_pool_put(p, b);
    }
    return NULL;
}

static void test_two_threads(void **state)
{
    (void)state;
    struct block_pool p;
    block_pool_init(&p, 64, 16);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, give_back, &p), 0);
    give_back(&p);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(p.n <= 16);
    block_pool_cleanup(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_and_bound),
        cmocka_unit_test(test_tiny_blocks_hold_the_link),
        cmocka_unit_test(test_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
