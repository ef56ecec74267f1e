#!/usr/bin/env bash
# Start, stop or query a private RabbitMQ broker whose data, logs, pid file and Erlang
# cookie all live under one folder, so several brokers can run side by side on one
# machine (tests, benchmarks, a single-machine deployment) without systemd.
#
#   deploy/rabbitmq/rabbitmq.sh start  DIR PORT   install if missing, start, wait until ready
#   deploy/rabbitmq/rabbitmq.sh stop   DIR PORT   stop cleanly (SIGTERM to the beam process)
#   deploy/rabbitmq/rabbitmq.sh status DIR PORT   exit 0 when running and ready, 3 otherwise
#   deploy/rabbitmq/rabbitmq.sh import DIR PORT FILE   load a definitions file (topology)
#
# A 3-node cluster on loopback, each node under DIR/nodeN on port BASEPORT+N-1 (N = 1..3),
# all sharing one Erlang cookie (DIR/.erlang.cookie) and the settings of cluster.conf:
#
#   deploy/rabbitmq/rabbitmq.sh cluster-start  DIR BASEPORT     start the 3 nodes, joined
#   deploy/rabbitmq/rabbitmq.sh cluster-stop   DIR BASEPORT     stop every node (SIGTERM)
#   deploy/rabbitmq/rabbitmq.sh cluster-status DIR BASEPORT     exit 0 when 3 nodes run, joined
#   deploy/rabbitmq/rabbitmq.sh node-kill      DIR BASEPORT N   kill -9 node N (a crash)
#   deploy/rabbitmq/rabbitmq.sh node-start     DIR BASEPORT N   start node N again (it rejoins)
#
# The node is named rabbit-PORT@localhost; Erlang distribution listens on PORT+20000.
# `start` on a running broker returns 0; `stop` on a stopped broker returns 0.
#
# AMQPS: with RABBITMQ_TLS_PORT set, `start` also opens a TLS listener on that port,
# serving RABBITMQ_TLS_CERT (PEM chain) with RABBITMQ_TLS_KEY (PEM key) and naming
# RABBITMQ_TLS_CACERT (PEM) as the CA; clients are not asked for a certificate unless
# RABBITMQ_TLS_VERIFY_PEER=1. These are read when DIR has no configuration yet (the
# first start); later starts reuse DIR/rabbitmq.conf.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop|status DIR PORT, $0 import DIR PORT FILE," >&2
    echo "       $0 cluster-start|cluster-stop|cluster-status DIR BASEPORT, $0 node-kill|node-start DIR BASEPORT N" >&2
    exit 2
}

here=$(cd "$(dirname "$0")" && pwd)
cluster_size=3

# The cluster commands call this script once per node (each node is a single broker
# whose configuration names its peers), so start/stop/readiness stay in one place.
cluster_node_conf() {
    local base=$1 n=$2 i
    cat <<CONF
listeners.tcp.1 = 127.0.0.1:$((base + n - 1))
loopback_users = none
log.file.level = warning
log.console = false
# The peers: a node started after the first joins it at its first boot (classic
# config peer discovery), without the stop_app/join_cluster/start_app dance.
cluster_formation.peer_discovery_backend = classic_config
CONF
    for i in $(seq 1 "$cluster_size"); do
        echo "cluster_formation.classic_config.nodes.$i = rabbit-$((base + i - 1))@localhost"
    done
    cat "$here/cluster.conf"
}

cluster() {
    local action=$1 dir=$2 base=$3 n=${4:-}
    case $base in '' | *[!0-9]*) echo "rabbitmq.sh: BASEPORT must be a number" >&2; exit 2 ;; esac
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local self="$here/rabbitmq.sh" i
    node_prepare() {
        local nd="$dir/node$1"
        mkdir -p "$nd"
        [ -f "$nd/rabbitmq.conf" ] || cluster_node_conf "$base" "$1" >"$nd/rabbitmq.conf"
        if [ ! -f "$nd/.erlang.cookie" ]; then
            install -m 400 "$dir/.erlang.cookie" "$nd/.erlang.cookie"
        fi
    }
    case $action in
        cluster-start)
            if [ ! -f "$dir/.erlang.cookie" ]; then
                head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/.erlang.cookie"
                chmod 400 "$dir/.erlang.cookie"
            fi
            for i in $(seq 1 "$cluster_size"); do node_prepare "$i"; done
            # At the first start, the first node alone (it finds no peer and forms the
            # cluster), then the others at once: each finds the first and joins it. A
            # cluster that ran before starts all at once: a node waits at boot for the
            # peers it last saw, so one alone would wait for the others.
            local first=2
            if [ -d "$dir/node1/mnesia" ] && [ -n "$(ls -A "$dir/node1/mnesia" 2>/dev/null)" ]; then
                first=1
            else
                "$self" start "$dir/node1" "$base"
            fi
            local pids=()
            for i in $(seq "$first" "$cluster_size"); do
                "$self" start "$dir/node$i" $((base + i - 1)) &
                pids+=($!)
            done
            local failed=0
            for i in "${pids[@]}"; do wait "$i" || failed=1; done
            [ "$failed" = 0 ] || { echo "rabbitmq.sh: a cluster node did not start" >&2; exit 1; }
            cluster_joined "$dir" "$base" 600 || {
                echo "rabbitmq.sh: the nodes started but did not join one cluster" >&2
                exit 1
            }
            echo "rabbitmq.sh: cluster of $cluster_size nodes ready on 127.0.0.1:$base-$((base + cluster_size - 1))" >&2
            ;;
        cluster-stop)
            for i in $(seq 1 "$cluster_size"); do
                "$self" stop "$dir/node$i" $((base + i - 1)) &
            done
            wait
            ;;
        cluster-status)
            cluster_joined "$dir" "$base" 1
            ;;
        node-kill | node-start)
            case $n in [1-9]) ;; *) echo "rabbitmq.sh: N must be 1..$cluster_size" >&2; exit 2 ;; esac
            [ "$n" -le "$cluster_size" ] || { echo "rabbitmq.sh: N must be 1..$cluster_size" >&2; exit 2; }
            local nd="$dir/node$n" port=$((base + n - 1))
            if [ "$action" = node-start ]; then
                node_prepare "$n"
                "$self" start "$nd" "$port"
            else
                local pid
                pid=$(tr -d '[:space:]' <"$nd/rabbit.pid" 2>/dev/null || true)
                if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                    kill -KILL "$pid"
                    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
                    echo "rabbitmq.sh: node $n (rabbit-$port@localhost) killed" >&2
                else
                    echo "rabbitmq.sh: node $n is not running" >&2
                fi
            fi
            ;;
    esac
}

# True when node 1 sees every node of the cluster running, within TRIES tenths of a second.
cluster_joined() {
    local dir=$1 base=$2 tries=$3 want running
    want=$cluster_size
    for _ in $(seq 1 "$tries"); do
        running=$(HOME="$dir/node1" /usr/lib/rabbitmq/bin/rabbitmqctl -n "rabbit-$base@localhost" \
            cluster_status --formatter json 2>/dev/null |
            grep -o '"running_nodes":\[[^]]*\]' | grep -o 'rabbit-[0-9]*@localhost' | sort -u | wc -l || true)
        if [ "${running:-0}" -ge "$want" ]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

case ${1:-} in
    cluster-start | cluster-stop | cluster-status | node-kill | node-start)
        [ $# -ge 3 ] || usage
        [[ $1 != node-* ]] || [ $# -ge 4 ] || usage
        cluster "$@"
        exit $?
        ;;
esac

[ $# -ge 3 ] || usage
cmd=$1
dir=$2
port=$3
file=${4:-}
case $port in
    '' | *[!0-9]*) echo "rabbitmq.sh: port must be a number, got '$port'" >&2; exit 2 ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 45535 ]; then
    echo "rabbitmq.sh: port must be in 1..45535 so that port+20000 is valid, got $port" >&2
    exit 2
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
bin=/usr/lib/rabbitmq/bin

# Everything below DIR: HOME holds the private .erlang.cookie shared by the server and
# rabbitmqctl; the node name and ports keep this broker apart from any other.
export HOME="$dir"
export RABBITMQ_NODENAME="rabbit-$port@localhost"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT="$port"
export RABBITMQ_DIST_PORT=$((port + 20000))
export RABBITMQ_MNESIA_BASE="$dir/mnesia"
export RABBITMQ_LOG_BASE="$dir/log"
export RABBITMQ_PID_FILE="$dir/rabbit.pid"
export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
export RABBITMQ_LOGS="$dir/log/rabbit.log"
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-}"

ctl() {
    "$bin/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"
}

install_if_missing() {
    if [ -x "$bin/rabbitmq-server" ]; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "rabbitmq.sh: rabbitmq-server is not installed and installing it needs root" >&2
        exit 1
    fi
    echo "rabbitmq.sh: installing rabbitmq-server from Debian" >&2
    # A lock keeps two concurrent starts from running apt-get at the same time.
    (
        flock 9
        if [ ! -x "$bin/rabbitmq-server" ]; then
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q >&2
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends rabbitmq-server >&2
        fi
    ) 9>/tmp/passerelle-rabbitmq-install.lock
}

# The TLS part of rabbitmq.conf, empty without RABBITMQ_TLS_PORT. Paths are made
# absolute because the broker does not run from the caller's folder.
tls_conf() {
    [ -n "${RABBITMQ_TLS_PORT:-}" ] || return 0
    case $RABBITMQ_TLS_PORT in
        *[!0-9]*) echo "rabbitmq.sh: RABBITMQ_TLS_PORT must be a number" >&2; exit 2 ;;
    esac
    local var path
    for var in RABBITMQ_TLS_CERT RABBITMQ_TLS_KEY RABBITMQ_TLS_CACERT; do
        path=${!var:-}
        if [ -z "$path" ] || [ ! -f "$path" ]; then
            echo "rabbitmq.sh: RABBITMQ_TLS_PORT needs $var to name a PEM file" >&2
            exit 2
        fi
    done
    local verify=verify_none fail=false
    if [ "${RABBITMQ_TLS_VERIFY_PEER:-0}" = 1 ]; then
        verify=verify_peer
        fail=true
    fi
    cat <<CONF
listeners.ssl.1 = 127.0.0.1:$RABBITMQ_TLS_PORT
ssl_options.cacertfile = $(realpath "$RABBITMQ_TLS_CACERT")
ssl_options.certfile = $(realpath "$RABBITMQ_TLS_CERT")
ssl_options.keyfile = $(realpath "$RABBITMQ_TLS_KEY")
ssl_options.verify = $verify
ssl_options.fail_if_no_peer_cert = $fail
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
CONF
}

beam_pid() {
    # The pid file is written by the node itself once the VM is up.
    if [ -s "$RABBITMQ_PID_FILE" ]; then
        local pid
        pid=$(tr -d '[:space:]' <"$RABBITMQ_PID_FILE")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            echo "$pid"
            return 0
        fi
    fi
    return 1
}

is_ready() {
    beam_pid >/dev/null && ctl await_startup --timeout 5 >/dev/null 2>&1
}

start() {
    install_if_missing
    if is_ready; then
        echo "rabbitmq.sh: $RABBITMQ_NODENAME already running on port $port" >&2
        return 0
    fi
    if pid=$(beam_pid); then
        # Running but not ready yet (a concurrent start): just wait for it.
        ctl wait --timeout 120 "$RABBITMQ_PID_FILE" >/dev/null
        ctl await_startup --timeout 120 >/dev/null
        return 0
    fi
    # Another broker (a different DIR) on this port would make the start hang until
    # the readiness timeout: say so at once instead.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "rabbitmq.sh: port $port is already in use (another broker with a different DIR?)" >&2
        exit 1
    fi
    if [ -n "${RABBITMQ_TLS_PORT:-}" ] && (exec 3<>"/dev/tcp/127.0.0.1/$RABBITMQ_TLS_PORT") 2>/dev/null; then
        echo "rabbitmq.sh: tls port $RABBITMQ_TLS_PORT is already in use" >&2
        exit 1
    fi
    mkdir -p "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
    rm -f "$RABBITMQ_PID_FILE"
    # No plugin is needed: the topology is declared by the clients (or loaded from
    # definitions.json by an operator with rabbitmqctl import_definitions).
    echo "[]." >"$RABBITMQ_ENABLED_PLUGINS_FILE"
    : >"$RABBITMQ_CONF_ENV_FILE"
    if [ ! -f "$RABBITMQ_CONFIG_FILE.conf" ]; then
        tls_conf >"$RABBITMQ_CONFIG_FILE.conf.tls"
        cat - "$RABBITMQ_CONFIG_FILE.conf.tls" >"$RABBITMQ_CONFIG_FILE.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$port
loopback_users = none
log.file.level = warning
log.console = false
CONF
        rm -f "$RABBITMQ_CONFIG_FILE.conf.tls"
    fi
    if [ ! -f "$dir/.erlang.cookie" ]; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/.erlang.cookie"
        chmod 400 "$dir/.erlang.cookie"
    fi
    # A plain background process (no systemd here); setsid keeps it out of the caller's
    # process group so a test runner killing its group does not take the broker along.
    setsid "$bin/rabbitmq-server" >"$dir/log/stdout.log" 2>&1 </dev/null &
    if ! ctl wait --timeout 120 "$RABBITMQ_PID_FILE" >/dev/null 2>&1; then
        echo "rabbitmq.sh: $RABBITMQ_NODENAME did not start; see $dir/log" >&2
        tail -n 30 "$dir/log/stdout.log" >&2 || true
        exit 1
    fi
    ctl await_startup --timeout 120 >/dev/null
    echo "rabbitmq.sh: $RABBITMQ_NODENAME ready on 127.0.0.1:$port" >&2
}

stop() {
    local pid
    if ! pid=$(beam_pid); then
        echo "rabbitmq.sh: $RABBITMQ_NODENAME is not running" >&2
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 600); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$RABBITMQ_PID_FILE"
            echo "rabbitmq.sh: $RABBITMQ_NODENAME stopped" >&2
            return 0
        fi
        sleep 0.1
    done
    echo "rabbitmq.sh: $RABBITMQ_NODENAME did not stop within 60 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$RABBITMQ_PID_FILE"
}

status() {
    if is_ready; then
        echo "running: $RABBITMQ_NODENAME on 127.0.0.1:$port (pid $(beam_pid))"
        return 0
    fi
    echo "stopped: $RABBITMQ_NODENAME"
    return 3
}

import_definitions() {
    [ -n "$file" ] || usage
    [ -f "$file" ] || { echo "rabbitmq.sh: no definitions file at $file" >&2; exit 2; }
    is_ready || { echo "rabbitmq.sh: $RABBITMQ_NODENAME is not running" >&2; exit 1; }
    file=$(cd "$(dirname "$file")" && pwd)/$(basename "$file")
    ctl import_definitions "$file" >/dev/null
    # The import runs in the background: wait until every queue of the file exists.
    local want
    want=$(grep -c '"x-queue-type"' "$file" || true)
    for _ in $(seq 1 300); do
        local have
        have=$(ctl list_queues -s name 2>/dev/null | grep -cxFf <(grep -o '"name": *"[^"]*"' "$file" | sed 's/.*"\([^"]*\)"$/\1/') || true)
        if [ "$have" -ge "$want" ]; then
            echo "rabbitmq.sh: definitions from $file loaded into $RABBITMQ_NODENAME" >&2
            return 0
        fi
        sleep 0.2
    done
    echo "rabbitmq.sh: definitions import into $RABBITMQ_NODENAME did not finish within 60 s" >&2
    exit 1
}

case $cmd in
    start) start ;;
    import) import_definitions ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
