"""The built-in protocols, registered through the ``cryolab.plugins`` entry point like any plugin.

Only names and import targets are listed here, so discovery imports no protocol code.
"""

from cryolab._version import __version__
from cryolab.core.plugins import Plugin

plugin = Plugin(
    name="cryolab",
    version=__version__,
    set_types=("cryolab.em.objects",),
    comparators={
        "SetOfMovies": "cryolab.em.reproducibility:MOVIES",
        "SetOfImages": "cryolab.em.reproducibility:IMAGES",
    },
    protocols={
        "consensus.alignment": "cryolab.protocols.consensus.alignment:AlignmentConsensus",
        "consensus.ctf": "cryolab.protocols.consensus.ctf:CtfConsensus",
        "consensus.picking": "cryolab.protocols.consensus.picking:PickingConsensus",
        "import.coordinates": "cryolab.protocols.imports.coordinates:ImportCoordinates",
        "import.ctfs": "cryolab.protocols.imports.ctfs:ImportCtfs",
        "import.particles": "cryolab.protocols.imports.particles:ImportParticles",
        "import.movies": "cryolab.protocols.imports.movies:ImportMovies",
        "import.micrographs": "cryolab.protocols.imports.micrographs:ImportMicrographs",
        "import.volumes": "cryolab.protocols.imports.volumes:ImportVolumes",
        "external.job": "cryolab.protocols.external:ExternalJob",
        "sets.import_table": "cryolab.protocols.sets.import_table:ImportTable",
        "sets.subset": "cryolab.protocols.sets.subset:Subset",
        "sets.merge": "cryolab.protocols.sets.merge:Merge",
        "sets.split": "cryolab.protocols.sets.split:Split",
        "sets.join": "cryolab.protocols.sets.join:Join",
        "simulate.spa": "cryolab.protocols.simulate.spa:SimulateSpa",
        "spa.pick": "cryolab.protocols.spa.pick:Pick",
        "spa.extract": "cryolab.protocols.spa.extract:Extract",
        "spa.reconstruct": "cryolab.protocols.spa.reconstruct:Reconstruct",
        "spa.classify_2d": "cryolab.protocols.spa.classify_2d:Classify2D",
        "spa.initial_model": "cryolab.protocols.spa.initial_model:InitialModel",
        "spa.classify_3d": "cryolab.protocols.spa.classify_3d:Classify3D",
        "spa.refine_3d": "cryolab.protocols.spa.refine_3d:Refine3D",
        "spa.fsc": "cryolab.protocols.spa.fsc:Fsc",
        "spa.postprocess": "cryolab.protocols.spa.postprocess:Postprocess",
        "spa.motion_correct": "cryolab.protocols.spa.motion_correct:MotionCorrect",
        "spa.ctf_estimate": "cryolab.protocols.spa.ctf_estimate:CtfEstimate",
    },
)
