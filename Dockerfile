# fraudstream worker image: a JRE for the KCL MultiLangDaemon + Python for the record processor.
# No Docker engine runs on the development machines: `scripts/check_dockerfile.py` (run in CI)
# checks, without building, every file, script and command this file relies on, and hadolint
# lints it. Build and push: deploy/ecs/README.md.

# --- build: the package, its dependencies and the KCL jars into a virtualenv ---------------------
# The dependencies are exactly requirements/runtime.lock's (hash-checked; scripts/lock.sh makes
# it), installed before the source is copied so a code change reuses that layer. amazon-kclpy is
# an sdist whose build fetches the KCL jars from Maven into the package (the same thing
# scripts/setup.sh relies on): hence the JDK and Maven, here only. It and the package build
# without isolation, with the setuptools and wheel of requirements/build.lock.
FROM python:3.11-slim-bookworm AS build
# Debian's stable packages move only for security fixes: pinning their versions would break the
# build at every point release instead of taking the fix.
# The slim images drop /usr/share/man; the JDK's postinst links its man pages there (mkdir).
# libgomp1 lets the build check that LightGBM imports (below).
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven libgomp1 \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The `model` extra (LightGBM, numpy) is in the lock and so in every image: a model is switched on
# by FRAUD_MODEL_DIR alone (docs/model.md); a worker without one never imports it.
COPY requirements/build.lock requirements/runtime.lock ./requirements/
RUN python -m venv /opt/fraudstream \
 && /opt/fraudstream/bin/pip install --require-hashes -r requirements/build.lock \
 && /opt/fraudstream/bin/pip install --require-hashes --no-build-isolation -r requirements/runtime.lock
# Only what the package build reads (pyproject's readme is README.md); .dockerignore keeps the
# rest of the context (virtualenvs, caches, .git) out.
COPY pyproject.toml README.md ./
COPY consumer ./consumer
RUN /opt/fraudstream/bin/pip install --no-deps --no-build-isolation . \
 && /opt/fraudstream/bin/pip check \
 && /opt/fraudstream/bin/python -c "import amazon_kclpy, pathlib, sys; jars = pathlib.Path(amazon_kclpy.__file__).parent / 'jars'; sys.exit(0 if any(jars.glob('amazon-kinesis-client-multilang-*.jar')) else 'the KCL jars are missing from ' + str(jars))" \
 && /opt/fraudstream/bin/fraudstream --help > /dev/null \
 && /opt/fraudstream/bin/python -c "import lightgbm, numpy"

# --- run: a JRE and Python, no compilers or Maven, a non-root user -------------------------------
FROM python:3.11-slim-bookworm AS runtime
# libgomp1: the OpenMP runtime LightGBM's wheel links against (the model extra).
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 fraudstream \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin fraudstream \
 && chown 10001:10001 /tmp && chmod 1777 /tmp
# The virtualenv's python links to /usr/local/bin/python3.11 of the same base image.
COPY --from=build /opt/fraudstream /opt/fraudstream
COPY properties /app/properties
# No secrets here: REDIS_URL (with the AUTH token) reaches the task from Secrets Manager, and
# AWS credentials from the task role. FRAUD_JVM_OPTIONS is sized per task in the template;
# this default fits 4 leased shards of 10,000-record batches (deploy/ecs/README.md, "Sizing").
ENV PATH=/opt/fraudstream/bin:$PATH \
    FRAUD_PROPERTIES_DIR=/app/properties \
    FRAUD_PROPERTIES_OUT=/tmp/fraudstream/kcl.properties \
    FRAUD_KCL_PROFILE=aws \
    FRAUD_JVM_OPTIONS="-Xms640m -Xmx640m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# The task runs with a read-only root filesystem and a scratch volume on /tmp (the rendered KCL
# properties, the JVM's perf data). ECS creates such a volume root-owned 0755 unless the image
# declares the path as a VOLUME: then it takes this directory's owner and mode.
VOLUME ["/tmp"]
USER 10001:10001
# ECS stops a task with SIGTERM, then SIGKILL after the task definition's stopTimeout.
STOPSIGNAL SIGTERM
# `fraudstream worker` validates the settings, renders the KCL properties from the environment
# and execs java: the daemon becomes PID 1 and receives SIGTERM itself, which starts its graceful
# shutdown (shutdown_requested to every processor: flush, checkpoint; then lease release).
# Exec form, so no shell sits in between to swallow the signal.
ENTRYPOINT ["fraudstream", "worker"]
