"""A stage's deadline: whether one more unit fits, and the cut message."""

import time

from mobileseg.timebudget.deadline import CUT, Deadline


def test_one_more_unit_fits_only_when_it_ends_by_the_deadline():
    now = [1000.0]
    deadline = Deadline("supernet", at=1100.0, clock=lambda: now[0])
    assert deadline.fits(100.0) and not deadline.fits(100.5)
    now[0] = 1099.0
    assert deadline.fits(1.0) and not deadline.fits(2.0)
    assert deadline.fits(None)  # the pace is not known before the first unit ends


def test_without_a_deadline_everything_fits():
    assert Deadline("train", None).fits(1e12)


def test_the_cut_message_names_the_stage_what_was_done_and_the_deadline():
    at = time.time() + 60
    message = Deadline("search", at).cut_message("3 of 20 generations", "generation")
    assert message.startswith(f"search: {CUT} after 3 of 20 generations: another generation would end past "
                              f"{time.strftime('%H:%M:%S', time.localtime(at))}")
    assert message.endswith("going on with what it has")
