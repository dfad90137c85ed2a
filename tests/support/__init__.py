"""Fixtures and fakes shared by the tests: generated datasets, bad-input corpora, an in-memory filesystem, a toy
recipe, readers of a run folder."""
