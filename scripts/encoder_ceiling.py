"""How fast the document encoder could get on this CPU: the floor its matrix products set.

    python -m scripts.encoder_ceiling [--texts N] [--threads T] [--cache DIR] [--no-torch] [--json]

Bulk indexing runs the model once per text. Most of a run is matrix products, whose speed
is fixed by the CPU's instructions (int8 products need VNNI to be much faster than float32
ones; AVX2 alone multiplies 8-bit pairs into 16 bits and adds them in a second step). This
script measures, on one thread:

1. the multiply-adds of one text's run, counted from the model's own graph (its weight
   matrices and its attention) at the mean length of the bench's sample texts;
2. ONNX Runtime's int8 product (``DynamicQuantizeMatMul``, what the int8 export runs) and
   float32 product (``MatMul``) at each of the model's weight shapes;
3. the int8 (per-channel) and float32 exports, text by text;

and prints the floor: how long a text's products take at the measured speed, what share of
a run that is, and the docs/s ``--threads`` threads could reach if everything else in a run
cost nothing. With PyTorch float32 measured as ``kb bench`` measures it (``--no-torch``
skips it), the best ratio to PyTorch this CPU allows follows.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

ARTICLES = Path(__file__).resolve().parents[1] / "articles"
# Enough repetitions of a product for a stable time, whatever its size.
PRODUCT_MACS_PER_TIMING = 2_000_000_000


@dataclass(frozen=True)
class ProductShapes:
    """The matrix products of one run of an exported transformer."""

    weights: tuple[tuple[int, int], ...]  # (inputs, outputs) of each weight matrix, once per use
    activation_products: int  # products of two activations (attention scores and mixing)
    hidden: int  # width of the activations those products run over

    def weight_macs_per_text(self, tokens: int) -> int:
        """Multiply-adds in the weight matrices: every token goes through each of them."""
        return tokens * sum(k * n for k, n in self.weights)

    def macs_per_text(self, tokens: int) -> int:
        """Multiply-adds of one text of ``tokens`` word pieces: the weight matrices, and each
        attention product at tokens x hidden per token."""
        return (
            self.weight_macs_per_text(tokens)
            + self.activation_products * tokens * tokens * self.hidden
        )


def product_shapes(model) -> ProductShapes:
    """The weight matrices (``MatMul`` nodes whose second input is a 2-D initializer) and
    the products of two computed tensors of an ONNX float32 graph."""
    from onnx import numpy_helper

    initializers = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
    weights: list[tuple[int, int]] = []
    activation_products = 0
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        shape = initializers.get(node.input[1])
        if shape is not None and len(shape) == 2:
            weights.append((int(shape[0]), int(shape[1])))
        elif shape is None and node.input[0] not in initializers:
            activation_products += 1
    if not weights:
        raise click.ClickException("the model has no weight matrices (MatMul with an initializer)")
    hidden = max(set(k for k, _ in weights), key=lambda k: sum(1 for w in weights if w[0] == k))
    return ProductShapes(tuple(weights), activation_products, hidden)


def _session(model_bytes_or_path):
    """A one-thread session with the options the encoder's own sessions use."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes_or_path, options, providers=["CPUExecutionProvider"])


def _product_model(kind: str, rows: int, inner: int, outer: int) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        inits = [
            numpy_helper.from_array(rng.integers(-127, 128, (inner, outer)).astype(np.int8), "W"),
            numpy_helper.from_array(np.full(outer, 0.01, np.float32), "scale"),
            numpy_helper.from_array(np.zeros(outer, np.int8), "zero"),
        ]
        node = helper.make_node(
            "DynamicQuantizeMatMul", ["A", "W", "scale", "zero"], ["Y"], domain="com.microsoft"
        )
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    else:
        inits = [
            numpy_helper.from_array(rng.standard_normal((inner, outer)).astype(np.float32), "W")
        ]
        node = helper.make_node("MatMul", ["A", "W"], ["Y"])
        opsets = [helper.make_opsetid("", 17)]
    graph = helper.make_graph(
        [node],
        "product",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [rows, inner])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [rows, outer])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


def product_speed(
    kind: str, rows: int, inner: int, outer: int, budget: int = PRODUCT_MACS_PER_TIMING
) -> float:
    """Giga multiply-adds per second of one product on one thread, repeated until about
    ``budget`` multiply-adds (at least 5 runs)."""
    session = _session(_product_model(kind, rows, inner, outer))
    feed = {"A": np.random.default_rng(1).standard_normal((rows, inner)).astype(np.float32)}
    for _ in range(3):
        session.run(None, feed)
    repeats = max(5, budget // (rows * inner * outer))
    began = time.perf_counter()
    for _ in range(repeats):
        session.run(None, feed)
    return rows * inner * outer * repeats / (time.perf_counter() - began) / 1e9


def text_by_text_ms(path: Path, token_ids: list[list[int]]) -> float:
    """Milliseconds per text of an export, one text per run on one thread (as bulk
    indexing runs it), after a warm-up pass over a few texts."""
    session = _session(str(path))
    names = {i.name for i in session.get_inputs()}

    def run(ids: list[int]) -> None:
        array = np.array([ids], dtype=np.int64)
        feeds = {"input_ids": array}
        if "attention_mask" in names:
            feeds["attention_mask"] = np.ones_like(array)
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(array)
        session.run(None, feeds)

    for ids in token_ids[:10]:
        run(ids)
    began = time.perf_counter()
    for ids in token_ids:
        run(ids)
    return (time.perf_counter() - began) * 1000 / len(token_ids)


def torch_docs_per_s(folder: Path, texts: list[str], threads: int) -> float:
    from indexer.embedders import load_embedder
    from indexer.pipeline import Progress
    from scripts.bench.run import throughput_seconds

    embedder = load_embedder("torch", folder, threads=threads)
    return len(texts) / throughput_seconds(embedder, texts, Progress(), "torch")


def measure(
    folder: Path,
    cache: Path,
    texts: list[str],
    threads: int,
    with_torch: bool,
    say=lambda line: None,
) -> dict:
    import onnx

    from indexer.onnx_backend import OnnxEmbedder

    say("exporting (first time only)")
    int8 = OnnxEmbedder.from_model_folder(
        folder, cache_dir=cache, threads=1, quantized=True, per_channel=True
    )
    fp32 = OnnxEmbedder.from_model_folder(folder, cache_dir=cache, threads=1, quantized=False)
    shapes = product_shapes(onnx.load(str(fp32.onnx_path)))
    # One text at a time, as the encoder tokenises it for a run of its own (no padding).
    token_ids = [int8.tokenizer.encode(text).ids for text in texts]
    tokens = round(float(np.mean([len(ids) for ids in token_ids])))
    macs = shapes.macs_per_text(tokens)

    say("timing the products")
    per_shape = {}
    floor_ms = {"int8": 0.0, "float32": 0.0}
    for inner, outer in sorted(set(shapes.weights)):
        uses = shapes.weights.count((inner, outer))
        speeds = {kind: product_speed(kind, tokens, inner, outer) for kind in floor_ms}
        per_shape[f"{tokens}x{inner}x{outer}"] = {k: round(v, 1) for k, v in speeds.items()} | {
            "uses": uses
        }
        for kind, speed in speeds.items():
            floor_ms[kind] += uses * tokens * inner * outer / speed / 1e6
    say("timing the exports text by text")
    run_ms = {
        "int8": text_by_text_ms(int8.onnx_path, token_ids),
        "float32": text_by_text_ms(fp32.onnx_path, token_ids),
    }
    result = {
        "texts": len(texts),
        "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1),
        "mean_tokens": tokens,
        "threads": threads,
        "macs_per_text": macs,
        "weight_macs_per_text": shapes.weight_macs_per_text(tokens),
        "product_gmacs_one_thread": per_shape,
        "weight_products_ms_per_text": {k: round(v, 2) for k, v in floor_ms.items()},
        "run_ms_per_text_one_thread": {k: round(v, 2) for k, v in run_ms.items()},
        "products_share_of_run": {k: round(floor_ms[k] / run_ms[k], 3) for k in run_ms},
        "docs_per_s_if_only_products": {
            k: round(threads * 1000 / v, 1) for k, v in floor_ms.items()
        },
        "docs_per_s_text_by_text_ideal": {
            k: round(threads * 1000 / v, 1) for k, v in run_ms.items()
        },
    }
    if with_torch:
        say("timing PyTorch float32 (batches of 64, as kb bench does)")
        torch_speed = torch_docs_per_s(folder, texts, threads)
        result["torch_docs_per_s"] = round(torch_speed, 1)
        result["ceiling_vs_torch"] = {
            k: round(v / torch_speed, 2) for k, v in result["docs_per_s_if_only_products"].items()
        }
        result["text_by_text_ideal_vs_torch"] = {
            k: round(v / torch_speed, 2) for k, v in result["docs_per_s_text_by_text_ideal"].items()
        }
    return result


def readable(r: dict) -> str:
    lines = [
        f"{r['texts']} sample texts of {r['mean_words']} words, {r['mean_tokens']} word pieces",
        f"multiply-adds per text: {r['macs_per_text'] / 1e9:.3f} G "
        f"({r['weight_macs_per_text'] / 1e9:.3f} G in weight matrices)",
        "one thread, ONNX Runtime products, G multiply-adds/s (int8 / float32):",
    ]
    for shape, speeds in r["product_gmacs_one_thread"].items():
        lines.append(f"  {shape} x{speeds['uses']}: {speeds['int8']} / {speeds['float32']}")
    for kind in ("int8", "float32"):
        lines.append(
            f"{kind} export: {r['run_ms_per_text_one_thread'][kind]} ms/text on one thread; "
            f"its weight products need at least {r['weight_products_ms_per_text'][kind]} ms "
            f"({r['products_share_of_run'][kind]:.0%} of the run)"
        )
    lines.append(
        f"on {r['threads']} threads: text by text at best "
        f"{r['docs_per_s_text_by_text_ideal']['int8']} docs/s (int8); "
        f"if all but the products were free {r['docs_per_s_if_only_products']['int8']} (int8), "
        f"{r['docs_per_s_if_only_products']['float32']} (float32)"
    )
    if "torch_docs_per_s" in r:
        lines.append(
            f"PyTorch float32: {r['torch_docs_per_s']} docs/s; best int8 ratio this CPU allows: "
            f"{r['text_by_text_ideal_vs_torch']['int8']}x text by text as run now, "
            f"{r['ceiling_vs_torch']['int8']}x if all but the products were free"
        )
    return "\n".join(lines)


@click.command(help=__doc__.split("\n\n")[0])
@click.option(
    "--texts",
    type=click.IntRange(20, 5000),
    default=300,
    show_default=True,
    help="composed sample texts (the bench's) to time the exports on",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="threads of bulk indexing the ceilings are given for",
)
@click.option(
    "--model",
    "model",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="sentence-transformers model folder (default: the packaged all-MiniLM-L6-v2)",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="folder the ONNX exports are cached in, as a data home's models/onnx (default: a temporary folder)",
)
@click.option(
    "--articles",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=ARTICLES,
    show_default=True,
    help="articles the sample texts are composed from",
)
@click.option("--no-torch", is_flag=True, help="do not time PyTorch float32")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def main(
    texts: int,
    threads: int,
    model: Path | None,
    cache: Path | None,
    articles: Path,
    no_torch: bool,
    as_json: bool,
) -> None:
    from indexer.embedders import packaged_model_path
    from scripts.bench.corpus import SyntheticCorpus, load_source

    folder = model or packaged_model_path()
    sample = SyntheticCorpus(load_source(articles), 1).sample_texts(texts)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        result = measure(folder, cache or Path(scratch), sample, threads, not no_torch, say)
    print(json.dumps(result, indent=2) if as_json else readable(result))


if __name__ == "__main__":
    main()
