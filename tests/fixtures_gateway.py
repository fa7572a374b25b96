"""Gateway fixtures (owned by the gateway work)."""
