#!/usr/bin/env python3
"""PyTorch's convolution time in a training step of a CIFAR ResNet, channels_last on the CPU
(oneDNN inside PyTorch, the version its wheel bundles), from torch.profiler: what the
convolutions of `lth4sa bench train --backward onednn --profile` (Debian's oneDNN 2.6) compare
with. Prints ms per step for the forward and the backward convolutions and the whole step.

    .build/python-venv/bin/python scripts/torch_conv_profile.py --model resnet38 --threads 2
"""
import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

import lth4sa


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
    model = lth4sa.create(args.model, classes=args.classes).to(memory_format=torch.channels_last)
    model.train()
    images = torch.randn(args.batch, 3, 32, 32).to(memory_format=torch.channels_last)
    labels = torch.randint(0, args.classes, (args.batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    times = []
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    forward = backward = 0.0
    for event in prof.key_averages():
        if event.key == "aten::mkldnn_convolution":
            forward += event.cpu_time_total
        elif event.key == "aten::convolution_backward":
            backward += event.cpu_time_total
    steps = args.steps
    print(f"torch {torch.__version__}, {args.model}, batch {args.batch}, {args.threads} threads, channels_last, {steps} steps")
    print(f"median step {statistics.median(times) * 1e3:.1f} ms (profiled)")
    print(f"conv fwd {forward / steps / 1e3:.1f} ms/step, conv bwd (data + weights) {backward / steps / 1e3:.1f} ms/step")


if __name__ == "__main__":
    main()
