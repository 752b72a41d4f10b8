/*
 * test_keystore.c — the per-account data-key store (server/store/keystore.h) and the
 * encrypted profile fields of the SQLite store: keys unwrap only with their master key
 * and for their account; fields open only for their account and column; a destroyed
 * key is gone (the profile reads as "no such account"); the files hold no plaintext.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/keystore.h"
#include "store/store.h"

static void rm_db(const char *p)
{
    char side[512];
    unlink(p);
    snprintf(side, sizeof side, "%s-wal", p);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", p);
    unlink(side);
}

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(buf + i, needle, m))
            return true;
    return false;
}

static void test_P27_keys_and_fields(void **state)
{
    (void)state;
    unsigned char mk[32], mk2[32];
    randombytes_buf(mk, sizeof mk);
    randombytes_buf(mk2, sizeof mk2);
    char kpath[] = "/tmp/parley-keys-test-XXXXXX";
    int fd = mkstemp(kpath);
    assert_true(fd >= 0);
    close(fd);
    struct keystore *ks = NULL, *ks2 = NULL;
    assert_int_equal(keystore_open(kpath, mk, &ks), PARLEY_OK);
    uint8_t k[KEYSTORE_KEY_BYTES], k2[KEYSTORE_KEY_BYTES];
    const char *uid = "00112233445566778899aabbccddeeff";
    assert_int_equal(keystore_create(ks, uid, 1, k), PARLEY_OK);
    assert_int_equal(keystore_create(ks, uid, 1, k2), PARLEY_ERR_EXISTS);
    assert_int_equal(keystore_get(ks, uid, k2), PARLEY_OK);
    assert_memory_equal(k, k2, sizeof k);
    assert_int_equal(keystore_get(ks, "ffffffffffffffffffffffffffffffff", k2),
                     PARLEY_ERR_NOTFOUND);
    /* Another master key cannot unwrap it. */
    assert_int_equal(keystore_open(kpath, mk2, &ks2), PARLEY_OK);
    assert_int_equal(keystore_get(ks2, uid, k2), PARLEY_ERR_CRYPTO);
    keystore_close(ks2);

    char sealed[KEYSTORE_SEALED_TEXT_MAX(64)], plain[65];
    assert_int_equal(keystore_seal_field(k, uid, "name", "Ada Lovelace", sealed, sizeof sealed),
                     PARLEY_OK);
    assert_null(strstr(sealed, "Ada"));
    assert_int_equal(keystore_open_field(k, uid, "name", sealed, plain, sizeof plain), PARLEY_OK);
    assert_string_equal(plain, "Ada Lovelace");
    /* Bound to column and account. */
    assert_int_equal(keystore_open_field(k, uid, "gender", sealed, plain, sizeof plain),
                     PARLEY_ERR_CRYPTO);
    assert_int_equal(keystore_open_field(k, "ffffffffffffffffffffffffffffffff", "name", sealed,
                                         plain, sizeof plain),
                     PARLEY_ERR_CRYPTO);
    sealed[5] = sealed[5] == 'A' ? 'B' : 'A';
    assert_int_equal(keystore_open_field(k, uid, "name", sealed, plain, sizeof plain),
                     PARLEY_ERR_CRYPTO);
    assert_int_equal(keystore_open_field(k, uid, "name", "!!not base64", plain, sizeof plain),
                     PARLEY_ERR_CRYPTO);
    assert_int_equal(keystore_seal_field(k, uid, "name", "Ada", sealed, 8), PARLEY_ERR_LIMIT);

    /* The store with keys: profile fields at rest are ciphertext; deleting destroys the key. */
    char dpath[] = "/tmp/parley-db-test-XXXXXX";
    fd = mkstemp(dpath);
    assert_true(fd >= 0);
    close(fd);
    struct store *s = NULL;
    assert_int_equal(store_open_sqlite_keyed(dpath, ks, &s), PARLEY_OK);
    struct store_user u, back;
    memset(&u, 0, sizeof u);
    store_id_new(u.id);
    snprintf(u.username, sizeof u.username, "ada");
    snprintf(u.name, sizeof u.name, "Zyxwv Lovelace");
    snprintf(u.dob, sizeof u.dob, "1815-12-10");
    snprintf(u.region, sizeof u.region, "GB");
    snprintf(u.password_hash, sizeof u.password_hash, "$argon2id$v=19$x");
    u.created_at = 1700000000;
    assert_int_equal(store_user_create(s, &u), PARLEY_OK);
    assert_int_equal(store_user_get_by_username(s, "ada", &back), PARLEY_OK);
    assert_string_equal(back.name, "Zyxwv Lovelace");
    assert_string_equal(back.region, "GB");
    assert_string_equal(back.gender, "");
    struct store_profile_patch p;
    memset(&p, 0, sizeof p);
    p.fields = STORE_PATCH_GENDER;
    snprintf(p.gender, sizeof p.gender, "Qwertyfem");
    assert_int_equal(store_user_update_profile(s, u.id, &p, &back), PARLEY_OK);
    assert_int_equal(store_user_get_by_id(s, u.id, &back), PARLEY_OK);
    assert_string_equal(back.gender, "Qwertyfem");
    store_close(s);
    assert_false(file_has(dpath, "Zyxwv"));
    assert_false(file_has(dpath, "Qwertyfem"));
    assert_int_equal(store_open_sqlite_keyed(dpath, ks, &s), PARLEY_OK);
    assert_int_equal(store_user_delete(s, u.id), PARLEY_OK);
    assert_int_equal(keystore_get(ks, u.id, k2), PARLEY_ERR_NOTFOUND);
    store_close(s);
    assert_false(file_has(dpath, "ada"));
    assert_false(file_has(dpath, u.id));
    assert_false(file_has(kpath, u.id));

    keystore_close(ks);
    rm_db(kpath);
    rm_db(dpath);
    sodium_memzero(k, sizeof k);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_P27_keys_and_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
