"""The use cases that ship with featurehouse, one folder each.

Each folder declares a `USE_CASE` (see `featurehouse.usecase`) and is registered under
the `featurehouse.use_cases` entry-point group in pyproject.toml. Nothing in the
framework imports these folders by name: it finds them through that group or through
`declaration:` in `conf/use_cases/<name>.yml` (see `featurehouse.discovery`).
"""
