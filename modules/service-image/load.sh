# shellcheck shell=bash
# Loads the docker save archive ARCHIVE (copied here, checked against
# SHA256) unless the engine has image ID as REF; the archive goes either way.
set -euo pipefail
if [ "$(docker image inspect -f '{{.Id}}' "$REF" 2>/dev/null)" != "$ID" ]; then
  check_sha256 "$ARCHIVE" "$SHA256"
  docker load -q -i "$ARCHIVE" >/dev/null
fi
rm -f "$ARCHIVE"
