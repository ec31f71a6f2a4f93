"""discomfort_bridge.sandbox against the real ComfyUI imported in this process: a real PromptExecutor
runs inside `inner_execution()` while the globals hold a "host" prompt's state, which must be the same
afterwards (and, where a test says so, is not without the sandbox). The same checks through a real
ComfyUI server are in test_live_server.py."""

import threading
import time
import types

import pytest

from conftest import link


@pytest.fixture
def comfy(d):
    import comfy.model_management as mm
    import comfy.utils
    import execution
    import latent_preview
    import server
    from comfy.cli_args import LatentPreviewMethod, args
    from comfy_execution import progress
    from comfy_execution import utils as execution_utils
    from comfy_execution.graph import DynamicPrompt
    return types.SimpleNamespace(mm=mm, utils=comfy.utils, execution=execution, latent_preview=latent_preview,
                                 server=server, args=args, LatentPreviewMethod=LatentPreviewMethod,
                                 progress=progress, execution_utils=execution_utils, DynamicPrompt=DynamicPrompt)


class FakeServer:
    """The host's PromptServer as the sandbox sees it: ids of the running prompt and what was sent where."""

    def __init__(self, preview_metadata=True):
        self.client_id, self.last_node_id, self.last_prompt_id = "host-client", "77", "host-prompt"
        self.sockets = {"host-client": object()}
        self.sockets_metadata = {"host-client": {"feature_flags": {"supports_preview_metadata": preview_metadata}}}
        self.sent = []

    def send_sync(self, event, data, sid=None):
        self.sent.append((event, data, sid))

    def send_progress_text(self, text, node_id, sid=None):
        self.sent.append(("progress_text", (text, node_id), sid))


class Recorder:
    """A progress handler of the host's registry."""
    name = "recorder"
    enabled = True

    def __init__(self):
        self.updates = []
        self.resets = 0

    def set_registry(self, registry):
        pass

    def start_handler(self, *args):
        pass

    def finish_handler(self, *args):
        pass

    def update_handler(self, node_id, value, max_value, state, prompt_id, image=None):
        self.updates.append((node_id, value, max_value, prompt_id, image is not None))

    def reset(self):
        self.resets += 1


@pytest.fixture
def host(comfy, monkeypatch):
    """Process-wide state as a host prompt (id host-prompt, running node 77) leaves it mid-execution."""
    fake = FakeServer()
    monkeypatch.setattr(comfy.server.PromptServer, "instance", fake)
    registry = comfy.progress.ProgressRegistry("host-prompt", comfy.DynamicPrompt(
        {"77": {"class_type": "DiscomfortLoopExecutor", "inputs": {}}}))
    recorder = Recorder()
    registry.register_handler(recorder)
    monkeypatch.setattr(comfy.progress, "global_progress_registry", registry)
    monkeypatch.setattr(comfy.args, "preview_method", comfy.LatentPreviewMethod.TAESD)  # the host prompt's choice

    def hook(*args, **kwargs):
        pass

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
    ram = None
    try:
        import comfy.memory_management as memory_management

        def release(target, free_active=False):
            return 0
        ram = (memory_management, release)
        monkeypatch.setattr(memory_management, "extra_ram_release_callback", release)
        monkeypatch.setattr(memory_management, "RAM_CACHE_HEADROOM", 5 << 30)
    except ImportError:  # ComfyUI without the RAM-pressure cache
        pass
    context = comfy.execution_utils.ExecutionContext("host-prompt", "77", None)
    token = comfy.execution_utils.current_executing_context.set(context)
    comfy.mm.interrupt_current_processing(False)
    yield types.SimpleNamespace(server=fake, registry=registry, recorder=recorder, hook=hook, ram=ram, context=context)
    comfy.execution_utils.current_executing_context.reset(token)
    comfy.mm.interrupt_current_processing(False)


def _executor(comfy):
    from discomfort_bridge.host import _ServerStub
    return comfy.execution.PromptExecutor(_ServerStub(), cache_type=comfy.execution.CacheType.CLASSIC,
                                          cache_args={"lru": 0, "ram": 0.0, "ram_inactive": 0.0})


def _preview_prompt(steps=2):
    return {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 1}},
            "2": {"class_type": "DiscomfortTestPreview", "inputs": {"value": link("1"), "steps": steps,
                                                                    "color": 0x336699, "interval": 0.0}}}


def _sleep_prompt(seconds):
    return {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 1}},
            "2": {"class_type": "DiscomfortTestSleep", "inputs": {"value": link("1"), "seconds": seconds}},
            "3": {"class_type": "DiscomfortTestPreview", "inputs": {"value": link("2"), "steps": 1, "color": 0,
                                                                    "interval": 0.0}}}


def _host_state(comfy):
    memory = None
    try:
        import comfy.memory_management as memory_management
        memory = (memory_management.extra_ram_release_callback, memory_management.RAM_CACHE_HEADROOM)
    except ImportError:
        pass
    server = comfy.server.PromptServer.instance
    return {"preview": comfy.args.preview_method, "registry": comfy.progress.global_progress_registry,
            "hook": comfy.utils.PROGRESS_BAR_HOOK, "ram": memory,
            "context": comfy.execution_utils.current_executing_context.get(None),
            "server": (server.client_id, server.last_node_id, server.last_prompt_id),
            "interrupted": comfy.mm.processing_interrupted()}


def test_the_hosts_state_survives_an_inner_execution(comfy, host):
    from discomfort_bridge import sandbox
    before = _host_state(comfy)
    executor = _executor(comfy)
    with sandbox.inner_execution():
        assert comfy.latent_preview.default_preview_method == comfy.LatentPreviewMethod.TAESD
        executor.execute(_preview_prompt(), "inner-prompt", {"client_id": "discomfort"}, ["2"])
        # The inner execution had a registry of its own, and used the host's preview method.
        assert comfy.progress.global_progress_registry is not host.registry
        assert comfy.args.preview_method == comfy.LatentPreviewMethod.TAESD
    assert executor.success
    assert _host_state(comfy) == before
    assert host.recorder.resets == 0  # the inner execution did not reset the host's progress handlers
    # Inner progress and previews went to the host's client, as its running node's (77), never under the
    # inner prompt's id or node ids.
    progress = [(data, sid) for event, data, sid in host.server.sent if event == "progress"]
    assert progress == [({"value": 1, "max": 2, "prompt_id": "host-prompt", "node": "77"}, "host-client"),
                        ({"value": 2, "max": 2, "prompt_id": "host-prompt", "node": "77"}, "host-client")]
    assert host.recorder.updates == [("77", 1, 2, "host-prompt", True), ("77", 2, 2, "host-prompt", True)]
    assert all(sid == "host-client" for _, _, sid in host.server.sent)


def test_without_the_sandbox_an_inner_execution_changes_the_hosts_state(comfy, host):
    # What the sandbox is for: ComfyUI's executor replaces these for the whole process.
    executor = _executor(comfy)
    executor.execute(_preview_prompt(), "inner-prompt", {"client_id": "discomfort"}, ["2"])
    assert comfy.progress.global_progress_registry is not host.registry
    assert comfy.args.preview_method != comfy.LatentPreviewMethod.TAESD
    if host.ram is not None:
        assert host.ram[0].extra_ram_release_callback is None


def test_a_cancel_pressed_before_an_inner_execution_stops_it_and_reaches_the_host(comfy, host):
    from discomfort_bridge import sandbox
    comfy.mm.interrupt_current_processing(True)  # the UI's Cancel, between two inner executions
    executor = _executor(comfy)
    started = time.monotonic()
    with sandbox.inner_execution():
        executor.execute(_sleep_prompt(5.0), "inner-prompt", {"client_id": "discomfort"}, ["3"])
    assert time.monotonic() - started < 2.0  # stopped at its first node, not after the 5 s sleep
    assert [e for e, _ in executor.status_messages][-1] == "execution_interrupted"
    assert comfy.mm.processing_interrupted()  # the host stops at its next node too


def test_a_cancel_pressed_during_an_inner_execution_reaches_the_host(comfy, host):
    import nodes
    from discomfort_bridge import sandbox
    executor = _executor(comfy)
    press = threading.Timer(0.5, nodes.interrupt_processing)  # as POST /interrupt does, from another thread
    started = time.monotonic()
    with sandbox.inner_execution():
        press.start()
        executor.execute(_sleep_prompt(5.0), "inner-prompt", {"client_id": "discomfort"}, ["3"])
    press.join()
    assert time.monotonic() - started < 2.5
    assert [e for e, _ in executor.status_messages][-1] == "execution_interrupted"
    assert comfy.mm.processing_interrupted()  # the sleeping node consumed the flag; the sandbox set it again


def test_the_engines_own_interrupt_never_reaches_the_host(comfy, host):
    from discomfort_bridge import sandbox
    sandbox.interrupt_inner()  # between inner executions: nothing to stop, and the host must go on
    assert not comfy.mm.processing_interrupted()
    executor = _executor(comfy)
    timeout = threading.Timer(0.5, sandbox.interrupt_inner)  # an iteration timeout, say
    with sandbox.inner_execution():
        timeout.start()
        executor.execute(_sleep_prompt(5.0), "inner-prompt", {"client_id": "discomfort"}, ["3"])
    timeout.join()
    assert [e for e, _ in executor.status_messages][-1] == "execution_interrupted"
    assert not comfy.mm.processing_interrupted()


def test_progress_text_of_inner_nodes_goes_to_the_hosts_client_as_its_node(comfy, host):
    from discomfort_bridge import sandbox
    with sandbox.inner_execution():
        comfy.server.PromptServer.instance.send_progress_text("512 x 512", "3")
    assert host.server.sent == [("progress_text", ("512 x 512", "77"), "host-client")]
    assert "send_progress_text" not in vars(host.server)  # the server's own method again


def test_models_the_host_is_using_keep_their_mark(comfy, host, monkeypatch):
    # Dynamic models (ComfyUI v0.33 with its GPU memory manager) carry an "in use by the current prompt"
    # mark that the inner executor's model tracker clears when it ends. CPU runs have no dynamic models,
    # so these stand in for one loaded by the host and one handed to the loop.
    from discomfort_bridge import sandbox

    class DynamicModel:
        load_device = "cuda:0"

        def __init__(self):
            self.model = types.SimpleNamespace(dynamic_pins={"cuda:0": {"current_prompt": True}})

        def is_dynamic(self):
            return True

    loaded, handed = DynamicModel(), DynamicModel()
    monkeypatch.setattr(comfy.mm, "current_loaded_models", [types.SimpleNamespace(model=loaded)])
    with sandbox.inner_execution([types.SimpleNamespace(patcher=handed)]):
        for model in (loaded, handed):
            model.model.dynamic_pins["cuda:0"]["current_prompt"] = False  # what the inner tracker's end() does
    assert loaded.model.dynamic_pins["cuda:0"]["current_prompt"] and handed.model.dynamic_pins["cuda:0"]["current_prompt"]
