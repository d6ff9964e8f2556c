"""Graphs of three sizes for the picture tests and the benchmark: about 10, 40 and 300 nodes."""

from __future__ import annotations

import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm


def dense_subnet(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(c_in, 16), nn.Tanh(), nn.Linear(16, c_out))


def conv_subnet(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, c_out, 3, padding=1))


class ImageEmbedding(nn.Module):
    """A class vector turned into a small image, the condition of the couplings at one scale."""

    def __init__(self, classes: int, channels: int, size: int):
        super().__init__()
        self.shape = (channels, size, size)
        self.linear = nn.Linear(classes, channels * size * size)

    def forward(self, label: torch.Tensor) -> torch.Tensor:
        return self.linear(label).reshape(-1, *self.shape)


def branching_graph() -> Ff.GraphINN:
    """10 nodes: two branches, a condition embedded by a FeedForwardNode and shared by both."""
    x = Ff.InputNode(6, name="x")
    label = Ff.ConditionNode(3, name="label")
    embedding = Ff.FeedForwardNode(label, (4,), nn.Linear, {"in_features": 3, "out_features": 4}, name="embedding")
    split = Ff.Node(x, Fm.Split, {"section_sizes": [4, 2]}, name="split")
    glow = Ff.Node(split.out0, Fm.GLOWCouplingBlock, {"subnet_constructor": dense_subnet},
                   conditions=embedding, name="glow")
    all_in_one = Ff.Node(split.out1, Fm.AllInOneBlock, {"subnet_constructor": dense_subnet},
                         conditions=embedding, name="all_in_one")
    permute = Ff.Node(glow, Fm.PermuteRandom, {"seed": 0}, name="permute")
    merge = Ff.Node([permute.out0, all_in_one.out0], Fm.Concat, {}, name="merge")
    actnorm = Ff.Node(merge, Fm.ActNorm, {}, name="actnorm")
    z = Ff.OutputNode(actnorm, name="z")
    return Ff.GraphINN(Ff.collect_nodes(z))


def conditional_chain(blocks: int = 19) -> Ff.GraphINN:
    """2 * blocks + 3 nodes: GLOW coupling and permutation, repeated, every coupling conditioned."""
    x = Ff.InputNode(4, name="x")
    label = Ff.ConditionNode(2, name="c")
    node = x
    for i in range(blocks):
        node = Ff.Node(node, Fm.GLOWCouplingBlock, {"subnet_constructor": dense_subnet}, conditions=label,
                       name=f"coupling_{i}")
        node = Ff.Node(node, Fm.PermuteRandom, {"seed": i}, name=f"permute_{i}")
    return Ff.GraphINN(Ff.collect_nodes(Ff.OutputNode(node, name="z")))


def multiscale_graph(blocks: int = 48, scales: int = 3) -> Ff.GraphINN:
    """A conditional multi-scale Glow-like graph: 6 * blocks + 15 nodes for 3 scales (303 by default).

    Each scale downsamples (Haar, then IRevNet), runs ``blocks`` couplings conditioned on an embedded
    label (one FeedForwardNode per scale) each followed by ActNorm, and splits half of the channels off
    to the output; everything is flattened and concatenated.
    """
    channels, size = 1, 16
    x = Ff.InputNode(channels, size, size, name="image")
    label = Ff.ConditionNode(10, name="label")
    node, flat = x, []
    for scale in range(scales):
        downsampling = Fm.HaarDownsampling if scale % 2 == 0 else Fm.IRevNetDownsampling
        node = Ff.Node(node, downsampling, {}, name=f"down_{scale}")
        channels, size = channels * 4, size // 2
        embedding = Ff.FeedForwardNode(label, (2, size, size), ImageEmbedding,
                                       {"classes": 10, "channels": 2, "size": size}, name=f"embed_{scale}")
        for block in range(blocks):
            node = Ff.Node(node, Fm.GLOWCouplingBlock, {"subnet_constructor": conv_subnet}, conditions=embedding,
                           name=f"s{scale}_coupling_{block}")
            node = Ff.Node(node, Fm.ActNorm, {}, name=f"s{scale}_actnorm_{block}")
        if scale < scales - 1:
            split = Ff.Node(node, Fm.Split, {"section_sizes": [channels // 2, channels // 2]}, name=f"split_{scale}")
            flat.append(Ff.Node(split.out1, Fm.Flatten, {}, name=f"flatten_{scale}"))
            node, channels = split.out0, channels // 2
    flat.append(Ff.Node(node, Fm.Flatten, {}, name="flatten_last"))
    merge = Ff.Node([f.out0 for f in flat], Fm.Concat, {}, name="merge")
    return Ff.GraphINN(Ff.collect_nodes(Ff.OutputNode(merge, name="z")))


def conditional_sequence(blocks: int = 4) -> Ff.SequenceINN:
    """A SequenceINN alternating conditioned couplings (condition 0) and permutations."""
    inn = Ff.SequenceINN(4)
    for i in range(blocks):
        inn.append(Fm.GLOWCouplingBlock, cond=0, cond_shape=(2,), subnet_constructor=dense_subnet)
        inn.append(Fm.PermuteRandom, seed=i)
    return inn


GRAPHS = {"branching": branching_graph, "chain": conditional_chain, "multiscale": multiscale_graph,
          "sequence": conditional_sequence}
