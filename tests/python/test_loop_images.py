"""The loop executor's pictures of an IMAGE port (discomfort.loop_images): which iterations the contact
sheet shows, its layout and labels, and the IMAGE it becomes. Pillow and torch only; the same node
inside a live ComfyUI is tested in test_live_loop_node.py."""

import math
import re

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from discomfort import loop_images


def _spread(count, limit):
    """The iterations a sheet of `limit` cells shows for `count` iterations: evenly spread, the first and
    the last included (written out here, independently of the module)."""
    if count <= limit:
        return list(range(count))
    return sorted({round(k * (count - 1) / (limit - 1)) for k in range(limit)})


def _gray(level, size=(40, 30)):
    return Image.new("RGB", size, (level, level, level))


def _run(images, count):
    for iteration in range(count):
        images.add(iteration, _gray(iteration % 256))
    return images


@pytest.mark.parametrize("count", [1, 5, 16, 17, 40, 1000])
def test_a_whole_run_shows_evenly_spread_iterations(count):
    images = _run(loop_images.IterationImages(count, cells=16, side=64), count)
    picks = images.picks()
    assert [i for i, _ in picks] == _spread(count, 16)
    assert all(t.getpixel((0, 0)) == (i % 256,) * 3 for i, t in picks)  # each cell is its own iteration's image


@pytest.mark.parametrize("ran", [1, 7, 33, 100, 999])
def test_a_run_stopped_early_shows_its_first_and_last_iterations_spread_evenly(ran):
    images = _run(loop_images.IterationImages(1000, cells=16, side=64), ran)  # `until` stopped it at `ran`
    shown = [i for i, _ in images.picks()]
    assert shown[0] == 0 and shown[-1] == ran - 1 and shown == sorted(set(shown))
    assert len(shown) == min(ran, 16)
    if ran > 16:  # no gap much wider than an even spread's
        gaps = np.diff(shown)
        assert gaps.max() <= 2.5 * (ran - 1) / 15, shown


def test_memory_stays_bounded_on_long_runs():
    images = loop_images.IterationImages(10 ** 6, cells=16, side=8)
    for iteration in range(5000):
        images.add(iteration, _gray(1, (8, 8)))
        assert len(images.sampled) <= 16 + 2 * 16 + 1


def test_first_picture_takes_the_first_image_of_a_batch():
    batch = torch.zeros(2, 3, 5, 3)
    batch[0, ..., 0] = 1.0  # red first image
    batch[1, ..., 2] = 1.0
    assert loop_images.first_picture(batch, "x").getpixel((4, 2)) == (255, 0, 0)
    gray = torch.full((1, 3, 5, 1), 0.5)
    assert loop_images.first_picture(gray, "x").getpixel((0, 0)) == (128, 128, 128)
    rgba = torch.ones(1, 2, 2, 4)
    assert loop_images.first_picture(rgba, "x").mode == "RGB"
    for bad, shown in ((torch.zeros(2, 3, 5), "shape [2, 3, 5]"), (torch.zeros(0, 3, 5, 3), "shape [0, 3, 5, 3]"),
                       (torch.zeros(1, 3, 5, 3, dtype=torch.uint8), "shape"), (42, "int")):
        with pytest.raises(TypeError, match=r"^Node, preview_port 'frame' holds .*" + re.escape(shown) + r".*not an IMAGE"):
            loop_images.first_picture(bad, "Node, preview_port 'frame'")


def _ink_box(array, background):
    """The bounding box of the pixels that differ from the background."""
    ys, xs = np.nonzero(np.abs(array.astype(int) - np.array(background)).max(axis=-1) > 8)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def expected_label(iteration):
    """The label as the default font draws it, cropped to its ink."""
    picture = Image.new("RGB", (200, 40), loop_images.BACKGROUND)
    ImageDraw.Draw(picture).text((10, 10), f"iteration {iteration}", font=ImageFont.load_default(),
                                 fill=loop_images.LABEL_COLOR)
    array = np.asarray(picture)
    top, bottom, left, right = _ink_box(array, loop_images.BACKGROUND)
    return array[top:bottom, left:right]


def cells(sheet, count, cell_width, cell_height):
    """(image, label strip) of each cell, as arrays, left to right then down."""
    array = np.asarray(sheet)
    columns = math.ceil(math.sqrt(count))
    out = []
    for index in range(count):
        row, column = divmod(index, columns)
        left, top = column * cell_width, row * (cell_height + loop_images.LABEL_HEIGHT)
        out.append((array[top:top + cell_height, left:left + cell_width],
                    array[top + cell_height:top + cell_height + loop_images.LABEL_HEIGHT, left:left + cell_width]))
    return out


def label_of(strip):
    top, bottom, left, right = _ink_box(strip, loop_images.BACKGROUND)
    return strip[top:bottom, left:right]


def test_the_sheet_is_a_grid_of_thumbnails_labelled_with_their_iteration():
    count = 7
    images = loop_images.IterationImages(count, cells=16, side=256)
    for iteration in range(count):
        images.add(iteration, _gray(20 * iteration + 40, (300, 150)))  # fitted into 256 x 128
    sheet = images.sheet()
    # ceil(sqrt(7)) = 3 columns, 3 rows; cells of the thumbnail's size plus the label strip.
    assert sheet.size == (3 * 256, 3 * (128 + loop_images.LABEL_HEIGHT))
    for iteration, (image, strip) in enumerate(cells(sheet, count, 256, 128)):
        assert (image == 20 * iteration + 40).all()
        np.testing.assert_array_equal(label_of(strip), expected_label(iteration))
    # Cells past the last are background.
    assert (np.asarray(sheet)[2 * 148:, 256:] == loop_images.BACKGROUND).all()
    # The same images give the same sheet, to the pixel.
    again = loop_images.IterationImages(count, cells=16, side=256)
    for iteration in range(count):
        again.add(iteration, _gray(20 * iteration + 40, (300, 150)))
    assert again.sheet().tobytes() == sheet.tobytes()


def test_cells_are_at_least_as_wide_as_their_labels():
    count = 12000
    shown = _spread(count, 4)
    images = loop_images.IterationImages(count, cells=4, side=256)
    for iteration in range(count):
        images.add(iteration, _gray(200 if iteration in shown else 100, (10, 10)))
    sheet = images.sheet()
    label_width = expected_label(shown[-1]).shape[1]
    cell_width = sheet.size[0] // 2
    assert cell_width >= label_width + loop_images.LABEL_MARGIN - 1 and sheet.size[1] == 2 * (10 + loop_images.LABEL_HEIGHT)
    for iteration, (image, strip) in zip(shown, cells(sheet, 4, cell_width, 10)):
        np.testing.assert_array_equal(label_of(strip), expected_label(iteration))
        assert (image[:, (cell_width - 10) // 2:(cell_width - 10) // 2 + 10] == 200).all()


def test_the_sheet_as_an_image_tensor():
    tensor = loop_images.as_image_tensor(_gray(51, (6, 4)))
    assert tensor.shape == (1, 4, 6, 3) and tensor.dtype == torch.float32
    assert torch.allclose(tensor, torch.full_like(tensor, 0.2))
