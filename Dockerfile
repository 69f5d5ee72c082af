# relmon worker image. Build: docker build -t ghcr.io/relmon/relmon:0.1.0 .
# Run:   docker run --rm -e RELMON_KAFKA_BOOTSTRAP=kafka:9092 -p 6066:6066 ghcr.io/relmon/relmon:0.1.0
# Pin the base image by digest in your registry mirror for reproducible builds.

# --- build: wheels for relmon and every pinned dependency -----------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels .

# --- runtime: no compilers, no sources, a non-root user --------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RELMON_LOG_FORMAT=json \
    RELMON_STATE_DIR=/var/lib/relmon/state \
    RELMON_WEB_PORT=6066
RUN groupadd --system --gid 10001 relmon \
 && useradd --system --uid 10001 --gid relmon --home-dir /var/lib/relmon --shell /usr/sbin/nologin relmon \
 && mkdir -p /var/lib/relmon/state \
 && chown -R 10001:10001 /var/lib/relmon
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels relmon && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/relmon
VOLUME ["/var/lib/relmon"]
EXPOSE 6066
ENTRYPOINT ["relmon"]
CMD ["worker"]
