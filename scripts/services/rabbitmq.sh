#!/usr/bin/env bash
# RabbitMQ on 127.0.0.1:5672 (guest/guest), for the nestq-rabbitmq tests.
set -euo pipefail
# The shared broker is started by the machine; start one only if nothing answers (a laptop, a restarted box), and
# never restart one that runs.
answers() { (exec 3<>/dev/tcp/127.0.0.1/5672) >/dev/null 2>&1; }
if ! answers && command -v rabbitmq-server >/dev/null 2>&1; then
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 300); do answers && break; sleep 0.1; done
  answers || { echo "rabbitmq-server did not accept connections on 5672 within 30 s" >&2; exit 1; }
fi
