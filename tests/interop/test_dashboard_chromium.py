"""The HTML dashboard in Debian's headless Chromium: it paints, and logs no page errors.

The page is served from an ``http.server`` on 127.0.0.1 started here, which also records
every request the browser makes, so "self-contained" is checked from outside as well: the
browser asks for the page and nothing else it needs. The screenshot is decoded by a small
PNG reader (zlib + numpy) and its chart area checked for drawn series colours.
"""

from __future__ import annotations

import re
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import metricskit as mk
from metricskit.alerting.engine import RuleEngine
from metricskit.report._svg_chart import PALETTE
from metricskit.testing import ManualClock
from tests.services import binary
from tests.test_report import RULES, T0
from tests.test_report_html import busy_world

pytestmark = pytest.mark.services

WIDTH, HEIGHT = 1280, 2400
# a page's own errors reach Chromium's log as CONSOLE lines ("Uncaught ...", CSP refusals)
PAGE_ERROR = re.compile(r"CONSOLE|Uncaught|Refused to|Content Security Policy", re.IGNORECASE)


def read_png(data: bytes) -> npt.NDArray[np.uint8]:
    """An 8-bit RGB or RGBA, non-interlaced PNG as an ``(height, width, channels)`` array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    rows = raw.reshape(height, width * bpp + 1)
    out = np.zeros((height, width * bpp), dtype=np.uint8)
    prev = np.zeros(width * bpp, dtype=np.int64)
    for y in range(height):
        kind, line = int(rows[y, 0]), rows[y, 1:].astype(np.int64)
        if kind == 1:  # sub: a running sum per channel
            line = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:  # up
            line = (line + prev) % 256
        elif kind in (3, 4):  # average, Paeth: each byte depends on the one just decoded
            line = _sequential(line, prev, bpp, kind)
        out[y] = line
        prev = line
    return out.reshape(height, width, bpp)


def _sequential(
    line: npt.NDArray[np.int64], prev: npt.NDArray[np.int64], bpp: int, kind: int
) -> npt.NDArray[np.int64]:
    cur, up = line.tolist(), prev.tolist()
    for x in range(len(cur)):
        a = cur[x - bpp] if x >= bpp else 0
        b, c = up[x], (up[x - bpp] if x >= bpp else 0)
        if kind == 3:
            cur[x] = (cur[x] + (a + b) // 2) % 256
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            cur[x] = (cur[x] + pred) % 256
    return np.asarray(cur, dtype=np.int64)


def painted(image: npt.NDArray[np.uint8], colour: str) -> npt.NDArray[np.bool_]:
    """Pixels where ``colour`` was drawn over white at 40 % coverage or more.

    Antialiased lines are blends of their colour and the background, so a pixel counts
    when it lies on the white-to-colour segment (within a few levels) far enough along it.
    """
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
    white = np.full(3, 255.0)
    pixels = image[..., :3].astype(np.float64)
    towards = target - white
    alpha = ((pixels - white) @ towards) / float(towards @ towards)
    off_line = np.linalg.norm(pixels - (white + alpha[..., None] * towards), axis=-1)
    return np.asarray((alpha >= 0.4) & (alpha <= 1.1) & (off_line <= 16))


class Server:
    """The page directory on 127.0.0.1, remembering each path the browser asked for."""

    def __init__(self, root: Path) -> None:
        self.requested: list[str] = []
        requested = self.requested

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                requested.append(self.path)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run, offline but for 127.0.0.1, with its log on stderr."""
    argv = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


def page_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if PAGE_ERROR.search(line)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, str]]:
    root = tmp_path_factory.mktemp("dashboard")
    store = mk.open_store("memory://")
    clock = ManualClock(T0 + 3600)
    (root / "rules.yaml").write_text(RULES % (root / "alerts.log"))
    engine = RuleEngine.from_yaml(str(root / "rules.yaml"), store, clock=clock)
    html = busy_world(store, clock, engine).to_html(root / "dashboard.html")
    (root / "control.html").write_text(
        "<!DOCTYPE html><html><body><p>control</p>"
        '<script>console.error("control error"); missing.call();</script></body></html>'
    )
    server = Server(root)
    yield server, root, html
    server.close()
    if engine.notifier is not None:
        engine.notifier.close()


def test_screenshot_shows_the_banner_and_the_charts(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, _root, _html = site
    exe = binary("chromium")
    shot = tmp_path / "shot.png"
    run = chromium(exe, tmp_path / "profile", f"--screenshot={shot}", server.url("dashboard.html"))
    assert run.returncode == 0 and shot.exists(), run.stderr[-3000:]
    image = read_png(shot.read_bytes())
    assert image.shape[:2] == (HEIGHT, WIDTH)
    # the banner is the warning colour, and the page is not one flat colour
    assert painted(image[:40], "#c77700").mean() > 0.5
    colours = np.unique(image[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 100
    # the charts sit under the banner, tables and recommendations; the first two series
    # colours must each cover far more than their legend swatches (12 x 3 px) would
    lower = image[HEIGHT // 2 :]
    for colour in PALETTE[:2]:
        assert int(painted(lower, colour).sum()) > 300, colour
    assert [p for p in server.requested if "dashboard.html" not in p] in ([], ["/favicon.ico"])


def test_dom_holds_the_svg_and_the_log_has_no_page_errors(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, _root, html = site
    exe = binary("chromium")
    run = chromium(exe, tmp_path / "profile", "--dump-dom", server.url("dashboard.html"))
    assert run.returncode == 0, run.stderr[-3000:]
    dom = run.stdout
    assert dom.count("<polyline") == html.count("<polyline") >= 8
    assert dom.count("<svg") == html.count("<svg") > 0
    assert "WARNING" in dom and "system.high_cpu" in dom
    assert "&lt;script&gt;alert(" in dom and "<script" not in dom
    assert page_errors(run.stderr) == []


def test_the_log_check_sees_page_errors(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, _root, _html = site
    exe = binary("chromium")
    run = chromium(exe, tmp_path / "profile", "--dump-dom", server.url("control.html"))
    errors = page_errors(run.stderr)
    assert any("control error" in line for line in errors), run.stderr[-3000:]
    assert any("Uncaught" in line for line in errors)
