#!/usr/bin/env bash
# Makes sure this host has what krun needs to build and run: JDK 25, Maven, a C toolchain with musl,
# the Linux source and kernel build tools, busybox-static (the default rootfs), and for the tests tmux,
# qemu-utils (qemu-img: qcow2 images), e2fsprogs (ext4 images), passt (--net passt, and the virtio-net
# guest test), socat (the third-party unix datagram peer of the virtio-net TAP guest test), podman (with
# conmon: the container engine of krun oci's test, KrunOciPodmanIT), containerd (with ctr and its runc shim:
# KrunOciContainerdIT starts a private containerd of its own), iproute2 (ip: krun oci brings up the loopback
# of a container's own network namespace), iperf3 (bench/net: the guest's
# iperf3 is the host's binary, copied into its rootfs, against an iperf3 server on the host), and
# libvirglrenderer1 (--gpu virgl) with libegl-dev and libgles-dev (virglcheck, the EGL program of
# org.krun.device.gpu's virgl guest test, links against them), virgl-server (virglrenderer's render server:
# --gpu venus) with mesa-vulkan-drivers (the host's Vulkan driver, lavapipe without a GPU), libvulkan-dev and
# glslang-tools (venuscheck, the Vulkan program of the Venus guest test, and its shader), and pulseaudio (the sound server that
# org.krun.device.snd's pulse backend tests start for themselves).
# Installs missing Debian packages when run as root; otherwise prints the command to run.
# Usage: scripts/host-setup.sh [--quiet]
set -euo pipefail

quiet="${1:-}"
say() { [[ "$quiet" == "--quiet" ]] || printf '[setup] %s\n' "$*" >&2; }

# Java 25 or newer: KRUN_JAVA_HOME, JAVA_HOME, java on the PATH or a usual install folder.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/find-java.sh"
krun_find_java || exit 1

# Debian package -> a file that proves it is installed.
declare -A need=(
    [maven]=/usr/bin/mvn
    [build-essential]=/usr/bin/gcc
    [make]=/usr/bin/make
    [musl-tools]=/usr/bin/musl-gcc
    [linux-source-6.12]=/usr/src/linux-source-6.12.tar.xz
    [bc]=/usr/bin/bc
    [bison]=/usr/bin/bison
    [flex]=/usr/bin/flex
    [libelf-dev]=/usr/include/libelf.h
    [libssl-dev]=/usr/include/openssl/ssl.h
    [xz-utils]=/usr/bin/xz
    [lz4]=/usr/bin/lz4
    [cpio]=/usr/bin/cpio
    [busybox-static]=/usr/share/doc/busybox-static
    [tmux]=/usr/bin/tmux
    [qemu-utils]=/usr/bin/qemu-img
    [e2fsprogs]=/usr/sbin/mke2fs
    [file]=/usr/bin/file
    [debootstrap]=/usr/sbin/debootstrap
    [passt]=/usr/bin/passt
    [socat]=/usr/bin/socat
    [iperf3]=/usr/bin/iperf3
    [podman]=/usr/bin/podman
    [containerd]=/usr/bin/containerd
    [iproute2]=/usr/sbin/ip
    [e2fsprogs]=/sbin/mkfs.ext4
    [qemu-utils]=/usr/bin/qemu-img
    [libvirglrenderer1]=/usr/lib/x86_64-linux-gnu/libvirglrenderer.so.1
    [libegl-dev]=/usr/include/EGL/egl.h
    [libgles-dev]=/usr/include/GLES2/gl2.h
    [virgl-server]=/usr/libexec/virgl_render_server
    [mesa-vulkan-drivers]=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
    [libvulkan-dev]=/usr/include/vulkan/vulkan.h
    [glslang-tools]=/usr/bin/glslangValidator
    [pulseaudio]=/usr/bin/pulseaudio
)
missing=()
for pkg in "${!need[@]}"; do
    [[ -e "${need[$pkg]}" ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
IFS=$'\n' missing=($(sort <<<"${missing[*]}")); unset IFS
if [[ $(id -u) -ne 0 ]]; then
    echo "krun: missing packages; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
say "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq "${missing[@]}" >/dev/null
say "packages installed"
