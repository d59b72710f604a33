"""The cluster backend: an ``AIOverlay`` rendered as Kubernetes and Istio manifests.

Import the parts by module (``from overlay_sdk.k8s.render import render``): this package
imports nothing itself, so the SDK never needs the ``kubernetes`` client or the operator
to render manifests.
"""

__all__: list[str] = []
