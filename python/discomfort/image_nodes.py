"""Discomfort's image nodes for the ComfyUI UI: a folder of images as one IMAGE batch, and image
descriptions from an OpenAI-compatible endpoint.

Pure Python (PIL, torch, requests from ComfyUI's own requirements): the repository's root __init__.py
loads this file by path, so these nodes register whether or not the compiled core is built. It must
therefore not import the rest of the `discomfort` package.

Paths (DiscomfortFolderImageLoader): a relative folder resolves under ComfyUI's input folder and may
not leave it (`..` or a symlink pointing outside is refused). An absolute folder needs the node's
`allow_absolute_path` on AND must lie inside the input folder or a folder the operator of the machine
allowed (`DISCOMFORT_ALLOW_PATHS`, `<user dir>/discomfort/paths.json`, as for the loop executor): the
widget is saved in the workflow, so it can never open a folder alone — a workflow shared with you
cannot read arbitrary folders of your machine.

Keys (DiscomfortImageDescriber): a workflow's widget values are chosen by whoever wrote the workflow,
so they never decide alone where a request goes or which environment variable is read. The operator
of the machine lists the allowed endpoints, each with the environment variable holding its key (or
none), in `<ComfyUI user folder>/discomfort/describer.json`:

    {"endpoints": [{"base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"},
                   {"base_url": "http://127.0.0.1:8080/v1", "api_key_env": null}],
     "default_endpoint": "https://api.openai.com/v1"}

and/or in ComfyUI's environment as DISCOMFORT_DESCRIBER_ENDPOINTS, comma-separated `BASE_URL`
(no key) or `BASE_URL=VARIABLE` entries, e.g.
`DISCOMFORT_DESCRIBER_ENDPOINTS=https://api.openai.com/v1=DISCOMFORT_DESCRIBER_KEY` with the key
itself in DISCOMFORT_DESCRIBER_KEY. Both are read at every run. The node's `base_url` selects one of
these endpoints (compared by scheme, host, port and whole path segments, so `.../v1` and
`.../v1/chat/completions` match while `https://api.openai.com.evil.com` and
`https://api.openai.com@evil.com` do not; empty: `default_endpoint`, else the first configured), and
`api_key_env` one of the variables configured for it (empty: its configured key). Anything else is
a PermissionError naming the endpoint or variable and what to configure, raised before any variable
is read or any request is made. A key is only ever sent to the endpoint it is configured for, to
the URL rebuilt from the checked parts, and redirects are not followed.
"""

from __future__ import annotations

import base64
import fnmatch
import io
import json
import os
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
RESIZE_METHODS = ["lanczos", "bicubic", "bilinear", "area", "nearest-exact"]
SIZE_MODES = ["first image", "custom"]
CROP_MODES = ["disabled", "center"]


def _input_directory() -> str:
    import folder_paths
    return folder_paths.get_input_directory()


def resolve_folder(folder: str, allow_absolute_path: bool = False, base: Optional[str] = None) -> str:
    """The real path of `folder`: relative paths under `base` (ComfyUI's input folder) and never
    outside it; absolute paths only with allow_absolute_path, and then only inside that folder or a
    folder the operator allowed."""
    folder = (folder or "").strip()
    if not folder:
        raise ValueError("folder is empty: give a folder under ComfyUI's input folder (or an absolute path "
                         "with allow_absolute_path on)")
    if os.path.isabs(os.path.expanduser(folder)) and not allow_absolute_path:
        raise PermissionError(f"folder {folder!r} is an absolute path; turn on allow_absolute_path to read "
                              f"outside ComfyUI's input folder, or give a path relative to it")
    policy = _allowed_paths()  # the containment rules shared with the loop executor and test runner
    root = policy.Root("ComfyUI's input folder", base if base is not None else _input_directory())
    if not os.path.isabs(os.path.expanduser(folder)):
        return policy.resolve(folder, [root], where="DiscomfortFolderImageLoader, folder_path", kind="folder")
    import folder_paths
    roots = [root] + policy.operator_roots(folder_paths.get_user_directory())
    return policy.resolve(folder, roots, where="DiscomfortFolderImageLoader, folder_path", kind="folder",
                          hint=policy.how_to_allow())


def _allowed_paths():
    """allowed_paths.py next to this file, imported without the package when this file was loaded by path."""
    if __package__:
        from . import allowed_paths
        return allowed_paths
    import importlib.util
    import sys
    name = "discomfort_allowed_paths"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(__file__), "allowed_paths.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


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
NODE = "DiscomfortImageDescriber"
SETTINGS_FILE = os.path.join("discomfort", "describer.json")  # under ComfyUI's user folder
ENDPOINTS_ENV = "DISCOMFORT_DESCRIBER_ENDPOINTS"
SETTINGS_KEYS = {"endpoints", "default_endpoint"}
ENDPOINT_KEYS = {"base_url", "api_key_env"}
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\Z")
_IPV6 = re.compile(r"[0-9a-f:.]+\Z")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Endpoint(NamedTuple):
    """What decides where a request goes: scheme, host, port and the path's segments (without a
    trailing chat/completions). Requests are sent to the URL rebuilt from these parts, so the address
    that was checked is the address that is called."""
    scheme: str
    host: str
    port: int
    path: Tuple[str, ...]

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == _DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{host}{port}" + "".join("/" + segment for segment in self.path)

    @property
    def completions_url(self) -> str:
        return self.base_url + "/chat/completions"

    def covers(self, other: "Endpoint") -> bool:
        """`other` is this endpoint or below its path, by whole segments (/v1 covers /v1/x, not /v10)."""
        return ((self.scheme, self.host, self.port) == (other.scheme, other.host, other.port)
                and other.path[:len(self.path)] == self.path)


def parse_endpoint(url: str) -> Endpoint:
    """An http(s) URL as an Endpoint. Whatever two URL parsers could read differently is refused rather
    than guessed: user info (`https://api.openai.com@evil.com`), backslashes, whitespace, percent
    escapes, `.`/`..` segments, queries and fragments."""
    text = (url or "").strip()

    def refuse(problem: str) -> ValueError:
        return ValueError(f"URL {url!r}: {problem}; expected http(s)://host[:port]/path such as "
                          f"https://api.openai.com/v1")

    if any(c.isspace() or c == "\\" or ord(c) < 32 or ord(c) == 127 for c in text):
        raise refuse("whitespace, control characters and backslashes are not allowed")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise refuse("not an http or https URL")
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        raise refuse("a user name or password (user@host) is not allowed")
    if "?" in text or "#" in text:
        raise refuse("a query or fragment is not allowed")
    if "%" in text:
        raise refuse("percent escapes are not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not (_HOST_NAME.match(host) or (":" in host and _IPV6.match(host))):
        raise refuse("the host must be ASCII letters, digits, dots, hyphens and underscores (international names "
                     "in punycode)")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise refuse("the port must be a number from 1 to 65535")
    port = port or _DEFAULT_PORTS[scheme]
    segments = tuple(segment for segment in parts.path.split("/") if segment)
    if any(segment in (".", "..") for segment in segments):
        raise refuse("'.' and '..' path segments are not allowed")
    if segments[-2:] == ("chat", "completions"):
        segments = segments[:-2]
    return Endpoint(scheme, host, port, segments)


class DescriberSettings(NamedTuple):
    """What the operator of this ComfyUI allows: each endpoint with the environment variable holding
    its key (None: the endpoint gets no key), and the endpoint an empty base_url means."""
    routes: List[Tuple[Endpoint, Optional[str]]]
    default: Optional[Endpoint]
    settings_path: Optional[str]


def settings_path() -> Optional[str]:
    """<ComfyUI user folder>/discomfort/describer.json. ComfyUI's /userdata API writes only inside
    user/<user id>/, so a web client cannot write this file; the operator does."""
    try:
        import folder_paths
    except ImportError:
        return None
    return os.path.join(folder_paths.get_user_directory(), SETTINGS_FILE)


def _key_variable(value: Any, where: str) -> Optional[str]:
    if value is None or value == "":
        return None
    if isinstance(value, str) and _VARIABLE_NAME.match(value):
        return value
    raise ValueError(f"{where}: api_key_env {value!r} is not an environment variable name (letters, digits, _), "
                     f"nor null for an endpoint without a key")


def _settings_file_routes(path: Optional[str]) -> Tuple[List[Tuple[Endpoint, Optional[str]]], Optional[str]]:
    if not path or not os.path.exists(path):
        return [], None
    schema = ('expected {"endpoints": [{"base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"}, '
              '{"base_url": "http://127.0.0.1:8080/v1", "api_key_env": null}], "default_endpoint": "<optional, one '
              'of the base URLs>"}')
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{NODE}: cannot read the operator settings {path}: {exc}; {schema}") from None
    if not isinstance(data, dict) or set(data) - SETTINGS_KEYS or not isinstance(data.get("endpoints", []), list) \
            or not isinstance(data.get("default_endpoint", ""), (str, type(None))):
        raise ValueError(f"{NODE}: operator settings {path}: {schema}")
    routes = []
    for index, entry in enumerate(data.get("endpoints", [])):
        where = f"{NODE}: operator settings {path}, endpoints[{index}]"
        if not isinstance(entry, dict) or "base_url" not in entry or set(entry) - ENDPOINT_KEYS \
                or not isinstance(entry["base_url"], str):
            raise ValueError(f"{where}: {schema}")
        try:
            endpoint = parse_endpoint(entry["base_url"])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        routes.append((endpoint, _key_variable(entry.get("api_key_env"), where)))
    return routes, data.get("default_endpoint") or None


def _environment_routes(environ: Mapping[str, str]) -> List[Tuple[Endpoint, Optional[str]]]:
    """DISCOMFORT_DESCRIBER_ENDPOINTS: comma-separated `BASE_URL` (no key) or `BASE_URL=VARIABLE`
    (the key is VARIABLE's value). Endpoint URLs hold no query, so the last `=` is the separator."""
    routes = []
    for entry in environ.get(ENDPOINTS_ENV, "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        url, variable = entry.rsplit("=", 1) if "=" in entry else (entry, None)
        where = f"{NODE}: {ENDPOINTS_ENV} entry {entry!r}"
        if variable is not None and not _VARIABLE_NAME.match(variable):
            raise ValueError(f"{where}: after '=' comes the name of the environment variable holding the key "
                             f"(letters, digits, _); leave out '=...' for an endpoint without a key")
        try:
            routes.append((parse_endpoint(url), variable))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return routes


def load_settings(environ: Optional[Mapping[str, str]] = None, path: Optional[str] = None) -> DescriberSettings:
    """The operator's configuration, read at every run so that edits apply without a restart: the
    settings file's endpoints, then those of DISCOMFORT_DESCRIBER_ENDPOINTS."""
    environ = os.environ if environ is None else environ
    path = settings_path() if path is None else path
    routes, default_url = _settings_file_routes(path)
    routes += _environment_routes(environ)
    default = routes[0][0] if routes else None
    if default_url is not None:
        try:
            default = parse_endpoint(default_url)
        except ValueError as exc:
            raise ValueError(f"{NODE}: operator settings {path}, default_endpoint: {exc}") from None
        if not any(endpoint.covers(default) for endpoint, _ in routes):
            raise ValueError(f"{NODE}: operator settings {path}: default_endpoint {default.base_url} is not one of "
                             f"the configured endpoints")
    return DescriberSettings(routes, default, path)


def _how_to_allow(settings: DescriberSettings, base_url: str, variable: Optional[str],
                  lead: str = "To allow it") -> str:
    path = settings.settings_path or os.path.join("<ComfyUI user folder>", SETTINGS_FILE)
    entry = json.dumps({"base_url": base_url, "api_key_env": variable})
    trust = f" (only if you trust {base_url} with {variable}'s value)" if variable else ""
    return (f"{lead}{trust}, the operator of this ComfyUI adds {entry} to "
            f"\"endpoints\" in {path}, or the entry {base_url}{'=' + variable if variable else ''} to the "
            f"comma-separated {ENDPOINTS_ENV} in ComfyUI's environment")


def resolve_request(settings: DescriberSettings, base_url: str, api_key_env: str,
                    environ: Optional[Mapping[str, str]] = None) -> Tuple[str, Optional[str]]:
    """The completions URL and the key for the endpoint and key variable a workflow names, both
    checked against the operator's settings; nothing is read from the environment, and nothing is
    sent, before both are allowed. PermissionError otherwise."""
    environ = os.environ if environ is None else environ
    name = (api_key_env or "").strip()
    if (base_url or "").strip():
        try:
            requested = parse_endpoint(base_url)
        except ValueError as exc:
            raise ValueError(f"{NODE}: base_url: {exc}") from None
    elif settings.default is not None:
        requested = settings.default
    else:
        how = _how_to_allow(settings, "https://api.openai.com/v1", name or None, "To configure one")
        raise PermissionError(f"{NODE}: base_url is empty and the operator configured no describer endpoint; nothing "
                              f"was sent. {how}.")
    sources: List[Optional[str]] = []
    for endpoint, variable in settings.routes:
        if endpoint.covers(requested) and variable not in sources:
            sources.append(variable)
    if not sources:
        allowed = ", ".join(dict.fromkeys(e.base_url for e, _ in settings.routes)) or "none configured"
        raise PermissionError(f"{NODE}: endpoint {requested.base_url} (base_url {base_url!r}) is not one the operator "
                              f"of this ComfyUI allowed (allowed: {allowed}); nothing was sent. "
                              f"{_how_to_allow(settings, requested.base_url, name or None)}.")
    configured = ", ".join(v or "no key" for v in sources)
    if not name:
        if None in sources:
            variable = None
        elif len(sources) == 1:
            variable = sources[0]
        else:
            raise PermissionError(f"{NODE}: the operator configured several keys for {requested.base_url} "
                                  f"({configured}): name one of them in api_key_env; nothing was sent")
    elif name in sources:
        variable = name
    else:
        how = _how_to_allow(settings, requested.base_url, name)
        raise PermissionError(f"{NODE}: api_key_env {name!r} is not a key variable the operator of this ComfyUI "
                              f"configured for {requested.base_url} (configured for it: {configured}); the variable "
                              f"was not read and nothing was sent. {how}.")
    api_key = None
    if variable is not None:
        api_key = environ.get(variable)
        if not api_key:
            raise LookupError(f"{NODE}: environment variable {variable!r}, configured as the key for "
                              f"{requested.base_url}, is not set in ComfyUI's environment; set it before starting "
                              f"ComfyUI. Nothing was sent.")
    return requested.completions_url, api_key


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
        # Redirects are not followed: the key goes to the checked URL and nowhere else.
        response = requests.post(url, json=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise ConnectionError(f"image describer, {label}: request to {url} failed: {exc}") from exc
    if response.is_redirect or 300 <= response.status_code < 400:
        raise RuntimeError(f"image describer, {label}: {url} answered HTTP {response.status_code} redirecting to "
                           f"{response.headers.get('Location')!r}; redirects are not followed (the key goes only to "
                           f"the configured endpoint): configure the final URL instead")
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
    """A description of each image of a batch from an OpenAI-compatible /v1/chat/completions endpoint
    that the operator of this ComfyUI configured."""

    @classmethod
    def INPUT_TYPES(cls):
        # Widget names and order are those of earlier versions, so saved workflows still map; their
        # values now only select among the operator's endpoints and key variables.
        return {
            "required": {
                "images": ("IMAGE",),
                "prompt": ("STRING", {"multiline": True, "default": DEFAULT_PROMPT}),
                "model": ("STRING", {"default": "gpt-4o-mini"}),
                "base_url": ("STRING", {"default": "",
                                        "tooltip": "One of the endpoints the operator allowed (ComfyUI user folder's "
                                                   "discomfort/describer.json or DISCOMFORT_DESCRIBER_ENDPOINTS), "
                                                   "as …/v1 or …/chat/completions; empty: the operator's default"}),
                "api_key_env": ("STRING", {"default": "",
                                           "tooltip": "Which key variable the operator configured for this endpoint "
                                                      "to send; empty: the endpoint's configured key (none for "
                                                      "keyless servers). Any other variable is refused."}),
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
    DESCRIPTION = ("Describes each image with a vision model behind an OpenAI-compatible endpoint that the operator "
                   "of this ComfyUI allowed, with the key the operator configured for it. descriptions: all, "
                   "separated by blank lines; description_list: one string per image.")

    def describe(self, images, prompt: str, model: str, base_url: str = "", api_key_env: str = "",
                 max_tokens: int = 300, timeout: float = 60.0):
        if not (model or "").strip():
            raise ValueError(f"{NODE}: model is empty: give the endpoint's model name, e.g. gpt-4o-mini")
        url, api_key = resolve_request(load_settings(), base_url, api_key_env)
        if images is None or images.ndim != 4 or images.shape[0] == 0:
            shape = None if images is None else tuple(images.shape)
            if shape is not None and len(shape) == 4:
                return {"ui": {"text": []}, "result": ("", [])}
            raise TypeError(f"{NODE}: images: expected an IMAGE batch [B, H, W, C], got shape {shape}")
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
