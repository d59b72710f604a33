"""Analytics over telemetry: drift (:mod:`.drift`, statistics in :mod:`.stats`) and cost."""

__all__: list[str] = []
