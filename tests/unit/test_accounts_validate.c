/*
 * test_accounts_validate.c — usernames, text, passwords, dates, age at its boundaries
 * (birthdays, leap days, time of day in UTC), regions and the age gate (P29).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "api/accounts_validate.h"

/* Seconds since the epoch at y-m-d hh:mm:ss UTC, computed independently (timegm). */
static int64_t at(int y, int m, int d, int hh, int mm, int ss)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    return (int64_t)timegm(&tm);
}

static struct accounts_date D(int y, int m, int d) {
    struct accounts_date r = {y, m, d};
    return r;
}

#define U(s) accounts_validate_username(s, strlen(s))

static void
test_usernames(void **state)
{
    (void)state;
    assert_true(U("abc"));
    assert_true(U("alice_92.x"));
    assert_true(U("a.b"));
    assert_true(U("abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
    assert_false(U("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
    assert_false(U("ab"));
    assert_false(U(""));
    assert_false(U("Alice"));
    assert_false(U("ali ce"));
    assert_false(U("alice-b"));
    assert_false(U("alicé"));
    assert_false(accounts_validate_username("abc\0def", 7));
    assert_false(accounts_validate_username(NULL, 3));
}

#define T(s, lo, hi) accounts_validate_text(s, strlen(s), lo, hi)

static void test_text(void **state)
{
    (void)state;
    assert_true(T("Alice", 1, 64));
    assert_true(T("Zoë Ñandú 李小龍 🙂", 1, 64));
    assert_false(T("", 1, 64));
    assert_true(T("", 0, 64));
    /* 64 code points of 4 bytes each: fine; 65: not. */
    char buf[4 * 65 + 1] = "";
    for (int i = 0; i < 65; i++)
        memcpy(buf + 4 * i, "🙂", 4);
    assert_true(accounts_validate_text(buf, 4 * 64, 1, 64));
    assert_false(accounts_validate_text(buf, 4 * 65, 1, 64));
    /* Control characters: C0, DEL, C1 (U+0085). */
    assert_false(T("a\tb", 1, 64));
    assert_false(T("a\nb", 1, 64));
    assert_false(T("a\x7f", 1, 64));
    assert_false(T("a\xc2\x85", 1, 64));
    assert_true(T("a\xc2\xa0", 1, 64)); /* NBSP is text */
    assert_false(accounts_validate_text("a\0b", 3, 1, 64));
    /* Ill-formed UTF-8. */
    assert_false(T("\xc0\xaf", 1, 64));         /* overlong '/' */
    assert_false(T("\xe0\x80\xaf", 1, 64));     /* overlong */
    assert_false(T("\xed\xa0\x80", 1, 64));     /* surrogate D800 */
    assert_false(T("\xf4\x90\x80\x80", 1, 64)); /* > U+10FFFF */
    assert_false(T("\xf5\x80\x80\x80", 1, 64));
    assert_false(T("\x80", 1, 64));
    assert_false(T("\xe2\x82", 1, 64)); /* truncated */
    assert_false(T("\xe2\x28\xa1", 1, 64));
    size_t n = 0;
    assert_true(accounts_utf8_valid("a\xe2\x82\xac\xf0\x9f\x99\x82", 8, &n));
    assert_int_equal(n, 3);
    assert_true(accounts_utf8_valid("\x01", 1, NULL));
}

static void test_password_len(void **state)
{
    (void)state;
    assert_false(accounts_validate_password_len(7));
    assert_true(accounts_validate_password_len(8));
    assert_true(accounts_validate_password_len(256));
    assert_false(accounts_validate_password_len(257));
}

#define P(s, d) accounts_date_parse(s, strlen(s), d)

static void test_date_parse(void **state)
{
    (void)state;
    struct accounts_date d;
    assert_true(P("2000-02-29", &d));
    assert_int_equal(d.year, 2000);
    assert_int_equal(d.month, 2);
    assert_int_equal(d.day, 29);
    assert_true(P("2024-02-29", &d));
    assert_true(P("1999-12-31", &d));
    assert_false(P("1900-02-29", &d)); /* 1900 is not a leap year */
    assert_false(P("2023-02-29", &d));
    assert_false(P("2023-02-30", &d));
    assert_false(P("2023-04-31", &d));
    assert_false(P("2023-13-01", &d));
    assert_false(P("2023-00-10", &d));
    assert_false(P("2023-01-00", &d));
    assert_false(P("2023-1-01", &d));
    assert_false(P("2023-01-1", &d));
    assert_false(P("20230101", &d));
    assert_false(P("2023/01/01", &d));
    assert_false(P("+023-01-01", &d));
    assert_false(P("2023-01-01T", &d));
    assert_false(P(" 2023-01-01", &d));
    assert_false(P("", &d));
    assert_false(P("0000-01-01", &d));
}

static void test_date_range(void **state)
{
    (void)state;
    int64_t now = at(2026, 6, 15, 12, 0, 0);
    struct accounts_date d = D(1900, 1, 1);
    assert_true(accounts_dob_in_range(&d, now));
    d = D(1899, 12, 31);
    assert_false(accounts_dob_in_range(&d, now));
    d = D(2026, 6, 15);
    assert_true(accounts_dob_in_range(&d, now));
    d = D(2026, 6, 16);
    assert_false(accounts_dob_in_range(&d, now));
    /* "today" is the UTC date: one second before midnight UTC it is still the 15th. */
    assert_false(accounts_dob_in_range(&d, at(2026, 6, 15, 23, 59, 59)));
    assert_true(accounts_dob_in_range(&d, at(2026, 6, 16, 0, 0, 0)));
}

static void test_date_from_time(void **state)
{
    (void)state;
    struct accounts_date d;
    accounts_date_from_time(0, &d);
    assert_int_equal(d.year, 1970);
    assert_int_equal(d.month, 1);
    assert_int_equal(d.day, 1);
    accounts_date_from_time(-1, &d);
    assert_int_equal(d.year, 1969);
    assert_int_equal(d.month, 12);
    assert_int_equal(d.day, 31);
    /* Every day for ~200 years matches gmtime. */
    for (int64_t t = at(1900, 1, 1, 0, 0, 0); t < at(2100, 12, 31, 0, 0, 0);
         t += 86400 * 7 + 3600) {
        struct tm tm;
        time_t tt = (time_t)t;
        gmtime_r(&tt, &tm);
        accounts_date_from_time(t, &d);
        assert_int_equal(d.year, tm.tm_year + 1900);
        assert_int_equal(d.month, tm.tm_mon + 1);
        assert_int_equal(d.day, tm.tm_mday);
    }
}

static void test_age(void **state)
{
    (void)state;
    struct accounts_date dob = D(2010, 6, 15);
    /* Birthday-exact, in UTC. */
    assert_int_equal(accounts_age_years(&dob, at(2023, 6, 14, 23, 59, 59)), 12);
    assert_int_equal(accounts_age_years(&dob, at(2023, 6, 15, 0, 0, 0)), 13);
    assert_int_equal(accounts_age_years(&dob, at(2023, 12, 31, 0, 0, 0)), 13);
    assert_int_equal(accounts_age_years(&dob, at(2024, 1, 1, 0, 0, 0)), 13);
    assert_int_equal(accounts_age_years(&dob, at(2010, 6, 15, 0, 0, 0)), 0);
    assert_int_equal(accounts_age_years(&dob, at(2009, 6, 15, 0, 0, 0)), -1);

    /* Leap-day birthdays: a year older on 1 March in common years, on 29 Feb in leap
     * years. */
    struct accounts_date leap = D(2008, 2, 29);
    assert_int_equal(accounts_age_years(&leap, at(2021, 2, 28, 23, 59, 59)), 12);
    assert_int_equal(accounts_age_years(&leap, at(2021, 3, 1, 0, 0, 0)), 13);
    assert_int_equal(accounts_age_years(&leap, at(2024, 2, 28, 12, 0, 0)), 15);
    assert_int_equal(accounts_age_years(&leap, at(2024, 2, 29, 0, 0, 0)), 16);
    /* Born 31 Dec, checked 1 Jan. */
    struct accounts_date nye = D(2000, 12, 31);
    assert_int_equal(accounts_age_years(&nye, at(2013, 12, 30, 0, 0, 0)), 12);
    assert_int_equal(accounts_age_years(&nye, at(2013, 12, 31, 0, 0, 0)), 13);
    assert_int_equal(accounts_age_years(&nye, at(2014, 1, 1, 0, 0, 0)), 13);
}

static void test_regions(void **state)
{
    (void)state;
    const char *ok[] = {"DE", "FR", "US", "GB", "JP", "BR", "AX", "SS"};
    for (size_t i = 0; i < 8; i++)
        assert_true(accounts_region_valid(ok[i]));
    assert_false(accounts_region_valid("XK")); /* Kosovo: user-assigned, not ISO */
    assert_false(accounts_region_valid("EU"));
    assert_false(accounts_region_valid("UK"));
    assert_false(accounts_region_valid("EL"));
    assert_false(accounts_region_valid("de"));
    assert_false(accounts_region_valid("D"));
    assert_false(accounts_region_valid("DEU"));
    assert_false(accounts_region_valid(""));
    assert_false(accounts_region_valid(NULL));
    assert_false(accounts_region_valid("ZZ"));

    /* Exactly 249 assigned codes. */
    int n = 0;
    char c[3] = {0};
    for (c[0] = 'A'; c[0] <= 'Z'; c[0]++)
        for (c[1] = 'A'; c[1] <= 'Z'; c[1]++)
            n += accounts_region_valid(c);
    assert_int_equal(n, 249);

    /* EU 27 + IS, LI, NO; every one is a valid code. */
    const char *eea[] = {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR",
                         "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL",
                         "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"};
    for (size_t i = 0; i < 30; i++) {
        assert_true(accounts_region_is_eea(eea[i]));
        assert_true(accounts_region_valid(eea[i]));
    }
    int m = 0;
    for (c[0] = 'A'; c[0] <= 'Z'; c[0]++)
        for (c[1] = 'A'; c[1] <= 'Z'; c[1]++)
            m += accounts_region_is_eea(c);
    assert_int_equal(m, 30);
    assert_false(accounts_region_is_eea("CH"));
    assert_false(accounts_region_is_eea("GB"));
    assert_false(accounts_region_is_eea("US"));
    assert_false(accounts_region_is_eea(""));
    assert_false(accounts_region_is_eea(NULL));
}

static void test_age_gate(void **state)
{
    (void)state;
    int64_t now = at(2026, 3, 10, 8, 0, 0);
    struct accounts_date d12 = D(2013, 3, 11); /* turns 13 tomorrow */
    struct accounts_date d13 = D(2013, 3, 10); /* 13 today */
    struct accounts_date d15 = D(2010, 3, 11); /* 15, 16 tomorrow */
    struct accounts_date d16 = D(2010, 3, 10); /* 16 today */
    assert_int_equal(accounts_age_gate(&d12, "DE", now), ACCOUNTS_AGE_REFUSED);
    assert_int_equal(accounts_age_gate(&d12, "", now), ACCOUNTS_AGE_REFUSED);
    assert_int_equal(accounts_age_gate(&d12, "US", now), ACCOUNTS_AGE_REFUSED);
    assert_int_equal(accounts_age_gate(&d13, "DE", now), ACCOUNTS_AGE_CONSENT);
    assert_int_equal(accounts_age_gate(&d13, "NO", now), ACCOUNTS_AGE_CONSENT);
    assert_int_equal(accounts_age_gate(&d13, "US", now), ACCOUNTS_AGE_OK);
    assert_int_equal(accounts_age_gate(&d13, "", now), ACCOUNTS_AGE_OK);
    assert_int_equal(accounts_age_gate(&d13, NULL, now), ACCOUNTS_AGE_OK);
    assert_int_equal(accounts_age_gate(&d15, "FR", now), ACCOUNTS_AGE_CONSENT);
    assert_int_equal(accounts_age_gate(&d16, "FR", now), ACCOUNTS_AGE_OK);
    /* Leap-day child: 13 only on 1 March of a common year. */
    struct accounts_date leap = D(2012, 2, 29);
    assert_int_equal(accounts_age_gate(&leap, "US", at(2025, 2, 28, 23, 59, 59)),
                     ACCOUNTS_AGE_REFUSED);
    assert_int_equal(accounts_age_gate(&leap, "US", at(2025, 3, 1, 0, 0, 0)), ACCOUNTS_AGE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usernames),    cmocka_unit_test(test_text),
        cmocka_unit_test(test_password_len), cmocka_unit_test(test_date_parse),
        cmocka_unit_test(test_date_range),   cmocka_unit_test(test_date_from_time),
        cmocka_unit_test(test_age),          cmocka_unit_test(test_regions),
        cmocka_unit_test(test_age_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
