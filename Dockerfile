# The auditwatch image: one image, the command picks the role (ingest, detect, api, serve, replay).
#   docker build -t auditwatch .
#   docker run --rm auditwatch --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml README.md LICENSE ./
COPY ingest ./ingest
COPY detectors ./detectors
COPY api ./api
COPY auditwatch ./auditwatch
RUN pip install . \
    && cd / && rm -rf /build \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin auditwatch

# non-root; the root filesystem can be mounted read-only (nothing is written outside /tmp)
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 8081
ENTRYPOINT ["auditwatch"]
CMD ["--help"]
