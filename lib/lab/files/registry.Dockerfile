# The lab's private registry: Debian's docker-registry (distribution 2.8) on
# the Debian base made without any public registry (lib/lab/image.ts);
# apache2-utils for htpasswd (the login's bcrypt hash).
FROM edge-ha/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends docker-registry apache2-utils && rm -rf /var/lib/apt/lists/*
# Debian's own config asks for an htpasswd file it does not ship.
COPY registry.yml /etc/docker/registry/config.yml
EXPOSE 5000
CMD ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]
