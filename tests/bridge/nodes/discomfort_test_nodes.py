"""Test-only ComfyUI nodes for Discomfort's integration tests (loaded like custom nodes)."""

import time


class DiscomfortTestAdd:
    """INT + amount: a loop counter whose value after N iterations is known exactly."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62}),
                             "amount": ("INT", {"default": 1, "min": -(2**62), "max": 2**62})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "add"
    CATEGORY = "discomfort/test"

    def add(self, value, amount):
        return (value + amount,)


class DiscomfortTestFailAt:
    """Passes an INT through; raises when it equals fail_at (a node failing mid-loop)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62}),
                             "fail_at": ("INT", {"default": -1, "min": -(2**62), "max": 2**62})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "check"
    CATEGORY = "discomfort/test"

    def check(self, value, fail_at):
        if value == fail_at:
            raise RuntimeError(f"test failure: value reached {value}")
        return (value,)


class DiscomfortTestSleep:
    """Passes anything through after sleeping (interrupt tests)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {}), "seconds": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 60.0})}}

    RETURN_TYPES = ("*",)
    FUNCTION = "sleep"
    CATEGORY = "discomfort/test"

    def sleep(self, value, seconds):
        import comfy.model_management
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(0.01)
        return (value,)


class DiscomfortTestHangAt:
    """Passes an INT through; when it equals hang_at, first "hangs" for `seconds` in 10 ms steps,
    checking ComfyUI's interrupt flag only if check_interrupt (a sampler does; pure-Python work
    does not: the per-iteration timeout must then give up on it). Writes `marker` (when set)
    once a hang ends, so tests can tell when the node returned."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62}),
                             "hang_at": ("INT", {"default": -1, "min": -(2**62), "max": 2**62}),
                             "seconds": ("FLOAT", {"default": 60.0, "min": 0.0, "max": 3600.0}),
                             "check_interrupt": ("BOOLEAN", {"default": True}),
                             "marker": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "hang"
    CATEGORY = "discomfort/test"

    def hang(self, value, hang_at, seconds, check_interrupt, marker):
        if value != hang_at:
            return (value,)
        import comfy.model_management
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if check_interrupt:
                comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(0.01)
        if marker:
            with open(marker, "w") as f:
                f.write("returned")
        return (value,)


class DiscomfortTestLog:
    """Passes anything through after logging `message` at WARNING through Python's logging, as
    ComfyUI and custom nodes log."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {}), "message": ("STRING", {"default": "test log line"})}}

    RETURN_TYPES = ("*",)
    FUNCTION = "log"
    CATEGORY = "discomfort/test"

    def log(self, value, message):
        import logging
        logging.getLogger("discomfort.test").warning(message)
        return (value,)


NODE_CLASS_MAPPINGS = {
    "DiscomfortTestLog": DiscomfortTestLog,
    "DiscomfortTestAdd": DiscomfortTestAdd,
    "DiscomfortTestFailAt": DiscomfortTestFailAt,
    "DiscomfortTestSleep": DiscomfortTestSleep,
    "DiscomfortTestHangAt": DiscomfortTestHangAt,
}
