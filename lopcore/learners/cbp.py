"""Continual backprop (Dohare et al. 2021, 2024): SGD plus generate-and-test on hidden units.

After every SGD step, for each hidden layer of width w:

1. *Track.* Each unit's running contribution utility u and running mean activation f,
       u <- η u + (1 - η) · mean_batch(a) · mean_k |W_out[unit, k]|      (a >= 0 after ReLU)
       f <- η f + (1 - η) · mean_batch(a),
   read through the bias correction x / (1 - η^age) (age: steps since the unit was born).
2. *Count.* Units older than the maturity threshold m are eligible. A replacement accumulator
   gains ρ · #eligible per step; when it reaches 1, int(accumulator) units are replaced and
   subtracted from it (ρ = 1e-4 and w = 100 make one replacement per layer every 100 steps).
3. *Replace* the eligible units of lowest corrected utility: incoming weights re-drawn from the
   initial distribution, incoming bias 0, outgoing weights 0, age 0, u = f = 0; and the next
   layer's bias absorbs the removed unit's mean contribution, b_out += f_corrected · W_out[unit],
   so the network's output is unchanged for inputs on which the unit sat at its mean. (The
   reference code zeroes f before it reads it, which makes that correction a no-op; we do it.)
   Plain SGD has no optimizer state to reset. With Adam, as in Dohare's code, the first and second
   moments of the replaced unit's incoming weights and bias and of its outgoing weights are zeroed;
   the step count (shared by all weights, hence by all runs) is kept, so the moments of a new
   weight restart from zero under the current bias correction.

Vectorized over the run axis without host syncs: every run starts with all units the same age
and replaces the same *number* of units at the same steps (which units differs), so the count
is plain Python bookkeeping, identical for all runs; utilities, ages and the choice of units
are tensors. New weights come from per-run generators, so a run's numbers do not depend on the
other runs of its group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch

from .mitigations import run_generators
from .mlp import Backprop, Tensor
from .persistent import PersistentState


def init_gnt(seeds: Sequence[int], widths: Sequence[int], device) -> dict:
    """Generate-and-test state for hidden layers of these widths, for R = len(seeds) runs."""
    R = len(seeds)
    return {
        "utility": [torch.zeros(R, w, device=device) for w in widths],
        "mean_act": [torch.zeros(R, w, device=device) for w in widths],
        "birth": [torch.full((R, w), -1.0, device=device) for w in widths],  # age = t - birth
        "t": 0,
        "accumulated": [0.0 for _ in widths],
        "recent": [[] for _ in widths],  # [step, count] of replacements not yet mature
        "rng": run_generators(seeds, "cbp", device),
    }


def eligible_count(gnt: dict, layer: int, width: int, maturity: int) -> int:
    """Units of `layer` older than `maturity` at step t: the same number in every run."""
    t, recent = gnt["t"], gnt["recent"][layer]
    recent[:] = [[s, c] for s, c in recent if t - s <= maturity]
    return 0 if t + 1 <= maturity else width - sum(c for _, c in recent)


def units_to_replace(gnt: dict, i: int, rate: float, decay: float, maturity: int) -> Tensor | None:
    """Count and choose (steps 2 and 3) in layer `i` at step t: the eligible units (R, k) of lowest
    bias-corrected utility to replace now, or None. The count k is the same in every run."""
    t, utility = gnt["t"], gnt["utility"][i]
    eligible = eligible_count(gnt, i, utility.shape[1], maturity)
    gnt["accumulated"][i] += rate * eligible
    k = min(int(gnt["accumulated"][i]), eligible)  # never more than are eligible
    if k < 1:
        return None
    gnt["accumulated"][i] -= k
    age = t - gnt["birth"][i]
    corrected = utility / (1.0 - torch.pow(decay, age))
    score = torch.where(age > maturity, corrected, torch.inf)
    gnt["recent"][i].append([t, k])
    return torch.sort(score, dim=1, stable=True).indices[:, :k]  # ties (dead units): lowest index first


def corrected_mean(gnt: dict, i: int, idx: Tensor, decay: float) -> Tensor:
    """Bias-corrected running mean activation (R, k) of units idx of layer `i`."""
    age = (gnt["t"] - gnt["birth"][i]).gather(1, idx)
    return gnt["mean_act"][i].gather(1, idx) / (1.0 - torch.pow(decay, age))


def restart_tracking_(gnt: dict, i: int, idx: Tensor) -> None:
    """Units idx of layer `i` are new: utility and mean 0, born now."""
    for name, value in (("utility", 0.0), ("mean_act", 0.0), ("birth", float(gnt["t"]))):
        gnt[name][i].scatter_(1, idx, value)


def track_(utility: Tensor, mean_act: Tensor, acts: Tensor, outgoing: list[Tensor], decay: float) -> None:
    """Update one layer's running utility and mean activation from its batch activations (R, B, w)."""
    batch_mean = acts.mean(1)
    # vector_norm(ord=1) sums each row sequentially in one scalar loop: on a CPU about a quarter of a
    # CBP step, 4x slower than abs().sum(), which rounds differently. Switching would change every
    # stored CBP run's numbers (a version bump and a recompute), so it waits for the next such bump.
    out_mag = sum(torch.linalg.vector_norm(w, 1, dim=2) for w in outgoing) / sum(w.shape[2] for w in outgoing)
    utility.lerp_(batch_mean * out_mag, 1.0 - decay)
    mean_act.lerp_(batch_mean, 1.0 - decay)


def draw_incoming(rngs: list[torch.Generator], fan_in: int, k: int, scheme: str, device) -> Tensor:
    """(R, fan_in, k) fresh incoming weights from the initial distribution, one generator per run."""
    if scheme == "pytorch":
        bound = fan_in**-0.5
        draws = [torch.rand(fan_in, k, generator=g, device=device) * (2 * bound) - bound for g in rngs]
    else:
        draws = [torch.randn(fan_in, k, generator=g, device=device) * (2.0 / fan_in) ** 0.5 for g in rngs]
    return torch.stack(draws)


def reset_moments_(wiring: tuple, idx: Tensor) -> None:
    """Zero an optimizer state wired like a layer (see `replace_units_`) at units `idx` (R, k): the
    incoming weights' columns, the incoming bias and the outgoing weights' rows (not the next bias)."""
    m_in, mb_in, outs = wiring
    m_in.scatter_(2, idx[:, None, :].expand(-1, m_in.shape[1], -1), 0.0)
    mb_in.scatter_(2, idx[:, None, :], 0.0)
    for m_out, _ in outs:
        m_out.scatter_(1, idx[..., None].expand(-1, -1, m_out.shape[2]), 0.0)


def replace_units_(
    layer: tuple,
    idx: Tensor,
    gnt: dict,
    i: int,
    decay: float,
    scheme: str,
    bias_correction: bool = True,
    moments: Sequence[tuple] = (),
) -> None:
    """Replace units `idx` (R, k) of hidden layer `i`, whose wiring is `layer`
    = (W_in (R, fan_in, w), b_in (R, 1, w), [(W_out (R, w, out), b_out (R, 1, out)), ...]);
    W_in may be a tuple of matrices that stacked along the fan-in axis are the layer's incoming
    weights (the persistent state's x and h parts): the new weights are drawn for the whole fan-in,
    as for one matrix. `moments` are optimizer states wired the same way (Adam's m and v), reset at
    those units."""
    w_in, b_in, outs = layer
    mean = corrected_mean(gnt, i, idx, decay)
    for w_out, b_out in outs:
        rows = idx[..., None].expand(-1, -1, w_out.shape[2])
        if bias_correction:
            b_out += (mean[..., None] * w_out.gather(1, rows)).sum(1, keepdim=True)
        w_out.scatter_(1, rows, 0.0)
    parts = w_in if isinstance(w_in, tuple) else (w_in,)
    fan_in = sum(part.shape[1] for part in parts)
    new = draw_incoming(gnt["rng"], fan_in, idx.shape[1], scheme, parts[0].device).to(parts[0].dtype)
    for part, rows in zip(parts, new.split([part.shape[1] for part in parts], dim=1)):
        part.scatter_(2, idx[:, None, :].expand(-1, part.shape[1], -1), rows)
    b_in.scatter_(2, idx[:, None, :], 0.0)
    restart_tracking_(gnt, i, idx)
    for wiring in moments:
        reset_moments_(wiring, idx)


def generate_and_test_(
    gnt: dict,
    layers: list[tuple],
    acts: Sequence[Tensor],
    rate: float,
    decay: float,
    maturity: int,
    scheme: str,
    moments: Sequence[Sequence[tuple]] | None = None,
) -> None:
    """One generate-and-test step after an SGD step; `acts` are the step's hidden activations and
    `moments` (per layer, optional) the optimizer states to reset with a replaced unit."""
    for i, (layer, a) in enumerate(zip(layers, acts)):
        track_(gnt["utility"][i], gnt["mean_act"][i], a, [w for w, _ in layer[2]], decay)
        lowest = units_to_replace(gnt, i, rate, decay, maturity)
        if lowest is not None:
            replace_units_(layer, lowest, gnt, i, decay, scheme, moments=moments[i] if moments else ())
    gnt["t"] += 1


@dataclass(frozen=True)
class GenerateAndTest:
    """Adds continual backprop's generate-and-test to a learner with `hidden_units(state)`.
    Defaults are Dohare's: replacement rate 1e-4, decay 0.99, maturity threshold 100."""

    replacement_rate: float = 1e-4
    decay: float = 0.99
    maturity: int = 100

    def __post_init__(self):
        getattr(super(), "__post_init__", lambda: None)()
        if not 0.0 <= self.replacement_rate < 1.0:
            raise ValueError(f"replacement_rate must be in [0, 1), got {self.replacement_rate!r}")
        if not 0.0 < self.decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {self.decay!r}")
        if not isinstance(self.maturity, int) or isinstance(self.maturity, bool) or self.maturity < 0:
            raise ValueError(f"maturity must be an integer >= 0, got {self.maturity!r}")
        if getattr(self, "online_norm", False):  # a new unit would inherit its predecessor's statistics
            raise ValueError("online_norm is not supported with continual backprop (valid: online_norm=False)")

    def init_state(self, seeds: Sequence[int], n_in: int, n_out: int, device) -> dict:
        state = super().init_state(seeds, n_in, n_out, device)
        state["gnt"] = init_gnt(seeds, self.hidden, device)
        return state

    def block_period(self) -> None:
        """None: which steps replace units is decided on the host, and new weights come from per-run
        generators, so its steps run eagerly (see lopcore.blocks)."""
        return None

    def step(self, state: dict, x: Tensor, y: Tensor) -> list[Tensor]:
        acts = super().step(state, x, y)
        moments = self.optimizer_units(state) if hasattr(self, "optimizer_units") else None
        generate_and_test_(
            state["gnt"],
            self.hidden_units(state),
            acts,
            self.replacement_rate,
            self.decay,
            self.maturity,
            self.init,
            moments,
        )
        return acts


@dataclass(frozen=True)
class ContinualBackprop(GenerateAndTest, Backprop):
    """Continual backprop: the baseline MLP and SGD, plus generate-and-test (Dohare et al.)."""

    kind: ClassVar[str] = "cbp"
    version: ClassVar[str] = "1"


@dataclass(frozen=True)
class PersistentStateCBP(GenerateAndTest, PersistentState):
    """The persistent internal state learner with continual backprop's generate-and-test on its
    hidden units (the last layer's outgoing weights are the task head's and the state head's)."""

    kind: ClassVar[str] = "persistent_cbp"
    version: ClassVar[str] = "1"
