#!/usr/bin/env bash
# setup-ort.sh fetches the ONNX Runtime shared library that infergate loads.
#
# The library comes from the npm package onnxruntime-node, pinned by version and
# by the sha256 of its tarball. The tarball is verified before anything is
# extracted; only bin/napi-v6/linux/x64/libonnxruntime.so.1 is kept, in ./lib.
# Running it again when the library is in place costs one sha256 of a file.
set -euo pipefail

ORT_NPM_VERSION="${ORT_NPM_VERSION:-1.30.0}"
ORT_NPM_SHA256="${ORT_NPM_SHA256:-6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75}"
LIB_DIR="${LIB_DIR:-lib}"
LIB="$LIB_DIR/libonnxruntime.so.1"
STAMP="$LIB_DIR/.onnxruntime-node-$ORT_NPM_VERSION"

if [ -f "$LIB" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(sha256sum "$LIB" | cut -d' ' -f1)" ]; then
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) arch=x64 ;;
  Linux/aarch64) arch=arm64 ;;
  *) echo "setup-ort: no onnxruntime-node build for $(uname -s)/$(uname -m); set INFERGATE_ORT_LIB to a libonnxruntime you have" >&2; exit 1 ;;
esac

command -v npm >/dev/null || { echo "setup-ort: npm is needed to fetch onnxruntime-node (apt-get install npm)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup-ort: fetching onnxruntime-node@$ORT_NPM_VERSION from npm" >&2
(cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_NPM_VERSION" >/dev/null)
tgz="$tmp/onnxruntime-node-$ORT_NPM_VERSION.tgz"
got=$(sha256sum "$tgz" | cut -d' ' -f1)
if [ "$got" != "$ORT_NPM_SHA256" ]; then
  echo "setup-ort: checksum mismatch for onnxruntime-node@$ORT_NPM_VERSION: got $got, want $ORT_NPM_SHA256" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp" "package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
mkdir -p "$LIB_DIR"
# Rename into place so that a concurrent reader never sees half a library.
cp "$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1" "$LIB.tmp"
sync "$LIB.tmp" 2>/dev/null || true
mv -f "$LIB.tmp" "$LIB"
sha256sum "$LIB" | cut -d' ' -f1 > "$STAMP"
echo "setup-ort: installed $LIB (ONNX Runtime from onnxruntime-node@$ORT_NPM_VERSION)" >&2
