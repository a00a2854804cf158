"""State stores for the worker: `redis` (distributed) and `sqlite` (embedded)."""
