#!/usr/bin/env bash
# Keep a local Kafka broker and Redis running in the background for manual
# work and the demo. Writes .local-services.env in the repo root; source it
# (set -a; . ./.local-services.env; set +a) and the tests reuse these
# services instead of starting their own.
#
#   scripts/local-services.sh start|stop|status
#
# PYTHON overrides the interpreter (default: python on PATH, e.g. the venv's).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_file="$root/.local-services.env"
log_file="$root/.local-services.log"
python="${PYTHON:-$(command -v python || command -v python3)}"

pid_of() {
  [[ -f "$env_file" ]] && sed -n 's/^HYGIENE_DEVSTACK_PID=//p' "$env_file"
}

running() {
  local pid
  pid="$(pid_of)" && [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

case "${1:-}" in
  start)
    if running; then
      cat "$env_file"
      exit 0
    fi
    rm -f "$env_file"
    cd "$root"
    nohup "$python" -m processor.devstack run --env-file "$env_file" >>"$log_file" 2>&1 &
    pid=$!
    # The first start downloads the Kafka jars; allow for it.
    deadline=$((SECONDS + 300))
    until [[ -f "$env_file" ]]; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "local services failed to start; see $log_file" >&2
        tail -n 20 "$log_file" >&2
        exit 1
      fi
      if ((SECONDS >= deadline)); then
        echo "local services not up after 300s; see $log_file" >&2
        kill -TERM "$pid" 2>/dev/null || true
        exit 1
      fi
      sleep 0.2
    done
    cat "$env_file"
    ;;
  stop)
    if ! running; then
      echo "not running"
      rm -f "$env_file"
      exit 0
    fi
    pid="$(pid_of)"
    kill -TERM "$pid"
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
    rm -f "$env_file"
    echo "stopped"
    ;;
  status)
    if running; then
      cat "$env_file"
    else
      echo "not running"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
