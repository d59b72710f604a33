# The overlay image: the gateway the operator renders in front of each host, and the operator
# itself (`overlay operator run`); its entrypoint is the `overlay` command.
#
#   docker build -f deploy/images/overlay.Dockerfile -t ghcr.io/overlay-sdk/overlay-gateway:0.1.0 .
#
# Runs as a numeric non-root user, and as any other UID too (OpenShift assigns one, with
# group 0): everything it needs is owned by group 0 with the owner's permissions. Nothing
# is written outside /tmp (the manifests mount an emptyDir there; the root is read-only).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/overlay
WORKDIR /src
COPY pyproject.toml README.md ./
COPY overlay_sdk ./overlay_sdk
COPY widgets ./widgets
# the k8s extra: the kubernetes client and kopf (the operator, the k8s:// store)
RUN /opt/overlay/bin/pip install ".[k8s]"

FROM python:3.11-slim
COPY --from=build /opt/overlay /opt/overlay
RUN mkdir -p /tmp/overlay \
    && chgrp -R 0 /opt/overlay /tmp/overlay \
    && chmod -R g=u /opt/overlay /tmp/overlay
ENV PATH=/opt/overlay/bin:$PATH \
    HOME=/tmp \
    OVERLAY_HOME=/tmp/overlay \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:0
# 8700 host traffic, 8701 model calls (gateway); 8080 health (operator)
EXPOSE 8700 8701 8080
ENTRYPOINT ["overlay"]
CMD ["gateway", "--host", "0.0.0.0", "--port", "8700"]
