#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379), RabbitMQ (127.0.0.1:5672) and NATS with JetStream
# (127.0.0.1:4222) answer; start them if not.
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
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  echo "starting nats-server"
  mkdir -p var/nats
  nohup nats-server -js -a 127.0.0.1 -p 4222 -sd "$PWD/var/nats" >var/nats/nats.log 2>&1 &
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done
fi
(exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null
echo "redis, rabbitmq and nats are up"
