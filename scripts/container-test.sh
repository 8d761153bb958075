#!/usr/bin/env bash
# Build the Debian 12 test image (Containerfile) and run the test suite
# (scripts/test.sh debug) in it twice:
#   a. under the container engine's default seccomp profile, which denies
#      io_uring: the tests that need it skip (exit 77), the rest must pass;
#   b. under scripts/seccomp-io_uring.json, the default profile plus
#      io_uring_setup, io_uring_enter and io_uring_register: every test runs.
# Exits 0 when both runs pass.
#
#   scripts/container-test.sh
#   scripts/container-test.sh --update-seccomp [default-profile.json]
#       regenerate scripts/seccomp-io_uring.json from Podman's default profile
#       (/usr/share/containers/seccomp.json, package containers-common)
#
# Uses podman, or docker when only docker is installed (scripts/setup.sh
# container installs podman). Where no registry is reachable, the debian:12
# base image is built from the Debian archive with debootstrap (the mirror
# comes from apt's sources, or DEBIAN_MIRROR) and kept for the next run.
set -euo pipefail

cd "$(dirname "$0")/.."

image=tao-c-test
base=docker.io/library/debian:12
profile=scripts/seccomp-io_uring.json
io_uring_calls='"io_uring_enter", "io_uring_register", "io_uring_setup"'

usage() {
    echo "usage: scripts/container-test.sh [--update-seccomp [default-profile.json]]" >&2
    exit 2
}

# update_seccomp <default profile>: write $profile, the default profile with
# the io_uring syscalls allowed.
update_seccomp() {
    python3 - "$1" "$profile" <<EOF
import json, sys

src, dst = sys.argv[1:]
with open(src) as f:
    prof = json.load(f)
calls = [$io_uring_calls]
if any(set(calls) & set(rule["names"]) for rule in prof["syscalls"]):
    sys.exit(f"{src} already has a rule for io_uring: edit {dst} by hand")
prof["syscalls"].append({"names": calls, "action": "SCMP_ACT_ALLOW", "args": [],
                         "comment": "io_uring, for Tao-C's engine",
                         "includes": {}, "excludes": {}})
with open(dst, "w") as f:
    json.dump(prof, f, indent="\t")
    f.write("\n")
EOF
    echo "wrote $profile from $1"
}

case "${1:-}" in
"") [ $# -eq 0 ] || usage ;;
--update-seccomp)
    [ $# -le 2 ] || usage
    update_seccomp "${2:-/usr/share/containers/seccomp.json}"
    exit 0
    ;;
*) usage ;;
esac

started=$SECONDS
summary=() # one line per step
failed=()

banner() { printf '\n==== %s\n' "$*"; }
note() { echo "container-test: $*"; }
die() {
    echo "container-test: $*" >&2
    exit 1
}

elapsed() {
    local s=$(($1))
    printf '%dm%02ds' $((s / 60)) $((s % 60))
}

# record <step> <ok|FAILED> <start seconds> [detail]
record() {
    summary+=("$(printf '  %-16s %-7s %8s  %s' "$1" "$2" "$(elapsed $((SECONDS - $3)))" "${4:-}")")
    echo "container-test: $1: $2 in $(elapsed $((SECONDS - $3)))${4:+ ($4)}"
    if [ "$2" = FAILED ]; then
        failed+=("$1")
    fi
}

if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
else
    sudo=
fi

# ---- the container engine

if command -v podman >/dev/null; then
    engine=podman
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
elif command -v docker >/dev/null; then
    die "docker is installed but its daemon does not answer, and podman is missing: run scripts/setup.sh container"
else
    die "neither podman nor docker is installed: run scripts/setup.sh container"
fi

tmp=$(mktemp -d -t tao-container-test.XXXXXX)
cleanup() {
    local m
    # An interrupted debootstrap can leave /proc or /sys mounted in its tree.
    awk -v d="$tmp/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do $sudo umount -l "$m" || true; done
    $sudo rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

# want <value> <hard limit>: the value, or the hard limit when it is lower and
# this process may not raise it (no CAP_SYS_RESOURCE). The container inherits
# podman's limits and cannot go above them either.
capeff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
want() {
    if [ "$engine" = docker ] || [ "$2" = unlimited ] || (((16#$capeff >> 24) & 1)); then
        echo "$1"
    elif [ "$1" = unlimited ] || [ "$1" -gt "$2" ]; then
        echo "$2"
    else
        echo "$1"
    fi
}
nofile=$(want 65536 "$(ulimit -Hn)")
# podman lowers its own nproc limit to 32768 where it cannot raise it.
nproc=$(want 32768 "$(ulimit -Hu)")
memlock_kib=$(want unlimited "$(ulimit -Hl)") # registered io_uring buffers count here
if [ "$memlock_kib" = unlimited ]; then
    memlock=-1
else
    memlock=$((memlock_kib * 1024)) # --ulimit takes bytes, ulimit -l shows KiB
fi
ulimits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc"
         --ulimit "memlock=$memlock:$memlock")

if [ "$engine" = podman ]; then
    # Podman sets nofile and nproc to 1048576 and more by default, which fails
    # without CAP_SYS_RESOURCE; crun 1.8 cannot run containers on a hybrid
    # cgroup v1/v2 layout, runc can. Both go into a containers.conf of our own
    # (it covers the RUN steps of the build too), leaving /etc/containers be.
    runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}')
    if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] && [ "$runtime" = crun ]; then
        command -v runc >/dev/null ||
            die "crun cannot run containers on this host's cgroup v1/hybrid layout and runc is missing: run scripts/setup.sh container"
        note "crun does not support this host's hybrid cgroup layout: using runc"
        runtime=runc
    fi
    cat >"$tmp/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc", "memlock=$memlock:$memlock"]

[engine]
runtime = "$runtime"
EOF
    export CONTAINERS_CONF=$tmp/containers.conf
    pull_never=(--pull=never)
else
    runtime=$(docker info --format '{{.DefaultRuntime}}')
    pull_never=() # docker build uses the local base image unless told --pull
fi
note "$engine, runtime $runtime, ${ulimits[*]}"

# ---- the base image: debian:12 from a registry, else from the Debian archive

# The Debian mirror apt uses for bookworm, else deb.debian.org.
debian_mirror() {
    local m
    # shellcheck disable=SC2016 # apt's own $(FIELD) syntax
    m=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(CODENAME)' 2>/dev/null |
        awk '$2 == "bookworm" || $3 == "bookworm" { print $1; exit }') || true
    echo "${m:-http://deb.debian.org/debian/}"
}

banner "base image $base"
t0=$SECONDS
if $engine image inspect "$base" >/dev/null 2>&1; then
    record base ok "$t0" "$base already in local storage"
elif $engine pull -q "$base" >/dev/null 2>"$tmp/pull.log"; then
    record base ok "$t0" "pulled $base"
else
    note "cannot pull $base ($(tail -n1 "$tmp/pull.log")); building it with debootstrap"
    command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/setup.sh container"
    mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
    note "debootstrap --variant=minbase bookworm from $mirror"
    if ! $sudo debootstrap --variant=minbase bookworm "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
        tail -n 30 "$tmp/debootstrap.log" >&2
        die "debootstrap failed"
    fi
    # The build's apt-get update fetches fresh lists; PATH and CMD as the
    # official image has them.
    $sudo rm -rf "$tmp"/rootfs/var/cache/apt/archives/*.deb "$tmp"/rootfs/var/lib/apt/lists/*
    if ! $sudo tar -C "$tmp/rootfs" -c . |
        $engine import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' - "$base" >"$tmp/import.log" 2>&1; then
        cat "$tmp/import.log" >&2
        die "$engine import failed"
    fi
    $sudo rm -rf --one-file-system "$tmp/rootfs"
    record base ok "$t0" "built from $mirror"
fi

# ---- the test image

banner "build $image (Containerfile)"
t0=$SECONDS
previous=$($engine image inspect --format '{{.Id}}' "$image" 2>/dev/null) || true
# The build's apt-get reaches the Debian mirror through the host's network.
if ! $engine build "${pull_never[@]}" --network=host "${ulimits[@]}" -t "$image" -f Containerfile .; then
    record build FAILED "$t0"
    die "the image did not build"
fi
# Drop the image this build replaced rather than let old ones pile up.
if [ -n "$previous" ] && [ "$previous" != "$($engine image inspect --format '{{.Id}}' "$image")" ]; then
    $engine rmi "$previous" >/dev/null 2>&1 || true
fi
record build ok "$t0"

# The tests only use loopback (127.0.0.1 and ::1): no network beyond it.
run=("$engine" run --rm --network=none "${ulimits[@]}")

# ---- does each profile do what the runs below assume?

probe='
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.syscall(425, 4, ctypes.create_string_buffer(120))  # io_uring_setup
if fd >= 0:
    print("allowed")
else:
    e = ctypes.get_errno()
    print("denied (" + errno.errorcode.get(e, str(e)) + ")")
'
banner "io_uring under each seccomp profile"
t0=$SECONDS
default_says=$("${run[@]}" "$image" python3 -c "$probe" 2>&1) || true
io_uring_says=$("${run[@]}" --security-opt "seccomp=$profile" "$image" python3 -c "$probe" 2>&1) || true
note "default profile: io_uring $default_says"
note "$profile: io_uring $io_uring_says"
if [[ $default_says == denied* && $io_uring_says == allowed ]]; then
    record profiles ok "$t0" "default: $default_says; $profile: $io_uring_says"
else
    record profiles FAILED "$t0" "expected denied, then allowed"
fi

# ---- the two runs

# run_suite <step> <label> [run options...]
run_suite() {
    local step=$1 label=$2 t0=$SECONDS status=0 log=$tmp/$1.log totals failures
    shift 2
    banner "$step: scripts/test.sh debug, $label"
    "${run[@]}" "$@" "$image" 2>&1 | tee "$log" || status=$?
    # test.sh's last line has the totals; ctest lists the tests that failed.
    totals=$(sed -n 's/^summary: //p' "$log" | tail -n1)
    failures=$(awk '/^The following tests FAILED:/ { f = 1; next }
                    f && /^\t/ { printf " %s", $3; next } { f = 0 }' "$log")
    if [ "$status" -eq 0 ]; then
        record "$step" ok "$t0" "$label: $totals"
    else
        record "$step" FAILED "$t0" "$label: ${totals:-no totals} (exit $status)${failures:+; failed:$failures}"
    fi
}

run_suite run-a "default seccomp, io_uring denied"
run_suite run-b "$profile, io_uring allowed" --security-opt "seccomp=$profile"

banner "container-test summary ($engine, runtime $runtime)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -eq 0 ]; then
    echo "container-test: both runs passed in $(elapsed $((SECONDS - started)))"
else
    echo "container-test: FAILED: ${failed[*]} (in $(elapsed $((SECONDS - started))))"
    exit 1
fi
