#!/usr/bin/env bash
# Print the key that encrypts contacts in 工单 at rest (base64 of 32 bytes). A district sets
# ASSISTANT_TICKET_KEY from its secret store; otherwise one is made once for this machine in
# build/secrets/ticket.key and reused by `make serve` and `make serve-prod`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -s build/secrets/ticket.key ]; then
  mkdir -p build/secrets && chmod 700 build/secrets
  (umask 077 && .venv/bin/python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())' \
    > build/secrets/ticket.key)
fi
cat build/secrets/ticket.key
