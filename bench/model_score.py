"""`python -m bench.model_score [--json] [--model DIR]`: what the model score costs per
transaction.

Pure CPU, no servers. Labelled realistic traffic (load_test.labelled) is turned into feature
rows with the stream's history semantics; without --model a model is trained on it first (in a
temporary directory). Then, best of --repeat passes, per transaction:
- features_for (the history features, the amount against the usual amount, ...), and the same
  with every history emptied: its fixed cost, the rest being the pass over the history entries
  (their mean count per transaction is reported); and the same histories not marked as in
  event-time order (`ascending`), as the worker's state store gives them;
- ModelScorer.encode: rows -> the float matrix LightGBM reads;
- ModelScorer.score_batch at batch sizes 1, 100, 500 and 10,000: encoding, one LightGBM call
  with pred_contrib=True (TreeSHAP contributions), sigmoid, the top three features per row;
- score_batch(..., explain_from=threshold): raw scores for all, contributions only for the rows
  at or above the model's threshold (what a worker needs: a detail for flagged lines);
- the same LightGBM call for the raw score alone (no contributions), for comparison.
The human table goes to stderr; with --json one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from msgspec import structs

from consumer.model.dataset import judged, load_dataset
from consumer.model.features import features_for
from consumer.model.scorer import ModelScorer
from consumer.model.train import train
from load_test.labelled import write_labelled

BATCH_SIZES = (1, 100, 500, 10_000)


def best_us(run: Callable[[], int], repeat: int) -> float:
    """Best microseconds per item over `repeat` runs of `run` (which returns its item count)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        items = run()
        best = min(best, (time.perf_counter() - started) * 1e6 / items)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_score", description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="a trained model directory")
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        data_path = Path(scratch) / "labelled.jsonl"
        with data_path.open("w", encoding="utf-8") as handle:
            write_labelled(handle, args.records, rate=3.0, seed=23, realistic=True)
        model_dir = args.model
        if model_dir is None:
            model_dir = Path(scratch) / "model"
            train(data_path, model_dir)
        scorer = ModelScorer.load(model_dir)
        delay = scorer.label_delay_days  # the records' labels reach the profiles, as in training
        pairs = [(t, h) for _, t, h in judged(data_path, label_delay_days=delay)]
        rows = load_dataset(data_path, delay).rows
        trees = scorer._booster.num_trees()

    def extract(pairs: list[Any] = pairs) -> int:
        for t, h in pairs:
            features_for(t, h, delay)
        return len(pairs)

    emptied = [(t, structs.replace(h, recent=())) for t, h in pairs]
    unordered = [(t, structs.replace(h, ascending=False)) for t, h in pairs]
    entries = sum(len(h.recent) for _, h in pairs) / max(1, len(pairs))
    results: dict[str, Any] = {
        "features_for_us": round(best_us(extract, args.repeat), 2),
        "features_for_store_order_us": round(best_us(lambda: extract(unordered), args.repeat), 2),
        "features_for_empty_history_us": round(best_us(lambda: extract(emptied), args.repeat), 2),
        "history_entries_per_transaction": round(entries, 2),
        "encode_us": {},
        "score_batch_us": {},
        "raw_only_us": {},
        "explain_flagged_us": {},
    }
    threshold = scorer.threshold if scorer.threshold is not None else 50.0
    flagged_share = float((scorer.scores(rows) >= threshold).mean())
    booster = scorer._booster

    sizes = [size for size in BATCH_SIZES if size <= len(rows)]  # a small --records: fewer
    for size in sizes:
        batches = [rows[i : i + size] for i in range(0, min(len(rows), 20 * size), size)]
        batches = [b for b in batches if len(b) == size][: max(1, 10_000 // size)]

        def scored(batches: list[Any] = batches) -> int:
            for batch in batches:
                scorer.score_batch(batch)
            return sum(len(b) for b in batches)

        matrices = [scorer.encode(b) for b in batches]

        def encoded(batches: list[Any] = batches) -> int:
            for batch in batches:
                scorer.encode(batch)
            return sum(len(b) for b in batches)

        def raw_only(matrices: list[Any] = matrices) -> int:
            for matrix in matrices:
                booster.predict(matrix, raw_score=True, num_threads=1)
            return sum(len(m) for m in matrices)

        def flagged_only(batches: list[Any] = batches) -> int:
            for batch in batches:
                scorer.score_batch(batch, explain_from=threshold)
            return sum(len(b) for b in batches)

        results["score_batch_us"][str(size)] = round(best_us(scored, args.repeat), 2)
        results["explain_flagged_us"][str(size)] = round(best_us(flagged_only, args.repeat), 2)
        results["raw_only_us"][str(size)] = round(best_us(raw_only, args.repeat), 2)
        results["encode_us"][str(size)] = round(best_us(encoded, args.repeat), 2)

    results["model"] = {
        "trees": trees,
        "features": len(scorer.feature_names),
        "threshold": threshold,
        "share_at_or_above_threshold": round(flagged_share, 4),
    }
    results["python"] = platform.python_version()
    out = io.StringIO()
    out.write(f"model: {trees} trees, {len(scorer.feature_names)} features\n")
    out.write(
        f"features_for: {results['features_for_us']} us per transaction "
        f"({results['features_for_store_order_us']} us as the worker's store orders histories, "
        f"{results['features_for_empty_history_us']} us with an empty history; "
        f"{results['history_entries_per_transaction']} history entries per transaction)\n"
    )
    out.write(
        f"threshold {threshold:.2f}: {flagged_share:.1%} of the rows score at or above it\n"
        "batch size | score_batch, top-3 for every row | top-3 at/above threshold only"
        " | raw score only | encode (us per transaction)\n"
    )
    for size in sizes:
        out.write(
            f"{size:>10} | {results['score_batch_us'][str(size)]:>32} | "
            f"{results['explain_flagged_us'][str(size)]:>29} | "
            f"{results['raw_only_us'][str(size)]:>14} | {results['encode_us'][str(size)]:>6}\n"
        )
    sys.stderr.write(out.getvalue())
    if args.json:
        sys.stdout.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
