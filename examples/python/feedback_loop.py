"""The feedback-loop demo through the Python API: each frame is the previous one blurred,
sharpened and blended with its mirror image; the frame tensor is handed from iteration to
iteration by reference and saved as PNG by a progress callback.

    PYTHONPATH=build/release/python .venv/bin/python examples/python/feedback_loop.py [ITERATIONS]
"""

import asyncio
import os
import sys

from discomfort import Discomfort

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.normpath(os.path.join(HERE, "..", "feedback_loop"))
OUT = os.path.normpath(os.path.join(HERE, "..", "out", "python_feedback_loop"))


async def main(iterations: int) -> None:
    d = await Discomfort.create()
    print(f"ComfyUI {d.info['comfyui_version']} on {d.info['device']}")
    seed = d.Tools.open_image_as_tensor(os.path.join(DEMO, "seed.png"))

    with d.Context() as ctx:
        def save_frame(report):  # runs on the engine thread after each finished iteration
            frame = ctx.load("frame")
            path = os.path.join(OUT, f"frame_{report['iteration']:05d}.png")
            d.Tools.save_comfy_image_to_disk(frame, path)
            print(f"iteration {report['iteration'] + 1}/{iterations}: {report['seconds']:.3f} s -> {path}")

        result = await d.run([os.path.join(DEMO, "feedback.json")], inputs={"frame": seed},
                             iterations=iterations, context=ctx, on_iteration=save_frame)
        print("final frame:", tuple(result["frame"].shape), "usage:", ctx.get_usage()["ram_usage_gb"], "GB")
    await d.shutdown()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
