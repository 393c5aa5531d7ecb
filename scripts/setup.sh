#!/usr/bin/env bash
# The set-up behind `npm start` and `npm test`: npm packages when missing or stale, the generated
# API code and the TypeScript build, then the local stack (scripts/stack.sh installs and starts
# whichever of Redis, etcd, MariaDB and RabbitMQ is not reachable already). `--no-stack` stops
# after the build (`npm run test:unit`: the pure tests need no server). `--browser` also installs
# the browser the web console's test drives (Debian's chromium, when missing: `npm test`).
set -euo pipefail
cd "$(dirname "$0")/.."

stack=1
browser=
for flag in "$@"; do
  case $flag in
    --no-stack) stack= ;;
    --browser) browser=1 ;;
    *) echo "setup: unknown option $flag" >&2; exit 2 ;;
  esac
done

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is required (found $(node --version))" >&2
  exit 1
fi

# Install when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

npm run --silent build
if [ -n "$stack" ]; then
  bash scripts/stack.sh up
fi
if [ -n "$browser" ]; then
  bash scripts/stack.sh browser
fi
