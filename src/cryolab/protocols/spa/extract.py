"""``spa.extract``: cut particle boxes out of micrographs into one stack per micrograph."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cryolab.core.params import BoolParam, ChoiceParam, InputParam, IntParam, Issue
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids
from cryolab.em.extract import CtfParams, downsampled_sampling_rate, extract_boxes
from cryolab.em.imageio import write_stack
from cryolab.em.objects import (
    Acquisition,
    SetOfCoordinates,
    SetOfCTFs,
    SetOfMicrographs,
    SetOfParticles,
)
from cryolab.protocols.spa.pick import ADVANCED, pixel_size, require_items

STACKS = "particles"  # folder of the run holding the per-micrograph stacks


class Extract(Protocol):
    """Extract particles: one box per coordinate, written as one stack per micrograph.

    A coordinate lands on the box centre ``(N // 2, N // 2)``; boxes that leave the micrograph
    are skipped. Per box: optional phase flip (needs ``ctfs``), optional contrast inversion,
    optional Fourier-cropping to ``downsample_to`` pixels (the output pixel size grows by
    ``box / downsample_to``), and normalisation of the background (outside 75% of the box
    radius) to mean 0 and standard deviation 1. With ``ctfs``, the particles get their
    micrograph's ``ctf.*`` columns and micrographs without a CTF are left out.
    """

    name = "spa.extract"
    deterministic = True
    label = "Particle extraction"
    micrographs = InputParam(SetOfMicrographs, label="Micrographs")
    coordinates = InputParam(SetOfCoordinates, label="Coordinates")
    ctfs = InputParam(
        SetOfCTFs, default=None, required=False, label="CTFs", help="Put ctf.* on particles."
    )
    box = IntParam(default=None, min=4, unit="px", help="Box size in micrograph pixels.")
    downsample_to = IntParam(
        default=None, required=False, min=4, unit="px", help="New box size (Fourier cropping)."
    )
    invert = BoolParam(default=True, help="Invert the contrast (protein bright afterwards).")
    normalise = BoolParam(default=True, help="Background to mean 0 and standard deviation 1.")
    phase_flip = BoolParam(default=False, help="Flip the phases where the CTF is negative.")
    device = ChoiceParam(["auto", "cpu", "gpu"], default="auto", section=ADVANCED)
    parallel = IntParam(
        default=4, min=1, max=1000, section=ADVANCED, help="Steps the micrographs are shared by."
    )
    outputs = {"particles": Output(SetOfParticles, help="Particle images in stacks")}

    def check(self) -> list[Issue]:
        issues = []
        small = self.values["downsample_to"]
        if small is not None and small > self.values["box"]:
            issues.append(
                Issue("downsample_to", f"{small} px is larger than the box {self.values['box']}")
            )
        if self.values["phase_flip"] and not self.values.get("ctfs"):
            issues.append(Issue("ctfs", "phase flipping needs the micrographs' CTFs"))
        return issues

    def plan(self) -> Iterator[Step]:
        shards = int(self.values["parallel"])
        for shard in range(shards):
            yield Step(f"extract-{shard:04d}", "extract", {"shard": shard, "shards": shards})

    def extract(self, ctx: StepContext, shard: int, shards: int) -> None:
        """Extract the micrographs ``shard``, ``shard + shards``, ... one stack each."""
        micrographs: Set = ctx.input("micrographs")
        coordinates: Set = ctx.input("coordinates")
        require_items(micrographs, "micrographs")
        require_items(coordinates, "coordinates")
        size = pixel_size(micrographs)
        box = int(self.values["box"])
        new_box = self.values["downsample_to"]
        new_size = downsampled_sampling_rate(size, box, new_box)
        ctfs: Set | None = ctx.input("ctfs") if self.values.get("ctfs") else None
        acquisition = Acquisition.from_dict(
            micrographs.properties.get("acquisition")
            or (ctfs.properties.get("acquisition") if ctfs is not None else None)
            or {"sampling_rate": size}
        )
        ctf_rows: dict[int, int] = {}
        ctf_columns: list[str] = []
        if ctfs is not None:
            ctf_rows = {int(u): i for i, u in enumerate(ctfs["micrograph_uid"])}
            ctf_columns = [c for c in ctfs.columns if c.startswith("ctf.")]
        acquired = acquisition.to_dict()
        acquired["sampling_rate"] = new_size
        ctx.update_properties(
            "particles",
            sampling_rate=new_size,
            acquisition=acquired,
            box_size=int(new_box or box),
            inverted=bool(self.values["invert"]),
            phase_flipped=bool(self.values["phase_flip"]),
        )
        owner = np.asarray(coordinates["micrograph_uid"]).astype(np.uint64)
        order = np.argsort(owner, kind="stable")
        sorted_owner = owner[order]
        folder = ctx.run_dir / STACKS
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(shard, len(micrographs), shards):
            item = micrographs[index]
            uid = np.uint64(micrographs.uids[index])
            lo = int(np.searchsorted(sorted_owner, uid, side="left"))
            hi = int(np.searchsorted(sorted_owner, uid, side="right"))
            rows = order[lo:hi]
            if len(rows) == 0:
                continue
            ctf_row = ctf_rows.get(int(uid))
            if ctfs is not None and ctf_row is None:
                ctx.log.warning("%s has no CTF: left out", item.path.name)
                continue
            params = None
            if self.values["phase_flip"] and ctfs is not None and ctf_row is not None:
                params = self.ctf_params(ctfs, ctf_row, acquisition, size)
            image = item.read()
            if image.ndim == 3:
                image = image[0]
            xy = np.column_stack(
                [coordinates["coordinate.x"][rows], coordinates["coordinate.y"][rows]]
            ).astype(np.float64)
            try:
                stack, kept = extract_boxes(
                    image,
                    xy,
                    box,
                    invert=self.values["invert"],
                    normalise_background=self.values["normalise"],
                    ctf=params,
                    downsample_to=new_box,
                    device=self.values["device"],
                )
            except ValueError as err:
                raise ValueError(f"{item.path.name}: {err}") from None
            if len(kept) == 0:
                continue
            path = folder / f"{Path(item.path).stem}_{int(uid)}.mrcs"
            write_stack(path, stack, voxel_size=new_size)
            taken = rows[kept]
            out: dict[str, Any] = {
                "uid": new_uids(len(kept), ctx.rng),
                "image.path": [str(path.resolve())] * len(kept),
                "image.index": np.arange(1, len(kept) + 1, dtype=np.int64),
                "micrograph_uid": np.full(len(kept), uid, dtype=np.uint64),
                "coordinate.x": xy[kept, 0],
                "coordinate.y": xy[kept, 1],
                "coordinate_uid": coordinates.uids[taken],
            }
            if ctfs is not None and ctf_row is not None:
                for name in ctf_columns:
                    out[name] = np.repeat(np.asarray(ctfs[name])[[ctf_row]], len(kept))
            ctx.append("particles", out)
            ctx.log.info(
                "%s: %d particles (%d too close to the edge)",
                item.path.name,
                len(kept),
                len(rows) - len(kept),
            )

    @staticmethod
    def ctf_params(ctfs: Set, row: int, acquisition: Acquisition, size: float) -> CtfParams:
        """The CTF of one micrograph for phase flipping."""

        def value(name: str, default: float = 0.0) -> float:
            if name not in ctfs:
                return default
            found = ctfs[name][row]
            return default if found is None or not np.isfinite(found) else float(found)

        return CtfParams(
            defocus_u=value("ctf.defocus_u"),
            defocus_v=value("ctf.defocus_v", value("ctf.defocus_u")),
            defocus_angle=value("ctf.defocus_angle"),
            sampling_rate=size,
            voltage=acquisition.voltage,
            spherical_aberration=acquisition.spherical_aberration,
            amplitude_contrast=acquisition.amplitude_contrast,
            phase_shift=value("ctf.phase_shift"),
        )

    def methods(self) -> str:
        v = self.values
        text = f"Particles were extracted in boxes of {v['box']} px"
        steps = []
        if v["phase_flip"]:
            steps.append("phase-flipped")
        if v["invert"]:
            steps.append("contrast-inverted")
        if v["downsample_to"]:
            steps.append(f"downsampled to {v['downsample_to']} px by Fourier cropping")
        if v["normalise"]:
            steps.append("normalised to a zero-mean, unit-variance background")
        if steps:
            text += ", " + ", ".join(steps[:-1]) + (" and " if len(steps) > 1 else "") + steps[-1]
        return text + "."
