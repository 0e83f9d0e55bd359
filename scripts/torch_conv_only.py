#!/usr/bin/env python3
"""How fast PyTorch's own convolutions train a CIFAR ResNet on this CPU: the training step of the
model with every batch norm and ReLU removed (channels_last, PyTorch's bundled oneDNN), i.e. the
convolutions, the residual additions, the classifier and SGD. Compare with the convolution rows
of `lth4sa bench train --model M --backward onednn --profile` (Debian's oneDNN 2.6) on the same
machine and threads: if PyTorch's convolutions were faster, a newer oneDNN would speed lth4sa up.

    .build/python-venv/bin/python scripts/torch_conv_only.py --model resnet38 --threads 2
"""
import argparse
import statistics
import time

import torch

import lth4sa
import lth4sa.model


def strip(module):
    """Replaces every BatchNorm2d and ReLU module with Identity (in place)."""
    for name, child in module.named_children():
        if isinstance(child, (torch.nn.BatchNorm2d, torch.nn.ReLU)):
            setattr(module, name, torch.nn.Identity())
        else:
            strip(child)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet38")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lth4sa.model.F.relu = lambda t, inplace=False: t  # the blocks' functional ReLUs
    model = lth4sa.create(args.model, classes=args.classes)
    strip(model)
    model = model.to(memory_format=torch.channels_last).train()
    images = torch.randn(args.batch, 3, 32, 32).to(memory_format=torch.channels_last)
    labels = torch.randint(0, args.classes, (args.batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(f"torch {torch.__version__}, {args.model} without batch norms and ReLUs, batch {args.batch}, {args.threads} threads, "
          f"channels_last: median step {statistics.median(times) * 1e3:.1f} ms over {args.steps} steps")


if __name__ == "__main__":
    main()
