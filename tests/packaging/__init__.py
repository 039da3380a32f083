"""The distributions as built: wheels and their metadata."""
