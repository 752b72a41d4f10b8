/*
 * test_export.c — the export registry (server/export.h) against the real schema: every
 * table of a freshly migrated database is either exported by a registry section or
 * listed as holding no user data, with a reason (so a table added without thought for
 * P28 fails here); every registry query runs; the document is one valid JSON object
 * with every section and a report entry for each.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "export.h"
#include "store/store.h"

static bool covered(const char *table)
{
    size_t n = strlen(table);
    for (size_t i = 0; i < export_registry_count; i++) {
        const char *t = export_registry[i].tables;
        while (t && *t) {
            const char *end = strchr(t, ',');
            size_t len = end ? (size_t)(end - t) : strlen(t);
            if (len == n && !strncmp(t, table, n))
                return true;
            t = end ? end + 1 : NULL;
        }
    }
    for (size_t i = 0; i < export_no_user_data_count; i++)
        if (!strcmp(export_no_user_data[i].table, table)) {
            assert_true(strlen(export_no_user_data[i].reason) > 10);
            return true;
        }
    return false;
}

static enum parley_err to_buf(void *ctx, const char *data, size_t len)
{
    return buf_append(ctx, data, len);
}

static void test_P28_registry_covers_every_table(void **state)
{
    (void)state;
    char path[] = "/tmp/parley-export-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct store *s = NULL;
    assert_int_equal(store_open_sqlite(path, &s), PARLEY_OK);

    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    int tables = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!covered(t))
            fail_msg("table '%s' is neither exported (server/export.c export_registry) nor "
                     "listed in export_no_user_data with a reason",
                     t);
        tables++;
    }
    sqlite3_finalize(st);
    assert_true(tables >= 8);
    /* And the other way: every table the registry names exists. */
    for (size_t i = 0; i < export_registry_count; i++) {
        char list[256];
        snprintf(list, sizeof list, "%s", export_registry[i].tables);
        for (char *save = list, *t; (t = save) != NULL;) {
            char *comma = strchr(t, ',');
            if (comma)
                *comma = '\0';
            save = comma ? comma + 1 : NULL;
            char q[320];
            snprintf(q, sizeof q, "SELECT 1 FROM \"%s\" LIMIT 0", t);
            if (sqlite3_exec(db, q, NULL, NULL, NULL) != SQLITE_OK)
                fail_msg("registry section '%s' names a missing table '%s'",
                         export_registry[i].name, t);
        }
    }
    sqlite3_close(db);

    /* A user, and the document: valid JSON, every section, one report entry each. */
    struct store_user u;
    memset(&u, 0, sizeof u);
    store_id_new(u.id);
    snprintf(u.username, sizeof u.username, "exporter");
    snprintf(u.name, sizeof u.name, "Ex Porter");
    snprintf(u.dob, sizeof u.dob, "1990-01-01");
    snprintf(u.password_hash, sizeof u.password_hash, "$argon2id$v=19$x");
    u.created_at = 1700000000;
    assert_int_equal(store_user_create(s, &u), PARLEY_OK);
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(export_user_json(s, u.id, 1700000001, to_buf, &out), PARLEY_OK);
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)out.data, out.len, 0, &jerr);
    assert_non_null(doc);
    json_t *sections = json_object_get(doc, "sections");
    assert_int_equal(json_object_size(sections), export_registry_count);
    for (size_t i = 0; i < export_registry_count; i++)
        assert_non_null(json_object_get(sections, export_registry[i].name));
    assert_string_equal(json_string_value(json_object_get(json_object_get(sections, "profile"),
                                                          "name")),
                        "Ex Porter");
    assert_int_equal(json_array_size(json_object_get(json_object_get(doc, "report"), "sections")),
                     export_registry_count);
    assert_null(strstr(buf_str(&out), "$argon2id"));
    json_decref(doc);

    /* An unknown account writes nothing. */
    buf_reset(&out);
    char other[STORE_ID_LEN + 1];
    store_id_new(other);
    assert_int_equal(export_user_json(s, other, 1, to_buf, &out), PARLEY_ERR_NOTFOUND);
    assert_int_equal(out.len, 0);
    /* A writer's limit stops the export with its error. */
    struct buf small;
    buf_init(&small, 64);
    assert_int_equal(export_user_json(s, u.id, 1, to_buf, &small), PARLEY_ERR_LIMIT);
    buf_cleanup(&small);
    buf_cleanup(&out);

    /* Erasure through the same store: the user and everything of it goes. */
    assert_int_equal(store_user_delete(s, u.id), PARLEY_OK);
    assert_int_equal(store_user_delete(s, u.id), PARLEY_ERR_NOTFOUND);
    assert_int_equal(store_user_delete(s, "not-an-id"), PARLEY_ERR_NOTFOUND);
    struct store_user back;
    assert_int_equal(store_user_get_by_id(s, u.id, &back), PARLEY_ERR_NOTFOUND);
    store_close(s);
    unlink(path);
    char side[sizeof path + 8];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_P28_registry_covers_every_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
