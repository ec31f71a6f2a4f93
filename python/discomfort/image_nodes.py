"""Discomfort's image nodes for the ComfyUI UI: a folder of images as one IMAGE batch, and image
descriptions from any OpenAI-compatible endpoint.

Pure Python (PIL, torch, requests from ComfyUI's own requirements): the repository's root __init__.py
loads this file by path, so these nodes register whether or not the compiled core is built. It must
therefore not import the rest of the `discomfort` package.

Paths (DiscomfortFolderImageLoader): a relative folder resolves under ComfyUI's input folder and may
not leave it (`..` or a symlink pointing outside is refused); an absolute folder is refused unless the
node's `allow_absolute_path` is on. A workflow shared with you thus cannot read arbitrary folders of
your machine unless you turn that option on yourself.
"""

from __future__ import annotations

import base64
import fnmatch
import io
import os
from typing import Any, Dict, List, Optional, Tuple

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
RESIZE_METHODS = ["lanczos", "bicubic", "bilinear", "area", "nearest-exact"]
SIZE_MODES = ["first image", "custom"]
CROP_MODES = ["disabled", "center"]


def _input_directory() -> str:
    import folder_paths
    return folder_paths.get_input_directory()


def resolve_folder(folder: str, allow_absolute_path: bool = False, base: Optional[str] = None) -> str:
    """The real path of `folder`: relative paths under `base` (ComfyUI's input folder) and never
    outside it; absolute paths only with allow_absolute_path."""
    folder = (folder or "").strip()
    if not folder:
        raise ValueError("folder is empty: give a folder under ComfyUI's input folder (or an absolute path "
                         "with allow_absolute_path on)")
    folder = os.path.expanduser(folder)
    if os.path.isabs(folder):
        if not allow_absolute_path:
            raise PermissionError(f"folder {folder!r} is an absolute path; turn on allow_absolute_path to read "
                                  f"outside ComfyUI's input folder, or give a path relative to it")
        resolved = os.path.realpath(folder)
    else:
        root = os.path.realpath(base if base is not None else _input_directory())
        resolved = os.path.realpath(os.path.join(root, folder))
        if os.path.commonpath([root, resolved]) != root:
            raise PermissionError(f"folder {folder!r} resolves to {resolved}, outside ComfyUI's input folder "
                                  f"{root}; paths may not escape it")
    if not os.path.isdir(resolved):
        raise FileNotFoundError(f"image folder {folder!r} not found (resolved to {resolved})")
    return resolved


def list_images(folder: str, pattern: str = "", max_images: int = 0) -> List[str]:
    """Image files of `folder` (not recursive) matching the glob `pattern`, sorted by file name."""
    pattern = (pattern or "").strip() or "*"
    if "/" in pattern or os.sep in pattern:
        raise ValueError(f"pattern {pattern!r} must match file names only (no folders)")
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(IMAGE_EXTENSIONS) and fnmatch.fnmatch(n, pattern)
                   and os.path.isfile(os.path.join(folder, n)))
    if max_images > 0:
        names = names[:max_images]
    if not names:
        raise FileNotFoundError(f"no images matching {pattern!r} in {folder} (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    return [os.path.join(folder, n) for n in names]


def _load_rgb(path: str):
    """[1, H, W, 3] float32 in 0..1 (EXIF orientation applied, first frame of animations)."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            rgb = im.convert("RGB")
    except Exception as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).unsqueeze(0)


def _resize(image, width: int, height: int, method: str, crop: str):
    """ComfyUI's own resize (comfy.utils.common_upscale: torch interpolate, lanczos through PIL)."""
    import comfy.utils
    samples = image.movedim(-1, 1)
    return comfy.utils.common_upscale(samples, width, height, method, crop).movedim(1, -1).clamp(0.0, 1.0)


def load_folder(paths: List[str], size_mode: str = "first image", width: int = 512, height: int = 512,
                resize_method: str = "lanczos", crop: str = "disabled"):
    """One [B, H, W, 3] batch. Size rule: `first image` = the first file's size (by name order);
    `custom` = width x height. Images of another size are resized with resize_method; crop `center`
    keeps their aspect ratio by cropping, `disabled` stretches."""
    import torch
    if size_mode not in SIZE_MODES:
        raise ValueError(f"size_mode {size_mode!r}: expected one of {SIZE_MODES}")
    if resize_method not in RESIZE_METHODS:
        raise ValueError(f"resize_method {resize_method!r}: expected one of {RESIZE_METHODS}")
    if crop not in CROP_MODES:
        raise ValueError(f"crop {crop!r}: expected one of {CROP_MODES}")
    target: Optional[Tuple[int, int]] = (width, height) if size_mode == "custom" else None
    if target is not None and (width < 1 or height < 1):
        raise ValueError(f"custom size {width}x{height}: width and height must be >= 1")
    batch = []
    for path in paths:
        image = _load_rgb(path)
        if target is None:
            target = (image.shape[2], image.shape[1])
        if (image.shape[2], image.shape[1]) != target:
            image = _resize(image, target[0], target[1], resize_method, crop)
        batch.append(image)
    return torch.cat(batch, dim=0)


class DiscomfortFolderImageLoader:
    """A folder of images as one IMAGE batch, sorted by file name, resized to a common size."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "folder_path": ("STRING", {"default": "", "tooltip": "Folder relative to ComfyUI's input folder "
                                                                     "(absolute only with allow_absolute_path)"}),
            },
            "optional": {
                "pattern": ("STRING", {"default": "*", "tooltip": "Glob on file names, e.g. *.png or frame_*"}),
                "max_images": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip": "0: all"}),
                "size_mode": (SIZE_MODES, {"default": "first image",
                                           "tooltip": "first image: every image resized to the first file's size; "
                                                      "custom: to width x height"}),
                "width": ("INT", {"default": 512, "min": 1, "max": 16384}),
                "height": ("INT", {"default": 512, "min": 1, "max": 16384}),
                "resize_method": (RESIZE_METHODS, {"default": "lanczos"}),
                "crop": (CROP_MODES, {"default": "disabled",
                                      "tooltip": "center: keep aspect ratio by cropping; disabled: stretch"}),
                "allow_absolute_path": ("BOOLEAN", {"default": False}),
            },
        }

    RETURN_TYPES = ("IMAGE", "INT", "STRING")
    RETURN_NAMES = ("images", "image_count", "file_names")
    FUNCTION = "load"
    CATEGORY = "discomfort/image"
    DESCRIPTION = ("Loads every image of a folder (png, jpg, webp, ...) as one batch sorted by file name; images "
                   "whose size differs from the first (or the custom size) are resized.")

    @classmethod
    def IS_CHANGED(cls, folder_path: str, pattern: str = "*", max_images: int = 0, allow_absolute_path: bool = False,
                   **kwargs):
        # The folder's content, not just the widget values, decides the result.
        try:
            paths = list_images(resolve_folder(folder_path, allow_absolute_path), pattern, max_images)
            return ";".join(f"{p}:{os.path.getmtime(p)}:{os.path.getsize(p)}" for p in paths)
        except Exception:
            return float("nan")

    def load(self, folder_path: str, pattern: str = "*", max_images: int = 0, size_mode: str = "first image",
             width: int = 512, height: int = 512, resize_method: str = "lanczos", crop: str = "disabled",
             allow_absolute_path: bool = False):
        folder = resolve_folder(folder_path, allow_absolute_path)
        paths = list_images(folder, pattern, max_images)
        images = load_folder(paths, size_mode, width, height, resize_method, crop)
        return (images, len(paths), "\n".join(os.path.basename(p) for p in paths))


# ---------------------------------------------------------------------------------------------- describer
DEFAULT_PROMPT = "Describe this image in full detail: subject, setting, composition, lighting, colours and style."


def chat_completions_url(base_url: str) -> str:
    """`https://host/v1` -> `https://host/v1/chat/completions`; a full completions URL is kept."""
    url = (base_url or "").strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base_url {base_url!r}: expected an http(s) URL such as https://api.openai.com/v1")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def image_to_data_url(image) -> str:
    """An [H, W, C] float 0..1 tensor as a data:image/png;base64 URL."""
    import numpy as np
    from PIL import Image
    array = (image.detach().cpu().float().clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _reply_text(reply: Any, url: str) -> str:
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise RuntimeError(f"malformed reply from {url}: expected choices[0].message.content, got "
                           f"{str(reply)[:300]}") from None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise RuntimeError(f"malformed reply from {url}: message content is {type(content).__name__}, not text")
    return content.strip()


def describe_image(image, prompt: str, model: str, url: str, api_key: Optional[str], max_tokens: int,
                   timeout: float, label: str = "image") -> str:
    import requests
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    body = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": image_to_data_url(image)}},
        ]}],
    }
    try:
        response = requests.post(url, json=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise ConnectionError(f"image describer, {label}: request to {url} failed: {exc}") from exc
    if response.status_code != 200:
        raise RuntimeError(f"image describer, {label}: {url} answered HTTP {response.status_code}: {response.text[:500]}")
    try:
        reply = response.json()
    except ValueError:
        raise RuntimeError(f"image describer, {label}: malformed reply from {url}: not JSON: {response.text[:300]}") from None
    try:
        return _reply_text(reply, url)
    except RuntimeError as exc:
        raise RuntimeError(f"image describer, {label}: {exc}") from None


class DiscomfortImageDescriber:
    """A description of each image of a batch from an OpenAI-compatible /v1/chat/completions endpoint."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "prompt": ("STRING", {"multiline": True, "default": DEFAULT_PROMPT}),
                "model": ("STRING", {"default": "gpt-4o-mini"}),
                "base_url": ("STRING", {"default": "https://api.openai.com/v1",
                                        "tooltip": "OpenAI-compatible API base (…/v1) or full …/chat/completions URL"}),
                "api_key_env": ("STRING", {"default": "OPENAI_API_KEY",
                                           "tooltip": "Environment variable holding the API key (never stored in the "
                                                      "workflow); empty: send no key (local servers)"}),
                "max_tokens": ("INT", {"default": 300, "min": 1, "max": 32768}),
                "timeout": ("FLOAT", {"default": 60.0, "min": 1.0, "max": 3600.0, "step": 1.0}),
            },
        }

    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("descriptions", "description_list")
    OUTPUT_IS_LIST = (False, True)
    OUTPUT_NODE = True  # the descriptions show on the node (and in /history)
    FUNCTION = "describe"
    CATEGORY = "discomfort/image"
    DESCRIPTION = ("Describes each image with a vision model behind any OpenAI-compatible endpoint; the key comes "
                   "from an environment variable. descriptions: all, separated by blank lines; description_list: "
                   "one string per image.")

    def describe(self, images, prompt: str, model: str, base_url: str, api_key_env: str = "OPENAI_API_KEY",
                 max_tokens: int = 300, timeout: float = 60.0):
        url = chat_completions_url(base_url)
        if not (model or "").strip():
            raise ValueError("model is empty: give the endpoint's model name, e.g. gpt-4o-mini")
        api_key = None
        if (api_key_env or "").strip():
            api_key = os.environ.get(api_key_env.strip())
            if not api_key:
                raise KeyError(f"environment variable {api_key_env.strip()!r} (the API key for {url}) is not set; "
                               f"set it before starting ComfyUI, or clear api_key_env for a server without keys")
        if images is None or images.ndim != 4 or images.shape[0] == 0:
            shape = None if images is None else tuple(images.shape)
            if shape is not None and len(shape) == 4:
                return {"ui": {"text": []}, "result": ("", [])}
            raise TypeError(f"images: expected an IMAGE batch [B, H, W, C], got shape {shape}")
        descriptions = []
        for index in range(images.shape[0]):
            label = f"image {index + 1} of {images.shape[0]}"
            descriptions.append(describe_image(images[index], prompt, model.strip(), url, api_key, max_tokens,
                                               timeout, label))
        return {"ui": {"text": descriptions}, "result": ("\n\n".join(descriptions), descriptions)}


NODE_CLASS_MAPPINGS: Dict[str, type] = {
    "DiscomfortFolderImageLoader": DiscomfortFolderImageLoader,
    "DiscomfortImageDescriber": DiscomfortImageDescriber,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DiscomfortFolderImageLoader": "Discomfort Folder Image Loader",
    "DiscomfortImageDescriber": "Discomfort Image Describer",
}
