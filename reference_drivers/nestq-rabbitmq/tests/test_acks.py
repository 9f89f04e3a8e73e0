"""The multiple-ack bookkeeping: one ``basic.ack(multiple=True)`` must never settle a delivery that has not finished."""

from __future__ import annotations

import random

from nestq_rabbitmq.worker import _Unsettled


def _unsettled(*tags: int) -> _Unsettled:
    unsettled = _Unsettled()
    for tag in tags:
        unsettled.tags[tag] = None
    return unsettled


def test_oldest_finished_run_goes_in_one_multiple_ack_the_rest_one_by_one() -> None:
    unsettled = _unsettled(1, 2, 3, 4, 5, 6)
    upto, rest = unsettled.split({1, 2, 3, 5})
    assert upto == 3
    assert rest == [5]
    assert list(unsettled.tags) == [4, 6]  # 4 still runs: the next multiple ack may not pass it


def test_a_run_of_one_is_a_plain_ack() -> None:
    unsettled = _unsettled(7, 8, 9)
    assert unsettled.split({7}) == (None, [7])
    assert unsettled.split({9}) == (None, [9])
    assert list(unsettled.tags) == [8]


def test_a_tag_settled_on_its_own_leaves_first_and_the_run_continues_past_it() -> None:
    unsettled = _unsettled(1, 2, 3)
    del unsettled.tags[2]  # moved (retry, dead letter): acked on its own after its publish was confirmed
    assert unsettled.split({1, 3}) == (3, [])


def test_random_orders_never_cover_an_unfinished_tag() -> None:
    rng = random.Random(17)
    for _ in range(300):
        tags = list(range(1, rng.randint(2, 30)))
        unsettled = _unsettled(*tags)
        running = set(tags)
        acked: set[int] = set()
        while running:
            finished = set(rng.sample(sorted(running), rng.randint(1, len(running))))
            running -= finished
            upto, rest = unsettled.split(finished)
            covered = {t for t in tags if upto is not None and t <= upto and t not in acked} | set(rest)
            assert covered == finished, (upto, rest, finished)
            assert not covered & acked  # no tag acked twice (the broker would close the channel)
            acked |= covered
        assert not unsettled.tags
