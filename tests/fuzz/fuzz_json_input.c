/*
 * fuzz_json_input.c — libFuzzer target for the accounts API body decoders
 * (server/api/json_input.c). Every input goes to all three decoders; on success the
 * outputs must satisfy the rules the handlers rely on (NUL-terminated, within bounds,
 * valid by accounts_validate), else the target aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/accounts_validate.h"
#include "api/json_input.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_input_error err;
    /* A fixed "now" keeps runs reproducible: 2026-06-15T12:00:00Z. */
    const int64_t now = 1781524800;

    struct json_account_create a;
    if (json_input_account_create(data, size, now, &a, &err) == PARLEY_OK) {
        CHECK(accounts_validate_username(a.username, strlen(a.username)));
        CHECK(accounts_validate_text(a.name, strlen(a.name), 1, ACCOUNTS_NAME_MAX_CHARS));
        CHECK(accounts_dob_in_range(&a.dob_date, now));
        CHECK(strlen(a.dob) == 10);
        CHECK(accounts_validate_password_len(a.password_len));
        CHECK(a.region[0] == '\0' || accounts_region_valid(a.region));
        CHECK(a.gender[0] == '\0' ||
              accounts_validate_text(a.gender, strlen(a.gender), 1, ACCOUNTS_GENDER_MAX_CHARS));
        (void)accounts_age_gate(&a.dob_date, a.region, now);
    } else {
        CHECK(err.code && err.status == 400);
    }
    json_input_wipe_account_create(&a);

    struct json_session_create s;
    if (json_input_session_create(data, size, &s, &err) == PARLEY_OK) {
        CHECK(strlen(s.username) >= 1 && strlen(s.username) <= JSON_LOGIN_USERNAME_MAX);
        CHECK(s.password_len >= 1 && s.password_len <= ACCOUNTS_PASSWORD_MAX);
        CHECK(strlen(s.device_name) <= STORE_DEVICE_NAME_MAX);
    } else {
        CHECK(err.code && err.status == 400);
    }
    json_input_wipe_session_create(&s);

    struct json_me_patch p;
    if (json_input_me_patch(data, size, &p, &err) == PARLEY_OK) {
        CHECK((p.fields &
               ~(unsigned)(STORE_PATCH_NAME | STORE_PATCH_REGION | STORE_PATCH_GENDER)) == 0);
        CHECK(p.region[0] == '\0' || accounts_region_valid(p.region));
        CHECK(strlen(p.name) <= STORE_NAME_MAX && strlen(p.gender) <= STORE_GENDER_MAX);
    } else {
        CHECK(err.code && err.status == 400);
    }
    return 0;
}
