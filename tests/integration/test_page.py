"""The HTML page at the server's root, loaded in a real headless Chromium (Debian `chromium`,
installed by .ci/run) from a real leaking program."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import urllib.request

from tests.integration.conftest import wait_for

PROGRAM = """
import time, leakwatch

def make():
    class Leak:  # its key, __main__.make.<locals>.Leak, has markup characters to escape
        pass
    return Leak

Leak = make()
kept = []
cache = {}
w = leakwatch.start(interval=0.1, window=3, warmup=1, port=0, graphs=True, tracemalloc="off", log_suspects=False)
print("serving %s:%d" % w.server_address, flush=True)
i = 0
while True:
    kept.extend(Leak() for _ in range(20))
    cache[i % 100] = [i]  # bounded: never a suspect
    i += 1
    time.sleep(0.05)
"""

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_dom(url: str, profile: str) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Chromium is missing: apt-get install chromium (.ci/run does)"
    result = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_page_shows_the_suspect_its_chart_and_its_graph_link(subprocess_env, tmp_path):
    program = tmp_path / "leaky.py"
    program.write_text(PROGRAM)
    proc = subprocess.Popen([sys.executable, str(program)], env=subprocess_env, stdout=subprocess.PIPE, text=True)
    try:
        base = "http://" + re.search(r"serving (\S+)", proc.stdout.readline()).group(1)

        def suspect():
            with urllib.request.urlopen(base + "/api/suspects", timeout=10) as r:
                report = json.load(r)
            return next((s for s in report["suspects"] if s["key"].endswith(".Leak")), None)

        leak = wait_for(suspect, timeout=60, step=0.5)
        wait_for(
            lambda: len(json.load(urllib.request.urlopen(base + "/api/suspects", timeout=10))["trends"].get(leak["id"], [])) > 5
        )
        dom = chromium_dom(base + "/", str(tmp_path / "profile"))

        assert "<title>leakwatch: 1 suspected" in dom
        row = re.search(rf'<tr data-id="{leak["id"]}">(.*?)</tr>', dom, re.S)
        assert row, dom[-3000:]
        cells = row.group(1)
        assert html.escape("__main__.make.<locals>.Leak", quote=False) in cells  # shown as text, escaped
        assert "<locals>" not in cells  # never as markup
        points = re.search(r'<polyline points="([^"]+)"', cells).group(1).split()
        assert len(points) > 5
        ys = [float(p.split(",")[1]) for p in points]
        assert ys[-1] < ys[0]  # the line climbs (SVG y grows downwards)
        # Its axes: the highest and lowest counts, the unit and the time it spans.
        labels = re.findall(r"<text[^>]*>([^<]+)</text>", cells)
        assert len(labels) == 3 and re.fullmatch(r"objects, last \d+ s", labels[2]), labels
        assert "holds" in dom and re.search(r'<td class="num retained"[^>]*>[\d.]+ (?:[KMG]i)?B ± ', cells), cells
        # The process's memory below the table, charted in bytes.
        assert re.search(r'<p id="rss">RSS [\d.]+ [KMG]iB', dom) and 'aria-label="bytes over time"' in dom
        link = re.search(r'<a class="graph" href="([^"]+)"', cells).group(1)
        assert "cache" not in dom.split("<tbody>", 1)[1]  # the bounded cache is not listed

        with urllib.request.urlopen(base + "/" + html.unescape(link), timeout=60) as r:
            assert r.headers["Content-Type"] == "image/svg+xml"
            assert b"kept" in r.read()  # the graph names the holder
    finally:
        proc.kill()
        proc.wait(10)
