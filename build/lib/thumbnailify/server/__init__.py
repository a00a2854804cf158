"""The HTTP side: accepts uploads, stores them, queues jobs, answers for state and thumbnails."""
