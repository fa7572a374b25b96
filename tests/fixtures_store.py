"""Store fixtures (owned by the storage work)."""
