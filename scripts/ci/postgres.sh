#!/usr/bin/env bash
# A PostgreSQL 15 server with pgvector for the tests, on a free loopback port; prints its URL
# (the only line on stdout), for `export TASKLM_TEST_POSTGRES=$(scripts/ci/postgres.sh)`.
#
# Idempotent, for a fresh Debian 12 machine as root (or as a user who may run postgres):
#   - installs `postgresql` and `postgresql-server-dev-15` when initdb or the server headers
#     are missing;
#   - builds pgvector from ../shared/vendor/pgvector-0.8.6.tar.gz (or $PGVECTOR_TARBALL) with
#     `make && make install`, unless vector.control is already installed;
#   - creates a cluster in $TASKLM_PG_DIR (default /var/tmp/tasklm-ci-postgres) owned by the
#     `postgres` user (root cannot run postgres), starts it on a free port (kept for later runs),
#     and creates the role `tasklm` (password `tasklm-ci`, SCRAM over TCP, CREATEDB, not a superuser), the database
#     `tasklm_test` and `CREATE EXTENSION vector` in it.
# A server already running from that folder is reused.
set -euo pipefail
log() { echo "postgres.sh: $*" >&2; }
root="$(cd "$(dirname "$0")/../.." && pwd)"
tarball="${PGVECTOR_TARBALL:-$root/../shared/vendor/pgvector-0.8.6.tar.gz}"
base="${TASKLM_PG_DIR:-/var/tmp/tasklm-ci-postgres}"
bin=/usr/lib/postgresql/15/bin
user=tasklm password=tasklm-ci db=tasklm_test

as_root=false
[ "$(id -u)" = 0 ] && as_root=true
# Runs a command as the cluster's owner.
as_pg() {
  if $as_root; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

# 1. Packages.
if [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_config" ] \
  || [ ! -f "$("$bin/pg_config" --includedir-server 2>/dev/null)/postgres.h" ] \
  || ! command -v make >/dev/null || ! command -v gcc >/dev/null; then
  $as_root || { log "postgresql-15 or its server headers are missing and I am not root"; exit 1; }
  log "installing postgresql, postgresql-server-dev-15 and a C toolchain"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql postgresql-server-dev-15 make gcc >&2
fi

# 2. pgvector.
if [ ! -f "$("$bin/pg_config" --sharedir)/extension/vector.control" ]; then
  [ -f "$tarball" ] || { log "no pgvector source at $tarball (set PGVECTOR_TARBALL)"; exit 1; }
  log "building pgvector from $tarball"
  src="$(mktemp -d)"
  tar xzf "$tarball" -C "$src"
  dir="$(find "$src" -mindepth 1 -maxdepth 1 -type d | head -n1)"
  # No LLVM bitcode: clang need not be installed (with_llvm=no only skips the JIT files).
  make -C "$dir" PG_CONFIG="$bin/pg_config" with_llvm=no >&2
  make -C "$dir" PG_CONFIG="$bin/pg_config" with_llvm=no install >&2
  rm -rf "$src"
fi

# 3. The cluster.
data="$base/data" sock="$base/sock"
mkdir -p "$base"
$as_root && chown postgres:postgres "$base"
if [ ! -f "$data/PG_VERSION" ]; then
  log "initdb $data"
  as_pg "mkdir -p '$sock' && '$bin/initdb' -D '$data' -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8" >&2
fi
port_file="$base/port"
if ! as_pg "'$bin/pg_ctl' -D '$data' status" >/dev/null 2>&1; then
  port=""
  [ -f "$port_file" ] && port="$(cat "$port_file")"
  free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
  if [ -z "$port" ] || ! free "$port"; then
    for p in $(seq 55432 55632); do
      if free "$p"; then port="$p"; break; fi
    done
  fi
  [ -n "$port" ] || { log "no free port in 55432-55632"; exit 1; }
  log "starting the server on 127.0.0.1:$port"
  as_pg "'$bin/pg_ctl' -D '$data' -l '$base/server.log' -w -o \"-p $port -k $sock -c listen_addresses=127.0.0.1\" start" >&2
  echo "$port" | as_pg "cat > '$port_file'"
fi
port="$(cat "$port_file")"

# 4. Role, database, extension.
psql() { as_pg "'$bin/psql' -h '$sock' -p $port -U postgres -v ON_ERROR_STOP=1 -qtA $*"; }
if [ "$(psql "-c \"SELECT 1 FROM pg_roles WHERE rolname = '$user'\"")" != 1 ]; then
  psql "-c \"CREATE ROLE $user LOGIN PASSWORD '$password'\"" >&2
fi
# CREATEDB: a test makes a database without the extension (the role may not create it there).
psql "-c \"ALTER ROLE $user CREATEDB\"" >&2
if [ "$(psql "-c \"SELECT 1 FROM pg_database WHERE datname = '$db'\"")" != 1 ]; then
  psql "-c \"CREATE DATABASE $db OWNER $user\"" >&2
fi
psql "-d $db -c \"CREATE EXTENSION IF NOT EXISTS vector\"" >&2
echo "postgres://$user:$password@127.0.0.1:$port/$db"
