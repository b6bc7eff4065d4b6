"""Per-request records, exact statistics, run summaries and live windows."""
