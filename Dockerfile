# syntax=docker/dockerfile:1
#
# revops-hygiene worker image.
#
#   docker build -t revops-hygiene:dev .
#   docker run --rm revops-hygiene:dev --help
#
# One image serves every role: `hygiene worker` (the default), `hygiene topics
# create`, `hygiene simulate --to-broker ...`, `hygiene notify slack`.
# Configuration comes from HYGIENE_* environment variables only (see
# processor/settings.py); no secret is ever baked into the image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG RUST_IMAGE=rust:1-slim-bookworm

# The Rust toolchain for the native core and decoders (native/), taken from
# the official image: Debian's cargo is older than their crates need.
FROM ${RUST_IMAGE} AS rust

# ---- build: resolve and install the project into a self-contained venv --------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only for dependencies that ship no wheel for this platform; it
# stays in this stage and never reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

COPY --from=rust /usr/local/cargo /usr/local/cargo
COPY --from=rust /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/cargo/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY processor ./processor
COPY schemas ./schemas
COPY native ./native
# The project's own dependency ranges (pyproject.toml) decide versions.
# hadolint ignore=DL3013
RUN pip install --upgrade pip \
 && pip install . \
 && hygiene --help > /dev/null

# ---- runtime ------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="revops-hygiene" \
      org.opencontainers.image.description="Stream processor that keeps CRM pipeline data trustworthy" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HYGIENE_DATA_DIR=/var/lib/hygiene \
    HYGIENE_WEB_HOST=0.0.0.0 \
    HYGIENE_WEB_PORT=6066

# A fixed, non-root uid/gid so volume ownership (and Kubernetes fsGroup) is
# predictable across rebuilds.
RUN groupadd --system --gid 10001 hygiene \
 && useradd --system --uid 10001 --gid hygiene --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin hygiene \
 && mkdir -p /app /var/lib/hygiene \
 && chown hygiene:hygiene /app /var/lib/hygiene

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001

# RocksDB tables and worker state. Keep it on a volume so a restarted worker
# recovers from its local state instead of replaying whole changelogs.
VOLUME ["/var/lib/hygiene"]

# HTTP: /healthz, /readyz, /metrics and the /v1 API.
EXPOSE 6066

# Faust shuts down cleanly (final offset commit) on SIGTERM.
STOPSIGNAL SIGTERM

ENTRYPOINT ["hygiene"]
CMD ["worker"]
