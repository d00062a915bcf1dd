"""Many builds from one recipe: ``sweep`` (a grid of variants on one shared stage cache) and
``study`` (the seeds' claims measured on the user's data: arms x fractions x seeds)."""
