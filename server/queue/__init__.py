"""Job publishers for the server: `rabbitmq` (distributed) and `sqlite` (embedded)."""
