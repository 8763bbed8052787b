"""FedAdagrad / FedAdam / FedYogi: the standard rules of Reddi et al. and the FedMLLM reference variant.

Expected values are written out by hand for the first rounds and, for three rounds, computed by a tiny
per-coordinate float formula below that follows the published rules (not the code under test).
"""

import math

import pytest
import torch

from fedray.errors import FedRayError
from fedray.strategies import ClientResult, build_strategy
from fedray.strategies.fedopt import FedAdam, FedYogi

X0 = [0.0, 1.0]
# (num_examples, client params − current global) per client and round.
#   sample-weighted Δ:  r1 [4, −1]   r2 [2, 1]   r3 [−2, 0.05]
#   unweighted Δ:       r1 [3, 0]    r2 [3, 2]   r3 [−4, 0.1]
ROUNDS = [
    [(1, [1.0, 2.0]), (3, [5.0, -2.0])],
    [(1, [5.0, 4.0]), (3, [1.0, 0.0])],
    [(1, [-8.0, 0.2]), (3, [0.0, 0.0])],
]
WEIGHTED = [[4.0, -1.0], [2.0, 1.0], [-2.0, 0.05]]
UNWEIGHTED = [[3.0, 0.0], [3.0, 2.0], [-4.0, 0.1]]


def _run(strategy, rounds=ROUNDS):
    x = {"w": torch.tensor(X0, dtype=torch.float64)}
    trajectory = []
    for server_round, clients in enumerate(rounds, start=1):
        results = [ClientResult(cid, n, {"w": x["w"] + torch.tensor(d, dtype=torch.float64)})
                   for cid, (n, d) in enumerate(clients)]
        x, _ = strategy.aggregate_fit(server_round, x, results, failures=[])
        trajectory.extend(x["w"].tolist())
    return trajectory


def _reference(rule, variant, eta, b1, b2, tau, bias_correction=False):
    """Reddi et al. Algorithm 2 (m₀ = v₀ = 0), or the FedMLLM reference's formulas, per coordinate."""
    deltas = WEIGHTED if variant == "standard" else UNWEIGHTED
    x, m, v, out = list(X0), [0.0, 0.0], [0.0, 0.0], []
    for t, delta in enumerate(deltas, start=1):
        for i, d in enumerate(delta):
            if variant == "standard":
                m[i] = b1 * m[i] + (1 - b1) * d
                g2 = d * d
            else:
                m[i] = d if (t == 1 or rule == "adagrad") else b1 * m[i] + (1 - b1) * d
                v[i] = tau**2 if t == 1 else v[i]
                g2 = m[i] * m[i]
            if rule == "adagrad":
                v[i] = v[i] + g2
            elif rule == "adam":
                v[i] = b2 * v[i] + (1 - b2) * g2
            else:  # yogi
                v[i] = v[i] - (1 - b2) * g2 * math.copysign(1.0, v[i] - g2) * (v[i] != g2)
            lr = eta
            if bias_correction:
                lr = eta / (1 - b1**t) * (1.0 if rule == "adagrad" else math.sqrt(1 - b2**t))
            x[i] += lr * m[i] / (math.sqrt(v[i]) + tau)
        out.extend(x)
    return out


# --- standard variant: first rounds by hand ---------------------------------------------------------

def test_fedadam_standard_by_hand():
    # η 0.1, β1 0.9, β2 0.99, τ 1e-3.
    # r1: m = 0.1·[4, −1] = [0.4, −0.1]; v = 0.01·[16, 1] = [0.16, 0.01]; √v = [0.4, 0.1]
    x1 = [0.1 * 0.4 / 0.401, 1.0 - 0.1 * 0.1 / 0.101]
    # r2: m = [0.36 + 0.2, −0.09 + 0.1] = [0.56, 0.01]; v = [0.1584 + 0.04, 0.0099 + 0.01] = [0.1984, 0.0199]
    x2 = [x1[0] + 0.1 * 0.56 / (math.sqrt(0.1984) + 1e-3), x1[1] + 0.1 * 0.01 / (math.sqrt(0.0199) + 1e-3)]
    got = _run(build_strategy("fedadam", {"eta": 0.1, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}))
    assert got[:4] == pytest.approx(x1 + x2, rel=1e-12)
    assert got == pytest.approx(_reference("adam", "standard", 0.1, 0.9, 0.99, 1e-3), rel=1e-12)


def test_fedyogi_standard_by_hand():
    # r1: v₀ = 0 < Δ², so v = 0 + 0.01·Δ² = [0.16, 0.01] and m = [0.4, −0.1]: the same step as Adam
    # r2: Δ² = [4, 1] > v, so v = v + 0.01·Δ² = [0.2, 0.02]; m = [0.56, 0.01]
    # r3: Δ² = [4, 0.0025]; coordinate 2 has v = 0.02 > 0.0025, so v = 0.02 − 0.01·0.0025 = 0.019975
    x1 = [0.1 * 0.4 / 0.401, 1.0 - 0.1 * 0.1 / 0.101]
    x2 = [x1[0] + 0.1 * 0.56 / (math.sqrt(0.2) + 1e-3), x1[1] + 0.1 * 0.01 / (math.sqrt(0.02) + 1e-3)]
    m3 = [0.9 * 0.56 + 0.1 * -2.0, 0.9 * 0.01 + 0.1 * 0.05]
    x3 = [x2[0] + 0.1 * m3[0] / (math.sqrt(0.24) + 1e-3), x2[1] + 0.1 * m3[1] / (math.sqrt(0.019975) + 1e-3)]
    got = _run(build_strategy("fedyogi", {"eta": 0.1, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}))
    assert got == pytest.approx(x1 + x2 + x3, rel=1e-12)


def test_fedadagrad_standard_by_hand():
    # β1 defaults to 0, so m = Δ; v = ΣΔ²: r1 [16, 1], r2 [20, 2], r3 [24, 2.0025]
    x1 = [0.1 * 4 / 4.001, 1.0 - 0.1 * 1 / 1.001]
    x2 = [x1[0] + 0.1 * 2 / (math.sqrt(20) + 1e-3), x1[1] + 0.1 * 1 / (math.sqrt(2) + 1e-3)]
    x3 = [x2[0] - 0.1 * 2 / (math.sqrt(24) + 1e-3), x2[1] + 0.1 * 0.05 / (math.sqrt(2.0025) + 1e-3)]
    got = _run(build_strategy("fedadagrad", {"eta": 0.1, "tau": 1e-3}))
    assert got == pytest.approx(x1 + x2 + x3, rel=1e-12)


@pytest.mark.parametrize("rule", ["adagrad", "adam", "yogi"])
@pytest.mark.parametrize("variant", ["standard", "fedmllm"])
def test_three_rounds_match_the_published_rule(rule, variant):
    b1 = 0.0 if rule == "adagrad" else 0.8
    strategy = build_strategy(f"fed{rule}", dict(eta=0.05, beta1=b1, beta2=0.95, tau=1e-2, variant=variant))
    assert _run(strategy) == pytest.approx(_reference(rule, variant, 0.05, b1, 0.95, 1e-2), rel=1e-12)


# --- fedmllm variant: by hand -------------------------------------------------------------------------

def test_fedadam_fedmllm_by_hand():
    # η = τ = 1e-3; unweighted Δ; v₀ = τ² = 1e-6; v from m²; no bias correction.
    # r1: m = Δ = [3, 0]; v = 0.99e-6 + 0.01·[9, 0] = [0.09000099, 0.00000099]
    x1 = [1e-3 * 3 / (math.sqrt(0.09000099) + 1e-3), 1.0]
    # r2: m = 0.9·[3, 0] + 0.1·[3, 2] = [3, 0.2]
    #     v = 0.99·v + 0.01·m² = [0.0891009801 + 0.09, 0.0000009801 + 0.0004]
    v2 = [0.99 * 0.09000099 + 0.09, 0.99 * 0.00000099 + 0.0004]
    x2 = [x1[0] + 1e-3 * 3 / (math.sqrt(v2[0]) + 1e-3), x1[1] + 1e-3 * 0.2 / (math.sqrt(v2[1]) + 1e-3)]
    got = _run(build_strategy("fedadam", {"variant": "fedmllm"}))
    assert got[:4] == pytest.approx(x1 + x2, rel=1e-12)
    assert got == pytest.approx(_reference("adam", "fedmllm", 1e-3, 0.9, 0.99, 1e-3), rel=1e-12)


def test_fedadagrad_fedmllm_by_hand():
    # m = Δ every round (no momentum); v = τ² + Σ m² = r1 [9 + 1e-6, 1e-6], r2 [18 + 1e-6, 4 + 1e-6]
    x1 = [1e-3 * 3 / (math.sqrt(9 + 1e-6) + 1e-3), 1.0]
    x2 = [x1[0] + 1e-3 * 3 / (math.sqrt(18 + 1e-6) + 1e-3), x1[1] + 1e-3 * 2 / (math.sqrt(4 + 1e-6) + 1e-3)]
    x3 = [x2[0] - 1e-3 * 4 / (math.sqrt(34 + 1e-6) + 1e-3),
          x2[1] + 1e-3 * 0.1 / (math.sqrt(4.01 + 1e-6) + 1e-3)]
    got = _run(build_strategy("fedadagrad", {"variant": "fedmllm"}))
    assert got == pytest.approx(x1 + x2 + x3, rel=1e-12)


def test_fedyogi_fedmllm_first_round_by_hand():
    # r1: m = [3, 0]; v = 1e-6 − 0.01·[9, 0]·sign(1e-6 − [9, 0]) = [1e-6 + 0.09, 1e-6 − 0.01·0·1]
    got = _run(build_strategy("fedyogi", {"variant": "fedmllm"}))
    assert got[:2] == pytest.approx([1e-3 * 3 / (math.sqrt(0.090001) + 1e-3), 1.0], rel=1e-12)


def test_variants_differ_in_weighting():
    # the first fedmllm step follows the unweighted Δ [3, 0]; the standard one the weighted [4, −1]
    standard = _run(build_strategy("fedadam", {"variant": "standard"}))
    fedmllm = _run(build_strategy("fedadam", {"variant": "fedmllm"}))
    assert standard[1] < 1.0 and fedmllm[1] == 1.0


# --- bias correction and the second moments in isolation ---------------------------------------------

def test_bias_correction_by_hand():
    # t = 1: η·√(1 − 0.99)/(1 − 0.9) = η·0.1/0.1 = η, so round one equals the uncorrected step
    corrected = _run(build_strategy("fedadam", {"eta": 0.1, "bias_correction": True}))
    plain = _run(build_strategy("fedadam", {"eta": 0.1}))
    assert corrected[:2] == pytest.approx(plain[:2], rel=1e-12)
    # t = 2: η_2 = 0.1·√0.0199/0.19; m = [0.56, 0.01]; v = [0.1984, 0.0199] (as in the Adam test above)
    eta2 = 0.1 * math.sqrt(0.0199) / 0.19
    assert corrected[2] == pytest.approx(corrected[0] + eta2 * 0.56 / (math.sqrt(0.1984) + 1e-3), rel=1e-12)
    assert corrected == pytest.approx(_reference("adam", "standard", 0.1, 0.9, 0.99, 1e-3, True), rel=1e-12)


@pytest.mark.parametrize("rule", ["adagrad", "yogi"])
def test_bias_correction_three_rounds(rule):
    strategy = build_strategy(f"fed{rule}", dict(eta=0.1, beta1=0.5, beta2=0.9, tau=1e-2,
                                                 bias_correction=True))
    assert _run(strategy) == pytest.approx(_reference(rule, "standard", 0.1, 0.5, 0.9, 1e-2, True), rel=1e-12)


def test_second_moment_rules():
    v, g2 = torch.tensor([1.0, 0.25]), torch.tensor([0.5, 1.0])
    # Yogi: v − 0.1·g2·sign(v − g2) = [1 − 0.05, 0.25 + 0.1]; Adam: 0.9·v + 0.1·g2 = [0.95, 0.325]
    assert torch.allclose(FedYogi(beta2=0.9).second_moment(v, g2), torch.tensor([0.95, 0.35]))
    assert torch.allclose(FedAdam(beta2=0.9).second_moment(v, g2), torch.tensor([0.95, 0.325]))


def test_state_is_float32_for_bfloat16_adapters_and_output_keeps_dtype():
    strategy = build_strategy("fedadam")
    x = {"w": torch.zeros(3, dtype=torch.bfloat16)}
    client = ClientResult(0, 1, {"w": torch.ones(3, dtype=torch.bfloat16)})
    new, metrics = strategy.aggregate_fit(1, x, [client], [])
    assert new["w"].dtype == torch.bfloat16
    assert strategy.state_dict()["m"]["w"].dtype == torch.float32
    assert metrics["server_lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("name, params, match", [
    ("fedadam", {"eta": 0}, "strategy.eta: got 0.0, must be > 0"),
    ("fedadam", {"tau": 0.0}, "strategy.tau: got 0.0, must be > 0"),
    ("fedyogi", {"beta1": 1.0}, "strategy.beta1: got 1.0, must be < 1"),
    ("fedyogi", {"beta2": -0.5}, "strategy.beta2: got -0.5, must be >= 0"),
    ("fedadagrad", {"eta": float("nan")}, "strategy.eta: got nan"),
    ("fedadam", {"eta": float("inf")}, "eta: got inf, must be a finite number"),
    ("fedadam", {"bias_correction": "yes"}, "strategy.bias_correction: got 'yes' .*expected true or false"),
    ("fedadam", {"variant": "flower"}, "strategy.variant: got 'flower' .*one of 'standard', 'fedmllm'"),
    ("fedadam", {"variant": "fedmllm", "bias_correction": True}, "no bias correction"),
    ("fedadagrad", {"variant": "fedmllm", "beta1": 0.9}, "uses no momentum.*beta1 must be 0.0, got 0.9"),
])
def test_bad_parameters_are_clear_errors(name, params, match):
    with pytest.raises(FedRayError, match=match):
        build_strategy(name, params)
