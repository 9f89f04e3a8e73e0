#!/usr/bin/env bash
# Redis on 127.0.0.1:6379, for the tests that use the local server.
set -euo pipefail
# The shared Redis on 6379 is started by the machine; start one if it is not there (a laptop, a restarted box).
if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p 6379 ping >/dev/null 2>&1 || { echo "redis-server on 6379 did not answer PING within 5 s" >&2; exit 1; }
  fi
fi
