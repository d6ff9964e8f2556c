"""Standard architectures as ordinary GraphINNs: RealNVP/Glow-style coupling flows and a multi-scale image flow.

The functions here only declare nodes: what they return is a plain :class:`~freia_graph.GraphINN` of
ordinary nodes with meaningful names (``coupling3``, ``level2.coupling1``, ``level1.z``), so it can be
printed, drawn, inspected (``inn.get_node_by_name``), edited, saved and loaded like a hand-written one.

Each flow step is Glow's: an optional :class:`~freia_graph.modules.ActNorm`, a permutation, then a
coupling. ``coupling=`` is ``"GLOW"``, ``"RNVP"``, ``"AllInOne"``, ``"RationalQuadraticSpline"`` (or
the class, or any coupling class taking ``subnet_constructor``). ``permutation=`` is

* ``"random"``: :class:`~freia_graph.modules.PermuteRandom`, a fixed random permutation of the channels;
* ``"orthogonal"``: a fixed random orthogonal matrix (:class:`~freia_graph.modules.FixedLinearTransform`
  for vectors, :class:`~freia_graph.modules.Fixed1x1Conv` for images);
* ``"learned"``: Glow's learned LU map (:class:`~freia_graph.modules.InvertibleLinear`,
  :class:`~freia_graph.modules.InvertibleConv1x1`);
* ``"none"`` (or None): no permutation.

:class:`~freia_graph.modules.AllInOneBlock` permutes inside the block: with it ``"random"`` is its hard
permutation, ``"orthogonal"`` its soft one (``permute_soft=True``), and no permutation node is added.

Permutations are seeded from ``seed`` (step ``k`` gets ``seed + k``), so the same call builds the same
flow; subnet weights (and AllInOneBlock's own permutations) come from torch's global generator
(``torch.manual_seed``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from freia_graph.framework import ConditionNode, FeedForwardNode, GraphINN, InputNode, Node, OutputNode
from freia_graph.framework.nodes import Port
from freia_graph.modules import (
    ActNorm,
    AllInOneBlock,
    Fixed1x1Conv,
    FixedLinearTransform,
    GLOWCouplingBlock,
    HaarDownsampling,
    InvertibleConv1x1,
    InvertibleLinear,
    InvertibleModule,
    IRevNetDownsampling,
    PermuteRandom,
    RationalQuadraticSpline,
    RNVPCouplingBlock,
    Split,
)
from freia_graph.modules.base import Shape, normalize_shapes
from freia_graph.modules.permutations import random_orthogonal, seeded_generator
from freia_graph.nn import ConvSubnet, ImageToFeatureMap, MLPSubnet, VectorToFeatureMap
from freia_graph.nn._arguments import check_choice, check_int, check_real

__all__ = ["COUPLINGS", "DOWNSAMPLINGS", "PERMUTATIONS", "coupling_flow", "multiscale_flow"]

COUPLINGS: dict[str, type[InvertibleModule]] = {
    "GLOW": GLOWCouplingBlock,
    "RNVP": RNVPCouplingBlock,
    "AllInOne": AllInOneBlock,
    "RationalQuadraticSpline": RationalQuadraticSpline,
}
PERMUTATIONS = ("random", "orthogonal", "learned", "none")
DOWNSAMPLINGS: dict[str, type[InvertibleModule]] = {"haar": HaarDownsampling, "irevnet": IRevNetDownsampling}

SubnetConstructor = Callable[[int, int], nn.Module]


@dataclass(frozen=True)
class _Step:
    """What every flow step of one preset has in common."""

    coupling: type[InvertibleModule]
    coupling_args: dict[str, Any]
    permutation: str
    actnorm: bool
    seed: int | None


def _coupling_class(coupling: object, owner: str) -> type[InvertibleModule]:
    if isinstance(coupling, type) and issubclass(coupling, InvertibleModule):
        return coupling
    names = {**COUPLINGS, **{cls.__name__: cls for cls in COUPLINGS.values()}, "RealNVP": RNVPCouplingBlock}
    try:
        return check_choice(coupling, names, "coupling", owner)
    except ValueError:
        raise (ValueError if isinstance(coupling, str) else TypeError)(
            f"{owner}: coupling must be one of {list(COUPLINGS)} (or the class name), or an InvertibleModule "
            f"subclass taking subnet_constructor, got {coupling!r}"
        ) from None


def _coupling_arguments(owner: str, coupling_args: object, subnet_constructor: object) -> dict[str, Any]:
    """The keyword arguments of every coupling: ``coupling_args`` plus the subnet constructor."""
    if coupling_args is not None and not isinstance(coupling_args, dict):
        raise TypeError(f"{owner}: coupling_args must be a dict of keyword arguments, got {coupling_args!r}")
    if "subnet_constructor" in (coupling_args or {}):
        raise ValueError(f"{owner}: pass the subnet as subnet_constructor=..., not inside coupling_args")
    if not callable(subnet_constructor):
        raise TypeError(
            f"{owner}: subnet_constructor must be a callable f(c_in, c_out) -> nn.Module, got {subnet_constructor!r}"
        )
    return {**(coupling_args or {}), "subnet_constructor": subnet_constructor}


def _step(
    owner: str,
    coupling: object,
    permutation: str | None,
    actnorm: bool,
    subnet_constructor: SubnetConstructor | None,
    coupling_args: dict[str, Any] | None,
    seed: int | None,
    default_subnet: SubnetConstructor,
) -> _Step:
    """Check the arguments every preset shares and gather them."""
    coupling_class = _coupling_class(coupling, owner)
    permutation = "none" if permutation is None else permutation
    permutation = check_choice(permutation, {name: name for name in PERMUTATIONS}, "permutation", owner)
    if coupling_class is AllInOneBlock and permutation in ("learned", "none"):
        raise ValueError(
            f"{owner}: permutation={permutation!r} does not fit coupling AllInOneBlock, which always permutes "
            f"inside the block; use permutation='random' (hard) or 'orthogonal' (soft), or another coupling"
        )
    if not isinstance(actnorm, bool):
        raise TypeError(f"{owner}: actnorm must be True or False, got {actnorm!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"{owner}: seed must be an int or None, got {seed!r}")
    subnet = default_subnet if subnet_constructor is None else subnet_constructor
    arguments = _coupling_arguments(owner, coupling_args, subnet)
    if coupling_class is AllInOneBlock:
        arguments.setdefault("permute_soft", permutation == "orthogonal")
    return _Step(coupling_class, arguments, permutation, actnorm, seed)


def _permutation_node(port: Port, step: _Step, channels: int, images: bool, index: int, name: str) -> Node | None:
    seed = None if step.seed is None else step.seed + index
    if step.permutation == "random" and step.coupling is not AllInOneBlock:
        return Node(port, PermuteRandom, {"seed": seed}, name=name)
    if step.permutation == "learned":
        return Node(port, InvertibleConv1x1 if images else InvertibleLinear, {"seed": seed}, name=name)
    if step.permutation == "orthogonal" and step.coupling is not AllInOneBlock:
        matrix = random_orthogonal(channels, seeded_generator(seed)).to(torch.get_default_dtype())
        return Node(port, Fixed1x1Conv if images else FixedLinearTransform, {"M": matrix}, name=name)
    return None


def _add_steps(
    nodes: list, port: Port, step: _Step, count: int, conditions: list, prefix: str, first_index: int
) -> Port:
    """Append ``count`` flow steps (ActNorm, permutation, coupling) after ``port``; return the last port."""
    shape = port[0].output_dims[port[1]]
    for number in range(1, count + 1):
        if step.actnorm:
            nodes.append(Node(port, ActNorm, {}, name=f"{prefix}actnorm{number}"))
            port = nodes[-1].port(0)
        permute = _permutation_node(port, step, shape[0], len(shape) > 1, first_index + number,
                                    f"{prefix}permute{number}")
        if permute is not None:
            nodes.append(permute)
            port = permute.port(0)
        nodes.append(Node(port, step.coupling, dict(step.coupling_args), conditions=conditions or None,
                          name=f"{prefix}coupling{number}"))
        port = nodes[-1].port(0)
    return port


def _condition_nodes(dims_c: object, allowed_ranks: tuple[int, ...], hint: str) -> list[ConditionNode]:
    shapes = normalize_shapes(dims_c, "dims_c")
    for index, shape in enumerate(shapes):
        if len(shape) not in allowed_ranks:
            raise ValueError(f"dims_c[{index}] = {shape}: {hint}")
    return [ConditionNode(*shape, name=f"c{index}") for index, shape in enumerate(shapes)]


def coupling_flow(
    dims: int | Sequence[int],
    depth: int = 8,
    coupling: str | type[InvertibleModule] = "GLOW",
    permutation: str | None = "random",
    actnorm: bool = False,
    dims_c: Sequence[Sequence[int]] | None = None,
    subnet_constructor: SubnetConstructor | None = None,
    coupling_args: dict[str, Any] | None = None,
    seed: int | None = 0,
) -> GraphINN:
    """A RealNVP/Glow-style flow for vectors: ``depth`` steps of [ActNorm], permutation, coupling.

    Nodes: ``x`` (input), ``c0, c1, ...`` (conditions, passed to every coupling), then per step ``k``
    (from 1) ``actnorm{k}``, ``permute{k}``, ``coupling{k}``, and ``z`` (output).

    Args:
        dims: the vector length ``D`` (an int or ``(D,)``), at least 2.
        depth: number of steps.
        coupling: ``"GLOW"``, ``"RNVP"``, ``"AllInOne"``, ``"RationalQuadraticSpline"``, or a coupling class.
        permutation: ``"random"``, ``"orthogonal"``, ``"learned"`` or ``"none"`` (see the module docstring).
        actnorm: begin every step with an :class:`~freia_graph.modules.ActNorm` (initialised from the
            first batch it sees, so run a forward pass before sampling).
        dims_c: vector condition shapes, e.g. ``[(10,)]``; every coupling receives all of them.
        subnet_constructor: ``f(c_in, c_out) -> nn.Module``; default ``MLPSubnet()`` (2 hidden layers of 128).
        coupling_args: further keyword arguments of every coupling, e.g. ``{"clamp": 1.5}`` or ``{"bins": 8}``.
        seed: seed of the permutations (None: drawn from torch's global generator).

    Returns:
        A :class:`~freia_graph.GraphINN` mapping ``x`` of shape ``(N, D)`` to ``z`` of shape ``(N, D)``.

    Example:
        >>> import torch
        >>> from freia_graph.nn import MLPSubnet
        >>> flow = coupling_flow(4, depth=3, coupling="RNVP", dims_c=[(2,)], subnet_constructor=MLPSubnet(16))
        >>> [node.name for node in flow.node_list][:5]
        ['x', 'c0', 'permute1', 'coupling1', 'permute2']
        >>> z, log_det = flow(torch.randn(5, 4), c=[torch.randn(5, 2)])
        >>> z.shape, log_det.shape
        (torch.Size([5, 4]), torch.Size([5]))
    """
    shape = (dims,) if isinstance(dims, int) and not isinstance(dims, bool) else dims
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) != 1:
        hint = "; for images (C, H, W) use multiscale_flow" if isinstance(shape, Sequence) and len(shape) == 3 else ""
        raise ValueError(f"coupling_flow builds flows for vectors: dims must be an int D or (D,), got {dims!r}{hint}")
    check_int(shape[0], "dims", "coupling_flow", minimum=2)
    check_int(depth, "depth", "coupling_flow")
    step = _step("coupling_flow", coupling, permutation, actnorm, subnet_constructor, coupling_args, seed, MLPSubnet())
    nodes: list = [InputNode(shape[0], name="x")]
    conditions = _condition_nodes(dims_c, (1,), "coupling_flow takes vector conditions; flatten it first")
    nodes += conditions
    port = _add_steps(nodes, nodes[0].port(0), step, depth, conditions, "", 0)
    nodes.append(OutputNode(port, name="z"))
    return GraphINN(nodes)


def _embeddings(
    conditions: list[ConditionNode], shape: Shape, channels: int, arguments: dict, prefix: str
) -> list[FeedForwardNode]:
    """One FeedForwardNode per condition, mapping it to a ``(channels, H, W)`` map at this level."""
    out_shape = (channels, *shape[1:])
    nodes = []
    for condition in conditions:
        dims = condition.output_dims[0]
        if len(dims) == 1:
            module, module_args = VectorToFeatureMap, {"in_features": dims[0], "out_shape": out_shape}
        else:
            module, module_args = ImageToFeatureMap, {"in_shape": dims, "out_shape": out_shape}
        nodes.append(FeedForwardNode(condition, out_shape, module, {**module_args, **arguments},
                                     name=f"{prefix}embed_{condition.name}"))
    return nodes


def _check_image(dims: object, levels: int) -> Shape:
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) or len(dims) != 3:
        raise ValueError(f"multiscale_flow builds flows for images: dims must be (C, H, W), got {dims!r}; "
                         f"for vectors use coupling_flow")
    shape = tuple(check_int(size, f"dims[{index}]", "multiscale_flow") for index, size in enumerate(dims))
    factor = 2**levels
    if shape[1] % factor or shape[2] % factor:
        raise ValueError(
            f"multiscale_flow: each of the {levels} levels halves the image, so height and width must be "
            f"multiples of 2**levels = {factor}, got dims {shape}; use fewer levels or pad the images"
        )
    return shape


def _split_sizes(channels: int, split_fraction: float, level: int) -> tuple[int, int]:
    off = round(channels * split_fraction)
    if not 1 <= off <= channels - 1:
        raise ValueError(
            f"multiscale_flow: split_fraction={split_fraction} of the {channels} channels of level {level} "
            f"splits off {off}; at least one channel must go each way (use a fraction between "
            f"{1 / channels:.3g} and {1 - 1 / channels:.3g}, or 0 for no split)"
        )
    return channels - off, off


def multiscale_flow(
    dims: Sequence[int],
    levels: int = 3,
    blocks_per_level: int = 4,
    downsampling: str = "haar",
    split_fraction: float = 0.5,
    coupling: str | type[InvertibleModule] = "GLOW",
    permutation: str | None = "random",
    actnorm: bool = False,
    dims_c: Sequence[Sequence[int]] | None = None,
    subnet_constructor: SubnetConstructor | None = None,
    coupling_args: dict[str, Any] | None = None,
    condition_channels: int = 8,
    embedding_args: dict[str, Any] | None = None,
    seed: int | None = 0,
) -> GraphINN:
    """A Glow/RealNVP-style multi-scale flow for images.

    Each level squeezes the image to half its height and width and four times its channels (Haar
    wavelets or the i-RevNet squeeze), runs ``blocks_per_level`` steps of [ActNorm], permutation and
    coupling, and (except the last level) splits off ``split_fraction`` of its channels as a latent
    output; the rest goes on to the next level. Each condition (a vector ``(D,)`` or an image
    ``(C, H, W)``) is embedded at every level by a FeedForwardNode into a ``(condition_channels, h, w)``
    map of that level's size (:class:`~freia_graph.nn.VectorToFeatureMap`,
    :class:`~freia_graph.nn.ImageToFeatureMap`), which conditions the level's couplings.

    Nodes: ``x``, ``c0, c1, ...``, then per level ``l`` (from 1) ``level{l}.squeeze``,
    ``level{l}.embed_c{i}``, the steps ``level{l}.actnorm{k}``, ``level{l}.permute{k}``,
    ``level{l}.coupling{k}``, ``level{l}.split`` and the output ``level{l}.z``. The graph's outputs are
    the latents ``level1.z, ..., level{levels}.z`` in that order, each an image.

    Args:
        dims: the image shape ``(C, H, W)``; H and W must be multiples of ``2**levels``.
        levels: number of scales.
        blocks_per_level: flow steps per level.
        downsampling: ``"haar"`` (:class:`~freia_graph.modules.HaarDownsampling`, averages first) or
            ``"irevnet"`` (:class:`~freia_graph.modules.IRevNetDownsampling`).
        split_fraction: fraction of a level's channels split off as a latent after it, in [0, 1); 0
            keeps everything to the end (one latent output).
        coupling: as in :func:`coupling_flow`.
        permutation: as in :func:`coupling_flow`; ``"learned"`` is Glow's invertible 1x1 convolution.
        actnorm: begin every step with an ActNorm (initialised from the first batch).
        dims_c: condition shapes, vectors ``(D,)`` and/or images ``(C, H, W)`` of any size.
        subnet_constructor: default ``ConvSubnet()`` (3x3 convolutions, 64 channels).
        coupling_args: further keyword arguments of every coupling.
        condition_channels: channels of each condition's embedding at each level.
        embedding_args: further keyword arguments of the embeddings (e.g. ``{"hidden": 32}``, or
            ``{"base_size": 1}`` to broadcast vectors).
        seed: seed of the permutations (None: drawn from torch's global generator).

    Returns:
        A :class:`~freia_graph.GraphINN` mapping ``x`` of shape ``(N, C, H, W)`` to the tuple of latents.
        With a single latent (``levels=1`` or ``split_fraction=0``) it returns one tensor, like any
        GraphINN; set ``flow.force_tuple_output = True`` for a tuple in every case.

    Example:
        >>> import torch
        >>> from freia_graph.nn import ConvSubnet
        >>> flow = multiscale_flow((1, 8, 8), levels=2, blocks_per_level=1, dims_c=[(3,)],
        ...                        subnet_constructor=ConvSubnet(hidden=8))
        >>> (z1, z2), log_det = flow(torch.randn(5, 1, 8, 8), c=[torch.eye(3)[[0, 1, 2, 0, 1]]])
        >>> z1.shape, z2.shape, log_det.shape
        (torch.Size([5, 2, 4, 4]), torch.Size([5, 8, 2, 2]), torch.Size([5]))
    """
    check_int(levels, "levels", "multiscale_flow")
    check_int(blocks_per_level, "blocks_per_level", "multiscale_flow")
    shape = _check_image(dims, levels)
    downsample = check_choice(downsampling, DOWNSAMPLINGS, "downsampling", "multiscale_flow")
    split_fraction = check_real(split_fraction, "split_fraction", "multiscale_flow", 0.0, 1.0, high_included=False)
    check_int(condition_channels, "condition_channels", "multiscale_flow")
    if embedding_args is not None and not isinstance(embedding_args, dict):
        raise TypeError(f"multiscale_flow: embedding_args must be a dict of keyword arguments, got {embedding_args!r}")
    step = _step("multiscale_flow", coupling, permutation, actnorm, subnet_constructor, coupling_args, seed,
                 ConvSubnet())
    conditions = _condition_nodes(dims_c, (1, 3), "conditions must be vectors (D,) or images (C, H, W)")
    nodes: list = [InputNode(*shape, name="x"), *conditions]
    port = nodes[0].port(0)
    squeeze_args = {"order_by_wavelet": True} if downsample is HaarDownsampling else {}
    for level in range(1, levels + 1):
        prefix = f"level{level}."
        nodes.append(Node(port, downsample, squeeze_args, name=f"{prefix}squeeze"))
        port, shape = nodes[-1].port(0), nodes[-1].output_dims[0]
        embedded = _embeddings(conditions, shape, condition_channels, embedding_args or {}, prefix)
        nodes += embedded
        port = _add_steps(nodes, port, step, blocks_per_level, embedded, prefix, (level - 1) * blocks_per_level)
        if level < levels and split_fraction > 0:
            sizes = _split_sizes(shape[0], split_fraction, level)
            nodes.append(Node(port, Split, {"section_sizes": list(sizes)}, name=f"{prefix}split"))
            nodes.append(OutputNode(nodes[-1].port(1), name=f"{prefix}z"))
            port = nodes[-2].port(0)
    nodes.append(OutputNode(port, name=f"level{levels}.z"))
    return GraphINN(nodes)
