"""What the loop executor shows of one IMAGE port: the latest iteration's image as the node's preview
while the loop runs, and a contact sheet of the iterations at the end (Pillow; deterministic: the same
images give the same sheet, pixel for pixel).

The sheet has at most MAX_CELLS cells, spread evenly over the iterations run, the first and the last
always among them; each cell is the iteration's image (the first of its batch) fitted into
THUMBNAIL_SIDE x THUMBNAIL_SIDE (never enlarged) with "iteration N" under it (N as the engine counts,
from 0, as in file names and `until`). Memory stays bounded on runs of any length: only the
thumbnails of the planned cells and of a thinning sample of the others are kept (see IterationImages).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

MAX_CELLS = 16
THUMBNAIL_SIDE = 256
LABEL_HEIGHT = 20      # the strip under each image holding its label
LABEL_MARGIN = 8       # a cell is at least its label's width plus this
BACKGROUND = (24, 24, 24)
LABEL_COLOR = (235, 235, 235)


def evenly(count: int, limit: int) -> List[int]:
    """At most `limit` indices spread evenly over range(count), the first and the last included.
    The report (report/images.py) spreads its thumbnails the same way with its own copy: it is loaded
    by file path without this package, and this module may not import Pillow at module level."""
    if count <= limit:
        return list(range(count))
    if limit <= 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def output_ports(loaded: Sequence[Tuple[str, Dict[str, Any]]], definitions: Any) -> Dict[str, str]:
    """{unique_id: type} of every OUTPUT (and PASSTHRU) port of these workflows. An OUTPUT fed by an
    untyped ("*") node output takes the type of the INPUT port of the same unique_id, since that port
    receives its value in the next iteration; "*" when neither says."""
    from ._native import core
    found: Dict[str, str] = {}
    inputs: Dict[str, str] = {}
    for name, document in loaded:
        ports = core.discover_ports(document, definitions, name)
        for port in ports["outputs"] + ports["passthrus"]:
            found.setdefault(port["unique_id"], port.get("type") or "*")
        for port in ports["inputs"]:
            if (port.get("type") or "*") != "*":
                inputs.setdefault(port["unique_id"], port["type"])
    return {uid: inputs.get(uid, "*") if kind == "*" else kind for uid, kind in found.items()}


def first_picture(value: Any, where: str) -> "Image.Image":  # noqa: F821
    """The first image of an IMAGE batch ([B, H, W, C] floats in 0..1, C = 1, 3 or 4) as an RGB picture;
    a TypeError naming `where` for anything else."""
    import torch
    from PIL import Image
    if not isinstance(value, torch.Tensor) or value.dim() != 4 or value.shape[0] == 0 \
            or value.shape[-1] not in (1, 3, 4) or not value.is_floating_point():
        shown = f"a tensor of shape {list(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise TypeError(f"{where} holds {shown}, not an IMAGE (a [batch, height, width, 1|3|4] float tensor)")
    array = (value[0].detach().float().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    if array.shape[-1] == 1:
        return Image.fromarray(array[..., 0], "L").convert("RGB")
    if array.shape[-1] == 4:
        return Image.fromarray(array, "RGBA").convert("RGB")
    return Image.fromarray(array, "RGB")


def fitted(picture: "Image.Image", side: int) -> "Image.Image":  # noqa: F821
    """A copy scaled to fit side x side, never enlarged."""
    from PIL import Image
    copy = picture.copy()
    copy.thumbnail((side, side), Image.Resampling.LANCZOS)
    return copy


class IterationImages:
    """Thumbnails of one port's image per iteration, for the contact sheet.

    Kept: the cells planned for a run of all `iterations` (evenly(iterations, cells)), the latest
    iteration, and every `stride`-th iteration, the stride doubling whenever more than twice `cells`
    of those are kept. A run that ends early (`until`) picks its cells evenly from that sample, which
    is spread evenly over the iterations it ran."""

    def __init__(self, iterations: int, cells: int = MAX_CELLS, side: int = THUMBNAIL_SIDE) -> None:
        self.iterations, self.cells, self.side = iterations, cells, side
        self.planned = set(evenly(iterations, cells))
        self.stride = 1
        self.sampled: Dict[int, Any] = {}
        self.latest: Optional[Tuple[int, Any]] = None

    def add(self, iteration: int, picture: "Image.Image") -> None:  # noqa: F821
        thumbnail = fitted(picture, self.side)
        self.latest = (iteration, thumbnail)
        if iteration in self.planned or iteration % self.stride == 0:
            self.sampled[iteration] = thumbnail
        if sum(1 for i in self.sampled if i not in self.planned) > 2 * self.cells:
            self.stride *= 2
            self.sampled = {i: t for i, t in self.sampled.items() if i in self.planned or i % self.stride == 0}

    def picks(self) -> List[Tuple[int, Any]]:
        """(iteration, thumbnail) of each cell, in iteration order."""
        if self.latest is None:
            return []
        last = self.latest[0]
        if last + 1 == self.iterations:  # the whole run: the planned cells, exactly even
            return [(i, self.sampled[i]) for i in sorted(self.planned) if i in self.sampled]
        candidates = sorted({**{i: t for i, t in self.sampled.items()
                                if i % self.stride == 0 and i <= last}, last: self.latest[1]}.items())
        return [candidates[k] for k in evenly(len(candidates), self.cells)]

    def sheet(self) -> Optional["Image.Image"]:  # noqa: F821
        picks = self.picks()
        return contact_sheet(picks) if picks else None


def _font() -> Any:
    from PIL import ImageFont
    return ImageFont.load_default()


def contact_sheet(picks: Sequence[Tuple[int, "Image.Image"]]) -> "Image.Image":  # noqa: F821
    """The thumbnails in a grid of ceil(sqrt(n)) columns, left to right then down, each centred in a
    cell as large as the largest (and at least as wide as its label plus LABEL_MARGIN), its label
    centred in the LABEL_HEIGHT strip under it."""
    from PIL import Image, ImageDraw
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [f"iteration {iteration}" for iteration, _ in picks]
    boxes = [measure.textbbox((0, 0), label, font=font) for label in labels]
    cell_width = max([t.width for _, t in picks] + [b[2] - b[0] + LABEL_MARGIN for b in boxes])
    cell_height = max(t.height for _, t in picks)
    columns = math.ceil(math.sqrt(len(picks)))
    rows = math.ceil(len(picks) / columns)
    sheet = Image.new("RGB", (columns * cell_width, rows * (cell_height + LABEL_HEIGHT)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for index, ((_, thumbnail), label, box) in enumerate(zip(picks, labels, boxes)):
        row, column = divmod(index, columns)
        left, top = column * cell_width, row * (cell_height + LABEL_HEIGHT)
        sheet.paste(thumbnail, (left + (cell_width - thumbnail.width) // 2, top + (cell_height - thumbnail.height) // 2))
        text_left = left + (cell_width - (box[2] - box[0])) // 2 - box[0]
        text_top = top + cell_height + (LABEL_HEIGHT - (box[3] - box[1])) // 2 - box[1]
        draw.text((text_left, text_top), label, font=font, fill=LABEL_COLOR)
    return sheet


def as_image_tensor(picture: "Image.Image") -> "torch.Tensor":  # noqa: F821
    """ComfyUI's IMAGE: [1, H, W, 3] float32 in 0..1."""
    import numpy as np
    import torch
    return torch.from_numpy(np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0)[None, ...]


def preview_size() -> int:
    """The largest preview side ComfyUI sends (its --preview-size)."""
    try:
        from comfy.cli_args import args
        return int(getattr(args, "preview_size", 512) or 512)
    except Exception:  # ComfyUI's arguments not importable: its default
        return 512
