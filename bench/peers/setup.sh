#!/usr/bin/env bash
# Create one virtualenv per peer library under bench/.data/venvs/ (idempotent).
#
#   bash bench/peers/setup.sh            # create the missing venvs
#   FORCE=1 bash bench/peers/setup.sh    # recreate them all
#
# Peers (only PyPI is needed):
#   lifetimes       0.11.3 with the last stack it supports, pinned exactly
#   pymc-marketing  the latest release that installs (1.x needs Python >= 3.12)
#   clvkit          the latest release (needs Python >= 3.11, numpy >= 2.3, pandas >= 3)
#
# Every venv also gets pyarrow (to read the benchmark's Parquet; for lifetimes the
# last release that still runs on numpy 1.26). The installed
# versions are written to bench/.data/venvs/<peer>/versions.json; a venv whose
# versions.json exists is complete and is skipped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENVS="${VENVS:-$HERE/../.data/venvs}"
mkdir -p "$VENVS"

# An interpreter of at least the given minor version (pyenv installs, then PATH).
find_python() {
    local want="$1" candidate
    for candidate in "python$want" "$HOME/.pyenv/versions/$want"*/bin/python "python3"; do
        if command -v "$candidate" >/dev/null 2>&1 || [ -x "$candidate" ]; then
            if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] < tuple(map(int, '$want'.split('.'))))" 2>/dev/null; then
                echo "$candidate"
                return 0
            fi
        fi
    done
    return 1
}

make_venv() {
    local name="$1" python="$2"
    shift 2
    local dir="$VENVS/$name"
    if [ -f "$dir/versions.json" ] && [ -z "${FORCE:-}" ]; then
        echo "[setup] $name: exists ($dir), skipped"
        return 0
    fi
    rm -rf "$dir"
    echo "[setup] $name: creating with $("$python" --version) -> $dir"
    # (errexit does not apply inside a function called with ||, hence the returns)
    "$python" -m venv "$dir" || return 1
    # (grep drops the noise of index locations configured on this host but absent)
    "$dir/bin/python" -m pip install --quiet --upgrade pip 2> >(grep -v "is ignored" >&2) || return 1
    "$dir/bin/python" -m pip install --quiet "$@" 2> >(grep -v "is ignored" >&2) || return 1
    "$dir/bin/python" -c "import pyarrow.parquet" || return 1 # the runners read Parquet
    "$dir/bin/python" - "$dir/versions.json" "$@" <<'EOF'
import importlib.metadata as md, json, platform, re, sys
out = {"python": platform.python_version()}
wanted = {re.split(r"[<>=!~\[ ]", spec)[0] for spec in sys.argv[2:]}
extra = {"numpy", "scipy", "pandas", "pymc", "pytensor", "autograd", "matplotlib"}
for name in sorted(wanted | extra):
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        if name in wanted:
            sys.exit(f"{name} is not installed")
json.dump(out, open(sys.argv[1], "w"), indent=1, sort_keys=True)
print("[setup]", json.dumps(out, sort_keys=True))
EOF
}

PY311="$(find_python 3.11)"
PY312="$(find_python 3.12 || echo "$PY311")"

status=0
make_venv lifetimes "$PY311" \
    lifetimes==0.11.3 numpy==1.26.4 pandas==1.5.3 scipy==1.11.4 matplotlib==3.7.5 \
    autograd==1.9.1 "pyarrow<21" || { echo "[setup] lifetimes FAILED"; status=1; }
make_venv pymc-marketing "$PY312" pymc-marketing pyarrow || { echo "[setup] pymc-marketing FAILED"; status=1; }
make_venv clvkit "$PY311" clvkit pyarrow || { echo "[setup] clvkit FAILED"; status=1; }
exit $status
