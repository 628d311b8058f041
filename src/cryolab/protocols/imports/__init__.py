"""Import protocols: bring files (movies, micrographs, volumes, particles, ...) into a project."""
