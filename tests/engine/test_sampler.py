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
