"""Adapters: how the gateway speaks to model APIs it does not host (pure request and
response mapping; the I/O lives in :mod:`overlay_sdk.gateway.backends`)."""

__all__: list[str] = []
