# syntax=docker/dockerfile:1
#
# graylink for linux/amd64 and linux/arm64. Every runtime dependency installs
# from a prebuilt wheel (pip runs with --only-binary), so the arm64 build under
# QEMU never compiles anything and a dependency without ARM wheels fails the
# build instead of slipping in a compiler.

FROM python:3.12-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY graylink ./graylink

RUN python -m venv /opt/graylink \
    && /opt/graylink/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && /opt/graylink/bin/pip install --only-binary=:all: /tmp/wheels/graylink-*.whl \
    && /opt/graylink/bin/graylink --version


FROM python:3.12-slim

ARG VERSION=dev
LABEL org.opencontainers.image.title="graylink" \
      org.opencontainers.image.description="Symlink tree of an rclone-mounted media library, kept in sync; Emby/Jellyfin told only what changed." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"

# tini reaps the remount command's children and forwards SIGTERM, so
# `docker stop` ends a cycle cleanly instead of after the 10 s kill timeout.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 graylink \
    && useradd --uid 1000 --gid graylink --home-dir /config --no-create-home --shell /usr/sbin/nologin graylink \
    && mkdir -p /config \
    && chown graylink:graylink /config \
    && setpriv --version

COPY --from=build /opt/graylink /opt/graylink
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/graylink-entrypoint
COPY graylink.ini.example /usr/share/graylink/graylink.ini.example

# Config and state live in /config. The database location is set here (it
# wins over [paths] database in the file) so that state survives a new image.
# DL3064 mistakes the Drive token's file name for a secret; no secret is here.
# hadolint ignore=DL3064
ENV PATH="/opt/graylink/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PUID=1000 \
    PGID=1000 \
    GRAYLINK_CONFIG=/config/graylink.ini \
    GRAYLINK_PATHS_DATABASE=/config/graylink.db \
    GRAYLINK_DRIVE_TOKEN_FILE=/config/drive-token.json

WORKDIR /config
VOLUME ["/config"]

HEALTHCHECK --interval=1m --timeout=20s --start-period=2m --retries=3 \
    CMD ["graylink-entrypoint", "graylink", "-q", "status", "--json"]

ENTRYPOINT ["tini", "--", "graylink-entrypoint"]
CMD ["graylink", "reconcile", "--loop"]
