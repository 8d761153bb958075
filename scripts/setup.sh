#!/usr/bin/env bash
# Install what building, testing and benchmarking Tao-C needs on Debian 12.
# Idempotent and non-interactive: packages already present are not touched.
# (systemd is there for systemd-socket-activate, which the restart test uses.)
#
#   scripts/setup.sh [container]
#
# "container" adds what scripts/container-test.sh needs: podman, runc (crun
# refuses hosts with a hybrid cgroup layout), debootstrap (to build the
# debian:12 base image where no registry is reachable) and uidmap (rootless
# podman).
set -euo pipefail

pkgs=(build-essential gcc g++ clang cmake make pkg-config git ca-certificates
      liburing-dev libwolfssl-dev libjemalloc-dev libcmocka-dev
      libclang-rt-14-dev openssl gnuplot-nox python3 redis-server redis-tools
      curl wrk nginx-light iproute2 haproxy systemd)

case "${1:-}" in
"") ;;
container) pkgs+=(podman runc debootstrap uidmap) ;;
*)
    echo "usage: scripts/setup.sh [container]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
else
    sudo=
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
