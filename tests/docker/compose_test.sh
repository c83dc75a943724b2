#!/usr/bin/env bash
# tests/docker/compose_test.sh — docker/compose.yaml, tested with a real Docker engine.
#
# Run by hand as root from anywhere:  bash tests/docker/compose_test.sh
# .ci/run calls it after the other tests. It uses the engine `docker info` reaches when there
# is one; otherwise it installs docker.io/docker-compose/debootstrap, starts a private dockerd
# and makes the debian:bookworm-slim base image locally (tests/docker/engine.sh), and stops
# and cleans all of that up on exit (trap), whatever happened.
#
# Steps (each one a check; the first failure stops the test):
#   build        docker-compose build (docker/Dockerfile, every service from one image)
#   up           up -d (store, ingest; + query and 3 workers when the read tier exists),
#                every container healthy
#   ingest       1,000 articles through the published ingest port with the `bulletin` CLI
#                from the host: all created, each with an id
#   store-get    all 1,000 read back from the store with `bulletin get --store` (inside the
#                store container: the store is not published), field by field
#   [read tier]  list and get through the published query port, all 3 workers served, one
#                worker killed while querying without a failed request (only when the image
#                has bulletin-query, bulletin-worker and `bulletin list`; otherwise skipped
#                with a message; BULLETIN_DOCKER_REQUIRE_READ=1 makes their absence a failure)
#   recreate     up -d --force-recreate store: every article still there, and a new write
#                goes through ingest to the new store
#   down         down -v: containers, network and volumes gone
#
# Settings (environment): BULLETIN_BIN (dir with a host-built `bulletin`; default
# <repo>/build/bin; without one the image's CLI runs with --network host),
# BULLETIN_DOCKER_KEEP=1 (leave the stack up for inspection; the engine too), plus those of
# engine.sh (BULLETIN_DOCKER_ROOT, BULLETIN_DOCKER_RUN).
set -euo pipefail

T0=$(date +%s)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROJECT=bulletin-compose-test
TAG=compose-test
IMAGE=bulletin:$TAG
N_ARTICLES=1000
N_WORKERS=3
PASSED=0
FAILED=0

# shellcheck source-path=SCRIPTDIR source=engine.sh
source "$HERE/engine.sh"

log() { printf 'compose_test: %s\n' "$*" >&2; }
pass() { PASSED=$((PASSED + 1)); log "PASS $*"; }
fail() {
    FAILED=$((FAILED + 1))
    log "FAIL $*"
    exit 1
}

WORK=$(mktemp -d /tmp/bulletin-compose-test.XXXXXX)
STACK_UP=0

compose() { "${COMPOSE[@]}" "$@"; }

cleanup() {
    local rc=$?
    set +e
    if [ "$STACK_UP" = 1 ] && [ "${BULLETIN_DOCKER_KEEP:-0}" != 1 ]; then
        if [ "$rc" != 0 ]; then
            log "state at failure:"
            compose ps >&2
            compose logs --no-color --tail=40 >&2
        fi
        compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1
    fi
    if [ "${BULLETIN_DOCKER_KEEP:-0}" != 1 ]; then
        [ "$ENGINE_OWNED" = 1 ] && docker image prune -f >/dev/null 2>&1
        engine_stop
    else
        log "BULLETIN_DOCKER_KEEP=1: stack and engine left running (DOCKER_HOST=${DOCKER_HOST:-})"
    fi
    rm -rf "$WORK"
    log "wall time $(($(date +%s) - T0)) s"
    printf 'compose_test: %d passed, %d failed\n' "$PASSED" "$((FAILED + (rc != 0 && FAILED == 0)))"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- engine -------------------------------------------------------------------------------
engine_start || fail "engine: no Docker engine (see the engine: lines above)"
engine_base_image || fail "engine: no debian:bookworm-slim base image"
if command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    engine_install || true
    command -v docker-compose >/dev/null 2>&1 || fail "engine: neither docker-compose nor docker compose"
    COMPOSE=(docker-compose)
fi
COMPOSE+=(-p "$PROJECT" -f "$ROOT/docker/compose.yaml")

# Free host ports for the two published services, on loopback only.
read -r PORT_INGEST PORT_QUERY < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
export BULLETIN_TAG=$TAG BULLETIN_PUBLISH_ADDR=127.0.0.1
export BULLETIN_INGEST_PORT=$PORT_INGEST BULLETIN_QUERY_PORT=$PORT_QUERY
log "project=$PROJECT image=$IMAGE ingest=127.0.0.1:$PORT_INGEST query=127.0.0.1:$PORT_QUERY"

# A stack left by an earlier run that was killed.
compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true

# --- build ----------------------------------------------------------------------------------
t=$(date +%s)
compose config -q || fail "config: docker/compose.yaml does not validate"
if ! compose build >"$WORK/build.log" 2>&1; then
    tail -40 "$WORK/build.log" >&2
    fail "build: docker-compose build failed"
fi
pass "build ($(($(date +%s) - t)) s; image $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"

# Which parts of the stack exist in this image.
have_bin() { docker run --rm --entrypoint sh "$IMAGE" -c "command -v $1" >/dev/null 2>&1; }
for b in bulletin bulletin-store bulletin-ingest; do
    have_bin "$b" || fail "build: the image has no $b"
done
READ_TIER=0
if have_bin bulletin-query && have_bin bulletin-worker &&
    docker run --rm "$IMAGE" bulletin list --help >/dev/null 2>&1; then
    READ_TIER=1
elif [ "${BULLETIN_DOCKER_REQUIRE_READ:-0}" = 1 ]; then
    fail "build: BULLETIN_DOCKER_REQUIRE_READ=1 but the image lacks bulletin-query, bulletin-worker or 'bulletin list'"
else
    log "NOTE read tier not in the image yet (bulletin-query, bulletin-worker, 'bulletin list'): its steps are skipped"
fi

# The CLI on the host: a host build when there is one, else the image's, on the host network.
if [ -x "${BULLETIN_BIN:-$ROOT/build/bin}/bulletin" ]; then
    CLI=("${BULLETIN_BIN:-$ROOT/build/bin}/bulletin")
    log "host CLI: ${CLI[0]}"
else
    CLI=(docker run --rm -i --network host -v "$WORK:$WORK" "$IMAGE" bulletin)
    log "host CLI: the image's bulletin with --network host (no host build found)"
fi
CLI+=(--ingest "tcp://127.0.0.1:$PORT_INGEST" --query "tcp://127.0.0.1:$PORT_QUERY" --timeout 5000)

# --- up -------------------------------------------------------------------------------------
# wait_healthy SECONDS: every container of the project running, and healthy where it has a
# health check.
wait_healthy() {
    local deadline=$(($(date +%s) + $1)) ids states
    while :; do
        ids=$(compose ps -q)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            states=$(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' $ids)
            printf '%s\n' "$states" |
                awk '$2 != "running" || ($3 != "healthy" && $3 != "none") { bad = 1 } END { exit bad }' &&
                return 0
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "not healthy after $1 s:"
            printf '%s\n' "$states" >&2
            return 1
        fi
        sleep 1
    done
}

t=$(date +%s)
STACK_UP=1
if [ "$READ_TIER" = 1 ]; then
    compose up -d --scale worker=$N_WORKERS >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "up: docker-compose up failed"; }
else
    compose up -d store ingest >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "up: docker-compose up failed"; }
fi
wait_healthy 180 || fail "up: stack not healthy"
pass "up ($(($(date +%s) - t)) s to healthy: $(compose ps -q | wc -l) containers)"

# The store is not published; the programs do not run as root.
docker port "$(compose ps -q store)" 2>/dev/null | grep -q . && fail "up: the store has published ports"
for c in $(compose ps -q); do
    uid=$(docker exec "$c" sh -c 'id -u')
    [ "$uid" != 0 ] || fail "up: $(docker inspect -f '{{.Name}}' "$c") runs as root"
done

# --- ingest through the published port ---------------------------------------------------------
python3 - "$WORK/articles.jsonl" "$N_ARTICLES" <<'EOF'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
sites = ["news.example", "bulletin.example", "jokes.example"]
with open(path, "w", encoding="utf-8") as f:
    for i in range(n):
        f.write(json.dumps({
            "key": f"https://docker.test/a/{i}",
            "site": sites[i % 3],
            "category": ["world", "local", "puns"][i % 3],
            "title": f"Docker compose article {i}",
            "body": f"Body of article {i}: Grüße aus dem Container, número {i}. " * 3,
            "tags": ["docker", f"t{i % 7}"],
            "published_at": 1700000000000 + i * 60000,
        }, ensure_ascii=False) + "\n")
EOF
t=$(date +%s)
if ! "${CLI[@]}" ingest --json --batch 250 "$WORK/articles.jsonl" >"$WORK/results.jsonl" 2>"$WORK/ingest.err"; then
    tail -20 "$WORK/ingest.err" >&2
    fail "ingest: bulletin ingest failed"
fi
python3 - "$WORK/results.jsonl" "$N_ARTICLES" "$WORK/ids" <<'EOF' || fail "ingest: results"
import json, sys
res = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
bad = [r for r in res if r.get("status") != "created" or not r.get("id")]
if len(res) != n or bad:
    sys.exit(f"{len(res)} results for {n} articles; not created: {bad[:3]}")
ids = [r["id"] for r in sorted(res, key=lambda r: r["index"])]
if len(set(ids)) != n:
    sys.exit("ids are not unique")
open(sys.argv[3], "w").write(" ".join(map(str, ids)))
EOF
pass "ingest ($N_ARTICLES articles created through 127.0.0.1:$PORT_INGEST in $(($(date +%s) - t)) s)"

# check_store LABEL: every article read back from the store equals what was sent.
check_store() {
    # shellcheck disable=SC2046
    if ! compose exec -T store bulletin get --store --json $(cat "$WORK/ids") >"$WORK/got.jsonl" 2>"$WORK/get.err"; then
        tail -5 "$WORK/get.err" >&2
        fail "$1: bulletin get --store failed"
    fi
    python3 - "$WORK/articles.jsonl" "$WORK/got.jsonl" "$WORK/ids" <<'EOF' || fail "$1: articles differ"
import json, sys
sent = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
ids = list(map(int, open(sys.argv[3]).read().split()))
if len(got) != len(sent):
    sys.exit(f"{len(got)} articles read back, {len(sent)} sent")
for s, g, i in zip(sent, got, ids):
    if g.get("id") != i:
        sys.exit(f"asked for id {i}, got {g.get('id')}")
    for f in ("key", "site", "category", "title", "tags"):
        if g.get(f) != s[f]:
            sys.exit(f"id {i} field {f}: sent {s[f]!r}, got {g.get(f)!r}")
    if g.get("body", "").split() != s["body"].split():
        sys.exit(f"id {i}: body differs: {g.get('body')!r}")
EOF
}
check_store store-get
pass "store-get (all $N_ARTICLES read back from the store, fields equal)"

# --- read tier ------------------------------------------------------------------------------------
if [ "$READ_TIER" = 1 ]; then
    log "NOTE read tier present: its steps are not written yet"
    fail "read tier: the image has it, so this test must check it (tests/docker/compose_test.sh)"
else
    log "SKIP read tier: list/get through the query port, 3 workers served, worker kill"
fi

# --- the store's data survives a new container ------------------------------------------------------
t=$(date +%s)
compose up -d --no-deps --force-recreate store >"$WORK/recreate.log" 2>&1 || { cat "$WORK/recreate.log" >&2; fail "recreate: up --force-recreate store"; }
wait_healthy 120 || fail "recreate: stack not healthy"
check_store recreate
printf '{"key":"https://docker.test/after-recreate","site":"news.example","title":"After","body":"Written after the store was recreated."}\n' >"$WORK/one.jsonl"
"${CLI[@]}" --retries 5 ingest --json "$WORK/one.jsonl" >"$WORK/one.out" 2>"$WORK/one.err" ||
    { cat "$WORK/one.err" >&2; fail "recreate: a write after recreating the store failed"; }
grep -q '"status": *"created"' "$WORK/one.out" || fail "recreate: write after recreate: $(cat "$WORK/one.out")"
pass "recreate (store container replaced in $(($(date +%s) - t)) s: $N_ARTICLES articles kept, new write ok)"

# --- down -------------------------------------------------------------------------------------------
# shellcheck disable=SC2046
VOLUMES=$(docker inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' $(compose ps -q))
t0=$(date +%s.%N)
compose down -v --remove-orphans >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log" >&2; fail "down: failed"; }
t1=$(date +%s.%N)
STACK_UP=0
python3 -c "import sys; sys.exit($t1 - $t0 > 15)" || fail "down: took more than 15 s (SIGTERM not handled?)"
[ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "down: containers left"
for v in $VOLUMES; do
    docker volume inspect "$v" >/dev/null 2>&1 && fail "down: volume $v left"
done
pass "down -v ($(python3 -c "print(f'{$t1 - $t0:.1f}')") s; $(echo "$VOLUMES" | wc -w) volumes removed)"
