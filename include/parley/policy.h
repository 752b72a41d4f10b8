/*
 * parley/policy.h — the server's privacy policy from the client side (POLICY P30): read
 * the latest published version (GET /v1/policy, no session needed) and accept a version
 * (POST /v1/policy/accept). Once the operator publishes a *material* version, every
 * authenticated call of an account that has not accepted it fails with
 * PARLEY_ERR_SERVER, status 403 and code PARLEY_POLICY_CONSENT_REQUIRED on the handle
 * (parley_client_last_error) until it is accepted.
 *
 * Same conventions as parley/client.h: blocking calls on a handle, enum parley_err,
 * server refusals as PARLEY_ERR_SERVER with the detail on the handle; strings in the
 * results are heap copies owned by the caller.
 */
#ifndef PARLEY_POLICY_H
#define PARLEY_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include "parley/client.h"
#include "parley/err.h"

/* The error code of a call refused because a material policy awaits acceptance. */
#define PARLEY_POLICY_CONSENT_REQUIRED "policy_consent_required"
/* Longest version string the server accepts, in bytes. */
#define PARLEY_POLICY_VERSION_MAX 32

struct parley_policy {
    char *version;        /* e.g. "2025-06" */
    bool material;        /* true: accepting it is required to go on using the account */
    int64_t published_at; /* seconds since the epoch (UTC); 0 when unknown */
    char *text;           /* the policy's full text (UTF-8) */
};
/* Free the strings of a policy filled by parley_client_get_policy and zero it. Accepts
 * NULL. */
PARLEY_EXPORT void parley_policy_cleanup(struct parley_policy *p);

/* GET /v1/policy: the latest published version. Works logged in or out. *out is filled
 * on success (release with parley_policy_cleanup). When none is published:
 * PARLEY_ERR_SERVER with status 404 and code "no_policy" on the handle.
 * PARLEY_ERR_PROTO on a malformed answer. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_client_get_policy(struct parley_client *c,
                                                                  struct parley_policy *out);

/* True when the last failed call on c was refused because a material policy awaits
 * acceptance (403 policy_consent_required). */
PARLEY_EXPORT bool parley_client_policy_required(const struct parley_client *c);

/* POST /v1/policy/accept {version}: record that the account accepts this version (it
 * must be a published one; accepting the latest lifts the gate). *accepted_at (may be
 * NULL) gets the server's time of the acceptance. PARLEY_ERR_INVAL when version is empty
 * or longer than PARLEY_POLICY_VERSION_MAX (checked locally); PARLEY_ERR_DENIED when
 * not logged in; an unknown version is PARLEY_ERR_SERVER, 404 "unknown_version". */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_client_accept_policy(struct parley_client *c,
                                                                     const char *version,
                                                                     int64_t *accepted_at);

#endif
