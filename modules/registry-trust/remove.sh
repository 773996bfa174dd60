# shellcheck shell=bash
# Removes the CA certificate install.sh put for ADDRESS, and its folder when
# nothing else is in it.
set -euo pipefail
rm -f "/etc/docker/certs.d/$ADDRESS/ca.crt"
rmdir "/etc/docker/certs.d/$ADDRESS" 2>/dev/null || true
