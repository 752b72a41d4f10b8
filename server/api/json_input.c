/*
 * json_input.c — strict request-body decoders; see json_input.h.
 *
 * One generic pass (decode_object: body.h's body_decode) checks the JSON, the object
 * shape, the allow-list, types and presence from a small table per body; the per-body
 * functions then apply the field rules. Every string copied out has been
 * length-checked first, so no copy ever truncates.
 */
#include "json_input.h"

#include "body.h"

#include <jansson.h>
#include <sodium.h>
#include <string.h>

/* Parse body into *root_out and fill vals[i] (borrowed from root; NULL when absent) for
 * specs[i] (body.h's body_decode). PARLEY_ERR_INVAL with *err on any problem (*root_out
 * is then NULL). */
static enum parley_err decode_object(const uint8_t *body, size_t len,
                                     const struct body_field *specs, size_t n, json_t **root_out,
                                     json_t **vals, struct json_input_error *err)
{
    enum parley_err rc = body_decode(body, len, specs, n, root_out, vals, err);
    if (rc) {
        json_decref(*root_out);
        *root_out = NULL;
    }
    return rc;
}

/* Copy a checked string (len < cap). */
static void copy_str(char *dst, size_t cap, const json_t *v)
{
    size_t n = json_string_length(v);
    if (n >= cap)
        n = cap - 1; /* unreachable: every caller checked the length first */
    memcpy(dst, json_string_value(v), n);
    dst[n] = '\0';
}

/* Wipe a string value inside jansson's tree before it is freed (the password). */
static void wipe_json_string(json_t *v)
{
    if (v && json_is_string(v)) {
        size_t n = json_string_length(v);
        sodium_memzero((void *)json_string_value(v), n);
    }
}

static bool check_text(const json_t *v, size_t max_chars)
{
    return accounts_validate_text(json_string_value(v), json_string_length(v), 1, max_chars);
}

/* region: a string holding an ISO code. */
static bool check_region(const json_t *v)
{
    return json_string_length(v) == 2 && accounts_region_valid(json_string_value(v));
}

enum parley_err json_input_account_create(const uint8_t *body, size_t len, int64_t now_s,
                                          struct json_account_create *out,
                                          struct json_input_error *err)
{
    static const struct body_field specs[] = {
        {"username", BODY_STRING, true}, {"name", BODY_STRING, true},
        {"dob", BODY_STRING, true},      {"password", BODY_STRING, true},
        {"region", BODY_STRING, false},  {"gender", BODY_STRING, false},
    };
    enum { USERNAME, NAME, DOB, PASSWORD, REGION, GENDER, N };
    json_t *vals[N], *root = NULL;
    memset(out, 0, sizeof *out);
    enum parley_err rc = decode_object(body, len, specs, N, &root, vals, err);
    if (rc)
        return rc;
    rc = PARLEY_ERR_INVAL;

    if (!accounts_validate_username(json_string_value(vals[USERNAME]),
                                    json_string_length(vals[USERNAME]))) {
        body_error(err, "invalid_username",
                   "username must be 3 to 32 characters of a-z, 0-9, '_' and '.'");
        goto out;
    }
    copy_str(out->username, sizeof out->username, vals[USERNAME]);

    if (!check_text(vals[NAME], ACCOUNTS_NAME_MAX_CHARS)) {
        body_error(err, "invalid_name",
                   "name must be 1 to 64 characters of UTF-8 text without control characters");
        goto out;
    }
    copy_str(out->name, sizeof out->name, vals[NAME]);

    if (!accounts_date_parse(json_string_value(vals[DOB]), json_string_length(vals[DOB]),
                             &out->dob_date) ||
        !accounts_dob_in_range(&out->dob_date, now_s)) {
        body_error(err, "invalid_date",
                   "dob must be a real date YYYY-MM-DD, not before 1900 and not in the future");
        goto out;
    }
    copy_str(out->dob, sizeof out->dob, vals[DOB]);

    if (!accounts_validate_password_len(json_string_length(vals[PASSWORD]))) {
        body_error(err, "invalid_password", "password must be 8 to 256 bytes");
        goto out;
    }
    copy_str(out->password, sizeof out->password, vals[PASSWORD]);
    out->password_len = json_string_length(vals[PASSWORD]);

    if (vals[REGION]) {
        if (!check_region(vals[REGION])) {
            body_error(err, "invalid_region",
                       "region must be an ISO 3166-1 alpha-2 code in uppercase");
            goto out;
        }
        copy_str(out->region, sizeof out->region, vals[REGION]);
    }
    if (vals[GENDER]) {
        if (!check_text(vals[GENDER], ACCOUNTS_GENDER_MAX_CHARS)) {
            body_error(err, "invalid_gender",
                       "gender must be 1 to 32 characters of UTF-8 text without control "
                       "characters");
            goto out;
        }
        copy_str(out->gender, sizeof out->gender, vals[GENDER]);
    }
    rc = PARLEY_OK;
out:
    wipe_json_string(vals[PASSWORD]);
    json_decref(root);
    if (rc)
        json_input_wipe_account_create(out);
    return rc;
}

enum parley_err json_input_session_create(const uint8_t *body, size_t len,
                                          struct json_session_create *out,
                                          struct json_input_error *err)
{
    static const struct body_field specs[] = {
        {"username", BODY_STRING, true},
        {"password", BODY_STRING, true},
        {"device_name", BODY_STRING, false},
    };
    enum { USERNAME, PASSWORD, DEVICE, N };
    json_t *vals[N], *root = NULL;
    memset(out, 0, sizeof *out);
    enum parley_err rc = decode_object(body, len, specs, N, &root, vals, err);
    if (rc)
        return rc;
    rc = PARLEY_ERR_INVAL;

    size_t ulen = json_string_length(vals[USERNAME]);
    if (ulen == 0 || ulen > JSON_LOGIN_USERNAME_MAX) {
        body_error(err, "invalid_username", "username must be 1 to 256 bytes");
        goto out;
    }
    copy_str(out->username, sizeof out->username, vals[USERNAME]);
    /* jansson strings never hold NUL here (no JSON_ALLOW_NUL), so ulen is strlen. */
    out->username_valid = accounts_validate_username(out->username, ulen);

    size_t plen = json_string_length(vals[PASSWORD]);
    if (plen == 0 || plen > ACCOUNTS_PASSWORD_MAX) {
        body_error(err, "invalid_password", "password must be 1 to 256 bytes");
        goto out;
    }
    copy_str(out->password, sizeof out->password, vals[PASSWORD]);
    out->password_len = plen;

    if (vals[DEVICE]) {
        if (!check_text(vals[DEVICE], ACCOUNTS_DEVICE_NAME_MAX_CHARS)) {
            body_error(err, "invalid_device_name",
                       "device_name must be 1 to 64 characters of UTF-8 text without control "
                       "characters");
            goto out;
        }
        copy_str(out->device_name, sizeof out->device_name, vals[DEVICE]);
    }
    rc = PARLEY_OK;
out:
    wipe_json_string(vals[PASSWORD]);
    json_decref(root);
    if (rc)
        json_input_wipe_session_create(out);
    return rc;
}

enum parley_err json_input_me_patch(const uint8_t *body, size_t len, struct json_me_patch *out,
                                    struct json_input_error *err)
{
    static const struct body_field specs[] = {
        {"name", BODY_STRING, false},
        {"region", BODY_STRING_OR_NULL, false},
        {"gender", BODY_STRING_OR_NULL, false},
    };
    enum { NAME, REGION, GENDER, N };
    json_t *vals[N], *root = NULL;
    memset(out, 0, sizeof *out);
    enum parley_err rc = decode_object(body, len, specs, N, &root, vals, err);
    if (rc)
        return rc;
    rc = PARLEY_ERR_INVAL;

    if (vals[NAME]) {
        if (!check_text(vals[NAME], ACCOUNTS_NAME_MAX_CHARS)) {
            body_error(err, "invalid_name",
                       "name must be 1 to 64 characters of UTF-8 text without control "
                       "characters");
            goto out;
        }
        copy_str(out->name, sizeof out->name, vals[NAME]);
        out->fields |= STORE_PATCH_NAME;
    }
    if (vals[REGION]) {
        if (json_is_string(vals[REGION])) {
            if (!check_region(vals[REGION])) {
                body_error(err, "invalid_region",
                           "region must be an ISO 3166-1 alpha-2 code in uppercase, or null");
                goto out;
            }
            copy_str(out->region, sizeof out->region, vals[REGION]);
        }
        out->fields |= STORE_PATCH_REGION;
    }
    if (vals[GENDER]) {
        if (json_is_string(vals[GENDER])) {
            if (!check_text(vals[GENDER], ACCOUNTS_GENDER_MAX_CHARS)) {
                body_error(err, "invalid_gender",
                           "gender must be 1 to 32 characters of UTF-8 text without control "
                           "characters, or null");
                goto out;
            }
            copy_str(out->gender, sizeof out->gender, vals[GENDER]);
        }
        out->fields |= STORE_PATCH_GENDER;
    }
    rc = PARLEY_OK;
out:
    json_decref(root);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

void json_input_wipe_account_create(struct json_account_create *in)
{
    if (in)
        sodium_memzero(in, sizeof *in);
}

void json_input_wipe_session_create(struct json_session_create *in)
{
    if (in)
        sodium_memzero(in, sizeof *in);
}
