/*
 * store_privacy.c — the store_<noun>_<verb> wrappers of store_privacy.h over
 * store_ops.privacy: argument checks the backends rely on (non-NULL, ids well-formed,
 * lengths within the STORE_* limits), as store.c does for the rest of the store.
 */
#include "store.h"

#include <string.h>

static bool text_ok(const char *s, size_t max)
{
    return s && s[0] && strnlen(s, max + 1) <= max;
}

static const struct store_privacy_ops *R(struct store *s)
{
    return s->ops->privacy;
}

enum parley_err store_consent_list(struct store *s, const char *user_id,
                                   struct store_consent **out, size_t *n_out)
{
    if (!s || !user_id || !out || !n_out || !R(s))
        return PARLEY_ERR_INVAL;
    *out = NULL;
    *n_out = 0;
    if (!store_id_valid(user_id))
        return PARLEY_OK;
    return R(s)->consent_list(s, user_id, out, n_out);
}

enum parley_err store_consent_set(struct store *s, const char *user_id, const char *purpose,
                                  bool granted, const char *policy_version, int64_t now)
{
    if (!s || !R(s) || !text_ok(purpose, STORE_PURPOSE_MAX) || !policy_version ||
        strnlen(policy_version, STORE_POLICY_VERSION_MAX + 1) > STORE_POLICY_VERSION_MAX)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(user_id))
        return PARLEY_ERR_NOTFOUND;
    return R(s)->consent_set(s, user_id, purpose, granted, policy_version, now);
}

enum parley_err store_consent_get(struct store *s, const char *user_id, const char *purpose,
                                  bool *granted)
{
    if (!s || !R(s) || !granted || !text_ok(purpose, STORE_PURPOSE_MAX))
        return PARLEY_ERR_INVAL;
    *granted = false;
    if (!store_id_valid(user_id))
        return PARLEY_OK;
    return R(s)->consent_get(s, user_id, purpose, granted);
}

enum parley_err store_parental_record(struct store *s, const char *user_id, const char *reference,
                                      int64_t now)
{
    if (!s || !R(s) || !text_ok(reference, STORE_PARENTAL_REF_MAX))
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(user_id))
        return PARLEY_ERR_NOTFOUND;
    return R(s)->parental_record(s, user_id, reference, now);
}

enum parley_err store_parental_get(struct store *s, const char *user_id, bool *recorded)
{
    if (!s || !R(s) || !recorded)
        return PARLEY_ERR_INVAL;
    *recorded = false;
    if (!store_id_valid(user_id))
        return PARLEY_OK;
    return R(s)->parental_get(s, user_id, recorded);
}

enum parley_err store_policy_publish(struct store *s, const char *version, bool material,
                                     const char *text, size_t len, int64_t now)
{
    if (!s || !R(s) || !text_ok(version, STORE_POLICY_VERSION_MAX) || !text || len == 0 ||
        len > STORE_POLICY_TEXT_MAX || memchr(text, 0, len))
        return PARLEY_ERR_INVAL;
    return R(s)->policy_publish(s, version, material, text, len, now);
}

enum parley_err store_policy_latest(struct store *s, bool material_only,
                                    struct store_policy_meta *out)
{
    if (!s || !R(s) || !out)
        return PARLEY_ERR_INVAL;
    return R(s)->policy_latest(s, material_only, out);
}

enum parley_err store_policy_text(struct store *s, int64_t seq, char **text, size_t *len)
{
    if (!s || !R(s) || !text || !len)
        return PARLEY_ERR_INVAL;
    *text = NULL;
    *len = 0;
    return R(s)->policy_text(s, seq, text, len);
}

enum parley_err store_policy_accept(struct store *s, const char *user_id, const char *version,
                                    int64_t now)
{
    if (!s || !R(s) || !version)
        return PARLEY_ERR_INVAL;
    if (!store_id_valid(user_id) || !text_ok(version, STORE_POLICY_VERSION_MAX))
        return PARLEY_ERR_NOTFOUND;
    return R(s)->policy_accept(s, user_id, version, now);
}

enum parley_err store_policy_accepted(struct store *s, const char *user_id,
                                      const struct store_policy_meta *gate, bool *ok)
{
    if (!s || !R(s) || !gate || !ok)
        return PARLEY_ERR_INVAL;
    *ok = false;
    if (!store_id_valid(user_id))
        return PARLEY_OK;
    return R(s)->policy_accepted(s, user_id, gate, ok);
}

enum parley_err store_audit_append(struct store *s, struct store_audit_entry *e)
{
    if (!s || !R(s) || !e || !text_ok(e->actor, STORE_AUDIT_FIELD_MAX) ||
        !text_ok(e->kind, STORE_AUDIT_FIELD_MAX) ||
        strnlen(e->subject, STORE_AUDIT_FIELD_MAX + 1) > STORE_AUDIT_FIELD_MAX ||
        strnlen(e->detail, STORE_AUDIT_FIELD_MAX + 1) > STORE_AUDIT_FIELD_MAX)
        return PARLEY_ERR_INVAL;
    return R(s)->audit_append(s, e);
}

enum parley_err store_audit_list(struct store *s, int64_t after_seq, size_t limit,
                                 struct store_audit_entry **out, size_t *n_out)
{
    if (!s || !R(s) || !out || !n_out || limit == 0 || limit > 10000)
        return PARLEY_ERR_INVAL;
    *out = NULL;
    *n_out = 0;
    return R(s)->audit_list(s, after_seq, limit, out, n_out);
}

enum parley_err store_retention_purge(struct store *s, enum store_retention_cat cat,
                                      int64_t cutoff, size_t *n_out)
{
    if (!s || !R(s) || (int)cat < 0 || cat >= STORE_RET__COUNT)
        return PARLEY_ERR_INVAL;
    size_t n = 0;
    enum parley_err err = R(s)->retention_purge(s, cat, cutoff, &n);
    if (!err && n_out)
        *n_out = n;
    return err;
}
