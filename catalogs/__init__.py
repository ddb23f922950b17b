"""Package data: the shipped catalogs (chips.toml, models.toml, economics.toml).

Every figure in them carries a source, a date and a confidence; see the header of chips.toml.
"""
