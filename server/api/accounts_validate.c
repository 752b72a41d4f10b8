/*
 * accounts_validate.c — pure validation rules for account data; see accounts_validate.h.
 * Calendar arithmetic is done on civil dates (days_from_civil) so it needs neither the
 * C library's time zone state nor time_t range assumptions.
 */
#include "accounts_validate.h"

#include <string.h>

bool accounts_validate_username(const char *s, size_t len)
{
    if (!s || len < ACCOUNTS_USERNAME_MIN || len > ACCOUNTS_USERNAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Decode one code point at s[*i]; false on any ill-formed sequence. */
static bool utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
    unsigned char c = s[*i];
    uint32_t v;
    size_t n;
    if (c < 0x80) {
        *cp = c;
        (*i)++;
        return true;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 1;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;
        v = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;
        v = c & 0x07;
    } else {
        return false; /* continuation byte, overlong lead (c0, c1) or > f4 */
    }
    if (len - *i - 1 < n)
        return false;
    for (size_t k = 1; k <= n; k++) {
        unsigned char cc = s[*i + k];
        if ((cc & 0xc0) != 0x80)
            return false;
        v = (v << 6) | (cc & 0x3f);
    }
    if ((n == 2 && v < 0x800) || (n == 3 && v < 0x10000) || v > 0x10ffff ||
        (v >= 0xd800 && v <= 0xdfff))
        return false;
    *cp = v;
    *i += n + 1;
    return true;
}

bool accounts_utf8_valid(const char *s, size_t len, size_t *n_chars)
{
    if (!s && len)
        return false;
    size_t i = 0, n = 0;
    uint32_t cp;
    while (i < len) {
        if (!utf8_next((const unsigned char *)s, len, &i, &cp))
            return false;
        n++;
    }
    if (n_chars)
        *n_chars = n;
    return true;
}

bool accounts_validate_text(const char *s, size_t len, size_t min_chars, size_t max_chars)
{
    if (!s && len)
        return false;
    size_t i = 0, n = 0;
    uint32_t cp;
    while (i < len) {
        if (!utf8_next((const unsigned char *)s, len, &i, &cp))
            return false;
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return false;
        if (++n > max_chars)
            return false;
    }
    return n >= min_chars;
}

bool accounts_validate_password_len(size_t len)
{
    return len >= ACCOUNTS_PASSWORD_MIN && len <= ACCOUNTS_PASSWORD_MAX;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool accounts_date_parse(const char *s, size_t len, struct accounts_date *out)
{
    struct accounts_date d;
    if (!s || len != 10 || s[4] != '-' || s[7] != '-')
        return false;
    if (!digits(s, 4, &d.year) || !digits(s + 5, 2, &d.month) || !digits(s + 8, 2, &d.day))
        return false;
    if (d.year < 1 || d.month < 1 || d.month > 12 || d.day < 1 ||
        d.day > days_in_month(d.year, d.month))
        return false;
    *out = d;
    return true;
}

/* Howard Hinnant's civil_from_days: days since 1970-01-01 -> y/m/d (proleptic Gregorian). */
void accounts_date_from_time(int64_t now_s, struct accounts_date *out)
{
    int64_t z = now_s / 86400;
    if (now_s % 86400 < 0)
        z--;
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    out->year = (int)(y + (m <= 2));
    out->month = (int)m;
    out->day = (int)d;
}

static int date_cmp(const struct accounts_date *a, const struct accounts_date *b)
{
    if (a->year != b->year)
        return a->year < b->year ? -1 : 1;
    if (a->month != b->month)
        return a->month < b->month ? -1 : 1;
    if (a->day != b->day)
        return a->day < b->day ? -1 : 1;
    return 0;
}

bool accounts_dob_in_range(const struct accounts_date *dob, int64_t now_s)
{
    struct accounts_date today;
    accounts_date_from_time(now_s, &today);
    return dob->year >= ACCOUNTS_DOB_MIN_YEAR && date_cmp(dob, &today) <= 0;
}

int accounts_age_years(const struct accounts_date *dob, int64_t now_s)
{
    struct accounts_date today;
    accounts_date_from_time(now_s, &today);
    int age = today.year - dob->year;
    /* Not yet had this year's birthday. A 29 February birthday compares greater than
     * 28 February and less than 1 March, so in common years it is reached on 1 March. */
    if (today.month < dob->month || (today.month == dob->month && today.day < dob->day))
        age--;
    return age;
}

/* ISO 3166-1 alpha-2, officially assigned codes (249), sorted. */
static const char iso3166[] = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZ"
                              "BABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ"
                              "CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZ"
                              "DEDJDKDMDODZ"
                              "ECEEEGEHERESET"
                              "FIFJFKFMFOFR"
                              "GAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGY"
                              "HKHMHNHRHTHU"
                              "IDIEILIMINIOIQIRISIT"
                              "JEJMJOJP"
                              "KEKGKHKIKMKNKPKRKWKYKZ"
                              "LALBLCLILKLRLSLTLULVLY"
                              "MAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZ"
                              "NANCNENFNGNINLNONPNRNUNZ"
                              "OM"
                              "PAPEPFPGPHPKPLPMPNPRPSPTPWPY"
                              "QA"
                              "RERORSRURW"
                              "SASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZ"
                              "TCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZ"
                              "UAUGUMUSUYUZ"
                              "VAVCVEVGVIVNVU"
                              "WFWS"
                              "YEYT"
                              "ZAZMZW";

/* EU 27 + IS, LI, NO. Greece is GR in ISO 3166 (the EU's own "EL" is not an ISO code). */
static const char eea[] = "ATBEBGHRCYCZDKEEFIFRDEGRHUIEITLVLTLUMTNLPLPTROSKSIESSE"
                          "ISLINO";

static bool in_list(const char *list, const char *region)
{
    if (!region || strlen(region) != 2 || region[0] < 'A' || region[0] > 'Z' || region[1] < 'A' ||
        region[1] > 'Z')
        return false;
    for (const char *p = list; p[0]; p += 2)
        if (p[0] == region[0] && p[1] == region[1])
            return true;
    return false;
}

bool accounts_region_valid(const char *region)
{
    return in_list(iso3166, region);
}

bool accounts_region_is_eea(const char *region)
{
    return in_list(eea, region);
}

enum accounts_age_gate accounts_age_gate(const struct accounts_date *dob, const char *region,
                                         int64_t now_s)
{
    int age = accounts_age_years(dob, now_s);
    if (age < ACCOUNTS_MIN_AGE)
        return ACCOUNTS_AGE_REFUSED;
    if (age < ACCOUNTS_CONSENT_AGE && region && accounts_region_is_eea(region))
        return ACCOUNTS_AGE_CONSENT;
    return ACCOUNTS_AGE_OK;
}
