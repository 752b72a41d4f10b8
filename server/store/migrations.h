/*
 * migrations.h — the numbered schema migrations compiled into parleyd (private to
 * server/store/). Versions start at 1 and increase by one; a migration is never edited
 * once released, only followed by a new one. The SQLite backend applies the pending ones
 * at open, in one transaction, and records each in the schema_version table.
 */
#ifndef PARLEY_SERVER_STORE_MIGRATIONS_H
#define PARLEY_SERVER_STORE_MIGRATIONS_H

#include <stddef.h>

struct store_migration {
    int version;
    const char *sql; /* one or more statements */
};

extern const struct store_migration store_sqlite_migrations[];
extern const size_t store_sqlite_migrations_count;

#endif
