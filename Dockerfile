# flexilib's container image.
#
#   docker build -t flexilib .                     (or: podman build --format docker -t flexilib .)
#   docker run --rm -p 8069:8069 flexilib          serves the bundled examples
#
# BASE is any Debian-based image with python3 (>= 3.10) and `python3 -m venv` working:
# the default is the slim Python image; an image made with
# `debootstrap --variant=minbase --include=python3,python3-venv bookworm` works as well
# (CI builds from one, as no image registry is reachable there). Both stages use the
# same BASE, so the virtual environment built in one runs unchanged in the other.
ARG BASE=python:3.12-slim-bookworm

# ---- build: compile the C extension, build the wheel and collect the dependencies' wheels
FROM ${BASE} AS build
# gcc + libc headers compile flexilib.kinds.native._native and the example libraries.
# Python.h comes with the slim Python image; a Debian-python base needs python3-dev.
# Versions are not pinned: they come from BASE's Debian release, whose archive drops a
# version at each point release, and only the build stage uses them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make \
    && if [ ! -e "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
           apt-get install -y --no-install-recommends python3-dev; \
       fi \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY include include
COPY src src
# flexilib's wheel plus a wheel of every dependency, so the runtime stage needs neither
# a compiler nor the network.
RUN /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels .
# The demo served by default: the bundled proxy.ini and examples, with the C libraries
# built. Two routes are left out of the image's copy: /rust (a Rust toolchain would
# add about a gigabyte to this stage) and /runtime (its bootstrap runs awslambdaric,
# which is not one of flexilib's dependencies).
COPY proxy.ini ./
COPY examples examples
RUN make -s -C examples c \
    && mkdir -p /demo/examples \
    && cp -r lib /demo/ \
    && cp -r examples/python examples/lambda examples/worker /demo/examples/ \
    && sed -e '/^\/rust /d' -e '/^\/runtime /d' proxy.ini > /demo/proxy.ini

# ---- runtime: the wheels installed into a virtual environment, nothing else
FROM ${BASE}
ARG UID=10001
# --mount keeps the wheels out of the image's layers (they are only read here). pip and
# setuptools go once flexilib is in: the server needs neither, and they were 25 of the
# layer's 43 MB. A derived image that needs more packages runs `python3 -m ensurepip`.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/flexilib \
    && /opt/flexilib/bin/pip install --no-cache-dir --no-index --find-links /wheels flexilib \
    && /opt/flexilib/bin/pip uninstall --yes pip setuptools \
    && groupadd --gid "${UID}" flexilib \
    && useradd --uid "${UID}" --gid flexilib --home-dir /srv/flexilib \
       --no-create-home --shell /usr/sbin/nologin flexilib
ENV PATH=/opt/flexilib/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The working directory holds proxy.ini and the handlers its relative paths name.
# A derived image replaces them (COPY), or a volume is mounted over them.
# Owned by root: the server only reads them, and a handler cannot rewrite its own code.
WORKDIR /srv/flexilib
COPY --from=build /demo ./
USER ${UID}:${UID}
# 8069: traffic (PORT). 8070: the admin listener (/healthz, /readyz, /metrics, /status;
# SERVER_ADMIN, 127.0.0.1:8070 by default: set SERVER_ADMIN=0.0.0.0:8070 to publish it).
EXPOSE 8069 8070
# The image's own Python asks the admin listener; urlopen raises (exit 1) on a refused
# connection, a timeout or a status other than 2xx. A 0.0.0.0 listener is asked on
# loopback. Kept only by the docker image format (`podman build --format docker`).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; port = os.environ.get('SERVER_ADMIN', '127.0.0.1:8070').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
ENTRYPOINT ["flexilib"]
CMD ["serve"]
