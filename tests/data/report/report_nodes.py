"""Nodes for the run-report tests (loaded with `--nodes`): a score computed from the loop's image (a
number that crosses an `until` threshold, a boolean and a string), and a check that fails on chosen
iterations, so that a real run has retried and failed stages to show."""


def _iterations(text):
    return {int(part) for part in text.replace(",", " ").split()}


class DiscomfortReportScore:
    """score = (1 - 0.9^(iteration+1)) for an image with contrast (0 for a flat one): it climbs past
    0.9 at iteration 21 and past 0.995 at iteration 50."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "iteration": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    RETURN_TYPES = ("FLOAT", "FLOAT", "BOOLEAN", "STRING")
    RETURN_NAMES = ("score", "brightness", "converged", "note")
    FUNCTION = "score"
    CATEGORY = "discomfort/test"

    def score(self, image, iteration):
        brightness = float(image.mean())
        has_contrast = 1.0 if float(image.std()) > 1e-6 else 0.0
        score = (1.0 - 0.9 ** (iteration + 1)) * has_contrast
        return (score, brightness, score > 0.8, f"iteration {iteration}: mean {brightness:.4f}")


class DiscomfortReportCheck:
    """Returns how many attempts this iteration took. Raises on the first attempt of each iteration in
    `fail_once_at` (a retried stage then succeeds) and on every attempt of those in `fail_at`."""

    attempts = {}  # (settings, iteration) -> attempts so far; one run per process

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"iteration": ("INT", {"default": 0, "min": 0, "max": 2**31}),
                             "fail_once_at": ("STRING", {"default": ""}),
                             "fail_at": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("INT", "STRING")
    RETURN_NAMES = ("attempts", "verdict")
    FUNCTION = "check"
    CATEGORY = "discomfort/test"

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # always run: the attempt count is state outside the inputs

    def check(self, iteration, fail_once_at, fail_at):
        key = (fail_once_at, fail_at, iteration)
        attempt = self.attempts.get(key, 0) + 1
        self.attempts[key] = attempt
        if iteration in _iterations(fail_at) or (attempt == 1 and iteration in _iterations(fail_once_at)):
            raise RuntimeError(f"check failed at iteration {iteration} (attempt {attempt})")
        return (attempt, f"iteration {iteration} passed")


NODE_CLASS_MAPPINGS = {"DiscomfortReportScore": DiscomfortReportScore, "DiscomfortReportCheck": DiscomfortReportCheck}
