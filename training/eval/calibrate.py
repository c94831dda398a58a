"""Fit word confidence: a logistic regression of right against wrong words over each word's least token log-prob,
mean token entropy and n-best agreement (shared/recognition.py), on a calibration set spoken by training voices
(never the reserved evaluation voices, whose sets then measure the calibration honestly). The fit is the bundle's
"decoding" confidence_weights.

    python -m training.data.commands --out data/calib_commands --count 160 --seed 301 \\
        --voices flite:kal16,flite:awb,flite:rms,espeak:en-us+f2,espeak:en-gb+m3
    python -m training.eval.calibrate --sets data/calib_commands [--model DIR] [--write]

Ours runs as served (training/eval/served.py), context-free, with the bundle's decoding defaults; a word is right
when jiwer aligns its spoken form with the reference's (training/eval/written.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.optimize import minimize

from shared.bundle_store import default_bundle_dir
from shared.decoding import DECODING_KEY
from shared.recognition import OutputConfig
from shared.text import normalize_text
from training.eval.served import ServedRecogniser
from training.eval.written import confidence_scores, read_rows, word_correctness

# The sign each feature's weight may take: a likelier least token and more n-best agreement never lower confidence,
# more entropy never raises it (tests/unit/test_output_contract.py holds the served weights to this). Unbounded,
# correlated features can trade places and a fit comes out with the wrong sign.
WEIGHT_SIGNS = (1, -1, 1)


def fit_logistic(x: np.ndarray, right: np.ndarray, signs: Optional[tuple[int, ...]] = None) -> np.ndarray:
    """x (N, F) features, right (N,) bool -> (F + 1,) weights and bias of the logistic regression P(right | x).
    signs (F,): +1 keeps a feature's weight >= 0, -1 keeps it <= 0, 0 leaves it free; the bias is always free."""
    signs = tuple(signs) if signs is not None else (0,) * x.shape[1]
    if len(signs) != x.shape[1]:
        raise ValueError(f"{len(signs)} signs for {x.shape[1]} features")
    bounds = [(0.0, None) if s > 0 else (None, 0.0) if s < 0 else (None, None) for s in signs] + [(None, None)]
    design = np.c_[x, np.ones(len(x))]
    y = right.astype(np.float64)

    def loss(w: np.ndarray) -> float:
        z = design @ w
        return float(np.mean(np.logaddexp(0.0, z) - y * z))  # the log loss of sigmoid(z), stable for any z

    def grad(w: np.ndarray) -> np.ndarray:
        return np.asarray(design.T @ (1.0 / (1.0 + np.exp(-(design @ w))) - y) / len(y))

    return np.asarray(minimize(loss, np.zeros(design.shape[1]), jac=grad, method="L-BFGS-B", bounds=bounds).x)


def word_features(folders: list[Path], model: Optional[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Every best-transcript word of the sets: (N, 3) features and (N,) right. The server is asked three times, with
    the regression's weights set to pick one feature each: confidence = sigmoid(feature), whose logit gives it back
    (decoding is deterministic, so the words are the same each time)."""
    rows = [row for folder in folders for row in read_rows(folder, limit)]
    columns: list[list[float]] = []
    right: list[bool] = []
    for k in range(3):
        weights = ",".join("1" if i == k else "0" for i in range(4))
        column: list[float] = []
        with ServedRecogniser(model, confidence_weights=weights) as ours:
            for row in rows:
                resp = ours.recognize(row["audio"], no_context=True, word_timestamps=True)
                words = list(resp.alternatives[0].words) if resp.alternatives else []
                column += [float(np.log(max(w.confidence, 1e-30)) - np.log(max(1.0 - w.confidence, 1e-30))) for w in words]
                if k == 0:
                    right += word_correctness(row["text"], [w.word for w in words], normalize_text)
        columns.append(column)
    if len({len(c) for c in columns}) != 1:
        raise SystemExit("the three passes returned different words: decoding is not deterministic here")
    return np.array(columns).T, np.array(right)


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", type=Path, default=[Path("data/calib_commands")])
    ap.add_argument("--model", help="bundle (default: the served default)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="write the fit into the bundle's config.json")
    args = ap.parse_args(argv)
    x, y = word_features(args.sets, args.model, args.limit)
    weights = fit_logistic(x, y, WEIGHT_SIGNS)
    fitted = OutputConfig(confidence_weights=tuple(weights))
    auroc, ece = confidence_scores([fitted.confidence(tuple(f)) for f in x], y.tolist())
    names = ("least token log-prob", "mean entropy", "n-best agreement", "bias")
    print(f"{len(x)} words, {y.mean():.1%} right; " + ", ".join(f"{n} {w:.3f}" for n, w in zip(names, weights)))
    print(f"on the calibration set itself: AUROC {auroc:.3f}, ECE {ece:.3f} (make eval measures the reserved-voice sets)")
    if args.write:
        path = Path(args.model or default_bundle_dir()) / "config.json"
        config = json.loads(path.read_text())
        config[DECODING_KEY]["confidence_weights"] = ",".join(f"{w:.3f}" for w in weights)
        path.write_text(json.dumps(config, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
