# shellcheck shell=bash
# shellcheck disable=SC2154 # folder, cached, work: set by cache-ssh.sh, which runs first
# On this machine, before the stage: offers the first host of an
# architecture the CRIU edge-ha built for it earlier (kept by cache-keep.sh),
# so that it need not build one (minutes on a Pi). Copied to OFFERED there;
# stage.sh uses it only if it is the wanted version and passes `criu check`
# on that host, and removes it either way. Prints the offered binary's
# sha256, or nothing when the cache has none.
# Env: as cache-ssh.sh, and OFFERED.
[ -f "$cached" ] || exit 0
# A login through sudo gets it in its home (a relative path), in a folder that may not exist yet.
case "$OFFERED" in /*) ;; *) on_host mkdir -p "$(dirname "$OFFERED")" ;; esac
copy "$cached" "@:$OFFERED"
sha256sum "$cached" | cut -d' ' -f1
