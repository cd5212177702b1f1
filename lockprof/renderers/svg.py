"""The flame graph as a static SVG image: root at the bottom, a tooltip (<title>) on every box;
it opens in any browser."""

from __future__ import annotations

from typing import List, Sequence, Tuple

from lockprof.flamegraph import Node, format_value, frame_color, frame_label, tree, xml_text
from lockprof.profile import Snapshot
from lockprof.renderers.base import FlameGraphRenderer

_SVG_WIDTH, _ROW, _PAD, _TOP = 1200, 17, 10, 44
_CHAR_WIDTH = 6.6  # of the 11px monospace font, to fit labels in their boxes
_MIN_BOX = 0.1  # px: narrower boxes (and all above them) are left out, as flame graphs do


class SvgRenderer(FlameGraphRenderer):
    name = "svg"
    extensions = (".svg",)

    def render(self, profiles: Sequence[Snapshot]) -> str:
        root = tree(self.folded(profiles))
        boxes: List[Tuple[Node, float, float, int]] = []  # node, x, width, depth
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
        total = format_value(root.value, self.metric.unit)
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SVG_WIDTH}" height="{height}" '
            f'viewBox="0 0 {_SVG_WIDTH} {height}" font-family="monospace" font-size="11">\n',
            f'<rect width="100%" height="100%" fill="#ffffff"/>\n',
            f'<text x="{_SVG_WIDTH / 2}" y="18" text-anchor="middle" font-size="15">{xml_text(self.title)}</text>\n',
            f'<text x="{_SVG_WIDTH / 2}" y="34" text-anchor="middle" fill="#555">'
            f'{xml_text(self.metric.title)}, total {xml_text(total)}</text>\n',
        ]
        if not boxes:
            parts.append(f'<text x="{_PAD}" y="{_TOP + _ROW}">no samples for this metric</text>\n')
        for node, x, w, d in boxes:
            y = _TOP + (depth - d) * _ROW
            label = "all" if node.frame is None else frame_label(node.frame)
            color = "rgb(200,200,200)" if node.frame is None else frame_color(node.frame)
            share = 100 * node.value / root.value
            tip = f"{label}\n{format_value(node.value, self.metric.unit)} ({share:.2f}%)"
            fits = int((w - 6) / _CHAR_WIDTH)
            text = label if len(label) <= fits else label[: fits - 2] + ".." if fits > 3 else ""
            parts.append(
                f'<g><title>{xml_text(tip)}</title><rect x="{x:.2f}" y="{y}" width="{w:.2f}" '
                f'height="{_ROW - 1}" fill="{color}" rx="2"/>'
                + (f'<text x="{x + 3:.2f}" y="{y + _ROW - 5}">{xml_text(text)}</text>' if text else "")
                + "</g>\n"
            )
        parts.append("</svg>\n")
        return "".join(parts)
