"""The live-evaluation dashboard in headless Chromium: ``parlai dialogft_serve`` (the real
command, with a training profile beside the model) answers requests, then ``/dashboard``
plots every series with data, drawn by its own script from nothing but the server.
"""

from __future__ import annotations

import base64
import json
import signal
import time

import pytest

from tests.support.browser import Browser
from tests.support.files import png_is_drawn
from tests.support.processes import parlai_server
from tests.support.serving import http

pytestmark = pytest.mark.browser

REQUESTS = ["1", "4 1", "hello , how can I help you today ?", "我想订一张明天去北京的火车票。", "3"]


def test_the_dashboard_plots_every_series_after_some_requests(profiled_model_file, tmp_path):
    args = ["dialogft_serve", "-mf", profiled_model_file, "--port", "{port}", "--serve-model-name", "m",
            "--serve-live-interval-s", "1", "--serve-log-db", str(tmp_path / "log.db")]
    with parlai_server(args, "/healthz") as (base, proc):
        # three intervals of a second, so each series is a line, not a dot
        for round_ in range(3):
            for text in REQUESTS:
                status, _, body = http(base + "/v1/chat/completions", "POST",
                                       {"model": "m", "messages": [{"role": "user", "content": text}]})
                assert status == 200, body
            status, _, _ = http(base + "/v1/feedback", "POST",
                                {"id": json.loads(body)["id"], "rating": "up" if round_ else "down"})
            assert status == 200
            time.sleep(1.05)

        browser = Browser()
        try:
            browser.open(base + "/dashboard")
            browser.wait_for("document.body.dataset.state === 'plotted'")
            points = browser.js("Object.fromEntries(Array.from(document.querySelectorAll('svg.plot'))"
                                ".map(s => [s.id, Number(s.dataset.points)]))")
            lines = browser.js("Object.fromEntries(Array.from(document.querySelectorAll('svg.plot'))"
                               ".map(s => [s.id, s.querySelectorAll('polyline.series').length]))")
            shot = browser.call("Page.captureScreenshot", format="png")["data"]
            loaded = browser.js("performance.getEntriesByType('resource').map(e => e.name)")
            profile_text = browser.text("#profile")
        finally:
            browser.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    panels = ["reply_tokens", "repetition", "generic", "language", "unknown", "context", "drift", "feedback",
              "traffic"]
    assert sorted(points) == sorted("plot-" + p for p in panels)
    for panel in panels:  # every panel drew at least one line of three points or more
        assert points["plot-" + panel] >= 3 and lines["plot-" + panel] >= 1, (panel, points, lines)
    assert "training profile: 2000 contexts of integration_tests:multiturn" in profile_text
    assert loaded and all(url.startswith(base) for url in loaded)  # nothing from outside the server
    path = tmp_path / "dashboard.png"
    path.write_bytes(base64.b64decode(shot))
    assert png_is_drawn(str(path), min_size=(800, 600))
