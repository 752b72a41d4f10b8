/*
 * migrations.c — SQLite schema, as numbered migrations (see migrations.h).
 *
 * What is stored is exactly what POLICY P1/P2/P5 allow: no IP address, no raw token,
 * no plaintext password. Ids are random hex text. Times are seconds since the epoch.
 * Personal profile fields (name, dob, region, gender) are read and written in one place
 * in sqlite.c so per-account encryption can be added there.
 */
#include "migrations.h"

const struct store_migration store_sqlite_migrations[] = {
    {1, "CREATE TABLE users ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  username TEXT NOT NULL UNIQUE,"
        "  name TEXT NOT NULL,"
        "  dob TEXT NOT NULL,"
        "  region TEXT,"
        "  gender TEXT,"
        "  password_hash TEXT NOT NULL,"
        "  parental_consent_required INTEGER NOT NULL DEFAULT 0,"
        "  created_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE devices ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        "  name TEXT NOT NULL DEFAULT '',"
        "  created_at INTEGER NOT NULL,"
        "  last_seen INTEGER NOT NULL"
        ") STRICT;"
        "CREATE INDEX devices_user ON devices(user_id);"
        "CREATE TABLE sessions ("
        "  token_hash BLOB PRIMARY KEY NOT NULL,"
        "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        "  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  created_at INTEGER NOT NULL,"
        "  expires_at INTEGER NOT NULL"
        ") STRICT, WITHOUT ROWID;"
        "CREATE INDEX sessions_device ON sessions(device_id);"
        "CREATE INDEX sessions_user ON sessions(user_id);"
        "CREATE INDEX sessions_expires ON sessions(expires_at);"},
};

const size_t store_sqlite_migrations_count =
    sizeof store_sqlite_migrations / sizeof store_sqlite_migrations[0];
