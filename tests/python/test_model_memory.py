"""discomfort_bridge.model_memory's in-place weight swap, on torch modules built as ComfyUI builds
them (inside inference mode, as its executor runs every node). The end-to-end case, real SD1.5
models spilled under the budget and sampled again, is tests/python/models_budget."""

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture
def model_memory(d):
    """The module, importable once the engine (the `d` fixture) has started its ComfyUI host."""
    from discomfort_bridge import model_memory
    return model_memory


def file_backed_twin(t):
    """A normal tensor with t's values in storage of its own (what the context maps from a spill
    file), made outside inference mode as the C++ side makes it."""
    return t.detach().clone() if not t.is_inference() else torch.tensor(t.tolist(), dtype=t.dtype)


@pytest.mark.parametrize("built_in_inference_mode", [True, False])
def test_a_swapped_weight_keeps_its_kind_and_takes_the_new_storage(model_memory, built_in_inference_mode):
    if built_in_inference_mode:
        with torch.inference_mode():
            layer = torch.nn.Linear(8, 4)
    else:
        layer = torch.nn.Linear(8, 4).requires_grad_(False)
    weight = layer.weight
    twin = file_backed_twin(weight) + 1
    with torch.inference_mode():
        weight.data = model_memory._same_kind_as(weight, twin)

    assert layer.weight is weight  # the same parameter object: every holder sees the swap
    assert weight.is_inference() == built_in_inference_mode
    assert weight.data_ptr() == twin.data_ptr()  # no copy: the file-backed storage itself
    assert torch.equal(weight, twin)
    # What failed before: a weight made in inference mode that took a normal tensor's data looked
    # normal but had no version counter, so ComfyUI's next use of it raised.
    if built_in_inference_mode:
        with torch.inference_mode():
            weight.add_(0)
            layer(torch.ones(1, 8))
    else:
        assert weight._version >= 0
        weight.add_(0)
