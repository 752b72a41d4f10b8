/*
 * parental_consent.c — `parleyd admin parental-consent USER --reference TEXT
 * [--operator NAME]`: record that a parent consented for an account flagged
 * parental_consent_required (POLICY P29), so its holder can grant consent purposes.
 * The audit entry (kind parental_consent, reference as detail) is written first; if it
 * cannot be, nothing is recorded.
 */
#include <string.h>

#include "admin.h"
#include "clock.h"
#include "privacy/audit.h"
#include "privacy_util.h"
#include "store/store.h"

int admin_cmd_parental_consent(struct admin_ctx *ctx, int argc, char **argv)
{
    static const char *const vflags[] = {"--reference", "--operator", NULL};
    const char *who = admin_positional(argc, argv, vflags);
    const char *ref = admin_opt(argc, argv, "--reference");
    char id[STORE_ID_LEN + 1];
    if (!who || !ref || !*ref || strlen(ref) > STORE_PARENTAL_REF_MAX) {
        fprintf(ctx->err, "usage: parleyd admin parental-consent USER --reference TEXT "
                          "[--operator NAME] (reference: 1 to %d bytes)\n",
                STORE_PARENTAL_REF_MAX);
        return 2;
    }
    if (!admin_find_user(ctx, "parental-consent", who, id))
        return 1;
    int64_t now = clock_now_s();
    enum parley_err err = audit_record(ctx->store, ctx->master_key, admin_operator(argc, argv),
                                       AUDIT_KIND_PARENTAL_CONSENT, id, ref, now, NULL);
    if (err) {
        fprintf(ctx->err, "parental-consent: cannot write the audit entry (%s); nothing "
                          "recorded\n",
                parley_strerror(err));
        return 1;
    }
    err = store_parental_record(ctx->store, id, ref, now);
    if (err) {
        fprintf(ctx->err, "parental-consent: %s\n", parley_strerror(err));
        return 1;
    }
    fprintf(ctx->out, "parental consent recorded for %s\n", id);
    return 0;
}
