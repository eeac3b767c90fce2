# Shared by Scripts/test and Scripts/demo: install what a fresh Debian 12 machine lacks.
# Sourced, not executed.

# systemd: systemd-analyze, for the unit checks in Tests/WorkerCLITests/DeployUnitsTests.swift
# (a fresh Debian container has libsystemd0 but not the systemd package).
APT_PACKAGES=(pkg-config librdkafka-dev libopenblas-dev libpng-dev libsystemd-dev systemd)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_apt_packages() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing: ${missing[*]}" >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_swift() {
    if ! command -v swift >/dev/null 2>&1; then
        for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
            if [ -x "$d/swift" ]; then export PATH="$d:$PATH"; break; fi
        done
    fi
    command -v swift >/dev/null 2>&1 || { echo "error: Swift 6 toolchain not found on PATH" >&2; exit 1; }
}
