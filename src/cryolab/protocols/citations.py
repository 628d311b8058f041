"""BibTeX entries of the methods the built-in protocols follow, shared by several of them.

Protocols list them in ``citations`` and cite them in ``methods()`` with ``[key]`` markers;
reports number the markers and print the bibliography (:mod:`cryolab.core.report`).
"""

from __future__ import annotations

ROHOU2015 = """@article{rohou2015ctffind4,
  title = {CTFFIND4: Fast and accurate defocus estimation from electron micrographs},
  author = {Rohou, Alexis and Grigorieff, Nikolaus},
  journal = {Journal of Structural Biology},
  volume = {192},
  number = {2},
  pages = {216--221},
  year = {2015},
  doi = {10.1016/j.jsb.2015.08.008}
}"""

GRANT2015 = """@article{grant2015dose,
  title = {Measuring the optimal exposure for single particle cryo-EM using a 2.6 {\\AA}
           reconstruction of rotavirus VP6},
  author = {Grant, Timothy and Grigorieff, Nikolaus},
  journal = {eLife},
  volume = {4},
  pages = {e06980},
  year = {2015},
  doi = {10.7554/eLife.06980}
}"""

VOSS2009 = """@article{voss2009dogpicker,
  title = {DoG Picker and TiltPicker: software tools to facilitate particle selection in
           single particle electron microscopy},
  author = {Voss, Neil R. and Yoshioka, Craig K. and Radermacher, Michael and Potter,
            Clinton S. and Carragher, Bridget},
  journal = {Journal of Structural Biology},
  volume = {166},
  number = {2},
  pages = {205--213},
  year = {2009},
  doi = {10.1016/j.jsb.2009.01.004}
}"""

ROSEMAN2003 = """@article{roseman2003findem,
  title = {Particle finding in electron micrographs using a fast local correlation algorithm},
  author = {Roseman, Alan M.},
  journal = {Ultramicroscopy},
  volume = {94},
  number = {3--4},
  pages = {225--236},
  year = {2003},
  doi = {10.1016/S0304-3991(02)00333-9}
}"""

SCHERES2012 = """@article{scheres2012relion,
  title = {A Bayesian view on cryo-EM structure determination},
  author = {Scheres, Sjors H. W.},
  journal = {Journal of Molecular Biology},
  volume = {415},
  pages = {406--418},
  year = {2012},
  doi = {10.1016/j.jmb.2011.11.010}
}"""

SCHERES2012_OVERFITTING = """@article{scheres2012overfitting,
  title = {Prevention of overfitting in cryo-EM structure determination},
  author = {Scheres, Sjors H. W. and Chen, Shaoxia},
  journal = {Nature Methods},
  volume = {9},
  number = {9},
  pages = {853--854},
  year = {2012},
  doi = {10.1038/nmeth.2115}
}"""

HENDERSON2012 = """@article{henderson2012validation,
  title = {Outcome of the first electron microscopy validation task force meeting},
  author = {Henderson, Richard and Sali, Andrej and Baker, Matthew L. and Carragher, Bridget
            and others},
  journal = {Structure},
  volume = {20},
  number = {2},
  pages = {205--214},
  year = {2012},
  doi = {10.1016/j.str.2011.12.014}
}"""

ROSENTHAL2003 = """@article{rosenthal2003optimal,
  title = {Optimal determination of particle orientation, absolute hand, and contrast loss in
           single-particle electron cryomicroscopy},
  author = {Rosenthal, Peter B. and Henderson, Richard},
  journal = {Journal of Molecular Biology},
  volume = {333},
  number = {4},
  pages = {721--745},
  year = {2003},
  doi = {10.1016/j.jmb.2003.07.013}
}"""

CHEN2013 = """@article{chen2013noise,
  title = {High-resolution noise substitution to measure overfitting and validate resolution
           in 3D structure determination by single particle electron cryomicroscopy},
  author = {Chen, Shaoxia and McMullan, Greg and Faruqi, Abdul R. and Murshudov, Garib N.
            and Short, Judith M. and Scheres, Sjors H. W. and Henderson, Richard},
  journal = {Ultramicroscopy},
  volume = {135},
  pages = {24--35},
  year = {2013},
  doi = {10.1016/j.ultramic.2013.06.004}
}"""

PENCZEK1994 = """@article{penczek1994ribosome,
  title = {The ribosome at improved resolution: new techniques for merging and orientation
           refinement in 3D cryo-electron microscopy of biological particles},
  author = {Penczek, Pawel A. and Grassucci, Robert A. and Frank, Joachim},
  journal = {Ultramicroscopy},
  volume = {53},
  number = {3},
  pages = {251--270},
  year = {1994},
  doi = {10.1016/0304-3991(94)90038-8}
}"""

PENCZEK2004 = """@article{penczek2004gridding,
  title = {Gridding-based direct Fourier inversion of the three-dimensional ray transform},
  author = {Penczek, Pawel A. and Renka, Robert and Schomberg, Hermann},
  journal = {Journal of the Optical Society of America A},
  volume = {21},
  number = {4},
  pages = {499--509},
  year = {2004},
  doi = {10.1364/JOSAA.21.000499}
}"""
