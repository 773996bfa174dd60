# shellcheck shell=bash
# Imports the root file system tarball TARBALL (copied here, checked against
# SHA256) as image REF with CHANGES (Dockerfile instructions, one per line),
# unless the engine has REF; the tarball goes either way.
set -euo pipefail
if ! docker image inspect "$REF" >/dev/null 2>&1; then
  check_sha256 "$TARBALL" "$SHA256"
  instructions=()
  while IFS= read -r c; do [ -z "$c" ] || instructions+=(--change "$c"); done <<<"$CHANGES"
  docker import "${instructions[@]}" "$TARBALL" "$REF" >/dev/null
fi
rm -f "$TARBALL"
