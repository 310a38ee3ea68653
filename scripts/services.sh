#!/usr/bin/env bash
# Real Apache Kafka (KRaft, one node) and PostgreSQL on 127.0.0.1 for the distributed mode's integration
# tests and CI. No Docker needed: Kafka's jars come from Maven Central through Maven, PostgreSQL from
# Debian's packages; both run as plain background processes with their state in a cache outside git.
# `up` also installs Debian's prometheus-alertmanager and prometheus (with promtool), which the notification
# and metrics tests start privately (each on a free port of its own, tests/support/alertmanager.py and
# tests/support/prometheus.py): this script never runs one. `install-prometheus` installs only those two.
#
#   scripts/services.sh up                       install what is missing, start both, wait until they serve
#   scripts/services.sh down                     stop both (Kafka: SIGTERM; PostgreSQL: pg_ctl stop -m fast)
#   scripts/services.sh status                   say whether each runs (exit 0 only if both do)
#   scripts/services.sh env                      print the export lines for the tests: eval "$(... env)"
#   scripts/services.sh install-prometheus       install Alertmanager, Prometheus and promtool (no server started)
#   scripts/services.sh kafka-class CLASS ARGS   run a Java class on the broker's classpath, e.g.
#       scripts/services.sh kafka-class org.apache.kafka.tools.ProducerPerformance --topic t \
#           --num-records 100000 --record-size 1000 --throughput -1 --producer-props bootstrap.servers=127.0.0.1:9092
#
# Environment (all optional):
#   AUDITWATCH_CACHE                  state and downloads (default ~/.cache/auditwatch)
#   AUDITWATCH_KAFKA_VERSION          default 4.4.0 (any 4.x that Maven Central serves)
#   AUDITWATCH_KAFKA_PORT             client listener (default 9092)
#   AUDITWATCH_KAFKA_CONTROLLER_PORT  KRaft controller listener (default 9093)
#   AUDITWATCH_PG_PORT                default 5432
#   AUDITWATCH_PG_DATA                PostgreSQL data dir (default: under the cache, see pg_data_dir below)
#
# PostgreSQL here is a LOCAL TEST SERVER: it listens on 127.0.0.1 only and trusts every connection from
# 127.0.0.1 (no password), so anything on this machine can connect as any role. Never use it for real data.
#
# If something else already listens on the PostgreSQL port, `up` reuses it when it lets us in without a
# password (as role postgres, to create role and database auditwatch, or directly as auditwatch); otherwise
# it stops with a message naming AUDITWATCH_PG_PORT. A foreign server is never stopped by `down`.
# A foreign process on a Kafka port is never reused: `up` stops with a message.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${AUDITWATCH_CACHE:-$HOME/.cache/auditwatch}"
HOST=127.0.0.1

KAFKA_VERSION="${AUDITWATCH_KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${AUDITWATCH_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${AUDITWATCH_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"        # downloaded jars, reusable across data dirs
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DIR="$CACHE/kafka"                         # config, pid, logs and data of the broker
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
KAFKA_CONF="$KAFKA_DIR/server.properties"
KAFKA_START_TIMEOUT=90                           # seconds until the broker must answer a metadata request
KAFKA_STOP_TIMEOUT=60

PG_PORT="${AUDITWATCH_PG_PORT:-5432}"
PG_DB=auditwatch
PG_ROLE=auditwatch

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$PG_PORT"; do
    if ! [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then die "not a TCP port: $port"; fi
done
[[ "$KAFKA_VERSION" =~ ^4\.[0-9]+\.[0-9]+$ ]] || die "AUDITWATCH_KAFKA_VERSION must be a Kafka 4.x version, not $KAFKA_VERSION"

# ---------------------------------------------------------------------------------------------- helpers

port_open() { # port -> 0 if something accepts TCP connections on 127.0.0.1:port
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

as_root() {
    if ((EUID == 0)); then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root for: $*"
    fi
}

apt_install() {
    log "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

lock() { # one `up`/`down` at a time (parallel test runs may all call `up`); servers must not inherit fd 9
    mkdir -p "$CACHE"
    exec 9>"$CACHE/services.lock"
    if ! flock -n 9; then
        log "waiting for another services.sh (lock $CACHE/services.lock)"
        flock -w 300 9 || die "another services.sh held $CACHE/services.lock for 300 s"
    fi
}

# ---------------------------------------------------------------------------------------------- Kafka

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then echo "$JAVA_HOME/bin/java"; else echo java; fi
}

ensure_java_maven() {
    if ! command -v "$(java_bin)" >/dev/null; then apt_install openjdk-17-jre-headless; fi
    local major
    major="$("$(java_bin)" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    [[ "${major%%.*}" -ge 17 ]] 2>/dev/null || die "Kafka 4 needs Java 17 or newer; $(java_bin) is ${major:-unknown}"
    if ! command -v mvn >/dev/null; then apt_install maven; fi
}

ensure_kafka_libs() {
    # The jars are fetched once per version (and again if pom.xml changes): a stamp with the pom's hash
    # marks a complete download, written only after Maven succeeded into a temporary directory.
    local pom="$ROOT/scripts/kafka/pom.xml" stamp="$KAFKA_HOME/.complete" want
    want="$(sha256sum "$pom" | cut -d' ' -f1) $KAFKA_VERSION"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
    ensure_java_maven
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
    mkdir -p "$KAFKA_HOME"
    rm -rf "$KAFKA_LIBS.tmp"
    if ! timeout 600 mvn -q -B -Dstyle.color=never -f "$pom" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS.tmp" -DincludeScope=runtime \
        >"$KAFKA_HOME/mvn.log" 2>&1; then
        tail -n 40 "$KAFKA_HOME/mvn.log" >&2
        die "Maven could not fetch Kafka $KAFKA_VERSION (log: $KAFKA_HOME/mvn.log)"
    fi
    [[ -f "$KAFKA_LIBS.tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "Maven fetched no kafka_2.13 jar"
    rm -rf "$KAFKA_LIBS"
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
    echo "$want" >"$stamp"
    log "Kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars, $(du -sh "$KAFKA_LIBS" | cut -f1)"
}

write_kafka_config() {
    mkdir -p "$KAFKA_DATA" "$KAFKA_DIR/logs"
    cat >"$KAFKA_CONF.tmp" <<EOF
# Written by scripts/services.sh (rewritten on every \`up\`): one node, KRaft combined mode, 127.0.0.1 only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=24
log.segment.bytes=67108864
num.network.threads=2
num.io.threads=4
EOF
    mv "$KAFKA_CONF.tmp" "$KAFKA_CONF"
    # the broker logs to a file in its directory; the tools (kafka-class) log warnings to stderr
    cat >"$KAFKA_DIR/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <RollingFile name="server" fileName="$KAFKA_DIR/logs/server.log" filePattern="$KAFKA_DIR/logs/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="20 MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
  </Loggers>
</Configuration>
EOF
    cat >"$KAFKA_DIR/tools-log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Root level="WARN"><AppenderRef ref="stderr"/></Root>
  </Loggers>
</Configuration>
EOF
}

tool_cmd() { # the java command line for a class on the broker's classpath; tools log warnings to stderr
    TOOL=("$(java_bin)" -Xmx512m -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.xml" -cp "$KAFKA_LIBS/*")
}

kafka_pid() { # the broker's pid if our broker runs, else nothing (guards against pid reuse)
    local pid
    [[ -f "$KAFKA_PIDFILE" ]] || return 0
    pid="$(cat "$KAFKA_PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "kafka.Kafka $KAFKA_CONF"; then echo "$pid"; fi
}

kafka_conf_port() { # the client port in the broker's current server.properties
    sed -n 's#^listeners=PLAINTEXT://[^:]*:\([0-9]*\),.*#\1#p' "$KAFKA_CONF" 2>/dev/null
}

kafka_serves() { # a metadata round trip, bounded
    local TOOL
    tool_cmd
    timeout 30 "${TOOL[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$KAFKA_PORT" --list \
        >/dev/null 2>&1
}

kafka_up() {
    local pid
    pid="$(kafka_pid)"
    if [[ -n "$pid" && "$(kafka_conf_port)" != "$KAFKA_PORT" ]]; then
        die "our broker (pid $pid) runs with port $(kafka_conf_port) from $KAFKA_CONF, not $KAFKA_PORT:" \
            "run \`down\` with the old AUDITWATCH_KAFKA_PORT first, or use another AUDITWATCH_CACHE"
    fi
    if [[ -n "$pid" ]] && port_open "$KAFKA_PORT"; then
        log "Kafka already runs (pid $pid) on $HOST:$KAFKA_PORT"
        return 0
    fi
    ensure_kafka_libs
    if [[ -z "$pid" ]]; then
        for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
            if port_open "$port"; then
                die "something else listens on $HOST:$port (not our broker: no live pid in $KAFKA_PIDFILE);" \
                    "stop it or choose AUDITWATCH_KAFKA_PORT / AUDITWATCH_KAFKA_CONTROLLER_PORT"
            fi
        done
    fi
    [[ -n "$pid" ]] || write_kafka_config

    if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
        local cluster_id TOOL
        tool_cmd
        if [[ ! -s "$KAFKA_DIR/cluster-id" ]]; then
            timeout 60 "${TOOL[@]}" kafka.tools.StorageTool random-uuid >"$KAFKA_DIR/cluster-id.tmp"
            mv "$KAFKA_DIR/cluster-id.tmp" "$KAFKA_DIR/cluster-id"
        fi
        cluster_id="$(tr -d '[:space:]' <"$KAFKA_DIR/cluster-id")"
        log "formatting Kafka storage in $KAFKA_DATA (cluster id $cluster_id)"
        if ! timeout 120 "${TOOL[@]}" kafka.tools.StorageTool format --ignore-formatted \
            -t "$cluster_id" -c "$KAFKA_CONF" >"$KAFKA_DIR/logs/format.log" 2>&1; then
            cat "$KAFKA_DIR/logs/format.log" >&2
            die "formatting Kafka storage failed"
        fi
    fi

    if [[ -z "$pid" ]]; then
        log "starting Kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT)"
        # setsid: the broker gets its own session, so it outlives this script and its terminal
        setsid "$(java_bin)" -Xmx512m -Xms512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
            -Djava.awt.headless=true -Dkafka.logs.dir="$KAFKA_DIR/logs" \
            -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.xml" \
            -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" \
            </dev/null >"$KAFKA_DIR/logs/kafka.out" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$KAFKA_PIDFILE"
    fi

    local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) tries=0
    while ((SECONDS < deadline && tries < 200)); do
        tries=$((tries + 1))
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$KAFKA_DIR/logs/kafka.out" "$KAFKA_DIR/logs/server.log" >&2 2>/dev/null || true
            rm -f "$KAFKA_PIDFILE"
            die "the Kafka broker exited during startup (logs in $KAFKA_DIR/logs)"
        fi
        if port_open "$KAFKA_PORT" && kafka_serves; then
            log "Kafka serves on $HOST:$KAFKA_PORT (pid $pid)"
            return 0
        fi
        sleep 1
    done
    tail -n 30 "$KAFKA_DIR/logs/server.log" >&2 2>/dev/null || true
    die "Kafka did not answer a metadata request within ${KAFKA_START_TIMEOUT} s (pid $pid, logs in $KAFKA_DIR/logs)"
}

kafka_down() {
    local pid
    pid="$(kafka_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$KAFKA_PIDFILE"
        log "Kafka is not running"
        return 0
    fi
    log "stopping Kafka (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT)) tries=0
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline && tries < 600)); do
        tries=$((tries + 1))
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "Kafka did not exit within ${KAFKA_STOP_TIMEOUT} s of SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
    fi
    rm -f "$KAFKA_PIDFILE"
    log "Kafka stopped"
}

# ---------------------------------------------------------------------------------------------- PostgreSQL

pg_bin_dir() { # the newest installed server's bin dir, or nothing
    local d
    d="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$d" ]] && dirname "$d"
    return 0
}

as_pg() { # run a PostgreSQL server command as the user that owns the cluster
    if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_data_dir() {
    # Under the cache unless the postgres OS user cannot reach it (root's home is usually mode 0700):
    # then in the postgres user's home, as Debian's own clusters are. Never chmod root's home.
    if [[ -n "${AUDITWATCH_PG_DATA:-}" ]]; then echo "$AUDITWATCH_PG_DATA"; return; fi
    if ((EUID != 0)); then echo "$CACHE/postgres-$PG_PORT/data"; return; fi
    mkdir -p "$CACHE"
    if runuser -u postgres -- test -x "$CACHE" 2>/dev/null; then
        echo "$CACHE/postgres-$PG_PORT/data"
    else
        echo "$(getent passwd postgres | cut -d: -f6)/auditwatch-$PG_PORT/data"
    fi
}

pg_running_ours() { # 0 if our cluster runs
    local bin="$1" data="$2"
    [[ -f "$data/postmaster.pid" ]] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

psql_tcp() { # user db sql... -> runs without a password prompt, bounded
    local user="$1" db="$2"
    shift 2
    PGCONNECT_TIMEOUT=5 timeout 30 psql -X -q -w -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U "$user" -d "$db" -At "$@"
}

pg_bootstrap_db() { # as role postgres over TCP: role and database auditwatch, idempotent
    if [[ "$(psql_tcp postgres postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'")" != 1 ]]; then
        log "creating role $PG_ROLE"
        psql_tcp postgres postgres -c "CREATE ROLE $PG_ROLE LOGIN SUPERUSER"
    fi
    if [[ "$(psql_tcp postgres postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]]; then
        log "creating database $PG_DB"
        psql_tcp postgres postgres -c "CREATE DATABASE $PG_DB OWNER $PG_ROLE ENCODING 'UTF8' TEMPLATE template0"
    fi
    [[ "$(psql_tcp "$PG_ROLE" "$PG_DB" -c 'SELECT 1')" == 1 ]] || die "cannot connect as $PG_ROLE to $PG_DB"
}

pg_up() {
    local bin data
    bin="$(pg_bin_dir)"
    if [[ -z "$bin" ]]; then
        apt_install postgresql
        bin="$(pg_bin_dir)"
        [[ -n "$bin" ]] || die "installed package postgresql, but found no /usr/lib/postgresql/*/bin/postgres"
    fi
    command -v psql >/dev/null || apt_install postgresql-client
    data="$(pg_data_dir)"

    if pg_running_ours "$bin" "$data"; then
        log "PostgreSQL already runs ($data) on $HOST:$PG_PORT"
        pg_bootstrap_db
        return 0
    fi
    if port_open "$PG_PORT"; then
        # not ours: reuse it if it lets us in without a password, else refuse
        if psql_tcp postgres postgres -c 'SELECT 1' >/dev/null 2>&1; then
            log "reusing the PostgreSQL server that already listens on $HOST:$PG_PORT (not started by this script)"
            pg_bootstrap_db
            return 0
        fi
        if [[ "$(psql_tcp "$PG_ROLE" "$PG_DB" -c 'SELECT 1' 2>/dev/null)" == 1 ]]; then
            log "reusing the PostgreSQL server on $HOST:$PG_PORT: role $PG_ROLE reaches database $PG_DB"
            return 0
        fi
        die "something else listens on $HOST:$PG_PORT and does not let role postgres or $PG_ROLE in without" \
            "a password; stop it (a distro cluster: pg_ctlcluster <version> main stop) or set AUDITWATCH_PG_PORT"
    fi

    local owner=postgres
    ((EUID == 0)) || owner="$(id -un)"
    local top
    top="$(dirname "$data")"
    mkdir -p "$top"
    chown "$owner:" "$top" 2>/dev/null || true
    chmod 0700 "$top"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        log "initdb $data ($("$bin/postgres" --version))"
        rm -rf "$data"
        as_pg "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=trust \
            --encoding=UTF8 --no-locale >"$top/initdb.log" 2>&1 \
            || { cat "$top/initdb.log" >&2; die "initdb failed"; }
        echo "include_if_exists = 'auditwatch.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
    fi
    # rewritten on every `up`, so a changed port takes effect
    as_pg mkdir -p "$top/run"
    as_pg tee "$data/auditwatch.conf" >/dev/null <<EOF
# Written by scripts/services.sh: a local test server, 127.0.0.1 only.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$top/run'
max_connections = 200
EOF
    # LOCAL TEST SERVER: trust everything from 127.0.0.1 and the private socket directory
    as_pg tee "$data/pg_hba.conf" >/dev/null <<EOF
# Written by scripts/services.sh: a local test server; no passwords, 127.0.0.1 only.
local all all trust
host  all all 127.0.0.1/32 trust
EOF
    log "starting PostgreSQL on $HOST:$PG_PORT ($data)"
    as_pg "$bin/pg_ctl" -D "$data" -l "$top/postgresql.log" -w -t 60 start >/dev/null 9>&- \
        || { tail -n 30 "$top/postgresql.log" >&2; die "PostgreSQL did not start (log: $top/postgresql.log)"; }
    pg_bootstrap_db
    log "PostgreSQL serves on $HOST:$PG_PORT"
}

pg_down() {
    local bin data
    bin="$(pg_bin_dir)"
    data="$(pg_data_dir)"
    if [[ -n "$bin" ]] && pg_running_ours "$bin" "$data"; then
        log "stopping PostgreSQL ($data)"
        as_pg "$bin/pg_ctl" -D "$data" stop -m fast -w -t 60 >/dev/null
        log "PostgreSQL stopped"
    elif port_open "$PG_PORT"; then
        log "PostgreSQL on $HOST:$PG_PORT was not started by this script: left running"
    else
        log "PostgreSQL is not running"
    fi
}

# ---------------------------------------------------------------------------------------------- Alertmanager

alertmanager_install() { # the binary for the tests; the package's own service must not run (port 9093 is Kafka's)
    if command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null; then return 0; fi
    apt_install prometheus-alertmanager
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        as_root systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
    fi
    command -v prometheus-alertmanager >/dev/null || die "installed prometheus-alertmanager, but found no binary"
    log "Alertmanager: $(prometheus-alertmanager --version 2>&1 | sed -n 1p)"
}

prometheus_install() { # prometheus and promtool for the metrics tests; the package's service must not hold 9090
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then return 0; fi
    apt_install prometheus
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/prometheus ]] && command -v update-rc.d >/dev/null; then
        as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true  # in case the package's postinst started it
        as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
    command -v prometheus >/dev/null || die "installed prometheus, but found no binary"
    command -v promtool >/dev/null || die "installed prometheus, but found no promtool"
    log "Prometheus: $(prometheus --version 2>&1 | sed -n 1p)"
}

# ---------------------------------------------------------------------------------------------- commands

cmd_status() {
    local ok=0 pid bin data
    pid="$(kafka_pid)"
    if [[ -n "$pid" && "$(kafka_conf_port)" != "$KAFKA_PORT" ]]; then
        echo "kafka: running on $HOST:$(kafka_conf_port), not on AUDITWATCH_KAFKA_PORT=$KAFKA_PORT (pid $pid, $KAFKA_CONF)"; ok=1
    elif [[ -n "$pid" ]] && port_open "$KAFKA_PORT"; then
        echo "kafka: running (pid $pid, $HOST:$KAFKA_PORT, version $KAFKA_VERSION, data $KAFKA_DATA)"
    elif [[ -n "$pid" ]]; then
        echo "kafka: starting (pid $pid, $HOST:$KAFKA_PORT not open yet)"; ok=1
    elif port_open "$KAFKA_PORT"; then
        echo "kafka: not ours, but something listens on $HOST:$KAFKA_PORT"; ok=1
    else
        echo "kafka: stopped"; ok=1
    fi
    bin="$(pg_bin_dir)"
    data="$(pg_data_dir)"
    if [[ -n "$bin" ]] && pg_running_ours "$bin" "$data"; then
        echo "postgres: running (pid $(head -n 1 "$data/postmaster.pid"), $HOST:$PG_PORT, $("$bin/postgres" --version), data $data)"
    elif port_open "$PG_PORT"; then
        echo "postgres: running (not started by this script) on $HOST:$PG_PORT"
    else
        echo "postgres: stopped"; ok=1
    fi
    return "$ok"
}

cmd_env() {
    echo "export AUDITWATCH_KAFKA_BOOTSTRAP=$HOST:$KAFKA_PORT"
    echo "export AUDITWATCH_DB_URL=postgresql+psycopg://$PG_ROLE@$HOST:$PG_PORT/$PG_DB"
    echo "export AUDITWATCH_KAFKA_LIBS=$KAFKA_LIBS"
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        up)
            lock
            local t0=$SECONDS
            pg_up
            alertmanager_install
            prometheus_install
            kafka_up
            log "up in $((SECONDS - t0)) s"
            ;;
        down)
            lock
            kafka_down
            pg_down
            ;;
        install-prometheus)
            lock
            alertmanager_install
            prometheus_install
            ;;
        status) cmd_status ;;
        env) cmd_env ;;
        kafka-class)
            (($# >= 1)) || die "usage: $0 kafka-class CLASS [ARGS...]"
            ensure_kafka_libs
            [[ -f "$KAFKA_DIR/tools-log4j2.xml" ]] || write_kafka_config
            local TOOL
            tool_cmd
            exec "${TOOL[@]}" "$@"
            ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
