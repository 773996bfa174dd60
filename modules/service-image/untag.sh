# shellcheck shell=bash
# Untags REF (refused by the engine, and left, while a container uses it).
docker image rm "$REF" >/dev/null 2>&1 || true
