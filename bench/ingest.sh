#!/usr/bin/env bash
# Ingest benchmark: `bash bench/ingest.sh [--duration 20] [--connections 32] ...` from anywhere.
# A thin wrapper so `make bench` can call it; the work (and the clean-up) is in bench/ingest.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m bench.ingest "$@"
