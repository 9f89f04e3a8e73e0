"""Tests of the cookiecutter template (template/): rendering, the generated project, its markers filled."""
