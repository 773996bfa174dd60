# shellcheck shell=bash
# A service's checkpoints on a host: what migration, the sync loop and the
# failover agents all do. edge-ha embeds this file in the scripts it runs on
# the hosts (lib/ha/service-container.ts checkpointFunctions).
#
# A checkpoint holds the processes, not the files: the container's own
# changes to its file system (overlay2's upper layer, whiteouts and opaque
# folders included) and its named volumes are packed beside the CRIU images
# as rootfs.tar and volumes/NAME.tar, covered by the same manifest.

# files_of ID: container ID's storage driver and upper layer, then a line
# "NAME SOURCE" per named volume. One inspect per container (they never
# change while it exists), kept in /run: Docker's API takes 30-40 ms on a
# busy node, and a migration asks while the service is frozen (it asks
# once before, to fill this).
files_of() {
  local cache=/run/edge-ha-files-$1
  if [ ! -s "$cache" ]; then
    docker container inspect -f '{{.GraphDriver.Name}} {{.GraphDriver.Data.UpperDir}}{{println}}{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{.Source}}{{println}}{{end}}{{end}}' "$1" >"$cache.new" &&
      mv "$cache.new" "$cache" || return 1
  fi
  cat "$cache"
}

# capture_files ID: packs container ID's files into the current checkpoint folder.
capture_files() {
  local info driver upper
  info=$(files_of "$1") || return 1
  read -r driver upper <<<"$info"
  [ "$driver" = overlay2 ] || { echo "the engine's storage driver is $driver; edge-ha carries file changes with overlay2 only" >&2; return 1; }
  tar --xattrs --xattrs-include='trusted.*' -C "$upper" -cf rootfs.tar . || return 1
  printf '%s\n' "$info" | tail -n +2 |
    while read -r name src; do [ -n "$name" ] || continue; mkdir -p volumes; tar -C "$src" -cf "volumes/$name.tar" . || return 1; done
}

# apply_files ID: unpacks the current checkpoint folder's files into container ID (created, not started).
apply_files() {
  local info upper f name src
  info=$(files_of "$1") || return 1
  if [ -f rootfs.tar ]; then
    read -r _ upper <<<"$info"
    [ -d "$upper" ] || { echo "container $1 has no overlay2 upper layer to restore its files into" >&2; return 1; }
    tar --xattrs --xattrs-include='trusted.*' -C "$upper" -xf rootfs.tar || return 1
  fi
  for f in volumes/*.tar; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .tar)
    src=$(printf '%s\n' "$info" | tail -n +2 | awk -v n="$name" '$1 == n { print $2 }')
    [ -d "$src" ] || { echo "container $1 mounts no volume $name to restore into" >&2; return 1; }
    { find "$src" -mindepth 1 -delete && tar -C "$src" -xf "$f"; } || return 1
  done
}

# write_manifest: MANIFEST.sha256 (every file's sha256) in the current checkpoint folder.
write_manifest() {
  # shellcheck disable=SC2094 # the manifest leaves itself out (-name)
  find . -type f ! -name MANIFEST.sha256 -exec sha256sum {} + >MANIFEST.sha256
}

# checkpoint_locked SERVICE COMMAND...: runs a `docker checkpoint create` or
# `docker start --checkpoint` of SERVICE, alone for that service, with
# containerd's leftover checkpoint content collected before and after it.
#
# Why: Docker 20.10 leaves each checkpoint's blobs (its image tar, the
# container's spec, the index) in containerd's content store until
# containerd's garbage collector gets to them. A checkpoint or restore that
# writes identical content before then (the same container's spec again;
# restoring the checkpoint just made, as a rollback does) fails with "content
# sha256:...: already exists", and for a dump that is AFTER CRIU has frozen,
# dumped and killed the processes: the images never reach the checkpoint
# folder, and the state is gone (moby#42900, containerd#8401; seen within a
# few moves in the lab).
#
# The collection is containerd's own garbage collector, run now (a lease made
# and dropped with --sync): it removes only what nothing references, so a
# checkpoint of another service that is under way keeps its blobs (they are
# leased, then held by its checkpoint image). The one thing it could take is
# the checkpoint a restore has uploaded and not yet started from (moby holds
# no lease on it): restores hold this host's lock shared, collections hold it
# alone, so neither waits for more than the other's few milliseconds.
collect_checkpoint_garbage() {
  local sock lease
  (
    flock -x 8
    for sock in /run/docker/containerd/containerd.sock /run/containerd/containerd.sock; do
      [ -S "$sock" ] || continue
      lease=$(ctr --address "$sock" -n moby leases create --expires 1m 2>/dev/null) || continue
      ctr --address "$sock" -n moby leases rm --sync "$lease" >/dev/null 2>&1 || true
    done
  ) 8>/run/edge-ha-checkpoint.lock
}
# checkpoint_content_left: whether containerd's store holds any checkpoint
# content now. Docker's own containerd keeps nothing else in it (Docker 20.10
# keeps its images itself), so a look at its blobs folder says it (~1 ms;
# asking `ctr` took 12-67 ms, in a restore's frozen window); a system
# containerd holds images too, so there it is asked, and is seldom empty.
checkpoint_content_left() {
  local sock
  if [ -S /run/docker/containerd/containerd.sock ]; then
    [ -n "$(ls -A /var/lib/docker/containerd/daemon/io.containerd.content.v1.content/blobs/sha256 2>/dev/null)" ]
    return
  fi
  sock=/run/containerd/containerd.sock
  [ -S "$sock" ] && [ -n "$(ctr --address "$sock" -n moby content ls -q 2>/dev/null | head -n 1)" ]
}
checkpoint_locked() {
  local service=$1 rc=0
  shift
  # Before: only when something is left (the collection after the previous
  # checkpoint has usually taken it), as this time is often a frozen service's.
  if checkpoint_content_left; then collect_checkpoint_garbage; fi
  # One checkpoint or restore of a service at a time: two at once write the
  # same container spec, and the second fails the same way (seen when a
  # migration's dump met the checkpoint its stopped sync loop had left running).
  (
    flock -x 9
    # Set by a caller for runc's CRIU (checkpoint_leave_running); empty, CRIU would look for a file "".
    [ -n "${CRIU_CONFIG_FILE:-}" ] || unset CRIU_CONFIG_FILE
    flock -s 8
    "$@"
  ) 8>/run/edge-ha-checkpoint.lock 9>"/run/edge-ha-checkpoint-$service.lock" || rc=$?
  # Afterwards, out of the caller's way.
  collect_checkpoint_garbage </dev/null >/dev/null 2>&1 &
  return "$rc"
}

# runc_root ID: the runc state folder that holds container ID: Docker's own
# containerd keeps it under /run/docker, a system containerd under
# /run/containerd.
runc_root() {
  local root
  for root in /run/docker/runtime-runc/moby /run/containerd/runc/moby; do
    if [ -d "$root/$1" ]; then echo "$root"; return 0; fi
  done
  echo "no runc state of container $1 in /run/docker/runtime-runc/moby or /run/containerd/runc/moby: is the engine's runtime runc?" >&2
  return 1
}

# criu_conf_ours FILE: FILE is a CRIU configuration file that edge-ha wrote
# (modules/criu), not one of the host's own.
criu_conf_ours() {
  head -n 1 "$1" 2>/dev/null | grep -q '^# Written by edge-ha:'
}

# runc_checkpoint SERVICE ID DIR [RUNC_OPTION...]: CRIU's images of
# container ID's processes into DIR (made anew), by runc itself, under the
# service's lock (a migration's dump and a restore of it must not meet).
# CRIU works in /run/edge-ha-criu-SERVICE (its dump.log is there), and
# /run/edge-ha-criu-SERVICE.before holds the time just before runc started.
runc_checkpoint() {
  local service=$1 id=$2 dir=$3 root work
  shift 3
  root=$(runc_root "$id") || return 1
  work=/run/edge-ha-criu-$service
  (
    flock -x 9
    # Set by a caller for runc's CRIU (checkpoint_leave_running); empty, CRIU would look for a file "".
    [ -n "${CRIU_CONFIG_FILE:-}" ] || unset CRIU_CONFIG_FILE
    # Under the lock: the work folder is the service's, shared by its sync loop's dumps and a
    # trial's or a migration's. Emptied before the lock, it was pulled from under a dump that
    # held it (a pulumi up's trial beside the running loop: a lab's sync failed that way).
    rm -rf "$dir" "$work"
    mkdir -p "$dir" || exit 1
    date +%s.%N >"$work.before"
    # Bounded: a dump that never ends (seen when CRIU's process was stopped in the middle of
    # one) would hold this lock, and every checkpoint and restore of the service behind it,
    # for good. Killed, CRIU leaves the container frozen: thawed, it goes on running.
    if ! timeout -k 5 "$EDGE_HA_DUMP_TIMEOUT" runc --root "$root" checkpoint "$@" --image-path "$dir" --work-path "$work" "$id"; then
      thaw_container "$id"
      echo "runc checkpoint of $service failed (or ran past $EDGE_HA_DUMP_TIMEOUT s); CRIU's log:" >&2
      tail -n 5 "$work/dump.log" >&2
      exit 1
    fi
  ) 9>"/run/edge-ha-checkpoint-$service.lock"
}

# checkpoint_exit SERVICE ID DIR: CRIU's images of container ID's processes
# into DIR, which then end: a migration's dump, with runc itself for the
# reasons below, in the order Docker's own checkpoint goes (runc dumps,
# kills and forgets the container; containerd sees its task exit and Docker
# marks it exited), minus the content store: about 300 ms less of the frozen
# window in the lab, and no dump blobs for a restore to collide with. On
# failure CRIU has let the processes go on, as with Docker's checkpoint.
checkpoint_exit() {
  runc_checkpoint "$1" "$2" "$3"
}

# checkpoint_leave_running SERVICE ID DIR: CRIU's images of container ID's
# processes into DIR, the processes left running; into TAKEN beside them, the
# moment whose state they hold: when CRIU started (its log's birth, a few ms
# before it froze them; runc takes 100-150 ms before that on a busy node,
# which a time read before runc would count as state lost), or, where the
# file system keeps no birth time, the moment before runc.
#
# Why runc itself and not `docker checkpoint create --leave-running`: Docker
# goes through containerd, which packs the images into its content store and
# out again, to the same files (the same 28 for the counter); runc alone took
# 150-290 ms where Docker took 400-520 (the counter, a busy lab node), and it
# leaves nothing in containerd's store to collide with (see above). Only for
# a checkpoint that leaves the processes running: stopping them behind
# Docker's back would look like a crash to it.
#
# Without CRIU's network lock (criuLeaveRunningConfig in modules/criu says
# why): a client's SYN that comes while it dumps waits for the thaw instead
# of being dropped and sent again a second or more later. A host provisioned
# before that file existed keeps the lock.
checkpoint_leave_running() {
  local work=/run/edge-ha-criu-$1 born conf=$EDGE_HA_CRIU_LEAVE_RUNNING_CONF
  [ -f "$conf" ] || conf=
  CRIU_CONFIG_FILE=$conf runc_checkpoint "$1" "$2" "$3" --leave-running || { rm -rf "$3"; return 1; }
  born=$(stat -c %.9W "$work/dump.log" 2>/dev/null) || born=0
  if [ "${born%.*}" -gt 0 ] 2>/dev/null; then echo "$born" >"$3/TAKEN"; else mv "$work.before" "$3/TAKEN"; fi
  rm -f "$work.before"
}
