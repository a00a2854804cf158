#!/usr/bin/env bash
# Install the Debian packages a target needs, only those missing. Usage: install-system.sh run|test|bench
set -euo pipefail
need=()
has_lib() { ldconfig -p | grep -q "$1"; }
has_lib libMagickWand-6.Q16.so || need+=(libmagickwand-6.q16-6)
# ICC profiles (CC0): sRGB, the worker's colour target; Adobe RGB and ProPhoto for the tests.
[ -f /usr/share/color/icc/colord/sRGB.icc ] || need+=(colord-data)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ "${1:-run}" != run ]; then
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v rabbitmq-server >/dev/null || need+=(rabbitmq-server)
  command -v nats-server >/dev/null || need+=(nats-server)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v wrk >/dev/null || need+=(wrk)  # bench/ingest.py's load generator
  command -v npm >/dev/null || need+=(npm)  # tus-js-client for the resumable upload tests (make node)
  # The web page's tests drive Debian's Chromium through its chromedriver (nothing downloads a browser).
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
fi
# The command line bench.video measures the video worker against (the worker and the tests use
# PyAV's own FFmpeg libraries, from its wheel).
if [ "${1:-run}" = bench ]; then
  command -v ffmpeg >/dev/null || need+=(ffmpeg)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
