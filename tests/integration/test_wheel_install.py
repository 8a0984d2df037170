"""The worker and the API run from the wheel installed outside the checkout, against the
real servers: the sample data is generated, segmented and looked up over HTTP, every step
by the installed ``segstream`` command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from segstream.consumers.sample import stop_worker, wait_for_segments
from segstream.schemas.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_worker_and_api_run_from_the_installed_wheel(
    installed_wheel: Path, make_settings, api_server, tmp_path: Path
) -> None:
    s: Settings = make_settings()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")},
        "SEGSTREAM_NAMESPACE": s.namespace,
        "SEGSTREAM_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
        "SEGSTREAM_REDIS_URL": s.redis_url.get_secret_value(),
        "SEGSTREAM_METRICS_PORT": "0",
        "SEGSTREAM_PUBLISH_EVERY_S": "2",
        "SEGSTREAM_DATA_DIR": str(tmp_path / "worker"),
    }
    segstream = str(installed_wheel / "segstream")

    def cli(*args: str) -> str:
        done = subprocess.run(
            [segstream, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    truth_file = tmp_path / "truth.json"
    cli("generate", "--users", "60", "--truth", str(truth_file))
    truth: dict[str, str] = json.loads(truth_file.read_text())
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [segstream, "worker"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_segments(s, sorted(truth), timeout=240, settle=4, proc=worker)
    finally:
        code = stop_worker(worker)
    assert code == 0, log.read_text()[-3000:]

    key = cli("keys", "create", "--scope", "segments:read").strip()
    profile = sorted(truth)[0]
    with (
        api_server(tmp_path / "api.log", env, (), (segstream,), tmp_path) as api,
        httpx.Client(base_url=api.base, timeout=5) as client,
    ):
        r = client.get(
            f"/v1/users/{profile.split(':', 1)[1]}/segment",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200, r.text
        assert isinstance(r.json()["segment"], int)
