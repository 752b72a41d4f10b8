/*
 * transparency.c — `parleyd admin transparency --since YYYY-MM-DD`: the transparency
 * report (POLICY P26): how many operator actions of each kind (legal exports, parental
 * consents, report reviews, under-age closures, policy publications) the audit log holds
 * since the date (UTC), and whether the chain verifies. Counts only, no accounts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "privacy/audit.h"

#define KINDS_MAX 64

static bool parse_date(const char *s, int64_t *out)
{
    int y = 0, m = 0, d = 0;
    char tail = 0;
    if (!s || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || y < 1970 || m < 1 ||
        m > 12 || d < 1 || d > 31)
        return false;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    *out = (int64_t)timegm(&tm);
    return true;
}

int admin_cmd_transparency(struct admin_ctx *ctx, int argc, char **argv)
{
    int64_t since = 0;
    if (!parse_date(admin_opt(argc, argv, "--since"), &since)) {
        fprintf(ctx->err, "usage: parleyd admin transparency --since YYYY-MM-DD\n");
        return 2;
    }
    char kinds[KINDS_MAX][STORE_AUDIT_FIELD_MAX + 1];
    size_t counts[KINDS_MAX] = {0}, nk = 0, total = 0;
    int64_t after = 0;
    for (;;) {
        struct store_audit_entry *v = NULL;
        size_t n = 0;
        enum parley_err err = store_audit_list(ctx->store, after, 500, &v, &n);
        if (err) {
            fprintf(ctx->err, "transparency: cannot read the audit log: %s\n",
                    parley_strerror(err));
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            after = v[i].seq;
            if (v[i].at < since)
                continue;
            size_t k = 0;
            while (k < nk && strcmp(kinds[k], v[i].kind) != 0)
                k++;
            if (k == nk) {
                if (nk == KINDS_MAX)
                    continue; /* more kinds than the report shows: counted in total */
                memcpy(kinds[nk++], v[i].kind, sizeof kinds[0]);
            }
            counts[k]++;
        }
        free(v);
        if (n < 500)
            break;
    }
    fprintf(ctx->out, "transparency report since %s\n", admin_opt(argc, argv, "--since"));
    for (size_t k = 0; k < nk; k++) {
        fprintf(ctx->out, "%s %zu\n", kinds[k], counts[k]);
        total += counts[k];
    }
    fprintf(ctx->out, "total %zu\n", total);
    size_t n = 0;
    uint8_t head[STORE_AUDIT_HASH_BYTES];
    int64_t bad = 0;
    char reason[160];
    enum parley_err err = audit_verify(ctx->store, &n, head, &bad, reason, sizeof reason);
    if (err == PARLEY_ERR_CRYPTO)
        fprintf(ctx->out, "chain BROKEN at entry %lld\n", (long long)bad);
    else if (err)
        fprintf(ctx->out, "chain not checked: %s\n", parley_strerror(err));
    else
        fprintf(ctx->out, "chain intact (%zu entries)\n", n);
    return err ? 1 : 0;
}
