"""Every real-world and hostile file of the corpus through the real service (issue 3).

The HEIC cases of the HEIF decoder and its grid checks also run in each mode (embedded and
distributed). Each case has an exact expected outcome: the POST status, and for a 202 the final state, code,
size, type and pixel checks. Afterwards the workers must be the same processes (none crashed) and
their peak RSS must stay under 256 MB. Run with -s to see the outcome table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from tests.corpus import Case, build_cases, run_checks
from tests.harness import Service, peak_rss_mb

pytestmark = pytest.mark.timeout(120)

CASES = build_cases()
PEAK_RSS_LIMIT_MB = 256
OUTCOMES: dict[str, str] = {}


@pytest.fixture(scope="module")
def corpus_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, list[int]]]:
    with Service("distributed", tmp_path_factory.mktemp("corpus")) as service:
        yield service, sorted(service.worker_pids())


def outcome(case: Case, service: Service) -> tuple[str, list[str]]:
    response = service.post(case.request_body(), case.content_type, raw=True)
    if response.status_code != 202:
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["message"]
        return f"HTTP {response.status_code}", []
    status = service.wait(response.json()["media_id"], timeout=90)
    if status["state"] != "Completed":
        assert status["http_status"] == int(status.get("code", status["http_status"]))
        return f"{status['state']} {status['http_status']}", [status["message"]]
    data, content_type = service.thumbnail(status["media_id"])
    problems = run_checks(data, case)
    if case.expect_type and content_type != case.expect_type:
        problems.append(f"type {content_type} != {case.expect_type}")
    return "Completed", problems


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case(case: Case, corpus_service: tuple[Service, list[int]]) -> None:
    service, _ = corpus_service
    got, problems = outcome(case, service)
    OUTCOMES[case.name] = got
    assert got == case.expected(), problems
    if got == "Completed":
        assert problems == []


# HEIC decoded by pillow-heif (alpha kept) and image grids checked before any decode, in both modes.
HEIF_CASES = [case for case in CASES if case.name == "heic-with-alpha" or case.name.startswith("heic-grid-")]


@pytest.mark.parametrize("case", HEIF_CASES, ids=[case.name for case in HEIF_CASES])
def test_heif_case_in_each_mode(case: Case, service: Service) -> None:
    got, problems = outcome(case, service)
    assert got == case.expected(), problems
    if got == "Completed":
        assert problems == []


def test_workers_survived_within_memory(corpus_service: tuple[Service, list[int]]) -> None:
    service, workers = corpus_service
    assert len(OUTCOMES) == len(CASES), "run the whole module"
    assert sorted(service.worker_pids()) == workers, "a worker died during the corpus"
    peaks = [peak_rss_mb(pid) for pid in workers]
    logs = service.logs()
    table = Counter((case.expected(), OUTCOMES[case.name]) for case in CASES)
    print(f"\nCORPUS {len(CASES)} cases; worker peak RSS (MB): {[round(p, 1) for p in peaks]}")
    for (want, got), count in sorted(table.items()):
        print(f"  expected {want:<14} got {got:<14} x{count}")
    assert "status=500" not in logs and "unhandled error" not in logs
    assert max(peaks) < PEAK_RSS_LIMIT_MB

