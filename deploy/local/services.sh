#!/usr/bin/env bash
# Start, stop and inspect the LeadFlow services (intake, assignment, followup, analytics, notify), intake's outbox relay
# and analytics' streams worker
# on the local stack (background processes).
#   services.sh start|stop|status
# Logs: .stack/logs/<service>.log (JSON lines). PIDs: .stack/run/<service>.pid
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${LEADFLOW_PYTHON:-$ROOT/.venv/bin/python}"
RUN="$ROOT/.stack/run"
LOGS="$ROOT/.stack/logs"
SERVICES=(intake-relay intake assignment followup analytics analytics-streams notify console)
READY_TIMEOUT="${LEADFLOW_READY_TIMEOUT:-60}"

port_of() {
  case "$1" in
    intake) echo "${LEADFLOW_INTAKE_PORT:-8001}" ;;
    intake-relay) echo "${LEADFLOW_INTAKE_RELAY_PORT:-8011}" ;;
    assignment) echo "${LEADFLOW_ASSIGNMENT_PORT:-8002}" ;;
    followup) echo "${LEADFLOW_FOLLOWUP_PORT:-8003}" ;;
    analytics) echo "${LEADFLOW_ANALYTICS_PORT:-8004}" ;;
    analytics-streams) echo "${LEADFLOW_ANALYTICS_STREAMS_PORT:-8014}" ;;
    console) echo "${LEADFLOW_CONSOLE_PORT:-8000}" ;;
    notify) echo "${LEADFLOW_NOTIFY_PORT:-8005}" ;;
  esac
}

# What each process runs, and the page that says it is ready (the faust worker has no database to wait for).
# intake records in one process and publishes from another (its relay), each on a core of its own.
command_of() {
  case "$1" in
    intake-relay) echo "services.intake relay" ;;
    analytics-streams) echo "services.analytics.streams worker -l info" ;;
    *) echo "services.$1" ;;
  esac
}
ready_path_of() { [[ $1 == analytics-streams ]] && echo /healthz || echo /readyz; }

# Running: the recorded pid is alive, not a zombie (a process killed with -9 and not yet reaped still
# answers `kill -0`), and still runs this service's module (pids get reused).
running() {
  [[ -f "$RUN/$1.pid" ]] || return 1
  local pid; pid="$(cat "$RUN/$1.pid")"
  [[ -r "/proc/$pid/stat" ]] || return 1
  [[ "$(cut -d' ' -f3 "/proc/$pid/stat")" != Z ]] || return 1
  local module; module="$(command_of "$1")"; module="${module%% *}"
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-m $module"
}

start() {
  cd "$ROOT"
  mkdir -p "$RUN" "$LOGS"
  eval "$(bash "$ROOT/deploy/local/stack.sh" env)"
  export LEADFLOW_KAFKA_BOOTSTRAP LEADFLOW_DATABASE_URL
  export LEADFLOW_INTAKE_EMBEDDED_RELAY=false
  # The console's directory announces the reps: assignment refuses to assign to anyone else.
  export LEADFLOW_ASSIGNMENT_DIRECTORY_REQUIRED="${LEADFLOW_ASSIGNMENT_DIRECTORY_REQUIRED:-true}"
  # The console reaches the other services where this script starts them.
  local upstream
  for upstream in intake assignment followup analytics; do
    export "LEADFLOW_${upstream^^}_URL=http://127.0.0.1:$(port_of "$upstream")"
  done
  for svc in "${SERVICES[@]}"; do
    if running "$svc"; then continue; fi
    local port; port="$(port_of "$svc")"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "error: port $port (for $svc) is already in use by another process" >&2
      exit 1
    fi
    # Detached from this shell's terminal and pipes (a caller piping `make up` must not wait on them).
    # shellcheck disable=SC2046 # the command's words are split on purpose
    setsid nohup "$PY" -m $(command_of "$svc") >>"$LOGS/$svc.log" 2>&1 </dev/null &
    echo $! >"$RUN/$svc.pid"
  done
  local deadline=$((SECONDS + READY_TIMEOUT))
  for svc in "${SERVICES[@]}"; do
    local port; port="$(port_of "$svc")"
    until curl -fsS "http://127.0.0.1:$port$(ready_path_of "$svc")" >/dev/null 2>&1; do
      if ! running "$svc"; then
        echo "error: $svc exited; last log lines:" >&2; tail -n 20 "$LOGS/$svc.log" >&2; exit 1
      fi
      if (( SECONDS > deadline )); then
        echo "error: $svc not ready after ${READY_TIMEOUT}s; last log lines:" >&2; tail -n 20 "$LOGS/$svc.log" >&2; exit 1
      fi
      sleep 0.5
    done
    if [[ $svc == analytics-streams ]]; then
      echo "$svc ready: http://localhost:$port/activity/  http://localhost:$port/hot-leads/"
    elif [[ $svc == console ]]; then
      echo "$svc ready: http://localhost:$port  (add people: .venv/bin/python -m services.console users add --help)"
    elif [[ $svc == intake-relay ]]; then
      echo "$svc ready: publishing intake's events (metrics: http://localhost:$port/metrics)"
    else
      echo "$svc ready: http://localhost:$port  (docs: http://localhost:$port/docs)"
    fi
  done
}

stop() {
  for svc in "${SERVICES[@]}"; do
    if running "$svc"; then
      local pid; pid="$(cat "$RUN/$svc.pid")"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null || true
      echo "$svc stopped"
    fi
    rm -f "$RUN/$svc.pid"
  done
}

status() {
  for svc in "${SERVICES[@]}"; do
    if running "$svc"; then echo "$svc: running (pid $(cat "$RUN/$svc.pid"), port $(port_of "$svc"))"
    else echo "$svc: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
