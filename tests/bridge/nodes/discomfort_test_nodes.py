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


NODE_CLASS_MAPPINGS = {
    "DiscomfortTestAdd": DiscomfortTestAdd,
    "DiscomfortTestFailAt": DiscomfortTestFailAt,
    "DiscomfortTestSleep": DiscomfortTestSleep,
}
