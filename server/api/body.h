/*
 * body.h — strict JSON request-body helpers for the API handlers (keys.c, groups.c,
 * policy.c, ...) and for json_input.c's decoders, with the rules and error codes that
 * json_input.h lists: the body is one JSON object (invalid_json, invalid_body),
 * duplicate keys are malformed, and every object is checked against an allow-list of
 * fields (unknown_field), each of a given JSON type (invalid_type) and possibly required
 * (missing_field). All errors are HTTP 400.
 *
 * Pure functions, no I/O; any thread.
 */
#ifndef PARLEY_SERVER_API_BODY_H
#define PARLEY_SERVER_API_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_input.h"
#include "parley/err.h"

struct json_t;

enum body_type {
    BODY_STRING,
    BODY_STRING_OR_NULL, /* a string or null */
    BODY_BOOL,
    BODY_U32, /* an integer 0..UINT32_MAX */
    BODY_OBJECT,
    BODY_ARRAY,
};

struct body_field {
    const char *name;
    enum body_type type;
    bool required;
};

#define BODY_MAX_FIELDS 8

/* Fill err (status 400) with code and a printf-style message. */
__attribute__((format(printf, 3, 4))) void body_error(struct json_input_error *err,
                                                      const char *code, const char *fmt, ...);

/* Parse body[0..len) into *root (a new reference; the caller json_decref's it), which
 * must be an object. PARLEY_ERR_INVAL with *err, or PARLEY_ERR_NOMEM. */
PARLEY_WUR enum parley_err body_parse(const uint8_t *body, size_t len, struct json_t **root,
                                      struct json_input_error *err);

/* Check obj (an object; "where" names it in messages, e.g. "signed_prekey", or NULL for
 * the body) against fields[0..n) (n <= BODY_MAX_FIELDS) and fill vals[i] with the value of
 * fields[i] (borrowed; NULL when absent). PARLEY_ERR_INVAL with *err. */
PARLEY_WUR enum parley_err body_fields(struct json_t *obj, const char *where,
                                       const struct body_field *fields, size_t n,
                                       struct json_t **vals, struct json_input_error *err);

/* body_parse, then body_fields on the body object (where NULL). *root is set (the caller
 * json_decref's it) whenever the body parsed, even when the fields are refused, so a
 * caller can still wipe a secret value in vals. */
PARLEY_WUR enum parley_err body_decode(const uint8_t *body, size_t len,
                                       const struct body_field *fields, size_t n,
                                       struct json_t **root, struct json_t **vals,
                                       struct json_input_error *err);

/* Decode unpadded base64url text of exactly len bytes. false if malformed or of another
 * length (out is then zeroed). */
bool body_b64_exact(const struct json_t *str, uint8_t *out, size_t len);

/* A new JSON string holding the unpadded base64url of bin[0..len) (len <= 96), or NULL. */
struct json_t *body_b64_json(const uint8_t *bin, size_t len);

#endif
