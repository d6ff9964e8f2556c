"""A Gaussian mixture as a conditional invertible map: whitening under one (or every) mixture component."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import INDEX_SHAPE, InvertibleModule, Shape
from .permutations import single_input_shape

__all__ = ["GaussianMixtureModel"]


class GaussianMixtureModel(InvertibleModule):
    r"""Map data to a standard normal latent under a Gaussian mixture component whose parameters are conditions.

    The conditions are the mixture weights :math:`w` ``(K,)``, means :math:`\mu` ``(K, D)``, entries of the
    upper triangular Cholesky factors :math:`U_k` of the precision matrices :math:`\Sigma_k^{-1} =
    U_k^\top U_k` ``(K, D(D+1)/2)`` and, optionally, the component choice :math:`i`. Under component
    :math:`k`,

    .. math::

        z = U_k (x - \mu_k), \qquad x = \mu_k + U_k^{-1} z, \qquad
        \log|\det J| = \sum_{d} \log (U_k)_{dd},

    so :math:`z \sim \mathcal{N}(0, I)` exactly when :math:`x \sim \mathcal{N}(\mu_k, \Sigma_k)`. The first
    :math:`D` entries of each factor are the log-diagonal (hence positive diagonal); the remaining
    :math:`D(D-1)/2` fill the strict upper triangle row by row. This follows Kruse, "Training mixture density
    networks with full covariance matrices" (2020), where an external network predicts the conditions.

    The component is chosen, deterministically given the inputs, by the optional fourth condition:

    * a tensor of component indices, shape ``(batch,)`` or ``(batch, 1)``, integer-valued;
    * an ``int``, a seed: components are drawn with probabilities :math:`w` by
      :meth:`pick_mixture_component`, reproducibly;
    * ``None``: every component at once; ``x`` has shape ``(batch, K, D)``, ``z`` too, and the log-det is
      the sum over components (that of the block-diagonal map); per-component values come from
      :meth:`component_log_dets`;
    * absent (three conditions): every component if ``dims_in`` is ``[(K, D)]``, otherwise the most
      probable component, :math:`\arg\max_k w_k`.

    The triangle's index map is a buffer, so it follows ``.to(device)``. ``torch.compile(fullgraph=True)``
    traces every mode except the seeded draw, which creates a ``torch.Generator``; draw the indices with
    :meth:`pick_mixture_component` outside the compiled region and pass them instead.

    Differences from FrEIA: FrEIA keeps its triangular masks as plain attributes, which stay on the CPU when
    the module moves to a GPU; it fills the factors by boolean-mask assignment and handles chosen
    components in a Python loop over the batch. Here a buffer index map and batched gathers do that, and
    the reverse solves the triangular system instead of inverting :math:`U`. In the all-components mode the
    log-det is summed over components to honour the ``(batch,)`` contract (FrEIA returns ``(batch, K)``),
    and ``x`` is ``(batch, K, D)``; as in FrEIA, a forward ``x`` of shape ``(batch, D)`` is mapped under
    every component (broadcast to ``(batch, K, D)``: one-to-many, so its reverse gives ``K`` copies). The
    conditions may omit the component choice (argmax, see above). Drawn indices are
    clamped to ``K - 1`` against rounding in the cumulative weights. :meth:`nll_loss` uses a log-sum-exp;
    :meth:`nll_upper_bound` is Jensen's bound, a true upper bound (FrEIA's sum of log-terms is not one).
    No parameters are learned; there is nothing to initialise.

    Args:
        dims_in: ``[(D,)]`` (one component per sample) or ``[(K, D)]`` (all components).
        dims_c: ``[(K,), (K, D), (K, D*(D+1)//2)]``, optionally followed by the component choice: ``(0,)``
            (an index condition, ``ConditionNode(0)``, FrEIA's convention: integer indices, an int seed or
            None) or ``(1,)`` (indices as a float or integer tensor).

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> K, D = 3, 2
        >>> block = GaussianMixtureModel([(D,)], [(K,), (K, D), (K, D * (D + 1) // 2)])
        >>> w = GaussianMixtureModel.normalize_weights(torch.randn(4, K))
        >>> mu, U = torch.randn(4, K, D), torch.randn(4, K, D * (D + 1) // 2)
        >>> x, index = torch.randn(4, D), torch.tensor([0, 2, 1, 2])
        >>> (z,), log_det = block([x], c=[w, mu, U, index])
        >>> (x_back,), _ = block([z], c=[w, mu, U, index], rev=True)
        >>> z.shape, log_det.shape, torch.allclose(x, x_back, atol=1e-5)
        (torch.Size([4, 2]), torch.Size([4]), True)
    """

    takes_index_conditions = True  # the component choice, ConditionNode(0) as in FrEIA
    varies_shapes = True  # with the choice None, (batch, D) maps to (batch, K, D)

    def __init__(self, dims_in: Iterable[Iterable[int]], dims_c: Iterable[Iterable[int]]):
        super().__init__(dims_in, dims_c)
        if len(self.dims_c) not in (3, 4):
            raise ValueError(
                "GaussianMixtureModel needs the conditions [(K,), (K, D), (K, D*(D+1)//2)] (weights, means, "
                f"Cholesky entries), optionally followed by (1,) for component indices; got dims_c={self.dims_c}"
            )
        self.n_components, self.x_dims = self._check_shapes()
        self.all_components_by_default = len(self.dims_in[0]) == 2
        self.register_buffer("triangle_source", self._triangle_source(self.x_dims), persistent=False)

    def _check_shapes(self) -> tuple[int, int]:
        if len(single_input_shape(self, allow_conditions=True)) not in (1, 2):
            raise ValueError(f"GaussianMixtureModel takes an input of shape (D,) or (K, D), got {self.dims_in}")
        n_components, x_dims = self.dims_c[0][0], self.dims_in[0][-1]
        expected = [(n_components,), (n_components, x_dims), (n_components, x_dims * (x_dims + 1) // 2)]
        if self.dims_c[:3] != expected or self.dims_in[0] not in ((x_dims,), (n_components, x_dims)):
            raise ValueError(
                f"GaussianMixtureModel with dims_in={self.dims_in} expects the conditions {expected} "
                f"(weights, means, Cholesky entries) and an input of (D,) or (K, D), got dims_c={self.dims_c}"
            )
        if len(self.dims_c) == 4 and self.dims_c[3] != INDEX_SHAPE and math.prod(self.dims_c[3]) != 1:
            raise ValueError(f"the component-index condition must hold one entry per sample, got {self.dims_c[3]}")
        return n_components, x_dims

    @staticmethod
    def _triangle_source(x_dims: int) -> Tensor:
        """For each entry of a flat ``D x D`` factor, where to read it from ``[0, exp(log-diagonal), upper]``."""
        source = torch.zeros(x_dims, x_dims, dtype=torch.long)
        diagonal = torch.arange(x_dims)
        source[diagonal, diagonal] = 1 + diagonal
        rows, cols = torch.triu_indices(x_dims, x_dims, offset=1)
        source[rows, cols] = 1 + x_dims + torch.arange(rows.numel())
        return source.reshape(-1)

    def _precision_factors(self, U_entries: Tensor) -> Tensor:
        log_diagonal, upper = U_entries[..., : self.x_dims], U_entries[..., self.x_dims :]
        padded = torch.cat([torch.zeros_like(U_entries[..., :1]), torch.exp(log_diagonal), upper], dim=-1)
        return padded[..., self.triangle_source].unflatten(-1, (self.x_dims, self.x_dims))

    def component_log_dets(self, U_entries: Tensor) -> Tensor:
        """Per-component forward log-dets :math:`\\sum_d \\log (U_k)_{dd}`, shape ``(batch, K)``."""
        return U_entries[..., : self.x_dims].sum(dim=-1)

    @staticmethod
    def normalize_weights(w: Tensor) -> Tensor:
        """Softmax over the last dimension: unnormalised weights ``(batch, K)`` to mixture weights."""
        return F.softmax(w, dim=-1)

    @staticmethod
    def pick_mixture_component(w: Tensor, seed: int | None = None) -> Tensor:
        """Draw one component index per row of ``w`` ``(batch, K)`` with probabilities ``w``.

        An int ``seed`` makes the draw reproducible; ``None`` draws fresh randomness. Returns int64 indices.
        """
        generator = torch.Generator(device=w.device)
        if isinstance(seed, int):
            generator.manual_seed(seed)
        else:
            generator.seed()
        u = torch.rand(w.shape[0], 1, generator=generator, device=w.device, dtype=w.dtype)
        return (u > torch.cumsum(w, dim=1)).sum(dim=1).clamp(max=w.shape[1] - 1)

    @staticmethod
    def nll_loss(w: Tensor, z: Tensor, log_jacobian: Tensor) -> Tensor:
        """Mixture negative log-likelihood (up to the constant :math:`D/2 \\log 2\\pi`), per sample.

        Args:
            w: mixture weights ``(batch, K)``, positive, summing to one.
            z: latent codes of every component ``(batch, K, D)``.
            log_jacobian: per-component log-dets ``(batch, K)``, see :meth:`component_log_dets`.
        """
        return -torch.logsumexp(torch.log(w) - 0.5 * (z**2).sum(dim=-1) + log_jacobian, dim=-1)

    @staticmethod
    def nll_upper_bound(w: Tensor, z: Tensor, log_jacobian: Tensor) -> Tensor:
        """Jensen's upper bound :math:`-\\sum_k w_k \\log p_k(x)` on :meth:`nll_loss`, same arguments."""
        return -(w * (-0.5 * (z**2).sum(dim=-1) + log_jacobian)).sum(dim=-1)

    def _component_index(self, w: Tensor, choice: object) -> Tensor | None:
        """The chosen component per sample, or None for every component."""
        if choice is None:
            return None
        if isinstance(choice, Tensor):
            return choice.reshape(w.shape[0]).long()
        if isinstance(choice, int) and not isinstance(choice, bool):
            return self.pick_mixture_component(w, seed=choice)
        raise TypeError(f"the component choice must be a tensor of indices, an int seed or None, got {choice!r}")

    def _check_input_rank(self, x: Tensor, all_components: bool) -> None:
        wanted = (self.n_components, self.x_dims) if all_components else (self.x_dims,)
        if tuple(x.shape[1:]) != wanted:
            mode = "every component (choice None)" if all_components else "one component per sample"
            raise ValueError(
                f"GaussianMixtureModel maps {mode} and expects tensors of shape (batch, "
                f"{', '.join(map(str, wanted))}), got {tuple(x.shape)}"
            )

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor | int | None] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor], Tensor | None]:
        (x,) = x_or_z
        if c is None or len(c) not in (3, 4):
            raise ValueError(
                "GaussianMixtureModel needs the conditions c=[w, mu, U_entries] or [w, mu, U_entries, choice], "
                f"got {'None' if c is None else f'{len(c)} conditions'}"
            )
        w, mu, U_entries, *choice = c
        if choice:
            index = self._component_index(w, choice[0])
        else:
            index = None if self.all_components_by_default else torch.argmax(w, dim=-1)
        if index is None and not rev and tuple(x.shape[1:]) == (self.x_dims,):
            x = x.unsqueeze(1).expand(-1, self.n_components, -1)  # FrEIA: map each x under every component
        self._check_input_rank(x, all_components=index is None)
        if index is not None:
            mu = torch.take_along_dim(mu, index[:, None, None], dim=1).squeeze(1)
            U_entries = torch.take_along_dim(U_entries, index[:, None, None], dim=1).squeeze(1)
        U = self._precision_factors(U_entries)
        if rev:
            out = mu + torch.linalg.solve_triangular(U, x.unsqueeze(-1), upper=True).squeeze(-1)
        else:
            out = (U @ (x - mu).unsqueeze(-1)).squeeze(-1)
        if not jac:
            return (out,), None
        log_det = self.component_log_dets(U_entries)
        log_det = log_det if index is not None else log_det.sum(dim=-1)
        return (out,), -log_det if rev else log_det

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        return list(input_dims)
