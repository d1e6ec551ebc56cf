# hermetic builder image for Debian suites (bullseye / bookworm / trixie).
#
# The glibc of the base image is the glibc baseline of every bundle built here
# (bullseye 2.31, bookworm 2.36, trixie 2.41). hermetic builds this file through
# the Docker Engine API with the *classic* builder (Engine 20.10, API 1.41), so
# it must not use BuildKit-only syntax: no `# syntax=` line, no `RUN --mount`,
# no `ADD --checksum`, no heredocs.
#
# Build args (all required; the RUN steps fail early with a message if unset):
#   BASE              local minbase image, e.g. hermetic/base:bullseye-<digest>
#                     (an mmdebstrap tarball imported with `docker import`;
#                     no registry is needed or used)
#   PYTHON_VERSION    e.g. 3.11.2 -> installed under /opt/python/cp311-cp311
#   PYTHON_URL        upstream source tarball, e.g. Debian's byte-identical
#                     http://deb.debian.org/debian/pool/main/p/python3.11/python3.11_3.11.2.orig.tar.gz
#   PYTHON_SHA256     sha256 of that tarball; the build fails on mismatch
#   SOURCE_DATE_EPOCH fixed timestamp for gcc's __DATE__/__TIME__ (sys.version),
#                     hash-based .pyc files and the builder user's shadow entry

ARG BASE
FROM ${BASE}

LABEL io.hermetic.role=builder

# Non-interactive apt; a UTF-8 locale that exists without the locales package.
# pip in the builder runs offline (--network none), so never let it phone home.
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Toolchain and the -dev packages CPython's optional modules need. These names
# are identical on bullseye, bookworm and trixie (trixie renamed several runtime
# libraries for time64, e.g. libssl3t64, but not the -dev packages; its
# pkg-config is a transitional package for pkgconf).
#   libssl-dev      _ssl, _hashlib        libffi-dev     _ctypes (no bundled copy on Linux)
#   zlib1g-dev      zlib                  libsqlite3-dev _sqlite3
#   libbz2-dev      _bz2                  liblzma-dev    _lzma
#   uuid-dev        _uuid                 libreadline-dev readline (+ libncurses-dev: _curses)
#   libexpat1-dev   for wheels that want it; CPython itself keeps its bundled
#                   expat (no --with-system-expat), one library less to vendor.
# gdbm is left out on purpose (GPL-3, rarely used, one more library to vendor);
# dbm falls back to dbm.dumb.
# /var/log/apt, dpkg.log and the ldconfig aux-cache hold timestamps: dropped,
# together with the apt lists, to keep the layer smaller and steadier.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        build-essential patchelf pkg-config file ca-certificates curl \
        libssl-dev zlib1g-dev libffi-dev libsqlite3-dev libbz2-dev liblzma-dev \
        uuid-dev libexpat1-dev libreadline-dev libncurses-dev; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/log/alternatives.log \
           /var/cache/debconf/*-old /var/cache/ldconfig/aux-cache

ARG SOURCE_DATE_EPOCH

# Unprivileged user for the offline build phase (the container runs with
# --user 1000:1000 --network none --cap-drop ALL). /hermetic is its work dir.
# useradd writes "days since epoch" of *now* into /etc/shadow; pin it to
# SOURCE_DATE_EPOCH so the layer does not depend on the build date.
RUN set -eux; \
    : "${SOURCE_DATE_EPOCH:?build arg SOURCE_DATE_EPOCH is required}"; \
    groupadd --gid 1000 builder; \
    useradd --uid 1000 --gid 1000 --home-dir /home/builder --create-home --shell /bin/bash builder; \
    chage --lastday "$((SOURCE_DATE_EPOCH / 86400))" builder; \
    rm -f /etc/shadow- /etc/gshadow- /etc/passwd- /etc/group- /etc/subuid- /etc/subgid-; \
    install -d -o 1000 -g 1000 -m 0755 /hermetic

# Declared here, not at the top, so that changing the Python version keeps the
# apt and user layers above in the build cache.
ARG PYTHON_VERSION
ARG PYTHON_URL
ARG PYTHON_SHA256

# Build CPython:
# - --enable-shared: hermetic's launcher links libpython3.X.so (manylinux
#   CPythons are --disable-shared, which is why this image exists).
# - RUNPATH $ORIGIN/../lib so bin/python3.X finds lib/libpython3.X.so.1.0
#   wherever the prefix is copied. Quoting: the RUN line is passed verbatim to
#   /bin/sh (no Dockerfile substitution in RUN); inside single quotes the shell
#   leaves `\$$ORIGIN` alone; in the Makefile `$$` becomes `$`, and the shell
#   that runs the link line turns `\$ORIGIN` into a literal `$ORIGIN`. (A bare
#   `$$ORIGIN` would be expanded by that shell to "" -> RUNPATH `/../lib`.)
#   sysconfig parses `\$$ORIGIN` to `\$ORIGIN`, which distutils/shlex split
#   back to `$ORIGIN` when extension modules are linked later.
# - SOURCE_DATE_EPOCH (exported by Docker from the ARG) makes gcc use it for
#   __DATE__/__TIME__ (sys.version) and makes compileall write hash-based .pycs.
# - make install runs ensurepip (configure's default --with-ensurepip=upgrade)
#   from the wheels bundled in the tarball: no network needed for pip.
# - The stdlib's own test suites (~120 MB) and the static libpython*.a
#   (~55 MB; the launcher links the shared one) are removed: they would
#   otherwise end up in every bundle that copies this prefix.
# - The build fails unless the interpreter has the expected RUNPATH and the
#   key extension modules import.
RUN set -eux; \
    : "${PYTHON_VERSION:?build arg PYTHON_VERSION is required}"; \
    : "${PYTHON_URL:?build arg PYTHON_URL is required}"; \
    : "${PYTHON_SHA256:?build arg PYTHON_SHA256 is required}"; \
    : "${SOURCE_DATE_EPOCH:?build arg SOURCE_DATE_EPOCH is required}"; \
    export SOURCE_DATE_EPOCH; \
    PYXY="$(echo "$PYTHON_VERSION" | cut -d. -f1,2)"; \
    TAG="cp$(echo "$PYXY" | tr -d .)"; \
    PREFIX="/opt/python/${TAG}-${TAG}"; \
    curl -fsSL --retry 3 -o /tmp/python.tar.gz "$PYTHON_URL"; \
    echo "${PYTHON_SHA256}  /tmp/python.tar.gz" | sha256sum -c -; \
    mkdir /tmp/python-src; \
    tar -xzf /tmp/python.tar.gz -C /tmp/python-src --strip-components=1 --no-same-owner; \
    rm /tmp/python.tar.gz; \
    cd /tmp/python-src; \
    ./configure \
        --prefix="$PREFIX" \
        --enable-shared \
        --with-ensurepip=upgrade \
        LDFLAGS='-Wl,-rpath,\$$ORIGIN/../lib'; \
    make -j2; \
    make install; \
    cd /; \
    rm -rf /tmp/python-src; \
    for d in test idlelib/idle_test lib2to3/tests tkinter/test ctypes/test unittest/test distutils/tests; do \
        rm -rf "$PREFIX/lib/python$PYXY/$d"; \
    done; \
    rm -f "$PREFIX/lib/python$PYXY/config-$PYXY-"*"/libpython$PYXY.a"; \
    readelf -d "$PREFIX/bin/python$PYXY" | grep -F 'RUNPATH' | grep -qF '[$ORIGIN/../lib]'; \
    readelf -d "$PREFIX/bin/python$PYXY" | grep -F 'NEEDED' | grep -qF "[libpython$PYXY"; \
    "$PREFIX/bin/python3" -c 'import ssl, hashlib, ctypes, sqlite3, lzma, bz2, zlib, uuid, readline, pyexpat, _decimal'; \
    "$PREFIX/bin/python3" -m pip --version; \
    rm -rf /root/.cache

WORKDIR /hermetic
