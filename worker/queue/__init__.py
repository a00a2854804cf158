"""Job consumers for the worker: `rabbitmq` (distributed) and `sqlite` (embedded)."""
