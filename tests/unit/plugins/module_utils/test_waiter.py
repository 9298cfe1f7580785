import pytest

from ansible_collections.llmops.platform.plugins.module_utils.errors import WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.waiter import wait_for


class FakeClock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_returns_detail_when_done():
    states = iter([(False, "booting"), (True, "running")])
    clock = FakeClock()
    assert wait_for(lambda: next(states), "node", 10, clock=clock, sleep=clock.sleep) == "running"


def test_timeout_says_what_and_last_state():
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as err:
        wait_for(lambda: (False, "systemd state: starting"), "node n1 to boot", 5, interval=2,
                 clock=clock, sleep=clock.sleep)
    assert "node n1 to boot" in str(err.value) and "systemd state: starting" in str(err.value)
    assert clock.now == 5
