# One image for the user-code server, webserver and daemon (docker-compose.yml picks the command).
FROM python:3.11-slim
WORKDIR /opt/feature_platform
COPY pyproject.toml requirements.lock README.md ./
COPY feature_platform ./feature_platform
# EXTRAS: the platform's extras to install, comma-separated: `spark` (PySpark and a Java 17 runtime), `k8s`,
# `celery` (those executors). docker-compose.yml passes FEATURE_PLATFORM_IMAGE_EXTRAS from .env.
ARG EXTRAS=""
RUN case ",$EXTRAS," in *,spark,*) apt-get update && apt-get install -y --no-install-recommends \
        openjdk-17-jre-headless && rm -rf /var/lib/apt/lists/* ;; esac \
    && pip install --no-cache-dir -c requirements.lock ".${EXTRAS:+[$EXTRAS]}"
COPY workspace.yaml ./
COPY deploy ./deploy
ENV DAGSTER_HOME=/opt/dagster/home
RUN mkdir -p $DAGSTER_HOME && cp deploy/dagster.services.yaml $DAGSTER_HOME/dagster.yaml
