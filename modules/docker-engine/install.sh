# shellcheck shell=bash
# A Docker engine able to checkpoint, running now and after every reboot.
# Env: SOURCE (debian: Debian's docker.io; docker: Docker's docker-ce),
# PACKAGES (what SOURCE installs), DAEMON_JSON (/etc/docker/daemon.json),
# DOCKER_GROUP_USER (a login through sudo, which the docker group gets).
# Prints the engine's version.
set -euo pipefail
if [ "$SOURCE" = docker ]; then
  apt_install ca-certificates curl
  if [ ! -f /etc/apt/sources.list.d/docker.list ]; then
    # shellcheck source=/dev/null
    . /etc/os-release
    install -m 0755 -d /etc/apt/keyrings
    curl -fsSL "https://download.docker.com/linux/$ID/gpg" -o /etc/apt/keyrings/docker.asc
    echo "deb [signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/$ID $VERSION_CODENAME stable" >/etc/apt/sources.list.d/docker.list
    apt-get update -qq
  fi
fi
# shellcheck disable=SC2086 # a list of package names
apt_install $PACKAGES
mkdir -p /etc/docker
changed=0
printf '%s\n' "$DAEMON_JSON" | write_if_changed /etc/docker/daemon.json 0644 && changed=1
if has_systemd; then
  systemctl enable -q docker
  if [ $changed = 1 ]; then systemctl restart docker; else systemctl start docker; fi
else
  service_install dockerd "$(command -v dockerd)"
  if [ $changed = 1 ]; then service_restart dockerd; else service_start dockerd; fi
fi
# A login that reaches root through sudo talks to the engine as itself (the
# Docker provider's SSH): it joins the docker group, which is root on this host
# as its sudo already was. Noted, so that removal takes out only what we added.
if [ -n "${DOCKER_GROUP_USER:-}" ] && ! id -nG "$DOCKER_GROUP_USER" | tr ' ' '\n' | grep -qx docker; then
  usermod -aG docker "$DOCKER_GROUP_USER"
  mkdir -p "$EDGE_HA_STATE/docker-group"
  touch "$EDGE_HA_STATE/docker-group/$DOCKER_GROUP_USER"
fi
wait_for 60 "the Docker engine" docker info
if [ "$(docker info -f '{{.ExperimentalBuild}}')" != true ]; then
  echo "dockerd on $(hostname) runs without experimental features, so it cannot checkpoint; /etc/docker/daemon.json or its command line overrides them" >&2
  exit 1
fi
docker version -f '{{.Server.Version}}'
