#!/usr/bin/env bash
# System packages the project needs that pip cannot provide: the PostgreSQL server binaries,
# redis-server for the Celery stack test,
# and Chromium for the end-to-end UI test. Installs them with apt when missing and we are
# root; otherwise says what to install.
set -euo pipefail

have_postgres() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
    || [ -n "${NIGHTSHIFT_PG_BINDIR:-}" ]
}

if ! have_postgres; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL server binaries (apt-get install postgresql)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # Debian's package starts a cluster of its own; ours is separate, so stop theirs.
    (service postgresql stop || true) >/dev/null 2>&1
  else
    echo "PostgreSQL server binaries not found: install Debian's 'postgresql' package (or set NIGHTSHIFT_PG_BINDIR)." >&2
    exit 1
  fi
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Chromium for the UI test (apt-get install chromium)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium not found: the UI test will be skipped until Debian's 'chromium' package is installed." >&2
  fi
fi
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing redis-server for the Celery stack test (apt-get install redis-server)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    # Debian's package starts a server of its own; the test starts one on a port of its own.
    (service redis-server stop || true) >/dev/null 2>&1
  else
    echo "redis-server not found: the Celery stack test needs Debian's 'redis-server' package." >&2
    exit 1
  fi
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  # The cluster runs as this unprivileged user when we are root (PostgreSQL refuses root).
  useradd --system --home-dir /var/lib/postgresql --shell /bin/false postgres
fi
