# Runtime image for a hermetic bundle, for users who prefer `docker build`.
# `hermetic image` builds the equivalent image without an engine, and
# reproducibly (same layers and digest every time); this Dockerfile is the
# conventional route: one COPY layer on a base of your choice.
#
#   tar xzf app-1.0-linux-x86_64-glibc2.31.tar.gz      # gives ./app/
#   docker build -f runtime.Dockerfile \
#       --build-arg BASE=debian:trixie-slim \
#       --build-arg NAME=app --build-arg LAUNCHER=app -t app:1.0 .
#
# BASE must have a glibc at least the bundle's baseline (the `glibc` field
# of app/share/hermetic/bundle.json). No Python is needed in the base.
ARG BASE=debian:trixie-slim
FROM ${BASE}
ARG NAME
ARG LAUNCHER=${NAME}
COPY ${NAME}/ /opt/${NAME}/
ENV HERMETIC_APP=/opt/${NAME}/${LAUNCHER} \
    PATH=/opt/${NAME}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
WORKDIR /opt/${NAME}
# The conventional unprivileged "nonroot" user, as `hermetic image` uses.
USER 65532:65532
# Exec form cannot expand build args; a tiny sh wrapper execs the launcher
# with the container's arguments.
ENTRYPOINT ["/bin/sh", "-c", "exec \"$HERMETIC_APP\" \"$@\"", "--"]
