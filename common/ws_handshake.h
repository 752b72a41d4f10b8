/*
 * ws_handshake.h — the RFC 6455 opening-handshake key computation, shared by the
 * server (ws_server.c) and the client (http_client.c).
 *
 * Sec-WebSocket-Accept = base64(SHA-1(Sec-WebSocket-Key + GUID)). Pure function,
 * thread-safe, allocates nothing.
 */
#ifndef PARLEY_WS_HANDSHAKE_H
#define PARLEY_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

/* The GUID RFC 6455 appends to the key before hashing. */
#define WS_HANDSHAKE_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* Length of a Sec-WebSocket-Accept value (base64 of 20 bytes), without the NUL. */
#define WS_HANDSHAKE_ACCEPT_LEN 28

/* Compute the Sec-WebSocket-Accept value for key (the client's Sec-WebSocket-Key as
 * sent, without surrounding whitespace). out receives 28 characters + NUL.
 * key must not be NULL; any length is accepted (the value is just hashed). */
void ws_handshake_accept(const char *key, char out[29]);

/* True when key is a valid Sec-WebSocket-Key: base64 of exactly 16 bytes
 * (24 characters ending in "=="). */
bool ws_handshake_key_valid(const char *key);

/* Fill out with a fresh random Sec-WebSocket-Key (24 characters + NUL), for clients.
 * Returns false only if the system random source failed. */
bool ws_handshake_key_new(char out[25]);

#endif
