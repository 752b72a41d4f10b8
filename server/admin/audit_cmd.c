/*
 * audit_cmd.c — `parleyd admin audit verify`: check the audit log's hash chain (POLICY
 * P26, privacy/audit.h). Exit 0 and print the entry count and head hash when intact
 * (record the head hash elsewhere: only an external copy detects a truncated tail);
 * exit 1 naming the first bad entry otherwise.
 */
#include <sodium.h>
#include <string.h>

#include "admin.h"
#include "privacy/audit.h"

int admin_cmd_audit(struct admin_ctx *ctx, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        fprintf(ctx->err, "usage: parleyd admin audit verify\n");
        return 2;
    }
    size_t n = 0;
    uint8_t head[STORE_AUDIT_HASH_BYTES];
    int64_t bad = 0;
    char reason[160] = "";
    enum parley_err err = audit_verify(ctx->store, &n, head, &bad, reason, sizeof reason);
    if (err == PARLEY_ERR_CRYPTO) {
        fprintf(ctx->err, "audit: BROKEN at entry %lld: %s\n", (long long)bad, reason);
        return 1;
    }
    if (err) {
        fprintf(ctx->err, "audit: cannot read the log: %s\n", parley_strerror(err));
        return 1;
    }
    char hex[2 * STORE_AUDIT_HASH_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, head, sizeof head);
    fprintf(ctx->out, "audit log intact: %zu entries, head %s\n", n, hex);
    return 0;
}
