# shellcheck shell=bash
# shellcheck disable=SC2154 # folder, cached, work: set by cache-ssh.sh, which runs first
# On this machine, after the stage: keeps the CRIU the first host of an
# architecture built (STAGE/criu there) in this machine's cache, for the next
# blank or re-imaged host's stage. Nothing to do for a distro's CRIU, or
# when the cache holds that very binary.
# Env: as cache-ssh.sh, and ORIGIN, BINARY_SHA256 (as the stage reported
# them), STAGE.
case "$ORIGIN" in built*) ;; *) exit 0 ;; esac
sha() { sha256sum "$1" | cut -d' ' -f1; }
if [ -f "$cached" ] && [ "$(sha "$cached")" = "$BINARY_SHA256" ]; then exit 0; fi
mkdir -p "$folder" ||
  { echo "edge-ha:criuCache: cannot make the folder $folder on $(hostname); set it to a folder this user can write, or to none" >&2; exit 1; }
copy "@:$STAGE/criu" "$work/criu"
if [ "$(sha "$work/criu")" != "$BINARY_SHA256" ]; then
  echo "the CRIU copied from $HOST_NAME has sha256 $(sha "$work/criu"), not the $BINARY_SHA256 its stage reported; not kept" >&2
  exit 1
fi
# Whole or not at all: another up may read the cache meanwhile.
install -m 0755 "$work/criu" "$cached.tmp.$$"
mv -f "$cached.tmp.$$" "$cached"
