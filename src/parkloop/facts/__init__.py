"""Facts: deterministic stops, trips, legs and places from raw events (issue 3)."""
