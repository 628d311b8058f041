"""Consensus protocols run through a project: CTF and picking consensus."""

from __future__ import annotations

import numpy as np
import pytest

from cryolab.core.project import Project
from cryolab.em.ctf import agreement_resolution, chi, wavelength
from cryolab.em.objects import Acquisition, SetOfCoordinates, SetOfCTFs, SetOfMicrographs
from cryolab.protocols.consensus.picking import consensus_positions

ACQUISITION = Acquisition(
    voltage=300, spherical_aberration=2.7, amplitude_contrast=0.1, sampling_rate=1.0
).to_dict()


def imported(project: Project, name: str, data):  # type: ignore[no-untyped-def]
    run = project.add_imported_run(
        "external.job",
        {"program": "test", "job": name, "output_names": ["out"], "output_types": [data.type_name]},
        {"out": data},
    )
    return run.out.out


def test_wavelength_and_phase_follow_the_textbook() -> None:
    assert wavelength(300) == pytest.approx(0.019687, abs=1e-6)
    assert wavelength(200) == pytest.approx(0.025079, abs=1e-6)
    # no aberration at zero frequency but the amplitude-contrast phase
    assert chi(
        0.0, 0.0, 1e4, 1e4, 0, voltage=300, spherical_aberration=2.7, amplitude_contrast=0.1
    ) == pytest.approx(np.arcsin(0.1))
    # astigmatism: the defocus along the major axis is defocus_u
    along_u = chi(0.1, 30, 2e4, 1e4, 30, voltage=300, spherical_aberration=0)
    along_v = chi(0.1, 120, 2e4, 1e4, 30, voltage=300, spherical_aberration=0)
    assert along_u == pytest.approx(np.pi * wavelength(300) * 2e4 * 0.01)
    assert along_v == pytest.approx(np.pi * wavelength(300) * 1e4 * 0.01)


def test_agreement_resolution_matches_the_closed_form() -> None:
    base = {
        "ctf.defocus_u": np.array([15000.0]),
        "ctf.defocus_v": np.array([15000.0]),
        "ctf.defocus_angle": np.array([0.0]),
    }
    shifted = {k: v + (200.0 if "angle" not in k else 0.0) for k, v in base.items()}
    found = agreement_resolution(
        base,
        shifted,
        voltage=300,
        spherical_aberration=2.7,
        amplitude_contrast=0.1,
        nyquist=0.5,
        samples=4096,
    )
    # pi * lambda * dz * s^2 = pi / 2  =>  s = sqrt(1 / (2 lambda dz))
    expected = 1 / np.sqrt(1 / (2 * wavelength(300) * 200.0))
    assert found[0] == pytest.approx(expected, rel=0.01)
    same = agreement_resolution(
        base, base, voltage=300, spherical_aberration=2.7, amplitude_contrast=0.1, nyquist=0.5
    )
    assert same[0] == pytest.approx(2.0)


def test_ctf_consensus_keeps_agreeing_micrographs(project: Project) -> None:
    micrographs = SetOfMicrographs(
        {"image.path": [f"m{i}.mrc" for i in range(4)]},
        properties={"sampling_rate": 1.0, "acquisition": ACQUISITION},
    )
    uids = micrographs.uids
    defocus = np.array([12000.0, 15000.0, 18000.0, 21000.0])
    first = SetOfCTFs(
        {
            "micrograph_uid": uids,
            "ctf.defocus_u": defocus,
            "ctf.defocus_v": defocus - 500,
            "ctf.defocus_angle": np.full(4, 20.0),
        },
        properties={"sampling_rate": 1.0, "acquisition": ACQUISITION},
    )
    error = np.array([0.0, 30.0, 800.0, 3000.0])  # the last two disagree before 4 A
    second = SetOfCTFs(
        {
            "micrograph_uid": uids[::-1],
            "ctf.defocus_u": (defocus + error)[::-1],
            "ctf.defocus_v": (defocus - 500 + error)[::-1],
            "ctf.defocus_angle": np.full(4, 20.0),
        }
    )
    run = project.run(
        "consensus.ctf",
        ctfs=imported(project, "a", first),
        other=imported(project, "b", second),
        micrographs=imported(project, "m", micrographs),
        resolution=4.0,
    ).wait(60)
    kept = run.out.ctfs.load()
    assert isinstance(kept, SetOfCTFs)
    assert kept["micrograph_uid"].tolist() == uids[:2].tolist()
    assert (kept["consensus.resolution"] <= 4.0).all()
    assert len(run.out.discarded) == 2
    assert run.out.micrographs.load().uids.tolist() == uids[:2].tolist()
    assert run.summary() == "CTF consensus: ctfs: 2 items, discarded: 2 items, micrographs: 2 items"


def test_ctf_consensus_without_acquisition_fails_clearly(project: Project) -> None:
    ctfs = SetOfCTFs(
        {
            "micrograph_uid": np.array([1], dtype=np.uint64),
            "ctf.defocus_u": [1e4],
            "ctf.defocus_v": [1e4],
            "ctf.defocus_angle": [0.0],
        }
    )
    source = imported(project, "a", ctfs)
    run = project.run("consensus.ctf", ctfs=source, other=source).wait(60, check=False)
    assert run.status == "failed" and "acquisition" in str(run.error)


def test_consensus_positions_votes() -> None:
    x = np.array([100.0, 102.0, 300.0, 500.0, 501.0, 499.0])
    y = np.array([100.0, 101.0, 300.0, 500.0, 500.0, 502.0])
    picker = np.array([0, 1, 0, 0, 1, 2])
    cx, cy, votes = consensus_positions(x, y, picker, radius=5.0, min_votes=2)
    assert sorted(votes.tolist()) == [2.0, 3.0]
    centre = np.argmax(votes)
    assert cx[centre] == pytest.approx(500.0) and cy[centre] == pytest.approx(500.667, abs=1e-3)
    assert consensus_positions(x, y, picker, radius=5.0, min_votes=4)[0].size == 0


def test_picking_consensus_through_a_project(project: Project) -> None:
    rng = np.random.default_rng(3)
    truth = rng.uniform(50, 950, size=(40, 2))
    micrograph = np.uint64(77)
    pickers = []
    for index in range(3):
        found = truth[rng.random(40) < 0.8] + rng.normal(0, 1.5, size=(1, 2))
        false = rng.uniform(50, 950, size=(10, 2))
        points = np.vstack([found, false])
        pickers.append(
            imported(
                project,
                f"p{index}",
                SetOfCoordinates(
                    {
                        "micrograph_uid": np.full(len(points), micrograph),
                        "coordinate.x": points[:, 0],
                        "coordinate.y": points[:, 1],
                    }
                ),
            )
        )
    run = project.run("consensus.picking", coordinates=pickers, min_votes=2, radius=8).wait(60)
    kept = run.out.coordinates.load()
    assert isinstance(kept, SetOfCoordinates)
    nearest = np.min(
        np.hypot(
            kept["coordinate.x"][:, None] - truth[None, :, 0],
            kept["coordinate.y"][:, None] - truth[None, :, 1],
        ),
        axis=1,
    )
    precision = np.mean(nearest < 8)
    assert precision > 0.9, "false positives of single pickers must be voted out"
    assert len(kept) >= 30
    assert (kept["consensus.votes"] >= 2).all()


def test_picking_consensus_refuses_more_votes_than_pickers(project: Project) -> None:
    source = imported(
        project,
        "p",
        SetOfCoordinates(
            {
                "micrograph_uid": np.array([1], dtype=np.uint64),
                "coordinate.x": [1.0],
                "coordinate.y": [1.0],
            }
        ),
    )
    from cryolab.core.errors import ParameterError

    with pytest.raises(ParameterError, match="3 votes needed but only 1 picker"):
        project.run("consensus.picking", coordinates=[source], min_votes=3)


def test_alignment_consensus_by_angle_and_shift(project: Project) -> None:
    from cryolab.em.geometry import euler_to_matrix, matrix_to_euler
    from cryolab.em.objects import SetOfParticles

    rng = np.random.default_rng(9)
    count = 200
    rot, tilt, psi = (
        rng.uniform(-180, 180, count),
        rng.uniform(0, 180, count),
        rng.uniform(-180, 180, count),
    )
    first = SetOfParticles(
        {
            "transform.rot": rot,
            "transform.tilt": tilt,
            "transform.psi": psi,
            "transform.shift_x": rng.normal(0, 3, count),
            "transform.shift_y": rng.normal(0, 3, count),
        }
    )
    # the second assignment: the same orientation written with other Euler angles
    # (exactly equivalent), then 50 particles turned by 30 degrees and 20 shifted by 10 A
    equivalent = matrix_to_euler(euler_to_matrix(rot, tilt, psi))
    turned = np.zeros(count, dtype=bool)
    turned[:50] = True
    moved = np.zeros(count, dtype=bool)
    moved[50:70] = True
    second_rot = np.where(turned, np.asarray(equivalent.rot) + 30.0, equivalent.rot)
    second_tilt = np.where(turned, 90.0, equivalent.tilt)
    second = first.with_columns(
        **{
            "transform.rot": second_rot,
            "transform.tilt": np.where(turned, second_tilt, equivalent.tilt),
            "transform.psi": equivalent.psi,
            "transform.shift_x": first["transform.shift_x"] + np.where(moved, 10.0, 0.0),
        }
    )
    second = second.take(rng.permutation(count))  # order must not matter: matched by uid
    a = project.add_imported_run(
        "external.job",
        {"program": "t", "job": "a", "output_names": ["p"], "output_types": ["SetOfParticles"]},
        {"p": first},
    ).out.p
    b = project.add_imported_run(
        "external.job",
        {"program": "t", "job": "b", "output_names": ["p"], "output_types": ["SetOfParticles"]},
        {"p": second},
    ).out.p
    run = project.run("consensus.alignment", particles=a, other=b, angle=5, shift=2).wait(60)
    kept = run.out.particles.load()
    assert isinstance(kept, SetOfParticles)
    expected = first.uids[~turned & ~moved]
    assert sorted(kept.uids.tolist()) == sorted(expected.tolist())
    assert np.all(kept["consensus.angle_difference"] < 1e-6)
    discarded = run.out.discarded.load()
    assert len(discarded) == 70
    assert np.all(discarded.subset(first.uids[moved])["consensus.shift_difference"] > 9.99)
