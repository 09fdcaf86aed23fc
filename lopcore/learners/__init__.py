"""Learners: one module per family, each a frozen spec dataclass with the same small interface.

    init_state(seeds, n_in, n_out, device) -> state   (tensors with a leading run axis R)
    step(state, x, y)                     online step for all R runs, in place, no host sync;
                                          the prediction is made before the update; returns
                                          the step's hidden activations
    hidden_units(state)                   per hidden layer (W_in, b_in, [(W_out, b_out)]), for
                                          unit-level algorithms (continual backprop)
    hidden_activations(state, x)          post-ReLU activations per hidden layer (correlates)
    logits(state, x)                      predictions without updating (test accuracy)
    parameters(state)                     (weight matrices, biases) for the weight metrics
    to_dict()                             options as stored in a run spec (its store key); options
                                          added later are left out at their defaults
    block_period()                        (permuted-image MLPs) after how many steps the step's
                                          kernels repeat, or None: whether a GPU may record blocks of
                                          steps as CUDA graphs (lopcore.blocks)

The recurrent learner takes sequence batches (see `recurrent.Sequences`) and describes its
hidden units as whole LSTM/GRU units (`recurrent.RecurrentUnits`); continual backprop on those
units is `recurrent_cbp.ContinualBackpropRecurrent`, and the persistent internal state on an LSTM/GRU
`persistent_recurrent.PersistentRecurrent`.
"""

from .cbp import ContinualBackprop, PersistentStateCBP
from .mlp import Backprop
from .persistent import PersistentState
from .persistent_recurrent import PersistentRecurrent
from .recurrent import Recurrent
from .recurrent_cbp import ContinualBackpropRecurrent

LEARNERS = {
    cls.kind: cls
    for cls in (
        Backprop,
        PersistentState,
        ContinualBackprop,
        PersistentStateCBP,
        Recurrent,
        ContinualBackpropRecurrent,
        PersistentRecurrent,
    )
}


def make_learner(kind: str, **options):
    """Build a learner spec by name, e.g. make_learner("persistent", n=2, d_int=128)."""
    if kind not in LEARNERS:
        raise ValueError(f"unknown learner {kind!r}; valid learners: {', '.join(sorted(LEARNERS))}")
    return LEARNERS[kind](**options)


__all__ = [
    "Backprop",
    "PersistentState",
    "ContinualBackprop",
    "PersistentStateCBP",
    "Recurrent",
    "ContinualBackpropRecurrent",
    "PersistentRecurrent",
    "LEARNERS",
    "make_learner",
]
