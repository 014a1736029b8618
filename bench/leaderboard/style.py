"""What every figure shares: one colour per detector, and a figure on its own Agg canvas.

Figures are drawn on matplotlib's Agg canvas created per figure, so nothing touches pyplot's global
backend (importing this module has no side effects and works without a display).
"""

from __future__ import annotations

import zlib

#: Built-in detectors and presets keep these colours in every figure: matplotlib's tab10 cycle (the
#: first four as before), then the other tab20 colours.
_FIXED = {
    "clip_linear": "C0", "univfd": "C1", "sam": "C2", "corit": "C3", "effort": "C4", "gend": "C5",
    "rine": "C6", "npr": "C7", "safe": "C8", "cnnspot": "C9", "sbi": "#aec7e8", "finetune": "#ffbb78",
    "xception": "#98df8a", "effnet_b4": "#ff9896",
}
_TAB20_REST = ["#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]


def _generated_hues(n: int = 42) -> list[str]:
    """``n`` colours spread around the hue circle (golden-angle steps) at three saturation/value levels."""
    import colorsys

    levels = [(0.75, 0.70), (0.55, 0.90), (0.90, 0.45)]
    out = []
    for i in range(n):
        s, v = levels[i % len(levels)]
        r, g, b = colorsys.hsv_to_rgb((0.05 + i * 0.381966) % 1.0, s, v)
        out.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return out


#: Other names (plugins) hash into these 48 colours, none of them a built-in's.
_PALETTE = _TAB20_REST + _generated_hues()


def detector_colours(names) -> dict[str, str]:
    """One colour per detector name, the same in every figure that shows it.

    Built-ins and presets have fixed colours; any other name takes the palette colour chosen by a
    stable hash (CRC32) of the name alone, never by what else a figure shows, so its colour cannot
    change between figures. Two plugin names may share a colour (1 chance in 48 per pair); the
    legend tells them apart.
    """
    return {name: _FIXED.get(name) or _PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)]
            for name in dict.fromkeys(map(str, names))}


def new_figure(ncols: int, width: float = 5.0, height: float = 3.8, nrows: int = 1):
    """A matplotlib figure on its own Agg canvas (no pyplot state) and its axes, row-major in a flat array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()
