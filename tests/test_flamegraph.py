"""lockprof.flamegraph: folded stacks (exact content), speedscope's schema, well-formed SVG, a
self-contained HTML page, and that page drawn by a real headless Chromium."""

import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib

import pytest

import lockprof
from lockprof import flamegraph, pprof
from lockprof.flamegraph import LOCK_METRICS, choose_metric, folded_stacks, frame_color, lock_frame
from lockprof.profile import Frame, LockSample, Snapshot
from lockprof.renderers.base import encode_text
from lockprof.renderers.folded import FoldedRenderer
from lockprof.renderers.html_page import HtmlRenderer
from lockprof.renderers.pprof import PprofRenderer
from lockprof.renderers.speedscope import SpeedscopeRenderer
from lockprof.renderers.svg import SvgRenderer
from sample_profiles import CACHE, DB, MS, snapshot
from test_pprof import lfield, strings, vfield

WAIT, HOLD, BLOCKING, CONDITION = LOCK_METRICS


def decoded(snap=None):
    return pprof.decode(PprofRenderer().render(snap if snap is not None else snapshot()))


FOLDED_WAIT = (
    "main (/app/main.py:3);query (/app/db.py:40);lock app/db.py:12:_pool_lock 5000000\n"
    "main (/app/main.py:3);worker (/app/work.py:35);Cache.get (/app/cache.py:24);"
    "lock app/cache.py:7:_lock 1000000\n"
    "main (/app/main.py:3);worker (/app/work.py:35);query (/app/db.py:40);"
    "lock app/db.py:12:_pool_lock 19000000\n"
)


def test_folded_wait_exact_content():
    assert FoldedRenderer(WAIT).render([decoded()]) == FOLDED_WAIT


def test_folded_hold_and_blocking_hold():
    hold = FoldedRenderer(HOLD).render([decoded()])
    assert hold.splitlines() == [
        "main (/app/main.py:3);query (/app/db.py:40);lock app/db.py:12:_pool_lock 2000000",
        "main (/app/main.py:3);worker (/app/work.py:35);Cache.get (/app/cache.py:24);"
        "lock app/cache.py:7:_lock 50000000",
        "main (/app/main.py:3);worker (/app/work.py:35);query (/app/db.py:40);"
        "lock app/db.py:12:_pool_lock 8000000",
    ]
    blocking = FoldedRenderer(BLOCKING).render([decoded()]).splitlines()
    assert [line.rsplit(" ", 1)[1] for line in blocking] == ["1000000", "3000000"]
    assert FoldedRenderer(CONDITION).render([decoded()]) == (
        "main (/app/main.py:3);worker (/app/work.py:35);Cache.get (/app/cache.py:24);"
        "lock app/cache.py:7:_lock 30000000\n")


def test_folded_merges_profiles_and_escapes_separators():
    odd = LockSample("a;b", "lock", (Frame("f;g", "/x.py", 1),), 1, 1, "T", acquire_wait_ns=5)
    folded = FoldedRenderer(WAIT).render([decoded(Snapshot([odd], 0, 0, 1.0))] * 2)
    assert folded == "f,g (/x.py:1);lock a,b 10\n"


def test_choose_metric():
    profiles = [decoded()]
    assert choose_metric(profiles, None) == WAIT
    assert choose_metric(profiles, "hold") == HOLD
    assert choose_metric(profiles, "lock-blocking-hold") == BLOCKING
    assert choose_metric(profiles, "condition-wait") == CONDITION
    assert choose_metric(profiles, "lock-acquire").sample_type == "lock-acquire"
    with pytest.raises(ValueError, match="no 'cpu' values; choose from wait, hold, blocking-hold, condition-wait"):
        choose_metric(profiles, "cpu")


def test_other_tools_profiles_are_drawn_by_their_own_sample_types():
    # A CPU profile: sample type samples/count, one stack main -> work.
    data = (strings("samples", "count", "main", "work")
            + lfield(1, vfield(1, 1) + vfield(2, 2))
            + lfield(5, vfield(1, 1) + vfield(2, 3)) + lfield(5, vfield(1, 2) + vfield(2, 4))
            + lfield(4, vfield(1, 1) + lfield(4, vfield(1, 1))) + lfield(4, vfield(1, 2) + lfield(4, vfield(1, 2)))
            + lfield(2, lfield(1, bytes([2, 1])) + lfield(2, bytes([42]))))
    profiles = [pprof.decode(data)]
    metric = choose_metric(profiles, None)
    assert (metric.id, metric.unit) == ("samples", "count")
    assert FoldedRenderer(metric).render(profiles) == "main;work 42\n"


def test_speedscope_schema():
    doc = json.loads(SpeedscopeRenderer(HOLD, "my title").render([decoded()]))
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert (doc["name"], doc["exporter"]) == ("my title", f"lockprof {lockprof.__version__}")
    frames = doc["shared"]["frames"]
    assert {"name": "query", "file": "/app/db.py", "line": 40} in frames
    assert {"name": f"lock {DB}"} in frames
    names = [p["name"] for p in doc["profiles"]]
    assert names == ["lockprof wait time", "lockprof hold time", "lockprof blocking hold time",
                     "lockprof condition wait time"]
    assert doc["activeProfileIndex"] == 1
    for profile, metric in zip(doc["profiles"], LOCK_METRICS):
        assert profile["type"] == "sampled" and profile["unit"] == "nanoseconds"
        assert profile["startValue"] == 0
        assert profile["endValue"] == sum(profile["weights"])
        assert len(profile["samples"]) == len(profile["weights"])
        assert all(0 <= i < len(frames) for stack in profile["samples"] for i in stack)
        expected = folded_stacks([decoded()], metric)
        assert sorted(profile["weights"]) == sorted(expected.values())
    wait = doc["profiles"][0]
    stacks = [[frames[i]["name"] for i in s] for s in wait["samples"]]
    assert ["main", "worker", "query", f"lock {DB}"] in stacks


def test_svg_is_well_formed_and_draws_every_frame_with_a_tooltip():
    svg = SvgRenderer(WAIT, "wait <of> & 'app'").render([decoded()])
    root = ET.fromstring(svg.encode())
    ns = {"s": "http://www.w3.org/2000/svg"}
    titles = [g.find("s:title", ns).text for g in root.iter("{http://www.w3.org/2000/svg}g")]
    labels = {t.split("\n")[0] for t in titles}
    assert labels == {"all", "main (/app/main.py:3)", "query (/app/db.py:40)",
                      "worker (/app/work.py:35)", "Cache.get (/app/cache.py:24)",
                      f"lock {DB}", f"lock {CACHE}"}
    assert "all\n25.0 ms (100.00%)" in titles
    texts = "".join(root.itertext())
    assert "wait <of> & 'app'" in texts and "wait time, total 25.0 ms" in texts
    # Widths are proportional: the root spans the drawing, the 19 ms stack 19/25 of it.
    widths = {g.find("s:title", ns).text.split("\n")[0]: float(g.find("s:rect", ns).get("width"))
              for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert widths["all"] == pytest.approx(1180)
    assert widths["worker (/app/work.py:35)"] == pytest.approx(1180 * 20 / 25)


def test_svg_survives_characters_xml_cannot_hold():
    weird = LockSample("lock\x01\udcff", "lock", (Frame("f\x00<&>", "/b\udc80.py", 1),),
                       1, 1, "T", acquire_wait_ns=5)
    svg = SvgRenderer(WAIT, "t\x02").render([decoded(Snapshot([weird], 0, 0, 1.0))])
    ET.fromstring(encode_text(svg))  # well-formed, and encodable
    assert "f\ufffd&lt;&amp;&gt;" in svg


def test_svg_of_nothing():
    svg = SvgRenderer(WAIT, "empty").render([])
    assert "no samples for this metric" in svg
    ET.fromstring(svg.encode())


def html_data(page):
    match = re.search(r'<script id="lockprof-data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def test_html_is_self_contained():
    page = HtmlRenderer(WAIT, "title </script><b>").render([decoded()])
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link[^>]*href=|@import|url\(", page)
    assert page.count("</script>") == 2  # the title's "</script>" is escaped
    assert "<title>title &lt;/script&gt;&lt;b&gt;</title>" in page
    data = html_data(page)
    assert data["title"] == "title </script><b>"
    assert [m["id"] for m in data["metrics"]] == ["wait", "hold", "blocking-hold", "condition-wait"]
    assert data["initial"] == "wait"


def test_html_trees_hold_the_folded_values():
    data = html_data(HtmlRenderer(HOLD, "t").render([decoded()]))
    assert data["initial"] == "hold"
    labels = [label for label, _ in data["frames"]]
    for metric, encoded in zip(LOCK_METRICS, data["metrics"]):
        flat = encoded["tree"]
        nodes = [flat[i:i + 3] for i in range(0, len(flat), 3)]
        assert nodes[0][0] == -1 and nodes[0][2] == -1  # the root, "all"
        assert nodes[0][1] == sum(folded_stacks([decoded()], metric).values())
        # Each leaf's path from the root is a folded stack with its value.
        folded = {";".join(flamegraph.frame_label(f) for f in stack): value
                  for stack, value in folded_stacks([decoded()], metric).items()}
        children = {i for _, _, parent in nodes for i in [parent]}
        for position, (frame, value, parent) in enumerate(nodes):
            if position in children or position == 0:
                continue
            path = []
            while position > 0:
                path.insert(0, labels[nodes[position][0]])
                position = nodes[position][2]
            assert folded[";".join(path)] == value
    assert data["frames"][labels.index(f"lock {DB}")][1] == frame_color(lock_frame(DB))


# --- the page in a real browser ------------------------------------------------------------------

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


@pytest.fixture
def chromium(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("LOCKPROF_REQUIRE_CHROMIUM") == "1":
            pytest.fail("LOCKPROF_REQUIRE_CHROMIUM=1 but chromium is not installed")
        pytest.skip("chromium is not installed (apt-get install chromium); "
                    "LOCKPROF_REQUIRE_CHROMIUM=1 makes this a failure")

    def run(url, *args):
        command = [CHROMIUM, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                   f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,800",
                   "--virtual-time-budget=5000", *args, url]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    return run


def frames_in(dom):
    """(classes, style, label) of each frame the page's script drew."""
    return re.findall(r'<div class="frame([^"]*)" data-index="\d+" style="([^"]*)">([^<]*)</div>', dom)


def test_chromium_draws_the_flame_graph(chromium, tmp_path):
    page = tmp_path / "wait.html"
    page.write_bytes(encode_text(HtmlRenderer(WAIT, "lockprof test").render([decoded()])))
    url = page.as_uri()

    drawn = frames_in(chromium(url, "--dump-dom"))
    labels = [label for _, _, label in drawn]
    assert labels.count(f"lock {DB}") == 2 and labels.count(f"lock {CACHE}") == 1
    assert {"all", "main (/app/main.py:3)", "worker (/app/work.py:35)",
            "query (/app/db.py:40)"} <= set(labels)
    widths = {label: style for _, style, label in drawn}
    assert "width: 100%" in widths["all"]
    assert "width: 80%" in widths["worker (/app/work.py:35)"]  # 20 of 25 ms

    # Search, zoom and the metric selector, given in the address as a click would leave them.
    zoom = json.dumps(["main (/app/main.py:3)", "worker (/app/work.py:35)"])
    from urllib.parse import quote
    dom = chromium(f"{url}#metric=hold&search=query&zoom={quote(zoom)}", "--dump-dom")
    drawn = frames_in(dom)
    by_label = {label: (classes, style) for classes, style, label in drawn}
    assert "context" in by_label["all"][0] and "context" in by_label["main (/app/main.py:3)"][0]
    assert "width: 100%" in by_label["worker (/app/work.py:35)"][1]
    assert "match" in by_label["query (/app/db.py:40)"][0]
    assert "Cache.get (/app/cache.py:24)" in by_label
    assert "query (/app/db.py:40)" in by_label and "match" not in by_label["Cache.get (/app/cache.py:24)"][0]
    status = re.search(r'<span id="status"[^>]*>([^<]*)</span>', dom).group(1)
    # Hold: 60 ms in all, 58 ms under worker; query matches 2 + 8 of 60 ms.
    assert status == ("hold time: total 60.0 ms; zoomed on worker (/app/work.py:35) (96.67%); "
                      "search matches 16.67%")
    assert '<option value="hold">hold time</option>' in dom

    # And the pixels: each frame wider than a few percent is painted in its colour.
    artifacts = os.environ.get("LOCKPROF_ARTIFACTS") or str(tmp_path)
    os.makedirs(artifacts, exist_ok=True)
    shot = os.path.join(artifacts, f"flamegraph-py{sys.version_info[0]}{sys.version_info[1]}.png")
    chromium(url, f"--screenshot={shot}")
    print(f"flame graph screenshot: {shot}")
    width, height, pixels = read_png(shot)
    assert (width, height) == (1280, 800)
    for frame in (Frame("query", "/app/db.py", 40), lock_frame(DB), Frame("worker", "/app/work.py", 35)):
        wanted = tuple(int(c) for c in re.findall(r"\d+", frame_color(frame)))
        painted = sum(1 for p in pixels if all(abs(a - b) <= 3 for a, b in zip(p, wanted)))
        assert painted > 2000, (frame, wanted, painted)


# Drives the page as a user would, with real DOM events, and writes what it saw into the page.
INTERACTION = """
<script>
(function () {
  const seen = {};
  const status = () => document.getElementById("status").textContent;
  const frame = (start) => Array.from(document.querySelectorAll(".frame"))
    .find((div) => div.textContent.startsWith(start));
  seen.initial = status();
  frame("worker").dispatchEvent(new MouseEvent("click", {bubbles: true}));
  seen.afterClick = status();
  seen.zoom = new URLSearchParams(location.hash.slice(1)).get("zoom");
  frame("query").dispatchEvent(new MouseEvent("mousemove", {bubbles: true, clientX: 300, clientY: 80}));
  const tooltip = document.getElementById("tooltip");
  seen.tooltip = tooltip.hidden ? null : tooltip.textContent;
  const select = document.getElementById("metric");
  select.value = "hold";
  select.dispatchEvent(new Event("change"));
  seen.afterMetric = status();
  const search = document.getElementById("search");
  search.value = "query|Cache\\.get";
  search.dispatchEvent(new Event("input"));
  seen.matches = document.querySelectorAll(".frame.match").length;
  seen.afterSearch = status();
  document.dispatchEvent(new KeyboardEvent("keydown", {key: "Escape"}));
  seen.afterEscape = status();
  const out = document.createElement("pre");
  out.id = "test-result";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
})();
</script>
"""


def test_chromium_clicks_hovers_switches_and_searches(chromium, tmp_path):
    page = HtmlRenderer(WAIT, "lockprof test").render([decoded()])
    test_page = tmp_path / "interactive.html"
    test_page.write_bytes(encode_text(page.replace("</body>", INTERACTION + "</body>")))
    dom = chromium(test_page.as_uri(), "--dump-dom")
    seen = json.loads(html.unescape(re.search(r'<pre id="test-result">(.*?)</pre>', dom, re.S).group(1)))
    assert seen["initial"] == "wait time: total 25.0 ms"
    assert seen["afterClick"] == "wait time: total 25.0 ms; zoomed on worker (/app/work.py:35) (80.00%)"
    assert json.loads(seen["zoom"]) == ["main (/app/main.py:3)", "worker (/app/work.py:35)"]
    assert seen["tooltip"] == ("query (/app/db.py:40)\n19.0 ms (76.00% of all, 95.00% of the "
                               "zoomed frame)")
    assert seen["afterMetric"] == "hold time: total 60.0 ms; zoomed on worker (/app/work.py:35) (96.67%)"
    assert seen["matches"] == 2
    assert seen["afterSearch"].endswith("(96.67%); search matches 100.00%")  # of all the time
    assert seen["afterEscape"] == "hold time: total 60.0 ms; search matches 100.00%"


def read_png(path):
    """(width, height, [(r, g, b), ...]) of an 8-bit RGB or RGBA PNG, decoded with zlib only."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color_type, _, _, interlace = header
    assert depth == 8 and color_type in (2, 6) and interlace == 0, header
    channels = 3 if color_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(line)
        previous = line
    pixels = [tuple(row[x * channels:x * channels + 3]) for row in rows for x in range(width)]
    return width, height, pixels
