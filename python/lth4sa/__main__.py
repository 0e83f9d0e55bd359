"""python -m lth4sa export RUN --onnx FILE [--batch N] [--fold-bn]   |   python -m lth4sa tensorboard RUN [--logdir DIR]"""
import argparse
import json
import os
import sys
import warnings

import numpy as np
import torch

from .model import fold_batch_norms, load, metadata


def export(run, onnx_path, batch=1, check=True, fold_bn=False):
    """Writes the network of `run` as ONNX (input 'images' [N, 3, H, W] normalised, output
    'logits'; N dynamic; `fold_bn`: batch norms folded into the convolutions) and, with
    `check`, compares onnxruntime's logits with the unfolded PyTorch network's on random
    inputs. Returns the largest difference relative to the logits' scale."""
    reference = load(run)
    model = fold_batch_norms(load(run)) if fold_bn else reference
    side = 224 if metadata(run)["model"] == "resnet50" else 32
    x = torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():  # the TorchScript exporter (no onnxscript needed) is deprecated, not wrong
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (x,), onnx_path, input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)
    if not check:
        return None
    import onnxruntime
    with torch.no_grad():
        want = reference(x).numpy()
    got = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def tensorboard(run, logdir=None):
    """TensorBoard event files from every metrics.jsonl and search.jsonl under `run` (training
    curves per network, search reward and p_bar per step) and every landscape.json (a histogram
    of the schemes' accuracies, and the best, median and worst): one event folder per network,
    search or landscape. Returns the folders written."""
    from torch.utils.tensorboard import SummaryWriter
    logdir = logdir or os.path.join(run, "tensorboard")
    written = []
    for root, _, files in os.walk(run):
        if os.path.commonpath([root, logdir]) == logdir:
            continue
        if "landscape.json" in files:
            with open(os.path.join(root, "landscape.json")) as fh:
                accuracies = sorted(json.load(fh).get("accuracy", {}).values())
            if accuracies:
                rel = os.path.relpath(root, run)
                out = os.path.join(logdir, rel if rel != "." else "run", "landscape")
                writer = SummaryWriter(out)
                writer.add_histogram("landscape/accuracy", np.asarray(accuracies), 0)
                for key, value in (("best", accuracies[-1]), ("median", accuracies[len(accuracies) // 2]), ("worst", accuracies[0])):
                    writer.add_scalar("landscape/" + key, value, 0)
                writer.close()
                written.append(out)
        for name in ("metrics.jsonl", "search.jsonl"):
            if name not in files:
                continue
            scalars = []  # (tag, value, step)
            with open(os.path.join(root, name)) as fh:
                for i, line in enumerate(fh):
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    if r.get("kind") == "epoch":
                        for key in ("train_loss", "train_acc", "val_acc", "val_loss", "images_per_s"):
                            if key in r:
                                scalars.append((key, r[key], r["epoch"]))
                    elif r.get("kind") == "step":
                        scalars += [("step/loss", r["loss"], i), ("step/lr", r["lr"], i)]
                    elif "reward" in r:
                        step = r.get("step", i)
                        scalars.append(("search/reward", r["reward"], step))
                        for key in ("accuracy", "pBar"):  # pBar: EAN's mean keep probability
                            if isinstance(r.get(key), (int, float)):
                                scalars.append(("search/" + key, r[key], step))
            if not scalars:  # e.g. a pipeline's own log of phases: nothing to plot, no empty folder
                continue
            rel = os.path.relpath(root, run)
            out = os.path.join(logdir, rel if rel != "." else "run", name.split(".")[0])
            writer = SummaryWriter(out)
            for tag, value, step in scalars:
                writer.add_scalar(tag, value, step)
            writer.close()
            written.append(out)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lth4sa", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="the network of a run as an ONNX file, checked with onnxruntime")
    e.add_argument("run")
    e.add_argument("--onnx", required=True)
    e.add_argument("--batch", type=int, default=1)
    e.add_argument("--fold-bn", action="store_true", help="fold every batch norm into the convolution before it")
    t = sub.add_parser("tensorboard", help="TensorBoard event files from a run's metrics.jsonl, search.jsonl and landscape.json")
    t.add_argument("run")
    t.add_argument("--logdir")
    args = ap.parse_args(argv)
    try:
        if args.command == "export":
            err = export(args.run, args.onnx, args.batch, fold_bn=args.fold_bn)
            print(f"wrote {args.onnx}; onnxruntime vs PyTorch: largest difference {err:.2e} of the logits' scale")
        else:
            for out in tensorboard(args.run, args.logdir):
                print("wrote", out)
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
