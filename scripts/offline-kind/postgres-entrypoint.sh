#!/bin/bash
# Entrypoint of the offline Postgres image (Debian's postgresql-15): the parts of the official
# image's docker-entrypoint.sh that the chart relies on. First start with an empty $PGDATA:
# initdb as POSTGRES_USER with POSTGRES_PASSWORD(_FILE) and POSTGRES_INITDB_ARGS, password auth for
# TCP clients, POSTGRES_DB, then every /docker-entrypoint-initdb.d/*.sh|*.sql against a server
# listening on the socket only. Every start: exec the command (postgres) as PID 1.
set -euo pipefail

[[ "${1:-}" == -* ]] && set -- postgres "$@"
if [[ "${1:-}" != postgres ]]; then exec "$@"; fi

# An arbitrary UID (the chart runs as 10001) has no passwd entry; initdb and postgres need one.
if ! getent passwd "$(id -u)" >/dev/null; then
  NSS_WRAPPER_PASSWD=$(mktemp) NSS_WRAPPER_GROUP=$(mktemp)
  export NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
  echo "postgres:x:$(id -u):$(id -g):PostgreSQL:$PGDATA:/bin/false" >"$NSS_WRAPPER_PASSWD"
  echo "postgres:x:$(id -g):" >"$NSS_WRAPPER_GROUP"
  export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libnss_wrapper.so
fi

export POSTGRES_USER=${POSTGRES_USER:-postgres}
if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then
  POSTGRES_PASSWORD=$(<"$POSTGRES_PASSWORD_FILE")
fi
mkdir -p "$PGDATA"
chmod 700 "$PGDATA"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  [[ -n "${POSTGRES_PASSWORD:-}" ]] || {
    echo "postgres-entrypoint: no POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE: refusing to create a database without a password" >&2
    exit 1
  }
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  export PGUSER=$POSTGRES_USER PGPASSWORD=$POSTGRES_PASSWORD
  if [[ -n "${POSTGRES_DB:-}" && "$POSTGRES_DB" != postgres ]]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname=postgres --set=db="$POSTGRES_DB" \
      -c 'CREATE DATABASE :"db"'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) if [[ -x "$f" ]]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname="${POSTGRES_DB:-postgres}" -f "$f" ;;
      *) [[ -e "$f" ]] && echo "ignoring $f" ;;
    esac
  done
  unset PGPASSWORD
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "postgres-entrypoint: init done; starting postgres"
fi
exec "$@"
