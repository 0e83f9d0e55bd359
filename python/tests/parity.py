#!/usr/bin/env python3
"""Parity of the PyTorch package with the CLI (issue 26): for each SAM, a network trained by
`lth4sa train` for a few steps on an .npy data set, its test-set logits from `lth4sa eval
--save-logits` against `lth4sa.load(run)(lth4sa.preprocess(images, run))` and against
onnxruntime on the exported file: max |difference| <= 1e-4 of the logits' scale. Also a DIA and
a Full-Share case, a supernet sub-network, and TensorBoard files read back.

    python3 python/tests/parity.py [--lth4sa .build/release/lth4sa] [--work DIR]

Exits non-zero on any mismatch. Needs torch, safetensors, numpy, onnx, onnxruntime, tensorboard.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python"))
import lth4sa  # noqa: E402
from lth4sa.__main__ import export, tensorboard  # noqa: E402

TOLERANCE = 1e-4
CASES = [  # (label, plugin, extra flags)
    ("se", "SE", []), ("sge", "SGE", []), ("dia", "DIA", []), ("gc", "GC", []), ("cbam", "CBAM", []),
    ("eca", "ECA", []), ("simam", "SimAM", []), ("coordatt", "CoordAtt", []),
    ("coordatt-share", "CoordAtt", ["--attach", "full-share"]),   # one batch norm's statistics updated at every block
    ("se-share", "SE", ["--attach", "full-share"]),
    ("se-scheme", "SE", ["--scheme", "10-01-11"]), ("original", None, []),
]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout


def relative(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lth4sa", default=os.path.join(REPO, ".build", "release", "lth4sa"))
    ap.add_argument("--work")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="lth4sa-parity-")
    rng = np.random.default_rng(0)
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    for split, n in (("train", 96), ("test", 40)):   # uint8 NHWC images, 4 classes
        np.save(os.path.join(data, f"{split}_x.npy"), rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
        np.save(os.path.join(data, f"{split}_y.npy"), rng.integers(0, 4, n).astype(np.int64))
    images = np.load(os.path.join(data, "test_x.npy"))
    worst, failures = 0.0, []
    for label, plugin, flags in CASES:
        out = os.path.join(work, label)
        sam = ["--sam", os.path.join(REPO, "plugins", f"lib{plugin}.so")] if plugin else []
        run([args.lth4sa, "train", "--model", "resnet-basic-14", "--data", f"npy:{data}", "--epochs", "2", "--batch", "16",
             "--val-per-class", "2", "--threads", "1", "-o", out] + sam + flags)
        logits_file = os.path.join(work, f"{label}.npy")
        run([args.lth4sa, "eval", "--checkpoint", out, "--data", f"npy:{data}", "--save-logits", logits_file, "--threads", "1"])
        cli = np.load(logits_file)
        model = lth4sa.load(out)
        with torch.no_grad():
            torch_logits = model(lth4sa.preprocess(images, out)).numpy()
        onnx_file = os.path.join(work, f"{label}.onnx")
        export(out, onnx_file, check=False)
        import onnxruntime
        onnx_logits = onnxruntime.InferenceSession(onnx_file, providers=["CPUExecutionProvider"]).run(
            None, {"images": lth4sa.preprocess(images, out).numpy()})[0]
        folded_file = os.path.join(work, f"{label}-folded.onnx")
        export(out, folded_file, check=False, fold_bn=True)
        folded_logits = onnxruntime.InferenceSession(folded_file, providers=["CPUExecutionProvider"]).run(
            None, {"images": lth4sa.preprocess(images, out).numpy()})[0]
        e_torch, e_onnx, e_folded = relative(torch_logits, cli), relative(onnx_logits, cli), relative(folded_logits, cli)
        worst = max(worst, e_torch, e_onnx, e_folded)
        ok = max(e_torch, e_onnx, e_folded) <= TOLERANCE
        print(f"{'ok  ' if ok else 'FAIL'} {label:10s} PyTorch vs CLI {e_torch:.2e}, onnxruntime vs CLI {e_onnx:.2e}, "
              f"BN folded {e_folded:.2e} (of the logits' scale)")
        if not ok:
            failures.append(label)
    # a pipeline run directory loads its ticket's network (train/<bits> of ticket.json's scheme)
    pipeline = os.path.join(work, "pipeline")
    os.makedirs(os.path.join(pipeline, "train"), exist_ok=True)
    shutil.copytree(os.path.join(work, "se-scheme"), os.path.join(pipeline, "train", "100111"))
    with open(os.path.join(pipeline, "ticket.json"), "w") as fh:
        fh.write('{"scheme": "10-01-11"}')
    with torch.no_grad():
        ticket = lth4sa.load(pipeline)(lth4sa.preprocess(images, pipeline)).numpy()
    e = relative(ticket, np.load(os.path.join(work, "se-scheme.npy")))
    print(f"{'ok  ' if e <= TOLERANCE else 'FAIL'} a pipeline directory loads its ticket: PyTorch vs CLI {e:.2e}")
    if e > TOLERANCE:
        failures.append("pipeline ticket")
    # a supernet's sub-network, through `scheme=`
    sup = os.path.join(work, "supernet")
    run([args.lth4sa, "supernet", "train", "--model", "resnet-basic-14", "--data", f"npy:{data}", "--epochs", "1", "--batch", "16",
         "--val-per-class", "2", "--threads", "1", "-o", sup, "--sam", os.path.join(REPO, "plugins", "libSE.so")])
    logits_file = os.path.join(work, "supernet.npy")
    run([args.lth4sa, "eval", "--checkpoint", sup, "--data", f"npy:{data}", "--scheme", "01-10-01", "--save-logits", logits_file, "--threads", "1"])
    with torch.no_grad():
        sub = lth4sa.load(sup, scheme="01-10-01")(lth4sa.preprocess(images, sup)).numpy()
    e = relative(sub, np.load(logits_file))
    print(f"{'ok  ' if e <= TOLERANCE else 'FAIL'} supernet sub-network 01-10-01: PyTorch vs CLI {e:.2e}")
    if e > TOLERANCE:
        failures.append("supernet")
    # TensorBoard files read back
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    written = tensorboard(os.path.join(work, "se"))
    acc = EventAccumulator(written[0])
    acc.Reload()
    epochs = acc.Scalars("train_loss")
    print(f"{'ok  ' if len(epochs) == 2 else 'FAIL'} tensorboard: {len(epochs)} train_loss points read back from {written[0]}")
    if len(epochs) != 2:
        failures.append("tensorboard")
    search = os.path.join(work, "search-log")   # a search log as `lth4sa search` writes it (search.jsonl)
    os.makedirs(search, exist_ok=True)
    with open(os.path.join(search, "search.jsonl"), "w") as fh:
        for step in range(3):
            fh.write(f'{{"accuracy": 90.0, "curiosity": 1.0, "pBar": 0.5, "reward": {40 + step}, "scheme": "10-11-00", "sparsity": 0.5, "step": {step}}}\n')
    acc = EventAccumulator(tensorboard(search)[0])
    acc.Reload()
    rewards = [e.value for e in acc.Scalars("search/reward")]
    ok = rewards == [40, 41, 42] and len(acc.Scalars("search/pBar")) == 3
    print(f"{'ok  ' if ok else 'FAIL'} tensorboard: search reward per step {rewards}")
    if not ok:
        failures.append("tensorboard search")
    phases = os.path.join(work, "phases-only")   # a log with nothing to plot (a pipeline's phase records): no event folder
    os.makedirs(phases, exist_ok=True)
    with open(os.path.join(phases, "metrics.jsonl"), "w") as fh:
        fh.write('{"kind": "phase", "phase": "supernet", "seconds": 1.0}\n')
    empty = tensorboard(phases)
    print(f"{'ok  ' if not empty else 'FAIL'} tensorboard: a log without curves writes no folder ({empty})")
    if empty:
        failures.append("tensorboard empty")
    # a landscape (every scheme of the supernet above, as `lth4sa landscape` writes it): its histogram read back
    study = os.path.join(work, "study")
    shutil.copytree(sup, os.path.join(study, "supernet"))
    run([args.lth4sa, "landscape", "-o", study, "--threads", "1"])
    with open(os.path.join(study, "landscape", "landscape.json")) as fh:
        schemes = len(json.load(fh)["accuracy"])
    landscape = [w for w in tensorboard(study) if w.endswith("landscape")]
    acc = EventAccumulator(landscape[0] if landscape else study)
    acc.Reload()
    histograms = acc.Histograms("landscape/accuracy") if landscape else []
    counted = int(histograms[0].histogram_value.num) if histograms else 0
    ok = schemes == 64 and counted == schemes and len(acc.Scalars("landscape/best")) == 1
    print(f"{'ok  ' if ok else 'FAIL'} tensorboard: landscape histogram of {counted} accuracies ({schemes} schemes in landscape.json)")
    if not ok:
        failures.append("tensorboard landscape")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"parity failed for {', '.join(failures)} (tolerance {TOLERANCE:g})")
        return 1
    print(f"parity: every case within {TOLERANCE:g} (worst {worst:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
