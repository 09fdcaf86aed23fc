"""Continual backprop for the recurrent learner: generate-and-test on whole LSTM/GRU units.

A unit is hidden unit j with everything it owns: its G gate columns in the input and recurrent
weights and both biases (incoming), its row of the recurrent weights into the *other* units and
its row of the head (outgoing). After every optimizer step, as for the MLP (cbp.py):

    u_j <- η u_j + (1 - η) · mean_batch |h_j| · mean |outgoing_j|
    f_j <- η f_j + (1 - η) · mean_batch h_j

with h the final hidden state (each example's last valid step) of the step's forward pass, read
through the bias correction x / (1 - η^age). Counting, maturity and the choice of the lowest-
utility eligible units are cbp.py's own functions; the replacement is
`recurrent.replace_recurrent_units_` (incoming redrawn from the initial distribution, outgoing
zeroed, downstream biases absorbing f_j's contribution, Adam state of every rewritten entry reset).
Self-connections count as incoming: they are redrawn, not zeroed, and left out of |outgoing|.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

from .cbp import (
    GenerateAndTest,
    corrected_mean,
    init_gnt,
    restart_tracking_,
    units_to_replace,
)
from .mlp import Tensor
from .recurrent import Recurrent, RecurrentUnits, replace_recurrent_units_


def outgoing_magnitude(units: RecurrentUnits) -> Tensor:
    """mean |outgoing weights| of every unit (R, H): its recurrent row without its own gate
    columns (self-connections), and its head row."""
    p, G, H = units.params, units.n_gates, units.hidden
    w_hh, w_out = p["w_hh"].abs(), p["w_out"].abs()
    self_loops = w_hh.view(-1, H, G, H).diagonal(dim1=1, dim2=3).sum(1)  # (R, H): Σ_g |W_hh[j, g·H + j]|
    return (w_hh.sum(2) - self_loops + w_out.sum(2)) / (G * (H - 1) + w_out.shape[2])


def track_recurrent_(gnt: dict, h: Tensor, units: RecurrentUnits, decay: float) -> None:
    """Update the running utility and mean hidden value from final hidden states h (R, B, H)."""
    gnt["utility"][0].lerp_(h.abs().mean(1) * outgoing_magnitude(units), 1.0 - decay)
    gnt["mean_act"][0].lerp_(h.mean(1), 1.0 - decay)


def generate_and_test_recurrent_(
    gnt: dict, units: RecurrentUnits, h: Tensor, rate: float, decay: float, maturity: int, adam: dict | None = None
) -> None:
    """One generate-and-test step on the recurrent layer after an optimizer step."""
    track_recurrent_(gnt, h, units, decay)
    lowest = units_to_replace(gnt, 0, rate, decay, maturity)
    if lowest is not None:
        mean = corrected_mean(gnt, 0, lowest, decay)
        replace_recurrent_units_(units, lowest, gnt["rng"], mean_hidden=mean, adam=adam)
        restart_tracking_(gnt, 0, lowest)
    gnt["t"] += 1


@dataclass(frozen=True)
class ContinualBackpropRecurrent(GenerateAndTest, Recurrent):
    """The recurrent learner (LSTM/GRU, SGD or Adam) plus generate-and-test on whole hidden units.
    Defaults are Dohare's: replacement rate 1e-4, decay 0.99, maturity threshold 100."""

    kind: ClassVar[str] = "recurrent_cbp"
    version: ClassVar[str] = "1"

    def init_state(self, seeds: Sequence[int], n_in: int, n_out: int, device) -> dict:
        state = Recurrent.init_state(self, seeds, n_in, n_out, device)
        state["gnt"] = init_gnt(seeds, [self.hidden], device)
        return state

    def step(self, state: dict, x, y: Tensor) -> list[Tensor]:
        hs = Recurrent.step(self, state, x, y)
        generate_and_test_recurrent_(
            state["gnt"],
            self.hidden_units(state),
            hs[0],
            self.replacement_rate,
            self.decay,
            self.maturity,
            state.get("adam"),
        )
        return hs
