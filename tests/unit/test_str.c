/* test_str.c — str_copy and str_is_hex_id (common/str.h) against byte-wise references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "str.h"

/* What str_is_hex_id promises, one byte at a time. */
static bool hex_id_ref(const char *s, size_t len)
{
    size_t i = 0;
    for (; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false; /* a NUL too */
    }
    return s[i] == '\0';
}

static void hex_id_every_byte_at_every_place(void **state)
{
    (void)state;
    char id[33];
    memset(id, 'f', 32);
    id[32] = '\0';
    assert_true(str_is_hex_id(id, 32));
    for (int pos = 0; pos < 32; pos++) {
        for (int b = 1; b < 256; b++) {
            char s[33];
            memcpy(s, id, sizeof s);
            s[pos] = (char)b;
            assert_int_equal(str_is_hex_id(s, 32), hex_id_ref(s, 32));
        }
        char s[33];
        memcpy(s, id, sizeof s);
        s[pos] = '\0'; /* too short */
        assert_false(str_is_hex_id(s, 32));
    }
}

static void hex_id_lengths_and_random(void **state)
{
    (void)state;
    assert_false(str_is_hex_id(NULL, 32));
    assert_true(str_is_hex_id("", 0));
    assert_false(str_is_hex_id("0123456789abcdef0123456789abcdef0", 32)); /* too long */
    assert_false(str_is_hex_id("0123456789ABCDEF0123456789abcdef", 32)); /* upper case */
    assert_true(str_is_hex_id("0123456789abcdef0123456789abcdef", 32));
    srand(5);
    for (int t = 0; t < 200000; t++) {
        char s[48];
        size_t n = (size_t)(rand() % 40);
        for (size_t i = 0; i < n; i++) {
            int r = rand() % 20;
            s[i] = r < 16 ? "0123456789abcdef"[r] : (char)(1 + rand() % 255);
        }
        s[n] = '\0';
        size_t len = rand() % 3 ? n : (size_t)(rand() % 40);
        assert_int_equal(str_is_hex_id(s, len), hex_id_ref(s, len));
    }
}

static void copy_truncates_and_terminates(void **state)
{
    (void)state;
    char d[6];
    assert_int_equal(str_copy(d, sizeof d, "hello world"), 5);
    assert_string_equal(d, "hello");
    assert_int_equal(str_copy(d, sizeof d, "hi"), 2);
    assert_string_equal(d, "hi");
    assert_int_equal(str_copy(d, sizeof d, NULL), 0);
    assert_string_equal(d, "");
    assert_int_equal(str_copy(d, 1, "x"), 0);
    assert_string_equal(d, "");
    d[0] = 'z';
    assert_int_equal(str_copy(d, 0, "x"), 0);
    assert_int_equal(d[0], 'z'); /* cap 0 writes nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hex_id_every_byte_at_every_place),
        cmocka_unit_test(hex_id_lengths_and_random),
        cmocka_unit_test(copy_truncates_and_terminates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
