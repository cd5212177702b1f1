"""Flame graphs of lock profiles: folded stacks, speedscope JSON, a static SVG, an interactive page.

Every format is drawn from folded_stacks(): the summed value of one metric (wait, hold or
blocking hold) per stack, root first, with the lock as the last frame. The HTML page is one
self-contained file (its script and style inline, no network access) that switches between the
metrics, zooms on click, shows a tooltip on hover and highlights a search.
"""

from __future__ import annotations

import colorsys
import html
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from lockprof._term import Progress
from lockprof._version import __version__
from lockprof.pprof import _utf8, DecodedProfile
from lockprof.profile import Frame
from lockprof.report import format_duration, program_frames, short_path

FORMATS = ("html", "svg", "speedscope", "folded")
# The file extensions that select a format when --format is not given.
EXTENSIONS = {".html": "html", ".htm": "html", ".svg": "svg", ".json": "speedscope",
              ".folded": "folded", ".txt": "folded"}

Stack = Tuple[Frame, ...]  # root first


@dataclass(frozen=True)
class Metric:
    """What a flame graph measures: a sample type of the profiles."""

    id: str  # "wait", "hold", "blocking-hold", or another tool's sample type name
    sample_type: str
    unit: str
    title: str


# lockprof's metrics, by the id the command line and the page use.
LOCK_METRICS = (
    Metric("wait", "lock-acquire-wait", "nanoseconds", "wait time"),
    Metric("hold", "lock-release-hold", "nanoseconds", "hold time"),
    Metric("blocking-hold", "lock-blocking-hold", "nanoseconds", "blocking hold time"),
    Metric("condition-wait", "lock-condition-wait", "nanoseconds", "condition wait time"),
)


def available_metrics(profiles: Sequence[DecodedProfile]) -> List[Metric]:
    """lockprof's metrics that the profiles have; for other tools' profiles, every sample type."""
    types = {t.type: t.unit for p in profiles for t in p.sample_types}
    ours = [m for m in LOCK_METRICS if m.sample_type in types]
    if ours:
        return ours
    return [Metric(name, name, unit, name) for name, unit in types.items()]


def _with_metric(metrics: List[Metric], metric: Metric) -> List[Metric]:
    """The metrics a multi-metric format holds: the available ones and the chosen one."""
    return metrics if metric in metrics else metrics + [metric]


def choose_metric(profiles: Sequence[DecodedProfile], wanted: Optional[str]) -> Metric:
    """The metric named `wanted` (an id or a sample type), else the first available one;
    ValueError when the profiles have no such sample type."""
    metrics = available_metrics(profiles)
    if not metrics:
        raise ValueError("the profiles have no sample types")
    if wanted is None:
        return metrics[0]
    for metric in metrics:
        if wanted in (metric.id, metric.sample_type):
            return metric
    types = {t.type: t.unit for p in profiles for t in p.sample_types}
    if wanted in types:  # a sample type other than the three lockprof metrics
        return Metric(wanted, wanted, types[wanted], wanted)
    raise ValueError(f"the profiles have no {wanted!r} values; choose from "
                     + ", ".join(m.id for m in metrics))


# ---------------------------------------------------------------------------------------------
# The one builder


def folded_stacks(profiles: Sequence[DecodedProfile], metric: Metric,
                  progress_to: Optional[TextIO] = None) -> Dict[Stack, int]:
    """The metric's value summed per stack, root first; a lock sample's last frame is its lock.
    The frames `lockprof run` put under the program are left out (report.program_frames)."""
    folded: Dict[Stack, int] = {}
    total = sum(len(p.samples) for p in profiles)
    done = 0
    with Progress(progress_to, "building the flame graph: samples", total) as progress:
        for profile in profiles:
            try:
                index = profile.value_index(metric.sample_type)
            except ValueError:
                done += len(profile.samples)
                continue
            for sample in profile.samples:
                done += 1
                progress.update(done)
                value = sample.values[index]
                if value <= 0:
                    continue
                stack = tuple(reversed(program_frames(sample.frames)))
                lock = sample.labels.get("lock name")
                if lock:
                    stack += (lock_frame(str(lock)),)
                folded[stack] = folded.get(stack, 0) + value
    return folded


def lock_frame(lock_name: str) -> Frame:
    """The frame that stands for the lock itself, on top of the stacks that used it."""
    return Frame(f"lock {lock_name}", "", 0)


def frame_label(frame: Frame) -> str:
    if not frame.filename:
        return frame.name
    return f"{frame.name} ({short_path(frame.filename)}:{frame.line})"


# ---------------------------------------------------------------------------------------------
# Folded stacks and speedscope


def format_folded(folded: Dict[Stack, int]) -> str:
    """Brendan Gregg's folded format: `root;...;leaf value` per line, sorted."""
    lines = []
    for stack, value in folded.items():
        # ";" separates frames and a newline ends the line: neither may appear in a label.
        names = ";".join(frame_label(f).replace(";", ",").replace("\n", " ") for f in stack)
        lines.append(f"{names} {value}")
    return "".join(line + "\n" for line in sorted(lines))


_SPEEDSCOPE_UNITS = {"nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"}


def format_speedscope(profiles: Sequence[DecodedProfile], active: Metric, name: str,
                      progress_to: Optional[TextIO] = None) -> str:
    """speedscope's file format: one sampled profile per metric, the chosen one shown first."""
    frame_index: Dict[Frame, int] = {}
    shared: List[Dict[str, object]] = []
    out_profiles = []
    metrics = _with_metric(available_metrics(profiles), active)
    for metric in metrics:
        folded = folded_stacks(profiles, metric, progress_to)
        samples, weights = [], []
        for stack, value in sorted(folded.items(), key=lambda item: [frame_label(f) for f in item[0]]):
            indices = []
            for frame in stack:
                if frame not in frame_index:
                    frame_index[frame] = len(shared)
                    entry: Dict[str, object] = {"name": frame.name}
                    if frame.filename:
                        entry.update(file=frame.filename, line=frame.line)
                    shared.append(entry)
                indices.append(frame_index[frame])
            samples.append(indices)
            weights.append(value)
        out_profiles.append({
            "type": "sampled",
            "name": f"lockprof {metric.title}",
            "unit": metric.unit if metric.unit in _SPEEDSCOPE_UNITS else "none",
            "startValue": 0,
            "endValue": sum(weights),
            "samples": samples,
            "weights": weights,
        })
    return json.dumps({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": shared},
        "profiles": out_profiles,
        "name": name,
        "activeProfileIndex": metrics.index(active),
        "exporter": f"lockprof {__version__}",
    })


# ---------------------------------------------------------------------------------------------
# The tree the SVG and the page draw


@dataclass
class _Node:
    frame: Optional[Frame]  # None for the root, "all"
    value: int = 0
    children: Dict[Frame, _Node] = field(default_factory=dict)

    def sorted_children(self) -> List[_Node]:
        """Alphabetical, as flame graphs order siblings (the x axis is not time)."""
        return sorted(self.children.values(), key=lambda n: frame_label(n.frame))  # type: ignore[arg-type]


def _tree(folded: Dict[Stack, int]) -> _Node:
    root = _Node(None)
    for stack, value in folded.items():
        node = root
        node.value += value
        for frame in stack:
            node = node.children.setdefault(frame, _Node(frame))
            node.value += value
    return root


def frame_color(frame: Frame) -> str:
    """A stable colour per function: warm hues for code, blue for the lock frames."""
    name = frame.name
    h = zlib.crc32(name.encode("utf-8", "surrogatepass"))
    shade, tint = (h & 0xFF) / 255, ((h >> 8) & 0xFF) / 255
    if frame.name.startswith("lock ") and not frame.filename:
        hue, lightness, saturation = 0.58 + 0.05 * shade, 0.62 + 0.1 * tint, 0.55
    else:
        hue, lightness, saturation = 0.0 + 0.14 * shade, 0.55 + 0.12 * tint, 0.85
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    return f"rgb({round(r * 255)},{round(g * 255)},{round(b * 255)})"


def _format_value(value: int, unit: str) -> str:
    return format_duration(value) if unit == "nanoseconds" else f"{value:,} {unit}".rstrip()


# ---------------------------------------------------------------------------------------------
# SVG

_SVG_WIDTH, _ROW, _PAD, _TOP = 1200, 17, 10, 44
_CHAR_WIDTH = 6.6  # of the 11px monospace font, to fit labels in their boxes
_MIN_BOX = 0.1  # px: narrower boxes (and all above them) are left out, as flame graphs do
# Characters XML 1.0 cannot hold: profiles may carry control characters or lone surrogates.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)


def format_svg(folded: Dict[Stack, int], metric: Metric, title: str) -> str:
    """A static flame graph: root at the bottom, a tooltip (<title>) on every box."""
    root = _tree(folded)
    boxes: List[Tuple[_Node, float, float, int]] = []  # node, x, width, depth
    scale = (_SVG_WIDTH - 2 * _PAD) / root.value if root.value > 0 else 0.0
    todo = [(root, float(_PAD), 0)]  # a loop, not recursion: stacks can be deep
    while todo:
        node, x, depth = todo.pop()
        if node.value * scale < _MIN_BOX:
            continue
        boxes.append((node, x, node.value * scale, depth))
        for child in node.sorted_children():
            todo.append((child, x, depth + 1))
            x += child.value * scale
    depth = max((d for *_, d in boxes), default=0)
    height = _TOP + (depth + 1) * _ROW + _PAD
    total = _format_value(root.value, metric.unit)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SVG_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_SVG_WIDTH} {height}" font-family="monospace" font-size="11">\n',
        f'<rect width="100%" height="100%" fill="#ffffff"/>\n',
        f'<text x="{_SVG_WIDTH / 2}" y="18" text-anchor="middle" font-size="15">{_xml(title)}</text>\n',
        f'<text x="{_SVG_WIDTH / 2}" y="34" text-anchor="middle" fill="#555">'
        f'{_xml(metric.title)}, total {_xml(total)}</text>\n',
    ]
    if not boxes:
        parts.append(f'<text x="{_PAD}" y="{_TOP + _ROW}">no samples for this metric</text>\n')
    for node, x, w, d in boxes:
        y = _TOP + (depth - d) * _ROW
        label = "all" if node.frame is None else frame_label(node.frame)
        color = "rgb(200,200,200)" if node.frame is None else frame_color(node.frame)
        share = 100 * node.value / root.value
        tip = f"{label}\n{_format_value(node.value, metric.unit)} ({share:.2f}%)"
        fits = int((w - 6) / _CHAR_WIDTH)
        text = label if len(label) <= fits else label[: fits - 2] + ".." if fits > 3 else ""
        parts.append(
            f'<g><title>{_xml(tip)}</title><rect x="{x:.2f}" y="{y}" width="{w:.2f}" '
            f'height="{_ROW - 1}" fill="{color}" rx="2"/>'
            + (f'<text x="{x + 3:.2f}" y="{y + _ROW - 5}">{_xml(text)}</text>' if text else "")
            + "</g>\n"
        )
    parts.append("</svg>\n")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# The interactive page


def format_html(profiles: Sequence[DecodedProfile], initial: Metric, title: str,
                progress_to: Optional[TextIO] = None) -> str:
    """One self-contained page holding every metric's tree; `initial` is shown first."""
    frame_index: Dict[Frame, int] = {}
    frames: List[List[str]] = []  # [label, colour] per frame

    def flatten(root: _Node) -> List[int]:
        """The tree in pre-order as [frame, value, parent position, ...]: flat, because JSON
        (and the recursion that would write it) cannot nest as deep as stacks go."""
        flat: List[int] = []
        todo: List[Tuple[_Node, int]] = [(root, -1)]
        while todo:
            node, parent = todo.pop()
            position = len(flat) // 3
            if node.frame is None:
                index = -1
            else:
                if node.frame not in frame_index:
                    frame_index[node.frame] = len(frames)
                    frames.append([frame_label(node.frame), frame_color(node.frame)])
                index = frame_index[node.frame]
            flat += [index, node.value, parent]
            todo += [(child, position) for child in reversed(node.sorted_children())]
        return flat

    encoded_metrics = []
    for metric in _with_metric(available_metrics(profiles), initial):
        tree = flatten(_tree(folded_stacks(profiles, metric, progress_to)))
        encoded_metrics.append({"id": metric.id, "title": metric.title, "unit": metric.unit,
                                "tree": tree})
    data = {"title": title, "initial": initial.id, "frames": frames, "metrics": encoded_metrics}
    fills = {
        "TITLE": html.escape(_NOT_XML.sub("\ufffd", title)),
        "VERSION": html.escape(__version__),
        # "<" escaped: the JSON sits in a <script> element, which "</script>" would end.
        "DATA": json.dumps(data, separators=(",", ":")).replace("<", "\\u003c"),
    }
    # One pass, so a title or a label that reads "$DATA" is not filled in again.
    return re.sub(r"\$(TITLE|VERSION|DATA)\b", lambda m: fills[m.group(1)], _PAGE)


def encode_output(text: str) -> bytes:
    """The bytes written for a text format; file names with undecodable bytes get them back."""
    return _utf8(text)


_PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="lockprof $VERSION">
<title>$TITLE</title>
<style>
  body { margin: 0; font: 13px system-ui, sans-serif; color: #222; background: #fff; }
  header { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; padding: 8px 12px;
           border-bottom: 1px solid #ddd; background: #f6f6f6; position: sticky; top: 0; z-index: 2; }
  h1 { font-size: 15px; margin: 0; font-weight: 600; }
  #status { color: #555; }
  #chart { position: relative; margin: 10px 12px; }
  .frame { position: absolute; height: 17px; line-height: 17px; box-sizing: border-box;
           border-right: 1px solid #fff; border-bottom: 1px solid #fff; padding: 0 3px;
           overflow: hidden; white-space: nowrap; text-overflow: ellipsis;
           font: 11px ui-monospace, SFMono-Regular, Menlo, monospace; color: #111; cursor: pointer; }
  .frame:hover { outline: 1px solid #000; z-index: 1; }
  .frame.context { opacity: 0.5; }
  .frame.match { background: rgb(230, 60, 230) !important; color: #fff; }
  #tooltip { position: fixed; pointer-events: none; background: #222; color: #fff; padding: 6px 8px;
             border-radius: 4px; font-size: 12px; max-width: 70ch; z-index: 3; white-space: pre-wrap;
             overflow-wrap: anywhere; }
  #empty { margin: 24px 12px; color: #666; }
  .hint { color: #777; font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <label>Show <select id="metric"></select></label>
  <input id="search" type="search" placeholder="Search frames (regex)" size="26">
  <button id="reset" type="button">Reset zoom</button>
  <span id="status" aria-live="polite"></span>
  <span class="hint">Click a frame to zoom, Esc to reset.</span>
</header>
<div id="chart"></div>
<p id="empty" hidden>No samples for this metric.</p>
<div id="tooltip" hidden></div>
<script id="lockprof-data" type="application/json">$DATA</script>
<script>
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("lockprof-data").textContent);
  const ROW = 18;
  const chart = document.getElementById("chart");
  const select = document.getElementById("metric");
  const search = document.getElementById("search");
  const status = document.getElementById("status");
  const tooltip = document.getElementById("tooltip");
  const empty = document.getElementById("empty");
  let metric = null, root = null, focus = null, pattern = null, drawn = [];

  function build(flat) {  // [frame, value, parent position] per node, in pre-order
    const nodes = [];
    for (let i = 0; i < flat.length; i += 3) {
      const parent = flat[i + 2] < 0 ? null : nodes[flat[i + 2]];
      const node = {f: flat[i], v: flat[i + 1], parent: parent, depth: parent ? parent.depth + 1 : 0, children: []};
      if (parent) parent.children.push(node);
      nodes.push(node);
    }
    return nodes[0];
  }
  function label(node) { return node.f < 0 ? "all" : data.frames[node.f][0]; }
  function color(node) { return node.f < 0 ? "rgb(200,200,200)" : data.frames[node.f][1]; }
  function formatValue(v) {
    if (metric.unit !== "nanoseconds") return v.toLocaleString("en-US") + " " + metric.unit;
    if (v === 0) return "0";
    const units = [["s", 1e9], ["ms", 1e6], ["us", 1e3]];
    for (const [unit, scale] of units) {
      if (v >= scale) {
        const x = v / scale;
        return (x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString("en-US")) + " " + unit;
      }
    }
    return v + " ns";
  }
  function percent(v, of) { return of > 0 ? (100 * v / of).toFixed(2) + "%" : "-"; }
  function pathOf(node) {
    const path = [];
    for (let n = node; n && n.parent; n = n.parent) path.unshift(label(n));
    return path;
  }
  function findPath(path) {
    let node = root;
    for (const name of path) {
      node = node.children.find(function (c) { return label(c) === name; });
      if (!node) return root;
    }
    return node;
  }
  function matches(node) { return pattern !== null && node.f >= 0 && pattern.test(label(node)); }
  function matchedValue(node) {  // nested matches are counted once
    if (matches(node)) return node.v;
    let sum = 0;
    for (const child of node.children) sum += matchedValue(child);
    return sum;
  }

  function render() {
    chart.textContent = "";
    drawn = [];
    empty.hidden = root.v > 0;
    if (root.v <= 0) { chart.style.height = "0"; showStatus(); return; }
    const width = Math.max(1, chart.clientWidth);
    const boxes = [];
    for (let a = focus.parent; a; a = a.parent) boxes.push([a, 0, 1, true]);
    (function place(node, x) {
      const w = node.v / focus.v;
      if (w * width < 0.5) return;
      boxes.push([node, x, w, false]);
      for (const child of node.children) { place(child, x); x += child.v / focus.v; }
    })(focus, 0);
    let maxDepth = 0;
    for (const box of boxes) maxDepth = Math.max(maxDepth, box[0].depth);
    chart.style.height = ((maxDepth + 1) * ROW) + "px";
    const fragment = document.createDocumentFragment();
    for (const [node, x, w, context] of boxes) {
      const div = document.createElement("div");
      div.className = "frame" + (context ? " context" : "") + (matches(node) ? " match" : "");
      div.style.left = (100 * x) + "%";
      div.style.width = (100 * w) + "%";
      if (w * width < 12) div.style.padding = "0";  // padding would widen a narrow box
      div.style.top = ((maxDepth - node.depth) * ROW) + "px";
      div.style.background = color(node);
      div.textContent = label(node);
      div.dataset.index = String(drawn.length);
      drawn.push(node);
      fragment.appendChild(div);
    }
    chart.appendChild(fragment);
    showStatus();
  }

  function showStatus() {
    let text = metric.title + ": total " + formatValue(root.v);
    if (focus !== root) text += "; zoomed on " + label(focus) + " (" + percent(focus.v, root.v) + ")";
    if (pattern !== null) text += "; search matches " + percent(matchedValue(root), root.v);
    status.textContent = text;
  }

  function saveState() {
    const state = new URLSearchParams();
    state.set("metric", metric.id);
    if (search.value) state.set("search", search.value);
    if (focus !== root) state.set("zoom", JSON.stringify(pathOf(focus)));
    history.replaceState(null, "", "#" + state.toString());
  }

  function setMetric(id, zoomPath) {
    metric = data.metrics.find(function (m) { return m.id === id; }) || data.metrics[0];
    select.value = metric.id;
    root = build(metric.tree);
    focus = findPath(zoomPath);
    render();
  }

  function setSearch(text) {
    if (!text) { pattern = null; return; }
    try { pattern = new RegExp(text, "i"); }
    catch (e) { pattern = new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i"); }
  }

  function nodeAt(event) {
    const div = event.target.closest(".frame");
    return div ? drawn[Number(div.dataset.index)] : null;
  }

  for (const m of data.metrics) {
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = m.title;
    select.appendChild(option);
  }
  document.getElementById("title").textContent = data.title;
  select.addEventListener("change", function () { setMetric(select.value, pathOf(focus)); saveState(); });
  search.addEventListener("input", function () { setSearch(search.value); render(); saveState(); });
  document.getElementById("reset").addEventListener("click", function () { focus = root; render(); saveState(); });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { focus = root; render(); saveState(); }
  });
  chart.addEventListener("click", function (event) {
    const node = nodeAt(event);
    if (node) { focus = node; render(); saveState(); }
  });
  chart.addEventListener("mousemove", function (event) {
    const node = nodeAt(event);
    if (!node) { tooltip.hidden = true; return; }
    tooltip.textContent = label(node) + "\n" + formatValue(node.v) + " (" + percent(node.v, root.v)
      + " of all" + (focus !== root ? ", " + percent(node.v, focus.v) + " of the zoomed frame" : "") + ")";
    tooltip.hidden = false;
    const x = Math.min(event.clientX + 12, window.innerWidth - tooltip.offsetWidth - 4);
    tooltip.style.left = Math.max(4, x) + "px";
    tooltip.style.top = (event.clientY + 16) + "px";
  });
  chart.addEventListener("mouseleave", function () { tooltip.hidden = true; });
  window.addEventListener("resize", render);

  // The view can be given in the address: #metric=hold&search=worker&zoom=["main (app.py:3)"]
  const state = new URLSearchParams(location.hash.slice(1));
  search.value = state.get("search") || "";
  setSearch(search.value);
  let zoom = [];
  try { zoom = JSON.parse(state.get("zoom") || "[]"); } catch (e) { zoom = []; }
  setMetric(state.get("metric") || data.initial, Array.isArray(zoom) ? zoom : []);
})();
</script>
</body>
</html>
"""
