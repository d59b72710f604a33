"""overlay-sdk (facade filled in once all modules exist)."""
