"""Where a posting's CPU goes, from samples of the kernel's counters: the
kinds of process, a window's difference, and per posting."""

import pytest

from ledger.ops import cpu


def test_processes_are_told_apart_by_their_command_lines():
    assert cpu.kind_of(["/v/bin/python3", "-m", "ledger.cli", "serve", "--port", "1"]) == "services"
    assert cpu.kind_of(["/v/bin/ledger", "serve"]) == "services"
    assert cpu.kind_of(["/v/bin/python3", "-m", "ledger.background"]) == "background"
    assert cpu.kind_of(["/pg/bin/postgres", "-D", "/data"]) == "database"
    assert cpu.kind_of(["postgres: ledger_writer ledger [local] idle"]) == "database"
    assert cpu.kind_of(["/v/bin/python3", "-m", "locust", "--worker"]) == "load"
    assert cpu.kind_of(["/v/bin/ledger", "bench"]) == "other"
    assert cpu.kind_of([]) == "other"


def test_a_window_costs_the_difference_of_the_samples_around_it():
    samples = [
        (10.0, {1: ("database", 5.0), 2: ("services", 1.0)}),
        (11.0, {1: ("database", 5.5), 2: ("services", 1.4), 3: ("load", 0.1)}),
        (12.0, {1: ("database", 6.5), 2: ("services", 2.0), 3: ("load", 0.3)}),
        # pid 2 came back as another kind of process: not counted
        (13.0, {1: ("database", 7.0), 2: ("other", 0.1), 3: ("load", 0.4)}),
    ]
    used = cpu.cpu_by_kind(samples, 10.5, 12.0)
    # From the sample before the window (10.0) to the one at its end (12.0);
    # the load process counts from when it was first seen (11.0).
    assert used == pytest.approx(
        {"database": 1.5, "services": 1.0, "background": 0.0, "load": 0.2, "other": 0.0}
    )
    assert cpu.cpu_by_kind(samples, 12.5, 12.9)["database"] == pytest.approx(0.5)
    assert cpu.cpu_by_kind(samples, 20.0, 30.0) == dict.fromkeys(cpu.KINDS, 0.0)


def test_per_posting_is_milliseconds_and_its_total_the_cores_per_thousand():
    used = {"database": 1.5, "services": 1.0, "background": 0.25, "load": 0.2, "other": 0.05}
    cost = cpu.per_posting(used, 1000)
    assert cost == {"database": 1.5, "services": 1.0, "background": 0.25, "load": 0.2,
                    "other": 0.05, "total": 3.0}  # fmt: skip
    assert cpu.per_posting(used, 0) is None


def test_each_step_gets_its_cost_from_its_own_window_and_postings():
    samples = [(float(t), {1: ("services", float(t))}) for t in range(0, 21)]
    levels = [{"start": 0.0, "end": 10.0}, {"start": 10.0, "end": 20.0}]
    acks = [0.5 + i for i in range(10)] + [10.25 + i * 0.5 for i in range(20)]
    cpu.steps_cost(samples, levels, acks)
    assert levels[0]["cpu_ms_per_posting"]["services"] == 1000.0  # 10 s over 10 postings
    assert levels[1]["cpu_ms_per_posting"]["services"] == 500.0  # 10 s over 20 postings
