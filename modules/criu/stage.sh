# shellcheck shell=bash
# On the first node of an architecture: stages a CRIU that passes
# `criu check` at $STAGE/criu and prints where it came from, then its sha256,
# then how this run got it: staged before, distro, the operator's cache, built here.
# Env: SOURCE (auto, distro, build), VERSION and SHA256 of the pinned source,
# MIRROR (Debian), RUNTIME_PACKAGES, BUILD_PACKAGES, STAGE, PATCH (applied to
# the source before a build) and its PATCH_SHA256, OFFERED (where
# cache-offer.sh put a CRIU edge-ha built before, if it did; removed at the
# end whether used or not; unset without a cache).
set -euo pipefail
offered=${OFFERED:-}
trap '[ -z "$offered" ] || rm -f "$offered"' EXIT
# shellcheck disable=SC2086 # lists of package names
apt_install $RUNTIME_PACKAGES
mkdir -p "$STAGE"
passes() { "$1" check >/dev/null 2>&1; }
want="$SOURCE $VERSION $PATCH_SHA256"
if [ -x "$STAGE/criu" ] && [ "$(cat "$STAGE/wanted" 2>/dev/null)" = "$want" ] && passes "$STAGE/criu"; then
  origin=$(cat "$STAGE/origin")
  how="staged before"
else
  origin=""
  if [ "$SOURCE" != build ]; then
    # Try the distro's binary without installing the package.
    probe=/var/tmp/edge-ha-criu-probe
    rm -rf "$probe"; mkdir -p "$probe"
    if (cd "$probe" && apt_locked apt_refresh && apt_locked apt-get download -qq criu >/dev/null 2>&1) &&
      dpkg-deb -x "$probe"/criu_*.deb "$probe/root" && passes "$probe/root/usr/sbin/criu"; then
      cp "$probe/root/usr/sbin/criu" "$STAGE/criu"
      origin="distro $(dpkg-deb -f "$probe"/criu_*.deb Version)"
      how=distro
    fi
    rm -rf "$probe"
    if [ -z "$origin" ] && [ "$SOURCE" = distro ]; then
      echo "the distro's CRIU does not pass 'criu check' on $(hostname) (kernel $(uname -r)); set edge-ha:criuSource to auto or build" >&2
      exit 1
    fi
  fi
  if [ -z "$origin" ] && [ -n "$offered" ] && [ -f "$offered" ]; then
    # A CRIU of this version and patch edge-ha built before (the operator's cache): no build when it works here.
    chmod 0755 "$offered"
    if passes "$offered" && [ "$("$offered" --version | awk '/^Version:/ {print $2; exit}')" = "$VERSION" ]; then
      install -m 0755 "$offered" "$STAGE/criu"
      origin="built $VERSION, patched"
      how="the operator's cache"
    fi
  fi
  if [ -z "$origin" ]; then
    # shellcheck disable=SC2086
    apt_install $BUILD_PACKAGES
    # /var/tmp, not /tmp: the build runs its own tools, and /tmp may be noexec.
    build=/var/tmp/edge-ha-criu-build
    rm -rf "$build"; mkdir -p "$build"
    curl -fsS -o "$build/src.tar.xz" "$MIRROR/pool/main/c/criu/criu_$VERSION.orig.tar.xz" ||
      { echo "cannot download criu_$VERSION.orig.tar.xz from $MIRROR on $(hostname)" >&2; exit 1; }
    echo "$SHA256  $build/src.tar.xz" | sha256sum -c --quiet ||
      { echo "criu_$VERSION.orig.tar.xz from $MIRROR has the wrong sha256 (expected $SHA256)" >&2; exit 1; }
    tar -C "$build" -xf "$build/src.tar.xz"
    printf '%s\n' "$PATCH" | patch -s -d "$build/criu-$VERSION" -p1 ||
      { echo "edge-ha's patch (modules/criu/freeze-poll.patch) does not apply to CRIU $VERSION" >&2; exit 1; }
    make -C "$build/criu-$VERSION" -j"$(nproc)" criu >"$build/make.log" 2>&1 ||
      { tail -n 20 "$build/make.log" >&2; echo "building CRIU $VERSION failed on $(hostname)" >&2; exit 1; }
    install -m 0755 "$build/criu-$VERSION/criu/criu" "$STAGE/criu"
    rm -rf "$build"
    passes "$STAGE/criu" || { "$STAGE/criu" check >&2 || true; echo "CRIU $VERSION built on $(hostname) fails 'criu check' on kernel $(uname -r)" >&2; exit 1; }
    origin="built $VERSION, patched"
    how="built here"
    # shellcheck disable=SC2086
    apt_remove_ours $BUILD_PACKAGES
  fi
  echo "$origin" >"$STAGE/origin"
  echo "$want" >"$STAGE/wanted"
fi
echo "$origin"
sha256sum "$STAGE/criu" | cut -d' ' -f1
echo "$how"
