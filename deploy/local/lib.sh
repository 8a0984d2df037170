# shellcheck shell=bash
# Shared helpers for deploy/local/{up,down,status,kafka-run}.
# Sourced (never executed) by those scripts, which already `set -euo pipefail`.

# ---------------------------------------------------------------------------
# Settings (environment knobs, see deploy/local/README.md)
# ---------------------------------------------------------------------------
LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LIB_DIR/../.." && pwd)"
PROG="${0##*/}"

# Newest Kafka 4.x whose full artifact set (kafka_2.13 + kafka-tools) resolves
# from Maven Central. Pin changes here (and in deploy/docker-compose.yml).
SEGSTREAM_KAFKA_VERSION_DEFAULT="4.3.1"

KAFKA_VERSION="${SEGSTREAM_KAFKA_VERSION:-$SEGSTREAM_KAFKA_VERSION_DEFAULT}"
KAFKA_PORT="${SEGSTREAM_LOCAL_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${SEGSTREAM_LOCAL_CONTROLLER_PORT:-9093}"
REDIS_PORT="${SEGSTREAM_LOCAL_REDIS_PORT:-6379}"
START_TIMEOUT="${SEGSTREAM_LOCAL_START_TIMEOUT:-90}"
STOP_TIMEOUT="${SEGSTREAM_LOCAL_STOP_TIMEOUT:-30}"
KAFKA_HEAP="${SEGSTREAM_LOCAL_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"

LOCAL_DIR="${SEGSTREAM_LOCAL_DIR:-$REPO_ROOT/.local}"
case "$LOCAL_DIR" in
  /*) ;;
  *) LOCAL_DIR="$PWD/$LOCAL_DIR" ;;
esac

KAFKA_HOME="$LOCAL_DIR/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs/$KAFKA_VERSION"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_LOGS="$KAFKA_HOME/logs"
KAFKA_CONF="$KAFKA_HOME/config"
KAFKA_PIDFILE="$KAFKA_HOME/kafka.pid"
KAFKA_CLUSTER_ID_FILE="$KAFKA_HOME/cluster-id"
KAFKA_OUT="$KAFKA_LOGS/kafka.out"
KAFKA_SERVER_LOG="$KAFKA_LOGS/server.log"

REDIS_HOME="$LOCAL_DIR/redis"
REDIS_CONF="$REDIS_HOME/redis.conf"
REDIS_PIDFILE="$REDIS_HOME/redis.pid"
REDIS_LOG="$REDIS_HOME/redis.log"
REDIS_ACL="$REDIS_HOME/users.acl"
REDIS_PASSWORDS="$REDIS_HOME/passwords"
REDIS_CREDENTIALS="$REDIS_HOME/credentials.env"

ALL_SERVICES=(kafka redis)

# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
info() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

# show_tail FILE [N]: last N lines of FILE on stderr, indented.
show_tail() {
  local file="$1" n="${2:-20}"
  if [[ -s "$file" ]]; then
    printf '%s: --- last %s lines of %s ---\n' "$PROG" "$n" "$file" >&2
    tail -n "$n" "$file" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /' >&2
  fi
}

# line_count FILE: number of lines in FILE (0 if absent).
line_count() {
  if [[ -f "$1" ]]; then
    wc -l <"$1" | tr -d ' '
  else
    echo 0
  fi
}

# show_new FILE MARK [N]: like show_tail, but only lines after line MARK
# (written by the current run).
show_new() {
  local file="$1" mark="$2" n="${3:-20}"
  if [[ -f "$file" ]] && (($(line_count "$file") > mark)); then
    printf '%s: --- last lines of %s ---\n' "$PROG" "$file" >&2
    tail -n "+$((mark + 1))" "$file" | tail -n "$n" |
      sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /' >&2
  fi
}

# ---------------------------------------------------------------------------
# Arguments / validation
# ---------------------------------------------------------------------------
# parse_services ARGS...: fills SERVICES with kafka/redis (default: both).
parse_services() {
  SERVICES=()
  local arg
  for arg in "$@"; do
    case "$arg" in
      kafka | redis) SERVICES+=("$arg") ;;
      -h | --help)
        usage
        exit 0
        ;;
      *) die "unknown argument '$arg' (expected: kafka, redis; see --help)" ;;
    esac
  done
  if [[ ${#SERVICES[@]} -eq 0 ]]; then
    SERVICES=("${ALL_SERVICES[@]}")
  fi
}

validate_settings() {
  local name value
  for name in KAFKA_PORT CONTROLLER_PORT REDIS_PORT; do
    value="${!name}"
    if ! [[ "$value" =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
      die "invalid port for $name: '$value'"
    fi
  done
  if [[ "$KAFKA_PORT" == "$CONTROLLER_PORT" || "$KAFKA_PORT" == "$REDIS_PORT" ||
    "$CONTROLLER_PORT" == "$REDIS_PORT" ]]; then
    die "ports must differ: kafka=$KAFKA_PORT controller=$CONTROLLER_PORT redis=$REDIS_PORT"
  fi
  for name in START_TIMEOUT STOP_TIMEOUT; do
    value="${!name}"
    [[ "$value" =~ ^[0-9]+$ ]] || die "invalid $name: '$value' (seconds)"
  done
  [[ "$KAFKA_VERSION" =~ ^4\.[0-9]+\.[0-9]+([.-][A-Za-z0-9.-]+)?$ ]] ||
    die "SEGSTREAM_KAFKA_VERSION='$KAFKA_VERSION' is not a Kafka 4.x version (e.g. $SEGSTREAM_KAFKA_VERSION_DEFAULT)"
  [[ "$LOCAL_DIR" != *,* ]] || die "SEGSTREAM_LOCAL_DIR must not contain a comma: $LOCAL_DIR"
}

# take_lock: serialise concurrent up/down runs on the same data folder.
take_lock() {
  mkdir -p "$LOCAL_DIR"
  # keep the data folder (default <repo>/.local) out of git
  [[ -e "$LOCAL_DIR/.gitignore" ]] || printf '*\n' >"$LOCAL_DIR/.gitignore"
  if command -v flock >/dev/null 2>&1; then
    # fd 9 must not leak into the servers (see kafka_launch/redis_launch),
    # otherwise they would hold the lock for as long as they run.
    exec 9>"$LOCAL_DIR/.lock"
    if ! flock -n 9; then
      info "waiting for another up/down on $LOCAL_DIR to finish ..."
      flock -w 600 9 || die "another up/down is still running on $LOCAL_DIR (lock $LOCAL_DIR/.lock)"
    fi
  fi
}

# ---------------------------------------------------------------------------
# Processes and ports
# ---------------------------------------------------------------------------
# read_pidfile FILE: prints the pid if FILE holds one.
read_pidfile() {
  local pid=""
  if [[ -r "$1" ]]; then
    read -r pid <"$1" 2>/dev/null || true
  fi
  [[ "$pid" =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
}

pid_alive() { [[ -n "${1:-}" && -d "/proc/$1" ]] && kill -0 "$1" 2>/dev/null; }

proc_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# kafka_pid: pid of *our* broker (from the pid file), or fails.
kafka_pid() {
  local pid
  pid="$(read_pidfile "$KAFKA_PIDFILE")" || return 1
  pid_alive "$pid" || return 1
  [[ "$(proc_cmdline "$pid")" == *kafka.Kafka*"$KAFKA_CONF/server.properties"* ]] || return 1
  printf '%s\n' "$pid"
}

# redis_pid: pid of *our* redis-server (from the pid file), or fails.
redis_pid() {
  local pid comm=""
  pid="$(read_pidfile "$REDIS_PIDFILE")" || return 1
  pid_alive "$pid" || return 1
  read -r comm <"/proc/$pid/comm" 2>/dev/null || true
  [[ "$comm" == redis-server* || "$(proc_cmdline "$pid")" == *redis-server* ]] || return 1
  printf '%s\n' "$pid"
}

# port_answers PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_answers() {
  # shellcheck disable=SC2016  # $1 is expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# port_in_use PORT: some process listens on PORT (any local address).
port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]] || port_answers "$1"
  else
    port_answers "$1"
  fi
}

# describe_port PORT: best-effort "who listens there" for error messages.
describe_port() {
  if command -v ss >/dev/null 2>&1; then
    ss -Htlnp "sport = :$1" 2>/dev/null | awk '{print "    " $4 "  " $6}' || true
  fi
}

# require_port_free PORT WHAT
require_port_free() {
  if port_in_use "$1"; then
    {
      printf '%s: error: port %s (%s) is already in use by another process:\n' "$PROG" "$1" "$2"
      describe_port "$1"
      printf '%s: stop that process or choose another port (see deploy/local/README.md).\n' "$PROG"
    } >&2
    exit 1
  fi
}

# stop_pid NAME PID: SIGTERM, wait up to STOP_TIMEOUT s, then SIGKILL.
stop_pid() {
  local name="$1" pid="$2" waited=0
  info "stopping $name (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  while pid_alive "$pid"; do
    if ((waited >= STOP_TIMEOUT * 10)); then
      warn "$name (pid $pid) did not exit ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      local k=0
      while pid_alive "$pid" && ((k < 50)); do
        sleep 0.1
        k=$((k + 1))
      done
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  if pid_alive "$pid"; then
    die "could not stop $name (pid $pid)"
  fi
  info "$name stopped"
}

# ---------------------------------------------------------------------------
# Java / Maven / Kafka
# ---------------------------------------------------------------------------
JAVA=""
KAFKA_LOG_MARK=0
KAFKA_OUT_MARK=0

require_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    JAVA="$(command -v java)"
  else
    die "java not found: Kafka $KAFKA_VERSION needs Java 17 or newer (Debian: apt-get install -y openjdk-17-jre-headless, or set JAVA_HOME)"
  fi
  local spec major
  spec="$("$JAVA" -XshowSettings:properties -version 2>&1 |
    awk -F'= ' '/java.specification.version/ {print $2; exit}')" || true
  case "$spec" in
    1.*) major="${spec#1.}" ;;
    *) major="${spec%%.*}" ;;
  esac
  if ! [[ "$major" =~ ^[0-9]+$ ]]; then
    die "could not determine the version of $JAVA (Kafka $KAFKA_VERSION needs Java 17 or newer)"
  fi
  if ((major < 17)); then
    die "$JAVA is Java $spec; Kafka $KAFKA_VERSION needs Java 17 or newer (Debian: apt-get install -y openjdk-17-jre-headless, or set JAVA_HOME)"
  fi
}

kafka_libs_present() {
  [[ -f "$KAFKA_LIBS/.complete" && -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]]
}

# kafka_fetch_libs: download broker + tools jars once per version via Maven.
kafka_fetch_libs() {
  if kafka_libs_present; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 ||
    die "mvn not found: it is needed once to download the Kafka $KAFKA_VERSION jars from Maven Central (Debian: apt-get install -y maven)"

  mkdir -p "$KAFKA_HOME/libs" "$KAFKA_LOGS"
  local tmp="$KAFKA_HOME/libs/.$KAFKA_VERSION.partial.$$"
  local log="$KAFKA_LOGS/mvn-download-$KAFKA_VERSION.log"
  rm -rf "$tmp"
  info "downloading Kafka $KAFKA_VERSION jars from Maven Central (once) ..."
  if ! mvn -B -q -Dstyle.color=never -f "$LIB_DIR/kafka-pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1; then
    rm -rf "$tmp"
    show_tail "$log" 25
    die "downloading the Kafka $KAFKA_VERSION jars with Maven failed (full log: $log). Check that version $KAFKA_VERSION of org.apache.kafka:kafka_2.13 and org.apache.kafka:kafka-tools exists on Maven Central (SEGSTREAM_KAFKA_VERSION) and that Maven Central is reachable."
  fi
  local jar
  for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar"; do
    if [[ ! -f "$tmp/$jar" ]]; then
      rm -rf "$tmp"
      die "Maven finished but $jar is missing (full log: $log)"
    fi
  done
  touch "$tmp/.complete"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  info "stored $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
}

# kafka_tool_argv CLASS ARGS...: sets KAFKA_TOOL_ARGV to the java command line
# that runs a Kafka CLI class with the downloaded jars.
kafka_tool_argv() {
  KAFKA_TOOL_ARGV=(
    "$JAVA" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$LIB_DIR/tools-log4j2.properties"
    -cp "$KAFKA_LIBS/*" "$@"
  )
}

# kafka_tool CLASS ARGS...: run a Kafka CLI class with the downloaded jars.
kafka_tool() {
  kafka_tool_argv "$@"
  "${KAFKA_TOOL_ARGV[@]}"
}

# render TEMPLATE OUT KEY=VALUE...: replace @KEY@ placeholders.
render() {
  local template="$1" out="$2" content kv key value
  shift 2
  content="$(<"$template")"
  for kv in "$@"; do
    key="${kv%%=*}"
    value="${kv#*=}"
    content="${content//@"$key"@/"$value"}"
  done
  printf '%s\n' "$content" >"$out.tmp"
  mv "$out.tmp" "$out"
}

kafka_write_config() {
  mkdir -p "$KAFKA_CONF" "$KAFKA_DATA" "$KAFKA_LOGS"
  render "$LIB_DIR/server.properties.template" "$KAFKA_CONF/server.properties" \
    "KAFKA_PORT=$KAFKA_PORT" "CONTROLLER_PORT=$CONTROLLER_PORT" "DATA_DIR=$KAFKA_DATA"
  cp "$LIB_DIR/log4j2.properties" "$KAFKA_CONF/log4j2.properties"
  cat >"$KAFKA_CONF/admin-probe.properties" <<'EOF'
# admin client settings for the readiness probe of deploy/local/up
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

# kafka_format_storage: format log.dirs once (cluster id generated once, kept).
kafka_format_storage() {
  if [[ -f "$KAFKA_DATA/meta.properties" ]]; then
    return 0
  fi
  local cluster_id="" log="$KAFKA_LOGS/storage-format.log"
  if [[ -s "$KAFKA_CLUSTER_ID_FILE" ]]; then
    read -r cluster_id <"$KAFKA_CLUSTER_ID_FILE"
  else
    cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"$log" | tail -n 1)" ||
      die "could not generate a Kafka cluster id (see $log)"
    [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] ||
      die "unexpected cluster id from StorageTool: '$cluster_id' (see $log)"
    printf '%s\n' "$cluster_id" >"$KAFKA_CLUSTER_ID_FILE"
  fi
  info "formatting Kafka storage in $KAFKA_DATA (cluster id $cluster_id) ..."
  if ! kafka_tool kafka.tools.StorageTool format --standalone \
    --config "$KAFKA_CONF/server.properties" --cluster-id "$cluster_id" >>"$log" 2>&1; then
    show_tail "$log"
    die "formatting Kafka storage failed (full log: $log)"
  fi
}

kafka_launch() {
  mkdir -p "$KAFKA_LOGS"
  local -a heap jvm
  read -r -a heap <<<"$KAFKA_HEAP"
  jvm=(
    "${heap[@]}"
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true
    -Dkafka.logs.dir="$KAFKA_LOGS"
    -Dlog4j2.configurationFile="$KAFKA_CONF/log4j2.properties"
    -cp "$KAFKA_LIBS/*"
    kafka.Kafka "$KAFKA_CONF/server.properties"
  )
  rm -f "$KAFKA_PIDFILE"
  printf '\n===== %s: starting Kafka %s =====\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$KAFKA_VERSION" >>"$KAFKA_OUT"
  # remember where this run's output starts, for error messages
  KAFKA_LOG_MARK="$(line_count "$KAFKA_SERVER_LOG")"
  KAFKA_OUT_MARK="$(line_count "$KAFKA_OUT")"
  # The inner bash writes its own pid (which exec turns into the JVM's pid), so
  # the pid file is right whether or not setsid forks. New session: no SIGHUP
  # when the terminal that ran `up` goes away.
  local -a detach=()
  if command -v setsid >/dev/null 2>&1; then
    detach=(setsid)
  else
    detach=(nohup)
  fi
  # shellcheck disable=SC2016  # $$, $0 and $@ belong to the inner bash
  (cd "$KAFKA_HOME" &&
    exec "${detach[@]}" bash -c 'echo "$$" >"$0"; exec "$@"' "$KAFKA_PIDFILE" "$JAVA" "${jvm[@]}" \
      </dev/null >>"$KAFKA_OUT" 2>&1 9>&-) &
  local i=0
  while [[ ! -s "$KAFKA_PIDFILE" ]] && ((i < 100)); do
    sleep 0.1
    i=$((i + 1))
  done
  [[ -s "$KAFKA_PIDFILE" ]] || die "Kafka did not start (no pid file); see $KAFKA_OUT"
  info "kafka started (pid $(read_pidfile "$KAFKA_PIDFILE")), waiting for it to serve metadata on 127.0.0.1:$KAFKA_PORT ..."
}

# kafka_wait_ready DEADLINE(epoch s): port open + TopicCommand --list works.
kafka_wait_ready() {
  local deadline="$1" pid probe_err="$KAFKA_LOGS/ready-probe.err"
  pid="$(read_pidfile "$KAFKA_PIDFILE")" || die "Kafka pid file $KAFKA_PIDFILE vanished"
  kafka_tool_argv org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    --command-config "$KAFKA_CONF/admin-probe.properties" --list
  while :; do
    if ! pid_alive "$pid"; then
      show_new "$KAFKA_SERVER_LOG" "$KAFKA_LOG_MARK" 30
      show_new "$KAFKA_OUT" "$KAFKA_OUT_MARK" 15
      die "Kafka (pid $pid) exited during startup; see $KAFKA_SERVER_LOG and $KAFKA_OUT"
    fi
    if port_answers "$KAFKA_PORT" &&
      timeout 30 "${KAFKA_TOOL_ARGV[@]}" >/dev/null 2>"$probe_err"; then
      return 0
    fi
    if (($(date +%s) >= deadline)); then
      show_new "$KAFKA_SERVER_LOG" "$KAFKA_LOG_MARK" 30
      show_tail "$probe_err" 10
      die "Kafka did not become ready on 127.0.0.1:$KAFKA_PORT within ${START_TIMEOUT}s; it is still running as pid $pid (stop it with deploy/local/down). Logs: $KAFKA_SERVER_LOG, $KAFKA_OUT"
    fi
    sleep 1
  done
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------
REDIS_SERVER=""
REDIS_CLI=""

require_redis() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    install_redis
  fi
  REDIS_SERVER="$(command -v redis-server)" || die "redis-server not found after installing it"
  REDIS_CLI="$(command -v redis-cli)" || die "redis-cli not found after installing it"
}

install_redis() {
  local -a sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 ||
      die "redis-server is not installed and we are not root (install it: apt-get install -y redis-server)"
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "redis-server is not installed and apt-get is unavailable; install Redis >= 7 so that redis-server and redis-cli are on PATH"
  mkdir -p "$REDIS_HOME"
  local log="$REDIS_HOME/apt-install.log"
  info "redis-server not found: installing Debian's redis-server package (log: $log) ..."
  if ! { "${sudo[@]}" apt-get update && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y redis-server; } >"$log" 2>&1; then
    show_tail "$log"
    die "apt-get install redis-server failed (full log: $log)"
  fi
  # The package may enable/start the system-wide redis on 6379; we run our own.
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    if "${sudo[@]}" systemctl is-active --quiet redis-server 2>/dev/null; then
      info "stopping and disabling the system redis-server service (segstream runs its own redis)"
      "${sudo[@]}" systemctl disable --now redis-server >>"$log" 2>&1 || warn "could not stop the system redis-server service"
    fi
  fi
}

# redis_write_users: the ACL users segstream runs as.
#   segworker: reads and writes seg:* (the worker, its Lua scripts, `segstream keys`);
#   segapi:    reads seg:* with the commands the lookup API sends, nothing else (its lookup
#              script runs as EVAL_RO/EVALSHA_RO, where Redis refuses any write);
#   default:   left open without a password on this loopback-only dev server (tests and
#              redis-cli use it); a production server turns it off (docs/reference/security.md).
# Passwords are made once (mode 600); users.acl holds only their SHA-256 digests, and
# credentials.env holds the SEGSTREAM_* URLs for `set -a; . credentials.env`.
redis_write_users() {
  mkdir -p "$REDIS_HOME"
  if [[ ! -s "$REDIS_PASSWORDS" ]]; then
    (umask 077 && printf '%s\n%s\n' "$(new_secret)" "$(new_secret)" >"$REDIS_PASSWORDS")
  fi
  local worker_pw api_pw
  { read -r worker_pw && read -r api_pw; } <"$REDIS_PASSWORDS"
  [[ -n "$worker_pw" && -n "$api_pw" ]] || die "$REDIS_PASSWORDS is damaged; delete it and run up again"
  {
    echo "user default on nopass ~* &* +@all"
    echo "user segworker on #$(sha256 "$worker_pw") ~seg:* resetchannels -@all +@read +@write +@scripting +@transaction +ping -@dangerous"
    echo "user segapi on #$(sha256 "$api_pw") ~seg:* resetchannels -@all +hgetall +hmget +get +scard +sscan +ping +evalsha_ro +eval_ro"
  } >"$REDIS_ACL.tmp"
  mv "$REDIS_ACL.tmp" "$REDIS_ACL"
  (
    umask 077
    {
      printf 'SEGSTREAM_REDIS_URL=redis://segworker:%s@127.0.0.1:%s/0\n' "$worker_pw" "$REDIS_PORT"
      printf 'SEGSTREAM_API_REDIS_URL=redis://segapi:%s@127.0.0.1:%s/0\n' "$api_pw" "$REDIS_PORT"
    } >"$REDIS_CREDENTIALS.tmp"
  )
  mv "$REDIS_CREDENTIALS.tmp" "$REDIS_CREDENTIALS"
}

new_secret() {
  od -An -tx1 -N24 /dev/urandom | tr -d ' \n'
}

sha256() {
  printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

# redis_reload_users: a running server picks up users.acl (it was started with it).
redis_reload_users() {
  if ! "${REDIS_CLI:-redis-cli}" -h 127.0.0.1 -p "$REDIS_PORT" ACL LOAD 2>&1 | grep -q '^OK$'; then
    warn "redis did not load $REDIS_ACL (started before it had one?): restart it with 'deploy/local/down redis && deploy/local/up redis'"
  fi
}

redis_launch() {
  mkdir -p "$REDIS_HOME"
  render "$LIB_DIR/redis.conf.template" "$REDIS_CONF" \
    "REDIS_PORT=$REDIS_PORT" "REDIS_DIR=$REDIS_HOME"
  redis_write_users
  rm -f "$REDIS_PIDFILE"
  # daemonize yes: redis-server forks, writes redis.pid and returns.
  if ! (cd "$REDIS_HOME" && "$REDIS_SERVER" "$REDIS_CONF" </dev/null >>"$REDIS_HOME/redis.out" 2>&1 9>&-); then
    show_tail "$REDIS_HOME/redis.out"
    show_tail "$REDIS_LOG"
    die "redis-server failed to start; see $REDIS_LOG"
  fi
  local i=0
  while [[ ! -s "$REDIS_PIDFILE" ]] && ((i < 100)); do
    sleep 0.1
    i=$((i + 1))
  done
  info "redis started (pid $(read_pidfile "$REDIS_PIDFILE" || echo '?')), waiting for PONG on 127.0.0.1:$REDIS_PORT ..."
}

redis_ping() {
  [[ "$(timeout 3 "${REDIS_CLI:-redis-cli}" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

redis_wait_ready() {
  local deadline="$1" since
  since="$(date +%s)"
  while ! redis_ping; do
    # redis.pid is written right after the fork; no live pid after a few
    # seconds means it died (port clash, bad config, ...).
    if ! redis_pid >/dev/null && (($(date +%s) - since >= 5)); then
      show_tail "$REDIS_LOG"
      die "redis-server exited during startup; see $REDIS_LOG"
    fi
    if (($(date +%s) >= deadline)); then
      show_tail "$REDIS_LOG"
      die "redis did not answer PING on 127.0.0.1:$REDIS_PORT within ${START_TIMEOUT}s; see $REDIS_LOG"
    fi
    sleep 0.2
  done
}
