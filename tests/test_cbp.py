"""Continual backprop: the run-vectorized learner against a per-unit reference loop, and the
properties of generate-and-test (which unit goes, maturity, bias correction, run independence)."""

import pytest
import torch
from test_learners import LR, N_IN, N_OUT, ReferenceMLP, batches, engine_losses
from torch.nn import functional as F

from lopcore.learners import ContinualBackprop, PersistentStateCBP
from lopcore.learners.cbp import eligible_count, replace_units_
from lopcore.tasks import derive_seed

FAST = dict(replacement_rate=0.02, maturity=20)  # many replacements within a short test


def reference_cbp(learner, xs, ys, seed=0):
    """Continual backprop written unit by unit, as in Dohare et al.'s generate-and-test, on top of an
    autograd nn.Module, with the bias correction done for real. Returns losses and the module."""
    model = ReferenceMLP().double()
    model.load_from(learner, {k: v for k, v in learner.init_state([seed], N_IN, N_OUT, "cpu").items()})
    layers = [*model.body, model.head]
    g = torch.Generator().manual_seed(derive_seed(seed, "cbp"))
    width = [layer.out_features for layer in model.body]
    util = [torch.zeros(w, dtype=torch.double) for w in width]
    mean = [torch.zeros(w, dtype=torch.double) for w in width]
    age = [torch.zeros(w, dtype=torch.double) for w in width]
    owed = [0.0] * len(width)
    eta, losses = learner.decay, []
    for x, y in zip(xs[:, 0].double(), ys[:, 0]):
        feats, a = [], x
        for layer in model.body:
            a = F.relu(layer(a))
            feats.append(a)
        loss = F.cross_entropy(model.head(a), y)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= LR * p.grad
            for i, f in enumerate(feats):
                nxt, cur = layers[i + 1], layers[i]
                age[i] += 1
                util[i] = eta * util[i] + (1 - eta) * f.mean(0) * nxt.weight.abs().mean(0)
                mean[i] = eta * mean[i] + (1 - eta) * f.mean(0)
                eligible = torch.nonzero(age[i] > learner.maturity).flatten()
                owed[i] += learner.replacement_rate * len(eligible)
                k = int(owed[i])
                if len(eligible) == 0 or k < 1:
                    continue
                owed[i] -= k
                corrected = util[i] / (1 - eta ** age[i])
                chosen = eligible[torch.sort(corrected[eligible], stable=True).indices[:k]]
                bound = cur.in_features**-0.5
                new = torch.rand(cur.in_features, k, generator=g) * (2 * bound) - bound
                nxt.bias += (nxt.weight[:, chosen] * (mean[i][chosen] / (1 - eta ** age[i][chosen]))).sum(1)
                nxt.weight[:, chosen] = 0
                cur.weight[chosen, :] = new.T.double()
                cur.bias[chosen] = 0
                util[i][chosen], mean[i][chosen], age[i][chosen] = 0, 0, 0
        losses.append(loss.item())
    return torch.tensor(losses, dtype=torch.double), model


def double_state(learner, seeds):
    state = learner.init_state(list(seeds), N_IN, N_OUT, "cpu")
    for key in ("weights", "biases"):
        state[key] = [t.double() for t in state[key]]
    state["loss_sum"] = state["loss_sum"].double()
    state["gnt"] = {
        k: [t.double() for t in v] if k in ("utility", "mean_act", "birth") else v for k, v in state["gnt"].items()
    }
    return state


def run_double(learner, xs, ys, seeds=(0,)):
    state, losses = double_state(learner, seeds), []
    for x, y in zip(xs.double(), ys):
        before = state["loss_sum"].clone()
        learner.step(state, x, y)
        losses.append(state["loss_sum"] - before)
    return torch.stack(losses), state


def test_matches_the_unit_by_unit_reference():
    learner = ContinualBackprop(**FAST)
    xs, ys = batches(3, steps=300)
    ours, state = run_double(learner, xs, ys)
    ref, model = reference_cbp(learner, xs, ys)
    replaced = (state["gnt"]["birth"][0] >= 0).sum().item()
    assert replaced >= 50, "the test must exercise many replacements"
    assert (ours[:, 0] - ref).abs().max() < 1e-9
    for ours_w, layer in zip(state["weights"], [*model.body, model.head]):
        assert torch.allclose(ours_w[0], layer.weight.T, atol=1e-9)
    for ours_b, layer in zip(state["biases"], [*model.body, model.head]):
        assert torch.allclose(ours_b[0, 0], layer.bias, atol=1e-9)


def test_runs_are_independent_of_their_group():
    learner = ContinualBackprop(**FAST)
    xs, ys = batches(4, steps=200, runs=3)
    together, state = engine_losses(learner, xs, ys, seeds=(0, 1, 2))
    for r, seed in enumerate((0, 1, 2)):
        alone, single = engine_losses(learner, xs[:, r : r + 1], ys[:, r : r + 1], seeds=(seed,))
        assert torch.allclose(together[:, r], alone[:, 0], atol=1e-5)
        assert torch.equal(state["gnt"]["birth"][1][r], single["gnt"]["birth"][1][0])  # the same units replaced


def test_the_silent_unit_without_outgoing_weights_is_the_one_replaced():
    learner = ContinualBackprop(replacement_rate=0.01, maturity=10)
    seeds, victims = (0, 1), (17, 42)
    state = learner.init_state(list(seeds), N_IN, N_OUT, "cpu")
    w_in, b_in, [(w_out, _)] = learner.hidden_units(state)[1]
    b_in += 1.0  # every other unit of the layer is active, so its utility is positive
    for r, j in enumerate(victims):  # a different victim per run: no activity, no outgoing weights
        w_in[r, :, j], b_in[r, 0, j], w_out[r, j, :] = 0.0, -1.0, 0.0
    xs, ys = batches(5, steps=40, runs=2)
    for t, (x, y) in enumerate(zip(xs, ys)):  # noqa: B007 (t: the step it broke at, read below)
        learner.step(state, x, y)
        if (state["gnt"]["birth"][1] >= 0).any():
            break
    born = state["gnt"]["birth"][1]
    assert t + 1 > learner.maturity and (born >= 0).sum().item() == 2
    for r, j in enumerate(victims):
        assert born[r, j] == t and (born[r] >= 0).sum() == 1
        assert w_in[r, :, j].abs().sum() > 0 and b_in[r, 0, j] == 0
        # outgoing weights zeroed, but for those of next-layer units replaced at the same step (fresh incoming)
        assert w_out[r, j][state["gnt"]["birth"][2][r] != t].abs().sum() == 0


def test_replaced_units_are_protected_until_mature():
    learner = ContinualBackprop(replacement_rate=0.2, maturity=15)  # 20 replacements per step once mature
    state = learner.init_state([0, 1], N_IN, N_OUT, "cpu")
    xs, ys = batches(6, steps=120, runs=2)
    last_birth = [b.clone() for b in state["gnt"]["birth"]]
    for t, (x, y) in enumerate(zip(xs, ys)):
        learner.step(state, x, y)
        for i, born in enumerate(state["gnt"]["birth"]):
            new = born != last_birth[i]
            # a unit is replaced only if its previous birth was more than `maturity` steps ago
            assert (t - last_birth[i][new] > learner.maturity).all()
            # the host's count of eligible units (no device read) is every run's count, at the next step
            next_ages = state["gnt"]["t"] - born
            assert (
                (next_ages > learner.maturity).sum(1).eq(eligible_count(state["gnt"], i, 100, learner.maturity)).all()
            )
            last_birth[i] = born.clone()
    assert all((b >= 0).sum() > 100 for b in state["gnt"]["birth"])


@pytest.mark.parametrize(
    "learner", [ContinualBackprop(), PersistentStateCBP(d_int=8, n=2)], ids=lambda learner: learner.kind
)
@pytest.mark.parametrize("bias_correction", [True, False])
def test_a_replacement_leaves_the_output_unchanged(learner, bias_correction):
    """A unit whose activation is input-independent (sitting at its mean) is replaced: with the bias
    correction the logits (and the next state) do not move; without it they do, so the test can fail."""
    seeds = [0, 1]
    state = learner.init_state(seeds, N_IN, N_OUT, "cpu")
    gnt, t = state["gnt"], 500
    gnt["t"] = t
    x = torch.rand(2, 32, N_IN)
    for i, (w_in, b_in, _) in enumerate(learner.hidden_units(state)):
        j = 3 + i
        for part in w_in if isinstance(w_in, tuple) else (w_in,):  # the persistent state's (W_x, W_h)
            part[:, :, j] = 0.0
        b_in[:, 0, j] = 0.7  # constant activation 0.7 ...
        age = t - gnt["birth"][i][:, j]
        gnt["mean_act"][i][:, j] = 0.7 * (1 - learner.decay**age)  # ... which its running mean has tracked

    def outputs():  # logits, and every head's output on the batch-mean of the last hidden layer
        last = learner.hidden_activations(state, x)[-1].mean(1, keepdim=True)
        heads = [torch.baddbmm(b, last, w) for w, b in learner.hidden_units(state)[-1][2]]
        return torch.cat([learner.logits(state, x).flatten(1), *[h.flatten(1) for h in heads]], 1)

    before = outputs()
    for i, layer in enumerate(learner.hidden_units(state)):
        replace_units_(
            layer,
            torch.tensor([[3 + i], [3 + i]]),
            gnt,
            i,
            learner.decay,
            learner.init,
            bias_correction=bias_correction,
        )
    after = outputs()
    if bias_correction:
        assert torch.allclose(before, after, atol=1e-5)
    else:
        assert (before - after).abs().max() > 1e-2


def test_options_are_validated():
    with pytest.raises(ValueError, match="replacement_rate"):
        ContinualBackprop(replacement_rate=-1)
    with pytest.raises(ValueError, match="maturity"):
        ContinualBackprop(maturity=1.5)
    with pytest.raises(ValueError, match="d_int"):
        PersistentStateCBP(d_int=0)
