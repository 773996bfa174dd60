# shellcheck shell=bash
# Makes this host's Docker engine trust the registry at ADDRESS (HOST:PORT)
# by its CA certificate CA_PEM, the way Docker reads it on every connection
# (no engine restart): /etc/docker/certs.d/ADDRESS/ca.crt.
set -euo pipefail
dir=/etc/docker/certs.d/$ADDRESS
mkdir -p "$dir"
printf '%s\n' "$CA_PEM" >"$dir/ca.crt.new"
mv "$dir/ca.crt.new" "$dir/ca.crt"
