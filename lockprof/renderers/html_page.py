"""The flame graph as an interactive page: one self-contained file (its script and style inline,
no network access) holding every metric's tree, that switches between the metrics, zooms on
click, shows a tooltip on hover, highlights a search and keeps the view in its address."""

from __future__ import annotations

import html
import json
import re
from typing import Dict, List, Sequence, Tuple

from lockprof._version import __version__
from lockprof.flamegraph import Node, frame_color, frame_label, tree, xml_text
from lockprof.profile import Frame, Snapshot
from lockprof.renderers.base import FlameGraphRenderer


class HtmlRenderer(FlameGraphRenderer):
    name = "html"
    extensions = (".html", ".htm")

    def render(self, profiles: Sequence[Snapshot]) -> str:
        """One page holding every metric's tree; the chosen metric is shown first."""
        frame_index: Dict[Frame, int] = {}
        frames: List[List[str]] = []  # [label, colour] per frame

        def flatten(root: Node) -> List[int]:
            """The tree in pre-order as [frame, value, parent position, ...]: flat, because JSON
            (and the recursion that would write it) cannot nest as deep as stacks go."""
            flat: List[int] = []
            todo: List[Tuple[Node, int]] = [(root, -1)]
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
        for metric in self.metrics(profiles):
            encoded_metrics.append({"id": metric.id, "title": metric.title, "unit": metric.unit,
                                    "tree": flatten(tree(self.folded(profiles, metric)))})
        data = {"title": self.title, "initial": self.metric.id, "frames": frames, "metrics": encoded_metrics}
        fills = {
            "TITLE": xml_text(self.title),
            "VERSION": html.escape(__version__),
            # "<" escaped: the JSON sits in a <script> element, which "</script>" would end.
            "DATA": json.dumps(data, separators=(",", ":")).replace("<", "\\u003c"),
        }
        # One pass, so a title or a label that reads "$DATA" is not filled in again.
        return re.sub(r"\$(TITLE|VERSION|DATA)\b", lambda m: fills[m.group(1)], _PAGE)


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
