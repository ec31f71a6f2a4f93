"""Thumbnails and animations of IMAGE outputs, as data: URIs (the report is one file that never
fetches anything), made with Pillow."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from PIL import Image, ImageOps

THUMBNAIL_SIDE = 128
ANIMATION_SIDE = 256
MAX_THUMBNAILS = 48
MAX_FRAMES = 90
MIN_FRAMES = 12
ANIMATION_BUDGET = 1_000_000  # bytes of WebP; the page carries it in base64


@dataclass
class Thumbnail:
    label: int  # the iteration (sweeps: the point)
    uri: str
    batch: int  # images of that iteration's batch (the first is shown)
    width: int
    height: int


def evenly(count: int, limit: int) -> List[int]:
    """At most `limit` indices spread evenly over range(count), the first and the last included."""
    if count <= limit:
        return list(range(count))
    if limit <= 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def open_image(path: str, side: int) -> Optional[Image.Image]:
    """The PNG scaled to fit side x side (never enlarged), in a mode WebP keeps; None when unreadable."""
    try:
        with Image.open(path) as image:
            image.load()
            picture = image
    except (OSError, ValueError):
        return None
    if picture.mode not in ("RGB", "RGBA", "L"):
        picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    return picture


def data_uri(image: Image.Image, quality: int = 78) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=quality, method=4)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnails(frames: Sequence[Tuple[int, List[str]]], limit: int = MAX_THUMBNAILS,
               side: int = THUMBNAIL_SIDE) -> Tuple[List[Thumbnail], List[str]]:
    """Thumbnails of (label, files) entries subsampled to `limit`, and the files that could not be read."""
    shown: List[Thumbnail] = []
    unreadable: List[str] = []
    for index in evenly(len(frames), limit):
        label, files = frames[index]
        picture = open_image(files[0], side) if files else None
        if picture is None:
            unreadable.extend(files[:1])
            continue
        shown.append(Thumbnail(label, data_uri(picture), len(files), picture.width, picture.height))
    return shown, unreadable


def animation(frames: Sequence[Tuple[int, List[str]]], limit: int = MAX_FRAMES,
              side: int = ANIMATION_SIDE) -> Optional[Tuple[str, int]]:
    """A looping animated WebP of the entries' first images (subsampled to `limit` frames) as a data:
    URI, and its frame count; None
    with fewer than two readable frames. Frames of another size are fitted to the first one's.
    Detailed, fast-changing frames compress badly: past ANIMATION_BUDGET bytes, fewer frames are kept."""
    pictures: List[Image.Image] = []
    for index in evenly(len(frames), limit):
        files = frames[index][1]
        picture = open_image(files[0], side) if files else None
        if picture is None:
            continue
        picture = picture.convert("RGBA" if picture.mode == "RGBA" else "RGB")
        if pictures and picture.size != pictures[0].size:
            picture = ImageOps.pad(picture, pictures[0].size)
        pictures.append(picture)
    if len(pictures) < 2:
        return None
    encoded = _encode_animation(pictures)
    while len(encoded) > ANIMATION_BUDGET and len(pictures) > MIN_FRAMES:
        keep = max(MIN_FRAMES, int(len(pictures) * ANIMATION_BUDGET / len(encoded)))
        pictures = [pictures[i] for i in evenly(len(pictures), keep)]
        encoded = _encode_animation(pictures)
    return "data:image/webp;base64," + base64.b64encode(encoded).decode("ascii"), len(pictures)


def _encode_animation(pictures: List[Image.Image]) -> bytes:
    # About four seconds a loop, each frame between 1/15 s and 1/2 s.
    duration = max(66, min(500, 4000 // len(pictures)))
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="WEBP", save_all=True, append_images=pictures[1:], duration=duration,
                     loop=0, quality=65, method=4)
    return buffer.getvalue()
