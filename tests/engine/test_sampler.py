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
