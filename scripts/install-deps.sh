#!/bin/sh
# Installs what vow needs to build and test on Debian 12, and nothing when
# everything is already there. Needs root (or sudo) only when something is
# missing.
set -eu

# python3-msgpack, python3-numpy, python3-pytest, python3-twisted: the
# Python package (python/) and its tests, which the test suite runs;
# python3-dev: the headers its C part (vow._fastcodec) is built with;
# procps: pgrep, with which the CLI tests look for leftover processes.
packages="gcc libc6-dev make cmake pkg-config libuv1-dev libmsgpack-dev libcmocka-dev libjansson-dev libsqlite3-dev python3-dev python3-msgpack python3-numpy python3-pytest python3-twisted procps"
# Extra tools for the CI stages: the clang build, the valgrind run, an
# sshd for the launcher test (which skips without one), and Open MPI for
# the MPI transport and its tests (neither is built without it).
if [ "${VOW_DEPS_FULL:-0}" = 1 ]; then
  packages="$packages clang valgrind libclang-rt-14-dev openssh-server"
  packages="$packages openssh-client libopenmpi-dev openmpi-bin"
  # GNU parallel, for the CLI tests that compare vow run with it; Slurm
  # and munge, for the one-node Slurm the cluster test starts; iproute2,
  # for the hosts the other cluster test makes in network namespaces.
  packages="$packages parallel slurm-wlm munge iproute2"
fi

missing=""
for p in $packages; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=sudo
  else
    echo "error: missing packages:$missing; run this script as root to install them" >&2
    exit 1
  fi
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing >/dev/null
