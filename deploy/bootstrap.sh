#!/usr/bin/env bash
# Bootstrap a machine for paysync: `deploy/bootstrap.sh [services] [venv]` (both by default).
#
# services: use Postgres and RabbitMQ if they answer on 127.0.0.1; else start the installed
#           ones; else install them from Debian packages and start them; else stop with a
#           clear message. It never reconfigures a server it did not install.
# venv:     install uv if missing (into .run/uv, from PyPI) and sync .venv from uv.lock.
# browser:  (used by `make test`) Debian's chromium for the console's browser tests, when
#           missing (Playwright drives it; it never downloads a browser of its own).
# tools:    (used by `make lint-deploy` only, not a default step) promtool, for the alert
#           rules: the one on PATH, else the one in .run/tools, else unpacked there from
#           Debian's prometheus package (promtool only: no server is installed or started).
set -euo pipefail

cd "$(dirname "$0")/.."
PG_HOST=127.0.0.1 PG_PORT=${PAYSYNC_BOOTSTRAP_PG_PORT:-5432}
AMQP_HOST=127.0.0.1 AMQP_PORT=${PAYSYNC_BOOTSTRAP_AMQP_PORT:-5672}
UV_VERSION=0.13.9

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() {  # host port seconds what
  local deadline=$((SECONDS + $3))
  until port_open "$1" "$2"; do
    ((SECONDS < deadline)) || die "$4 did not start listening on $1:$2 within $3 s"
    sleep 1
  done
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"; fi
}

apt_install() {
  command -v apt-get >/dev/null || die "$* missing and this is not a Debian-like system; install it yourself"
  say "installing $* from Debian packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_cluster_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

ensure_postgres() {
  if port_open "$PG_HOST" "$PG_PORT"; then say "postgres: reachable on $PG_HOST:$PG_PORT"; return; fi
  local installed_now=0
  if [ -z "$(pg_cluster_version)" ] || ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql
    installed_now=1
  fi
  local version; version=$(pg_cluster_version)
  [ -n "$version" ] || die "postgres installed but no cluster under /etc/postgresql"
  if [ "$installed_now" = 1 ]; then
    # A server we installed ourselves, for local development only: let the postgres role
    # connect over loopback without a password, as the default DATABASE_URL expects.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
  fi
  say "postgres: starting cluster $version/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port "$PG_HOST" "$PG_PORT" 60 postgres
  say "postgres: up"
}

ensure_rabbitmq() {
  if port_open "$AMQP_HOST" "$AMQP_PORT"; then say "rabbitmq: reachable on $AMQP_HOST:$AMQP_PORT"; return; fi
  command -v rabbitmq-server >/dev/null || [ -x /usr/sbin/rabbitmq-server ] || apt_install rabbitmq-server
  say "rabbitmq: starting"
  as_root rabbitmq-server -detached || true
  wait_port "$AMQP_HOST" "$AMQP_PORT" 120 rabbitmq
  if command -v rabbitmqctl >/dev/null; then
    as_root rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 || true
  fi
  say "rabbitmq: up"
}

find_uv() {
  if command -v uv >/dev/null; then command -v uv; return; fi
  if [ -x .run/uv/bin/uv ]; then echo .run/uv/bin/uv; return; fi
  local py; py=$(command -v python3) || die "python3 not found; install Python >= 3.11"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 is older than 3.11"
  if ! "$py" -m venv .run/uv >/dev/null 2>&1; then
    apt_install python3-venv
    "$py" -m venv .run/uv
  fi
  say "installing uv $UV_VERSION into .run/uv"
  .run/uv/bin/pip install -q --disable-pip-version-check "uv==$UV_VERSION"
  echo .run/uv/bin/uv
}

ensure_venv() {
  local uv; uv=$(find_uv)
  "$uv" sync --frozen --quiet
  say "venv: .venv in sync with uv.lock"
}

ensure_browser() {
  local found; found=$(command -v chromium || true)
  if [ -z "$found" ]; then apt_install chromium; found=$(command -v chromium); fi
  say "browser: $("$found" --version 2>/dev/null | head -n 1)"
}

ensure_promtool() {
  if command -v promtool >/dev/null; then say "promtool: $(command -v promtool)"; return; fi
  local dir=.run/tools/prometheus
  if [ ! -x "$dir/usr/bin/promtool" ]; then
    command -v apt-get >/dev/null || die "promtool missing and this is not a Debian-like system; install Prometheus' promtool yourself"
    local tmp; tmp=$(mktemp -d)
    say "promtool: unpacking it from Debian's prometheus package into $dir"
    if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      (cd "$tmp" && apt-get download prometheus >/dev/null) || die "could not download Debian's prometheus package"
    fi
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
    rm -rf "$dir"
    install -D -m 0755 "$tmp/root/usr/bin/promtool" "$dir/usr/bin/promtool"
    rm -rf "$tmp"
  fi
  mkdir -p .run/tools/bin
  ln -sf ../prometheus/usr/bin/promtool .run/tools/bin/promtool
  say "promtool: $(.run/tools/bin/promtool --version 2>&1 | head -n 1)"
}

main() {
  mkdir -p .run
  local steps=("$@")
  [ ${#steps[@]} -gt 0 ] || steps=(services venv)
  for step in "${steps[@]}"; do
    case "$step" in
      services) ensure_postgres; ensure_rabbitmq ;;
      venv) ensure_venv ;;
      tools) ensure_promtool ;;
      browser) ensure_browser ;;
      *) die "unknown step $step (use: services, venv, browser, tools)" ;;
    esac
  done
}

main "$@"
