# shellcheck shell=bash
# The CRIU cache's steps run on this machine (the operator's), not on a
# host: they copy a CRIU binary to or from the first host of an architecture
# over SSH, as edge-ha's connection reaches it: its key, and only its own
# host key trusted. Both written to a private folder for the copy and
# removed after it.
# Env: ADDRESS, PORT, LOGIN (the SSH user), PRIVATE_KEY, HOST_KEY, HOST_NAME,
# CACHE (the cache folder; a leading ~ is this user's home), NAME (the
# binary's file name in it: version, architecture and patch).
set -euo pipefail
# shellcheck disable=SC2088 # a literal ~ in the setting, made this user's home here
case "$CACHE" in
  "~") folder=$HOME ;;
  "~/"*) folder=$HOME/${CACHE#"~/"} ;;
  *) folder=$CACHE ;;
esac
# shellcheck disable=SC2034 # read by the step that follows (cache-offer.sh, cache-keep.sh)
cached=$folder/$NAME
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$PRIVATE_KEY" >"$work/key"
chmod 0600 "$work/key"
if [ "$PORT" = 22 ]; then known=$ADDRESS; else known="[$ADDRESS]:$PORT"; fi
printf '%s %s\n' "$known" "$HOST_KEY" >"$work/known_hosts"
# copy FROM TO: scp with the host as a remote end written "@:PATH".
ssh_opts=(-i "$work/key" -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" -o ConnectTimeout=10)
# on_host ARGS...: runs a command on the host as the login.
on_host() { ssh "${ssh_opts[@]}" -p "$PORT" "$LOGIN@$ADDRESS" "$@"; }
copy() {
  local from=${1/#@:/$LOGIN@$ADDRESS:} to=${2/#@:/$LOGIN@$ADDRESS:}
  scp -q "${ssh_opts[@]}" -P "$PORT" "$from" "$to" ||
    { echo "copying CRIU between this machine's cache ($folder) and $HOST_NAME ($ADDRESS) failed" >&2; return 1; }
}
