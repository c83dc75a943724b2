#!/usr/bin/env bash
# The seven read-side benchmark runs behind bench/README.md "Final runs, session 3", one after
# another (about 14 minutes; run it on a quiet machine, nothing else running):
#   1. Search en through the broker, pinned, FTS5/Xapian at 1 and 2 query threads
#   2. Search en, unpinned, 2 workers x 16 clients, and the bootstrap on both cores
#   3. Search zh, pinned, baselines at 1 and 2 threads
#   4. List (read tier) over TCP
#   5. List over ipc with worker credit 16, 16 and 64 clients (broker CPU under load)
#   6. Search zh, unpinned, 2 workers x 16 clients, and the bootstrap on both cores
#   7. List over TCP with 4 requests in flight per client, 16 and 64 clients (broker CPU when
#      clients pipeline)
#
#   bench/run_final.sh [BIN_DIR [OUT_DIR]]   (defaults: build/bin, build/bench-final)
# Needs the corpora in $CORPUS_DIR (default /tmp/corpus; see bench/README.md to build them) and
# a RelWithDebInfo build with the bench targets (cmake --build build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${1:-$ROOT/build/bin}
OUT=${2:-$ROOT/build/bench-final}
C=${CORPUS_DIR:-/tmp/corpus}
mkdir -p "$OUT"
for f in "$C/en.jsonl" "$C/zh.jsonl" "$C/queries/en.search.jsonl" "$C/queries/zh.search.jsonl" \
         "$C/queries/en.list.jsonl" "$B/bulletin-bench-list" "$B/bulletin-bench-search"; do
  [[ -r $f ]] || { echo "run_final.sh: $f not found" >&2; exit 2; }
done
log() { echo "=== $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg): $*" >&2; }
run() { # name args...
  local name=$1; shift
  "$B/bulletin-bench-list" "$@" --out "$OUT/$name.md" > "$OUT/$name.log" 2>&1 ||
    { echo "run_final.sh: $name failed, see $OUT/$name.log" >&2; return 1; }
}
log "1/7 en search, pinned"
run en-pinned --search --clients 1,4,16 --workers 1,2 --baseline-threads 1,2 \
  --corpus "$C/en.jsonl" --queries "$C/queries/en.search.jsonl"
log "2/7 en search, unpinned"
run en-unpinned --search --clients 16 --workers 2 --client-cpus "" --worker-cpus "" \
  --no-baselines --corpus "$C/en.jsonl" --queries "$C/queries/en.search.jsonl"
log "3/7 zh search, pinned"
run zh-pinned --search --zh --clients 1,4,16 --workers 1,2 --baseline-threads 1,2 \
  --corpus "$C/zh.jsonl" --queries "$C/queries/zh.search.jsonl"
log "4/7 List, TCP"
run list-tcp --clients 1,4,16 --workers 1,2 --corpus "$C/en.jsonl" --queries "$C/queries/en.list.jsonl"
log "5/7 List, ipc, credit 16"
run list-ipc16 --clients 16,64 --workers 1 --transport ipc --credit 16 --no-bootstrap \
  --engines bulletin,empty --corpus "$C/en.jsonl" --queries "$C/queries/en.list.jsonl"
log "6/7 zh search, unpinned"
run zh-unpinned --search --zh --clients 16 --workers 2 --client-cpus "" --worker-cpus "" \
  --no-baselines --corpus "$C/zh.jsonl" --queries "$C/queries/zh.search.jsonl"
log "7/7 List, TCP, 4 in flight per client"
run list-tcp-inflight4 --clients 16,64 --workers 1 --inflight 4 --no-bootstrap \
  --engines bulletin,empty --corpus "$C/en.jsonl" --queries "$C/queries/en.list.jsonl"
log "done: reports in $OUT/*.md"
