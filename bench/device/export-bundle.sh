#!/usr/bin/env bash
# Packs gsply (the SPZ writer and the PLY reader of bench/export.py) with numba and llvmlite for
# the device's Python 3.12 into .dev-export/ (git-ignored, ~37 MB: llvmlite's library stripped,
# test folders dropped), which the device lacks. With .devg/ (11 MB) it fits the 64 MiB transfer
# limit; .dev-cuda/ does not fit beside it, so such a call exports a given PLY or the synthetic
# model rather than training one through SfM:
#   bench/device/export-bundle.sh            # WHEELS=DIR to pack wheels already downloaded
# In a device call: carry [".devg", ".dev-export"], then
#   source .devg/unpack.sh 2>/dev/null; source .dev-export/unpack.sh
#   python bench/export.py --synthetic 92887 --sh 3
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
wheels=${WHEELS:-$tmp/wheels}
if [ -z "${WHEELS:-}" ]; then
  pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    gsply==0.4.6 numba==0.62.1 llvmlite==0.45.1 -d "$wheels"
fi
mkdir -p "$tmp/site"
for w in "$wheels"/gsply-*cp312*.whl "$wheels"/numba-*cp312*.whl "$wheels"/llvmlite-*cp312*.whl; do
  [ -f "$w" ] || { echo "no Python 3.12 wheel matching $w" >&2; exit 2; }
  (cd "$tmp/site" && unzip -q -o "$w")
done
strip --strip-unneeded "$tmp/site/llvmlite/binding/libllvmlite.so"
find "$tmp/site" -name tests -type d -prune -exec rm -rf {} +
mkdir -p .dev-export
(cd "$tmp" && tar -cf - site) | xz -9 -T0 > .dev-export/site.tar.xz
cat > .dev-export/unpack.sh <<'UNPACK'
# Sourced at the start of a device call, from the repo root: gsply + numba + llvmlite first on
# the path.
if [ ! -f /tmp/site-export/.ok ]; then
  mkdir -p /tmp/site-export && tar -xJf .dev-export/site.tar.xz -C /tmp/site-export --strip-components=1 \
    && touch /tmp/site-export/.ok
fi
export PYTHONPATH=/tmp/site-export${PYTHONPATH:+:$PYTHONPATH}
UNPACK
du -sh .dev-export
