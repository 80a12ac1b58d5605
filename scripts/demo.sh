#!/usr/bin/env bash
# The main job on the embedded default: installs the local tools (cached), then runs src/dev/demo.ts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/install-tools.sh
exec npx tsx src/dev/demo.ts
