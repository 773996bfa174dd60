# shellcheck shell=bash
# Removes the staged CRIU and the build packages edge-ha installed for it.
set -euo pipefail
rm -rf "$STAGE"
# shellcheck disable=SC2086 # a list of package names
apt_remove_ours $BUILD_PACKAGES
