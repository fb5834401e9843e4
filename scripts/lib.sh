# Shared set-up steps for scripts/up and scripts/test (sourced, not run).

ensure_debian_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "please install: ${missing[*]}" >&2
    return 1
  fi
}

ensure_venv() {
  local spec="$1"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
}

ensure_postgres() {
  # The suite needs a PostgreSQL server (RUNYARD_TEST_PG_URL, default 127.0.0.1:5432).
  if python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(2)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5432)) == 0 else 1)
PY
  then return 0; fi
  if [ -n "${RUNYARD_TEST_PG_URL:-}" ]; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then
    echo "== starting the local PostgreSQL cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  else
    echo "PostgreSQL is not reachable on 127.0.0.1:5432; set RUNYARD_TEST_PG_URL" >&2
    return 1
  fi
}
