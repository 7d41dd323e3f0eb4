"""report.html in headless Chromium: hostile journal values stay text, the charts show.

Needs ``chromium`` (``make install`` installs it); the screenshot is kept in
``reports/test-artifacts/report-browser.png`` for a person to look at.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from chaosmesh_istio.report import write_report
from tests.browser import chromium_path, open_page
from tests.test_report import _groups, _journal, _series

ARTIFACTS = Path(__file__).resolve().parent.parent / "reports" / "test-artifacts"
SCRIPT = "<script>window.__pwned=1</script>"
IMG = '"><img src=x onerror="window.__pwned=2">'
PAYLOADS = (SCRIPT, IMG)
CHARTS = 3  # request rate, error rate, latency

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="chromium is not on PATH; 'make install' installs it"
)

_CHARTS_DRAWN = """
[...document.querySelectorAll('svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  const style = getComputedStyle(svg);
  return {
    width: box.width,
    height: box.height,
    visible: style.display !== 'none' && style.visibility === 'visible',
    polylines: [...svg.querySelectorAll('polyline')].map(line => {
      const bbox = line.getBBox();
      return {points: line.points.numberOfItems, width: bbox.width};
    }),
  };
})
"""


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_hostile_values_render_as_text_and_the_charts_show(tmp_path: Path) -> None:
    fault = {"delay": {"fixedDelay": "2s", "percentage": {"value": 100.0}}}
    nasty = SCRIPT + IMG
    journal = _journal(
        fault,
        _groups(exp_p50=2050, exp_errors=0),
        vs=f"default/{nasty}",
        header_value=nasty,
        after_output=nasty,
    )
    journal["experiment"]["title"] = nasty
    paths = write_report(journal, tmp_path, _series(2050))

    with open_page(paths["html"].as_uri()) as page:
        pwned = page.evaluate("typeof window.__pwned")
        scripts = page.evaluate("document.querySelectorAll('script').length")
        images = page.evaluate("document.querySelectorAll('img, [onerror]').length")
        text = page.evaluate("document.body.innerText")
        heading = page.evaluate("document.querySelector('h1').innerText")
        cells = page.evaluate("[...document.querySelectorAll('td')].map(td => td.innerText)")
        charts = page.evaluate(_CHARTS_DRAWN)
        png = page.screenshot()
        problems = list(page.problems)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report-browser.png").write_bytes(png)

    assert pwned == "undefined"
    assert (scripts, images) == (0, 0)
    assert heading == nasty
    assert f"default/{nasty}" in cells  # the VirtualService row
    assert f"x-chaos-run: {nasty}" in cells  # the header row
    assert nasty in cells  # the probe's output after the method
    for payload in PAYLOADS:
        assert text.count(payload) >= 4
    assert problems == []

    drawn = [c for c in charts if c["width"] > 0 and c["height"] > 0 and c["visible"]]
    assert len(drawn) >= CHARTS, charts
    for chart in drawn[:CHARTS]:
        assert len(chart["polylines"]) >= 2, chart  # control and experiment
        assert all(line["points"] > 1 and line["width"] > 0 for line in chart["polylines"])

    width, height = _png_size(png)
    assert width >= 900 and height >= 1000, (width, height)  # the whole page, not a viewport
    assert len(png) > 20_000
