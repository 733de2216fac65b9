#!/usr/bin/env bash
# Here (with network to the npm registry): puts llama.cpp's source where the GPU call carries it.
# node-llama-cpp's npm package holds llama/gitRelease.bundle, a git bundle of llama.cpp at the
# release it builds; this keeps the bundle and a compressed archive of its tree without the
# parts the build does not use (models/, docs/, the web UI, mobile examples), so the GPU machine
# needs no git. Result: .carry/llama/{gitRelease.bundle, llama.cpp-src.tar.xz, SOURCE.json}.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=${1:-3.22.1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack "node-llama-cpp@$VERSION" >/dev/null
tar xzf "node-llama-cpp-$VERSION.tgz" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
git clone -q package/llama/gitRelease.bundle src
commit=$(git -C src rev-parse HEAD)
mkdir -p "$ROOT/.carry/llama"
cp package/llama/gitRelease.bundle "$ROOT/.carry/llama/"
git -C src archive --format=tar --prefix=llama.cpp/ HEAD -- . ':!models' ':!docs' ':!tools/ui' \
  ':!.github' ':!examples/llama.android' ':!examples/llama.swiftui' | xz -T0 -6 > "$ROOT/.carry/llama/llama.cpp-src.tar.xz"
python3 - "$ROOT/.carry/llama/SOURCE.json" "$VERSION" "$commit" package/llama/llama.cpp.info.json <<'PY'
import json, sys
info = json.load(open(sys.argv[4]))
json.dump({"node_llama_cpp": sys.argv[2], "bundle_commit": sys.argv[3], "tag": info.get("tag"),
           "repo": info.get("llamaCppGithubRepo")}, open(sys.argv[1], "w"), indent=1)
PY
ls -l "$ROOT/.carry/llama"
du -sh "$ROOT/.carry/llama"
