"""The redactor measured: recall and precision on labelled cases, findings on real text.

    python -m scripts.redaction_eval --labelled tests/data/redaction/formats.jsonl
    python -m scripts.redaction_eval --texts /work/devsets/asf/incidents.jsonl --sample 20

A labelled file holds one JSON object a line: ``text`` and ``expect``, a list of [kind, value]
(values as typed; compared normalised, as the text is stored). A texts file holds incident
records (title, description, resolution are read). Findings are counted per kind and per
1,000 texts, with a sample of each kind in its context to judge by eye (it prints what it
finds: for development sets, not for a service's data), and the time per text.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

from kb.redaction import Redactor
from kb.text import normalise_text


def labelled_scores(path: Path, redactor: Redactor) -> dict:
    tp, fp, fn = Counter(), Counter(), Counter()
    cases = [
        json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()
    ]
    for case in cases:
        found = Counter((f.kind, f.text) for f in redactor.normalised_findings(case["text"]))
        expected = Counter((kind, normalise_text(value)) for kind, value in case["expect"])
        for key in found | expected:
            hit = min(found[key], expected[key])
            tp[key[0]] += hit
            fp[key[0]] += found[key] - hit
            fn[key[0]] += expected[key] - hit
    hits, false, missed = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {
        "cases": len(cases),
        "precision": hits / max(1, hits + false),
        "recall": hits / max(1, hits + missed),
        "by_kind": {
            kind: {"tp": tp[kind], "fp": fp[kind], "fn": fn[kind]} for kind in sorted(tp | fp | fn)
        },
    }


def text_findings(path: Path, redactor: Redactor, sample: int, seed: int = 1) -> dict:
    texts = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            record = json.loads(line)
            texts.append(
                "\n".join(record.get(k) or "" for k in ("title", "description", "resolution"))
            )
    counts, examples, times = Counter(), defaultdict(list), []
    for number, text in enumerate(texts):
        started = time.perf_counter()
        findings = redactor.normalised_findings(text)
        times.append((time.perf_counter() - started) * 1000)
        stored = normalise_text(text)
        for finding in findings:
            counts[finding.kind] += 1
            context = stored[max(0, finding.start - 40) : finding.end + 20].replace("\n", " ")
            examples[finding.kind].append(
                {"text": number, "finding": finding.text, "context": context}
            )
    rng = random.Random(seed)
    return {
        "texts": len(texts),
        "mean_chars": round(sum(map(len, texts)) / max(1, len(texts))),
        "ms_per_text_median": round(statistics.median(times), 3) if times else 0.0,
        "findings": dict(sorted(counts.items())),
        "per_1000_texts": {
            k: round(n * 1000 / max(1, len(texts)), 1) for k, n in sorted(counts.items())
        },
        "sample": {k: rng.sample(v, min(sample, len(v))) for k, v in sorted(examples.items())},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--labelled",
        type=Path,
        action="append",
        default=[],
        help="A labelled JSONL file: precision and recall (repeatable).",
    )
    parser.add_argument(
        "--texts",
        type=Path,
        action="append",
        default=[],
        help="An incidents JSONL file: findings per kind and per 1,000 texts (repeatable).",
    )
    parser.add_argument(
        "--sample", type=int, default=10, help="Findings of each kind shown (default 10)."
    )
    args = parser.parse_args(argv)
    redactor = Redactor()
    report = {
        "labelled": {str(p): labelled_scores(p, redactor) for p in args.labelled},
        "texts": {str(p): text_findings(p, redactor, args.sample) for p in args.texts},
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
