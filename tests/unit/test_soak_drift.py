"""The soak's RSS by process (services/soak.py Drift): a killed process is measured from its first row after the
restart, the others from their first row."""

from __future__ import annotations

from services.soak import Drift


def test_a_restarted_process_is_measured_from_its_first_row_after_the_restart() -> None:
    drift = Drift()
    drift.add(5, {"decoder": 900.0, "gateway": 300.0}, set())
    drift.add(10, {"decoder": 1000.0, "gateway": 310.0}, set())
    drift.add(15, {"decoder": 700.0, "gateway": 320.0}, {"decoder"})  # killed and started again before this row
    drift.add(20, {"decoder": 770.0, "gateway": 330.0}, set())
    lines = drift.table()
    assert "decoder: 700 MB at minute 15 (its first row since it started) -> 770 MB (+10.0%)" in lines
    assert "gateway: 300 MB at minute 5 (its first row since it started) -> 330 MB (+10.0%)" in lines
    assert lines[-1] == "mesh, each process against its own first row: 1000 -> 1100 MB (+10.0%)"
    assert lines[0] == "| minute | decoder MB | gateway MB |" and len([row for row in lines if row.startswith("| ")]) == 5
