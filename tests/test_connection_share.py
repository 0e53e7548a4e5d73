"""Which API worker takes the next connection (service/processes/connection_share.py): the workers' table
in one file, as two workers of one server see it. The processes themselves: tests/test_workers.py."""

from service.processes.connection_share import STALE_S, ConnectionShare


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def pair(tmp_path, clock):
    path = tmp_path / "connections"
    return ConnectionShare(path, 0, 2, clock), ConnectionShare(path, 1, 2, clock)


def test_the_worker_holding_fewer_connections_takes_the_next_one(tmp_path):
    clock = Clock()
    first, second = pair(tmp_path, clock)
    assert first.may_accept(3)
    assert second.may_accept(1)
    assert not first.may_accept(3)  # the second holds fewer: it listens, the first waits
    assert second.may_accept(3)
    assert first.may_accept(3)  # level again: either may
    assert first.held() == [3, 3]


def test_one_worker_always_qualifies_so_no_connection_waits_for_nobody(tmp_path):
    clock = Clock()
    first, second = pair(tmp_path, clock)
    for held_first, held_second in [(0, 0), (5, 2), (2, 5), (7, 7), (0, 9)]:
        first.may_accept(held_first)
        second.may_accept(held_second)
        assert first.may_accept(held_first) or second.may_accept(held_second)


def test_a_worker_that_stopped_writing_no_longer_holds_the_others_back(tmp_path):
    """Killed or stuck: its entry goes stale after STALE_S, and the live worker takes every connection."""
    clock = Clock()
    first, second = pair(tmp_path, clock)
    second.may_accept(0)
    assert not first.may_accept(4)
    clock.now += STALE_S + 0.1
    assert first.may_accept(4)
    assert first.held() == [4, None]


def test_a_draining_worker_leaves_the_table(tmp_path):
    clock = Clock()
    first, second = pair(tmp_path, clock)
    second.may_accept(0)
    second.leave()
    assert first.may_accept(10)
    assert first.held() == [10, None]


def test_a_replacement_worker_takes_over_its_predecessors_entry(tmp_path):
    clock = Clock()
    first, second = pair(tmp_path, clock)
    second.may_accept(6)
    replacement = ConnectionShare(tmp_path / "connections", 1, 2, clock)
    assert replacement.may_accept(0)
    assert not first.may_accept(6)


def test_a_server_of_one_process_has_no_share(monkeypatch):
    monkeypatch.delenv("PINPOINTD_WORKER", raising=False)
    assert ConnectionShare.of_this_worker() is None


def test_a_worker_that_stops_listening_wakes_the_others_at_once(tmp_path):
    """The worker that now qualifies may be asleep, not listening: the poke wakes its event loop."""
    first, second = pair(tmp_path, Clock())
    second.wake_others()
    assert first.wake_socket.recv(8) == b"!"
