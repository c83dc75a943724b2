# shellcheck shell=bash
# tests/docker/engine.sh — a private Docker engine for the compose test (source it, bash).
#
# Debian 12 machines here have no Docker engine running and no registry access. This file
# gives the test (and CI) one, the same way every time:
#
#   engine_start   use the engine `docker info` already reaches, if any; otherwise install
#                  docker.io + docker-compose + debootstrap (apt) when missing and start a
#                  private dockerd with its own data root, exec root, pidfile and socket,
#                  and export DOCKER_HOST for it.
#   engine_base_image
#                  make sure `debian:bookworm-slim` exists in the engine: if not, build it
#                  with `debootstrap --variant=minbase` from the host's Debian mirror and
#                  `docker import` it, so Dockerfiles keep their ordinary FROM line and
#                  nothing is pulled from a registry.
#   engine_stop    only for an engine we started: stop dockerd by its PID, then delete the
#                  bridges it created and put iptables (filter, nat) and ip_forward back as
#                  they were before it started, which removes its DOCKER chains and rules.
#
# Settings (environment):
#   BULLETIN_DOCKER_ROOT   state kept between runs on this machine: the data root (images,
#                          build cache, so the base image and the apt layers are reused).
#                          Default /var/lib/bulletin-docker. Delete it to start from nothing.
#   BULLETIN_DOCKER_RUN    exec root, pidfile, socket, dockerd log (short path: unix sockets
#                          live under it). Default /run/bulletin-docker.
#
# Everything logs as "engine: ..." lines on stderr.

ENGINE_OWNED=0
ENGINE_PID=
BULLETIN_DOCKER_ROOT=${BULLETIN_DOCKER_ROOT:-/var/lib/bulletin-docker}
BULLETIN_DOCKER_RUN=${BULLETIN_DOCKER_RUN:-/run/bulletin-docker}

engine_log() { printf 'engine: %s\n' "$*" >&2; }

# engine_install: the three Debian packages, only when something is missing.
engine_install() {
    local need=0
    command -v dockerd >/dev/null 2>&1 || need=1
    command -v docker-compose >/dev/null 2>&1 || need=1
    command -v debootstrap >/dev/null 2>&1 || need=1
    command -v iptables >/dev/null 2>&1 || need=1
    [ "$need" = 0 ] && return 0
    engine_log "installing docker.io docker-compose debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || return 1
    apt-get install -y -q --no-install-recommends docker.io docker-compose debootstrap iptables >&2
}

# s_engine_chains: DOCKER* iptables chains, one "table chain" a line.
s_engine_chains() {
    local t
    command -v iptables >/dev/null 2>&1 || return 0
    for t in filter nat; do
        iptables -t "$t" -S 2>/dev/null | awk -v t="$t" '$1 == "-N" && $2 ~ /^DOCKER/ { print t, $2 }'
    done
}

s_engine_bridges() {
    ip -o link show type bridge 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' |
        grep -E '^(docker0|br-[0-9a-f]+)$' || true
}

engine_start() {
    if docker info >/dev/null 2>&1; then
        engine_log "using the engine docker info reaches (${DOCKER_HOST:-default socket})"
        ENGINE_OWNED=0
        return 0
    fi
    engine_install || { engine_log "cannot install docker.io"; return 1; }

    local sock="$BULLETIN_DOCKER_RUN/docker.sock"
    local pidfile="$BULLETIN_DOCKER_RUN/docker.pid"
    mkdir -p "$BULLETIN_DOCKER_ROOT" "$BULLETIN_DOCKER_RUN/exec" || return 1

    # A dockerd left over by an earlier run that was killed: stop it first.
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        engine_log "stopping a leftover private dockerd pid=$(cat "$pidfile")"
        s_engine_kill "$(cat "$pidfile")"
    fi
    rm -f "$pidfile" "$sock"

    # What the host had before our engine: kept in $BULLETIN_DOCKER_RUN/before until
    # engine_stop has put it back, so a run that was killed is cleaned up by the next one.
    local before="$BULLETIN_DOCKER_RUN/before"
    if [ ! -d "$before" ]; then
        mkdir -p "$before.tmp" || return 1
        s_engine_bridges >"$before.tmp/bridges"
        s_engine_chains >"$before.tmp/chains"
        cat /proc/sys/net/ipv4/ip_forward >"$before.tmp/ip_forward" 2>/dev/null
        { iptables-save -t filter && iptables-save -t nat; } >"$before.tmp/iptables" 2>/dev/null ||
            rm -f "$before.tmp/iptables"
        mv "$before.tmp" "$before" || return 1
    else
        engine_log "an earlier run did not clean up; its record of the host is reused"
    fi

    engine_log "starting dockerd data-root=$BULLETIN_DOCKER_ROOT exec-root=$BULLETIN_DOCKER_RUN/exec"
    dockerd --data-root "$BULLETIN_DOCKER_ROOT" \
        --exec-root "$BULLETIN_DOCKER_RUN/exec" \
        -p "$pidfile" \
        -H "unix://$sock" \
        >"$BULLETIN_DOCKER_RUN/dockerd.log" 2>&1 </dev/null &
    ENGINE_PID=$!
    ENGINE_OWNED=1
    export DOCKER_HOST="unix://$sock"

    local i
    for i in $(seq 1 120); do
        if docker info >/dev/null 2>&1; then
            engine_log "dockerd ready pid=$ENGINE_PID after ${i}x0.5s"
            return 0
        fi
        if ! kill -0 "$ENGINE_PID" 2>/dev/null; then
            engine_log "dockerd exited; last lines of its log:"
            tail -20 "$BULLETIN_DOCKER_RUN/dockerd.log" >&2
            return 1
        fi
        sleep 0.5
    done
    engine_log "dockerd not ready after 60s; last lines of its log:"
    tail -20 "$BULLETIN_DOCKER_RUN/dockerd.log" >&2
    return 1
}

# s_engine_kill PID: SIGTERM, wait up to 20 s, then SIGKILL.
s_engine_kill() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    engine_log "dockerd pid=$pid ignored SIGTERM for 20s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# engine_base_image: debian:bookworm-slim from debootstrap, unless the engine has it.
engine_base_image() {
    local image=debian:bookworm-slim
    if docker image inspect "$image" >/dev/null 2>&1; then
        engine_log "base image $image present (reused)"
        return 0
    fi
    command -v debootstrap >/dev/null 2>&1 || engine_install || return 1
    local sources=/etc/apt/sources.list.d/debian.sources mirror rootfs
    mirror=$(awk '/^URIs:/ { print $2; exit }' "$sources" 2>/dev/null)
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$(mktemp -d /var/tmp/bulletin-rootfs.XXXXXX) || return 1
    engine_log "debootstrap --variant=minbase bookworm from $mirror (about a minute)"
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
        engine_log "debootstrap failed; last lines:"
        tail -20 "$rootfs.log" >&2
        rm -rf "$rootfs" "$rootfs.log"
        return 1
    fi
    # The same apt sources as the host (deb822), and the host's apt settings for them.
    rm -f "$rootfs/etc/apt/sources.list"
    if [ -f "$sources" ]; then
        cp "$sources" "$rootfs/etc/apt/sources.list.d/debian.sources"
    else
        echo "deb $mirror bookworm main" >"$rootfs/etc/apt/sources.list"
    fi
    # Slim: no package caches or lists in the image.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    engine_log "docker import $image"
    if ! tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$image" >/dev/null; then
        engine_log "docker import failed"
        rm -rf "$rootfs" "$rootfs.log"
        return 1
    fi
    rm -rf "$rootfs" "$rootfs.log"
}

# s_engine_restore_host: delete the bridges our engine created and put iptables (filter,
# nat) and ip_forward back as recorded before it started; then forget that record.
s_engine_restore_host() {
    local before="$BULLETIN_DOCKER_RUN/before" br
    [ -d "$before" ] || return 0
    for br in $(s_engine_bridges); do
        if ! grep -qx "$br" "$before/bridges" 2>/dev/null; then
            ip link delete "$br" 2>/dev/null && engine_log "deleted bridge $br"
        fi
    done
    # dockerd added DOCKER* chains, jumps to them, MASQUERADE rules and set the FORWARD
    # policy to DROP. When no DOCKER chain existed before, put the filter and nat tables
    # back exactly as they were; otherwise (another engine owns them) touch nothing.
    if [ ! -s "$before/chains" ] && [ -s "$before/iptables" ]; then
        if iptables-restore <"$before/iptables"; then
            engine_log "iptables filter/nat restored; DOCKER chains left: $(s_engine_chains | wc -l)"
        else
            engine_log "iptables-restore failed"
        fi
    fi
    if [ -s "$before/ip_forward" ]; then
        sysctl -q -w "net.ipv4.ip_forward=$(cat "$before/ip_forward")" >/dev/null 2>&1 || true
    fi
    rm -rf "$before"
}

engine_stop() {
    [ "$ENGINE_OWNED" = 1 ] || return 0
    ENGINE_OWNED=0
    if [ -n "$ENGINE_PID" ]; then
        engine_log "stopping dockerd pid=$ENGINE_PID"
        s_engine_kill "$ENGINE_PID"
        wait "$ENGINE_PID" 2>/dev/null || true
    fi
    rm -f "$BULLETIN_DOCKER_RUN/docker.sock" "$BULLETIN_DOCKER_RUN/docker.pid"

    s_engine_restore_host
    unset DOCKER_HOST
}
