#!/usr/bin/env bash
# The production profile on one machine: PostgreSQL (tracker store), Redis (lock store), N Rasa
# replicas each with its action server, the voice gateway and the web server, all behind nginx
# on one port. Everything lives under $PROD_DIR (build/prod); no system-wide configuration is
# touched. `scripts/prod.sh start` returns once every part answers; `scripts/prod.sh stop`
# stops all of it; `status` lists what runs.
#
# Ports (loopback only) and sizes, from the environment:
#   PROD_PORT=8000  the one public port (nginx): /webhooks/*, /socket.io/* -> Rasa; the rest -> web
#   REPLICAS=<cores> PG_PORT=5433 REDIS_PORT=6380 RASA_BASE_PORT=5105 ACTION_BASE_PORT=5155
#   ACTIONS_LB_PORT=5150 (nginx, internal: the replicas reach any live action server through it)
#   PROD_WEB_PORT=8180 PROD_VOICE_PORT=8190 PROD_VOICE=1 (0: no voice gateway)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PROD_DIR=${PROD_DIR:-$ROOT/build/prod}
PROD_PORT=${PROD_PORT:-8000}
REPLICAS=${REPLICAS:-$(nproc)}
PG_PORT=${PG_PORT:-5433}
REDIS_PORT=${REDIS_PORT:-6380}
RASA_BASE_PORT=${RASA_BASE_PORT:-5105}
ACTION_BASE_PORT=${ACTION_BASE_PORT:-5155}
ACTIONS_LB_PORT=${ACTIONS_LB_PORT:-5150}
PROD_WEB_PORT=${PROD_WEB_PORT:-8180}
PROD_VOICE_PORT=${PROD_VOICE_PORT:-8190}
PROD_VOICE=${PROD_VOICE:-1}
MODEL=${MODEL:-build/models/assistant.tar.gz}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
LOGS=$PROD_DIR/logs
PIDS=$PROD_DIR/pids

die() { echo "prod: $*" >&2; exit 1; }

as_pg() {  # PostgreSQL refuses to run as root: use the Debian package's postgres account
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

log_tail() {  # process name: the end of what it printed, so a failed start says why
  [ -n "${1:-}" ] && [ -f "$LOGS/$1.out" ] && { echo "--- last lines of $LOGS/$1.out:"; tail -n 25 "$LOGS/$1.out"; } >&2
  return 0
}

wait_for() {  # url, name, seconds[, process name: stop waiting as soon as it has exited]
  local proc=${4:-}
  for _ in $(seq "$3"); do
    curl -fs -o /dev/null "$1" && return 0
    if [ -n "$proc" ] && ! kill -0 "$(cat "$PIDS/$proc.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
      log_tail "$proc"; die "$2 exited before it answered at $1; see $LOGS/"
    fi
    sleep 1
  done
  log_tail "$proc"
  die "$2 did not answer at $1 in $3 s; see $LOGS/"
}

spawn() {  # name, command...: runs in the background, pid in $PIDS/name.pid
  local name=$1; shift
  nohup "$@" >> "$LOGS/$name.out" 2>&1 &
  echo $! > "$PIDS/$name.pid"
}

secret() {  # a random secret kept under $PROD_DIR/secrets, made once
  local f=$PROD_DIR/secrets/$1
  [ -s "$f" ] || (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$f")
  cat "$f"
}

start_postgres() {
  [ -x "$PGBIN/initdb" ] || die "PostgreSQL server not found (make serve-prod installs Debian's postgresql)"
  local data=$PROD_DIR/pg
  touch "$LOGS/postgres.log"
  if [ ! -s "$data/PG_VERSION" ]; then
    mkdir -p "$data"; chmod 700 "$data"
    local pw=$PROD_DIR/pg-init.pw
    (umask 077 && secret pg > "$pw")
    [ "$(id -u)" = 0 ] && chown postgres "$data" "$pw"
    as_pg "$PGBIN/initdb" -D "$data" -U rasa --pwfile="$pw" -A scram-sha-256 >> "$LOGS/postgres.out"
    rm -f "$pw"
  fi
  if [ "$(id -u)" = 0 ]; then chown postgres "$LOGS/postgres.log"; fi
  as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1 || as_pg "$PGBIN/pg_ctl" -D "$data" -l "$LOGS/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $data -c max_connections=100" start >/dev/null
  PGPASSWORD=$(secret pg) "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U rasa -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='rasa'" | grep -q 1 || \
    PGPASSWORD=$(secret pg) "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U rasa rasa
}

start_redis() {
  mkdir -p "$PROD_DIR/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PROD_DIR/redis" --daemonize yes \
    --pidfile "$PIDS/redis.pid" --logfile "$LOGS/redis.log" --save "" --appendonly no \
    --requirepass "$(secret redis)"
  for _ in $(seq 20); do redis-cli -p "$REDIS_PORT" -a "$(secret redis)" --no-auth-warning ping 2>/dev/null \
    | grep -q PONG && return 0; sleep 0.5; done
  die "redis did not start; see $LOGS/redis.log"
}

write_endpoints() {  # replica index -> its endpoints file; the secrets come from the environment
  # (unquoted: Rasa expands environment variables only in plain YAML scalars)
  cat > "$PROD_DIR/endpoints-$1.yml" <<EOF
action_endpoint:
  url: "http://127.0.0.1:$ACTIONS_LB_PORT/webhook"
tracker_store:
  type: bot.tracker_store.ResilientSQLTrackerStore
  dialect: "postgresql"
  url: "127.0.0.1"
  port: $PG_PORT
  db: "rasa"
  username: "rasa"
  password: \${PROD_PG_PASSWORD}
lock_store:
  type: bot.lock_store.AtomicRedisLockStore
  url: "127.0.0.1"
  port: $REDIS_PORT
  password: \${PROD_REDIS_PASSWORD}
  db: 1
  key_prefix: "assistant"
EOF
}

write_nginx() {
  local rasa="" actions="" i
  for i in $(seq 0 $((REPLICAS - 1))); do
    rasa+="    server 127.0.0.1:$((RASA_BASE_PORT + i)) max_fails=1 fail_timeout=5s;"$'\n'
    actions+="    server 127.0.0.1:$((ACTION_BASE_PORT + i)) max_fails=1 fail_timeout=1s;"$'\n'
  done
  mkdir -p "$PROD_DIR/nginx/tmp"
  cat > "$PROD_DIR/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $PIDS/nginx.pid;
error_log $LOGS/nginx.err warn;
events { worker_connections 2048; }
http {
  access_log off;
  client_body_temp_path $PROD_DIR/nginx/tmp/body;
  proxy_temp_path $PROD_DIR/nginx/tmp/proxy;
  fastcgi_temp_path $PROD_DIR/nginx/tmp/fastcgi;
  uwsgi_temp_path $PROD_DIR/nginx/tmp/uwsgi;
  scgi_temp_path $PROD_DIR/nginx/tmp/scgi;
  client_max_body_size 13m;
  # REST turns go to any replica: the tracker is in PostgreSQL, and Redis serialises one
  # conversation's turns; a replica that refuses the connection is skipped
  # idle upstream connections are closed here (3 s) before Sanic closes them (its keep-alive
  # timeout is 5 s): otherwise nginx now and then reuses one that Sanic is closing, the POST
  # gets a reset, and nginx may not retry a POST: a turn lost at random under steady load
  upstream rasa {
    least_conn;  # not round-robin: a turn waits less behind a busy replica (p99 -10 to -20%)
$rasa    keepalive 32;
    keepalive_timeout 3s;
  }
  # socket.io keeps a session on one process: the same client always reaches the same replica
  upstream rasa_socket {
    hash \$remote_addr\$http_user_agent consistent;
$rasa  }
  upstream web { server 127.0.0.1:$PROD_WEB_PORT; keepalive 16; keepalive_timeout 3s; }
  # every replica calls the action servers through here: one that is down is skipped (a refused
  # connection sends nothing, so even a POST is safely tried on the next one), and tried again
  # after 1 s: an action server starts in a few seconds, and while nginx still counts a restarted
  # one as down, the failure of another leaves it "no live upstreams"
  upstream actions {
    least_conn;
$actions    keepalive 32;
    keepalive_timeout 3s;
  }
  server {
    listen 127.0.0.1:$ACTIONS_LB_PORT;
    proxy_http_version 1.1;
    client_body_buffer_size 4m;  # a turn's tracker and domain: kept in memory, not spooled to disk
    location / {
      proxy_pass http://actions;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
      proxy_read_timeout 30s;
    }
  }
  server {
    listen 127.0.0.1:$PROD_PORT;
    proxy_http_version 1.1;
    location /webhooks/ {
      proxy_pass http://rasa;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      proxy_read_timeout 30s;
      # a turn in flight on a replica that dies: the caller still gets a reply naming 12345
      proxy_intercept_errors on;
      error_page 502 503 504 = @polite;
    }
    location @polite {
      default_type application/json;
      return 200 '[{"recipient_id": "", "text": "抱歉，系统暂时繁忙，没能处理您的问题。请稍后再试，或拨打市民服务热线12345。"}]';
    }
    location /socket.io/ {
      proxy_pass http://rasa_socket;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 120s;
    }
    location / {
      proxy_pass http://web;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_read_timeout 130s;
    }
  }
}
EOF
}

replica_env() {  # what every Rasa replica and action server runs with
  export PROD_PG_PASSWORD; PROD_PG_PASSWORD=$(secret pg)
  export PROD_REDIS_PASSWORD; PROD_REDIS_PASSWORD=$(secret redis)
  export SANIC_WORKERS=1  # one Sanic worker per replica; replicas are the unit of scale
  # a killed replica's conversation locks expire after this, not Rasa's 60 s: the next turn of
  # such a conversation waits for it, and the channel gives up on a turn after 20 s
  export TICKET_LOCK_LIFETIME=${TICKET_LOCK_LIFETIME:-10}
  # one compute thread per process: N replicas and N action servers share the cores, and
  # torch's and TensorFlow's thread pools sized to every core fight each other
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
  export TF_INTRA_OP_PARALLELISM_THREADS=${TF_INTRA_OP_PARALLELISM_THREADS:-1}
  export TF_INTER_OP_PARALLELISM_THREADS=${TF_INTER_OP_PARALLELISM_THREADS:-1}
  # the 工单 key (the channel keeps callback numbers with it, the action server files 工单 with
  # it) and the console's accounts: a replica or action server started again gets the same
  ASSISTANT_TICKET_KEY=${ASSISTANT_TICKET_KEY:-$(scripts/ticket_key.sh)}
  export ASSISTANT_TICKET_KEY
  export ASSISTANT_ADMINS=${ASSISTANT_ADMINS:-build/data/admins.txt}
}

start_actions() {  # index: action server i on ACTION_BASE_PORT + i
  ACTION_PORT=$((ACTION_BASE_PORT + $1)) spawn "actions-$1" .venv/bin/python -m actions.server \
    --port $((ACTION_BASE_PORT + $1)) --log-file "$LOGS/actions-$1.log"
}

start_replica() {  # index: Rasa replica i on RASA_BASE_PORT + i, CORS for the one public port
  local origins="http://127.0.0.1:$PROD_PORT http://localhost:$PROD_PORT ${ASSISTANT_WEB_ORIGINS:-}"
  # shellcheck disable=SC2086
  PYTHONPATH=. spawn "rasa-$1" .venv-rasa/bin/rasa run --model "$MODEL" --interface 127.0.0.1 \
    --port $((RASA_BASE_PORT + $1)) --cors $origins --credentials credentials.yml \
    --endpoints "$PROD_DIR/endpoints-$1.yml" --log-file "$LOGS/rasa-$1.log"
}

start() {
  trap 'rc=$?; if [ $rc != 0 ]; then echo "prod: start failed; stopping what started" >&2; stop; fi' EXIT
  mkdir -p "$LOGS" "$PIDS" "$PROD_DIR/secrets" build/data && chmod 700 "$PROD_DIR/secrets"
  [ -s "$MODEL" ] || die "no trained model at $MODEL (make train)"
  [ -f "$PIDS/nginx.pid" ] && kill -0 "$(cat "$PIDS/nginx.pid")" 2>/dev/null && die "already running (scripts/prod.sh stop)"
  secret pg >/dev/null; secret redis >/dev/null
  start_postgres
  start_redis
  replica_env
  export COPILOT_TOKEN=${COPILOT_TOKEN:-$(secret copilot)}
  local i
  for i in $(seq 0 $((REPLICAS - 1))); do
    write_endpoints "$i"
    start_actions "$i"
    start_replica "$i"
  done
  write_nginx
  nginx -c "$PROD_DIR/nginx/nginx.conf" -p "$PROD_DIR/nginx" 2>> "$LOGS/nginx.err"
  for i in $(seq 0 $((REPLICAS - 1))); do
    wait_for "http://127.0.0.1:$((ACTION_BASE_PORT + i))/health" "action server $i" 240 "actions-$i"
    wait_for "http://127.0.0.1:$((RASA_BASE_PORT + i))/" "Rasa replica $i" 240 "rasa-$i"
  done
  if [ "$PROD_VOICE" = 1 ]; then
    spawn voice .venv/bin/python -m voice serve --port "$PROD_VOICE_PORT" --rasa-url "http://127.0.0.1:$PROD_PORT"
    wait_for "http://127.0.0.1:$PROD_VOICE_PORT/healthz" "the voice gateway" 120 voice
  fi
  spawn web .venv/bin/python -m web --port "$PROD_WEB_PORT" --rasa-url "http://127.0.0.1:$PROD_PORT" \
    --voice-url "http://127.0.0.1:$PROD_VOICE_PORT"
  wait_for "http://127.0.0.1:$PROD_PORT/chat" "the web server behind nginx" 60 web
  echo "production profile ready: http://127.0.0.1:$PROD_PORT/chat (REST /webhooks/rest/webhook," \
    "$REPLICAS Rasa replicas, PostgreSQL :$PG_PORT, Redis :$REDIS_PORT; copilot token $COPILOT_TOKEN)" >&2
}

stop_pid() {  # name
  local f=$PIDS/$1.pid
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.3; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop() {
  [ -d "$PIDS" ] || return 0
  local f
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    case $(basename "$f" .pid) in redis|nginx) ;; *) stop_pid "$(basename "$f" .pid)";; esac
  done
  [ -f "$PIDS/nginx.pid" ] && nginx -c "$PROD_DIR/nginx/nginx.conf" -p "$PROD_DIR/nginx" -s quit 2>/dev/null || true
  sleep 0.5; stop_pid nginx
  stop_pid redis
  if [ -s "$PROD_DIR/pg/postmaster.pid" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$PROD_DIR/pg" -m fast -w stop >/dev/null 2>&1 || true
  fi
  echo "production profile stopped" >&2
}

status() {
  local f
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    if kill -0 "$(cat "$f")" 2>/dev/null; then echo "$(basename "$f" .pid) running"; else echo "$(basename "$f" .pid) dead"; fi
  done
  [ -s "$PROD_DIR/pg/postmaster.pid" ] && echo "postgres running" || true
}

case ${1:-start} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  # faults, for bench.faults and the tests: kill -9 a replica, stop or start an action server,
  # restart PostgreSQL (fast shutdown: open connections are cut, as in a failover)
  kill-replica) kill -9 "$(cat "$PIDS/rasa-${2:?replica index}.pid")" ;;
  restart-replica) i=${2:?replica index}; stop_pid "rasa-$i"; replica_env; start_replica "$i"
    wait_for "http://127.0.0.1:$((RASA_BASE_PORT + i))/" "Rasa replica $i" 240 "rasa-$i" ;;
  stop-actions) stop_pid "actions-${2:?action server index}" ;;
  start-actions) i=${2:?action server index}; replica_env; start_actions "$i"
    wait_for "http://127.0.0.1:$((ACTION_BASE_PORT + i))/health" "action server $i" 240 "actions-$i" ;;
  restart-postgres) as_pg "$PGBIN/pg_ctl" -D "$PROD_DIR/pg" -m fast -w restart -l "$LOGS/postgres.log" >/dev/null ;;
  *) die "usage: scripts/prod.sh start|stop|status|restart-replica N|kill-replica N|stop-actions N|start-actions N|restart-postgres" ;;
esac
