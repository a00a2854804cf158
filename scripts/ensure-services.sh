#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672) answer; start them if not.
set -euo pipefail
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting redis-server"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "starting rabbitmq-server"
  rabbitmq-server -detached
  sleep 2
fi
rabbitmqctl -q await_startup --timeout 120 >/dev/null
echo "redis and rabbitmq are up"
