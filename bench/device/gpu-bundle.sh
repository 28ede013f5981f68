#!/usr/bin/env bash
# Packs what the GPU device machine lacks into .devg/ (git-ignored, ~11 MB): the packages of
# ../shared/tools/device-bundle.sh's .dev/ without its CPU pycolmap (20 MB), so that .devg/ +
# .dev-cuda/ (bench/device/cuda-sfm-bundle.sh, 27 MB, pycolmap with CUDA SIFT) + the full-size
# plush-dog photos (23 MB) fit the device's 64 MiB transfer limit together.
#   ../shared/tools/device-bundle.sh && bench/device/cuda-sfm-bundle.sh && bench/device/gpu-bundle.sh
# In a device call: carry [".devg", ".dev-cuda", ".data/<set>"] and start with
#   source .devg/unpack.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
[ -f .dev/site.tar.xz ] || { echo "no .dev/site.tar.xz: run ../shared/tools/device-bundle.sh first" >&2; exit 2; }
[ -f .dev-cuda/unpack.sh ] || { echo "no .dev-cuda/: run bench/device/cuda-sfm-bundle.sh first" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xJf .dev/site.tar.xz -C "$tmp"
mkdir -p .devg
(cd "$tmp" && tar --exclude='./pycolmap' --exclude='./pycolmap.libs' --exclude='./pycolmap-*' -cf - .) \
  | xz -6 -T0 > .devg/site.tar.xz
cat > .devg/unpack.sh <<'UNPACK'
# Sourced at the start of a device call, from the repo root: .devg's packages, then the CUDA
# pycolmap of .dev-cuda first on the path.
if [ ! -f /tmp/site/.ok ]; then
  mkdir -p /tmp/site && tar -xJf .devg/site.tar.xz -C /tmp/site && touch /tmp/site/.ok
fi
export PYTHONPATH=/tmp/site:$PWD/bench:$PWD TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 \
  TORCH_EXTENSIONS_DIR=/tmp/torch_ext PYTHONUNBUFFERED=1 ORT_DISABLE_TELEMETRY=1 HF_HUB_OFFLINE=1
source .dev-cuda/unpack.sh
UNPACK
du -sh .devg
