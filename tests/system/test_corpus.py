"""Every real-world and hostile file of the corpus through the real service, in both modes.

Each case has an exact expected outcome: the POST status, and for a 202 the final state, code,
size, type and pixel checks. After each case the workers must be the same processes (none
crashed) and their peak RSS must stay under 256 MB.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.corpus import Case, cached_cases, run_checks
from tests.harness import MODES, Service, peak_rss_mb

pytestmark = pytest.mark.timeout(120)

CASES = list(cached_cases())
PEAK_RSS_LIMIT_MB = 256


@pytest.fixture(scope="module", params=MODES)
def corpus_service(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, list[int]]]:
    with Service(request.param, tmp_path_factory.mktemp(f"corpus-{request.param}")) as service:
        yield service, sorted(service.worker_pids())


def outcome(case: Case, service: Service) -> tuple[str, list[str]]:
    response = service.post(case.request_body(), case.content_type, raw=True)
    if response.status_code != 202:
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["message"]
        return f"HTTP {response.status_code}", []
    media_id = response.json()["media_id"]
    status = service.wait(media_id, timeout=90)
    if status["state"] != "Completed":
        # The answer's status is the code the worker stored, as the history's last entry says it.
        record = service.record(media_id)
        assert record is not None
        assert status["http_status"] == int(record["code"]) == status["history"][-1]["code"], status
        return f"{status['state']} {status['http_status']}", [status["message"]]
    data, content_type = service.thumbnail(status["media_id"])
    problems = run_checks(data, case)
    if case.expect_type and content_type != case.expect_type:
        problems.append(f"type {content_type} != {case.expect_type}")
    return "Completed", problems


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case(case: Case, corpus_service: tuple[Service, list[int]]) -> None:
    """The case's exact outcome; the workers that took it are the same processes (none crashed)
    and stayed within memory, whichever cases ran before it."""
    service, workers = corpus_service
    got, problems = outcome(case, service)
    assert got == case.expected(), problems
    if got == "Completed":
        assert problems == []
    assert sorted(service.worker_pids()) == workers, "a worker died on this case"
    assert max(peak_rss_mb(pid) for pid in workers) < PEAK_RSS_LIMIT_MB
    assert "status=500" not in service.logs() and "unhandled error" not in service.logs()
