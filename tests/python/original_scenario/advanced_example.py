"""The original Discomfort's test3, the "advanced example", written against its documented API.

Load a checkpoint + LoRA into the context (MODEL/CLIP/VAE), then ten iterations alternating an empty latent
(denoise 1) and an img2img latent from an input image (denoise 0.5), sampling and saving each image.
Only the import line differs from a script for the original (which imported
`from custom_nodes.discomfort.discomfort import Discomfort`). The original named its workflow files by
paths relative to the ComfyUI root; here the folder, the input image and the output folder can be set
through the environment (defaults: the original's layout), so the test can point it at edited copies.

    PYTHONPATH=build/release/python .venv/bin/python tests/python/original_scenario/advanced_example.py
"""

import asyncio
import os

from discomfort import Discomfort

WORKFLOWS = os.environ.get("DISCOMFORT_EXAMPLE_WORKFLOWS", "custom_nodes/discomfort/examples/workflows")
INPUT_IMAGE = os.environ.get("DISCOMFORT_EXAMPLE_INPUT_IMAGE", "test_woman.png")
OUTPUT_DIR = os.environ.get("DISCOMFORT_EXAMPLE_OUTPUT_DIR", ".")


async def main():
    discomfort = await Discomfort.create()
    load_model_and_lora = os.path.join(WORKFLOWS, "sdxl_load_model_and_lora.json")
    empty_latent = os.path.join(WORKFLOWS, "latent_1024x1024_empty.json")
    latent_from_image = os.path.join(WORKFLOWS, "latent_from_input_image.json")
    run_ksampler = os.path.join(WORKFLOWS, "sdxl_run_ksampler.json")

    with discomfort.Context() as context:
        context.save("prompt", "Photograph of a beautiful scifi woman walking on the street, masterpiece")
        context.save("model_name", "mohawk.safetensors")
        context.save("lora_name", "scifixl.safetensors")
        for i in range(10):
            print(f"--- iteration {i} ---")
            # MODEL, CLIP and VAE come out of the loader as refs and stay in the context
            context.save("lora_strength", 0.1 * i)
            await discomfort.run([load_model_and_lora], context=context)
            if i % 2 == 0:
                await discomfort.run([empty_latent], context=context)
                denoise = 1.0
            else:
                image = discomfort.Tools.open_image_as_tensor(INPUT_IMAGE)
                context.save("input_image", image)
                await discomfort.run([latent_from_image], inputs={"input_image": image}, context=context)
                denoise = 0.5
            await discomfort.run([run_ksampler], inputs={"denoise": denoise}, context=context)
            output_image = context.load("output_image")
            discomfort.Tools.save_comfy_image_to_disk(output_image, os.path.join(OUTPUT_DIR, f"img_{i}.png"))
    await discomfort.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
