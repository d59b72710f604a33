# The MLflow model server the operator renders for each self-hosted MLflow version:
# `mlflow models serve -m models:/NAME/VERSION --env-manager local` (the Deployment gives the
# command; MLFLOW_TRACKING_URI says where the registry is). overlay-sdk is installed too: a
# model registered from a plain function is an overlay_sdk.flavors.CallableModel.
#
#   docker build -f deploy/images/model-server.Dockerfile \
#       -t ghcr.io/overlay-sdk/mlflow-model-server:0.1.0 .
#
# Numeric non-root user, any UID with group 0 (OpenShift); writes only to /tmp (HOME), where
# MLflow downloads the model.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mlflow
WORKDIR /src
COPY pyproject.toml README.md ./
COPY overlay_sdk ./overlay_sdk
COPY widgets ./widgets
# the full mlflow (its scoring server), and the flavors overlay-sdk registers
RUN /opt/mlflow/bin/pip install "mlflow>=3.1,<4" ".[sklearn,onnx]"

FROM python:3.11-slim
COPY --from=build /opt/mlflow /opt/mlflow
RUN chgrp -R 0 /opt/mlflow && chmod -R g=u /opt/mlflow
ENV PATH=/opt/mlflow/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:0
EXPOSE 8080
# `mlflow` is on PATH: the rendered Deployment runs `mlflow models serve ...`
CMD ["mlflow", "--version"]
