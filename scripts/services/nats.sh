#!/usr/bin/env bash
# NATS with JetStream on 127.0.0.1:4222, for the nats driver's tests (its harness prefers a private server of its own).
set -euo pipefail
answers() { (exec 3<>/dev/tcp/127.0.0.1/4222 && head -c 4 <&3 | grep -q INFO) >/dev/null 2>&1; }
bin=$(command -v nats-server || ls /usr/sbin/nats-server 2>/dev/null || true)
if [ -z "$bin" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq nats-server >/dev/null 2>&1 || true   # the Debian package (JetStream included)
  bin=$(command -v nats-server || ls /usr/sbin/nats-server 2>/dev/null || true)
fi
if ! answers && [ -n "$bin" ]; then
  store=${TMPDIR:-/tmp}/nestq-nats-4222
  mkdir -p "$store"
  nohup "$bin" -js -a 127.0.0.1 -p 4222 -sd "$store" >"$store/nats-server.log" 2>&1 &
  for _ in $(seq 1 50); do answers && break; sleep 0.1; done
  answers || { echo "nats-server on 4222 did not answer within 5 s" >&2; exit 1; }
fi
