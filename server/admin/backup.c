/*
 * backup.c — `parleyd admin backup --out DIR [--keys-out DIR2]`: consistent online copies
 * of the main database (parley.db) and of the key store (keys.db), made with SQLite's
 * online backup API while parleyd runs. The two are separate files so they can be kept
 * apart and for different times: a key-store backup can open the personal fields of
 * every account it holds a key for, including accounts erased since (crypto-shredding
 * only works once no copy of the key is left), so key-store backups must be kept for a
 * shorter time than database backups (docs/operations.md "Backups").
 *
 * Files are created new (never overwritten) with mode 0600 in directories made 0700.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "file_util.h"

static int copy_db(struct admin_ctx *ctx, const char *src_path, const char *dst_path)
{
    sqlite3 *src = NULL, *dst = NULL;
    sqlite3_backup *b = NULL;
    int status = 1;
    int fd = open(dst_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        fprintf(ctx->err, "backup: cannot create %s: %s\n", dst_path, strerror(errno));
        return 1;
    }
    close(fd);
    int rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(src, 10000);
        b = sqlite3_backup_init(dst, "main", src, "main");
        if (!b)
            rc = sqlite3_errcode(dst);
    }
    if (b) {
        do {
            rc = sqlite3_backup_step(b, -1);
            if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                sqlite3_sleep(50);
        } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
        int frc = sqlite3_backup_finish(b);
        if (rc == SQLITE_DONE)
            rc = frc;
    }
    /* A standalone copy: fold its WAL (if any) into the file. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        status = 0;
        fprintf(ctx->out, "%s -> %s\n", src_path, dst_path);
    } else {
        fprintf(ctx->err, "backup: %s: %s\n", src_path, sqlite3_errstr(rc));
        unlink(dst_path);
    }
    sqlite3_close(dst);
    sqlite3_close(src);
    return status;
}

int admin_cmd_backup(struct admin_ctx *ctx, int argc, char **argv)
{
    const char *out = admin_opt(argc, argv, "--out");
    const char *keys_out = admin_opt(argc, argv, "--keys-out");
    if (!out) {
        fprintf(ctx->err, "usage: parleyd admin backup --out DIR [--keys-out DIR2]\n");
        return 2;
    }
    if (!keys_out)
        keys_out = out;
    char src[PATH_MAX], dst[PATH_MAX];
    const char *dirs[2] = {out, keys_out};
    const char *names[2] = {"parley.db", "keys.db"};
    for (int i = 0; i < 2; i++) {
        if (file_mkdirs(dirs[i], 0700) != PARLEY_OK) {
            fprintf(ctx->err, "backup: cannot create %s\n", dirs[i]);
            return 1;
        }
        if (snprintf(src, sizeof src, "%s/%s", ctx->cfg.data_dir, names[i]) >= (int)sizeof src ||
            snprintf(dst, sizeof dst, "%s/%s", dirs[i], names[i]) >= (int)sizeof dst) {
            fprintf(ctx->err, "backup: path too long\n");
            return 1;
        }
        if (copy_db(ctx, src, dst))
            return 1;
    }
    fprintf(ctx->out, "keep the key-store copy for less time than the database copy "
                      "(see docs/operations.md)\n");
    return 0;
}
