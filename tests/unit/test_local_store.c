/* test_local_store.c — the client's encrypted local store (lib/local_store.c): values
 * round-trip, lookups are keyed hashes, nothing readable reaches the file (P7), wrong
 * keys and passphrases are refused, values cannot be moved between rows, history. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "../../lib/local_store.h"

static char *tmp_home(void)
{
    char tpl[] = "/tmp/parley-ls-XXXXXX";
    char *d = mkdtemp(tpl);
    assert_non_null(d);
    return strdup(d);
}

static void rm_home(char *home)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    assert_int_equal(system(cmd), 0);
    free(home);
}

/* Does the file (if any) contain needle? */
static bool file_has(const char *home, const char *name, const char *needle)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", home, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    bool found = memmem(b, (size_t)n, needle, strlen(needle)) != NULL;
    free(b);
    return found;
}

static int collect(const uint8_t *rec, size_t len, void *ud)
{
    char *acc = ud;
    size_t have = strlen(acc);
    snprintf(acc + have, 256 - have, "%.*s;", (int)len, (const char *)rec);
    return 0;
}

static void roundtrip(void **state)
{
    (void)state;
    char *home = tmp_home();
    struct local_store *ls = NULL;
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    uint8_t *v = NULL;
    size_t n = 0;
    assert_int_equal(local_store_get(ls, LS_CONTACT, "u1", &v, &n), PARLEY_ERR_NOTFOUND);
    assert_int_equal(local_store_put(ls, LS_CONTACT, "u1", "alpha", 5), PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_SESSION, "u1", "beta", 4), PARLEY_OK);
    assert_int_equal(local_store_get(ls, LS_CONTACT, "u1", &v, &n), PARLEY_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(v, "alpha", 5);
    local_store_value_free(v, n);
    /* Same key, other namespace: independent. */
    assert_int_equal(local_store_get(ls, LS_SESSION, "u1", &v, &n), PARLEY_OK);
    assert_memory_equal(v, "beta", 4);
    local_store_value_free(v, n);
    size_t count = 0;
    assert_int_equal(local_store_count(ls, LS_CONTACT, &count), PARLEY_OK);
    assert_int_equal(count, 1);
    /* Transactions: rollback discards. */
    assert_int_equal(local_store_begin(ls), PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_CONTACT, "u2", "gamma", 5), PARLEY_OK);
    local_store_rollback(ls);
    assert_int_equal(local_store_get(ls, LS_CONTACT, "u2", &v, &n), PARLEY_ERR_NOTFOUND);
    assert_int_equal(local_store_del(ls, LS_CONTACT, "u1"), PARLEY_OK);
    assert_int_equal(local_store_get(ls, LS_CONTACT, "u1", &v, &n), PARLEY_ERR_NOTFOUND);
    /* Limits. */
    char big[LOCAL_STORE_MAX_KEY + 2];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(local_store_put(ls, LS_META, big, "x", 1), PARLEY_ERR_LIMIT);
    local_store_close(ls);

    /* Reopen with the same key file. */
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    assert_int_equal(local_store_get(ls, LS_SESSION, "u1", &v, &n), PARLEY_OK);
    local_store_value_free(v, n);
    local_store_close(ls);

    struct stat st;
    char kp[512];
    snprintf(kp, sizeof kp, "%s/%s", home, LOCAL_STORE_KEY_FILE);
    assert_int_equal(stat(kp, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    rm_home(home);
}

/* Nested levels are savepoints: an inner failure undoes only the inner writes. */
static void nested_transactions(void **state)
{
    (void)state;
    char *home = tmp_home();
    struct local_store *ls = NULL;
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    unsigned l0 = local_store_depth(ls);
    assert_int_equal(l0, 0);
    assert_int_equal(local_store_begin(ls), PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_META, "outer", "1", 1), PARLEY_OK);
    unsigned l1 = local_store_depth(ls);
    assert_int_equal(local_store_begin(ls), PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_META, "inner", "2", 1), PARLEY_OK);
    assert_int_equal(local_store_end(ls, l1, PARLEY_ERR_CRYPTO), PARLEY_ERR_CRYPTO);
    assert_int_equal(local_store_depth(ls), 1);
    assert_int_equal(local_store_begin(ls), PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_META, "inner2", "3", 1), PARLEY_OK);
    assert_int_equal(local_store_end(ls, l1, PARLEY_OK), PARLEY_OK);
    assert_int_equal(local_store_end(ls, l0, PARLEY_OK), PARLEY_OK);
    assert_int_equal(local_store_depth(ls), 0);
    local_store_close(ls);
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    uint8_t *v = NULL;
    size_t n = 0;
    assert_int_equal(local_store_get(ls, LS_META, "outer", &v, &n), PARLEY_OK);
    local_store_value_free(v, n);
    assert_int_equal(local_store_get(ls, LS_META, "inner2", &v, &n), PARLEY_OK);
    local_store_value_free(v, n);
    assert_int_equal(local_store_get(ls, LS_META, "inner", &v, &n), PARLEY_ERR_NOTFOUND);
    /* A failed begin (rc already set) leaves the outer level alone. */
    assert_int_equal(local_store_begin(ls), PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_META, "kept", "4", 1), PARLEY_OK);
    assert_int_equal(local_store_end(ls, 1, PARLEY_ERR_NOMEM), PARLEY_ERR_NOMEM);
    assert_int_equal(local_store_depth(ls), 1);
    assert_int_equal(local_store_end(ls, 0, PARLEY_OK), PARLEY_OK);
    assert_int_equal(local_store_get(ls, LS_META, "kept", &v, &n), PARLEY_OK);
    local_store_value_free(v, n);
    local_store_close(ls);
    rm_home(home);
}

static void history(void **state)
{
    (void)state;
    char *home = tmp_home();
    struct local_store *ls = NULL;
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    assert_int_equal(local_store_msg_add(ls, "peerA", "m1", "one", 3), PARLEY_OK);
    assert_int_equal(local_store_msg_add(ls, "peerB", "m1", "other", 5), PARLEY_OK);
    assert_int_equal(local_store_msg_add(ls, "peerA", "m2", "two", 3), PARLEY_OK);
    assert_int_equal(local_store_msg_add(ls, "peerA", "m3", "three", 5), PARLEY_OK);
    assert_int_equal(local_store_msg_add(ls, "peerA", "m2", "dup", 3), PARLEY_ERR_EXISTS);
    assert_int_equal(local_store_msg_update(ls, "peerA", "m2", "TWO", 3), PARLEY_OK);
    assert_int_equal(local_store_msg_update(ls, "peerA", "zz", "x", 1), PARLEY_ERR_NOTFOUND);
    char acc[256] = "";
    assert_int_equal(local_store_msg_list(ls, "peerA", 0, collect, acc), PARLEY_OK);
    assert_string_equal(acc, "one;TWO;three;");
    acc[0] = 0;
    assert_int_equal(local_store_msg_list(ls, "peerA", 2, collect, acc), PARLEY_OK);
    assert_string_equal(acc, "TWO;three;");
    assert_int_equal(local_store_msg_del(ls, "peerA", "m1"), PARLEY_OK);
    acc[0] = 0;
    assert_int_equal(local_store_msg_list(ls, "peerB", 0, collect, acc), PARLEY_OK);
    assert_string_equal(acc, "other;");
    local_store_close(ls);
    rm_home(home);
}

/* P7: after a message, a session and a contact are stored, the database file holds no
 * plaintext of any of them: not the text, not the ids, not the username. */
static void test_P7_local_store_has_no_plaintext(void **state)
{
    (void)state;
    char *home = tmp_home();
    struct local_store *ls = NULL;
    const char *text = "{\"text\":\"meet me at the old lighthouse at nine\"}";
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    assert_int_equal(local_store_msg_add(ls, "9f1c0ffee0ddba11peer", "c0ffee11msgid", text,
                                         strlen(text)),
                     PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_USERNAME, "carol_the_contact", "9f1c0ffee0ddba11peer",
                                     20),
                     PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_SESSION, "9f1c0ffee0ddba11peer/dev42",
                                     "SECRET-RATCHET-STATE", 20),
                     PARLEY_OK);
    /* Delete something too: secure_delete must not leave it in free pages. */
    assert_int_equal(local_store_put(ls, LS_META, "scratch", "deleted-secret-value", 20),
                     PARLEY_OK);
    assert_int_equal(local_store_del(ls, LS_META, "scratch"), PARLEY_OK);
    local_store_close(ls);
    const char *needles[] = {"lighthouse", "9f1c0ffee0ddba11peer", "c0ffee11msgid",
                             "carol_the_contact", "SECRET-RATCHET", "dev42", "deleted-secret"};
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++) {
        assert_false(file_has(home, LOCAL_STORE_FILE, needles[i]));
        assert_false(file_has(home, LOCAL_STORE_FILE "-journal", needles[i]));
        assert_false(file_has(home, LOCAL_STORE_FILE "-wal", needles[i]));
    }
    /* Control: the scan can fail (the check value's length is not secret, but the
     * schema text is plain). */
    assert_true(file_has(home, LOCAL_STORE_FILE, "CREATE TABLE"));
    rm_home(home);
}

static void wrong_key_refused(void **state)
{
    (void)state;
    char *home = tmp_home();
    struct local_store *ls = NULL;
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_META, "x", "y", 1), PARLEY_OK);
    local_store_close(ls);
    char kp[512];
    snprintf(kp, sizeof kp, "%s/%s", home, LOCAL_STORE_KEY_FILE);
    FILE *f = fopen(kp, "wb");
    assert_non_null(f);
    uint8_t other[32];
    memset(other, 7, sizeof other);
    assert_int_equal(fwrite(other, 1, sizeof other, f), sizeof other);
    fclose(f);
    assert_int_equal(local_store_open(home, &ls), PARLEY_ERR_DENIED);
    assert_int_equal(unlink(kp), 0);
    /* The key is gone but the store is there: refuse rather than start over. */
    assert_int_equal(local_store_open(home, &ls), PARLEY_ERR_DENIED);
    rm_home(home);
}

static void passphrase(void **state)
{
    (void)state;
    char *home = tmp_home();
    struct local_store *ls = NULL;
    setenv("PARLEY_PASSPHRASE", "correct horse battery staple", 1);
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_META, "x", "secret", 6), PARLEY_OK);
    local_store_close(ls);
    char kp[512];
    snprintf(kp, sizeof kp, "%s/%s", home, LOCAL_STORE_KEY_FILE);
    assert_int_not_equal(access(kp, F_OK), 0); /* no key file in passphrase mode */
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    uint8_t *v = NULL;
    size_t n = 0;
    assert_int_equal(local_store_get(ls, LS_META, "x", &v, &n), PARLEY_OK);
    assert_memory_equal(v, "secret", 6);
    local_store_value_free(v, n);
    local_store_close(ls);
    setenv("PARLEY_PASSPHRASE", "wrong horse", 1);
    assert_int_equal(local_store_open(home, &ls), PARLEY_ERR_DENIED);
    unsetenv("PARLEY_PASSPHRASE");
    assert_int_equal(local_store_open(home, &ls), PARLEY_ERR_DENIED);
    rm_home(home);
}

/* A value copied into another row does not open there (AD binds it to its row). */
static void values_bound_to_rows(void **state)
{
    (void)state;
    char *home = tmp_home();
    struct local_store *ls = NULL;
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_CONTACT, "a", "value-a", 7), PARLEY_OK);
    assert_int_equal(local_store_put(ls, LS_CONTACT, "b", "value-b", 7), PARLEY_OK);
    local_store_close(ls);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", home, LOCAL_STORE_FILE);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE kv SET v = (SELECT v FROM kv WHERE ns = 5 LIMIT 1)"
                                  " WHERE ns = 5",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(local_store_open(home, &ls), PARLEY_OK);
    uint8_t *v = NULL;
    size_t n = 0;
    enum parley_err a = local_store_get(ls, LS_CONTACT, "a", &v, &n);
    local_store_value_free(v, n);
    v = NULL;
    enum parley_err b = local_store_get(ls, LS_CONTACT, "b", &v, &n);
    local_store_value_free(v, n);
    /* One of the two rows now holds the other's value: exactly one fails. */
    assert_true((a == PARLEY_OK && b == PARLEY_ERR_CRYPTO) ||
                (a == PARLEY_ERR_CRYPTO && b == PARLEY_OK));
    local_store_close(ls);
    rm_home(home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip),
        cmocka_unit_test(nested_transactions),
        cmocka_unit_test(history),
        cmocka_unit_test(test_P7_local_store_has_no_plaintext),
        cmocka_unit_test(wrong_key_refused),
        cmocka_unit_test(passphrase),
        cmocka_unit_test(values_bound_to_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
