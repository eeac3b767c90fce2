# Shared by Scripts/test and Scripts/demo: install what a fresh Debian 12 machine lacks.
# Sourced, not executed.

# systemd: systemd-analyze, for the unit checks in Tests/WorkerCLITests/DeployUnitsTests.swift
# (a fresh Debian container has libsystemd0 but not the systemd package).
# DICOM: libdcmtk-dev (pixel decoding and SEG writing, linked by Sources/CDcmtk), and for the tests
# a real PACS (orthanc with its DICOMweb plugin), DCMTK's command-line tools and dciodvfy
# (dicom3tools), which checks every SEG the tests produce against the Segmentation IOD.
# prometheus: promtool, which checks and unit-tests Deploy/monitoring's alerting rules.
# Packaging (Scripts/package, Tests/WorkerCLITests/DebianPackageTests.swift): dpkg-dev
# (dpkg-shlibdeps), lintian, help2man (the manual page), patchelf (drops the toolchain's RUNPATH
# from a test build's binary).
# HTTP: libcurl4-openssl-dev, libcurl's headers for Sources/CCurl (libcurl.so.4 itself is opened at
# the first HTTP exchange); openssl, which makes the test CA of the HTTPS tests.
APT_PACKAGES=(pkg-config librdkafka-dev libopenblas-dev libpng-dev libssl-dev libsystemd-dev systemd
              libdcmtk-dev dcmtk orthanc orthanc-dicomweb dicom3tools prometheus
              dpkg-dev lintian help2man patchelf libcurl4-openssl-dev openssl)

# Test fixtures and the independent SEG reader of the DICOM tests (pydicom writes the source
# series, highdicom reads every SEG back); script side only, the worker never imports Python.
DICOM_PIP_PACKAGES=(pydicom==3.0.2 highdicom==0.28.2 pillow)

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

ensure_dicom_python() {
    if ! python3 -c 'import pydicom, highdicom, PIL' >/dev/null 2>&1; then
        echo "installing: ${DICOM_PIP_PACKAGES[*]} (pip)" >&2
        python3 -m pip install --quiet --disable-pip-version-check "${DICOM_PIP_PACKAGES[@]}" >/dev/null || {
            echo "error: 'pip install ${DICOM_PIP_PACKAGES[*]}' failed" >&2
            return 1
        }
    fi
}
