/*
 * policy_cmd.c — `parleyd admin policy publish --version V --file TEXT (--material|--minor)
 * [--operator NAME]`: publish a privacy-policy version (POLICY P30). A material version
 * gates every account that has not accepted it (api/auth.c); a running parleyd sees it
 * within POLICY_CACHE_REFRESH_MS. The publication is audited (kind policy_publish).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "clock.h"
#include "privacy/audit.h"
#include "privacy_util.h"
#include "store/store.h"

static int usage(struct admin_ctx *ctx)
{
    fprintf(ctx->err, "usage: parleyd admin policy publish --version V --file TEXT "
                      "(--material|--minor) [--operator NAME]\n");
    return 2;
}

/* Read the whole file (at most STORE_POLICY_TEXT_MAX bytes) into a malloc'd buffer. */
static char *read_text(struct admin_ctx *ctx, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        fprintf(ctx->err, "policy: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    buf = malloc(STORE_POLICY_TEXT_MAX + 1);
    size_t n = buf ? fread(buf, 1, STORE_POLICY_TEXT_MAX + 1, f) : 0;
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad || n == 0 || n > STORE_POLICY_TEXT_MAX || memchr(buf, 0, n)) {
        fprintf(ctx->err, "policy: %s must be 1 to %d bytes of text\n", path,
                STORE_POLICY_TEXT_MAX);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int admin_cmd_policy(struct admin_ctx *ctx, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "publish") != 0)
        return usage(ctx);
    const char *version = admin_opt(argc, argv, "--version");
    const char *path = admin_opt(argc, argv, "--file");
    int material = admin_flag(argc, argv, "--material");
    int minor = admin_flag(argc, argv, "--minor");
    if (!version || !*version || strlen(version) > STORE_POLICY_VERSION_MAX || !path ||
        material == minor)
        return usage(ctx);
    size_t len = 0;
    char *text = read_text(ctx, path, &len);
    if (!text)
        return 1;
    int64_t now = clock_now_s();
    char detail[STORE_AUDIT_FIELD_MAX + 1];
    snprintf(detail, sizeof detail, "version %s (%s)", version, material ? "material" : "minor");
    enum parley_err err = audit_record(ctx->store, ctx->master_key, admin_operator(argc, argv),
                                       AUDIT_KIND_POLICY_PUBLISH, NULL, detail, now, NULL);
    if (!err)
        err = store_policy_publish(ctx->store, version, material != 0, text, len, now);
    free(text);
    if (err == PARLEY_ERR_EXISTS) {
        fprintf(ctx->err, "policy: version %s was already published\n", version);
        return 1;
    }
    if (err) {
        fprintf(ctx->err, "policy: %s\n", parley_strerror(err));
        return 1;
    }
    fprintf(ctx->out, "published policy %s (%s)\n", version, material ? "material" : "minor");
    return 0;
}
