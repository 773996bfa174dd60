# shellcheck shell=bash
# A service's container on a host and its checkpoint sync: what the
# provisioning (modules/ha-service), the operator's commands (lib/ha) and
# the failover agents (edge-ha-ctl) all do to it, so that a restore by an
# agent is the one `edge-ha service failover` does. Needs checkpoint.sh.

# ensure_network: creates edge-ha's service network unless it exists. Whether
# it does is read from the kernel (its bridge has a fixed name), not asked of
# Docker: on a swarm manager `docker network inspect` waits for the swarm's
# leader, ~20 s after the leader's node crashed, just when a failover needs it.
ensure_network() {
  [ -d "/sys/class/net/$EDGE_HA_BRIDGE" ] ||
    docker network create --subnet "$EDGE_HA_SUBNET" -o "com.docker.network.bridge.name=$EDGE_HA_BRIDGE" "$EDGE_HA_NETWORK" >/dev/null ||
    docker network inspect "$EDGE_HA_NETWORK" >/dev/null
}

# service_replace create|run NAME DOCKER_ARGS...: replaces any container NAME
# by a new one, created (prints its id) or running (`run -d`).
service_replace() {
  local how=$1 name=$2
  shift 2
  ensure_network || return 1
  docker rm -f "$name" >/dev/null 2>&1 || true
  if [ "$how" = run ]; then docker run -d "$@"; else docker create "$@"; fi
}

# service_state NAME [DIR]: prints "running", "stopped" or "absent", then
# "complete" when the CRIU images in DIR are whole: CRIU writes
# inventory.img as its dump's last image, and runc adds descriptors.json
# after CRIU has finished.
service_state() {
  local s
  s=$(docker container inspect -f '{{.State.Status}}' "$1" 2>/dev/null) || s=absent
  [ "$s" = running ] || [ "$s" = absent ] || s=stopped
  echo "$s"
  if [ -n "${2:-}" ] && [ -f "$2/inventory.img" ] && [ -f "$2/pstree.img" ] && [ -f "$2/descriptors.json" ]; then echo complete; fi
}

# checkpoints_of NAME: "<taken> <dir>" for each checkpoint of NAME here that
# says when its state is from (TAKEN), newest first: the synced ones
# (sync/s<ns>) and a migration's (m<ms>, staged on its target, beside them).
# A migration whose source died after the transfer left the newest state
# there: the agents restore from it rather than from an older synced one.
checkpoints_of() {
  local d
  for d in "$EDGE_HA_CHECKPOINTS/$1"/sync/s* "$EDGE_HA_CHECKPOINTS/$1"/m[0-9]*; do
    if [ -s "$d/TAKEN" ]; then echo "$(head -n1 "$d/TAKEN") $d"; fi
  done | sort -rg
}

# checkpoint_dir NAME CHECKPOINT: where checkpoint CHECKPOINT of NAME is here.
checkpoint_dir() {
  case "$2" in
    m*) echo "$EDGE_HA_CHECKPOINTS/$1/$2" ;;
    *) echo "$EDGE_HA_CHECKPOINTS/$1/sync/$2" ;;
  esac
}

# newest_good NAME: prints "<checkpoint> <taken>" of the newest checkpoint of
# NAME here whose manifest verifies, or nothing.
newest_good() {
  local taken d
  while read -r taken d; do
    # One without the container's settings cannot be restored by the agents (edge-ha-ctl restore).
    [ -s "$d/ARGS" ] || continue
    if (cd "$d" && sha256sum -c --quiet --strict MANIFEST.sha256 >/dev/null 2>&1); then
      echo "$(basename "$d") $taken"
      return 0
    fi
  done < <(checkpoints_of "$1")
}

# newest_listed NAME: prints "<checkpoint> <taken>" of the newest checkpoint
# of NAME here that holds every file its manifest lists, or nothing: what the
# failover agents compare between nodes, without hashing (rsync puts a file
# under its name only once it has all of it). The node chosen verifies it in
# full before it restores (newest_good).
newest_listed() {
  local taken d
  while read -r taken d; do
    if [ ! -s "$d/MANIFEST.sha256" ] || [ ! -s "$d/ARGS" ]; then continue; fi
    if (cd "$d" && cut -d' ' -f3- MANIFEST.sha256 | while IFS= read -r f; do [ -f "$f" ] || exit 1; done); then
      echo "$(basename "$d") $taken"
      return 0
    fi
  done < <(checkpoints_of "$1")
}

# restore_checkpoint NAME ID DIR CHECKPOINT [verified]: checks the checkpoint
# folder DIR against its manifest (a partial or damaged one fails; "verified":
# the caller has just done so), puts its files into container ID (created,
# not started), puts its CRIU images into the container's checkpoints as
# CHECKPOINT, starts NAME from them, and takes its virtual address (vip.sh).
# Prints the steps' times:
# "restore steps: verify N ms, files N ms, images N ms, start N ms, vip N ms".
restore_checkpoint() {
  local into=/var/lib/docker/containers/$2/checkpoints/$4 t0 t1 t2 t3 t4 t5
  t0=$(date +%s%3N)
  if [ "${5:-}" != verified ]; then (cd "$3" && sha256sum -c --quiet --strict MANIFEST.sha256) || return 1; fi
  t1=$(date +%s%3N)
  (cd "$3" && apply_files "$2") || return 1
  t2=$(date +%s%3N)
  mkdir -p "$into" || return 1
  # The CRIU images only: the packed files are in place already. Hard links
  # where both are on one file system (a Pi's card: no second write of a
  # checkpoint that may be hundreds of MB), a copy where not (the lab).
  if [ "$(stat -c %d "$3")" = "$(stat -c %d "$into")" ]; then
    (cd "$3" && find . -mindepth 1 -maxdepth 1 ! -name rootfs.tar ! -name volumes -exec cp -al -t "$into" {} +) || return 1
  else
    (cd "$3" && find . -mindepth 1 -maxdepth 1 ! -name rootfs.tar ! -name volumes -exec cp -a -t "$into" {} +) || return 1
  fi
  vip_ready "$1" || true
  t3=$(date +%s%3N)
  checkpoint_locked "$1" docker start --checkpoint "$4" "$1" >/dev/null || return 1
  t4=$(date +%s%3N)
  # It serves here now; an address it cannot take is said, and does not undo the restore.
  vip_up "$1" >/dev/null || true
  t5=$(date +%s%3N)
  echo "restore steps: verify $((t1 - t0)) ms, files $((t2 - t1)) ms, images $((t3 - t2)) ms, start $((t4 - t3)) ms, vip $((t5 - t4)) ms"
}

# rsync_url HOST PATH: PATH in the checkpoints module of HOST's rsync daemon,
# on the port the cluster's daemons listen on (all the same: edge-ha:rsyncPort).
rsync_url() {
  local port
  port=$(cat "$RSYNC_PORT_FILE" 2>/dev/null) || port=873
  echo "rsync://$RSYNC_USER@$1:$port/$RSYNC_MODULE/$2"
}

# transfer_ssh: the ssh command (for rsync -e) that reaches another host's
# checkpoints sshd (modules/checkpoint-transport), when this host sends over
# SSH (its mode file says "ssh PORT"); nothing when it sends to the rsync
# daemons. Its keys only, its peers' host keys only, and one connection per
# peer kept open (ControlPersist): the key exchange is paid once, not in
# every checkpoint's transfer, nor in a migration's frozen window.
transfer_ssh() {
  local mode port
  read -r mode port <"$EDGE_HA_TRANSFER_MODE" 2>/dev/null || return 0
  [ "$mode" = ssh ] || return 0
  echo "ssh -F none -l root -p $port -i $EDGE_HA_TRANSFER/client_key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$EDGE_HA_TRANSFER/known_hosts -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=3 -o ServerAliveInterval=2 -o ServerAliveCountMax=3 -o ControlMaster=auto -o ControlPath=/run/edge-ha-transfer-%C -o ControlPersist=300"
}

# send_checkpoint CONNECT_S SRC HOST PATH RSYNC_OPTION...: rsync of SRC into
# PATH of HOST's checkpoints module: inside SSH when this host sends over SSH
# (encrypted; each end has checked the other's key), else to HOST's rsync
# daemon (in clear on the LAN; its password checked). CHECKPOINT_TRANSPORT=rsyncd
# sends to the daemon whatever the mode (the bench's side-by-side runs).
# CONNECT_S: how long reaching HOST may take.
send_checkpoint() {
  local connect=$1 src=$2 host=$3 path=$4 ssh
  shift 4
  ssh=$(transfer_ssh)
  if [ "$(transfer_mode)" = ssh ]; then
    rsync "$@" --password-file="$RSYNC_PASSWORD_FILE" -e "${ssh/ConnectTimeout=3/ConnectTimeout=$connect}" "$src" "$RSYNC_USER@$host::$RSYNC_MODULE/$path"
  else
    rsync "$@" --contimeout="$connect" --password-file="$RSYNC_PASSWORD_FILE" "$src" "$(rsync_url "$host" "$path")"
  fi
}

# transfer_mode: how this host sends checkpoints now: "ssh" or "rsyncd".
transfer_mode() {
  if [ -n "$(transfer_ssh)" ] && [ "${CHECKPOINT_TRANSPORT:-}" != rsyncd ]; then echo ssh; else echo rsyncd; fi
}

# transfer_warm HOST: opens this host's SSH connection to HOST's checkpoints
# sshd now, if it sends over SSH and none is open (a migration's prepare step:
# the handshake then falls outside its frozen window).
transfer_warm() {
  local ssh
  [ "$(transfer_mode)" = ssh ] || return 0
  ssh=$(transfer_ssh)
  # shellcheck disable=SC2086 # the options are words
  $ssh -O check "$1" 2>/dev/null || $ssh -f -N "$1"
}

# transfer_close_all: closes this host's open SSH connections to the others' checkpoints sshd.
transfer_close_all() {
  local s
  for s in /run/edge-ha-transfer-*; do
    [ -S "$s" ] || continue
    ssh -o ControlPath="$s" -O exit edge-ha 2>/dev/null || rm -f "$s"
  done
}

# container_cgroup NAME: the directory of the cgroup that can freeze NAME's
# container (cgroup v1's freezer, or v2's unified group), read from its first
# process; nothing when it has none (not running) or it cannot be read.
container_cgroup() {
  local pid path
  pid=$(timeout 5 docker container inspect -f '{{.State.Pid}}' "$1" 2>/dev/null) || return 0
  [ "${pid:-0}" != 0 ] || return 0
  path=$(sed -n 's/^[0-9]*:freezer://p' "/proc/$pid/cgroup" 2>/dev/null)
  if [ -n "$path" ] && [ -f "/sys/fs/cgroup/freezer$path/freezer.state" ]; then
    echo "/sys/fs/cgroup/freezer$path"
    return 0
  fi
  path=$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null)
  if [ -n "$path" ] && [ -f "/sys/fs/cgroup$path/cgroup.freeze" ]; then echo "/sys/fs/cgroup$path"; fi
}

# thaw_cgroup DIR: thaws the cgroup DIR (container_cgroup's).
thaw_cgroup() {
  if [ -f "$1/freezer.state" ]; then echo THAWED >"$1/freezer.state"; else echo 0 >"$1/cgroup.freeze"; fi
}

# freeze_cgroup DIR: freezes the cgroup DIR (container_cgroup's).
freeze_cgroup() {
  if [ -f "$1/freezer.state" ]; then echo FROZEN >"$1/freezer.state"; else echo 1 >"$1/cgroup.freeze"; fi
}

# cgroup_frozen DIR: whether the cgroup DIR is frozen (or freezing).
cgroup_frozen() {
  local state
  if [ -f "$1/freezer.state" ]; then
    read -r state <"$1/freezer.state" && [ "$state" != THAWED ]
  else
    read -r state <"$1/cgroup.freeze" && [ "$state" = 1 ]
  fi
}

# lag_resume NAME: ends a pause of NAME's copy that its sync loop's lag guard
# began (edge-ha-sync), if one is marked ("PAUSED_MS CGROUP_DIR"): a loop
# stopped or restarted while it held the copy paused must not leave it so.
# Under the service's checkpoint lock: CRIU puts back at the end of a dump
# the freezer state it found, so a thaw in the middle of a dump of the paused
# copy was undone by it, and the copy stayed frozen with no mark, for good (a
# nemesis saw a copy answer nothing for 46 s after its standby was back). The
# mark goes only once the cgroup is seen thawed (the guard tries again).
lag_resume() {
  local mark=$EDGE_HA_LAG_PAUSE_MARK$1 dir
  [ -f "$mark" ] || return 0
  (
    flock -w 30 9 || exit 1
    read -r _ dir <"$mark" 2>/dev/null || dir=
    [ -d "$dir" ] || dir=$(container_cgroup "$1")
    # No cgroup left: the copy is gone, nothing is paused.
    if [ -n "$dir" ] && [ -d "$dir" ]; then
      thaw_cgroup "$dir" 2>/dev/null
      ! cgroup_frozen "$dir" || exit 1
    fi
    rm -f "$mark"
  ) 9>"/run/edge-ha-checkpoint-$1.lock"
}

# thaw_container NAME: thaws NAME's cgroup if it is frozen. CRIU freezes a
# container while it dumps it; a dump cut short (its process killed, the
# host stopped in the middle) leaves it frozen, and a frozen process cannot
# die: docker rm -f then fails or hangs.
thaw_container() {
  local dir
  dir=$(container_cgroup "$1")
  [ -z "$dir" ] || thaw_cgroup "$dir" 2>/dev/null || true
}

# live_pids PID...: those of the PIDs whose process lives (not gone, not a zombie).
live_pids() {
  local p state
  for p in "$@"; do
    state=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$p/stat" 2>/dev/null) || continue
    [ -z "$state" ] || [ "$state" = Z ] || [ "$state" = X ] || echo "$p"
  done
}

# kill_copy NAME: SIGKILL to every process of NAME's container here, through
# its cgroup, not through Docker: a dockerd busy removing the container (or
# hung) does not stop its processes, and a fence must leave nothing serving
# whatever Docker says (the nemesis saw a copy serve on for 102 s while every
# docker rm answered "removal ... is already in progress"). Signalled, then
# thawed: a frozen process keeps the signal until it thaws, and a CRIU dump
# may freeze the group again in between, hence the rounds. Waits up to 5 s for
# the group to hold no live process; says how many it killed (nothing when
# none lived), or which remain, and their state, when some do.
kill_copy() {
  local dir pids tries=50 killed=0
  dir=$(container_cgroup "$1")
  [ -n "$dir" ] || return 0
  while :; do
    # shellcheck disable=SC2046 # one pid per word
    pids=$(live_pids $(cat "$dir/cgroup.procs" 2>/dev/null))
    if [ -z "$pids" ]; then
      [ "$killed" = 0 ] || echo "killed its processes ($killed)"
      return 0
    fi
    [ "$killed" != 0 ] || killed=$(wc -w <<<"$pids")
    # shellcheck disable=SC2086 # one pid per word
    kill -9 $pids 2>/dev/null
    thaw_cgroup "$dir" 2>/dev/null
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then
      # shellcheck disable=SC2086
      echo "its processes did not die within 5 s of SIGKILL: $(ps -o pid=,stat=,wchan=,comm= -p "$(echo $pids | tr ' ' ,)" | tr -s ' \n' ' ')" >&2
      return 1
    fi
    sleep 0.1
  done
}

# sync_settings NAME SPEC_JSON RUN_ARGS: keeps NAME's container settings here
# (RUN_ARGS: its docker create arguments, one per line),
# for the sync loop to put in every checkpoint (a failover needs nothing from
# the dead primary).
sync_settings() {
  # Empty settings would go into every checkpoint after, and no node could
  # restore one ("docker create" without an image); seen when a restore's
  # checkpoint folder was replaced under it by a late sync from a cut-off node.
  if [ -z "$2" ] || [ -z "$3" ]; then
    echo "$1: refusing empty container settings (spec ${#2} bytes, arguments ${#3} bytes)" >&2
    return 1
  fi
  mkdir -p "$EDGE_HA_SERVICES"
  # Written whole: a crash between truncation and write would leave them empty.
  printf '%s' "$2" >"$EDGE_HA_SERVICES/$1.spec.json.tmp" && mv -f "$EDGE_HA_SERVICES/$1.spec.json.tmp" "$EDGE_HA_SERVICES/$1.spec.json"
  printf '%s' "$3" >"$EDGE_HA_SERVICES/$1.run.tmp" && mv -f "$EDGE_HA_SERVICES/$1.run.tmp" "$EDGE_HA_SERVICES/$1.run"
}

# sync_start NAME STANDBY_NAME STANDBY_ADDRESS INTERVAL_MS [MAX_LAG_MS]:
# (re)starts the sync loop of NAME (edge-ha-sync, modules/host-tools), whose
# settings are in place, to STANDBY; with MAX_LAG_MS (not 0), its lag guard
# pauses NAME while the standby's newest checkpoint is older. NAME.sync holds
# "STANDBY INTERVAL_S [MAX_LAG_S]" (lib/ha/replication.ts syncOn reads it).
sync_start() {
  local max_lag_ms=${5:-0} line
  [ -x "$EDGE_HA_SYNC" ] || { echo "$EDGE_HA_SYNC is missing on $(hostname): it is installed by 'pulumi up' (modules/host-tools)" >&2; return 1; }
  line="$2 $(awk "BEGIN { print $4 / 1000 }")"
  [ "$max_lag_ms" = 0 ] || line="$line $(awk "BEGIN { print $max_lag_ms / 1000 }")"
  echo "$line" >"$EDGE_HA_SERVICES/$1.sync"
  service_install "sync-$1" "$EDGE_HA_SYNC" "$1" "$3" "$4" "$max_lag_ms"
  service_restart "sync-$1"
}

# sync_stop NAME: stops NAME's sync loop (a no-op where none runs) and removes
# its staged checkpoints and its settings here.
sync_stop() {
  local tries=25
  service_remove "sync-$1"
  lag_resume "$1"
  rm -f "/run/edge-ha-sync-$1.newest"
  rm -f "$EDGE_HA_SERVICES/$1.sync" "$EDGE_HA_SERVICES/$1.spec.json" "$EDGE_HA_SERVICES/$1.run"
  # A round under way when the loop stopped (runc, tar, rsync: the loop's children) may
  # still write into its stage for a moment ("Directory not empty" was seen at a destroy).
  until rm -rf "${EDGE_HA_SYNC_OUT:?}/$1" 2>/dev/null; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || break
    sleep 0.2
  done
  rm -rf "${EDGE_HA_SYNC_OUT:?}/$1"
}

# trial_checkpoint NAME: proves that NAME's container can be checkpointed
# (CRIU, its processes left running) before its sync starts: some containers
# cannot be (a deleted file still open, a unix socket to the host, io_uring,
# a device), and that is better said at `pulumi up` than found at a failover.
# On failure says whether NAME still runs, CRIU's last errors and the likely cause.
trial_checkpoint() {
  local id now dir=$EDGE_HA_SYNC_OUT/$1/trial log=/run/edge-ha-criu-$1/dump.log
  id=$(docker container inspect -f '{{.Id}}' "$1") || return 1
  if checkpoint_leave_running "$1" "$id" "$dir" 2>/dev/null; then
    rm -rf "$dir"
    return 0
  fi
  # What is true now, not what --leave-running promises: CRIU may have stopped it.
  now=$(docker container inspect -f '{{.State.Status}}' "$1" 2>/dev/null) || now=absent
  if [ "$now" = running ]; then now="it runs on, unsynced"; else now="its container here is $now now"; fi
  {
    echo "$1 cannot be checkpointed on $(hostname), so edge-ha could neither move it nor fail it over; $now. CRIU's errors:"
    grep -E 'Error \(|Can.t|FAILED' "$log" 2>/dev/null | tail -n 5 | sed 's/^/  /'
    echo "Likely cause: $(criu_failure_cause "$log") (CRIU's whole log: $log on $(hostname))"
  } >&2
  return 1
}

# criu_failure_cause LOG: what a failed dump's CRIU log most likely means, in
# the words of a service's settings.
criu_failure_cause() {
  if grep -q 'ghost' "$1" 2>/dev/null; then
    echo "a deleted file the service still holds open is larger than CRIU carries (1 MiB): log to stdout, or keep such files until closed"
  elif grep -qE 'unix|sk-unix' "$1" 2>/dev/null && grep -qiE 'external|peer' "$1" 2>/dev/null; then
    echo "a connection to a unix socket outside the container (a host's socket mounted in): CRIU cannot carry its other end"
  elif grep -q 'io_uring' "$1" 2>/dev/null; then
    echo "the service uses io_uring, which CRIU cannot dump: turn it off in the service's settings"
  elif grep -qE '/dev/|[Dd]evice' "$1" 2>/dev/null; then
    echo "a device of the host is open in the container: its state is the host's"
  elif grep -qE 'mnt|[Mm]ount' "$1" 2>/dev/null; then
    echo "a mount CRIU cannot recreate (a host folder bind-mounted in?): use named volumes"
  else
    echo "not one edge-ha knows"
  fi
}

# moving NAME: whether a planned migration of NAME is under way here: its
# mark (lib/ha/migration.ts) is younger than two minutes, so a migrator that
# died holds nothing off for longer.
moving() {
  [ -n "$(find "$EDGE_HA_MOVING_MARK$1" -mmin -2 2>/dev/null)" ]
}

# prune_stale_moves: removes what migrations left in this host's checkpoints
# (their staged images, m<ms>: a target that was cut off could not be
# cleared, or the source died after the transfer) once they are of no use: of
# a service that is not moving now (its mark, younger than two minutes, is on
# both ends while a migration runs), each one older than its two newest
# checkpoints here, and each one older than two minutes. Within those two
# minutes the agents restore a service whose source died from it (seconds);
# kept longer it would be an ever older "newest" here, which a failover
# whose fresher candidates did not answer would restore. A checkpoint is the
# service's memory: none is kept longer than it is of use. Called where edge-ha passes by often: a migration's
# start, the agents' reports.
prune_stale_moves() {
  local s taken d
  for s in "$EDGE_HA_CHECKPOINTS"/*/; do
    [ -d "$s" ] || continue
    s=$(basename "$s")
    ! moving "$s" || continue
    checkpoints_of "$s" | tail -n +3 | while read -r taken d; do
      case "$(basename "$d")" in m*) rm -rf "$d" ;; esac
    done
    find "$EDGE_HA_CHECKPOINTS/$s" -mindepth 1 -maxdepth 1 -name 'm[0-9]*' -mmin +2 -exec rm -rf {} + 2>/dev/null
  done
  true
}

# health_probe SERVICE ADDRESS TIMEOUT_MS KIND PORT PATH [COMMAND...]: one
# check of SERVICE's container here, as the failover agents run it
# (agent/health.go): tcp, a connection to ADDRESS:PORT (this host's own
# address: Docker's userland proxy accepts on loopback whether or not the
# container listens); http, a GET of PATH there answered 2xx or 3xx;
# command, COMMAND run in the container exits 0. Each within TIMEOUT_MS.
health_probe() {
  local service=$1 address=$2 seconds kind=$4 port=$5 path=$6
  seconds=$(awk "BEGIN { printf \"%.3f\", $3 / 1000 }")
  shift 6
  # shellcheck disable=SC2016 # $0, $1, $2: expanded by the inner bash
  case "$kind" in
    tcp) timeout "$seconds" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$address" "$port" 2>/dev/null ;;
    http)
      timeout "$seconds" bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$0" >&3 && read -r _ code _ <&3 && [[ $code == [23]?? ]]' \
        "$address" "$port" "$path" 2>/dev/null ;;
    command) timeout "$seconds" docker exec "$service" "$@" >/dev/null 2>&1 ;;
    *) echo "health_probe: unknown kind $kind" >&2; return 2 ;;
  esac
}

# requests_done SERVICE SECONDS: waits, up to SECONDS, until SERVICE's
# container here has no established TCP connection on a port it listens on;
# fails if one is still there then. A roll-out stops taking new connections
# first (vip_hold) and lets those under way end: they cannot cross to a new
# version (another program), and a client would see them reset.
requests_done() {
  local pid ports end
  pid=$(docker container inspect -f '{{.State.Pid}}' "$1" 2>/dev/null) || return 0
  [ "$pid" -gt 0 ] || return 0
  # ss -Htan: STATE RECV-Q SEND-Q LOCAL PEER; a port is the last :field of LOCAL.
  ports=$(nsenter -t "$pid" -n ss -Htan | awk '$1 == "LISTEN" { n = split($4, a, ":"); print a[n] }' | sort -u | tr '\n' ' ')
  [ -n "$ports" ] || return 0
  end=$(($(date +%s%3N) + $2 * 1000))
  until nsenter -t "$pid" -n ss -Htan | awk -v ports="$ports" '
      BEGIN { n = split(ports, p, " "); for (i = 1; i <= n; i++) listening[p[i]] = 1 }
      $1 == "ESTAB" { k = split($4, a, ":"); if (a[k] in listening) busy++ }
      END { exit busy > 0 }'; do
    [ "$(date +%s%3N)" -lt "$end" ] || return 1
    sleep 0.05
  done
}
