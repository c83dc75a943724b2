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
#   backup       `bulletin-store --backup` in the store container, `docker cp` out, the copy
#                holds the 1,000 articles (mdb_stat)
#   read         list and get all 1,000 through the published query port (read_probe.py,
#                the wire contract with python3-zmq), every one of the 3 workers served
#                (Reply.served_by), one worker container killed while querying without a
#                failed request; then `bulletin list --all` and `bulletin get` from the host.
#                The query broker and workers are started whenever the image has them; these
#                checks run once the CLI has `bulletin list` too (BULLETIN_DOCKER_READ=auto),
#                or always (=1) or never (=0).
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
# The build stage gets a tag of its own, so that `image prune` at the end keeps its layers
# (the -dev packages) for the next run on this machine; compose's build then reuses them.
if ! docker build -q --target build -t "bulletin-build:$TAG" -f "$ROOT/docker/Dockerfile" "$ROOT" >"$WORK/build.log" 2>&1 ||
    ! compose build >>"$WORK/build.log" 2>&1; then
    tail -40 "$WORK/build.log" >&2
    fail "build: docker-compose build failed"
fi
pass "build ($(($(date +%s) - t)) s; image $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"

# Which parts of the stack exist in this image.
have_bin() { docker run --rm --entrypoint sh "$IMAGE" -c "command -v $1" >/dev/null 2>&1; }
for b in bulletin bulletin-store bulletin-ingest; do
    have_bin "$b" || fail "build: the image has no $b"
done
# The read tier: its services start whenever the image has them; its checks run when the
# CLI also has `bulletin list` (BULLETIN_DOCKER_READ=auto, the default), always (=1: its
# absence is a failure) or never (=0).
READ_MODE=${BULLETIN_DOCKER_READ:-auto}
QUERY_BINS=0
have_bin bulletin-query && have_bin bulletin-worker && QUERY_BINS=1
CLI_LIST=0
docker run --rm "$IMAGE" bulletin list --help >/dev/null 2>&1 && CLI_LIST=1
READ_TIER=0
case "$READ_MODE" in
1)
    [ "$QUERY_BINS" = 1 ] || fail "build: BULLETIN_DOCKER_READ=1 but the image lacks bulletin-query or bulletin-worker"
    READ_TIER=1
    ;;
0) log "NOTE BULLETIN_DOCKER_READ=0: read-tier checks skipped" ;;
*)
    if [ "$QUERY_BINS" = 1 ] && [ "$CLI_LIST" = 1 ]; then
        READ_TIER=1
    else
        log "NOTE read-tier checks wait for bulletin-query, bulletin-worker and 'bulletin list' (image has: query tier $QUERY_BINS, list $CLI_LIST)"
    fi
    ;;
esac

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
if [ "$QUERY_BINS" = 1 ]; then
    compose up -d --scale worker=$N_WORKERS >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "up: docker-compose up failed"; }
else
    compose up -d store ingest >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "up: docker-compose up failed"; }
fi
wait_healthy 180 || fail "up: stack not healthy"
pass "up ($(($(date +%s) - t)) s to healthy: $(compose ps -q | wc -l) containers)"
# Both published services answer from the host.
"${CLI[@]}" health --service ingest >&2 || fail "up: ingest not healthy through 127.0.0.1:$PORT_INGEST"
if [ "$QUERY_BINS" = 1 ]; then
    "${CLI[@]}" health --service query >&2 || fail "up: query not healthy through 127.0.0.1:$PORT_QUERY"
fi

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

# --- hot backup, as docker/README.md tells ----------------------------------------------------------
compose exec -T store bulletin-store --backup /data/backup-test >"$WORK/backup.log" 2>&1 ||
    { cat "$WORK/backup.log" >&2; fail "backup: bulletin-store --backup in the store container"; }
docker cp "$(compose ps -q store)":/data/backup-test "$WORK/backup" >/dev/null ||
    fail "backup: docker cp of the backup"
compose exec -T store rm -rf /data/backup-test || fail "backup: removing the copy from the volume"
[ -s "$WORK/backup/data.mdb" ] || fail "backup: no data.mdb in the copy"
if command -v mdb_stat >/dev/null 2>&1; then
    entries=$(mdb_stat -s articles "$WORK/backup" 2>/dev/null | awk '/Entries:/ { print $2 }')
    [ "$entries" = "$N_ARTICLES" ] || fail "backup: the copy's articles database has '${entries}' entries, want $N_ARTICLES"
    pass "backup (hot copy out of the store container: $entries articles, mdb_stat)"
else
    pass "backup (hot copy out of the store container: data.mdb $(stat -c %s "$WORK/backup/data.mdb") bytes; no mdb_stat to count)"
fi

# --- read tier ------------------------------------------------------------------------------------
if [ "$READ_TIER" = 1 ]; then
    # Python classes for the wire contract: BULLETIN_PYTHON (the build's), else made here.
    PYDIR=${BULLETIN_PYTHON:-}
    if [ -z "$PYDIR" ] || [ ! -f "$PYDIR/bulletin_pb2.py" ]; then
        PYDIR=$WORK/py
        mkdir -p "$PYDIR"
        protoc --python_out="$PYDIR" -I"$ROOT/proto" "$ROOT/proto/bulletin.proto" ||
            fail "read: protoc --python_out (protobuf-compiler) failed"
    fi
    # A python3 with zmq and protobuf (one earlier in PATH, from pyenv or a venv, may lack them).
    PY=
    for cand in python3 /usr/bin/python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import zmq, google.protobuf' 2>/dev/null; then
            PY=$(command -v "$cand")
            break
        fi
    done
    [ -n "$PY" ] || fail "read: no python3 with the zmq and protobuf modules (python3-zmq, python3-protobuf)"
    WORKERS=$(compose ps -q worker)
    [ "$(echo "$WORKERS" | wc -w)" = "$N_WORKERS" ] || fail "read: $(echo "$WORKERS" | wc -w) workers running, want $N_WORKERS"
    # shellcheck disable=SC2086
    HOSTS=$(docker inspect -f '{{.Config.Hostname}}' $WORKERS | paste -sd, -)
    VICTIM=$(echo "$WORKERS" | head -1)
    t=$(date +%s)
    PYTHONPATH=$PYDIR PYTHONDONTWRITEBYTECODE=1 "$PY" "$HERE/read_probe.py" \
        "tcp://127.0.0.1:$PORT_QUERY" "$WORK/articles.jsonl" "$WORK/results.jsonl" \
        --workers "$HOSTS" --kill-cmd "docker kill $VICTIM" --kill-requests 1500 \
        >"$WORK/probe.out" 2>&1 ||
        { cat "$WORK/probe.out" >&2; fail "read: $(tail -1 "$WORK/probe.out")"; }
    sed 's/^/    /' "$WORK/probe.out" >&2
    pass "read (list and get of all $N_ARTICLES through 127.0.0.1:$PORT_QUERY, all $N_WORKERS workers served, one killed with no failed request; $(($(date +%s) - t)) s)"
    if [ "$CLI_LIST" = 1 ]; then
        # The same through the `bulletin` CLI from the host: list every page, get 100 by id.
        MAXSEQ=$("$PY" -c 'import json, sys; print(max(json.loads(l)["seq"] for l in open(sys.argv[1]) if l.strip()))' "$WORK/results.jsonl")
        "${CLI[@]}" list --all --oldest --total --json --min-seq "$MAXSEQ" >"$WORK/list.jsonl" 2>"$WORK/list.err" ||
            { cat "$WORK/list.err" >&2; fail "cli-read: bulletin list through the query port failed"; }
        # shellcheck disable=SC2046
        "${CLI[@]}" get --json --min-seq "$MAXSEQ" $(tr ' ' '\n' <"$WORK/ids" | head -100) >"$WORK/qget.jsonl" 2>"$WORK/qget.err" ||
            { cat "$WORK/qget.err" >&2; fail "cli-read: bulletin get through the query port failed"; }
        "$PY" - "$WORK/articles.jsonl" "$WORK/ids" "$WORK/list.jsonl" "$WORK/qget.jsonl" "$HOSTS" <<'PYEOF' >"$WORK/cli.out" 2>&1 ||
import json, sys
sent = [json.loads(l) for l in open(sys.argv[1])]
ids = list(map(int, open(sys.argv[2]).read().split()))
by_id = dict(zip(ids, sent))
pages = [json.loads(l) for l in open(sys.argv[3]) if l.strip()]
hosts = sys.argv[5].split(",")
items = [it for p in pages for it in p["items"]]
if sorted(it["id"] for it in items) != sorted(ids):
    sys.exit(f"bulletin list --all: {len(items)} items in {len(pages)} pages, want the {len(ids)} ingested")
if pages[0].get("total") != len(ids):
    sys.exit(f"bulletin list --total: total {pages[0].get('total')}, want {len(ids)}")
for it in items:
    if it["title"] != by_id[it["id"]]["title"] or it["key"] != by_id[it["id"]]["key"]:
        sys.exit(f"bulletin list: id {it['id']} differs")
for p in pages:
    if not any(str(p.get("served_by", "")).startswith(h) for h in hosts):
        sys.exit(f"bulletin list: page served_by {p.get('served_by')!r} names no worker")
got = [json.loads(l) for l in open(sys.argv[4]) if l.strip()]
if [g["id"] for g in got] != ids[:100]:
    sys.exit(f"bulletin get: {len(got)} articles, want the first 100 ids")
for g in got:
    s = by_id[g["id"]]
    if g["title"] != s["title"] or g["body"].split() != s["body"].split():
        sys.exit(f"bulletin get: id {g['id']} differs")
print(f"{len(items)} listed in {len(pages)} pages, 100 got")
PYEOF
            { cat "$WORK/cli.out" >&2; fail "cli-read: $(tail -1 "$WORK/cli.out")"; }
        pass "cli-read (bulletin list --all and get from the host through the query port: $(cat "$WORK/cli.out"))"
    else
        log "SKIP cli-read: the image's bulletin has no 'list' command yet"
    fi
    # The killed worker comes back (restart policy) or is replaced; either way the stack
    # must be whole again before the store is recreated.
    compose up -d --scale worker=$N_WORKERS >"$WORK/up2.log" 2>&1 || { cat "$WORK/up2.log" >&2; fail "read: up after the kill"; }
    wait_healthy 120 || fail "read: stack not healthy after the kill"
else
    log "SKIP read: list/get through the query port, 3 workers served, worker kill (see NOTE above)"
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
