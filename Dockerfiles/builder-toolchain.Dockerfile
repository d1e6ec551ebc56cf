# hermetic "toolchain" builder: a glibc baseline older than the builder distro.
#
# A distro builder (builder-debian.Dockerfile) inherits its baseline from the
# distro's libc.so.6. A toolchain builder instead compiles everything against
# glibc symbol-version stubs of the baseline with `zig cc -target
# x86_64-linux-gnu.<baseline>` (what cargo-zigbuild and `maturin --zig` do),
# through the wrapper hermetic-cc / hermetic-c++ (see that file for the fixes
# it makes). The distro only supplies headers, build tools and the -dev
# libraries whose symbol versions are old enough; what is not (sqlite: log@2.29
# on bullseye) is built here from source. hermetic audits the CPython prefix
# and /usr/local/lib of the finished image against the baseline before it
# accepts the image, and the audit of every bundle built here is the proof.
#
# Built with the classic builder (Engine API 1.41): no BuildKit syntax.
#
# Build context: this file, hermetic-cc, hermetic-build-libraries, and the
# ziglang wheel (downloaded
# and checked by hermetic against ZIG_SHA256; checked again here).
# Build args (all required):
#   BASE, PYTHON_VERSION, PYTHON_URL, PYTHON_SHA256, SOURCE_DATE_EPOCH
#                     as in builder-debian.Dockerfile
#   TARGET_GLIBC      the baseline, e.g. 2.28
#   ZIG_WHEEL         file name of the ziglang wheel in the context
#   ZIG_SHA256        its sha256
#   LIBRARIES         NAME=URL=SHA256 of each library built from source for
#                     the baseline (Debian's .orig tarballs), space-separated

ARG BASE
FROM ${BASE}

LABEL io.hermetic.role=builder

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Build tools and the -dev packages CPython's modules need, as in the distro
# builder, minus libsqlite3-dev (built below), plus tcl (sqlite's build makes
# its amalgamation with tclsh), unzip (the ziglang wheel) and autotools
# (libxcrypt's source tarball ships no configure script). gcc stays: a
# recipe may choose the distro's compiler (the audit then decides).
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        build-essential patchelf pkg-config file ca-certificates curl tcl unzip \
        autoconf automake libtool libltdl-dev \
        libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev \
        uuid-dev libexpat1-dev libreadline-dev libncurses-dev; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/log/alternatives.log \
           /var/cache/debconf/*-old /var/cache/ldconfig/aux-cache

ARG SOURCE_DATE_EPOCH

RUN set -eux; \
    : "${SOURCE_DATE_EPOCH:?build arg SOURCE_DATE_EPOCH is required}"; \
    groupadd --gid 1000 builder; \
    useradd --uid 1000 --gid 1000 --home-dir /home/builder --create-home --shell /bin/bash builder; \
    chage --lastday "$((SOURCE_DATE_EPOCH / 86400))" builder; \
    rm -f /etc/shadow- /etc/gshadow- /etc/passwd- /etc/group- /etc/subuid- /etc/subgid-; \
    install -d -o 1000 -g 1000 -m 0755 /hermetic

ARG TARGET_GLIBC
ARG ZIG_WHEEL
ARG ZIG_SHA256

# The compiler: zig from its wheel (the wheel is a zip; its `ziglang/`
# directory is the whole toolchain), the wrapper, and a warmed cache holding
# compiler-rt, libc++ and the glibc stubs of the baseline.
COPY ${ZIG_WHEEL} /tmp/
COPY hermetic-cc /usr/local/bin/hermetic-cc
ENV HERMETIC_TARGET_GLIBC=${TARGET_GLIBC} \
    CC=hermetic-cc \
    CXX=hermetic-c++
RUN set -eux; \
    : "${TARGET_GLIBC:?build arg TARGET_GLIBC is required}"; \
    : "${ZIG_SHA256:?build arg ZIG_SHA256 is required}"; \
    echo "${ZIG_SHA256}  /tmp/${ZIG_WHEEL}" | sha256sum -c -; \
    mkdir /tmp/zig-wheel; \
    unzip -q "/tmp/${ZIG_WHEEL}" 'ziglang/*' -d /tmp/zig-wheel; \
    mv /tmp/zig-wheel/ziglang /opt/zig; \
    rm -rf /tmp/zig-wheel "/tmp/${ZIG_WHEEL}"; \
    chmod 0755 /opt/zig/zig /usr/local/bin/hermetic-cc; \
    ln -s hermetic-cc /usr/local/bin/hermetic-c++; \
    export ZIG_GLOBAL_CACHE_DIR=/opt/zig-cache; \
    printf '' > /tmp/empty.c; \
    hermetic-cc -c /tmp/empty.c -o /opt/zig/hermetic-empty.o; \
    printf '#include <math.h>\n#include <stdio.h>\nint main(int c, char **v) { printf("%%f\\n", pow(c, 2.5)); return 0; }\n' > /tmp/t.c; \
    hermetic-cc -O2 /tmp/t.c -o /tmp/t -lm; \
    /tmp/t; \
    printf '#include <string>\n#include <iostream>\nint main() { std::string s("c++"); std::cout << s << std::endl; }\n' > /tmp/t.cc; \
    hermetic-c++ -O2 /tmp/t.cc -o /tmp/t; \
    /tmp/t; \
    hermetic-cc -shared -fPIC /tmp/t.c -o /tmp/t.so -lm; \
    rm -f /tmp/t /tmp/t.c /tmp/t.cc /tmp/t.so /tmp/empty.c; \
    rm -rf /opt/zig-cache/tmp; \
    chmod -R a+rX /opt/zig-cache

ARG LIBRARIES

# The libraries the baseline needs built from source (sqlite for any
# baseline before 2.29; OpenSSL, libuuid, libxcrypt before 2.25; libtirpc
# and libnsl before 2.27),
# shared, into /usr/local: on ld.so's path before the distro's, so CPython
# links them and bundles vendor them. See hermetic-build-libraries.
COPY hermetic-build-libraries /usr/local/bin/hermetic-build-libraries
RUN set -eux; \
    : "${LIBRARIES:?build arg LIBRARIES is required}"; \
    chmod 0755 /usr/local/bin/hermetic-build-libraries; \
    export SOURCE_DATE_EPOCH; \
    hermetic-build-libraries ${LIBRARIES}

ARG PYTHON_VERSION
ARG PYTHON_URL
ARG PYTHON_SHA256

# CPython, as in the distro builder (shared libpython, RUNPATH $ORIGIN/../lib,
# see that file for the quoting), compiled by hermetic-cc: sysconfig records
# CC=hermetic-cc, so sdists compiled during a build target the baseline too.
RUN set -eux; \
    : "${PYTHON_VERSION:?build arg PYTHON_VERSION is required}"; \
    : "${PYTHON_URL:?build arg PYTHON_URL is required}"; \
    : "${PYTHON_SHA256:?build arg PYTHON_SHA256 is required}"; \
    export SOURCE_DATE_EPOCH ZIG_GLOBAL_CACHE_DIR=/tmp/zig-cache-root; \
    cp -R /opt/zig-cache "$ZIG_GLOBAL_CACHE_DIR"; \
    PYXY="$(echo "$PYTHON_VERSION" | cut -d. -f1,2)"; \
    TAG="cp$(echo "$PYXY" | tr -d .)"; \
    PREFIX="/opt/python/${TAG}-${TAG}"; \
    curl -fsSL --retry 3 -o /tmp/python.tar.gz "$PYTHON_URL"; \
    echo "${PYTHON_SHA256}  /tmp/python.tar.gz" | sha256sum -c -; \
    mkdir /tmp/python-src; \
    tar -xzf /tmp/python.tar.gz -C /tmp/python-src --strip-components=1 --no-same-owner; \
    rm /tmp/python.tar.gz; \
    cd /tmp/python-src; \
    openssl=; \
    if [ -f /usr/local/include/openssl/ssl.h ]; then openssl=--with-openssl=/usr/local; fi; \
    ./configure \
        --prefix="$PREFIX" \
        $openssl \
        --enable-shared \
        --with-ensurepip=upgrade \
        CC=hermetic-cc CXX=hermetic-c++ \
        LDFLAGS='-Wl,-rpath,\$$ORIGIN/../lib'; \
    make -j2; \
    make install; \
    cd /; \
    rm -rf /tmp/python-src "$ZIG_GLOBAL_CACHE_DIR"; \
    for d in test idlelib/idle_test lib2to3/tests tkinter/test ctypes/test unittest/test distutils/tests; do \
        rm -rf "$PREFIX/lib/python$PYXY/$d"; \
    done; \
    rm -f "$PREFIX/lib/python$PYXY/config-$PYXY-"*"/libpython$PYXY.a"; \
    readelf -d "$PREFIX/bin/python$PYXY" | grep -F 'RUNPATH' | grep -qF '[$ORIGIN/../lib]'; \
    readelf -d "$PREFIX/bin/python$PYXY" | grep -F 'NEEDED' | grep -qF "[libpython$PYXY"; \
    "$PREFIX/bin/python3" -c 'import ssl, hashlib, ctypes, sqlite3, lzma, bz2, zlib, uuid, readline, pyexpat, _decimal, curses, _ctypes, _uuid'; \
    "$PREFIX/bin/python3" -W ignore::DeprecationWarning -c 'import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]; print("%d stdlib extension modules import" % (len(sys.argv) - 1))' \
        _asyncio _bisect _blake2 _bz2 _contextvars _crypt _csv _ctypes _curses _curses_panel _datetime _decimal _elementtree \
        _hashlib _heapq _json _lsprof _lzma _md5 _multibytecodec _multiprocessing _opcode _pickle _posixshmem _posixsubprocess \
        _queue _random _sha1 _sha256 _sha3 _sha512 _socket _sqlite3 _ssl _statistics _struct _uuid _zoneinfo \
        array audioop binascii cmath fcntl grp math mmap nis ossaudiodev pyexpat readline resource select spwd syslog \
        termios unicodedata zlib; \
    "$PREFIX/bin/python3" -c 'import sysconfig; cc = sysconfig.get_config_var("CC"); assert cc.startswith("hermetic-cc"), cc'; \
    "$PREFIX/bin/python3" -m pip --version; \
    rm -rf /root/.cache

WORKDIR /hermetic
