#!/usr/bin/env bash
# Packs what a GPU machine without Deno and without a registry needs to run the doctor
# (examples/doctor.ts): the deno binary, xz-compressed, and a DENO_DIR holding the npm
# packages it loads (rxjs, and webgpu with only linux-x64's dawn.node), as a tar.xz. Both
# unpack with python3's lzma/tarfile, so the GPU machine needs nothing else.
#
#   bash tools/gpu_bundle.sh [OUT]         # default OUT: .gpu_bundle (about 45 MB)
#
# On the GPU machine, from a copy of this repository with OUT beside it:
#   python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('OUT/deno.xz'), open('OUT/deno','wb'))"
#   python3 -c "import tarfile; tarfile.open('OUT/deno_dir.tar.xz').extractall('OUT')"
#   chmod +x OUT/deno
#   DENO_DIR=OUT/deno_dir OUT/deno run --no-config --cached-only -A examples/doctor.ts
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-.gpu_bundle}"
rm -rf "${out}"
mkdir -p "${out}"
export DENO_DIR="${out}/deno_dir"
# --no-config: only what the doctor's module graph needs, not every package of deno.lock. The
# Worker loads Dawn by a dynamic import, so Dawn is named here.
deno cache --no-config --quiet examples/doctor.ts lib/devices/webgpu_worker.ts npm:webgpu@0.6.2
# Dawn's package ships a dawn.node for every platform; the GPU machine is linux-x64.
for dir in "${DENO_DIR}"/npm/registry.npmjs.org/webgpu/*/dist/*; do
  [[ "$(basename "${dir}")" == "linux-x64" ]] || rm -rf "${dir}"
done
xz -T2 -6 -c "$(command -v deno)" > "${out}/deno.xz"
tar -C "${out}" -cJf "${out}/deno_dir.tar.xz" deno_dir
rm -rf "${DENO_DIR}"
du -sh "${out}"/*
