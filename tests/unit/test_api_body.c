/*
 * test_api_body.c — the strict body helpers of the keys and groups handlers (body.h):
 * object shape, allow-list, types (u32 bounds), required fields, nested objects, and
 * exact-length canonical base64url.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/body.h"

static const struct body_field fields[] = {
    {"key", BODY_STRING, true},  {"id", BODY_U32, false},     {"flag", BODY_BOOL, false},
    {"obj", BODY_OBJECT, false}, {"list", BODY_ARRAY, false},
};

/* "ok" or the error code of decoding text against fields. */
static const char *code(const char *text)
{
    static struct json_input_error err;
    json_t *root = NULL, *vals[5];
    enum parley_err rc;

    memset(&err, 0, sizeof err);
    rc = body_parse((const uint8_t *)text, strlen(text), &root, &err);
    if (rc == PARLEY_OK) {
        rc = body_fields(root, NULL, fields, 5, vals, &err);
        json_decref(root);
    } else {
        assert_null(root);
    }
    if (rc == PARLEY_OK)
        return "ok";
    assert_int_equal(rc, PARLEY_ERR_INVAL);
    assert_int_equal(err.status, 400);
    assert_true(err.message[0] != '\0');
    return err.code;
}

static void test_shapes(void **state)
{
    (void)state;
    assert_string_equal(code(""), "invalid_json");
    assert_string_equal(code("{"), "invalid_json");
    assert_string_equal(code("{\"key\":\"a\",\"key\":\"b\"}"), "invalid_json");
    assert_string_equal(code("[]"), "invalid_body");
    assert_string_equal(code("\"key\""), "invalid_body");
    assert_string_equal(code("{\"key\":\"a\",\"other\":1}"), "unknown_field");
    assert_string_equal(code("{\"other\":1}"), "unknown_field"); /* before missing */
    assert_string_equal(code("{}"), "missing_field");
    assert_string_equal(code("{\"key\":1}"), "invalid_type");
    assert_string_equal(code("{\"key\":null}"), "invalid_type");
    assert_string_equal(code("{\"key\":\"a\"}"), "ok");
    assert_string_equal(code("{\"key\":\"a\",\"id\":0,\"flag\":false,\"obj\":{},\"list\":[]}"),
                        "ok");
}

static void test_u32_bounds(void **state)
{
    (void)state;
    assert_string_equal(code("{\"key\":\"a\",\"id\":4294967295}"), "ok");
    assert_string_equal(code("{\"key\":\"a\",\"id\":4294967296}"), "invalid_type");
    assert_string_equal(code("{\"key\":\"a\",\"id\":-1}"), "invalid_type");
    assert_string_equal(code("{\"key\":\"a\",\"id\":1.0}"), "invalid_type");
    assert_string_equal(code("{\"key\":\"a\",\"id\":\"1\"}"), "invalid_type");
    assert_string_equal(code("{\"key\":\"a\",\"flag\":1}"), "invalid_type");
    assert_string_equal(code("{\"key\":\"a\",\"obj\":[]}"), "invalid_type");
    assert_string_equal(code("{\"key\":\"a\",\"list\":{}}"), "invalid_type");
}

static void test_nested_and_names(void **state)
{
    static const struct body_field inner[] = {{"id", BODY_U32, true}};
    struct json_input_error err;
    json_t *v[1];
    json_t *o = json_loads("{\"id\":1,\"evil\\u00e9\":2}", 0, NULL);

    (void)state;
    assert_non_null(o);
    assert_int_equal(body_fields(o, "signed_prekey", inner, 1, v, &err), PARLEY_ERR_INVAL);
    assert_string_equal(err.code, "unknown_field");
    /* A non-plain key is not echoed; the place is. */
    assert_null(strstr(err.message, "evil"));
    assert_non_null(strstr(err.message, "signed_prekey"));
    json_decref(o);
    o = json_loads("{}", 0, NULL);
    assert_int_equal(body_fields(o, "signed_prekey", inner, 1, v, &err), PARLEY_ERR_INVAL);
    assert_string_equal(err.code, "missing_field");
    json_decref(o);
    /* Not an object at all. */
    o = json_integer(3);
    assert_int_equal(body_fields(o, "x", inner, 1, v, &err), PARLEY_ERR_INVAL);
    assert_string_equal(err.code, "invalid_type");
    json_decref(o);
}

static void test_b64(void **state)
{
    uint8_t bin[32], back[32];
    json_t *s, *t;

    (void)state;
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(i * 37 + 250);
    s = body_b64_json(bin, sizeof bin);
    assert_non_null(s);
    assert_int_equal(json_string_length(s), 43);
    assert_true(body_b64_exact(s, back, sizeof back));
    assert_memory_equal(bin, back, sizeof bin);
    /* Wrong length for the same text. */
    assert_false(body_b64_exact(s, back, 31));
    json_decref(s);
    /* Padding, the standard alphabet, spaces, non-canonical trailing bits, non-strings. */
    const char *bad[] = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                         "+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA A",
                         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = json_string(bad[i]);
        memset(back, 0xAA, sizeof back);
        assert_false(body_b64_exact(t, back, sizeof back));
        for (size_t k = 0; k < sizeof back; k++)
            assert_int_equal(back[k], 0); /* zeroed on failure */
        json_decref(t);
    }
    t = json_integer(5);
    assert_false(body_b64_exact(t, back, sizeof back));
    json_decref(t);
    t = json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_true(body_b64_exact(t, back, sizeof back));
    json_decref(t);
    assert_null(body_b64_json(bin, 97));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_u32_bounds),
        cmocka_unit_test(test_nested_and_names),
        cmocka_unit_test(test_b64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
