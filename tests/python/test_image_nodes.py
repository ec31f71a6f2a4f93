"""DiscomfortFolderImageLoader and DiscomfortImageDescriber, as ComfyUI calls them, inside the real
ComfyUI imported by the session's Discomfort (its input folder, comfy.utils' resizing); the describer
against local OpenAI-compatible stubs on loopback, configured as an operator would (ComfyUI's user
folder, the environment), with workflows that ask for variables and endpoints outside that."""

import json
import os
import re
import shutil
import uuid

import pytest
import torch
from PIL import Image

from discomfort import image_nodes
from openai_stub import KEY, OpenAIStub


@pytest.fixture
def input_folder(d):
    """A fresh folder under ComfyUI's input folder: (its name relative to input/, its path)."""
    import folder_paths
    name = "discomfort-folder-test"
    path = os.path.join(folder_paths.get_input_directory(), name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    yield name, path
    shutil.rmtree(path, ignore_errors=True)


def _write(path, size, colour, **save):
    Image.new("RGB", size, colour).save(path, **save)


def test_folder_loads_one_batch_sorted_by_name_resized_to_the_first(input_folder):
    name, path = input_folder
    _write(os.path.join(path, "b.png"), (32, 24), (255, 0, 0))
    _write(os.path.join(path, "a.jpg"), (16, 12), (0, 255, 0), quality=100)
    _write(os.path.join(path, "c.webp"), (40, 30), (0, 0, 255), lossless=True)
    open(os.path.join(path, "notes.txt"), "w").write("not an image")
    os.makedirs(os.path.join(path, "sub.png"))  # a folder with an image-like name is skipped
    loader = image_nodes.DiscomfortFolderImageLoader()

    images, count, names = loader.load(name)
    assert images.shape == (3, 12, 16, 3) and images.dtype == torch.float32 and count == 3
    assert names.splitlines() == ["a.jpg", "b.png", "c.webp"]
    assert 0.0 <= images.min() and images.max() <= 1.0
    centre = images[:, 6, 8, :]  # solid colours survive resizing
    assert torch.allclose(centre, torch.tensor([[0., 1., 0.], [1., 0., 0.], [0., 0., 1.]]), atol=0.03)

    images, count, _ = loader.load(name, size_mode="custom", width=20, height=10, resize_method="bilinear")
    assert images.shape == (3, 10, 20, 3) and count == 3
    images, _, _ = loader.load(name, size_mode="custom", width=8, height=8, crop="center", resize_method="area")
    assert images.shape == (3, 8, 8, 3)

    images, count, names = loader.load(name, pattern="*.png")
    assert images.shape == (1, 24, 32, 3) and names == "b.png"
    images, count, names = loader.load(name, max_images=2)
    assert count == 2 and names.splitlines() == ["a.jpg", "b.png"]
    # The cache key follows the folder's content.
    before = loader.IS_CHANGED(name)
    _write(os.path.join(path, "d.png"), (8, 8), (9, 9, 9))
    assert loader.IS_CHANGED(name) != before


def test_folder_paths_may_not_escape_the_input_folder(input_folder, tmp_path, monkeypatch):
    name, path = input_folder
    loader = image_nodes.DiscomfortFolderImageLoader()
    outside = tmp_path / "outside"
    outside.mkdir()
    _write(str(outside / "x.png"), (4, 4), (1, 2, 3))
    with pytest.raises(PermissionError, match="escape"):
        loader.load(os.path.join(name, "..", "..", "..", str(outside).lstrip("/")))
    os.symlink(outside, os.path.join(path, "link"))
    with pytest.raises(PermissionError, match="outside ComfyUI's input folder"):
        loader.load(os.path.join(name, "link"))
    with pytest.raises(PermissionError, match="allow_absolute_path"):
        loader.load(str(outside))
    # The widget is part of the workflow: alone it opens nothing outside the allowed folders.
    with pytest.raises(PermissionError, match="DISCOMFORT_ALLOW_PATHS"):
        loader.load(str(outside), allow_absolute_path=True)
    monkeypatch.setenv("DISCOMFORT_ALLOW_PATHS", str(outside))
    images, count, _ = loader.load(str(outside), allow_absolute_path=True)
    assert count == 1 and images.shape == (1, 4, 4, 3)
    _write(os.path.join(path, "inside.png"), (4, 4), (5, 6, 7))
    images, count, _ = loader.load(path, allow_absolute_path=True)  # the input folder, written absolute
    assert count == 1
    with pytest.raises(ValueError, match="file names only"):
        loader.load(name, pattern="../*.png")


def test_folder_errors_name_the_folder_or_file(input_folder):
    name, path = input_folder
    loader = image_nodes.DiscomfortFolderImageLoader()
    with pytest.raises(FileNotFoundError, match="no images"):
        loader.load(name)
    with pytest.raises(FileNotFoundError, match="missing-folder"):
        loader.load("missing-folder")
    open(os.path.join(path, "broken.png"), "wb").write(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        loader.load(name)


# ---------------------------------------------------------------------------------------------- describer
# The operator's configuration decides where a key may go; a workflow's widget values only select.
SECRET = "aws-secret-" + uuid.uuid4().hex  # a variable that must never be read or sent
AWS = "AWS_SECRET_ACCESS_KEY"


@pytest.fixture
def operator(d, monkeypatch, tmp_path):
    """A fresh operator configuration: ComfyUI's user folder moved to an empty folder (no
    discomfort/describer.json) and DISCOMFORT_DESCRIBER_ENDPOINTS unset; .write() writes the settings
    file, .env() sets the variable."""
    import folder_paths
    monkeypatch.setattr(folder_paths, "user_directory", str(tmp_path / "user"))
    monkeypatch.delenv(image_nodes.ENDPOINTS_ENV, raising=False)
    monkeypatch.setenv(AWS, SECRET)
    monkeypatch.setenv("DISCOMFORT_TEST_KEY", KEY)

    class Operator:
        path = os.path.join(str(tmp_path), "user", "discomfort", "describer.json")

        def write(self, endpoints, **extra):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "w") as f:
                json.dump({"endpoints": [{"base_url": url, "api_key_env": var} for url, var in endpoints], **extra}, f)

        def remove(self):
            os.remove(self.path)

        def env(self, value):
            monkeypatch.setenv(image_nodes.ENDPOINTS_ENV, value)

    return Operator()


def _refused(node, stub_or_url, api_key_env, *patterns, error=PermissionError):
    """describe() must raise `error` matching every pattern, and never show the secret."""
    base_url = getattr(stub_or_url, "base_url", stub_or_url)
    with pytest.raises(error) as info:
        node.describe(torch.rand(1, 8, 8, 3), "p", "vision-1", base_url, api_key_env=api_key_env, timeout=5)
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    assert SECRET not in message and KEY not in message
    return message


def test_describer_sends_each_image_as_a_png_data_url(operator):
    batch = torch.cat([torch.full((1, 12, 20, 3), 0.2), torch.full((1, 12, 20, 3), 0.6)])
    node = image_nodes.DiscomfortImageDescriber()
    with OpenAIStub() as stub:
        operator.write([(stub.base_url, "DISCOMFORT_TEST_KEY")])
        out = node.describe(batch, prompt="what is it?", model="vision-1", base_url=stub.base_url,
                            api_key_env="DISCOMFORT_TEST_KEY", max_tokens=77, timeout=10)
        # A full completions URL selects the same endpoint; an empty api_key_env sends its configured key.
        again = node.describe(batch[:1], prompt="p", model="vision-1", base_url=stub.base_url + "/chat/completions/",
                              api_key_env="")
    assert stub.problems == []
    joined, per_image = out["result"]
    assert per_image == ["an image of 20x12 (what is it?)"] * 2 and out["ui"]["text"] == per_image
    assert joined == "an image of 20x12 (what is it?)\n\nan image of 20x12 (what is it?)"
    assert [r["model"] for r in stub.requests] == ["vision-1"] * 3 and stub.requests[0]["max_tokens"] == 77
    assert [r["pixel"] for r in stub.requests[:2]] == [(51, 51, 51), (153, 153, 153)]  # in batch order
    assert again["result"][1] == ["an image of 20x12 (p)"]


def test_a_key_variable_the_operator_did_not_configure_is_neither_read_nor_sent(operator):
    node = image_nodes.DiscomfortImageDescriber()
    # This stub would accept the secret as its key: only the node's refusal keeps it out.
    with OpenAIStub(key=SECRET) as stub:
        # Nothing configured: the workflow alone decides nothing.
        _refused(node, stub, AWS, "^DiscomfortImageDescriber: endpoint http://127.0.0.1:\\d+/v1 .*not one the operator",
                 "nothing was sent", re.escape(operator.path), image_nodes.ENDPOINTS_ENV, AWS)
        # The endpoint is allowed, with another variable as its key.
        operator.write([(stub.base_url, "DISCOMFORT_TEST_KEY")])
        message = _refused(node, stub, AWS, f"^DiscomfortImageDescriber: api_key_env '{AWS}' is not a key variable",
                           "configured for it: DISCOMFORT_TEST_KEY", "nothing was sent", re.escape(operator.path),
                           re.escape(f"{image_nodes.ENDPOINTS_ENV}"), re.escape(f"{stub.base_url}={AWS}"))
        assert '"api_key_env": "AWS_SECRET_ACCESS_KEY"' in message  # what to add to the settings file
        # Allowed without a key (a local server), configured in the environment.
        operator.remove()
        operator.env(stub.base_url)
        _refused(node, stub, AWS, f"api_key_env '{AWS}'.*configured for it: no key")
    assert stub.received == [] and SECRET not in stub.seen()

    # The refusal comes before the environment is read at all.
    class RecordingEnviron(dict):
        def get(self, name, default=None):
            self.read.append(name)
            return super().get(name, default)
    environ = RecordingEnviron({image_nodes.ENDPOINTS_ENV: "https://api.openai.com/v1=OPENAI_API_KEY", AWS: SECRET})
    environ.read = []
    settings = image_nodes.load_settings(environ, path=operator.path)
    with pytest.raises(PermissionError, match=AWS):
        image_nodes.resolve_request(settings, "https://api.openai.com/v1", AWS, environ)
    assert AWS not in environ.read


def test_an_endpoint_the_operator_did_not_configure_gets_no_request(operator):
    node = image_nodes.DiscomfortImageDescriber()
    with OpenAIStub() as allowed, OpenAIStub() as other:
        operator.write([(allowed.base_url, "DISCOMFORT_TEST_KEY")])
        for api_key_env in ("DISCOMFORT_TEST_KEY", ""):
            _refused(node, other, api_key_env, f"^DiscomfortImageDescriber: endpoint {re.escape(other.base_url)} ",
                     f"allowed: {re.escape(allowed.base_url)}\\)", "nothing was sent", re.escape(operator.path),
                     re.escape(f"{image_nodes.ENDPOINTS_ENV}"))
        # A configured endpoint that redirects elsewhere: the redirect is not followed.
        with OpenAIStub(redirect_to=other.base_url + "/chat/completions") as redirecting:
            operator.write([(allowed.base_url, "DISCOMFORT_TEST_KEY"), (redirecting.base_url, "DISCOMFORT_TEST_KEY")])
            _refused(node, redirecting, "", "HTTP 307 redirecting to .*127.0.0.1:%d.*not followed" % other.port,
                     error=RuntimeError)
        assert len(redirecting.received) == 1
    assert allowed.received == [] and other.received == []


def test_the_configured_key_reaches_the_configured_endpoint_from_the_file_or_the_environment(operator, monkeypatch):
    node = image_nodes.DiscomfortImageDescriber()
    image = torch.rand(1, 8, 8, 3)

    def authorizations(stub):
        return [headers.get("Authorization") for _, _, headers, _ in stub.received]

    with OpenAIStub() as keyed, OpenAIStub(key=None) as local, OpenAIStub(key="sk-from-env") as env_keyed:
        # The settings file; an empty base_url is its default_endpoint, an empty api_key_env its key.
        operator.write([(local.base_url, None), (keyed.base_url, "DISCOMFORT_TEST_KEY")],
                       default_endpoint=keyed.base_url)
        node.describe(image, "p", "vision-1", "", api_key_env="")
        # A workflow saved with the earlier widgets (the URL and the variable's name) runs unchanged.
        node.describe(image, "p", "vision-1", keyed.base_url, api_key_env="DISCOMFORT_TEST_KEY")
        node.describe(image, "p", "vision-1", local.base_url + "/chat/completions", api_key_env="")
        assert authorizations(keyed) == [f"Bearer {KEY}"] * 2 and authorizations(local) == [None]

        # The environment: BASE_URL=VARIABLE entries (the first is the default) and keyless BASE_URL ones.
        operator.remove()
        operator.env(f"{env_keyed.base_url}=DISCOMFORT_DESCRIBER_KEY, {local.base_url}")
        monkeypatch.setenv("DISCOMFORT_DESCRIBER_KEY", "sk-from-env")
        node.describe(image, "p", "vision-1", "", api_key_env="")
        node.describe(image, "p", "vision-1", local.base_url, api_key_env="")
        assert authorizations(env_keyed) == ["Bearer sk-from-env"] and authorizations(local) == [None, None]
        # That key goes nowhere else, even to another allowed endpoint.
        _refused(node, local, "DISCOMFORT_DESCRIBER_KEY", "configured for it: no key")
    assert keyed.problems == local.problems == env_keyed.problems == []
    assert all(SECRET not in s.seen() for s in (keyed, local, env_keyed))


def test_url_look_alikes_are_refused(operator):
    settings = image_nodes.load_settings({image_nodes.ENDPOINTS_ENV: "https://api.openai.com/v1=OPENAI_API_KEY"},
                                         path=operator.path)
    environ = {"OPENAI_API_KEY": "sk-openai"}
    expected = ("https://api.openai.com/v1/chat/completions", "sk-openai")
    for same in ("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions",
                 "HTTPS://API.OpenAI.com:443/v1/", "https://api.openai.com./v1/chat/completions/"):
        assert image_nodes.resolve_request(settings, same, "", environ) == expected, same
    for other_endpoint in ("https://api.openai.com.evil.com/v1", "http://api.openai.com/v1",
                           "https://api.openai.com:8443/v1", "https://api.openai.com/v10", "https://api.openai.com/",
                           "https://evil.com/api.openai.com/v1", "https://openai.com/v1"):
        with pytest.raises(PermissionError, match="not one the operator"):
            image_nodes.resolve_request(settings, other_endpoint, "", environ)
    for ambiguous in ("https://api.openai.com@evil.com/v1", "https://api.openai.com:443@evil.com/v1",
                      "https://user:pw@api.openai.com/v1", "https://api.openai.com\\@evil.com/v1",
                      "https://api.openai.com/v1/../../evil", "https://api.openai.com/v1?next=https://evil.com",
                      "https://evil.com/v1#https://api.openai.com/v1", "https://api.openai.com/%2e%2e/v1",
                      "https://api.openai.com%2eevil.com/v1", "https://api.openai.com:0/v1", "ftp://api.openai.com/v1",
                      "https://api.opena\u0131.com/v1"):
        with pytest.raises(ValueError, match="^DiscomfortImageDescriber: base_url: URL"):
            image_nodes.resolve_request(settings, ambiguous, "", environ)
    # A host-wide entry covers its paths by whole segments.
    wide = image_nodes.load_settings({image_nodes.ENDPOINTS_ENV: "https://api.openai.com=OPENAI_API_KEY"},
                                     path=operator.path)
    assert image_nodes.resolve_request(wide, "https://api.openai.com/v1", "", environ) == expected

    # The same tricks aimed at live servers: the one allowed and another one; neither gets anything.
    node = image_nodes.DiscomfortImageDescriber()
    with OpenAIStub() as allowed, OpenAIStub() as other:
        operator.env(f"{allowed.base_url}=DISCOMFORT_TEST_KEY")
        a, b = allowed.port, other.port
        for url in (f"http://127.0.0.1:{a}@127.0.0.1:{b}/v1", f"http://127.0.0.1:{a}\\@127.0.0.1:{b}/v1",
                    f"http://127.0.0.1:{a}/v1/../../127.0.0.1:{b}", f"http://127.0.0.1:{a}/v1%2F..%2F..",
                    f"http://127.0.0.1:{a}/v1?x=http://127.0.0.1:{b}/v1"):
            _refused(node, url, "DISCOMFORT_TEST_KEY", "^DiscomfortImageDescriber: base_url: URL", error=ValueError)
        for url in (f"http://127.0.0.1:{b}/v1", f"http://localhost:{a}/v1", f"https://127.0.0.1:{a}/v1",
                    f"http://127.0.0.1:{a}/v1evil", f"http://127.0.0.1:{a}/"):
            _refused(node, url, "DISCOMFORT_TEST_KEY", "not one the operator")
    assert allowed.received == [] and other.received == []


def test_describer_errors_are_clear(operator, monkeypatch):
    node = image_nodes.DiscomfortImageDescriber()
    image = torch.rand(1, 8, 8, 3)
    with OpenAIStub() as stub:
        _refused(node, "", "", "base_url is empty and the operator configured no describer endpoint",
                 re.escape(operator.path))
        # Two keys for one endpoint (file and environment): the workflow must name one.
        operator.write([(stub.base_url, "DISCOMFORT_TEST_KEY")])
        operator.env(f"{stub.base_url}={AWS}")
        _refused(node, stub, "", "several keys .*DISCOMFORT_TEST_KEY, AWS_SECRET_ACCESS_KEY.*name one")
        monkeypatch.delenv(image_nodes.ENDPOINTS_ENV)
        monkeypatch.delenv("DISCOMFORT_TEST_KEY")
        _refused(node, stub, "", "DISCOMFORT_TEST_KEY.*is not set in ComfyUI's environment", error=LookupError)
        assert stub.received == []  # nothing goes out without the key
        monkeypatch.setenv("DISCOMFORT_TEST_KEY", "wrong-key")
        with pytest.raises(RuntimeError, match="HTTP 400.*authorization"):
            node.describe(image, "p", "vision-1", stub.base_url, api_key_env="DISCOMFORT_TEST_KEY")
        monkeypatch.setenv("DISCOMFORT_TEST_KEY", KEY)
        with pytest.raises(RuntimeError, match="image 1 of 1.*HTTP 500.*stub failure"):
            node.describe(image, "p", "fail-500", stub.base_url, api_key_env="DISCOMFORT_TEST_KEY")
        with pytest.raises(RuntimeError, match="malformed reply.*choices"):
            node.describe(image, "p", "malformed", stub.base_url, api_key_env="DISCOMFORT_TEST_KEY")
        # Configured without a key, the endpoint gets no Authorization header: this stub refuses that.
        operator.write([(stub.base_url, None)])
        with pytest.raises(RuntimeError, match="authorization None"):
            node.describe(image, "p", "vision-1", stub.base_url, api_key_env="")
        received = len(stub.received)

        # A damaged configuration is an error naming where it is; nothing is sent.
        for content, pattern in (("{not json", "cannot read the operator settings"),
                                 ('{"endpoints": {"base_url": "x"}}', "expected {\"endpoints\""),
                                 ('{"endpoints": [{"url": "http://x/v1"}]}', "endpoints\\[0\\]: expected"),
                                 ('{"endpoints": [{"base_url": "http://x/v1", "api_key_env": "A B"}]}',
                                  "endpoints\\[0\\]: api_key_env 'A B' is not an environment variable name"),
                                 ('{"endpoints": [{"base_url": "http://x/v1"}], "default_endpoint": "http://y/v1"}',
                                  "default_endpoint http://y/v1 is not one of the configured")):
            with open(operator.path, "w") as f:
                f.write(content)
            _refused(node, stub, "", re.escape(operator.path), pattern, error=ValueError)
        operator.remove()
        operator.env(f"{stub.base_url}=not a name")
        _refused(node, stub, "", f"{image_nodes.ENDPOINTS_ENV} entry .*the name of the environment variable",
                 error=ValueError)
        assert len(stub.received) == received
    operator.env("http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="http"):
        node.describe(image, "p", "vision-1", "ftp://example", api_key_env="")
    with pytest.raises(ConnectionError, match="127.0.0.1:9"):
        node.describe(image, "p", "vision-1", "http://127.0.0.1:9/v1", api_key_env="", timeout=5)
