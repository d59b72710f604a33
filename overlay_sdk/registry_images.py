"""Container-image models: a model served by an HTTP container, registered by its reference.

``register("scorer", image="ghcr.io/acme/scorer:1.4", port=8080, health_path="/healthz")``
calls :func:`image_config`, which checks the arguments and returns an :class:`ImageConfig`;
:mod:`overlay_sdk.registry_identity` stores its canonical JSON as the version's only model
file (``model/image.json``), so the identity is the canonical configuration: the image
reference as written (registry, repository, tag and ``@sha256:`` digest when given), the
port and the health path.

A tag is mutable: ``scorer:1.4`` may be pushed again with other content, and the version's
identity (which covers the reference, not the image's bytes) will not change. Pin the
content with a digest (``ghcr.io/acme/scorer:1.4@sha256:<64 hex>``) when the version must
name exactly one image; ``ImageConfig.pinned`` says whether it does.

Pure: no MLflow, no registry or network lookups (the image is not pulled or inspected).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from overlay_sdk import hashing
from overlay_sdk.errors import ValidationError

__all__ = ["IMAGE_FILE", "IMAGE_REFERENCE", "ImageConfig", "image_config"]

IMAGE_FILE = "image.json"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)"  # noqa: E501
IMAGE_REFERENCE = (rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
                   r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
"""The Docker/OCI reference grammar: ``[registry[:port]/]repo/path[:tag][@sha256:digest]``."""
_MAX_REF = 512
_PATH_CHARS = r"A-Za-z0-9._~!$&'()*+,;=:@%/-"
_HEALTH_PATH = re.compile(rf"^/[{_PATH_CHARS}]*(?:\?[{_PATH_CHARS}?]*)?$")


@dataclass(frozen=True)
class ImageConfig:
    """A container-image model's stored configuration: the image reference, the port its
    HTTP server listens on and the path answering health checks (None: a TCP check)."""

    image: str
    port: int = 8080
    health_path: str | None = None

    @property
    def digest(self) -> str | None:
        """The ``sha256:...`` digest the reference pins, if any."""
        return self.image.partition("@")[2] or None

    @property
    def pinned(self) -> bool:
        """True when a digest names the content; a tag alone can be pushed again."""
        return self.digest is not None

    def to_json(self) -> bytes:
        """The canonical JSON stored as ``model/image.json`` (what the identity hashes)."""
        return hashing.canonical_json({"digest": self.digest, "health_path": self.health_path,
                                       "image": self.image, "kind": "image", "port": self.port})

    @classmethod
    def from_json(cls, data: bytes) -> ImageConfig:
        """The configuration stored by :meth:`to_json`."""
        doc = json.loads(data)
        return cls(doc["image"], int(doc["port"]), doc.get("health_path"))


def image_config(image: Any, port: Any, health_path: Any) -> ImageConfig:
    """The checked configuration of a container-image model; ValidationError naming the
    argument (``image``, ``port`` or ``health_path``)."""
    if not isinstance(image, str) or len(image) > _MAX_REF or not re.match(IMAGE_REFERENCE,
                                                                          image):
        raise ValidationError.at(
            "image", f"{image!r:.120} is not an image reference; write "
            "[registry/]repository[:tag][@sha256:<64 hex digits>] in lower case, e.g. "
            "'ghcr.io/acme/scorer:1.4' or 'ghcr.io/acme/scorer@sha256:...'")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValidationError.at("port", f"must be the container's HTTP port, an integer from 1 "
                                 f"to 65535, got {port!r:.40}")
    if health_path is not None and (not isinstance(health_path, str) or len(health_path) > 512
                                    or not _HEALTH_PATH.match(health_path)):
        raise ValidationError.at("health_path", f"{health_path!r:.80} is not a URL path; give "
                                 "the path that answers health checks, starting with '/', "
                                 "e.g. '/healthz'")
    return ImageConfig(image, port, health_path)
