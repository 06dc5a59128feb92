# fraudstream worker image: a Java runtime for the KCL MultiLangDaemon + Python for the record
# processor. CI builds it and runs it against the local stack as ECS runs it
# (scripts/container_test.sh); `scripts/check_dockerfile.py` and hadolint check the text.
# Build and push: deploy/ecs/README.md.
#
# Build arguments:
#   PYTHON_IMAGE  the base of both stages; the official image by default. Where no registry is
#                 reachable, scripts/docker_base.sh makes a stand-in from Debian's packages.
#   WITH_MODEL    true (default): the `model` extra (LightGBM, numpy, scipy) is in the image;
#                 false: a smaller image whose workers cannot load a model (FRAUD_MODEL_DIR).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the package, its dependencies, the KCL jars and a trimmed Java runtime -------------
# The dependencies are exactly requirements/runtime.lock's (hash-checked; scripts/lock.sh makes
# it), installed before the source is copied so a code change reuses that layer. amazon-kclpy is
# an sdist whose build fetches the KCL jars from Maven into the package (the same thing
# scripts/setup.sh relies on): hence the JDK and Maven, here only. It and the package build
# without isolation, with the setuptools and wheel of requirements/build.lock.
FROM ${PYTHON_IMAGE} AS build
# Debian's stable packages move only for security fixes: pinning their versions would break the
# build at every point release instead of taking the fix.
# The slim images drop /usr/share/man; the JDK's postinst links its man pages there (mkdir).
# The JDK package holds the jmods jlink builds the runtime from. libgomp1 lets the build check that
# LightGBM imports (below).
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven libgomp1 \
 && rm -rf /var/lib/apt/lists/*
# The Java runtime the daemon needs and nothing else (~60 MB instead of the JRE package's ~190).
# The modules: `jdeps --print-module-deps` over the 81 KCL 3.1.3 jars (java.base, java.desktop
# for jackson-databind's and commons-beanutils' java.beans, java.logging, java.management,
# java.naming, java.security.jgss, java.sql, java.xml, jdk.jfr, jdk.unsupported), plus what is
# only found at run time: jdk.crypto.ec (TLS to the AWS endpoints negotiates ECDHE) and
# jdk.management (the platform MXBeans the KCL's worker metrics read). The container test leases,
# checkpoints and shuts down with it. Its trust store is Debian's (ca-certificates-java), below.
RUN jlink --add-modules java.base,java.desktop,java.logging,java.management,java.naming,java.security.jgss,java.sql,java.xml,jdk.crypto.ec,jdk.jfr,jdk.management,jdk.unsupported \
      --strip-java-debug-attributes --no-man-pages --no-header-files --compress=2 --output /opt/java \
 && cp /etc/ssl/certs/java/cacerts /opt/java/lib/security/cacerts \
 && /opt/java/bin/java -version
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements/build.lock requirements/runtime.lock ./requirements/
# The `model` extra is in the lock; WITH_MODEL=false removes it again (pip check below proves
# nothing else needed it).
ARG WITH_MODEL=true
RUN python -m venv /opt/fraudstream \
 && /opt/fraudstream/bin/pip install --require-hashes -r requirements/build.lock \
 && /opt/fraudstream/bin/pip install --require-hashes --no-build-isolation -r requirements/runtime.lock \
 && if [ "$WITH_MODEL" = false ]; then /opt/fraudstream/bin/pip uninstall -y -q lightgbm scipy numpy narwhals; fi
# Only what the package build reads (pyproject's readme is README.md); .dockerignore keeps the
# rest of the context (virtualenvs, caches, .git) out.
COPY pyproject.toml README.md ./
COPY consumer ./consumer
# Then the checks, and the build tools out of the virtualenv (pip, setuptools, wheel are for
# building; nothing imports them at run time), the test suites of numpy and scipy with them.
RUN /opt/fraudstream/bin/pip install --no-deps --no-build-isolation . \
 && /opt/fraudstream/bin/pip check \
 && /opt/fraudstream/bin/python -c "import amazon_kclpy, pathlib, sys; jars = pathlib.Path(amazon_kclpy.__file__).parent / 'jars'; sys.exit(0 if any(jars.glob('amazon-kinesis-client-multilang-*.jar')) else 'the KCL jars are missing from ' + str(jars))" \
 && /opt/fraudstream/bin/fraudstream --help > /dev/null \
 && if [ "$WITH_MODEL" != false ]; then /opt/fraudstream/bin/python -c "import lightgbm, numpy"; fi \
 && /opt/fraudstream/bin/python -m pip uninstall -y -q pytest-runner wheel setuptools pip \
 && find /opt/fraudstream/lib/python3.11/site-packages \( -path '*/site-packages/numpy/*' -o -path '*/site-packages/scipy/*' \) \
      -type d -name tests -prune -exec rm -rf {} + \
 && /opt/fraudstream/bin/python -c "import consumer.worker.processor"

# --- run: Python, the trimmed Java runtime, the virtualenv; no JDK, Maven or pip ---------------
FROM ${PYTHON_IMAGE} AS runtime
ARG WITH_MODEL=true
# libgomp1: the OpenMP runtime LightGBM's wheel links against (the model extra).
# hadolint ignore=DL3008
RUN if [ "$WITH_MODEL" != false ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends libgomp1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --system --gid 10001 fraudstream \
 && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin fraudstream \
 && chown 10001:10001 /tmp && chmod 1777 /tmp
# The virtualenv's python links to the base image's python3.11, the same in both stages.
COPY --from=build /opt/java /opt/java
COPY --from=build /opt/fraudstream /opt/fraudstream
COPY properties /app/properties
# No secrets here: REDIS_URL (with the AUTH token) reaches the task from Secrets Manager, and
# AWS credentials from the task role. FRAUD_JVM_OPTIONS is sized per task in the template;
# this default fits 4 leased shards of 10,000-record batches (deploy/ecs/README.md, "Sizing").
ENV PATH=/opt/fraudstream/bin:/opt/java/bin:$PATH \
    JAVA_HOME=/opt/java \
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
# Healthy while the MultiLangDaemon's JVM runs and is not stopped or a zombie: unhealthy while
# `fraudstream worker` hangs before exec'ing it (start-up checks retry for at most seconds), when
# the JVM is frozen (SIGSTOP), or gone under an init process. The same command is the task
# definition's HealthCheck (deploy/ecs/fraudstream.yaml; tests/deploy checks they match).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os,sys\nok=False\nfor p in os.listdir('/proc'):\n  try:\n    c=open(f'/proc/{p}/cmdline','rb').read().split(b'\\0')\n    s=open(f'/proc/{p}/stat').read().rsplit(')',1)[1].split()[0]\n  except (OSError,IndexError):\n    continue\n  ok=ok or (b'software.amazon.kinesis.multilang.MultiLangDaemon' in c and s in 'RSD')\nsys.exit(0 if ok else 1)"]
# `fraudstream worker` validates the settings, renders the KCL properties from the environment
# and execs java: the daemon becomes PID 1 and receives SIGTERM itself, which starts its graceful
# shutdown (shutdown_requested to every processor: flush, checkpoint; then lease release).
# Exec form, so no shell sits in between to swallow the signal.
ENTRYPOINT ["fraudstream", "worker"]
