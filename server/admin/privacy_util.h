/*
 * privacy_util.h — helpers shared by the privacy admin commands (parental_consent.c,
 * legal_export.c, policy_cmd.c, audit_cmd.c, transparency.c, retention_cmd.c): who the
 * operator is, and finding an account by id or username.
 */
#ifndef PARLEY_SERVER_ADMIN_PRIVACY_UTIL_H
#define PARLEY_SERVER_ADMIN_PRIVACY_UTIL_H

#include <stdbool.h>
#include "admin.h"
#include "store/store.h"

/* The operator's name for the audit log: --operator NAME, else $USER, else "operator". */
const char *admin_operator(int argc, char **argv);
/* Resolve who (an id or a username) into id. Prints the problem on ctx->err, prefixed
 * with cmd, and returns false when there is no such account or the store fails. */
bool admin_find_user(struct admin_ctx *ctx, const char *cmd, const char *who,
                     char id[STORE_ID_LEN + 1]);
/* The first word of argv[1..) that is neither a --flag nor the value of one of the
 * value-taking flags in vflags (NULL-terminated); NULL if none. */
const char *admin_positional(int argc, char **argv, const char *const *vflags);

#endif
