"""Comparison of two runs: parameter diff, output counts, uid overlap, distributions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cryolab.core.compare import STATS, distribution_diff, uid_overlap
from cryolab.core.errors import RunNotFoundError
from cryolab.core.project import Project

TIMEOUT = 60


@pytest.fixture
def particles(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "particles.parquet"
    pq.write_table(pa.table({"score": rng.random(500), "defocus": rng.normal(2e4, 3e3, 500)}), path)
    return path


def imported(project: Project, path: Path) -> int:
    return project.run("sets.import_table", files=str(path), executor="sync").wait(TIMEOUT).id


def subset(project: Project, source: int, where: str) -> int:
    run = project.run("sets.subset", source=f"{source}.rows", where=where, executor="sync")
    return run.wait(TIMEOUT).id


def test_a_changed_parameter_shows_in_the_comparison(project: Project, particles: Path) -> None:
    """The acceptance test of issue 6: change a parameter, see the difference."""
    source = imported(project, particles)
    strict, loose = subset(project, source, "score > 0.5"), subset(project, source, "score > 0.3")
    comparison = project.compare(strict, loose)
    data = comparison.to_dict()
    assert data["a"]["id"] == strict
    assert data["b"]["protocol"] == "sets.subset"
    assert data["params"]["same_protocol"] is True
    assert data["params"]["changed"] == [{"name": "where", "a": "score > 0.5", "b": "score > 0.3"}]
    assert "source" in data["params"]["unchanged"]
    assert data["params"]["only_a"] == data["params"]["only_b"] == {}

    out = data["outputs"]["subset"]
    count_a, count_b = out["a"]["count"], out["b"]["count"]
    assert 0 < count_a < count_b < 500
    assert out["a"]["state"] == out["b"]["state"] == "closed"
    assert out["uids"] == {
        "shared": count_a,
        "only_a": 0,
        "only_b": count_b - count_a,
        "relation": "a_in_b",
    }
    assert out["columns"] == {"shared": ["score", "defocus"], "only_a": [], "only_b": []}
    score = out["distributions"]["score"]
    assert score["a"]["count"] == count_a
    assert score["a"]["min"] > 0.5 >= score["b"]["min"] > 0.3
    assert score["a"]["mean"] > score["b"]["mean"]
    assert list(score["a"]) == list(STATS)
    assert 0 < score["ks"]["statistic"] <= 1
    assert score["ks"]["pvalue"] < 0.05
    json.dumps(data, allow_nan=False)  # plain JSON

    text = str(comparison)
    assert f"compare run {strict} (sets.subset, finished) with run {loose}" in text
    where = next(line for line in text.splitlines() if line.strip().startswith("where"))
    assert where.split() == ["where", "score", ">", "0.5", "score", ">", "0.3"]
    assert f"{count_a} shared, 0 only in {strict}" in text
    assert f"({strict} is contained in {loose})" in text
    html = comparison._repr_html_()
    assert "<td>score &gt; 0.5</td><td>score &gt; 0.3</td>" in html
    assert "<th>KS D</th>" in html


def test_identical_runs(project: Project, particles: Path) -> None:
    source = imported(project, particles)
    first, second = subset(project, source, "score > 0.5"), subset(project, source, "score > 0.5")
    data = project.compare(first, second).to_dict()
    assert data["params"]["changed"] == []
    out = data["outputs"]["subset"]
    assert out["a"]["count"] == out["b"]["count"]
    assert out["uids"]["only_a"] == out["uids"]["only_b"] == 0
    assert out["uids"]["relation"] == "equal"
    for dist in out["distributions"].values():
        assert dist["a"] == dist["b"]
        assert dist["ks"]["statistic"] == 0
    assert "parameters: 0 differ" in str(project.compare(first, second))


def test_runs_of_different_protocols(project: Project, particles: Path) -> None:
    source = imported(project, particles)
    picked = subset(project, source, "score > 0.9")
    data = project.compare(source, str(picked)).to_dict()
    assert data["params"]["same_protocol"] is False
    assert data["params"]["only_a"] == {"files": str(particles)}
    assert data["params"]["only_b"]["where"] == "score > 0.9"
    rows, sub = data["outputs"]["rows"], data["outputs"]["subset"]
    assert rows["a"]["count"] == 500
    assert rows["b"] is None
    assert sub["a"] is None
    assert rows["uids"] is sub["uids"] is None
    text = str(project.compare(source, picked))
    assert "(unset)" in text
    assert "(none)" in text


def test_a_column_only_on_one_side(project: Project, particles: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.parquet"
    pq.write_table(
        pa.table({"score": np.linspace(0, 1, 50), "label": ["x"] * 50, "cls": np.arange(50)}),
        other,
    )
    first, second = imported(project, particles), imported(project, other)
    out = project.compare(first, second).to_dict()["outputs"]["rows"]
    assert out["columns"] == {
        "shared": ["score"],
        "only_a": ["defocus"],
        "only_b": ["label", "cls"],
    }
    assert list(out["distributions"]) == ["score"]  # numeric columns present on both sides
    assert out["uids"] == {"shared": 0, "only_a": 500, "only_b": 50, "relation": "disjoint"}
    text = str(project.compare(first, second))
    assert f"columns only in {first}: defocus" in text
    assert f"columns only in {second}: label, cls" in text


def test_an_output_that_does_not_exist_yet(project: Project, particles: Path) -> None:
    source = imported(project, particles)
    saved = project.save("sets.subset", source=f"{source}.rows", where="score > 0.5")
    done = subset(project, source, "score > 0.2")
    data = project.compare(saved.id, done).to_dict()
    out = data["outputs"]["subset"]
    assert out["a"] == {"ref": f"{saved.id}.subset", "type": "Set", "state": "absent", "count": 0}
    assert out["b"]["state"] == "closed"
    assert out["uids"] is None
    assert out["columns"] is None
    assert out["distributions"] == {}
    assert data["a"]["status"] == "saved"
    assert "absent" in str(project.compare(saved.id, done))


def test_an_unknown_run(project: Project, particles: Path) -> None:
    source = imported(project, particles)
    with pytest.raises(RunNotFoundError, match="no run 9"):
        project.compare(source, 9)


def test_uid_overlap_and_empty_samples() -> None:
    assert uid_overlap(np.array([1, 2, 3], np.uint64), np.array([3, 4], np.uint64)) == {
        "shared": 1,
        "only_a": 2,
        "only_b": 1,
        "relation": "partial",
    }
    assert uid_overlap(np.array([], np.uint64), np.array([5], np.uint64))["relation"] == "a_in_b"
    assert uid_overlap(np.array([7, 5], np.uint64), np.array([5], np.uint64))["relation"] == (
        "b_in_a"
    )
    empty = distribution_diff(np.array([]), np.array([1.0, 2.0]))
    assert empty["a"]["count"] == 0
    assert empty["a"]["mean"] is None
    assert empty["ks"] == {"statistic": None, "pvalue": None}


def test_millions_of_rows_stay_fast() -> None:
    rng = np.random.default_rng(2)
    uids = rng.permutation(np.arange(1, 2_000_001, dtype=np.uint64))
    start = time.perf_counter()
    overlap = uid_overlap(uids, uids[::2])
    dist = distribution_diff(rng.random(2_000_000), rng.random(1_000_000))
    assert time.perf_counter() - start < 10
    assert overlap == {"shared": 1_000_000, "only_a": 1_000_000, "only_b": 0, "relation": "b_in_a"}
    assert dist["ks"]["statistic"] < 0.01
