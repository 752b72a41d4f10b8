/*
 * parley-testkit — a test-only tool that makes the key material integration tests need
 * (python3 stdlib cannot do Ed25519/X25519). Never installed, never used by parleyd.
 *
 *   parley-testkit keys-upload [--seed HEX64] [--onetime N] [--first-id K] [--spk-id ID]
 *                              [--no-signed-prekey] [--bad-signature]
 *       prints the JSON body of PUT /v1/keys for the device identity derived from the
 *       32-byte seed (random when absent): identity_key, a signed prekey (id ID, default
 *       1) signed over "parley-spk-v1" || id || pk, and N (default 0, at most 10000)
 *       one-time prekeys with ids K..K+N-1 (K default 1). With a seed, every key is
 *       deterministic (prekey secrets are BLAKE2b(seed, label || id)), so two runs with
 *       the same arguments print the same body. --bad-signature flips one bit of the
 *       signature; --no-signed-prekey leaves signed_prekey out (a top-up upload).
 *   parley-testkit bundle-verify
 *       reads a GET /v1/keys/{username} answer on stdin and checks, for every device, that
 *       its keys form a bundle that parley_bundle_parse accepts and parley_bundle_verify
 *       verifies. Prints "ok N" (N devices) and exits 0, else prints the reason, exits 1.
 *
 * Binary values are base64url without padding, as on the wire.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "parley/kdf.h"
#include "parley/x3dh.h"

#define ONETIME_MAX 10000UL

static const char spk_context[] = "parley-spk-v1";

static int usage(void)
{
    fputs("usage: parley-testkit keys-upload [--seed HEX64] [--onetime N] [--first-id K]\n"
          "                                  [--spk-id ID] [--no-signed-prekey]"
          " [--bad-signature]\n"
          "       parley-testkit bundle-verify < fetch-answer.json\n",
          stderr);
    return 2;
}

static int parse_u32(const char *s, unsigned long max, uint32_t *out)
{
    char *end = NULL;
    unsigned long v;

    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static json_t *b64(const uint8_t *bin, size_t len)
{
    char text[128];

    sodium_bin2base64(text, sizeof text, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return json_string(text);
}

static int unb64(const char *s, uint8_t *bin, size_t len)
{
    size_t got = 0;
    const char *end = NULL;

    if (!s ||
        sodium_base642bin(bin, len, s, strlen(s), NULL, &got, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        *end || got != len)
        return -1;
    return 0;
}

/* Deterministic X25519 key pair from the seed, a label and an id. */
static void derive_dh(uint8_t pk[32], uint8_t sk[32], const uint8_t seed[32], const char *label,
                      uint32_t id)
{
    uint8_t msg[32 + 4];
    size_t n = strlen(label);

    memcpy(msg, label, n);
    msg[n] = (uint8_t)(id >> 24);
    msg[n + 1] = (uint8_t)(id >> 16);
    msg[n + 2] = (uint8_t)(id >> 8);
    msg[n + 3] = (uint8_t)id;
    crypto_generichash(sk, 32, msg, n + 4, seed, 32);
    crypto_scalarmult_base(pk, sk);
}

static int keys_upload(int argc, char **argv)
{
    uint8_t seed[32], spk_pk[32], spk_sk[32], sig[64], msg[sizeof spk_context - 1 + 4 + 32];
    uint32_t onetime = 0, first_id = 1, spk_id = 1;
    bool have_seed = false, bad_sig = false, no_spk = false;
    struct parley_identity id;
    json_t *root = NULL, *opks = NULL;
    char *text = NULL;
    int rc = 1;

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t bin_len = 0;

        if (strcmp(a, "--seed") == 0 && v) {
            if (strlen(v) != 64 ||
                sodium_hex2bin(seed, sizeof seed, v, 64, NULL, &bin_len, NULL) != 0 ||
                bin_len != 32)
                return usage();
            have_seed = true;
            i++;
        } else if (strcmp(a, "--onetime") == 0 && v) {
            if (parse_u32(v, ONETIME_MAX, &onetime) != 0)
                return usage();
            i++;
        } else if (strcmp(a, "--first-id") == 0 && v) {
            if (parse_u32(v, UINT32_MAX, &first_id) != 0)
                return usage();
            i++;
        } else if (strcmp(a, "--spk-id") == 0 && v) {
            if (parse_u32(v, UINT32_MAX, &spk_id) != 0)
                return usage();
            i++;
        } else if (strcmp(a, "--bad-signature") == 0) {
            bad_sig = true;
        } else if (strcmp(a, "--no-signed-prekey") == 0) {
            no_spk = true;
        } else {
            return usage();
        }
    }
    if ((uint64_t)first_id + onetime > (uint64_t)UINT32_MAX + 1U)
        return usage();
    if (!have_seed)
        randombytes_buf(seed, sizeof seed);
    if (parley_identity_from_seed(&id, seed) != PARLEY_OK) {
        fputs("parley-testkit: identity derivation failed\n", stderr);
        return 1;
    }
    root = json_object();
    if (!root || json_object_set_new(root, "identity_key", b64(id.pk, sizeof id.pk)) != 0)
        goto out;
    if (!no_spk) {
        json_t *spk;

        derive_dh(spk_pk, spk_sk, seed, "parley-testkit spk", spk_id);
        memcpy(msg, spk_context, sizeof spk_context - 1);
        msg[13] = (uint8_t)(spk_id >> 24);
        msg[14] = (uint8_t)(spk_id >> 16);
        msg[15] = (uint8_t)(spk_id >> 8);
        msg[16] = (uint8_t)spk_id;
        memcpy(msg + 17, spk_pk, 32);
        crypto_sign_detached(sig, NULL, msg, sizeof msg, id.sk);
        if (bad_sig)
            sig[7] ^= 0x10;
        spk = json_pack("{s:I,s:o,s:o}", "id", (json_int_t)spk_id, "public_key", b64(spk_pk, 32),
                        "signature", b64(sig, 64));
        if (!spk || json_object_set_new(root, "signed_prekey", spk) != 0)
            goto out;
    }
    if (onetime > 0) {
        opks = json_array();
        if (!opks)
            goto out;
        for (uint32_t k = 0; k < onetime; k++) {
            uint8_t pk[32], sk[32];
            json_t *e;

            derive_dh(pk, sk, seed, "parley-testkit opk", first_id + k);
            sodium_memzero(sk, sizeof sk);
            e = json_pack("{s:I,s:o}", "id", (json_int_t)(first_id + k), "public_key", b64(pk, 32));
            if (!e || json_array_append_new(opks, e) != 0)
                goto out;
        }
        if (json_object_set_new(root, "one_time_prekeys", opks) != 0) {
            opks = NULL;
            goto out;
        }
        opks = NULL;
    }
    text = json_dumps(root, JSON_COMPACT);
    if (!text)
        goto out;
    puts(text);
    rc = 0;
out:
    if (rc)
        fputs("parley-testkit: out of memory\n", stderr);
    free(text);
    json_decref(opks);
    json_decref(root);
    parley_identity_wipe(&id);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(spk_sk, sizeof spk_sk);
    return rc;
}

static int verify_device(json_t *dev)
{
    struct parley_bundle b;
    uint8_t wire[PARLEY_BUNDLE_MAX_BYTES];
    size_t len = 0;
    json_t *spk = json_object_get(dev, "signed_prekey");
    json_t *opk = json_object_get(dev, "one_time_prekey");
    json_t *spk_id = json_object_get(spk, "id");

    memset(&b, 0, sizeof b);
    if (unb64(json_string_value(json_object_get(dev, "identity_key")), b.identity_pk, 32) ||
        !json_is_integer(spk_id) || json_integer_value(spk_id) < 0 ||
        json_integer_value(spk_id) > (json_int_t)UINT32_MAX ||
        unb64(json_string_value(json_object_get(spk, "public_key")), b.spk_pk, 32) ||
        unb64(json_string_value(json_object_get(spk, "signature")), b.spk_sig, 64))
        return -1;
    b.spk_id = (uint32_t)json_integer_value(spk_id);
    if (json_is_object(opk)) {
        json_t *oid = json_object_get(opk, "id");

        if (!json_is_integer(oid) || json_integer_value(oid) < 0 ||
            json_integer_value(oid) > (json_int_t)UINT32_MAX ||
            unb64(json_string_value(json_object_get(opk, "public_key")), b.opk_pk, 32))
            return -1;
        b.has_opk = true;
        b.opk_id = (uint32_t)json_integer_value(oid);
    } else if (!json_is_null(opk)) {
        return -1;
    }
    /* Round-trip through the wire format so the parser's checks apply too. */
    if (parley_bundle_serialize(&b, wire, sizeof wire, &len) != PARLEY_OK ||
        parley_bundle_parse(&b, wire, len) != PARLEY_OK)
        return -1;
    return parley_bundle_verify(&b) == PARLEY_OK ? 0 : -2;
}

static int bundle_verify(void)
{
    json_error_t err;
    json_t *root = json_loadf(stdin, 0, &err), *devs, *dev;
    size_t i;

    devs = json_object_get(root, "devices");
    if (!json_is_array(devs) || json_array_size(devs) == 0) {
        puts("no devices");
        json_decref(root);
        return 1;
    }
    json_array_foreach(devs, i, dev)
    {
        int r = verify_device(dev);

        if (r != 0) {
            printf("%s device %zu\n", r == -2 ? "bad signature" : "malformed", i);
            json_decref(root);
            return 1;
        }
    }
    printf("ok %zu\n", json_array_size(devs));
    json_decref(root);
    return 0;
}

int main(int argc, char **argv)
{
    if (parley_crypto_init() != PARLEY_OK) {
        fputs("parley-testkit: crypto init failed\n", stderr);
        return 1;
    }
    if (argc >= 2 && strcmp(argv[1], "keys-upload") == 0)
        return keys_upload(argc, argv);
    if (argc == 2 && strcmp(argv[1], "bundle-verify") == 0)
        return bundle_verify();
    return usage();
}
