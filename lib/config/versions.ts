/*
 * The versions and sources edge-ha installs on the hosts, declared once: the
 * settings validate against them (lib/config/settings) and the components
 * install them (modules/criu, modules/docker-engine).
 */

/** Where the Docker engine comes from: Debian's docker.io, or Docker's own docker-ce packages. */
export type DockerSource = "debian" | "docker";

/** Where CRIU comes from: the distro's when it passes `criu check` (auto), only the distro's, or always built. */
export type CriuSource = "auto" | "distro" | "build";

/*
 * 4.2.1 by default: 4.1.1 passes `criu check` on 6.16+ kernels but cannot dump
 * any process with an inet socket there ("Can't get 1:16 opt: Operation not
 * supported", SO_PASSCRED is refused for non-unix sockets since 6.16).
 */
export const defaultCriuVersion = "4.2.1";

/** sha256 of Debian's `criu_<version>.orig.tar.xz`, for each version edge-ha can build. */
export const knownSourceSha256: Record<string, string> = {
  "4.2.1": "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9",
  "4.1.1": "f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe",
};
