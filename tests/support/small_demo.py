"""The small demo dataset of the tests: every SPA step on two tiny micrographs (about 20 s)."""

from __future__ import annotations

from cryolab.demo import DemoSettings

SMALL = DemoSettings(
    micrographs=2,
    size=256,
    particles_per_micrograph=20,
    frames=8,
    class2d_iterations=3,
    initial_iterations=3,
    initial_models=2,
    class3d_iterations=2,
    refine_iterations=2,
)

# the protocols of its runs, in run order
DEMO_PROTOCOLS = [
    "simulate.spa",
    "spa.motion_correct",
    "spa.ctf_estimate",
    "spa.pick",
    "spa.extract",
    "spa.classify_2d",
    "spa.initial_model",
    "spa.initial_model",
    "spa.classify_3d",
    "spa.refine_3d",
    "spa.postprocess",
]
