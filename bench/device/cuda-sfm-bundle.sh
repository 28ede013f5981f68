#!/usr/bin/env bash
# Packs the CUDA build of pycolmap (pycolmap-cuda12 4.2.1, cp312 manylinux) for the GPU device
# machine into .dev-cuda/ (in .gitignore, ~25 MB), small enough to travel with the lead's .dev/
# bundle and a small copy of the data within the 64 MiB transfer limit.
#   bench/device/cuda-sfm-bundle.sh            # here, once (downloads a 73 MB wheel)
# What it links (readelf -d on pycolmap/_core*.so): libcudart.so.12 and libcurand.so.10 beyond
# the wheel's own libs, and libX11/libXext/libSM/libICE from the system. No curand symbol is
# used (nm -D --undefined-only lists none), so the device's own libcurand.so.10 (its CUDA 13
# nvidia-curand package) satisfies the link (where there is none, any library under that name
# does, since nothing is looked up in it); libcudart.so.12 (0.7 MB) comes from
# nvidia-cuda-runtime-cu12 and runs on driver 580. The X11 libraries of this machine are packed
# as a fallback and used only where the device lacks them.
# The core's CUDA code holds machine code for sm_50…sm_120 plus PTX: only the H200's (sm_90)
# machine code is kept; the other entries are zeroed in place (their headers stay, so the file's
# layout is unchanged) before the core is stripped and xz-compressed.
# In a device call: carry [".dev", ".dev-cuda", ".data"] and start with
#   source .dev/unpack.sh && source .dev-cuda/unpack.sh
# (after .dev's, so that this pycolmap comes first on PYTHONPATH).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$tmp/whl" pycolmap-cuda12==4.2.1 "nvidia-cuda-runtime-cu12>=12.4,<13" \
  2> >(grep -v "is ignored: it is neither" >&2)
mkdir -p "$tmp/site" "$tmp/rt"
unzip -q "$tmp"/whl/pycolmap_cuda12-*.whl -d "$tmp/site"
unzip -q "$tmp"/whl/nvidia_cuda_runtime_cu12-*.whl -d "$tmp/rt"
rm -rf .dev-cuda && mkdir -p .dev-cuda "$tmp/lib/x11"
so=$(ls "$tmp"/site/pycolmap/_core.*.so)
python3 - "$so" <<'PY'
import struct, sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
magic, pos, kept, zeroed = struct.pack("<I", 0xBA55ED50), 0, 0, 0
while (start := data.find(magic, pos)) >= 0:
    header, size = struct.unpack_from("<HQ", data, start + 6)
    at, end = start + header, start + header + size
    entries = []
    while at < end:
        kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, at)
        arch = struct.unpack_from("<I", data, at + 28)[0]
        entries.append((kind, arch, at + entry_header, payload))
        at += entry_header + payload
    has_sm90 = any(k == 2 and a == 90 for k, a, _, _ in entries)
    for kind, arch, body, payload in entries:
        # Keep sm_90 machine code; keep PTX only where a fat binary has no sm_90 code to use.
        if (kind == 2 and arch == 90) or (kind == 1 and not has_sm90):
            kept += payload
        else:
            data[body:body + payload] = bytes(payload)
            zeroed += payload
    pos = end
open(path, "wb").write(data)
print(f"CUDA code: kept {kept / 2**20:.1f} MiB (sm_90), zeroed {zeroed / 2**20:.1f} MiB (other GPUs)")
PY
strip --strip-unneeded "$so"
xz -6 -T0 -c "$so" > .dev-cuda/pycolmap_core.xz
basename "$so" > .dev-cuda/pycolmap_core.name
rm "$so"
(cd "$tmp/site" && tar -cf - pycolmap pycolmap_cuda12.libs pycolmap_cuda12-*.dist-info) | xz -6 -T0 > .dev-cuda/site.tar.xz
cp "$tmp"/rt/nvidia/cuda_runtime/lib/libcudart.so.12 "$tmp/lib/"
for lib in libX11.so.6 libXext.so.6 libSM.so.6 libICE.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 \
           libuuid.so.1 libbsd.so.0 libmd.so.0; do
  src=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}')
  [ -n "$src" ] && cp -L "$src" "$tmp/lib/x11/"
done
(cd "$tmp/lib" && tar -cf - .) | xz -9 -T0 > .dev-cuda/libs.tar.xz
cat > .dev-cuda/unpack.sh <<'UNPACK'
# Sourced after .dev/unpack.sh, from the repo root: puts pycolmap-cuda12 first on PYTHONPATH.
if [ ! -f /tmp/site-cuda/.ok ]; then
  mkdir -p /tmp/site-cuda/lib && tar -xJf .dev-cuda/site.tar.xz -C /tmp/site-cuda \
    && xz -dc .dev-cuda/pycolmap_core.xz > "/tmp/site-cuda/pycolmap/$(cat .dev-cuda/pycolmap_core.name)" \
    && tar -xJf .dev-cuda/libs.tar.xz -C /tmp/site-cuda/lib \
    && for f in /tmp/site-cuda/lib/x11/*; do
         ldconfig -p | grep -q "^\s*$(basename "$f") " || mv "$f" /tmp/site-cuda/lib/
       done \
    && curand=$(python3 -c 'import glob, site; print(next((f for d in site.getsitepackages() + ["/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu"] for f in sorted(glob.glob(d + "/**/libcurand.so.10*", recursive=True))), ""))') \
    && { if [ -n "$curand" ]; then ln -sf "$curand" /tmp/site-cuda/lib/libcurand.so.10; \
         else ln -sf libcudart.so.12 /tmp/site-cuda/lib/libcurand.so.10; fi; } \
    && touch /tmp/site-cuda/.ok
fi
export PYTHONPATH=/tmp/site-cuda:$PYTHONPATH LD_LIBRARY_PATH=/tmp/site-cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
UNPACK
du -sh .dev-cuda; ls -la .dev-cuda
