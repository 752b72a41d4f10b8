/*
 * setup.c — parleyd accounts for the benchmark: register, log in, PUT /v1/keys (see
 * setup.h). Key bodies are made here with libsodium exactly as docs/protocol.md "Keys"
 * describes (Ed25519 identity, X25519 signed prekey signed over
 * "parley-spk-v1" || id (u32 BE) || public key).
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "http_client.h"

int setup_open(uint16_t port, bool tls, struct http_client **out)
{
    char url[64];
    struct http_client_config cfg;

    snprintf(url, sizeof url, "%s://127.0.0.1:%u", tls ? "https" : "http", (unsigned)port);
    memset(&cfg, 0, sizeof cfg);
    cfg.url = url;
    cfg.insecure_skip_verify = tls;
    cfg.timeout_ms = 30000;
    return http_client_new(&cfg, out) == PARLEY_OK ? 0 : -1;
}

/* One request; the answer's JSON object in *json (caller frees) when status == want. */
static int call(struct http_client *hc, const char *method, const char *path,
                const char *token, const char *body, int want, json_t **json)
{
    struct http_response resp;
    char headers[160] = "Content-Type: application/json\r\n";
    int rc = -1;

    if (token)
        snprintf(headers, sizeof headers,
                 "Content-Type: application/json\r\nAuthorization: Bearer %s\r\n", token);
    if (http_client_request(hc, method, path, headers, body, strlen(body), &resp) != PARLEY_OK) {
        fprintf(stderr, "loadgen: %s %s: %s\n", method, path, http_client_error(hc));
        http_response_cleanup(&resp);
        return -1;
    }
    if (resp.status != want) {
        fprintf(stderr, "loadgen: %s %s: HTTP %d %.*s\n", method, path, resp.status,
                (int)(resp.body.len < 200 ? resp.body.len : 200), (const char *)resp.body.data);
        goto out;
    }
    if (json) {
        *json = json_loadb((const char *)resp.body.data, resp.body.len, 0, NULL);
        if (!*json)
            goto out;
    }
    rc = 0;
out:
    http_response_cleanup(&resp);
    return rc;
}

static void b64(char *out, size_t cap, const uint8_t *bin, size_t len)
{
    sodium_bin2base64(out, cap, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* A PUT /v1/keys body for a fresh random identity (secrets are thrown away: the
 * benchmark's ciphertexts are opaque random bytes). */
static int keys_body(char *out, size_t cap)
{
    uint8_t ipk[crypto_sign_PUBLICKEYBYTES], isk[crypto_sign_SECRETKEYBYTES];
    uint8_t spk[32], ssk[32], sig[64], msg[13 + 4 + 32], opk[32], osk[32];
    char ipk_s[64], spk_s[64], sig_s[128], opk_s[64];
    int n;

    crypto_sign_keypair(ipk, isk);
    crypto_box_keypair(spk, ssk);
    crypto_box_keypair(opk, osk);
    memcpy(msg, "parley-spk-v1", 13);
    msg[13] = 0;
    msg[14] = 0;
    msg[15] = 0;
    msg[16] = 1;
    memcpy(msg + 17, spk, 32);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, isk);
    sodium_memzero(isk, sizeof isk);
    sodium_memzero(ssk, sizeof ssk);
    sodium_memzero(osk, sizeof osk);
    b64(ipk_s, sizeof ipk_s, ipk, sizeof ipk);
    b64(spk_s, sizeof spk_s, spk, sizeof spk);
    b64(sig_s, sizeof sig_s, sig, sizeof sig);
    b64(opk_s, sizeof opk_s, opk, sizeof opk);
    n = snprintf(out, cap,
                 "{\"identity_key\":\"%s\",\"signed_prekey\":{\"id\":1,\"public_key\":\"%s\","
                 "\"signature\":\"%s\"},\"one_time_prekeys\":[{\"id\":1,\"public_key\":\"%s\"}]}",
                 ipk_s, spk_s, sig_s, opk_s);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int copy_str(json_t *obj, const char *key, char *out, size_t cap)
{
    const char *v = json_string_value(json_object_get(obj, key));
    if (!v || strlen(v) >= cap)
        return -1;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

int setup_user(struct http_client *hc, const char *username, unsigned n_devices, bool keys,
               struct pdevice *out)
{
    char body[1024];

    snprintf(body, sizeof body,
             "{\"username\":\"%s\",\"name\":\"Bench\",\"dob\":\"1990-01-01\","
             "\"password\":\"bench-password\"}", username);
    if (call(hc, "POST", "/v1/accounts", NULL, body, 201, NULL) != 0)
        return -1;
    for (unsigned d = 0; d < n_devices; d++) {
        json_t *j = NULL;
        int bad;

        snprintf(body, sizeof body,
                 "{\"username\":\"%s\",\"password\":\"bench-password\"}", username);
        if (call(hc, "POST", "/v1/sessions", NULL, body, 201, &j) != 0)
            return -1;
        bad = copy_str(j, "token", out[d].token, sizeof out[d].token) ||
              copy_str(j, "user_id", out[d].user_id, sizeof out[d].user_id) ||
              copy_str(j, "device_id", out[d].device_id, sizeof out[d].device_id);
        json_decref(j);
        if (bad) {
            fprintf(stderr, "loadgen: login answer without token/user_id/device_id\n");
            return -1;
        }
        if (keys && (keys_body(body, sizeof body) != 0 ||
                     call(hc, "PUT", "/v1/keys", out[d].token, body, 200, NULL) != 0))
            return -1;
    }
    return 0;
}
