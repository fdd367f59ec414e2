"""Python sentence-transformers on the same sentences and batches as benches/embedding.rs.

    python3 benches/embedding_python.py MODEL_DIR

Needs sentence-transformers and torch (never installed by CI). Same protocol as the Rust bench:
model load best of 3, then per batch size one untimed warm-up pass over the sentences and the best
of MESH_BENCH_REPS (default 3) timed passes, each pass calling encode() once per chunk of the
batch size. Prints a markdown table.
"""

import os
import pathlib
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def main() -> None:
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MESH_TEST_EMBEDDING_MODEL", "")
    if not pathlib.Path(model_dir, "model.safetensors").is_file():
        sys.exit("usage: embedding_python.py MODEL_DIR (or set MESH_TEST_EMBEDDING_MODEL)")
    reps = int(os.environ.get("MESH_BENCH_REPS", "3"))
    path = pathlib.Path(__file__).with_name("embedding_sentences.txt")
    texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    loads = []
    for _ in range(3):
        t = time.perf_counter()
        model = SentenceTransformer(model_dir, device="cpu")
        loads.append(time.perf_counter() - t)

    print(f"{len(texts)} sentences, {reps} passes (best reported), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print()
    print("| what | Python sentence-transformers |")
    print("|---|---|")
    print(f"| model load (best of 3) | {min(loads) * 1e3:.1f} ms |")
    for batch in (1, 32):
        def one_pass() -> float:
            t = time.perf_counter()
            for i in range(0, len(texts), batch):
                model.encode(texts[i : i + batch], batch_size=batch, convert_to_numpy=True)
            return time.perf_counter() - t

        one_pass()
        best = min(one_pass() for _ in range(reps))
        print(f"| embeddings/s, batch {batch} | {len(texts) / best:.1f} |")


if __name__ == "__main__":
    with torch.inference_mode():
        main()
