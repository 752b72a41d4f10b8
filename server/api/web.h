/*
 * web.h — serves the static web client: GET / (index.html) and GET /static/{file}.
 * File names are restricted to [A-Za-z0-9._-] without a leading dot, so nothing outside
 * the web root can be named. Files are read off the loop thread.
 */
#ifndef PARLEY_SERVER_API_WEB_H
#define PARLEY_SERVER_API_WEB_H

#include "parley/err.h"

struct http_server;

/* root: directory holding index.html and the assets; copied. */
PARLEY_WUR enum parley_err web_register_routes(struct http_server *srv, const char *root);

#endif
