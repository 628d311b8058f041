"""Gluing operations on EM sets: ids kept, particles by micrographs, split by micrograph."""

from __future__ import annotations

import numpy as np
import pytest

from cryolab.core.project import Project
from cryolab.core.sets import Set
from cryolab.em.objects import SetOfMicrographs, SetOfParticles


def imported(project: Project, data):  # type: ignore[no-untyped-def]
    run = project.add_imported_run(
        "external.job",
        {"program": "test", "job": "x", "output_names": ["out"], "output_types": [data.type_name]},
        {"out": data},
    )
    return run.out.out


@pytest.fixture
def dataset() -> tuple[SetOfMicrographs, SetOfParticles]:
    micrographs = SetOfMicrographs(
        {"image.path": [f"mic{i}.mrc" for i in range(6)]}, properties={"sampling_rate": 1.1}
    )
    rng = np.random.default_rng(0)
    owner = rng.integers(0, 6, 300)
    particles = SetOfParticles(
        {
            "image.path": ["stack.mrcs"] * 300,
            "image.index": np.arange(1, 301),
            "micrograph_uid": micrographs.uids[owner],
            "ctf.defocus_u": rng.uniform(1e4, 3e4, 300),
        },
        properties={"sampling_rate": 1.1},
    )
    return micrographs, particles


def test_particles_of_a_subset_of_micrographs(project: Project, dataset) -> None:  # type: ignore[no-untyped-def]
    micrographs, particles = dataset
    mics = imported(project, micrographs)
    parts = imported(project, particles)
    chosen = project.run("sets.subset", source=mics, where="`image.path` != 'mic0.mrc'").wait(30)
    kept = project.run(
        "sets.subset", source=parts, mode="linked", linked_to=chosen.out.subset
    ).wait(30)
    result = kept.out.subset.load()
    assert isinstance(result, SetOfParticles) and result.sampling_rate == 1.1
    expected = particles["micrograph_uid"] != micrographs.uids[0]
    assert sorted(result.uids.tolist()) == sorted(particles.uids[expected].tolist())
    assert set(result["micrograph_uid"]) <= set(micrographs.uids[1:])
    # uids and micrograph uids kept through the subset
    original = dict(zip(particles.uids.tolist(), particles["micrograph_uid"].tolist(), strict=True))
    assert all(
        original[u] == m
        for u, m in zip(result.uids.tolist(), result["micrograph_uid"].tolist(), strict=True)
    )
    dropped = project.run(
        "sets.subset", source=parts, mode="linked", linked_to=chosen.out.subset, exclude=True
    ).wait(30)
    assert len(dropped.out.subset) + len(result) == len(particles)


def test_split_by_micrograph_keeps_micrographs_whole(project: Project, dataset) -> None:  # type: ignore[no-untyped-def]
    _, particles = dataset
    run = project.run(
        "sets.split", source=imported(project, particles), parts=2, group_by="micrograph_uid"
    ).wait(30)
    first, second = run.out.part1.load(), run.out.part2.load()
    assert isinstance(first, SetOfParticles)
    assert not set(first["micrograph_uid"]) & set(second["micrograph_uid"])
    assert len(first) + len(second) == len(particles)
    assert abs(len(first) - len(second)) < 100  # balanced by particle count


def test_random_halves_and_merge_give_the_particles_back(project: Project, dataset) -> None:  # type: ignore[no-untyped-def]
    _, particles = dataset
    halves = project.run("sets.split", source=imported(project, particles), parts=2).wait(30)
    merged = project.run("sets.merge", sets=[halves.out.part1, halves.out.part2]).wait(30)
    back = merged.out.merged.load()
    assert isinstance(back, SetOfParticles)
    assert sorted(back.uids.tolist()) == sorted(particles.uids.tolist())


def test_set_split_groups_whole() -> None:
    s = Set({"g": [1, 1, 2, 2, 2, 3, 4, 4]})
    parts = s.split(2, groups="g")
    # groups in order of appearance, each to the part with fewest rows so far
    assert [sorted(set(p["g"].tolist())) for p in parts] == [[1, 3, 4], [2]]
    assert sum(len(p) for p in parts) == 8
    again = s.split(2, groups="g", randomize=True, seed=5)
    assert [p.uids.tolist() for p in again] == [
        p.uids.tolist() for p in s.split(2, groups="g", randomize=True, seed=5)
    ]


def test_linking_by_a_missing_column_fails_clearly(project: Project, dataset) -> None:  # type: ignore[no-untyped-def]
    micrographs, _ = dataset
    mics = imported(project, micrographs)
    run = project.run(
        "sets.subset", source=mics, mode="linked", linked_to=mics, link="movie_uid"
    ).wait(30, check=False)
    assert run.status == "failed" and "no column 'movie_uid'" in str(run.error)
