#!/usr/bin/env bash
# `npm run bench [-- options]`: the set-up of `npm start` (npm packages, code generation and build,
# the local stack), h2load when it is missing (Debian package nghttp2-client, for the duplicate-
# submission storm), then the benchmark itself (dist/bench/run.js; `--help` lists its options).
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  if [ "$arg" = --help ] || [ "$arg" = -h ]; then
    [ -f dist/bench/run.js ] || npm run --silent build
    exec node dist/bench/run.js --help
  fi
done

bash scripts/setup.sh

if ! command -v h2load >/dev/null 2>&1; then
  mkdir -p bench-results
  echo "bench: installing h2load (apt-get install nghttp2-client; log in bench-results/apt.log)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nghttp2-client; } >>bench-results/apt.log 2>&1; then
    echo "bench: could not install nghttp2-client; the duplicate-submission storm will be skipped" >&2
  fi
fi

exec node dist/bench/run.js "$@"
