/*
 * json_input.h — strict decoders for the JSON request bodies of the accounts API.
 *
 * Pure functions of (bytes, length[, now]): no I/O, no global state, so they are unit
 * tested and fuzzed without a socket (tests/fuzz/fuzz_json_input.c). Parsing is
 * jansson's (UTF-8 checked, duplicate keys rejected, "\u0000" rejected); on top, each
 * decoder applies an allow-list of fields with their JSON types, then the field rules of
 * accounts_validate.h. The first problem found is reported, in this order:
 *   invalid_json    not JSON (or not UTF-8, or a duplicate key)
 *   invalid_body    JSON but not an object
 *   unknown_field   a field outside the allow-list (P1: never silently stored)
 *   invalid_type    a field of the wrong JSON type
 *   missing_field   a required field is absent
 *   invalid_<field> a field breaks its rule (invalid_username, invalid_name,
 *                   invalid_password, invalid_date, invalid_region, invalid_gender,
 *                   invalid_device_name)
 * All of them are HTTP 400.
 *
 * On any error *out is left zeroed.
 *
 * Secrets: the password is copied into the output struct; callers wipe the struct with
 * sodium_memzero when done (json_input_wipe_*). jansson's own copy is freed by the
 * decoder (jansson does not wipe freed memory).
 */
#ifndef PARLEY_SERVER_JSON_INPUT_H
#define PARLEY_SERVER_JSON_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/err.h"
#include "accounts_validate.h"
#include "store/store.h"

struct json_input_error {
    int status;        /* HTTP status, 400 */
    const char *code;  /* static string, e.g. "unknown_field" */
    char message[160]; /* human-readable, may name the field */
};

/* POST /v1/accounts */
struct json_account_create {
    char username[ACCOUNTS_USERNAME_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char dob[STORE_DOB_LEN + 1];
    struct accounts_date dob_date;
    char region[STORE_REGION_LEN + 1]; /* "" when absent */
    char gender[STORE_GENDER_MAX + 1]; /* "" when absent */
    char password[ACCOUNTS_PASSWORD_MAX + 1];
    size_t password_len;
};

/* POST /v1/sessions. The username is only length-checked (at most 256 bytes): a login
 * with a malformed username is just an unknown account (401), like any other. */
#define JSON_LOGIN_USERNAME_MAX 256
struct json_session_create {
    char username[JSON_LOGIN_USERNAME_MAX + 1];
    bool username_valid; /* it follows the username rule (else it cannot exist) */
    char password[ACCOUNTS_PASSWORD_MAX + 1];
    size_t password_len;
    char device_name[STORE_DEVICE_NAME_MAX + 1]; /* "" when absent */
};

/* PATCH /v1/me. fields: STORE_PATCH_* bits of the fields present; a region or gender
 * given as null is present with "" (clear). */
struct json_me_patch {
    unsigned fields;
    char name[STORE_NAME_MAX + 1];
    char region[STORE_REGION_LEN + 1];
    char gender[STORE_GENDER_MAX + 1];
};

/* Decode and validate a registration body. now_s bounds the date of birth (not in the
 * future). The age gate is not applied here (see accounts_age_gate).
 * PARLEY_OK, or PARLEY_ERR_INVAL with *err filled; PARLEY_ERR_NOMEM. */
PARLEY_WUR enum parley_err json_input_account_create(const uint8_t *body, size_t len, int64_t now_s,
                                                     struct json_account_create *out,
                                                     struct json_input_error *err);
PARLEY_WUR enum parley_err json_input_session_create(const uint8_t *body, size_t len,
                                                     struct json_session_create *out,
                                                     struct json_input_error *err);
PARLEY_WUR enum parley_err json_input_me_patch(const uint8_t *body, size_t len,
                                               struct json_me_patch *out,
                                               struct json_input_error *err);

/* Wipe the secrets (sodium_memzero of the whole struct). Accept NULL. */
void json_input_wipe_account_create(struct json_account_create *in);
void json_input_wipe_session_create(struct json_session_create *in);

#endif
