/*
 * close_underage.c — `parleyd admin close-underage USER [--operator NAME] [--reason TEXT]`:
 * the operator's action when an account turns out to belong to a child under 13
 * (POLICY P29). The account is erased exactly as by its holder (P27,
 * store_user_delete: every row in one transaction, then its data key). The audit entry
 * (privacy/audit.h, kind underage_closure, the account named only by its pseudonym) is
 * written first: if it cannot be written, nothing is deleted.
 */
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "clock.h"
#include "privacy/audit.h"
#include "store/store.h"

int admin_cmd_close_underage(struct admin_ctx *ctx, int argc, char **argv)
{
    struct store_user u;
    const char *who = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--operator") || !strcmp(argv[i], "--reason")) {
            i++;
            continue;
        }
        if (argv[i][0] == '-' || who) {
            fprintf(ctx->err, "usage: parleyd admin close-underage USER [--operator NAME] "
                              "[--reason TEXT]\n");
            return 2;
        }
        who = argv[i];
    }
    if (!who) {
        fprintf(ctx->err, "usage: parleyd admin close-underage USER [--operator NAME] "
                          "[--reason TEXT]\n");
        return 2;
    }
    const char *op = admin_opt(argc, argv, "--operator");
    if (!op)
        op = getenv("USER");
    if (!op || !*op)
        op = "operator";
    const char *reason = admin_opt(argc, argv, "--reason");
    enum parley_err err = store_id_valid(who) ? store_user_get_by_id(ctx->store, who, &u)
                                              : store_user_get_by_username(ctx->store, who, &u);
    if (err == PARLEY_ERR_NOTFOUND) {
        fprintf(ctx->err, "close-underage: no account %s\n", who);
        return 1;
    }
    if (err) {
        fprintf(ctx->err, "close-underage: cannot read the account: %s\n", parley_strerror(err));
        return 1;
    }
    char id[STORE_ID_LEN + 1];
    memcpy(id, u.id, sizeof id);
    memset(&u, 0, sizeof u);
    err = audit_record(ctx->store, ctx->master_key, op, AUDIT_KIND_UNDERAGE_CLOSURE, id,
                       reason ? reason : "under 13 (P29)", clock_now_s(), NULL);
    if (err) {
        fprintf(ctx->err, "close-underage: cannot write the audit entry (%s); nothing deleted\n",
                parley_strerror(err));
        return 1;
    }
    err = store_user_delete(ctx->store, id);
    if (err) {
        fprintf(ctx->err, "close-underage: deletion failed: %s\n", parley_strerror(err));
        return 1;
    }
    fprintf(ctx->out, "closed account %s: every row deleted, data key destroyed\n", id);
    return 0;
}
