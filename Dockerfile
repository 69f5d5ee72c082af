# relmon worker image; docs/operations.md "Image" has the commands. In short:
#   here (no registry):   make image                   -> localhost/relmon:<version>
#   with a registry:      docker build --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
#                           --build-arg BASE=python:3.11-slim@sha256:<digest> -t relmon:0.1.0 .
#   run:                  docker run --rm -e RELMON_KAFKA_BOOTSTRAP=kafka:9092 -p 6066:6066 relmon:0.1.0
#
# BASE must provide python3.11 with venv/ensurepip (python:3.11-slim does; so does the bookworm
# base deploy/image/base.sh makes). Both stages use the same BASE, so the venv built in the
# first stage runs unchanged in the second.
ARG BASE=python:3.11-slim

# --- build: relmon and its pinned dependencies installed into a venv at /opt/relmon ---------
FROM ${BASE} AS build
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/constraints.txt
WORKDIR /src
# pip-ca: an optional build secret with the CA bundle of a TLS-intercepting proxy between the
# build and the package index (`make image` passes the host's). It is mounted only into the
# steps that run pip, and this stage is thrown away: it never reaches the image.
# /opt/tools holds pip; /opt/relmon gets only relmon and its dependencies. The dependencies
# (every version pinned in constraints.txt) come first, in their own step, so that a change
# to src/ rebuilds only relmon's own wheel. With SOURCE_DATE_EPOCH set (any value will do;
# 1980-01-01 is the earliest date a wheel, a zip file, can hold) .pyc files are hash-checked
# instead of stamped with the build time; the dates of the files in the layers are set by
# `podman build --timestamp` (BuildKit: rewrite-timestamp).
COPY deploy/image/constraints.txt ./
RUN --mount=type=secret,id=pip-ca \
    set -eu; \
    export SOURCE_DATE_EPOCH=315532800; \
    if [ -s /run/secrets/pip-ca ]; then \
      export PIP_CERT=/run/secrets/pip-ca SSL_CERT_FILE=/run/secrets/pip-ca; \
    fi; \
    python3.11 -m venv /opt/tools; \
    /opt/tools/bin/pip install --quiet --upgrade pip; \
    python3.11 -m venv --without-pip /opt/relmon; \
    grep -vE '^(pip|setuptools|wheel)==' constraints.txt > dependencies.txt; \
    /opt/tools/bin/pip --python /opt/relmon/bin/python install --quiet -r dependencies.txt
# The time of the last commit that changed the image's inputs (build.sh passes it; Docker Buildx
# passes $SOURCE_DATE_EPOCH; the default is 1980-01-01): relmon's wheel carries that date.
# Declared here, not above, so that a new commit does not reinstall the dependencies.
ARG SOURCE_DATE_EPOCH=315532800
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH}
COPY pyproject.toml README.md ./
COPY src ./src
RUN --mount=type=secret,id=pip-ca \
    set -eu; \
    if [ -s /run/secrets/pip-ca ]; then \
      export PIP_CERT=/run/secrets/pip-ca SSL_CERT_FILE=/run/secrets/pip-ca; \
    fi; \
    /opt/tools/bin/pip --python /opt/relmon/bin/python install --quiet --no-deps \
      --no-warn-script-location . ; \
    /opt/tools/bin/pip --python /opt/relmon/bin/python check

# --- runtime: the venv, no pip, no sources, no compilers, user 10001 ------------------------
FROM ${BASE}
ARG SOURCE_DATE_EPOCH=315532800
ARG BASE
LABEL org.opencontainers.image.title="relmon" \
      org.opencontainers.image.description="relmon worker: contact fatigue, irritation risk and call suppression on Kafka" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE}"
ENV PATH=/opt/relmon/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RELMON_LOG_FORMAT=json \
    RELMON_STATE_DIR=/var/lib/relmon/state \
    RELMON_WEB_PORT=6066
# SOURCE_DATE_EPOCH also dates the password-change field useradd writes into /etc/shadow.
RUN SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} groupadd --system --gid 10001 relmon \
 && SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} useradd --system --no-log-init --uid 10001 \
      --gid relmon --home-dir /var/lib/relmon --shell /usr/sbin/nologin relmon \
 && mkdir -p /var/lib/relmon/state \
 && chown -R 10001:10001 /var/lib/relmon
COPY --from=build /opt/relmon /opt/relmon
USER 10001:10001
WORKDIR /var/lib/relmon
VOLUME ["/var/lib/relmon"]
EXPOSE 6066
ENTRYPOINT ["relmon"]
CMD ["worker"]
