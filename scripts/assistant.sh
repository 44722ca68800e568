#!/usr/bin/env bash
# Start the action server, the Rasa server and the voice gateway; `--chat` adds a terminal
# chat in front.
# Ctrl-C (or the chat's end) stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-serve}
RASA_PORT=${RASA_PORT:-5005}
export ACTION_PORT=${ACTION_PORT:-5055}
VOICE_PORT=${VOICE_PORT:-8090}
WEB_PORT=${WEB_PORT:-8080}
# the 12345 copilot needs an agent token: set COPILOT_TOKEN, or one is made for this run
export COPILOT_TOKEN=${COPILOT_TOKEN:-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}
MODEL=${MODEL:-build/models/assistant.tar.gz}
mkdir -p build/logs build/data
# contacts in 工单 are encrypted at rest with ASSISTANT_TICKET_KEY (scripts/ticket_key.sh)
ASSISTANT_TICKET_KEY=${ASSISTANT_TICKET_KEY:-$(scripts/ticket_key.sh)}
export ASSISTANT_TICKET_KEY
# the administrators' console (/admin) reads its accounts from ASSISTANT_ADMINS; on a machine with
# none yet, one account "admin" is made with a random password, shown once below
export ASSISTANT_ADMINS=${ASSISTANT_ADMINS:-build/data/admins.txt}
admin_note="accounts in $ASSISTANT_ADMINS (python -m assistant.admin add-user NAME)"
if [ ! -s "$ASSISTANT_ADMINS" ]; then
  admin_password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  echo "$admin_password" | .venv/bin/python -m assistant.admin add-user admin --file "$ASSISTANT_ADMINS" >/dev/null
  admin_note="user admin, password $admin_password (shown once; change it with python -m assistant.admin add-user admin)"
fi
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

wait_for() {  # url, name, seconds
  for _ in $(seq "$3"); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 1
  done
  echo "error: $2 did not start in $3 s; see build/logs/" >&2
  exit 1
}

.venv/bin/python -m actions.server --port "$ACTION_PORT" --log-file build/logs/actions.log \
  >> build/logs/actions.out 2>&1 &
pids+=($!)
# Rasa and the action server listen on loopback: the pages talk to the web server, which is
# the only public port (WEB_HOST); Rasa's CORS admits only the web origins
read -r -a origins <<< "http://127.0.0.1:$WEB_PORT http://localhost:$WEB_PORT ${ASSISTANT_WEB_ORIGINS:-}"
PYTHONPATH=. .venv-rasa/bin/rasa run --model "$MODEL" --interface 127.0.0.1 --port "$RASA_PORT" --cors "${origins[@]}" \
  --credentials credentials.yml --endpoints endpoints.yml --log-file build/logs/rasa.log \
  >> build/logs/rasa.out 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$ACTION_PORT/health" "the action server" 60
wait_for "http://127.0.0.1:$RASA_PORT/" "the Rasa server" 180
.venv/bin/python -m voice serve --port "$VOICE_PORT" --rasa-url "http://127.0.0.1:$RASA_PORT" \
  >> build/logs/voice.out 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$VOICE_PORT/healthz" "the voice gateway" 120
.venv/bin/python -m web --port "$WEB_PORT" --rasa-url "http://127.0.0.1:$RASA_PORT" \
  --voice-url "http://127.0.0.1:$VOICE_PORT" >> build/logs/web.out 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$WEB_PORT/chat" "the web server" 60
curl -fs "http://127.0.0.1:$ACTION_PORT/ready" >/dev/null || \
  echo "warning: the action server has no index; answers will point to 12345 (see build/logs/actions.log)" >&2
echo "assistant ready: REST http://127.0.0.1:$RASA_PORT/webhooks/rest/webhook (and socket.io)," \
  "voice http://127.0.0.1:$VOICE_PORT/api/voice" >&2
echo "web: http://127.0.0.1:$WEB_PORT/chat  /kiosk  /copilot (agent token: $COPILOT_TOKEN)" >&2
echo "admin console: http://127.0.0.1:$WEB_PORT/admin ($admin_note)" >&2

if [ "$mode" = "--chat" ]; then
  .venv/bin/python -m actions --url "http://127.0.0.1:$RASA_PORT"
else
  wait -n "${pids[@]}"
fi
