# fraudstream worker image: a JRE for the KCL MultiLangDaemon + Python for the record processor.
# Built on a machine with a Docker engine (none runs on the development machines here); issue #7
# adds a check script that verifies, without Docker, every file and command this file relies on.

# --- build: the package, its dependencies and the KCL jars (amazon-kclpy fetches them from Maven
#     when it builds, exactly as scripts/setup.sh installs them) into a virtualenv ---------------
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY consumer ./consumer
RUN python -m venv /opt/fraudstream \
 && /opt/fraudstream/bin/pip install --no-cache-dir . \
 && /opt/fraudstream/bin/python -c "import amazon_kclpy, pathlib; assert any((pathlib.Path(amazon_kclpy.__file__).parent / 'jars').glob('amazon-kinesis-client-multilang-*.jar'))"

# --- run: JRE + Python, no compilers, a non-root user -------------------------------------------
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app fraudstream
COPY --from=build /opt/fraudstream /opt/fraudstream
COPY properties /app/properties
ENV PATH=/opt/fraudstream/bin:$PATH \
    FRAUD_PROPERTIES_DIR=/app/properties \
    FRAUD_PROPERTIES_OUT=/tmp/fraudstream/kcl.properties \
    FRAUD_KCL_PROFILE=aws \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /app
# `fraudstream worker` validates the settings, renders the KCL properties and execs java, so the
# daemon is PID 1 and receives ECS's SIGTERM for its graceful shutdown (exec form, no shell).
ENTRYPOINT ["fraudstream", "worker"]
