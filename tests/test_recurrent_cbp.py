"""Continual backprop on whole LSTM/GRU units, and Shrink & Perturb / L2 on the recurrent learner."""

import pytest
import torch
from test_recurrent import CELL_NAMES, N_IN, N_OUT, sequence_batches, together_and_alone

from lopcore.learners import ContinualBackpropRecurrent, Recurrent
from lopcore.learners.mitigations import run_generators
from lopcore.learners.recurrent_cbp import generate_and_test_recurrent_, outgoing_magnitude
from lopcore.sequences import Sequences
from lopcore.store import spec_key

H = 6


def silence_(state, j, incoming=True):
    """Cut unit j off: no outgoing weights (self-connections aside) and, with `incoming`, no inputs."""
    p, G = state["params"], p_gates(state)
    own = torch.arange(G) * H + j
    keep_self = p["w_hh"][:, j, own].clone()
    p["w_hh"][:, j, :] = 0.0
    p["w_hh"][:, j, own] = keep_self
    p["w_out"][:, j, :] = 0.0
    if incoming:
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            p[name][:, :, own] = 0.0


def p_gates(state):
    return state["params"]["w_ih"].shape[2] // H


def steps(learner, state, n, seed=0, runs=1):
    xs, lengths, ys = sequence_batches(seed, n, runs=runs)
    for x, length, y in zip(xs, lengths, ys):
        learner.step(state, Sequences(x, length), y)


def test_outgoing_magnitude_leaves_out_self_connections():
    learner = Recurrent(cell="gru", hidden=H)
    state = learner.init_state([0], N_IN, N_OUT, "cpu")
    silence_(state, 2, incoming=False)
    mag = outgoing_magnitude(learner.hidden_units(state))
    assert mag[0, 2] == 0 and (mag[0, [0, 1, 3, 4, 5]] > 0).all()


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_the_silent_disconnected_unit_is_the_one_replaced(cell):
    learner = ContinualBackpropRecurrent(
        cell=cell, hidden=H, optimizer="sgd", lr=0.05, replacement_rate=0.2, maturity=2
    )
    state = learner.init_state([0, 1], N_IN, N_OUT, "cpu")
    silence_(state, 4)
    steps(learner, state, 3, runs=2)  # eligible from t = 2: 6 · 0.2 = 1.2 -> one unit at t = 2
    assert state["gnt"]["birth"][0][:, 4].tolist() == [2.0, 2.0]
    assert (state["gnt"]["birth"][0][:, [0, 1, 2, 3, 5]] == -1).all()
    own = torch.arange(p_gates(state)) * H + 4
    assert (state["params"]["w_ih"][:, :, own] != 0).all()  # incoming redrawn
    assert (state["params"]["w_out"][:, 4] == 0).all()  # outgoing still zero


def test_replaced_units_are_protected_until_mature():
    maturity = 4
    learner = ContinualBackpropRecurrent(
        cell="gru", hidden=H, optimizer="sgd", lr=0.05, replacement_rate=0.5, maturity=maturity
    )
    state = learner.init_state([0, 1], N_IN, N_OUT, "cpu")
    xs, lengths, ys = sequence_batches(1, 40, runs=2)
    replaced = 0
    for x, length, y in zip(xs, lengths, ys):
        t, birth = state["gnt"]["t"], state["gnt"]["birth"][0].clone()
        learner.step(state, Sequences(x, length), y)
        new = state["gnt"]["birth"][0] != birth
        assert (t - birth[new] > maturity).all()
        replaced += int(new.sum())
    assert replaced > H  # units were replaced more than once, each only once mature


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_runs_together_equal_runs_alone(optimizer):
    learner = ContinualBackpropRecurrent(
        cell="lstm", hidden=H, optimizer=optimizer, lr=0.02, replacement_rate=0.3, maturity=3, noise_std=1e-3
    )
    together, each = together_and_alone(learner, [5, 6, 7], *sequence_batches(3, 25, runs=3))
    for r, alone in enumerate(each):
        assert torch.equal(together["gnt"]["birth"][0][r], alone["gnt"]["birth"][0][0])
        for name, p in alone["params"].items():
            torch.testing.assert_close(together["params"][name][r], p[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_output_is_unchanged_when_a_unit_without_outgoing_weights_is_replaced(cell):
    learner = Recurrent(cell=cell, hidden=H)
    state = learner.init_state([0, 1], N_IN, N_OUT, "cpu")
    silence_(state, 1, incoming=False)  # it still computes, but nothing reads it
    from lopcore.learners.cbp import init_gnt

    gnt = init_gnt([0, 1], [H], "cpu")
    gnt["t"] = 10  # every unit mature, born at -1
    xs, lengths, _ = sequence_batches(4, 1, runs=2)
    x = Sequences(xs[0], lengths[0])
    before = learner.logits(state, x)
    h = learner.hidden_activations(state, x)[0]
    adam = state["adam"]
    generate_and_test_recurrent_(gnt, learner.hidden_units(state), h, rate=1 / H, decay=0.99, maturity=5, adam=adam)
    assert gnt["birth"][0][:, 1].tolist() == [10.0, 10.0]  # it, the one of zero utility, was replaced
    torch.testing.assert_close(learner.logits(state, x), before, atol=1e-6, rtol=0)
    own = torch.arange(p_gates(state)) * H + 1
    assert (adam["w_ih"]["t"][:, :, own] == 0).all()


# --- Shrink & Perturb, L2 -----------------------------------------------------------------------


def trained(learner, seeds=(0, 1), n=8):
    state = learner.init_state(list(seeds), N_IN, N_OUT, "cpu")
    steps(learner, state, n, runs=len(seeds))
    return state["params"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_shrink_and_perturb_without_noise_is_l2(optimizer):
    sp = trained(Recurrent(hidden=H, optimizer=optimizer, shrink=1e-2))
    l2 = trained(Recurrent(hidden=H, optimizer=optimizer, weight_decay=1e-2))
    plain = trained(Recurrent(hidden=H, optimizer=optimizer))
    assert all(torch.equal(sp[k], l2[k]) for k in sp) and not torch.equal(sp["w_hh"], plain["w_hh"])


def test_shrink_and_perturb_switched_off_is_plain_with_the_same_key():
    off, plain = Recurrent(hidden=H, shrink=0, noise_std=0), Recurrent(hidden=H)
    assert off.to_dict() == plain.to_dict() and "shrink" not in plain.to_dict()
    a, b = trained(off), trained(plain)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_perturb_adds_the_runs_own_gaussian_noise_after_the_update():
    """One SGD step of S&P equals the L2 step plus σ·N(0, 1) from the run's 'perturb' generator."""
    sigma = 0.01
    sp, l2 = (
        Recurrent(hidden=H, optimizer="sgd", shrink=1e-3, noise_std=sigma),
        Recurrent(hidden=H, optimizer="sgd", weight_decay=1e-3),
    )
    a, b = trained(sp, n=1), trained(l2, n=1)
    sizes = [p[0].numel() for p in b.values()]
    noise = torch.stack([torch.randn(sum(sizes), generator=g) for g in run_generators([0, 1], "perturb", "cpu")])
    for (name, p), n in zip(b.items(), noise.split(sizes, dim=1)):
        torch.testing.assert_close(a[name], p + sigma * n.view_as(p), atol=1e-7, rtol=0)


def test_mitigation_options_are_validated_and_keyed():
    with pytest.raises(ValueError, match="not both"):
        Recurrent(weight_decay=1e-3, shrink=1e-3)
    with pytest.raises(ValueError, match="noise_std"):
        Recurrent(noise_std=-1.0)
    keys = {
        spec_key(learner.to_dict())
        for learner in (Recurrent(), Recurrent(shrink=1e-3), Recurrent(noise_std=1e-3), ContinualBackpropRecurrent())
    }
    assert len(keys) == 4
