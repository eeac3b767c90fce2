#!/usr/bin/env bash
# Installs universeg-worker as a systemd service: the binary and its DICOM library
# (libUniverSegDCMTK.so, in PREFIX/lib/universeg-worker), the shipped weights, the units
# (universeg-worker.service and universeg-worker@.service), the sysusers.d and tmpfiles.d entries,
# and a default /etc/universeg-worker/worker.json when there is none. See Deploy/README.md.
#
#   sudo Deploy/install.sh                      # into /usr/local, builds the release binary if needed
#   Deploy/install.sh --dry-run                 # print what would be done, change nothing
#   DESTDIR=/tmp/stage Deploy/install.sh        # staged install (packaging): files only
#   sudo Deploy/install.sh --prefix /usr --binary /path/to/universeg-worker
#
# Enabling and starting is left to the operator (`systemctl enable --now universeg-worker`).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: Deploy/install.sh [--prefix DIR] [--destdir DIR] [--binary FILE] [--dry-run] [--help]

  --prefix DIR    installation prefix (default /usr/local): DIR/bin/universeg-worker,
                  DIR/share/universeg-worker/; units under DIR/lib/systemd/system for /usr and
                  /usr/local, /etc/systemd/system otherwise. Configuration is always in /etc.
  --destdir DIR   stage everything under DIR (also: DESTDIR=DIR); installs files only: no users,
                  no directories in /var, no daemon-reload
  --binary FILE   the universeg-worker executable to install (default: .build/release/universeg-worker,
                  built with `swift build -c release` when missing); its DICOM library
                  libUniverSegDCMTK.so is taken from beside it
  --dry-run       print every step, change nothing
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/usr/local
DESTDIR="${DESTDIR:-}"
BINARY=""
DRY_RUN=0

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || { echo "error: --prefix needs a directory" >&2; exit 2; }; PREFIX="$2"; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --destdir) [ $# -ge 2 ] || { echo "error: --destdir needs a directory" >&2; exit 2; }; DESTDIR="$2"; shift 2 ;;
        --destdir=*) DESTDIR="${1#*=}"; shift ;;
        --binary) [ $# -ge 2 ] || { echo "error: --binary needs a file" >&2; exit 2; }; BINARY="$2"; shift 2 ;;
        --binary=*) BINARY="${1#*=}"; shift ;;
        --dry-run|-n) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

case "$PREFIX" in
    /*) PREFIX="${PREFIX%/}"; [ -n "$PREFIX" ] || PREFIX=/ ;;
    *) echo "error: --prefix must be an absolute path, got '$PREFIX'" >&2; exit 2 ;;
esac
if [ -n "$DESTDIR" ]; then
    case "$DESTDIR" in /*) ;; *) DESTDIR="$PWD/$DESTDIR" ;; esac
    DESTDIR="${DESTDIR%/}"
fi

say() { echo "install.sh: $*"; }
# Runs a command, or only prints it with --dry-run.
run() {
    if [ "$DRY_RUN" -eq 1 ]; then echo "would run: $*"; else echo "+ $*"; "$@"; fi
}

# Where things go (without DESTDIR).
BINDIR="$PREFIX/bin"
DATADIR="$PREFIX/share/universeg-worker"
case "$PREFIX" in
    /usr|/usr/local)
        UNITDIR="$PREFIX/lib/systemd/system"
        SYSUSERSDIR="$PREFIX/lib/sysusers.d"
        TMPFILESDIR="$PREFIX/lib/tmpfiles.d" ;;
    *)  # systemd does not search other prefixes
        UNITDIR=/etc/systemd/system
        SYSUSERSDIR=/etc/sysusers.d
        TMPFILESDIR=/etc/tmpfiles.d ;;
esac
CONFDIR=/etc/universeg-worker
CREDSTORE=/etc/credstore

# Sources: check everything before changing anything.
DEPLOY="$ROOT/Deploy"
WEIGHTS="$ROOT/Config/models/universeg-cpu.safetensors"
for f in "$DEPLOY/universeg-worker.service" "$DEPLOY/universeg-worker@.service" \
         "$DEPLOY/sysusers.d/universeg-worker.conf" "$DEPLOY/tmpfiles.d/universeg-worker.conf" \
         "$DEPLOY/universeg-worker.env.example" "$DEPLOY/README.md" \
         "$ROOT/Config/universeg-worker.json" "$WEIGHTS" "$ROOT/Config/models/MODEL_CARD.md"; do
    [ -f "$f" ] || { echo "error: missing $f (run this script from a complete checkout)" >&2; exit 1; }
done
if [ -n "$(head -c 200 "$WEIGHTS" | grep -a '^version https://git-lfs' || true)" ]; then
    echo "error: $WEIGHTS is a Git LFS pointer, not the weights (git lfs pull)" >&2; exit 1
fi

if [ -z "$DESTDIR" ] && [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    echo "error: installing into the system needs root (sudo $0 ...), or use --destdir/DESTDIR or --dry-run" >&2
    exit 1
fi

if [ -n "$BINARY" ]; then
    [ -f "$BINARY" ] && [ -x "$BINARY" ] || { echo "error: --binary $BINARY is not an executable file" >&2; exit 1; }
else
    BINARY="$ROOT/.build/release/universeg-worker"
    if [ ! -x "$BINARY" ]; then
        say "no release build at $BINARY: building it"
        if [ "$DRY_RUN" -eq 1 ]; then
            echo "would run: (cd $ROOT && swift build -c release --product universeg-worker && swift build -c release --product UniverSegDCMTK)"
        else
            command -v swift >/dev/null 2>&1 || { echo "error: swift is not on PATH: build first, or pass --binary FILE" >&2; exit 1; }
            (cd "$ROOT" && swift build -c release --product universeg-worker && swift build -c release --product UniverSegDCMTK)
            [ -x "$BINARY" ] || { echo "error: the build did not produce $BINARY" >&2; exit 1; }
        fi
    fi
fi

# The DICOM library the binary loads at its first DICOM call, from PREFIX/lib/universeg-worker.
SHIM="$(dirname "$BINARY")/libUniverSegDCMTK.so"
if [ ! -f "$SHIM" ]; then
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "would need $SHIM (swift build -c release --product UniverSegDCMTK, with the binary's build flags)"
    else
        echo "error: $SHIM is missing: build it beside the binary (swift build --product UniverSegDCMTK, same flags)" >&2
        exit 1
    fi
fi

DRY_NOTE=""
[ "$DRY_RUN" -eq 0 ] || DRY_NOTE=" (dry run: nothing is changed)"
say "installing into ${DESTDIR:-/} (prefix $PREFIX)$DRY_NOTE"

# Binary and data.
run install -D -m 0755 "$BINARY" "$DESTDIR$BINDIR/universeg-worker"
run install -D -m 0644 "$SHIM" "$DESTDIR$PREFIX/lib/universeg-worker/libUniverSegDCMTK.so"
run install -D -m 0644 "$WEIGHTS" "$DESTDIR$DATADIR/universeg-cpu.safetensors"
run install -D -m 0644 "$ROOT/Config/models/MODEL_CARD.md" "$DESTDIR$DATADIR/MODEL_CARD.md"
run install -D -m 0644 "$ROOT/Config/universeg-worker.json" "$DESTDIR$DATADIR/universeg-worker.json"
run install -D -m 0644 "$DEPLOY/universeg-worker.env.example" "$DESTDIR$DATADIR/universeg-worker.env.example"
run install -D -m 0644 "$DEPLOY/README.md" "$DESTDIR$DATADIR/README.md"

# Units: the ExecStart= path follows the prefix.
for unit in universeg-worker.service universeg-worker@.service; do
    dest="$DESTDIR$UNITDIR/$unit"
    if [ "$BINDIR" = /usr/local/bin ]; then
        run install -D -m 0644 "$DEPLOY/$unit" "$dest"
    elif [ "$DRY_RUN" -eq 1 ]; then
        echo "would run: install -D -m 0644 $DEPLOY/$unit $dest  (with ExecStart=$BINDIR/universeg-worker)"
    else
        echo "+ install -D -m 0644 $DEPLOY/$unit $dest  (with ExecStart=$BINDIR/universeg-worker)"
        tmp="$(mktemp)"
        sed "s#^ExecStart=/usr/local/bin/universeg-worker #ExecStart=$BINDIR/universeg-worker #" "$DEPLOY/$unit" > "$tmp"
        install -D -m 0644 "$tmp" "$dest"
        rm -f "$tmp"
    fi
done
run install -D -m 0644 "$DEPLOY/sysusers.d/universeg-worker.conf" "$DESTDIR$SYSUSERSDIR/universeg-worker.conf"
run install -D -m 0644 "$DEPLOY/tmpfiles.d/universeg-worker.conf" "$DESTDIR$TMPFILESDIR/universeg-worker.conf"

# Configuration: never overwrite an operator's file.
if [ -e "$DESTDIR$CONFDIR/worker.json" ]; then
    say "keeping the existing $DESTDIR$CONFDIR/worker.json (defaults: $DATADIR/universeg-worker.json)"
else
    run install -D -m 0644 "$ROOT/Config/universeg-worker.json" "$DESTDIR$CONFDIR/worker.json"
fi
# Credentials (Kafka passwords) live in /etc/credstore, readable by root only.
if [ ! -d "$DESTDIR$CREDSTORE" ]; then
    run install -d -m 0700 "$DESTDIR$CREDSTORE"
fi

if [ -n "$DESTDIR" ]; then
    say "staged install: on the target, run systemd-sysusers $SYSUSERSDIR/universeg-worker.conf," \
        "systemd-tmpfiles --create $TMPFILESDIR/universeg-worker.conf and systemctl daemon-reload"
    exit 0
fi

# The user and the directories.
if command -v systemd-sysusers >/dev/null 2>&1; then
    run systemd-sysusers "$SYSUSERSDIR/universeg-worker.conf"
elif ! getent passwd universeg >/dev/null; then
    run useradd --system --user-group --home-dir /var/lib/universeg-worker --no-create-home \
        --shell /usr/sbin/nologin --comment "UniverSeg segmentation worker" universeg
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    run systemd-tmpfiles --create "$TMPFILESDIR/universeg-worker.conf"
else
    run install -d -m 0750 -o root -g universeg /var/lib/universeg-worker /var/lib/universeg-worker/support-sets
fi

# Only a running systemd can reload (not in a container or a chroot without it).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    run systemctl daemon-reload
else
    say "systemd is not running here: skipped systemctl daemon-reload"
fi

cat <<EOF
install.sh: done$DRY_NOTE. Next:
  edit $CONFDIR/worker.json (kafka.brokers, store.url; every key: $DATADIR/universeg-worker.json)
  systemctl enable --now universeg-worker          # one worker, or per instance:
  cp $CONFDIR/worker.json $CONFDIR/a.json && systemctl enable --now universeg-worker@a
  journalctl -u universeg-worker -f
EOF
