"""The one thing pyproject.toml cannot declare: the census's optional C tally."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("leakwatch.probes._census", ["leakwatch/probes/_census.c"], optional=True)])
