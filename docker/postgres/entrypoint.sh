#!/bin/sh
# `postgres [options]`: initialise $PGDATA once (trust auth, also from the network), then exec
# the server as user postgres so it is PID 1 and receives the stop signal (SIGINT = fast).
set -eu
if [ "${1:-}" != "postgres" ]; then
    exec "$@"
fi
as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups"
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    $as_postgres initdb -D "$PGDATA" -U postgres --auth=trust -E UTF8 --no-locale --no-sync \
        >/dev/null
    echo "host all all all trust" >> "$PGDATA/pg_hba.conf"
fi
shift
exec $as_postgres postgres -D "$PGDATA" -c listen_addresses='*' "$@"
