"""Shipped eval presets (``benchmarks/*.yaml``) and training recipes (``recipes/*.toml``).

The two folders are symlinks to the repository's top-level ``benchmarks/`` and ``recipes/`` (the layout users and
docs rely on); setuptools copies their content into the wheel, so an installed reasonkit finds them here too."""
