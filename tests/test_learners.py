"""The hand-written, run-vectorized learners against plain autograd `nn.Module` loops."""

import contextlib

import pytest
import torch
from torch.nn import functional as F

from lopcore.bench import NaiveMLP
from lopcore.learners import Backprop, PersistentState, make_learner

N_IN, N_OUT, BATCH, STEPS, LR = 784, 10, 8, 200, 0.05


def batches(seed, steps=STEPS, runs=1):
    g = torch.Generator().manual_seed(seed)
    xs = torch.rand(steps, runs, BATCH, N_IN, generator=g)
    ys = torch.randint(0, N_OUT, (steps, runs, BATCH), generator=g)
    return xs, ys


class ReferenceMLP(NaiveMLP):
    """Iqbal's network written the textbook way (the benchmark's naive model); d_int = 0 is the
    plain baseline MLP."""

    def load_from(self, learner, state):
        """Copy run 0 of a lopcore learner's state into this module."""
        weights, biases = learner.parameters(state)
        layers = [*self.body, self.head] + ([self.state_head] if self.state_head is not None else [])
        with torch.no_grad():
            for layer, w, b in zip(layers, weights, biases):
                layer.weight.copy_(w[0].T)
                layer.bias.copy_(b[0, 0])


def reference_losses(model, xs, ys, n=1, exact=False, state=True):
    """Autograd loop. The paper's semantics: updating `p.data` in place bypasses autograd's
    version check, so backprop through an earlier step sees the *current* weights with the old
    activations. `exact=True` keeps forward-time weights (saved tensors cloned on mutation)."""
    losses = []
    h = torch.zeros(model.state_head.out_features) if state and model.state_head is not None else None
    ctx = torch.autograd.graph.allow_mutation_on_saved_tensors() if exact else contextlib.nullcontext()
    with ctx:
        for t, (x, y) in enumerate(zip(xs[:, 0], ys[:, 0])):
            if h is not None and t % n == 0:
                h = h.detach()
            logits, h_next = model(x, h)
            loss = F.cross_entropy(logits, y)
            model.zero_grad()
            loss.backward(retain_graph=h is not None and n > 1)
            with torch.no_grad():
                for p in model.parameters():
                    if p.grad is not None:
                        (p if exact else p.data).add_(p.grad, alpha=-LR)
            losses.append(loss.item())
            if h is not None:
                h = h_next
    return torch.tensor(losses)


def engine_losses(learner, xs, ys, seeds=(0,)):
    state = learner.init_state(list(seeds), N_IN, N_OUT, "cpu")
    losses = []
    for x, y in zip(xs, ys):
        before = state["loss_sum"].clone()
        learner.step(state, x, y)
        losses.append(state["loss_sum"] - before)
    return torch.stack(losses), state  # (steps, R)


@pytest.fixture(params=[torch.float64, torch.float32], ids=["float64", "float32"])
def dtype(request):
    """float64 makes the comparison sharp (1e-9 over all 200 steps). float32 is what runs; its
    rounding is amplified chaotically (the state feeds back every step), reaching ~1e-3 by step
    200, so in float32 only the first 50 steps are compared."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(request.param)
    yield request.param
    torch.set_default_dtype(previous)


def check_against_reference(learner, d_int, dtype, n=1, exact=False, seed=0):
    xs, ys = batches(seed)
    model = ReferenceMLP(d_int, state_head=getattr(learner, "state_head", "linear"))
    model.load_from(learner, learner.init_state([seed], N_IN, N_OUT, "cpu"))
    ref = reference_losses(model, xs, ys, n=n, exact=exact)
    ours, _ = engine_losses(learner, xs, ys, seeds=(seed,))
    assert ours.dtype == dtype
    if dtype == torch.float64:
        assert (ours[:, 0] - ref).abs().max() < 1e-9
    else:
        assert (ours[:50, 0] - ref[:50]).abs().max() < 1e-5


def test_backprop_matches_autograd(dtype):
    check_against_reference(Backprop(lr=LR), 0, dtype)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_persistent_matches_autograd_paper_semantics(n, dtype):
    check_against_reference(PersistentState(lr=LR, d_int=16, n=n), 16, dtype, n=n)


@pytest.mark.parametrize("n", [2, 3])
def test_persistent_matches_autograd_exact_semantics(n, dtype):
    learner = PersistentState(lr=LR, d_int=16, n=n, through_state="forward_weights")
    check_against_reference(learner, 16, dtype, n=n, exact=True)


@pytest.mark.parametrize("n,through_state", [(1, "current_weights"), (2, "current_weights"), (3, "forward_weights")])
def test_the_tanh_state_head_matches_autograd(n, through_state, dtype):
    """The bounded-state reading (not the paper's): h = tanh(state head), gradients through it."""
    learner = PersistentState(lr=LR, d_int=16, n=n, through_state=through_state, state_head="tanh")
    check_against_reference(learner, 16, dtype, n=n, exact=through_state == "forward_weights")


def test_the_state_head_option_stays_out_of_the_key_at_its_default():
    assert "state_head" not in PersistentState().to_dict()
    assert PersistentState(state_head="tanh").to_dict()["state_head"] == "tanh"
    with pytest.raises(ValueError, match="state_head must be one of"):
        PersistentState(state_head="relu")


def test_the_two_gradient_semantics_differ_for_n_above_one():
    xs, ys = batches(1)
    paper, _ = engine_losses(PersistentState(d_int=16, n=2), xs, ys)
    exact, _ = engine_losses(PersistentState(d_int=16, n=2, through_state="forward_weights"), xs, ys)
    assert (paper - exact).abs().max() > 1e-6
    assert (paper - exact).abs().max() < 0.1  # a small correction, not another algorithm


@pytest.mark.parametrize(
    "learner",
    [
        Backprop(),
        PersistentState(d_int=8, n=2),
        PersistentState(d_int=8, n=2, through_state="forward_weights"),
        PersistentState(d_int=8, state="random"),
    ],
    ids=str,
)
def test_runs_are_independent_of_their_batchmates(learner):
    seeds = (3, 5, 7, 11)
    xs, ys = batches(2, steps=60, runs=4)
    together, _ = engine_losses(learner, xs, ys, seeds=seeds)
    for r, seed in enumerate(seeds):
        alone, _ = engine_losses(learner, xs[:, r : r + 1], ys[:, r : r + 1], seeds=(seed,))
        torch.testing.assert_close(
            together[:, r], alone[:, 0], rtol=0, atol=1e-5
        )  # float32 sums regroup with the batch shape and thread count


def test_state_head_never_changes_with_n_equal_one():
    learner = PersistentState(d_int=16, n=1)
    xs, ys = batches(3, steps=50)
    state0 = learner.init_state([0], N_IN, N_OUT, "cpu")
    w_s, b_s, w_h = state0["w_s"].clone(), state0["b_s"].clone(), state0["w_h"].clone()
    _, state = engine_losses(learner, xs, ys)
    assert torch.equal(state["w_s"], w_s) and torch.equal(state["b_s"], b_s)
    assert not torch.equal(state["w_h"], w_h)  # the input side of h does learn
    assert state["h"].abs().sum() > 0
    _, state2 = engine_losses(PersistentState(d_int=16, n=2), xs, ys)
    assert not torch.equal(state2["w_s"], w_s)  # with n = 2 it does learn


def test_zero_mode_ignores_the_state_head():
    xs, ys = batches(4, steps=50)
    learner = PersistentState(d_int=16, state="zero")
    base, state = engine_losses(learner, xs, ys)
    # Scramble the state head before training: nothing may change.
    scrambled = learner.init_state([0], N_IN, N_OUT, "cpu")
    scrambled["w_s"].normal_(0, 100.0)
    scrambled["b_s"].fill_(7.0)
    losses = []
    for x, y in zip(xs, ys):
        before = scrambled["loss_sum"].clone()
        learner.step(scrambled, x, y)
        losses.append(scrambled["loss_sum"] - before)
    assert torch.equal(torch.stack(losses), base)
    assert torch.count_nonzero(state["h"]) == 0


def test_random_mode_keeps_the_learned_norm_but_not_the_direction():
    learner = PersistentState(d_int=32, state="random")
    state = learner.init_state([0], N_IN, N_OUT, "cpu")
    xs, ys = batches(5, steps=3)
    learner.step(state, xs[0], ys[0])
    h1 = state["h"].clone()
    # the learned update the random state replaced, recomputed from the same weights
    learned = PersistentState(d_int=32, state="learned")
    ref = learned.init_state([0], N_IN, N_OUT, "cpu")
    learned.step(ref, xs[0], ys[0])
    torch.testing.assert_close(h1.norm(), ref["h"].norm())
    cosine = F.cosine_similarity(h1.flatten(), ref["h"].flatten(), dim=0)
    assert cosine.abs() < 0.9


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(n=0), "n (truncation period)"),
        (dict(n=1.5), "n (truncation period)"),
        (dict(d_int=0), "d_int"),
        (dict(d_int=-3), "d_int"),
        (dict(state="frozen"), "'learned', 'zero', 'random'"),
        (dict(through_state="magic"), "'current_weights', 'forward_weights'"),
    ],
)
def test_bad_options_are_named(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PersistentState(**bad)


def test_unknown_learner_lists_choices():
    with pytest.raises(ValueError, match="valid learners: backprop, cbp, persistent, persistent_cbp"):
        make_learner("adamw")


def test_the_first_layers_two_parts_are_contiguous_and_the_whole_layer_as_drawn():
    """W_x and W_h are kept as two contiguous matrices (an in-place batched product on a slice falls
    back to one product per run); stacked, they are the first layer as drawn, and parameters() and
    hidden_units() present the whole of it."""
    learner = PersistentState(d_int=8)
    state = learner.init_state([0, 1], N_IN, N_OUT, "cpu")
    w_x, w_h = state["weights"][0], state["w_h"]
    assert w_x.is_contiguous() and w_h.is_contiguous() and "first_layer" not in state
    drawn = PersistentState(d_int=8).init_state([0, 1], N_IN, N_OUT, "cpu")
    first = learner.parameters(state)[0][0]
    assert first.shape == (2, N_IN + 8, 100) and torch.equal(first, torch.cat([drawn["weights"][0], drawn["w_h"]], 1))
    assert learner.hidden_units(state)[0][0] == (w_x, w_h)


def test_a_checkpoint_of_the_earlier_view_layout_resumes_with_the_same_bits():
    """Checkpoints written while weights[0] and w_h were views of one `first_layer` matrix: the
    retired entry is dropped and the run continues exactly as the uninterrupted one."""
    from lopcore import checkpoint as ckpt

    learner = PersistentState(d_int=8, n=2)
    xs, ys = batches(3, steps=30, runs=2)
    state = learner.init_state([0, 1], N_IN, N_OUT, "cpu")
    for x, y in zip(xs[:15], ys[:15]):
        learner.step(state, x, y)
    old = dict(state)  # the old layout: both parts views of one matrix
    old["first_layer"] = torch.cat([state["weights"][0], state["w_h"]], 1)
    old["weights"] = [old["first_layer"][:, :N_IN], *state["weights"][1:]]
    old["w_h"] = old["first_layer"][:, N_IN:]
    resumed = ckpt.restore_state_(learner.init_state([0, 1], N_IN, N_OUT, "cpu"), ckpt.pack_state(old))
    for x, y in zip(xs[15:], ys[15:]):
        learner.step(state, x, y)
        learner.step(resumed, x, y)
    ours, theirs = learner.parameters(state), learner.parameters(resumed)
    assert all(torch.equal(a, b) for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]))
