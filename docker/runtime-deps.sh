#!/bin/sh
# runtime-deps.sh BINARY... : print the Debian packages that hold the shared libraries the
# binaries link directly (DT_NEEDED), one a line, sorted, for the Dockerfile's runtime stage
# (apt brings their own dependencies). Runs in the build stage, where the -dev packages
# pulled the runtime ones in. Fails when a library is missing or belongs to no package, so a
# new dependency cannot be left out of the image unnoticed.
set -eu
needed=$(for b in "$@"; do objdump -p "$b" | awk '$1 == "NEEDED" { print $2 }'; done | sort -u)
paths=$(ldd "$@" | awk '$2 == "=>" { print $1, $3 }' | sort -u)
pkgs=$(for so in $needed; do
    # the dynamic loader (needed by binaries using thread-local storage from a
    # static library) is part of libc6, which the base image has; ldd prints it
    # without "=>"
    case "$so" in ld-linux*.so.*) continue ;; esac
    lib=$(printf '%s\n' "$paths" | awk -v so="$so" '$1 == so { print $2; exit }')
    case "$lib" in
    /*) ;;
    *)
        echo "runtime-deps: $so: not found" >&2
        exit 1
        ;;
    esac
    pkg=
    for p in "$lib" "$(readlink -f "$lib")" "/usr$lib"; do
        pkg=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$pkg" ] && break
    done
    if [ -z "$pkg" ]; then
        echo "runtime-deps: no package holds $lib ($so)" >&2
        exit 1
    fi
    echo "$pkg"
done)
printf '%s\n' "$pkgs" | sort -u
