#!/usr/bin/env bash
# Build the read-tier benchmark and the four services it spawns, then run it:
# a fresh store + ingest (the corpus is loaded in batches of 1000), replica
# bootstrap runs, SQLite, then broker + 1 and 2 workers (real, then empty
# handlers) with 1..16 closed-loop clients. See bench/README.md, "Read tier".
#
#   bench/run_list.sh                                  # whole corpus, defaults
#   bench/run_list.sh --workers 1 --clients 1,8 --seconds 2 --articles 50000
#
# Environment: CORPUS (default /tmp/corpus/en.jsonl), QUERIES (default
# /tmp/corpus/queries/en.list.jsonl), BUILD_DIR (default <repo>/build-qbench),
# OUT (markdown report, default $BUILD_DIR/bench-list.md). Extra arguments go to
# bulletin-bench-list (see --help). Pinning defaults: clients + broker on CPU 0,
# workers on CPU 1 (--client-cpus / --worker-cpus; "" = no pinning).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-qbench}
CORPUS=${CORPUS:-/tmp/corpus/en.jsonl}
QUERIES=${QUERIES:-/tmp/corpus/queries/en.list.jsonl}
OUT=${OUT:-$BUILD_DIR/bench-list.md}

for f in "$CORPUS" "$QUERIES"; do
  if [[ ! -r $f ]]; then
    echo "run_list.sh: $f not found; build the corpora with:" >&2
    echo "  bash $ROOT/../shared/corpus/build_corpora.sh" >&2
    exit 2
  fi
done

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
make -C "$BUILD_DIR" -j"$(nproc)" bulletin-store bulletin-ingest bulletin-query bulletin-worker \
  bulletin-bench-list >/dev/null

echo "run_list.sh: load average now: $(cut -d' ' -f1-3 /proc/loadavg) (measure on a quiet machine)" >&2
exec "$BUILD_DIR/bin/bulletin-bench-list" --corpus "$CORPUS" --queries "$QUERIES" --out "$OUT" "$@"
