/* privacy_util.c — helpers of the privacy admin commands; see privacy_util.h. */
#include "privacy_util.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

const char *admin_operator(int argc, char **argv)
{
    const char *op = admin_opt(argc, argv, "--operator");
    if (!op || !*op)
        op = getenv("USER");
    if (!op || !*op)
        op = "operator";
    return op;
}

bool admin_find_user(struct admin_ctx *ctx, const char *cmd, const char *who,
                     char id[STORE_ID_LEN + 1])
{
    struct store_user u;
    enum parley_err err = store_id_valid(who) ? store_user_get_by_id(ctx->store, who, &u)
                                              : store_user_get_by_username(ctx->store, who, &u);
    if (err == PARLEY_ERR_NOTFOUND) {
        fprintf(ctx->err, "%s: no account %s\n", cmd, who);
        return false;
    }
    if (err) {
        fprintf(ctx->err, "%s: cannot read the account: %s\n", cmd, parley_strerror(err));
        return false;
    }
    memcpy(id, u.id, STORE_ID_LEN + 1);
    sodium_memzero(&u, sizeof u);
    return true;
}

const char *admin_positional(int argc, char **argv, const char *const *vflags)
{
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            for (const char *const *f = vflags; *f; f++)
                if (!strcmp(argv[i], *f)) {
                    i++;
                    break;
                }
            continue;
        }
        return argv[i];
    }
    return NULL;
}
