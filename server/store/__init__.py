"""State stores for the server: `redis` (distributed) and `sqlite` (embedded)."""
