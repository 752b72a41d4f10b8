/*
 * retention_cmd.c — `parleyd admin retention [--run]`: print the retention table
 * (POLICY P31, server/retention.h); with --run, run every job once now (at the
 * configured clock, so --clock-offset shows what a future pass would delete) and print
 * the rows each deleted.
 */
#include "admin.h"
#include "clock.h"
#include "retention.h"

int admin_cmd_retention(struct admin_ctx *ctx, int argc, char **argv)
{
    if (!admin_flag(argc, argv, "--run")) {
        retention_print(&ctx->cfg, ctx->out);
        return 0;
    }
    enum parley_err err = retention_run_all(ctx->store, &ctx->cfg, clock_now_s(), true, ctx->out);
    if (err) {
        fprintf(ctx->err, "retention: a job failed: %s\n", parley_strerror(err));
        return 1;
    }
    return 0;
}
