"""CTF estimation: accuracy on synthetic micrographs of known CTF, bad inputs, the protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from cryolab.core.errors import ParameterError
from cryolab.core.project import Project
from cryolab.em import ctffit, xp
from cryolab.em.ctf import chi
from cryolab.em.imageio import write_mrc
from cryolab.em.objects import Acquisition, SetOfCTFs, SetOfMicrographs

VOLTAGE, CS, AMPLITUDE = 300.0, 2.7, 0.1


def micrograph(
    rng: np.random.Generator,
    size: int,
    pixel_size: float,
    defocus: tuple[float, float, float],
    *,
    noise: float = 1.0,
    bfactor: float = 50.0,
    background: float = 0.0,
) -> NDArray[np.float64]:
    """White noise filtered by a known astigmatic CTF and an envelope, plus additive noise.

    ``background`` adds a low-frequency bump to the noise's amplitude spectrum (Gaussian,
    0.03 1/A wide): real spectra fall steeply from low frequencies.
    """
    k = np.fft.fftfreq(size) / pixel_size
    ky, kx = np.meshgrid(k, k, indexing="ij")
    frequency = np.hypot(kx, ky)
    direction = np.degrees(np.arctan2(ky, kx))
    ctf = -np.sin(
        chi(
            frequency,
            direction,
            *defocus,
            voltage=VOLTAGE,
            spherical_aberration=CS,
            amplitude_contrast=AMPLITUDE,
        )
    )
    envelope = np.exp(-bfactor * frequency**2 / 4)
    signal = np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size))) * ctf * envelope).real
    shaped = 1.0 + background * np.exp(-(frequency**2) / (2 * 0.03**2))
    return (
        signal + np.fft.ifft2(np.fft.fft2(noise * rng.standard_normal((size, size))) * shaped).real
    )


def random_defocus(rng: np.random.Generator) -> tuple[float, float, float]:
    mean = rng.uniform(8000.0, 30000.0)
    astigmatism = rng.uniform(0.0, 2000.0)
    return mean + astigmatism / 2, mean - astigmatism / 2, rng.uniform(0.0, 180.0)


def angle_error(found: float, true: float) -> float:
    """Difference of two axis directions, degrees in [0, 90]."""
    return abs((found - true + 90.0) % 180.0 - 90.0)


def test_fit_recovers_known_defocus_and_astigmatism() -> None:
    rng = np.random.default_rng(11)
    defocus_errors, angle_errors, scores, resolutions = [], [], [], []
    for _ in range(8):
        truth = random_defocus(rng)
        image = micrograph(rng, 1024, 1.2, truth, noise=1.5, bfactor=100.0)
        spectrum = ctffit.power_spectrum(image, 512, device="cpu")
        fit = ctffit.fit_ctf(
            spectrum,
            1.2,
            voltage=VOLTAGE,
            cs=CS,
            amplitude_contrast=AMPLITUDE,
            defocus_range=(3000.0, 40000.0),
            device="cpu",
        )
        assert fit.defocus_u >= fit.defocus_v and 0 <= fit.defocus_angle < 180
        defocus_errors += [abs(fit.defocus_u - truth[0]), abs(fit.defocus_v - truth[1])]
        if truth[0] - truth[1] > 500:
            angle_errors.append(angle_error(fit.defocus_angle, truth[2]))
        scores.append(fit.score)
        resolutions.append(fit.resolution)
    median = float(np.median(defocus_errors))
    assert median <= 100.0, f"median |defocus error| {median:.0f} A > 100 A: {defocus_errors}"
    assert angle_errors and max(angle_errors) <= 10.0, f"angle errors {angle_errors} deg"
    assert min(scores) > 0.05, f"scores {scores}"
    assert all(2.4 <= r <= 10.0 for r in resolutions), f"fit resolutions {resolutions} A"
    print(
        f"median |defocus error| {median:.0f} A, worst {max(defocus_errors):.0f} A; "
        f"largest angle error {max(angle_errors):.1f} deg; resolutions {np.round(resolutions, 1)}"
    )


def test_fit_copes_with_a_steep_background() -> None:
    rng = np.random.default_rng(17)
    errors, angles = [], []
    for _ in range(5):
        truth = random_defocus(rng)
        image = micrograph(rng, 1024, 1.0, truth, noise=1.5, bfactor=100.0, background=3.0)
        fit = ctffit.fit_ctf(
            ctffit.power_spectrum(image, 512, device="cpu"),
            1.0,
            defocus_range=(3000.0, 40000.0),
            device="cpu",
        )
        errors += [abs(fit.defocus_u - truth[0]), abs(fit.defocus_v - truth[1])]
        if truth[0] - truth[1] > 500:
            angles.append(angle_error(fit.defocus_angle, truth[2]))
    median = float(np.median(errors))
    assert median <= 100.0, f"median |defocus error| {median:.0f} A: {np.round(errors)}"
    assert max(angles, default=0.0) <= 10.0, f"angle errors {angles} deg"
    print(f"steep background: median |defocus error| {median:.0f} A, worst {max(errors):.0f} A")


def test_fit_resolution_follows_the_envelope() -> None:
    rng = np.random.default_rng(12)
    truth = (15500.0, 14500.0, 30.0)
    found = []
    for bfactor in (20.0, 600.0):
        image = micrograph(rng, 1024, 1.0, truth, noise=1.0, bfactor=bfactor)
        spectrum = ctffit.power_spectrum(image, 512, device="cpu")
        found.append(ctffit.fit_ctf(spectrum, 1.0, resolution_range=(30.0, 3.0)).resolution)
    assert found[0] < found[1], f"fit resolutions {found} A (sharp, then blurred)"


def test_power_spectrum_is_centred_and_averages_tiles() -> None:
    rng = np.random.default_rng(13)
    image = rng.standard_normal((256, 384))
    spectrum = ctffit.power_spectrum(image, 128, overlap=0.5, device="cpu")
    assert spectrum.shape == (128, 128)
    assert spectrum[64, 64] < 1e-6  # tile means removed: nothing at zero frequency
    assert spectrum.mean() == pytest.approx(1.0, rel=0.05)  # white noise of unit variance
    assert np.allclose(spectrum[1:, 1:], spectrum[1:, 1:][::-1, ::-1])  # Friedel symmetry


def test_bad_inputs_are_refused_with_clear_errors() -> None:
    rng = np.random.default_rng(14)
    with pytest.raises(ValueError, match="smaller than the spectrum box"):
        ctffit.power_spectrum(rng.standard_normal((200, 300)), 256)
    spectrum = ctffit.power_spectrum(rng.standard_normal((256, 256)), 256)
    with pytest.raises(ValueError, match="leaves no defocus to search"):
        ctffit.fit_ctf(spectrum, 1.0, defocus_range=(0.0, 0.0))
    with pytest.raises(ValueError, match="leaves no defocus to search"):
        ctffit.fit_ctf(spectrum, 1.0, defocus_range=(4e5, 5e5))
    with pytest.raises(ValueError, match="too few frequencies"):
        ctffit.fit_ctf(spectrum, 1.0, resolution_range=(10.0, 9.9))


@pytest.mark.gpu
def test_gpu_fit_matches_cpu() -> None:
    if not xp.gpu_available():
        pytest.skip("no GPU")
    rng = np.random.default_rng(15)
    image = micrograph(rng, 1024, 1.0, (21000.0, 20000.0, 60.0))
    cpu = ctffit.fit_ctf(ctffit.power_spectrum(image, 512, device="cpu"), 1.0, device="cpu")
    gpu = ctffit.fit_ctf(ctffit.power_spectrum(image, 512, device="gpu"), 1.0, device="gpu")
    assert abs(cpu.defocus_u - gpu.defocus_u) < 20 and abs(cpu.defocus_v - gpu.defocus_v) < 20


def micrographs_in(project: Project, tmp_path: Path, truths: list[tuple[float, float, float]]):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(16)
    paths = []
    for number, truth in enumerate(truths):
        image = micrograph(rng, 512, 1.0, truth, noise=0.5).astype(np.float32)
        paths.append(str(write_mrc(tmp_path / f"mic_{number}.mrc", image, 1.0)))
    acquisition = Acquisition(
        voltage=VOLTAGE, spherical_aberration=CS, amplitude_contrast=AMPLITUDE, sampling_rate=1.0
    ).to_dict()
    data = SetOfMicrographs(
        {"image.path": paths, "micrograph.name": [Path(p).stem for p in paths]},
        properties={"sampling_rate": 1.0, "acquisition": acquisition},
    )
    run = project.add_imported_run(
        "external.job",
        {
            "program": "test",
            "job": "x",
            "output_names": ["micrographs"],
            "output_types": ["SetOfMicrographs"],
        },
        {"micrographs": data},
    )
    return run.out.micrographs, data


def test_protocol_estimates_each_micrograph(project: Project, tmp_path: Path) -> None:
    truths = [(12600.0, 11400.0, 40.0), (20300.0, 19700.0, 150.0), (16000.0, 16000.0, 0.0)]
    source, data = micrographs_in(project, tmp_path, truths)
    run = project.run("spa.ctf_estimate", micrographs=source, device="cpu", box=256, parallel=2)
    ctfs = run.wait(120).out.ctfs.load()
    assert isinstance(ctfs, SetOfCTFs) and len(ctfs) == 3
    assert ctfs.properties["sampling_rate"] == 1.0
    assert ctfs.properties["acquisition"]["voltage"] == VOLTAGE
    by_uid = {int(u): n for n, u in enumerate(data.uids)}
    for row in range(len(ctfs)):
        truth = truths[by_uid[int(ctfs["micrograph_uid"][row])]]
        u, v = float(ctfs["ctf.defocus_u"][row]), float(ctfs["ctf.defocus_v"][row])
        assert abs(u - truth[0]) < 150 and abs(v - truth[1]) < 150, (u, v, truth)
        assert float(ctfs["ctf.phase_shift"][row]) == 0.0
        assert float(ctfs["ctf.score"][row]) > 0.05
        assert 2.0 <= float(ctfs["ctf.resolution"][row]) <= 30.0


def test_protocol_refuses_bad_inputs_clearly(project: Project, tmp_path: Path) -> None:
    source, _ = micrographs_in(project, tmp_path, [(15000.0, 15000.0, 0.0)])
    too_big = project.run("spa.ctf_estimate", micrographs=source, device="cpu", box=1024)
    too_big = too_big.wait(60, check=False)
    assert too_big.status == "failed" and "smaller than the box" in str(too_big.error)
    far = project.run(
        "spa.ctf_estimate", micrographs=source, device="cpu", box=256, defocus_range=[4e5, 5e5]
    ).wait(60, check=False)
    assert far.status == "failed" and "leaves no defocus to search" in str(far.error)
    with pytest.raises(ParameterError, match="no underfocus"):
        project.run("spa.ctf_estimate", micrographs=source, defocus_range=[0.0, 0.0])
