"""The persistent internal state on an LSTM/GRU against a textbook nn.LSTM/nn.GRU whose input is
concat(x_t, s), trained by plain autograd through the truncated graph."""

import io

import pytest
import torch
from test_recurrent import BATCH, CELL_NAMES, HIDDEN, N_IN, N_OUT, T, sequence_batches, together_and_alone, trained
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from lopcore import checkpoint as ckpt
from lopcore.learners import PersistentRecurrent, Recurrent
from lopcore.sequences import Sequences

D_INT, LR = 4, 0.2


def textbook_losses(learner, state, xs, ys):
    """Loss per step of one run trained by the textbook loop: nn.GRU/LSTM on concat(x_t, s), a head on
    the last hidden state, s_{t+1} = state head(batch mean of it); the loss at step t backpropagates
    through s_t into the k = t mod n steps before it, with their weights as they were; SGD."""
    p = {k: v[0] for k, v in state["params"].items()}
    rnn = (nn.LSTM if learner.cell == "lstm" else nn.GRU)(N_IN + D_INT, HIDDEN, batch_first=True)
    theta = {
        "rnn.weight_ih_l0": torch.cat([p["w_ih"], p["w_sh"]]).T,
        "rnn.weight_hh_l0": p["w_hh"].T,
        "rnn.bias_ih_l0": p["b_ih"][0],
        "rnn.bias_hh_l0": p["b_hh"][0],
        "head.weight": p["w_out"].T,
        "head.bias": p["b_out"][0],
        "state.weight": p["w_s"].T,
        "state.bias": p["b_s"][0],
    }
    theta = {k: v.clone().requires_grad_() for k, v in theta.items()}
    model = nn.ModuleDict({"rnn": rnn, "head": nn.Linear(HIDDEN, N_OUT), "state": nn.Linear(HIDDEN, D_INT)})

    def run(params, x, s):
        inputs = torch.cat([x, s.expand(x.shape[0], x.shape[1], D_INT)], -1)
        out, _ = functional_call(model["rnn"], {k[4:]: v for k, v in params.items() if k.startswith("rnn.")}, (inputs,))
        h = out[:, -1]
        logits = F.linear(h, params["head.weight"], params["head.bias"])
        return logits, F.linear(h.mean(0), params["state.weight"], params["state.bias"])

    losses, s, chain = [], torch.zeros(D_INT), []
    for t, (x, y) in enumerate(zip(xs, ys)):
        if t % learner.n == 0:
            chain = []
        s_t = s.detach() if not chain else chain[0][2]
        earlier = []
        for params, x_k, _ in chain:  # rebuild s_t through the chained steps, with their weights
            leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
            s_t = run(leaves, x_k, s_t)[1]
            earlier.append(leaves)
        logits, s_next = run(theta, x, s_t)
        loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(
            loss, [*theta.values(), *(v for e in earlier for v in e.values())], allow_unused=True
        )
        losses.append(loss.item())
        if (t + 1) % learner.n != 0:
            chain.append(({k: v.detach().clone() for k, v in theta.items()}, x, s.detach() if not chain else None))
        s = s_next.detach()
        with torch.no_grad():
            for i, v in enumerate(theta.values()):
                for g in grads[i :: len(theta)]:
                    if g is not None:
                        v -= LR * g
    return losses


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_matches_the_textbook_loop_through_the_truncated_graph(cell, n):
    learner = PersistentRecurrent(cell=cell, hidden=HIDDEN, d_int=D_INT, n=n, optimizer="sgd", lr=LR)
    state = learner.init_state([0], N_IN, N_OUT, "cpu")
    xs, _, ys = sequence_batches(1, steps=8, ragged=False)
    expected = textbook_losses(learner, state, xs[:, 0], ys[:, 0])
    ours = []
    for x, y in zip(xs, ys):
        before = state["loss_sum"].clone()
        learner.step(state, Sequences(x, torch.full((1, BATCH), T)), y)
        ours.append((state["loss_sum"] - before).item())
    assert ours == pytest.approx(expected, abs=1e-5)


def test_the_zero_state_is_the_plain_recurrent_learner_bit_for_bit():
    xs, lengths, ys = sequence_batches(2, steps=10, runs=2)
    plain, zero = (
        trained(learner, [3, 4], xs, lengths, ys)["loss_sum"]
        for learner in (
            Recurrent(cell="gru", hidden=HIDDEN),
            PersistentRecurrent(cell="gru", hidden=HIDDEN, state="zero"),
        )
    )
    assert torch.equal(plain, zero)


def test_with_n_1_the_state_head_never_learns_but_the_state_input_does():
    learner = PersistentRecurrent(cell="lstm", hidden=HIDDEN, d_int=D_INT, n=1)
    state = learner.init_state([0], N_IN, N_OUT, "cpu")
    before = {k: v.clone() for k, v in state["params"].items()}
    xs, lengths, ys = sequence_batches(3, steps=5)
    for x, length, y in zip(xs, lengths, ys):
        learner.step(state, Sequences(x, length), y)
    assert torch.equal(state["params"]["w_s"], before["w_s"]) and torch.equal(state["params"]["b_s"], before["b_s"])
    assert not torch.equal(state["params"]["w_sh"], before["w_sh"]) and state["s"].abs().sum() > 0


@pytest.mark.parametrize("mode", ["learned", "random"])
def test_runs_together_equal_runs_alone(mode):
    learner = PersistentRecurrent(cell="gru", hidden=HIDDEN, d_int=D_INT, n=2, state=mode)
    together, each = together_and_alone(learner, [5, 6, 7], *sequence_batches(4, steps=7, runs=3))
    for r, alone in enumerate(each):
        torch.testing.assert_close(together["loss_sum"][r : r + 1], alone["loss_sum"], rtol=0, atol=1e-5)


def test_a_checkpoint_in_the_middle_of_a_chain_resumes_bit_identically():
    learner = PersistentRecurrent(cell="lstm", hidden=HIDDEN, d_int=D_INT, n=4)
    xs, lengths, ys = sequence_batches(5, steps=9, runs=2)
    state = learner.init_state([0, 1], N_IN, N_OUT, "cpu")
    for x, length, y in zip(xs[:6], lengths[:6], ys[:6]):
        learner.step(state, Sequences(x, length), y)
    assert len(state["chain"]) == 2  # steps 4 and 5 reach step 6's loss
    buffer = io.BytesIO()
    torch.save(ckpt.pack_state(state), buffer)
    buffer.seek(0)
    resumed = ckpt.restore_state_(learner.init_state([0, 1], N_IN, N_OUT, "cpu"), torch.load(buffer, weights_only=True))
    for s in (state, resumed):
        for x, length, y in zip(xs[6:], lengths[6:], ys[6:]):
            learner.step(s, Sequences(x, length), y)
    assert torch.equal(state["loss_sum"], resumed["loss_sum"])
    assert all(torch.equal(state["params"][k], resumed["params"][k]) for k in state["params"])


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(d_int=0), "d_int must be a positive integer"),
        (dict(n=0), r"n \(truncation period\) must be an integer >= 1"),
        (dict(state="frozen"), r"state must be one of \('learned', 'zero', 'random'\)"),
        (dict(cell="rnn"), r"cell must be one of \['gru', 'lstm'\]"),
    ],
)
def test_bad_options_name_the_valid_ones(options, message):
    with pytest.raises(ValueError, match=message):
        PersistentRecurrent(**options)
