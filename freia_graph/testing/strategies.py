"""Hypothesis strategies: random valid GraphINNs, built constructively, and inputs that fit them.

:func:`graphs` never rejects a draw. It keeps a pool of *open ports* (outputs nobody consumes yet); each
step picks a move that fits the pool (a block on a port whose shape it accepts, a split, a concatenation
of two ports with matching shapes, a reshape, a downsampling, a feed-forward condition, a nested graph)
and declares the node, which consumes ports and adds its outputs to the pool. At the end every open port
gets an OutputNode. So every draw is a valid DAG with consistent shapes, and shrinking (fewer steps,
earlier choices, the first moves of each list) gives small graphs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor, nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.framework.nodes import BaseNode
from freia_graph.modules.base import Shape

from .calling import random_like_dims
from .checks import prepare_model
from .describe import describe

__all__ = [
    "MOVES",
    "BlockSpec",
    "DrawnGraphINN",
    "any_shape",
    "default_blocks",
    "graph_inputs",
    "graphs",
    "image_subnet",
    "is_image",
    "is_splittable",
    "same_layout",
    "subnet_for",
    "vector_subnet",
]

Port = tuple[BaseNode, int]
MOVES = ("block", "split", "concat", "reshape", "downsample", "feed_forward", "read_flow", "nested")
# How often each move is drawn when it fits, relative to the others: mostly blocks, the interesting part.
_MOVE_WEIGHTS = {"block": 6, "split": 2, "concat": 2, "reshape": 1, "downsample": 1, "feed_forward": 1,
                 "read_flow": 1, "nested": 1}


def vector_subnet(c_in: int, c_out: int) -> nn.Module:
    """A small fully connected subnet (one hidden layer of 8), to keep drawn graphs fast.

    Example:
        >>> vector_subnet(3, 4)(torch.zeros(2, 3)).shape
        torch.Size([2, 4])
    """
    return nn.Sequential(nn.Linear(c_in, 8), nn.Tanh(), nn.Linear(8, c_out))


def image_subnet(c_in: int, c_out: int) -> nn.Module:
    """A small convolutional subnet (one hidden layer of 4 channels, 3x3 kernels).

    Example:
        >>> image_subnet(1, 2)(torch.zeros(2, 1, 4, 4)).shape
        torch.Size([2, 2, 4, 4])
    """
    return nn.Sequential(nn.Conv2d(c_in, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, c_out, 3, padding=1))


def any_shape(shape: Shape) -> bool:
    """Accepts every shape."""
    return True


def is_image(shape: Shape) -> bool:
    """Accepts images ``(C, H, W)``."""
    return len(shape) == 3


def is_splittable(shape: Shape) -> bool:
    """Accepts vectors and images with at least two channels (what a coupling block splits).

    Example:
        >>> is_splittable((1,)), is_splittable((2,)), is_splittable((1, 4, 4)), is_image((1, 4, 4))
        (False, True, False, True)
    """
    return len(shape) in (1, 3) and shape[0] >= 2


def same_layout(shape: Shape, condition_shape: Shape) -> bool:
    """Vectors take vector conditions; images take image conditions of the same height and width.

    Example:
        >>> same_layout((4,), (2,)), same_layout((3, 8, 8), (1, 8, 8)), same_layout((3, 8, 8), (2,))
        (True, True, False)
    """
    if len(shape) == 1:
        return len(condition_shape) == 1
    return len(condition_shape) == 3 and condition_shape[1:] == shape[1:]


def subnet_for(shape: Shape) -> dict[str, Any]:
    """The subnet constructor argument that fits a vector or an image.

    Example:
        >>> subnet_for((4,))["subnet_constructor"].__name__, subnet_for((2, 4, 4))["subnet_constructor"].__name__
        ('vector_subnet', 'image_subnet')
    """
    return {"subnet_constructor": vector_subnet if len(shape) == 1 else image_subnet}


@dataclass(frozen=True)
class BlockSpec:
    """A block class that :func:`graphs` may place, with the rule for the shapes it accepts.

    Args:
        module: the InvertibleModule class (one input, built as ``module([shape], dims_c=..., **arguments)``).
        accepts: which input shapes (without batch) it takes.
        arguments: constructor arguments, or a function from the input shape to them.
        conditional: whether it may be given conditions.
        requires_conditions: whether it must be given at least one.
        accepts_condition: which condition shapes fit an input shape.
        condition_dims: the exact condition shapes, in order, that the block must be given (for blocks
            built for fixed conditions); overrides the three options above.

    Example:
        >>> spec = BlockSpec(Fm.GLOWCouplingBlock, accepts=is_splittable, arguments=subnet_for, conditional=True)
        >>> spec.accepts((1,)), spec.accepts((2, 4, 4)), sorted(spec.arguments_for((4,)))
        (False, True, ['subnet_constructor'])
    """

    module: type
    accepts: Callable[[Shape], bool] = any_shape
    arguments: Mapping[str, Any] | Callable[[Shape], Mapping[str, Any]] = field(default_factory=dict)
    conditional: bool = False
    requires_conditions: bool = False
    accepts_condition: Callable[[Shape, Shape], bool] = same_layout
    condition_dims: tuple[Shape, ...] | None = None

    def arguments_for(self, shape: Shape) -> dict[str, Any]:
        """The constructor arguments for an input of this shape."""
        return dict(self.arguments(shape) if callable(self.arguments) else self.arguments)

    def __repr__(self) -> str:
        return f"BlockSpec({self.module.__name__})"


def default_blocks() -> list[BlockSpec]:
    """The blocks :func:`graphs` uses unless told otherwise: couplings, permutations, normalisations.

    Example:
        >>> [spec.module.__name__ for spec in default_blocks()][:3]
        ['PermuteRandom', 'GLOWCouplingBlock', 'RNVPCouplingBlock']
    """
    coupling = dict(accepts=is_splittable, arguments=subnet_for, conditional=True)
    return [
        BlockSpec(Fm.PermuteRandom),
        BlockSpec(Fm.GLOWCouplingBlock, **coupling),
        BlockSpec(Fm.RNVPCouplingBlock, **coupling),
        BlockSpec(Fm.NICECouplingBlock, **coupling),
        BlockSpec(Fm.AllInOneBlock, **coupling),
        BlockSpec(Fm.ActNorm),
        BlockSpec(Fm.LearnedElementwiseScaling),
        BlockSpec(Fm.InvertibleConv1x1, accepts=is_image),
    ]


class DrawnGraphINN(Ff.GraphINN):
    """A GraphINN drawn by :func:`graphs`; it prints as one line per node (see :func:`describe`).

    Example:
        >>> x = Ff.InputNode(2, name="x")
        >>> DrawnGraphINN([x, Ff.OutputNode(x, name="z")])
        GraphINN(
            x = InputNode(2,)
            z = OutputNode(x) (2,)
        )
    """

    def __repr__(self) -> str:
        return "GraphINN(\n" + describe(self, "    ") + "\n)"


@dataclass(frozen=True)
class _Options:
    blocks: tuple[BlockSpec, ...]
    max_nodes: int
    moves: frozenset[str]
    max_depth: int
    require: BlockSpec | None
    images: bool


def _shape(port: Port) -> Shape:
    node, index = port
    return node.output_dims[index]


class _Builder:
    """Declares nodes one move at a time, keeping the pool of open ports and condition ports."""

    def __init__(self, draw: Callable, options: _Options, budget: int, depth: int = 0, prefix: str = ""):
        self.draw, self.options, self.budget, self.depth, self.prefix = draw, options, budget, depth, prefix
        self.nodes: list[BaseNode] = []
        self.open: list[Port] = []
        self.condition_ports: list[Port] = []
        self.serial = itertools.count()

    def name(self, stem: str) -> str:
        return f"{self.prefix}{stem}{next(self.serial)}"

    def declare(self, node: BaseNode, consumed: Sequence[Port] = (), cost: int = 1) -> None:
        for port in consumed:
            self.open.remove(port)
        self.nodes.append(node)
        ports = [(node, index) for index in range(len(node.output_dims))]
        if node.kind in ("condition", "feed_forward"):
            self.condition_ports += ports
        else:
            self.open += ports
        if node.kind not in ("input", "condition", "output"):
            self.budget -= cost

    def choose(self, items: Sequence[Any]) -> Any:
        return items[self.draw(st.integers(0, len(items) - 1))]

    def build(self, input_shapes: Sequence[Shape], condition_shapes: Sequence[Shape]) -> DrawnGraphINN:
        for shape in input_shapes:
            self.declare(Ff.InputNode(*shape, name=self.name("x")))
        for shape in condition_shapes:
            self.declare(Ff.ConditionNode(*shape, name=self.name("c")))
        if self.options.require is not None and self.depth == 0:
            self._place(self.options.require, self.open[0])
        # At least one node: hypothesis draws the bounds often, and an empty graph tests little.
        least = 0 if any(node.module is not None for node in self.nodes) else min(1, self.budget)
        for _ in range(self.draw(st.integers(least, max(self.budget, 0)))):
            if self.budget <= 0 or not self.step():
                break
        for port in list(self.open):
            self.declare(Ff.OutputNode(port, name=self.name("z")), [port])
        return DrawnGraphINN(self.nodes, force_tuple_output=self.depth > 0)

    def step(self) -> bool:
        candidates = {move: getattr(self, f"_{move}_candidates")() for move in MOVES if move in self.options.moves}
        available = [move for move, found in candidates.items() if found for _ in range(_MOVE_WEIGHTS[move])]
        if not available:
            return False
        move = self.draw(st.sampled_from(available))
        getattr(self, f"_{move}")(candidates[move])
        return True

    # -- blocks ------------------------------------------------------------------------------------------
    def _fitting_conditions(self, spec: BlockSpec, shape: Shape) -> list[Port]:
        if not spec.conditional:
            return []
        return [port for port in self.condition_ports if spec.accepts_condition(shape, _shape(port))]

    def _ports_of_shape(self, shape: Shape) -> list[Port]:
        return [port for port in self.condition_ports if _shape(port) == tuple(shape)]

    def _can_place(self, spec: BlockSpec, shape: Shape) -> bool:
        if not spec.accepts(shape):
            return False
        if spec.condition_dims is not None:
            return all(self._ports_of_shape(dims) for dims in spec.condition_dims)
        return not spec.requires_conditions or bool(self._fitting_conditions(spec, shape))

    def _draw_conditions(self, spec: BlockSpec, shape: Shape) -> list[Port]:
        if spec.condition_dims is not None:
            return [self.choose(self._ports_of_shape(dims)) for dims in spec.condition_dims]
        fitting = self._fitting_conditions(spec, shape)
        if not fitting:
            return []
        indices = st.lists(
            st.integers(0, len(fitting) - 1),
            min_size=int(spec.requires_conditions),
            max_size=min(2, len(fitting)),
            unique=True,
        )
        return [fitting[i] for i in self.draw(indices)]

    def _block_candidates(self) -> list[tuple[Port, list[BlockSpec]]]:
        found = []
        for port in self.open:
            specs = [spec for spec in self.options.blocks if self._can_place(spec, _shape(port))]
            if specs:
                found.append((port, specs))
        return found

    def _block(self, candidates: list[tuple[Port, list[BlockSpec]]]) -> None:
        port, specs = self.choose(candidates)
        self._place(self.draw(st.sampled_from(specs)), port)

    def _place(self, spec: BlockSpec, port: Port) -> None:
        shape = _shape(port)
        if not self._can_place(spec, shape):
            raise ValueError(
                f"{spec} cannot be placed on a port of shape {shape} with conditions "
                f"{[_shape(p) for p in self.condition_ports]}"
            )
        conditions = self._draw_conditions(spec, shape)
        name = self.name(spec.module.__name__)
        node = Ff.Node(port, spec.module, spec.arguments_for(shape), conditions=conditions or None, name=name)
        self.declare(node, [port])

    # -- structure ---------------------------------------------------------------------------------------
    def _split_candidates(self) -> list[Port]:
        return [port for port in self.open if _shape(port)[0] >= 2]

    def _split(self, ports: list[Port]) -> None:
        port = self.choose(ports)
        channels = _shape(port)[0]
        first = self.draw(st.integers(1, channels - 1))
        self.declare(
            Ff.Node(port, Fm.Split, {"section_sizes": [first, channels - first]}, name=self.name("Split")), [port]
        )

    def _concat_candidates(self) -> list[tuple[Port, Port]]:
        return [
            (a, b)
            for a, b in itertools.permutations(self.open, 2)
            if len(_shape(a)) == len(_shape(b)) and _shape(a)[1:] == _shape(b)[1:]
        ]

    def _concat(self, pairs: list[tuple[Port, Port]]) -> None:
        pair = self.choose(pairs)
        self.declare(Ff.Node(list(pair), Fm.Concat, {}, name=self.name("Concat")), pair)

    def _reshape_candidates(self) -> list[Port]:
        def fits(shape: Shape) -> bool:
            return is_image(shape) or (self.options.images and len(shape) == 1 and shape[0] % 4 == 0)

        return [port for port in self.open if fits(_shape(port))]

    def _reshape(self, ports: list[Port]) -> None:
        port = self.choose(ports)
        shape = _shape(port)
        if is_image(shape):
            node = Ff.Node(port, Fm.Flatten, {}, name=self.name("Flatten"))
        else:
            node = Ff.Node(port, Fm.Reshape, {"output_dims": (shape[0] // 4, 2, 2)}, name=self.name("Reshape"))
        self.declare(node, [port])

    def _downsample_candidates(self) -> list[Port]:
        return [
            port
            for port in self.open
            if is_image(_shape(port)) and _shape(port)[1] % 2 == 0 and _shape(port)[2] % 2 == 0
        ]

    def _downsample(self, ports: list[Port]) -> None:
        port = self.choose(ports)
        module = self.draw(st.sampled_from([Fm.HaarDownsampling, Fm.IRevNetDownsampling]))
        self.declare(Ff.Node(port, module, {}, name=self.name(module.__name__)), [port])

    def _feed_forward_candidates(self) -> list[Port]:
        return [port for port in self.condition_ports if len(_shape(port)) in (1, 3)]

    def _feed_forward(self, ports: list[Port]) -> None:
        port = self.choose(ports)
        shape, size = _shape(port), self.draw(st.integers(1, 4))
        if len(shape) == 1:
            layer, arguments, output = nn.Linear, {"in_features": shape[0], "out_features": size}, (size,)
        else:
            layer, arguments = nn.Conv2d, {"in_channels": shape[0], "out_channels": size, "kernel_size": 1}
            output = (size, *shape[1:])
        self.declare(Ff.FeedForwardNode(port, output, layer, arguments, name=self.name("FeedForward")))

    def _read_flow_candidates(self) -> list[tuple[Port, Port, BlockSpec]]:
        if self.budget < 2:  # the reader and the block it conditions: two nodes
            return []
        specs = [spec for spec in self.options.blocks if spec.conditional and spec.condition_dims is None]
        return [
            (read, target, spec)
            for read, target in itertools.permutations(self.open, 2)
            if (shape := _reader_shape(_shape(read), _shape(target))) is not None
            for spec in specs
            if spec.accepts(_shape(target)) and spec.accepts_condition(_shape(target), shape)
        ]

    def _read_flow(self, candidates: list[tuple[Port, Port, BlockSpec]]) -> None:
        """A feed-forward node reads one open port of the flow and conditions a block on another (FrEIA
        HEAD's pattern). Only that block reads it: a node placed later could lie downstream of whichever
        node consumes the read port, and conditioning it would make a cycle in reverse."""
        read, target, spec = self.choose(candidates)
        source, output = _shape(read), _reader_shape(_shape(read), _shape(target))
        if len(output) == 1:
            module: nn.Module = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(source), output[0]))
        else:
            module = nn.Conv2d(source[0], output[0], kernel_size=1)
        reader = Ff.FeedForwardNode(read, output, module, None, name=self.name("ReadFlow"))
        self.nodes.append(reader)
        self.budget -= 1
        node = Ff.Node(target, spec.module, spec.arguments_for(_shape(target)), conditions=reader,
                       name=self.name(spec.module.__name__))
        self.declare(node, [target])

    def _nested_candidates(self) -> list[Port]:
        return list(self.open) if self.depth < self.options.max_depth and self.budget >= 2 else []

    def _nested(self, ports: list[Port]) -> None:
        port, name = self.choose(ports), self.name("Nested")
        conditions = self.draw(
            st.lists(st.sampled_from(self.condition_ports), max_size=2, unique_by=id)
            if self.condition_ports
            else st.just([])
        )
        inner = _Builder(
            self.draw,
            self.options,
            self.draw(st.integers(1, min(self.budget - 1, 8))),
            self.depth + 1,
            prefix=f"{name}_",
        )
        inn = inner.build([_shape(port)], [_shape(c) for c in conditions])
        node = Ff.Node(port, inn, None, conditions=conditions or None, name=name)
        self.declare(node, [port], cost=1 + sum(n.module is not None for n in inner.nodes))


def _reader_shape(read: Shape, target: Shape) -> Shape | None:
    """What a feed-forward node reading a port of shape ``read`` gives a block on ``target``: a vector of 2
    for a vector, two channels of the same size for an image of the read port's size; None if neither fits."""
    if len(target) == 1:
        return (2,)
    if len(read) == 3 and len(target) == 3 and read[1:] == target[1:]:
        return (2, *target[1:])
    return None


def _shapes(
    vector_sizes: tuple[int, int], image_channels: tuple[int, int], image_sizes: Sequence[int], images: bool
) -> st.SearchStrategy[Shape]:
    vectors = st.integers(*vector_sizes).map(lambda size: (size,))
    if not images:
        return vectors
    pictures = st.tuples(st.integers(*image_channels), st.sampled_from(image_sizes), st.sampled_from(image_sizes))
    return st.one_of(vectors, pictures)


def _as_spec(block: BlockSpec | type) -> BlockSpec:
    if isinstance(block, BlockSpec):
        return block
    if isinstance(block, type) and issubclass(block, Fm.InvertibleModule):
        return BlockSpec(block)
    raise TypeError(f"blocks must be BlockSpecs or InvertibleModule classes, got {block!r}")


def graphs(
    blocks: Iterable[BlockSpec | type] | None = None,
    *,
    max_nodes: int = 30,
    inputs: tuple[int, int] = (1, 3),
    conditions: tuple[int, int] = (0, 2),
    input_shapes: st.SearchStrategy[Shape] | None = None,
    condition_shapes: st.SearchStrategy[Shape] | None = None,
    condition_dims: Sequence[Shape] | None = None,
    vector_sizes: tuple[int, int] = (2, 8),
    image_channels: tuple[int, int] = (1, 3),
    image_sizes: Sequence[int] = (2, 4),
    images: bool = True,
    moves: Iterable[str] = MOVES,
    max_depth: int = 1,
    require: BlockSpec | type | None = None,
    dtype: torch.dtype = torch.float64,
    perturbation: float = 0.2,
) -> st.SearchStrategy[DrawnGraphINN]:
    """Random valid GraphINNs, in ``dtype``, initialised on data and with perturbed parameters.

    Args:
        blocks: the blocks to place (:class:`BlockSpec` or plain classes that accept any shape);
            default :func:`default_blocks`.
        max_nodes: the most module-carrying nodes (nested graphs count their nodes).
        inputs: least and most InputNodes.
        conditions: least and most ConditionNodes (``(0, 0)`` for unconditional graphs).
        input_shapes: strategy for InputNode shapes; default vectors of ``vector_sizes`` and, if
            ``images``, images of ``image_channels`` channels and ``image_sizes`` heights and widths.
        condition_shapes: strategy for ConditionNode shapes; default small vectors and images.
        condition_dims: fixed ConditionNode shapes, instead of drawing ``conditions`` and shapes.
        vector_sizes: least and most entries of drawn vectors.
        image_channels: least and most channels of drawn images.
        image_sizes: the heights and widths to draw images from.
        images: whether to draw image inputs and conditions and to reshape vectors into images.
        moves: which moves to use, from :data:`MOVES`.
        max_depth: how deep graphs may nest (0: no nesting).
        require: a block that every graph contains, placed first on the first input.
        dtype: the graphs' dtype.
        perturbation: standard deviation of the noise added to every parameter after the data-dependent
            initialisation (a forward pass on standard normal inputs).

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=3, deadline=None)
        ... @given(graphs(max_nodes=4, images=False))
        ... def test(inn):
        ...     assert len(inn.node_list) >= 2
        >>> test()
    """
    unknown = set(moves) - set(MOVES)
    if unknown:
        raise ValueError(f"moves must be among {MOVES}, got {sorted(unknown)}")
    options = _Options(
        blocks=tuple(_as_spec(b) for b in (default_blocks() if blocks is None else blocks)),
        max_nodes=max_nodes,
        moves=frozenset(moves),
        max_depth=max_depth,
        require=None if require is None else _as_spec(require),
        images=images,
    )
    if input_shapes is None:
        input_shapes = _shapes(vector_sizes, image_channels, image_sizes, images)
    if condition_shapes is None:
        condition_shapes = _shapes((1, 4), (1, 2), image_sizes, images)

    @st.composite
    def draw_graph(draw: Callable) -> DrawnGraphINN:
        seed = draw(st.integers(0, 2**16))
        shapes_in = draw(st.lists(input_shapes, min_size=inputs[0], max_size=inputs[1]))
        if condition_dims is None:
            shapes_c = draw(st.lists(condition_shapes, min_size=conditions[0], max_size=conditions[1]))
        else:
            shapes_c = [tuple(shape) for shape in condition_dims]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            inn = _Builder(draw, options, max_nodes).build(shapes_in, shapes_c)
        return prepare_model(inn, dtype=dtype, perturbation=perturbation, seed=seed)

    return draw_graph()


_BATCH_SIZES = st.integers(1, 3)


@st.composite
def graph_inputs(
    draw: Callable,
    model: nn.Module,
    batch_size: st.SearchStrategy[int] | int = _BATCH_SIZES,
    dtype: torch.dtype = torch.float64,
    scale: float = 1.0,
    rev: bool = False,
) -> tuple[list[Tensor], list[Tensor]]:
    """Standard normal inputs and conditions (times ``scale``) that fit a graph's or block's dims.

    Args:
        model: a GraphINN or block (anything with ``dims_in``, ``dims_c`` and ``output_dims``).
        batch_size: a strategy for the batch size, or a fixed one.
        dtype: the tensors' dtype.
        scale: the tensors' standard deviation.
        rev: draw latents (shaped like the outputs) instead of inputs.

    Returns:
        ``(x, c)``: lists of tensors of shapes ``(batch, *d)`` for ``d`` in ``dims_in`` (or the output
        shapes, with ``rev``) and ``dims_c``.

    Example:
        >>> from hypothesis import find
        >>> x, c = find(graph_inputs(Fm.PermuteRandom([(4,)]), batch_size=2), lambda _: True)
        >>> [tuple(t.shape) for t in x], c
        ([(2, 4)], [])
    """
    batch = draw(batch_size) if isinstance(batch_size, st.SearchStrategy) else batch_size
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    dims = model.output_dims(model.dims_in) if rev else model.dims_in
    x = random_like_dims(dims, batch, generator, dtype, scale)
    return x, random_like_dims(model.dims_c, batch, generator, dtype, scale)
