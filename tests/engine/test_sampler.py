from fedray.engine.sampler import sample_cohort


def test_cohort_is_seeded_sorted_and_distinct():
    a = [sample_cohort(7, r, 10, 4) for r in range(1, 30)]
    b = [sample_cohort(7, r, 10, 4) for r in range(1, 30)]
    assert a == b
    assert all(c == sorted(set(c)) and len(c) == 4 and all(0 <= x < 10 for x in c) for c in a)
    assert len({tuple(c) for c in a}) > 5  # rounds differ
    assert [sample_cohort(8, r, 10, 4) for r in range(1, 30)] != a


def test_cohort_covers_all_clients_over_rounds_and_saturates():
    seen = {c for r in range(1, 200) for c in sample_cohort(0, r, 10, 3)}
    assert seen == set(range(10))
    assert sample_cohort(0, 1, 5, 5) == [0, 1, 2, 3, 4]


def test_fedmllm_cohorts_match_the_reference_sampling():
    import random

    for server_round in (1, 2, 50):
        random_state = random.Random(server_round - 1)  # the reference: random.seed(round), rounds from 0
        expected = sorted(random_state.sample(range(10), 2))
        assert sample_cohort(0, server_round, 10, 2, mode="fedmllm") == expected
        assert sample_cohort(99, server_round, 10, 2, mode="fedmllm") == expected, "seed-independent"


def test_system_draws_rates_determinism_and_fixed_slow_clients():
    from fedray.config.schema import SystemConfig
    from fedray.engine.sampler import draw_system

    cfg = SystemConfig(availability=0.7, dropout=0.2, slow_fraction=0.3, slow_factor=3.0)
    draws = [draw_system(cfg, 5, r, 1000) for r in range(1, 4)]
    assert abs(len(draws[0].available) / 1000 - 0.7) < 0.05
    assert abs(len(draws[0].dropped) / 1000 - 0.2) < 0.04
    assert draws[0].slowdown == draws[2].slowdown, "a slow client is slow every round"
    assert set(draws[0].slowdown.values()) == {3.0} and abs(len(draws[0].slowdown) / 1000 - 0.3) < 0.05
    assert draws[0].available != draws[1].available
    assert draw_system(cfg, 5, 1, 1000) == draws[0]
    assert sample_cohort(0, 1, 10, 3, available=[2, 5, 7, 9]) == sorted(sample_cohort(0, 1, 10, 3,
                                                                                     available=[9, 7, 5, 2]))
    assert set(sample_cohort(0, 1, 10, 3, available=[2, 5, 7, 9])) <= {2, 5, 7, 9}
    assert sample_cohort(0, 1, 10, 3, available=[4]) == [4]
