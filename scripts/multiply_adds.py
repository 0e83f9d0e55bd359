#!/usr/bin/env python3
"""Multiply-adds of one image's forward pass through the convolutions and the classifier of the
PyTorch definitions of lth4sa's models, counted by forward hooks on nn.Conv2d and nn.Linear
(output elements x input channels per group x kernel area; in x out features). The values are
the reference of Tests/ModelsTests/ResNetTests.swift (`testMultiplyAddsEqualPyTorchCount`).

    python3 scripts/multiply_adds.py      # prints "model classes multiply-adds" lines

Needs torch. The models: the CIFAR ResNets of the paper's code (basic blocks 6n+2, bottleneck
blocks 9n+2, 16-32-64 planes, 1x1 conv + BN projections), and torchvision's ResNet-50 (stride on
the 3x3 convolution) written out here so that torchvision is not needed.
"""
import torch
import torch.nn as nn


class Basic(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.down = nn.Conv2d(inplanes, planes, 1, stride, bias=False) if stride != 1 or inplanes != planes else None

    def forward(self, x):
        y = self.conv2(torch.relu(self.conv1(x)))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.down = nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False) if stride != 1 or inplanes != planes * 4 else None

    def forward(self, x):
        y = self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


class ResNet(nn.Module):
    def __init__(self, block, blocks, planes, classes, imagenet):
        super().__init__()
        self.stem = nn.Conv2d(3, planes[0], 7, 2, 3, bias=False) if imagenet else nn.Conv2d(3, planes[0], 3, 1, 1, bias=False)
        self.pool = nn.MaxPool2d(3, 2, 1) if imagenet else nn.Identity()
        layers, inplanes = [], planes[0]
        for s, (n, p) in enumerate(zip(blocks, planes)):
            for b in range(n):
                layers.append(block(inplanes, p, 2 if s > 0 and b == 0 else 1))
                inplanes = p * block.expansion
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x):
        h = self.layers(self.pool(torch.relu(self.stem(x))))
        return self.fc(h.mean((2, 3)))


def multiply_adds(model, side):
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * module.in_channels // module.groups * k
        else:
            total += module.in_features * module.out_features

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, side, side))
    return total


if __name__ == "__main__":
    models = [
        ("resnet20", 10, ResNet(Basic, [3, 3, 3], [16, 32, 64], 10, False), 32),
        ("resnet38", 100, ResNet(Bottleneck, [4, 4, 4], [16, 32, 64], 100, False), 32),
        ("resnet164", 100, ResNet(Bottleneck, [18, 18, 18], [16, 32, 64], 100, False), 32),
        ("resnet50", 1000, ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], 1000, True), 224),
    ]
    for name, classes, model, side in models:
        print(name, classes, multiply_adds(model, side))
