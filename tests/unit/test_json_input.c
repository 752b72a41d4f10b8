/*
 * test_json_input.c — the strict body decoders: each error code with its precedence,
 * every field rule, and the happy paths of the three bodies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "api/json_input.h"

static int64_t now_2026(void)
{
    struct tm tm = {.tm_year = 126, .tm_mon = 5, .tm_mday = 15, .tm_hour = 12};
    return (int64_t)timegm(&tm);
}

static const char *acct_code(const char *body)
{
    static struct json_input_error err;
    struct json_account_create in;
    memset(&err, 0, sizeof err);
    enum parley_err rc =
        json_input_account_create((const uint8_t *)body, strlen(body), now_2026(), &in, &err);
    if (rc == PARLEY_OK)
        return "ok";
    assert_int_equal(rc, PARLEY_ERR_INVAL);
    assert_int_equal(err.status, 400);
    assert_non_null(err.code);
    /* Failed decodes leave nothing behind. */
    assert_int_equal(in.password[0], 0);
    assert_int_equal(in.password_len, 0);
    return err.code;
}

#define GOOD                                                                                       \
    "\"username\":\"alice\",\"name\":\"Alice\",\"dob\":\"2000-02-29\",\"password\":\"hunter22\""

static void test_account_ok(void **state)
{
    (void)state;
    struct json_account_create in;
    struct json_input_error err;
    const char *body = "{" GOOD ",\"region\":\"DE\",\"gender\":\"non-binary\"}";
    assert_int_equal(
        json_input_account_create((const uint8_t *)body, strlen(body), now_2026(), &in, &err),
        PARLEY_OK);
    assert_string_equal(in.username, "alice");
    assert_string_equal(in.name, "Alice");
    assert_string_equal(in.dob, "2000-02-29");
    assert_int_equal(in.dob_date.year, 2000);
    assert_int_equal(in.dob_date.month, 2);
    assert_int_equal(in.dob_date.day, 29);
    assert_string_equal(in.password, "hunter22");
    assert_int_equal(in.password_len, 8);
    assert_string_equal(in.region, "DE");
    assert_string_equal(in.gender, "non-binary");
    json_input_wipe_account_create(&in);
    assert_int_equal(in.password[0], 0);

    /* Optional fields absent; whitespace around. */
    body = " \n{" GOOD "}\n ";
    assert_int_equal(
        json_input_account_create((const uint8_t *)body, strlen(body), now_2026(), &in, &err),
        PARLEY_OK);
    assert_string_equal(in.region, "");
    assert_string_equal(in.gender, "");
    /* Unicode escapes decode. */
    assert_string_equal(acct_code("{" GOOD ",\"gender\":\"\\u00e9l\\u00e8ve\"}"), "ok");
}

static void test_account_errors(void **state)
{
    (void)state;
    /* Shape. */
    assert_string_equal(acct_code(""), "invalid_json");
    assert_string_equal(acct_code("{"), "invalid_json");
    assert_string_equal(acct_code("{\"username\":}"), "invalid_json");
    assert_string_equal(acct_code("{" GOOD "} x"), "invalid_json");
    assert_string_equal(acct_code("{" GOOD ",\"username\":\"bob\"}"), "invalid_json");
    assert_string_equal(acct_code("{\"name\":\"\xff\"}"), "invalid_json");
    assert_string_equal(acct_code("{\"name\":\"a\\u0000b\"}"), "invalid_json");
    assert_string_equal(acct_code("[]"), "invalid_body");
    assert_string_equal(acct_code("\"x\""), "invalid_body");
    assert_string_equal(acct_code("null"), "invalid_body");
    assert_string_equal(acct_code("42"), "invalid_body");
    /* Precedence: unknown before type before missing. */
    assert_string_equal(acct_code("{\"phone\":\"123\"}"), "unknown_field");
    assert_string_equal(acct_code("{" GOOD ",\"email\":\"a@b\"}"), "unknown_field");
    assert_string_equal(acct_code("{\"username\":1,\"x\":1}"), "unknown_field");
    assert_string_equal(acct_code("{\"username\":1}"), "invalid_type");
    assert_string_equal(acct_code("{\"username\":null}"), "invalid_type");
    assert_string_equal(acct_code("{" GOOD ",\"region\":null}"), "invalid_type");
    assert_string_equal(acct_code("{" GOOD ",\"gender\":[\"x\"]}"), "invalid_type");
    assert_string_equal(acct_code("{\"username\":\"alice\"}"), "missing_field");
    assert_string_equal(acct_code("{}"), "missing_field");
    /* Field rules. */
    assert_string_equal(acct_code("{\"username\":\"Al\",\"name\":\"A\",\"dob\":\"2000-01-01\","
                                  "\"password\":\"12345678\"}"),
                        "invalid_username");
    assert_string_equal(acct_code("{\"username\":\"alice\",\"name\":\"\",\"dob\":\"2000-01-01\","
                                  "\"password\":\"12345678\"}"),
                        "invalid_name");
    assert_string_equal(acct_code("{\"username\":\"alice\",\"name\":\"a\\nb\",\"dob\":\"2000-01-"
                                  "01\",\"password\":\"12345678\"}"),
                        "invalid_name");
    assert_string_equal(acct_code("{\"username\":\"alice\",\"name\":\"A\",\"dob\":\"2023-02-30\","
                                  "\"password\":\"12345678\"}"),
                        "invalid_date");
    assert_string_equal(acct_code("{\"username\":\"alice\",\"name\":\"A\",\"dob\":\"1899-12-31\","
                                  "\"password\":\"12345678\"}"),
                        "invalid_date");
    assert_string_equal(acct_code("{\"username\":\"alice\",\"name\":\"A\",\"dob\":\"2026-06-16\","
                                  "\"password\":\"12345678\"}"),
                        "invalid_date");
    assert_string_equal(acct_code("{\"username\":\"alice\",\"name\":\"A\",\"dob\":\"2026-06-15\","
                                  "\"password\":\"12345678\"}"),
                        "ok"); /* born today is a valid date (the age gate refuses it later) */
    assert_string_equal(acct_code("{\"username\":\"alice\",\"name\":\"A\",\"dob\":\"2000-01-01\","
                                  "\"password\":\"1234567\"}"),
                        "invalid_password");
    assert_string_equal(acct_code("{" GOOD ",\"region\":\"de\"}"), "invalid_region");
    assert_string_equal(acct_code("{" GOOD ",\"region\":\"XX\"}"), "invalid_region");
    assert_string_equal(acct_code("{" GOOD ",\"region\":\"DEU\"}"), "invalid_region");
    assert_string_equal(acct_code("{" GOOD ",\"region\":\"\"}"), "invalid_region");
    assert_string_equal(acct_code("{" GOOD ",\"gender\":\"\"}"), "invalid_gender");
    assert_string_equal(acct_code("{" GOOD ",\"gender\":\"123456789012345678901234567890123\"}"),
                        "invalid_gender");
    assert_string_equal(acct_code("{" GOOD ",\"gender\":\"12345678901234567890123456789012\"}"),
                        "ok");

    /* Password of 256 bytes ok, 257 not. */
    char body[1024], pw[258];
    memset(pw, 'p', 257);
    pw[256] = '\0';
    snprintf(body, sizeof body,
             "{\"username\":\"alice\",\"name\":\"A\",\"dob\":\"2000-01-01\",\"password\":\"%s\"}",
             pw);
    assert_string_equal(acct_code(body), "ok");
    pw[256] = 'p';
    pw[257] = '\0';
    snprintf(body, sizeof body,
             "{\"username\":\"alice\",\"name\":\"A\",\"dob\":\"2000-01-01\",\"password\":\"%s\"}",
             pw);
    assert_string_equal(acct_code(body), "invalid_password");

    /* The message names a plain unknown field, and never echoes odd bytes. */
    struct json_account_create in;
    struct json_input_error err;
    const char *b = "{\"phone\":\"1\"}";
    assert_int_equal(
        json_input_account_create((const uint8_t *)b, strlen(b), now_2026(), &in, &err),
        PARLEY_ERR_INVAL);
    assert_non_null(strstr(err.message, "phone"));
    b = "{\"<script>\":\"1\"}";
    assert_int_equal(
        json_input_account_create((const uint8_t *)b, strlen(b), now_2026(), &in, &err),
        PARLEY_ERR_INVAL);
    assert_null(strstr(err.message, "script"));
    /* NULL body. */
    assert_int_equal(json_input_account_create(NULL, 0, now_2026(), &in, &err), PARLEY_ERR_INVAL);
    assert_string_equal(err.code, "invalid_json");
}

static const char *login_code(const char *body, struct json_session_create *in)
{
    static struct json_input_error err;
    enum parley_err rc = json_input_session_create((const uint8_t *)body, strlen(body), in, &err);
    return rc == PARLEY_OK ? "ok" : err.code;
}

static void test_session(void **state)
{
    (void)state;
    struct json_session_create in;
    assert_string_equal(login_code("{\"username\":\"alice\",\"password\":\"pw\"}", &in), "ok");
    assert_string_equal(in.username, "alice");
    assert_true(in.username_valid);
    assert_string_equal(in.password, "pw");
    assert_int_equal(in.password_len, 2);
    assert_string_equal(in.device_name, "");
    json_input_wipe_session_create(&in);

    assert_string_equal(
        login_code("{\"username\":\"Not Valid\",\"password\":\"pw\",\"device_name\":\"Pixel 8\"}",
                   &in),
        "ok");
    assert_false(in.username_valid);
    assert_string_equal(in.device_name, "Pixel 8");
    assert_string_equal(login_code("{\"username\":\"alice\"}", &in), "missing_field");
    assert_string_equal(login_code("{\"username\":\"alice\",\"password\":true}", &in),
                        "invalid_type");
    assert_string_equal(login_code("{\"username\":\"alice\",\"password\":\"x\",\"ip\":\"x\"}", &in),
                        "unknown_field");
    assert_string_equal(login_code("{\"username\":\"\",\"password\":\"x\"}", &in),
                        "invalid_username");
    assert_string_equal(login_code("{\"username\":\"a\",\"password\":\"\"}", &in),
                        "invalid_password");
    assert_string_equal(
        login_code("{\"username\":\"a\",\"password\":\"x\",\"device_name\":\"\"}", &in),
        "invalid_device_name");
    assert_string_equal(
        login_code("{\"username\":\"a\",\"password\":\"x\",\"device_name\":\"a\\u0007\"}", &in),
        "invalid_device_name");
    assert_string_equal(login_code("[1]", &in), "invalid_body");
}

static const char *patch_code(const char *body, struct json_me_patch *p)
{
    static struct json_input_error err;
    enum parley_err rc = json_input_me_patch((const uint8_t *)body, strlen(body), p, &err);
    return rc == PARLEY_OK ? "ok" : err.code;
}

static void test_me_patch(void **state)
{
    (void)state;
    struct json_me_patch p;
    assert_string_equal(patch_code("{}", &p), "ok");
    assert_int_equal(p.fields, 0);
    assert_string_equal(patch_code("{\"name\":\"Bob\"}", &p), "ok");
    assert_int_equal(p.fields, STORE_PATCH_NAME);
    assert_string_equal(p.name, "Bob");
    assert_string_equal(patch_code("{\"region\":null,\"gender\":null}", &p), "ok");
    assert_int_equal(p.fields, STORE_PATCH_REGION | STORE_PATCH_GENDER);
    assert_string_equal(p.region, "");
    assert_string_equal(p.gender, "");
    assert_string_equal(patch_code("{\"region\":\"NO\",\"gender\":\"f\"}", &p), "ok");
    assert_string_equal(p.region, "NO");
    assert_string_equal(p.gender, "f");
    assert_string_equal(patch_code("{\"name\":null}", &p), "invalid_type");
    assert_string_equal(patch_code("{\"region\":5}", &p), "invalid_type");
    assert_string_equal(patch_code("{\"region\":\"EU\"}", &p), "invalid_region");
    assert_string_equal(patch_code("{\"gender\":\"\"}", &p), "invalid_gender");
    assert_string_equal(patch_code("{\"name\":\"\"}", &p), "invalid_name");
    assert_string_equal(patch_code("{\"dob\":\"2000-01-01\"}", &p), "unknown_field");
    assert_string_equal(patch_code("{\"username\":\"x\"}", &p), "unknown_field");
    assert_string_equal(patch_code("{\"name\":\"a\",\"name\":\"b\"}", &p), "invalid_json");
    assert_string_equal(patch_code("", &p), "invalid_json");
}

/* Deep nesting and large inputs are refused cleanly, never crash. */
static void test_hostile(void **state)
{
    (void)state;
    static char deep[200001];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    assert_string_equal(acct_code(deep), "invalid_json");
    memset(deep, ' ', sizeof deep - 1);
    deep[0] = '{';
    memcpy(deep + 1, GOOD, strlen(GOOD));
    deep[sizeof deep - 2] = '}';
    assert_string_equal(acct_code(deep), "ok");
    struct json_me_patch p;
    assert_string_equal(patch_code("{\"name\":{\"a\":[1,2,{\"b\":null}]}}", &p), "invalid_type");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account_ok), cmocka_unit_test(test_account_errors),
        cmocka_unit_test(test_session),    cmocka_unit_test(test_me_patch),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
