/*
 * policy.c — the privacy-policy calls of parley/policy.h (P30): GET /v1/policy and
 * POST /v1/policy/accept, one request each through client_call(); answers are checked
 * and copied into the caller's struct, so no JSON crosses the public API.
 */
#include "client_int.h"

#include <stdlib.h>
#include <string.h>

#include "parley/policy.h"

/* Server-side limit of a policy text (STORE_POLICY_TEXT_MAX) is smaller; anything
 * larger is a malformed answer rather than something to hold. */
#define POLICY_TEXT_MAX (1u << 20)

void parley_policy_cleanup(struct parley_policy *p)
{
    if (!p)
        return;
    free(p->version);
    free(p->text);
    memset(p, 0, sizeof *p);
}

static bool version_ok(const char *v, size_t n)
{
    return v && n > 0 && n <= PARLEY_POLICY_VERSION_MAX && strlen(v) == n;
}

enum parley_err parley_client_get_policy(struct parley_client *c, struct parley_policy *out)
{
    if (!c || !out)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    json_t *ans = NULL;
    struct parley_policy p;
    memset(&p, 0, sizeof p);
    enum parley_err rc = client_call(c, "GET", "/v1/policy", NULL, false, false, NULL, &ans);
    if (rc)
        return rc;
    rc = PARLEY_ERR_PROTO;
    json_t *v = json_object_get(ans, "version"), *t = json_object_get(ans, "text");
    json_t *m = json_object_get(ans, "material"), *at = json_object_get(ans, "published_at");
    if (!json_is_string(v) || !version_ok(json_string_value(v), json_string_length(v)) ||
        !json_is_string(t) || json_string_length(t) > POLICY_TEXT_MAX ||
        strlen(json_string_value(t)) != json_string_length(t) || !json_is_boolean(m) ||
        (at && !json_is_null(at) && !json_is_integer(at)))
        goto out;
    p.version = strdup(json_string_value(v));
    p.text = strdup(json_string_value(t));
    if (!p.version || !p.text) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    p.material = json_is_true(m);
    p.published_at = json_is_integer(at) ? (int64_t)json_integer_value(at) : 0;
    *out = p;
    memset(&p, 0, sizeof p);
    rc = PARLEY_OK;
out:
    if (rc == PARLEY_ERR_PROTO)
        client_set_error(c, 0, NULL, "malformed answer from the server");
    parley_policy_cleanup(&p);
    json_decref(ans);
    return rc;
}

bool parley_client_policy_required(const struct parley_client *c)
{
    return c && c->err_status == 403 && c->err_code &&
           strcmp(c->err_code, PARLEY_POLICY_CONSENT_REQUIRED) == 0;
}

enum parley_err parley_client_accept_policy(struct parley_client *c, const char *version,
                                            int64_t *accepted_at)
{
    if (!c)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    if (!version_ok(version, version ? strlen(version) : 0)) {
        client_set_error(c, 0, NULL, "a policy version is 1 to %d bytes",
                         PARLEY_POLICY_VERSION_MAX);
        return PARLEY_ERR_INVAL;
    }
    json_t *body = json_pack("{s:s}", "version", version);
    if (!body) {
        client_set_error(c, 0, NULL, "the policy version must be UTF-8 text");
        return PARLEY_ERR_INVAL;
    }
    json_t *ans = NULL;
    enum parley_err rc =
        client_call(c, "POST", "/v1/policy/accept", body, false, true, NULL, &ans);
    json_decref(body);
    if (rc)
        return rc;
    json_t *at = json_object_get(ans, "accepted_at");
    if (!json_is_integer(at)) {
        json_decref(ans);
        client_set_error(c, 0, NULL, "malformed answer from the server");
        return PARLEY_ERR_PROTO;
    }
    if (accepted_at)
        *accepted_at = (int64_t)json_integer_value(at);
    json_decref(ans);
    return PARLEY_OK;
}
