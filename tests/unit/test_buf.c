/* test_buf.c — bounded buffers and atomic files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "file_util.h"

static void limits_hold(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 10);
    assert_string_equal(buf_str(&b), "");
    assert_int_equal(buf_append_str(&b, "hello"), PARLEY_OK);
    assert_int_equal(buf_printf(&b, "%d", 12345), PARLEY_OK);
    assert_int_equal(b.len, 10);
    assert_string_equal(buf_str(&b), "hello12345");
    assert_int_equal(buf_append(&b, "x", 1), PARLEY_ERR_LIMIT);
    assert_int_equal(buf_printf(&b, "%s", "y"), PARLEY_ERR_LIMIT);
    assert_string_equal(buf_str(&b), "hello12345"); /* untouched on failure */
    buf_consume(&b, 5);
    assert_string_equal(buf_str(&b), "12345");
    size_t n;
    uint8_t *p = buf_steal(&b, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "12345", 5);
    free(p);
    assert_int_equal(b.len, 0);
    buf_cleanup(&b);
    buf_cleanup(NULL);
}

static void atomic_write_and_read(void **state)
{
    (void)state;
    char dir[] = "/tmp/parley-file-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[256], path[300];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    assert_int_equal(file_mkdirs(sub, 0700), PARLEY_OK);
    snprintf(path, sizeof path, "%s/key", sub);
    assert_int_equal(file_write_atomic(path, "secret", 6, 0600), PARLEY_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    unsigned char *data;
    size_t len;
    assert_int_equal(file_read_all(path, 100, &data, &len), PARLEY_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(data, "secret", 6);
    free(data);
    assert_int_equal(file_read_all(path, 3, &data, &len), PARLEY_ERR_LIMIT);
    snprintf(path, sizeof path, "%s/missing", sub);
    assert_int_equal(file_read_all(path, 100, &data, &len), PARLEY_ERR_NOTFOUND);
    snprintf(path, sizeof path, "%s/key", sub);
    unlink(path);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/a", dir);
    rmdir(sub);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limits_hold),
        cmocka_unit_test(atomic_write_and_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
