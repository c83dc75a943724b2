#!/usr/bin/env bash
# Build the ingest benchmark and what it drives, then run it with --spawn:
# a fresh bulletin-store + bulletin-ingest per configuration, against SQLite.
#
#   bench/run_ingest.sh                      # defaults: /tmp/corpus/en.jsonl, 100k articles
#   CORPUS=/tmp/corpus/zh.jsonl bench/run_ingest.sh --batches 1000 --clients 8
#
# Environment: CORPUS (corpus JSONL), BUILD_DIR (default <repo>/build-bench),
# DATA_DIR (where the stores and SQLite files go; default /tmp; must not be tmpfs
# for the numbers to mean anything), OUT (markdown report, default
# $BUILD_DIR/bench-ingest.md). Extra arguments go to bulletin-bench-ingest
# (see --help).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
CORPUS=${CORPUS:-/tmp/corpus/en.jsonl}
DATA_DIR=${DATA_DIR:-/tmp}
OUT=${OUT:-$BUILD_DIR/bench-ingest.md}

if [[ ! -r $CORPUS ]]; then
  echo "run_ingest.sh: corpus $CORPUS not found; build it with:" >&2
  echo "  bash $ROOT/../shared/corpus/build_corpora.sh" >&2
  exit 2
fi
fstype=$(stat -f -c %T "$DATA_DIR")
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
  echo "run_ingest.sh: warning: $DATA_DIR is $fstype: fsync costs nothing there" >&2
fi

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
make -C "$BUILD_DIR" -j"$(nproc)" bulletin-store bulletin-ingest bulletin-bench-ingest >/dev/null

echo "run_ingest.sh: load average now: $(cut -d' ' -f1-3 /proc/loadavg) (measure on a quiet machine)" >&2
exec "$BUILD_DIR/bin/bulletin-bench-ingest" --spawn --corpus "$CORPUS" --data-dir "$DATA_DIR" \
  --out "$OUT" "$@"
