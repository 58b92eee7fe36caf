# One image for the user-code server, webserver and daemon (docker-compose.yml picks the command).
FROM python:3.11-slim
WORKDIR /opt/feature_platform
COPY pyproject.toml requirements.lock README.md ./
COPY feature_platform ./feature_platform
RUN pip install --no-cache-dir -c requirements.lock .
COPY workspace.yaml ./
COPY deploy ./deploy
ENV DAGSTER_HOME=/opt/dagster/home
RUN mkdir -p $DAGSTER_HOME && cp deploy/dagster.services.yaml $DAGSTER_HOME/dagster.yaml
