"""Flow: a graph of invertible blocks and one latent distribution per output, as a distribution on the data."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from freia_graph.distributions.bases import LatentDistribution, StandardNormal, WrappedDistribution
from freia_graph.framework.calls import as_tensor_list
from freia_graph.framework.graph_inn import GraphINN
from freia_graph.modules._linalg import up_cast
from freia_graph.modules.base import InvertibleModule

__all__ = ["Flow", "nll_loss"]

Tensors = Tensor | Sequence[Tensor] | Mapping[str, Tensor]


class Flow(nn.Module, Distribution):
    r"""The distribution of ``x = f⁻¹(z)``, where ``f`` is an invertible graph and every output of ``f`` has a base.

    The graph maps data to latents (its forward direction), so by the change of variables

    .. math:: \log p(x) = \sum_k \log p_k\big(f_k(x)\big) + \log|\det J_f(x)|

    summed over every output ``k`` (every scale of a multi-scale graph): none can be left out. Sampling
    draws each latent from its base and runs the graph in reverse.

    A ``Flow`` is a ``torch.distributions.Distribution`` and an ``nn.Module``: ``.to()``, ``.double()``,
    ``state_dict`` and ``DistributedDataParallel`` see the graph and the bases, and calling it
    (``flow(x, c)``) returns :meth:`log_prob`, which is what DDP runs.

    Args:
        inn: a :class:`~freia_graph.GraphINN`, :class:`~freia_graph.SequenceINN` or any invertible module.
        base: the latent distributions. ``None`` (a standard normal for every output); a
            :class:`LatentDistribution` class, built for each output's shape (e.g. ``DiagonalGaussian``
            for a learnable mean and scale); or one base per output, as a list in the order of the
            OutputNodes or a dict keyed by output node name, each a ``LatentDistribution`` instance, a
            class, or any ``torch.distributions.Distribution`` whose ``event_shape`` is the output's shape.
            Bases built here (from ``None`` or a class) take the dtype and device of the graph's first
            floating-point parameter or buffer; ``flow.to(...)`` moves everything later.

    Example:
        >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> inn = Ff.SequenceINN(2)
        >>> inn.append(Fm.ActNorm)
        >>> flow = Flow(inn)
        >>> flow.log_prob(torch.zeros(3, 2)).shape, flow.sample(5).shape
        (torch.Size([3]), torch.Size([5, 2]))
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, inn: InvertibleModule, base: Any = None):
        nn.Module.__init__(self)
        if not isinstance(inn, InvertibleModule):
            raise TypeError(f"Flow needs a GraphINN, SequenceINN or other InvertibleModule, got {type(inn).__name__}")
        self.inn = inn
        shapes = [tuple(shape) for shape in inn.output_dims(inn.dims_in)]
        output_names, self._condition_names = _port_names(inn)
        self.bases = nn.ModuleList(_build_bases(base, output_names, shapes, _floating_tensor(inn)))
        self._tuple_output = len(shapes) > 1 or bool(getattr(inn, "force_tuple_output", True))
        self._condition_shapes = [tuple(shape) for shape in inn.dims_c]
        self.input_shapes = [torch.Size(shape) for shape in inn.dims_in]
        event_shape = self.input_shapes[0] if len(self.input_shapes) == 1 else torch.Size()
        Distribution.__init__(self, torch.Size(), event_shape, validate_args=False)

    def forward(self, x: Tensors, c: Tensors | None = None) -> Tensor:
        """The same as :meth:`log_prob` (so that ``DistributedDataParallel(flow)(x, c)`` computes it)."""
        return self.log_prob(x, c)

    def log_prob(self, x: Tensors, c: Tensors | None = None) -> Tensor:
        """The log-density of each sample, shape ``(batch,)``.

        Args:
            x: the data: a tensor, or for graphs with several inputs a list (in InputNode order) or a
                dict keyed by input node name.
            c: the conditions, as the graph takes them (a tensor, a list or a dict), one per sample.
        """
        return self.log_prob_and_latents(x, c)[0]

    def log_prob_and_latents(self, x: Tensors, c: Tensors | None = None) -> tuple[Tensor, Any]:
        """The log-density and the latents of one forward pass: ``(log_prob, z)``.

        ``z`` is what the graph returns: a tensor, or a tuple for several outputs.

        Example:
            >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
            >>> inn = Ff.SequenceINN(2)
            >>> inn.append(Fm.PermuteRandom, seed=0)
            >>> log_prob, z = Flow(inn).log_prob_and_latents(torch.tensor([[1.0, 2.0]]))
            >>> log_prob, z.shape
            (tensor([-4.3379]), torch.Size([1, 2]))
        """
        z, log_det = self.inn(x, c, False, True)
        # half-precision latents (autocast, a bfloat16 model) are scored in float32: a sum over every
        # element, rounded to bfloat16, would be off by several nats
        latents = up_cast(z if self._tuple_output else (z,))
        total = log_det
        for base, latent in zip(self.bases, latents):
            total = total + base.log_prob(latent)
        return total, z

    def rsample(self, n: int | Sequence[int], c: Tensors | None = None, temperature: float = 1.0) -> Any:
        """``n`` samples, differentiable in the parameters of the graph and of the bases.

        Args:
            n: the number of samples (an int, or a shape ``(n,)``).
            c: the conditions: each either one per sample (batch ``n``), or a single one (without the
                batch dimension, or with batch 1) shared by every sample.
            temperature: multiplies the bases' standard deviations (Glow's temperature; < 1 gives
                samples closer to the modes).

        Returns:
            A tensor, or a tuple in InputNode order for graphs with several inputs.
        """
        return self._sample(n, c, temperature, with_log_prob=False)[0]

    def sample(self, n: int | Sequence[int], c: Tensors | None = None, temperature: float = 1.0) -> Any:
        """Like :meth:`rsample`, without gradients.

        Example:
            >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
            >>> inn = Ff.SequenceINN(2)
            >>> inn.append(Fm.LearnedElementwiseScaling)
            >>> Flow(inn).sample(4, temperature=0.5).shape
            torch.Size([4, 2])
        """
        with torch.no_grad():
            return self._sample(n, c, temperature, with_log_prob=False)[0]

    def rsample_with_log_prob(self, n: int | Sequence[int], c: Tensors | None = None,
                              temperature: float = 1.0) -> tuple[Any, Tensor]:
        """Like :meth:`sample_with_log_prob`, differentiable (e.g. for training by reverse KL)."""
        return self._sample(n, c, temperature, with_log_prob=True)

    def sample_with_log_prob(self, n: int | Sequence[int], c: Tensors | None = None,
                             temperature: float = 1.0) -> tuple[Any, Tensor]:
        """Samples and the log-density they were drawn with, in one reverse pass (e.g. for importance weights).

        The log-density is that of the distribution sampled from: the flow's :meth:`log_prob` at
        ``temperature=1``, and the tempered distribution's otherwise. Without gradients.

        Returns:
            ``(x, log_prob)``, ``log_prob`` of shape ``(n,)``.

        Example:
            >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
            >>> inn = Ff.SequenceINN(2)
            >>> inn.append(Fm.LearnedElementwiseScaling)
            >>> flow = Flow(inn)
            >>> x, log_prob = flow.sample_with_log_prob(3)
            >>> torch.allclose(log_prob, flow.log_prob(x))
            True
        """
        with torch.no_grad():
            return self._sample(n, c, temperature, with_log_prob=True)

    def _sample(self, n: Any, c: Tensors | None, temperature: float, with_log_prob: bool) -> tuple[Any, Any]:
        count = n if type(n) is int and n > 0 else _sample_count(n)
        if temperature != 1.0 and not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        conditions = None if c is None else self._broadcast_conditions(c, count)
        latents = [base.sample(count, temperature) for base in self.bases]
        x, log_det = self.inn(latents, conditions, True, with_log_prob)
        if not with_log_prob:
            return x, None
        total = -log_det
        for base, latent in zip(self.bases, latents):
            total = total + base.log_prob(latent, temperature)
        return x, total

    def _broadcast_conditions(self, c: Tensors, count: int) -> list[Tensor]:
        conditions = as_tensor_list(c, self._condition_names, "condition")
        for index, shape in enumerate(self._condition_shapes):
            tensor = conditions[index]
            if not isinstance(tensor, Tensor):
                raise TypeError(f"condition '{self._condition_names[index]}' must be a tensor, "
                                f"got {type(tensor).__name__}")
            if tensor.dim() == len(shape) or tensor.shape[0] == 1 != count:  # one condition for every sample
                conditions[index] = self._expand(index, tensor, count)
        return conditions

    def _expand(self, index: int, tensor: Tensor, count: int) -> Tensor:
        shape = self._condition_shapes[index]
        if tensor.shape[-len(shape):] != shape:
            raise ValueError(f"condition '{self._condition_names[index]}' has shape {tuple(tensor.shape)}; give "
                             f"one per sample, shape ({count}, {', '.join(map(str, shape))}), or one for all, "
                             f"shape {shape}")
        return tensor.expand(count, *shape)

    def bits_per_dim(self, x: Tensors, c: Tensors | None = None, dequantization: str = "uniform",
                     levels: int = 256) -> Tensor:
        r"""The negative log-likelihood of discrete data (images) in bits per dimension, per sample.

        The standard definition for 8-bit images: with ``dequantization="uniform"``, ``x`` holds integer
        pixel values in ``{0, …, levels - 1}`` (any float dtype); each gets uniform noise
        :math:`u \sim U[0, 1)` and is scaled into :math:`[0, 1)`, and the flow models
        :math:`y = (x + u) / \text{levels}`. The density of ``x`` on the original integer grid is that of
        ``y`` divided by :math:`\text{levels}^D`, so

        .. math:: \text{bits/dim} = \frac{-\log p(y) + D \log(\text{levels})}{D \log 2}

        (:math:`\log 256` per dimension for 8 bits). With ``dequantization="none"``, ``x`` is already the
        dequantised and scaled :math:`y`. The mean over a test set is the number papers report.

        Args:
            x, c: as for :meth:`log_prob`.
            dequantization: ``"uniform"`` or ``"none"``.
            levels: the number of discrete values per dimension (256 for 8 bits).

        Returns:
            bits per dimension, shape ``(batch,)``.

        Example:
            >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
            >>> inn = Ff.SequenceINN(1, 2, 2)
            >>> inn.append(Fm.ActNorm)
            >>> Flow(inn).bits_per_dim(torch.randint(0, 256, (5, 1, 2, 2)).float()).shape
            torch.Size([5])
        """
        if dequantization not in ("uniform", "none"):
            raise ValueError(f"dequantization must be 'uniform' or 'none', got {dequantization!r}")
        if not isinstance(levels, int) or levels < 2:
            raise ValueError(f"levels must be an int ≥ 2 (256 for 8-bit data), got {levels!r}")
        if dequantization == "uniform":
            x = _map_tensors(x, lambda t: (t + torch.rand_like(t)) / levels)
        dims = _dimensions(x)
        return (dims * math.log(levels) - self.log_prob(x, c)) / (dims * math.log(2))

    def extra_repr(self) -> str:
        return f"event_shape={tuple(self.event_shape)}" if self.event_shape else f"inputs={self.input_shapes}"


def nll_loss(flow: nn.Module, x: Tensors, c: Tensors | None = None) -> Tensor:
    """The mean negative log-likelihood per dimension, in nats: ``-flow(x, c).mean() / D``.

    ``D`` is the number of elements of one sample (of all inputs together). Works with a
    ``DistributedDataParallel``-wrapped :class:`Flow` too (it calls the flow).

    Example:
        >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> inn = Ff.SequenceINN(2)
        >>> inn.append(Fm.PermuteRandom, seed=0)
        >>> nll_loss(Flow(inn), torch.zeros(4, 2))  # ½·log 2π for a standard normal at 0
        tensor(0.9189)
    """
    return -flow(x, c).mean() / _dimensions(x)


def _dimensions(x: Tensors) -> int:
    tensors = x.values() if isinstance(x, Mapping) else [x] if isinstance(x, Tensor) else x
    return sum(tensor[0].numel() for tensor in tensors)


def _map_tensors(x: Tensors, fn) -> Tensors:
    if isinstance(x, Tensor):
        return fn(x)
    if isinstance(x, Mapping):
        return {name: fn(tensor) for name, tensor in x.items()}
    return [fn(tensor) for tensor in x]


def _sample_count(n: Any) -> int:
    if isinstance(n, (tuple, list, torch.Size)) and len(n) == 1:
        n = n[0]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of samples must be a positive int or a shape (n,), got {n!r}")
    return n


def _port_names(inn: InvertibleModule) -> tuple[list[str], list[str]]:
    """The names of the graph's outputs and conditions: node names for a GraphINN, indices otherwise."""
    if isinstance(inn, GraphINN):
        return [node.name for node in inn.output_nodes], [node.name for node in inn.condition_nodes]
    n_outputs = len(inn.output_dims(inn.dims_in))
    return [str(index) for index in range(n_outputs)], [f"c[{index}]" for index in range(len(inn.dims_c))]


def _floating_tensor(module: nn.Module) -> Tensor | None:
    """A floating-point parameter or buffer of ``module``, whose dtype and device new bases take."""
    tensors = (tensor for tensors in (module.parameters(), module.buffers()) for tensor in tensors)
    return next((tensor for tensor in tensors if tensor.is_floating_point()), None)


def _build_bases(spec: Any, outputs: list[str], shapes: list[tuple[int, ...]],
                 like: Tensor | None) -> list[LatentDistribution]:
    """One latent distribution per output, from the ``base`` argument of :class:`Flow`.

    Bases built here (from None or a class) take the dtype and device of the tensor ``like``.
    """
    if spec is None or isinstance(spec, type):
        specs = [spec] * len(shapes)
    elif isinstance(spec, Mapping):
        unknown, missing = sorted(set(spec) - set(outputs)), [name for name in outputs if name not in spec]
        if unknown or missing:
            raise ValueError(f"base: a dict needs one entry per output node {outputs}; missing {missing}, "
                             f"unknown {unknown}")
        specs = [spec[name] for name in outputs]
    elif isinstance(spec, (list, tuple, nn.ModuleList)):
        specs = list(spec)
        if len(specs) != len(shapes):
            raise ValueError(f"base: got {len(specs)} base(s) for {len(shapes)} output(s) {outputs}; give one "
                             "per output, in OutputNode order")
    else:
        if len(shapes) != 1:
            raise ValueError(f"base: the graph has {len(shapes)} outputs {outputs}; give one base per output "
                             "(a list or a dict keyed by output node name), or a class to build one for each")
        specs = [spec]
    return [_build_base(item, f"output '{name}'", shape, like) for item, name, shape in zip(specs, outputs, shapes)]


def _build_base(spec: Any, output: str, shape: tuple[int, ...], like: Tensor | None) -> LatentDistribution:
    if spec is None or isinstance(spec, type) and issubclass(spec, LatentDistribution):
        base = (spec or StandardNormal)(*shape)
        return base if like is None else base.to(like)
    if isinstance(spec, LatentDistribution):
        base = spec
    elif isinstance(spec, Distribution):
        base = WrappedDistribution(spec)
    else:
        raise TypeError(f"base for {output}: expected a LatentDistribution (instance or class) or a "
                        f"torch.distributions.Distribution, got {spec!r}")
    if tuple(base.shape) != shape:
        raise ValueError(f"base for {output}: its event shape {tuple(base.shape)} does not match the output's "
                         f"shape {shape}")
    return base
