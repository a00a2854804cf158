"""The NATS family's KEDA ScaledObjects name what the workers declare: each media kind's durable
job consumers, two per priority lane (thumbnailify/backends/nats/layout.py), of the stream the
config patch chooses. (The manifests' shape is deploy/validate.sh's to check, offline; this ties
them to the code.)"""

from __future__ import annotations

from pathlib import Path

import yaml

from thumbnailify.backends.nats.layout import job_consumers

NATS_DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "nats"
WORKERS = {"image": "thumbnailify-worker", "video": "thumbnailify-video-worker"}


def test_each_media_kinds_workers_scale_on_its_job_consumer() -> None:
    scaled = {
        found["spec"]["scaleTargetRef"]["name"]: [trigger["metadata"] for trigger in found["spec"]["triggers"]]
        for found in yaml.safe_load_all((NATS_DEPLOY / "keda-scaledobject.yaml").read_text()) if found
    }
    stream = yaml.safe_load((NATS_DEPLOY / "config-patch.yaml").read_text())["data"]["THUMBNAILIFY_NATS_STREAM"]
    assert set(scaled) == set(WORKERS.values())
    for kind, deployment in WORKERS.items():
        assert sorted((meta["stream"], meta["consumer"]) for meta in scaled[deployment]) == sorted(
            (stream, consumer) for consumer in job_consumers(kind))
