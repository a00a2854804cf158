"""Pure logic: no service, no process."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def real_services() -> None:
    """No Redis or RabbitMQ needed here (overrides the check of tests/conftest.py for this layer)."""
