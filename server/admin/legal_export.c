/*
 * legal_export.c — `parleyd admin export USER --reason TEXT [--operator NAME] [--out FILE]`:
 * disclose an account's data for a legal request (POLICY P26). The audit entry (kind
 * legal_export, the reason as detail) is written BEFORE anything is read for the
 * export; if it cannot be written, nothing is disclosed. The document is the same as
 * the holder's own export (export.h), written to FILE (mode 0600) or standard output.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "clock.h"
#include "export.h"
#include "privacy/audit.h"
#include "privacy_util.h"
#include "store/store.h"

static enum parley_err write_file(void *ctx, const char *data, size_t len)
{
    return fwrite(data, 1, len, (FILE *)ctx) == len ? PARLEY_OK : PARLEY_ERR_IO;
}

int admin_cmd_export(struct admin_ctx *ctx, int argc, char **argv)
{
    static const char *const vflags[] = {"--reason", "--operator", "--out", NULL};
    const char *who = admin_positional(argc, argv, vflags);
    const char *reason = admin_opt(argc, argv, "--reason");
    const char *path = admin_opt(argc, argv, "--out");
    char id[STORE_ID_LEN + 1];
    FILE *f = ctx->out;
    if (!who || !reason || !*reason || strlen(reason) > STORE_AUDIT_FIELD_MAX) {
        fprintf(ctx->err, "usage: parleyd admin export USER --reason TEXT [--operator NAME] "
                          "[--out FILE]\n");
        return 2;
    }
    if (!admin_find_user(ctx, "export", who, id))
        return 1;
    int64_t now = clock_now_s();
    enum parley_err err = audit_record(ctx->store, ctx->master_key, admin_operator(argc, argv),
                                       AUDIT_KIND_LEGAL_EXPORT, id, reason, now, NULL);
    if (err) {
        fprintf(ctx->err, "export: cannot write the audit entry (%s); nothing disclosed\n",
                parley_strerror(err));
        return 1;
    }
    if (path) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f) {
            fprintf(ctx->err, "export: cannot create %s: %s\n", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return 1;
        }
    }
    err = export_user_json(ctx->store, id, now, write_file, f);
    if (f != ctx->out) {
        if (fflush(f) != 0 || fsync(fileno(f)) != 0)
            err = err ? err : PARLEY_ERR_IO;
        fclose(f);
    } else {
        fputc('\n', f);
    }
    if (err) {
        fprintf(ctx->err, "export: %s\n", parley_strerror(err));
        return 1;
    }
    return 0;
}
