/*
 * body.c — see body.h. Field names are echoed in messages only when short and plain, so
 * a hostile key never ends up in an answer or a log.
 */
#include "body.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void body_error(struct json_input_error *err, const char *code, const char *fmt, ...)
{
    va_list ap;
    err->status = 400;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static bool plain_name(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
              (k[i] >= '0' && k[i] <= '9') || k[i] == '_' || k[i] == '-'))
            return false;
    return true;
}

enum parley_err body_parse(const uint8_t *body, size_t len, json_t **root,
                           struct json_input_error *err)
{
    json_error_t jerr;
    json_t *r;

    *root = NULL;
    if (!body || len == 0) {
        body_error(err, "invalid_json", "request body must be a JSON object");
        return PARLEY_ERR_INVAL;
    }
    r = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!r) {
        body_error(err, "invalid_json", "malformed JSON");
        return PARLEY_ERR_INVAL;
    }
    if (!json_is_object(r)) {
        json_decref(r);
        body_error(err, "invalid_body", "request body must be a JSON object");
        return PARLEY_ERR_INVAL;
    }
    *root = r;
    return PARLEY_OK;
}

static bool type_ok(const json_t *v, enum body_type t)
{
    switch (t) {
    case BODY_STRING: return json_is_string(v);
    case BODY_STRING_OR_NULL: return json_is_string(v) || json_is_null(v);
    case BODY_BOOL: return json_is_boolean(v);
    case BODY_U32:
        return json_is_integer(v) && json_integer_value(v) >= 0 &&
               json_integer_value(v) <= (json_int_t)UINT32_MAX;
    case BODY_OBJECT: return json_is_object(v);
    case BODY_ARRAY: return json_is_array(v);
    }
    return false;
}

static const char *type_name(enum body_type t)
{
    switch (t) {
    case BODY_STRING: return "a string";
    case BODY_STRING_OR_NULL: return "a string or null";
    case BODY_BOOL: return "true or false";
    case BODY_U32: return "an integer from 0 to 4294967295";
    case BODY_OBJECT: return "an object";
    case BODY_ARRAY: return "an array";
    }
    return "?";
}

enum parley_err body_fields(json_t *obj, const char *where, const struct body_field *fields,
                            size_t n, json_t **vals, struct json_input_error *err)
{
    const char *key;
    json_t *v;
    const char *in = where ? " in " : "";

    if (!where)
        where = "";
    if (!json_is_object(obj) || n > BODY_MAX_FIELDS) {
        body_error(err, "invalid_type", "%s must be an object", where[0] ? where : "body");
        return PARLEY_ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++)
        vals[i] = NULL;
    json_object_foreach(obj, key, v)
    {
        size_t i = 0;
        while (i < n && strcmp(fields[i].name, key) != 0)
            i++;
        if (i == n) {
            if (plain_name(key))
                body_error(err, "unknown_field", "unknown field \"%s\"%s%s", key, in, where);
            else
                body_error(err, "unknown_field", "unknown field%s%s", in, where);
            return PARLEY_ERR_INVAL;
        }
        vals[i] = v;
    }
    for (size_t i = 0; i < n; i++) {
        if (vals[i] && !type_ok(vals[i], fields[i].type)) {
            body_error(err, "invalid_type", "field \"%s\"%s%s must be %s", fields[i].name, in,
                       where, type_name(fields[i].type));
            return PARLEY_ERR_INVAL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (fields[i].required && !vals[i]) {
            body_error(err, "missing_field", "field \"%s\"%s%s is required", fields[i].name, in,
                       where);
            return PARLEY_ERR_INVAL;
        }
    }
    return PARLEY_OK;
}

enum parley_err body_decode(const uint8_t *body, size_t len, const struct body_field *fields,
                            size_t n, json_t **root, json_t **vals, struct json_input_error *err)
{
    for (size_t i = 0; i < n && i < BODY_MAX_FIELDS; i++)
        vals[i] = NULL;
    enum parley_err rc = body_parse(body, len, root, err);
    if (!rc)
        rc = body_fields(*root, NULL, fields, n, vals, err);
    return rc;
}

bool body_b64_exact(const json_t *str, uint8_t *out, size_t len)
{
    const char *s = json_string_value(str), *end = NULL;
    size_t n = json_string_length(str), got = 0;

    memset(out, 0, len);
    /* Unpadded base64url of len bytes is exactly ceil(len * 4 / 3) characters. */
    if (!s || n != (len * 4 + 2) / 3)
        return false;
    if (sodium_base642bin(out, len, s, n, NULL, &got, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != s + n || got != len) {
        memset(out, 0, len);
        return false;
    }
    return true;
}

json_t *body_b64_json(const uint8_t *bin, size_t len)
{
    char text[129];

    if (len > 96)
        return NULL;
    sodium_bin2base64(text, sizeof text, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return json_string(text);
}
