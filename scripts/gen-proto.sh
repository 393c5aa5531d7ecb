#!/usr/bin/env bash
# Generates the TypeScript of the API (gen/) from proto/ with ts-proto, driven by buf (both come
# from npm: no protoc download). gen/ is build output: regenerated here, never edited by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gen
npx --no-install buf lint
npx --no-install buf generate
