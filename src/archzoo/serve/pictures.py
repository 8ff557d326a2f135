"""Pictures for the page: PNG data URLs of images, feature-map tiles and the results' own matplotlib plots."""

from __future__ import annotations

import base64
import io
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

PLOT_LOCK = threading.Lock()  # matplotlib's pyplot is not thread-safe: one figure at a time


def png_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def plotted(draw: Callable[[Path], Any]) -> str:
    """A data URL of the PNG that ``draw(path)`` writes (the results' own ``save`` / ``plot_*`` methods)."""
    with PLOT_LOCK, tempfile.TemporaryDirectory(prefix="archzoo-serve-") as tmp:
        path = Path(tmp) / "plot.png"
        draw(path)
        return png_url(path.read_bytes())


def pixels_url(image: Any) -> str:
    """A data URL of one image (C, H, W) in [0, 1] at its own size (the page scales it up, unsmoothed)."""
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    out = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(out, format="PNG")
    return png_url(out.getvalue())


MAP_CHANNELS = 16  # feature maps shown per convolution layer


def tiles_url(maps: Any, columns: int = 8, tile: int = 56, gap: int = 4) -> str:
    """A data URL of feature maps (C, H, W) as one PNG of tiles, ``columns`` a row, each channel scaled to
    its own range (black = its minimum, white = its maximum; as ``Predictions.plot_feature_maps`` draws
    them) and enlarged to ``tile`` pixels without smoothing. Drawn with PIL, not matplotlib: about a
    millisecond, so a drawing can be classified at every stroke."""
    from PIL import Image

    maps = maps.float()
    low = maps.amin(dim=(1, 2), keepdim=True)
    maps = (maps - low) / (maps.amax(dim=(1, 2), keepdim=True) - low).clamp(min=1e-12)
    pixels = (maps * 255).round().byte().cpu().numpy()
    rows = -(-len(pixels) // columns)
    sheet = Image.new("L", (columns * (tile + gap) - gap, rows * (tile + gap) - gap), 255)
    for k, channel in enumerate(pixels):
        square = Image.fromarray(channel).resize((tile, tile), Image.Resampling.NEAREST)
        sheet.paste(square, ((k % columns) * (tile + gap), (k // columns) * (tile + gap)))
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    return png_url(out.getvalue())
