#!/usr/bin/env bash
# LeadFlow local infrastructure stack, without Docker:
#   - Apache Kafka 4.1.1 (KRaft, one combined broker+controller) run from Maven jars
#   - PostgreSQL (Debian's /usr/lib/postgresql/<ver>/bin), run as the `postgres` OS user
#
# Usage: deploy/local/stack.sh up|down|clean|status|env
# See deploy/local/README.md for ports, locations and overrides.
set -euo pipefail

# ---------------------------------------------------------------------------------------
# Configuration (all overridable from the environment)
# ---------------------------------------------------------------------------------------
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)
# A second stack beside the usual one (the fault suite kills and restarts its own): another directory
# and other ports. Paths outside the stack directory (socket, relocated data) are named after it then.
STACK_DIR=${LEADFLOW_STACK_DIR:-$REPO_ROOT/.stack}
STACK_KEY=$REPO_ROOT
[[ -n ${LEADFLOW_STACK_DIR:-} ]] && STACK_KEY=$STACK_DIR

KAFKA_VERSION=4.1.1
CACHE_DIR=${LEADFLOW_CACHE:-$HOME/.cache/leadflow}
KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_LIBS_MARKER="$KAFKA_HOME/libs.complete"

KAFKA_PORT=${LEADFLOW_KAFKA_PORT:-9092}
CONTROLLER_PORT=${LEADFLOW_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP_OPTS=${LEADFLOW_KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}
KAFKA_START_TIMEOUT=${LEADFLOW_KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${LEADFLOW_KAFKA_STOP_TIMEOUT:-30}
TOPIC=${LEADFLOW_TOPIC:-leadflow.lead-events}
TOPIC_PARTITIONS=${LEADFLOW_TOPIC_PARTITIONS:-6}
MVN_TIMEOUT=${LEADFLOW_MVN_TIMEOUT:-900}

PG_PORT=${LEADFLOW_PG_PORT:-5433}
PG_START_TIMEOUT=${LEADFLOW_PG_START_TIMEOUT:-60}
PG_OS_USER=postgres
PG_DB=leadflow
PG_ROLE=leadflow
PG_PASSWORD=leadflow
PG_SCHEMAS=(intake assignment followup analytics)

KAFKA_DIR="$STACK_DIR/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_LOG_FILE="$KAFKA_LOGS/server.log"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_PID_FILE="$KAFKA_DIR/kafka.pid"
KAFKA_CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"
LOG4J_CONF="$SCRIPT_DIR/log4j2.properties"

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
say() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

is_root() { [[ $EUID -eq 0 ]]; }

# Is something listening on 127.0.0.1:$1 / localhost:$1 ?
port_in_use() {
  local port=$1
  if command -v ss >/dev/null 2>&1 && [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]; then
    return 0
  fi
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
}
port_answers() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
port_holder() {
  local h=""
  command -v ss >/dev/null 2>&1 && h=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(.*)' | head -n1 || true)
  printf '%s' "${h:-unknown process}"
}
require_free_port() { # port, what, env var
  if port_in_use "$1"; then
    die "port $1 ($2) is already in use by $(port_holder "$1"), which is not LeadFlow's stack. Stop it, or choose another port with $3=<port>."
  fi
}

# Serialise concurrent invocations (up/down/clean) of this script. Daemons are started
# with fd 9 closed (9>&-), otherwise they would inherit and hold the lock forever.
take_lock() {
  mkdir -p "$STACK_DIR"
  exec 9>"$STACK_DIR/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w "${LEADFLOW_LOCK_TIMEOUT:-180}" 9 || die "another stack.sh is still running (lock $STACK_DIR/.lock)"
  fi
}

# ---------------------------------------------------------------------------------------
# Kafka
# ---------------------------------------------------------------------------------------
need_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH. Kafka $KAFKA_VERSION needs Java 17+ (apt-get install -y openjdk-17-jre-headless)."
  local v major
  v=$(java -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')
  major=${v%%.*}
  [[ $major == 1 ]] && major=$(echo "$v" | cut -d. -f2)
  [[ $major =~ ^[0-9]+$ && $major -ge 17 ]] || die "java $v found, but Kafka $KAFKA_VERSION needs Java 17+."
}

kafka_classpath() { printf '%s/*' "$KAFKA_LIBS"; }

# The pom's checksum goes into the marker, so editing the pom triggers a re-fetch.
fetch_kafka_libs() {
  local pom="$SCRIPT_DIR/kafka-pom.xml" sum
  sum=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f $KAFKA_LIBS_MARKER && $(cat "$KAFKA_LIBS_MARKER") == "$sum" && -d $KAFKA_LIBS ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) not found on PATH; it is needed once to fetch the Kafka jars into $KAFKA_LIBS (apt-get install -y maven)."
  say "fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIBS (one-off) ..."
  mkdir -p "$KAFKA_HOME"
  local work="$KAFKA_HOME/build.$$"
  rm -rf "$work"; mkdir -p "$work"
  cp "$pom" "$work/pom.xml"
  local t0; t0=$(now)
  if ! (cd "$work" && timeout "$MVN_TIMEOUT" mvn -B -q \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1); then
    tail -n 30 "$work/mvn.log" >&2 || true
    die "Maven could not fetch the Kafka jars (log above; timeout ${MVN_TIMEOUT}s)."
  fi
  ls "$work/libs"/kafka_2.13-"$KAFKA_VERSION".jar "$work/libs"/kafka-tools-"$KAFKA_VERSION".jar \
     "$work/libs"/log4j-slf4j-impl-*.jar "$work/libs"/slf4j-api-1.7.36.jar >/dev/null \
     || die "Maven finished but the expected jars are missing in $work/libs"
  rm -rf "$KAFKA_LIBS" "$KAFKA_LIBS_MARKER"
  mv "$work/libs" "$KAFKA_LIBS"
  rm -rf "$work"
  printf '%s\n' "$sum" >"$KAFKA_LIBS_MARKER"
  say "Kafka jars ready ($(ls "$KAFKA_LIBS" | wc -l) jars, $(elapsed "$t0")s)"
}

# Runs a Kafka CLI class (StorageTool, TopicCommand) with logging on stderr at WARN.
kafka_tool() {
  timeout 120 java -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dleadflow.log.level=WARN -Dleadflow.log.target=SYSTEM_ERR \
    -Dlog4j2.configurationFile="$LOG4J_CONF" -cp "$(kafka_classpath)" "$@"
}

# PID of *our* broker (pid file + process alive + command line matches), or nothing.
kafka_pid() {
  [[ -f $KAFKA_PID_FILE ]] || return 0
  local pid; pid=$(cat "$KAFKA_PID_FILE" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [[ -r /proc/$pid/cmdline ]] || return 0
  if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $KAFKA_PROPS"; then
    echo "$pid"
  fi
}

render_kafka_props() { # [output file; default: .stack/kafka/server.properties]
  local out=${1:-}
  if [[ -n $out ]]; then
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
        -e "s|@LOG_DIRS@|$KAFKA_DATA|g" "$SCRIPT_DIR/server.properties.tmpl" >"$out"
  else
    render_kafka_props "$KAFKA_PROPS.tmp"
    mv "$KAFKA_PROPS.tmp" "$KAFKA_PROPS"
  fi
}

format_kafka_storage() {
  # Formatted once; -g would also make a second format a no-op. (Changing the controller
  # port later is fine: the voter updates its own endpoint in the quorum on start.)
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  if [[ ! -s $KAFKA_CLUSTER_ID_FILE ]]; then
    local id; id=$(kafka_tool kafka.tools.StorageTool random-uuid | tr -d '[:space:]')
    [[ ${#id} -eq 22 ]] || die "StorageTool random-uuid returned '$id'"
    printf '%s\n' "$id" >"$KAFKA_CLUSTER_ID_FILE"
  fi
  say "formatting Kafka storage in $KAFKA_DATA (cluster id $(cat "$KAFKA_CLUSTER_ID_FILE"))"
  kafka_tool kafka.tools.StorageTool format -t "$(cat "$KAFKA_CLUSTER_ID_FILE")" \
    -c "$KAFKA_PROPS" --standalone -g >"$KAFKA_LOGS/format.log" 2>&1 \
    || { cat "$KAFKA_LOGS/format.log" >&2; die "kafka storage format failed"; }
}

kafka_ready() { # pid
  grep -q 'Kafka Server started' "$KAFKA_LOG_FILE" 2>/dev/null && port_answers "$KAFKA_PORT"
}

wait_kafka_ready() { # pid t0
  local pid=$1 t0=$2 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while ! kafka_ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "Kafka exited during startup; last 30 lines of $KAFKA_LOG_FILE:"
      tail -n 30 "$KAFKA_LOG_FILE" >&2 || true
      rm -f "$KAFKA_PID_FILE"
      die "Kafka failed to start"
    fi
    if (( SECONDS >= deadline )); then
      say "Kafka not ready after ${KAFKA_START_TIMEOUT}s; last 30 lines of $KAFKA_LOG_FILE:"
      tail -n 30 "$KAFKA_LOG_FILE" >&2 || true
      stop_kafka
      die "Kafka start timed out (LEADFLOW_KAFKA_START_TIMEOUT=$KAFKA_START_TIMEOUT)"
    fi
    sleep 0.3
  done
  say "Kafka ready on localhost:$KAFKA_PORT (pid $pid, $(elapsed "$t0")s)"
}

# Checks done before anything is started, so that a busy port or a missing tool fails the
# whole 'up' without leaving half a stack behind.
preflight_kafka() {
  local pid; pid=$(kafka_pid)
  if [[ -n $pid ]]; then
    if [[ -f $KAFKA_PROPS ]] && ! render_kafka_props /dev/stdout | cmp -s - "$KAFKA_PROPS"; then
      die "Kafka (pid $pid) is running with other settings (ports?) than requested now; run '$0 down' first."
    fi
    return 0
  fi
  require_free_port "$KAFKA_PORT" "Kafka PLAINTEXT listener" LEADFLOW_KAFKA_PORT
  require_free_port "$CONTROLLER_PORT" "Kafka controller listener" LEADFLOW_KAFKA_CONTROLLER_PORT
  need_java
  if [[ ! -f $KAFKA_LIBS_MARKER ]]; then
    command -v mvn >/dev/null 2>&1 || die "mvn (Maven) not found on PATH; it is needed once to fetch the Kafka jars into $KAFKA_LIBS (apt-get install -y maven)."
  fi
}

start_kafka() {
  local pid; pid=$(kafka_pid)
  if [[ -n $pid ]]; then
    kafka_ready || wait_kafka_ready "$pid" "$(now)"
    return 0
  fi
  fetch_kafka_libs
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS" "$KAFKA_DIR/tmp"
  render_kafka_props
  format_kafka_storage
  [[ -f $KAFKA_LOG_FILE ]] && mv -f "$KAFKA_LOG_FILE" "$KAFKA_LOG_FILE.1"
  say "starting Kafka $KAFKA_VERSION (heap: $KAFKA_HEAP_OPTS)"
  local t0; t0=$(now)
  # shellcheck disable=SC2086  # word splitting of the JVM option strings is intended
  (cd "$KAFKA_DIR" && exec nohup setsid java $KAFKA_HEAP_OPTS \
      -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
      -Djava.io.tmpdir="$KAFKA_DIR/tmp" -Dkafka.logs.dir="$KAFKA_LOGS" \
      -Dlog4j2.configurationFile="$LOG4J_CONF" ${LEADFLOW_KAFKA_JVM_OPTS:-} \
      -cp "$(kafka_classpath)" kafka.Kafka "$KAFKA_PROPS" \
      >>"$KAFKA_LOG_FILE" 2>&1 </dev/null 9>&-) &
  pid=$!
  echo "$pid" >"$KAFKA_PID_FILE"
  wait_kafka_ready "$pid" "$t0"
}

ensure_topic() {
  create_topic "$TOPIC" "$TOPIC_PARTITIONS"
  # What consumers could not apply (docs/operations.md, "Dead letters"): one partition, kept forever too.
  create_topic "$TOPIC.dlq" 1
}

create_topic() {
  local name=$1 partitions=$2
  # Fast path: the topic's first partition directory exists in our log dir.
  [[ -d $KAFKA_DATA/$name-0 ]] && return 0
  say "creating topic $name ($partitions partitions, RF 1, retention.ms=-1)"
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "localhost:$KAFKA_PORT" \
    --create --if-not-exists --topic "$name" --partitions "$partitions" \
    --replication-factor 1 --config retention.ms=-1 >&2 \
    || die "could not create topic $name"
}

stop_kafka() {
  local pid; pid=$(kafka_pid)
  if [[ -z $pid ]]; then
    rm -f "$KAFKA_PID_FILE"
    return 0
  fi
  say "stopping Kafka (pid $pid, SIGTERM, up to ${KAFKA_STOP_TIMEOUT}s)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS >= deadline )); then
      say "Kafka still alive after ${KAFKA_STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.3
  done
  rm -f "$KAFKA_PID_FILE"
}

# ---------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------
# Where the cluster lives. Normally .stack/pg; if the postgres OS user cannot traverse the
# path to the repo (e.g. a clone under /root, mode 700), the cluster goes to
# /var/lib/leadflow-stack/<repo-name>-<hash>/pg and .stack/pg becomes a symlink to it.
# Parent directories are never chmod-ed.
PG_ROOT="" PG_DATA="" PG_SOCK="" PG_BIN=""

as_pg() {
  if is_root; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    "$@"
  fi
}

pg_resolve_paths() {
  if [[ -L $STACK_DIR/pg ]]; then
    PG_ROOT=$(readlink -f "$STACK_DIR/pg")
  else
    PG_ROOT="$STACK_DIR/pg"
  fi
  PG_DATA="$PG_ROOT/data"
  PG_SOCK="$PG_ROOT/run"
  # A unix socket path must stay under ~107 bytes.
  if (( ${#PG_SOCK} + 20 > 100 )); then
    PG_SOCK="/tmp/leadflow-pg-$(printf '%s' "$STACK_KEY" | sha256sum | cut -c1-10)"
  fi
}

pg_find_bin() {
  local cand=""
  if [[ -n ${LEADFLOW_PG_BIN:-} ]]; then
    cand=$LEADFLOW_PG_BIN
  elif [[ -f $PG_DATA/PG_VERSION && -x /usr/lib/postgresql/$(cat "$PG_DATA/PG_VERSION")/bin/postgres ]]; then
    cand=/usr/lib/postgresql/$(cat "$PG_DATA/PG_VERSION")/bin
  elif [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then
    cand=/usr/lib/postgresql/15/bin
  else
    cand=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  fi
  if [[ -z $cand || ! -x $cand/postgres ]]; then
    [[ $1 == install ]] || return 1
    is_root && command -v apt-get >/dev/null 2>&1 \
      || die "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); install the 'postgresql' package or set LEADFLOW_PG_BIN."
    say "PostgreSQL server binaries missing: apt-get install -y postgresql"
    export DEBIAN_FRONTEND=noninteractive
    timeout 900 apt-get update -q >&2 || die "apt-get update failed"
    timeout 900 apt-get install -y -q --no-install-recommends postgresql >&2 || die "apt-get install postgresql failed"
    pg_find_bin nope || die "postgresql installed, but no /usr/lib/postgresql/*/bin/postgres found"
    return 0
  fi
  PG_BIN=$cand
}

pg_prepare_root() {
  if is_root; then
    id "$PG_OS_USER" >/dev/null 2>&1 || {
      say "creating OS user $PG_OS_USER"
      useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$PG_OS_USER" \
        || die "could not create OS user $PG_OS_USER"
    }
    if [[ ! -e $STACK_DIR/pg ]]; then
      mkdir -p "$STACK_DIR/pg"
      if ! runuser -u "$PG_OS_USER" -- test -x "$STACK_DIR/pg"; then
        local alt
        alt="/var/lib/leadflow-stack/$(basename "$REPO_ROOT")-$(printf '%s' "$STACK_KEY" | sha256sum | cut -c1-10)/pg"
        say "user $PG_OS_USER cannot reach $STACK_DIR (a parent directory is not traversable);"
        say "PostgreSQL data goes to $alt instead (.stack/pg is a symlink to it; 'clean' removes it)"
        rmdir "$STACK_DIR/pg"
        mkdir -p "$alt"
        chmod 755 "$(dirname "$alt")" "$(dirname "$(dirname "$alt")")"
        ln -s "$alt" "$STACK_DIR/pg"
      fi
    fi
  fi
  pg_resolve_paths
  mkdir -p "$PG_ROOT/log" "$PG_SOCK" "$PG_DATA"
  if is_root; then
    chown "$PG_OS_USER:" "$PG_ROOT" "$PG_ROOT/log" "$PG_SOCK"
    [[ -f $PG_DATA/PG_VERSION ]] || chown "$PG_OS_USER:" "$PG_DATA"
  fi
  chmod 700 "$PG_DATA"
  chmod 755 "$PG_SOCK"
}

pg_running() { [[ -n $PG_BIN && -f $PG_DATA/PG_VERSION ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

pg_write_conf() {
  as_pg tee "$PG_DATA/leadflow.conf" >/dev/null <<EOF
# Written by deploy/local/stack.sh on every 'up' - edit the script, not this file.
port = $PG_PORT
listen_addresses = 'localhost'
unix_socket_directories = '$PG_SOCK'
max_connections = 200
shared_buffers = 256MB
# Durability is a project promise: fsync stays on.
fsync = on
full_page_writes = on
logging_collector = off
log_timezone = 'UTC'
timezone = 'UTC'
EOF
}

preflight_pg() {
  pg_resolve_paths
  if pg_find_bin check && pg_running; then
    local was; was=$(sed -n 's/^port = //p' "$PG_DATA/leadflow.conf" 2>/dev/null || true)
    [[ -z $was || $was == "$PG_PORT" ]] \
      || die "PostgreSQL is running on port $was, not $PG_PORT as requested now; run '$0 down' first."
    return 0
  fi
  require_free_port "$PG_PORT" "PostgreSQL" LEADFLOW_PG_PORT
}

start_pg() {
  pg_resolve_paths
  if pg_find_bin check && pg_running; then
    return 0
  fi
  pg_prepare_root
  pg_find_bin install
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    say "initdb $PG_DATA ($("$PG_BIN/postgres" --version))"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale \
      --auth-local=trust --auth-host=trust >"$PG_ROOT/log/initdb.log" 2>&1 \
      || { cat "$PG_ROOT/log/initdb.log" >&2; die "initdb failed"; }
    printf "\n# LeadFlow local stack settings\ninclude = 'leadflow.conf'\n" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
  fi
  pg_write_conf
  say "starting PostgreSQL on localhost:$PG_PORT"
  local t0; t0=$(now)
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_ROOT/log/postgres.log" -w -t "$PG_START_TIMEOUT" start >/dev/null 9>&- \
    || { tail -n 30 "$PG_ROOT/log/postgres.log" >&2 || true; die "PostgreSQL failed to start"; }
  local deadline=$((SECONDS + PG_START_TIMEOUT))
  until "$PG_BIN/pg_isready" -q -h "$PG_SOCK" -p "$PG_PORT"; do
    (( SECONDS < deadline )) || { tail -n 30 "$PG_ROOT/log/postgres.log" >&2 || true; die "PostgreSQL not ready after ${PG_START_TIMEOUT}s"; }
    sleep 0.3
  done
  say "PostgreSQL ready (${t0:+$(elapsed "$t0")s})"
}

pg_bootstrap() {
  local schemas="" s
  for s in "${PG_SCHEMAS[@]}"; do
    schemas+="CREATE SCHEMA IF NOT EXISTS $s AUTHORIZATION $PG_ROLE; ALTER SCHEMA $s OWNER TO $PG_ROLE;"$'\n'
  done
  as_pg timeout 60 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres <<EOF >/dev/null \
    || die "creating role/database $PG_DB failed"
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', '$PG_ROLE', '$PG_PASSWORD')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE') \gexec
-- CREATEDB: the end-to-end tests give every run a database of its own.
ALTER ROLE $PG_ROLE CREATEDB;
SELECT format('CREATE DATABASE %I OWNER %I', '$PG_DB', '$PG_ROLE')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DB') \gexec
EOF
  as_pg timeout 60 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d "$PG_DB" <<EOF >/dev/null \
    || die "creating schemas in $PG_DB failed"
SET client_min_messages = warning;
$schemas
EOF
}

stop_pg() {
  pg_resolve_paths
  pg_find_bin check || return 0
  if pg_running; then
    say "stopping PostgreSQL (pg_ctl stop -m fast)"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null \
      || die "pg_ctl stop failed; see $PG_ROOT/log/postgres.log"
  fi
}

# ---------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------
cmd_up() {
  take_lock
  preflight_pg
  preflight_kafka
  start_pg
  pg_bootstrap
  start_kafka
  ensure_topic
  cmd_env >&2
}

cmd_down() {
  take_lock
  stop_kafka
  stop_pg
}

cmd_clean() {
  cmd_down
  pg_resolve_paths
  if [[ -L $STACK_DIR/pg ]]; then
    say "removing $PG_ROOT"
    rm -rf -- "$PG_ROOT"
    rmdir -- "$(dirname "$PG_ROOT")" 2>/dev/null || true
  fi
  [[ $PG_SOCK == /tmp/leadflow-pg-* ]] && rm -rf -- "$PG_SOCK"
  say "removing $STACK_DIR (Maven cache $KAFKA_HOME is kept)"
  rm -rf -- "$STACK_DIR"
}

cmd_status() {
  local rc=0 pid
  pid=$(kafka_pid)
  if [[ -n $pid ]]; then
    local rss; rss=$(ps -o rss= -p "$pid" | tr -d ' ')
    local topic="missing"
    [[ -d $KAFKA_DATA/$TOPIC-0 ]] && topic="present ($(find "$KAFKA_DATA" -maxdepth 1 -type d -name "$TOPIC-*" | grep -cE -- '-[0-9]+$') partitions)"
    local ready=no; kafka_ready && ready=yes
    printf 'kafka     : running  pid %s, localhost:%s (controller %s), ready=%s, RSS %s MiB, topic %s %s\n' \
      "$pid" "$KAFKA_PORT" "$CONTROLLER_PORT" "$ready" "$((rss / 1024))" "$TOPIC" "$topic"
    [[ $ready == yes ]] || rc=3
  else
    printf 'kafka     : stopped%s\n' "$([[ -d $KAFKA_DATA ]] && echo " (data in $KAFKA_DATA)")"
    rc=3
  fi
  pg_resolve_paths
  if pg_find_bin check && pg_running; then
    local ppid; ppid=$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || echo '?')
    local ready=no; "$PG_BIN/pg_isready" -q -h "$PG_SOCK" -p "$PG_PORT" && ready=yes
    printf 'postgres  : running  pid %s, localhost:%s, ready=%s, data %s (%s)\n' \
      "$ppid" "$PG_PORT" "$ready" "$PG_DATA" "$("$PG_BIN/postgres" --version)"
    [[ $ready == yes ]] || rc=3
  else
    printf 'postgres  : stopped%s\n' "$([[ -f $PG_DATA/PG_VERSION ]] && echo " (data in $PG_DATA)")"
    rc=3
  fi
  printf 'kafka jars: %s\n' "$([[ -f $KAFKA_LIBS_MARKER ]] && echo "$KAFKA_LIBS" || echo "not fetched yet ($KAFKA_LIBS)")"
  return $rc
}

cmd_env() {
  printf 'export LEADFLOW_KAFKA_BOOTSTRAP=localhost:%s\n' "$KAFKA_PORT"
  printf 'export LEADFLOW_DATABASE_URL=postgresql://%s:%s@localhost:%s/%s\n' "$PG_ROLE" "$PG_PASSWORD" "$PG_PORT" "$PG_DB"
}

usage() {
  cat >&2 <<EOF
usage: $0 up|down|clean|status|env
  up      start PostgreSQL and Kafka (idempotent), create role/db/schemas and the topic
  down    stop both (data kept in $STACK_DIR)
  clean   down, then delete $STACK_DIR (the jar cache $KAFKA_HOME stays)
  status  show what runs (exit 0 if everything is up, 3 otherwise)
  env     print export lines: eval "\$($0 env)"
EOF
  exit 2
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  clean) cmd_clean ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) usage ;;
esac
