"""Refuse names that would give a broken or clashing driver project, before any file is written.

Cookiecutter renders this file with Jinja and runs it; a non-zero exit aborts the generation and removes the
project folder. Every refusal names the value, why it is refused, and how to fix it.
"""

from __future__ import annotations

import json
import keyword
import re
import sys

# Rendered by Jinja as JSON inside a raw string, so this file is valid Python (and lintable) before rendering too;
# quotes become \u0027 escapes so no answer can close the string.
ANSWERS = json.loads(
    r'''{{ {
        "technology": cookiecutter.technology,
        "package_name": cookiecutter.package_name,
        "project_slug": cookiecutter.project_slug,
        "distribution_name": cookiecutter.distribution_name,
        "class_prefix": cookiecutter.__class_prefix,
        "author": cookiecutter.author,
        "email": cookiecutter.email,
        "description": cookiecutter.description,
    } | jsonify | replace("'", "\\u0027") }}'''
)
TECHNOLOGY = ANSWERS["technology"]
PACKAGE_NAME = ANSWERS["package_name"]
PROJECT_SLUG = ANSWERS["project_slug"]
DISTRIBUTION_NAME = ANSWERS["distribution_name"]
CLASS_PREFIX = ANSWERS["class_prefix"]
AUTHOR = ANSWERS["author"]
EMAIL = ANSWERS["email"]
DESCRIPTION = ANSWERS["description"]

# Import names the nestq distribution itself installs: a driver package of the same name would shadow them.
RESERVED = ("nestq", "nestq_spec", "nestq_conformance", "nestq_memory", "nestq_redis")
MAX_TECHNOLOGY_LENGTH = 24
TECHNOLOGY_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
# PEP 508 names: letters, digits, '.', '_', '-', starting and ending with a letter or digit.
DISTRIBUTION_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def problems() -> list[str]:
    """Every reason to refuse the answers given (empty when they are fine)."""
    found: list[str] = []
    text_fields = {"technology": TECHNOLOGY, "package_name": PACKAGE_NAME, "project_slug": PROJECT_SLUG,
                   "distribution_name": DISTRIBUTION_NAME, "author": AUTHOR, "email": EMAIL,
                   "description": DESCRIPTION}
    for name, value in text_fields.items():
        if not isinstance(value, str):
            found.append(f"{name} must be text, found {value!r}")
        elif any(ord(ch) < 32 for ch in value):
            found.append(f"{name} {value!r} contains a control character (a newline?)")
    if found:
        return found

    technology = TECHNOLOGY.strip()
    if not technology:
        found.append(
            "technology is empty: give the storage the driver is for, e.g. 'sqs', 'nats' or 'postgres' "
            "(it names the driver, its entry point and its NESTQ_<TECH>__* settings)"
        )
    elif len(technology) > MAX_TECHNOLOGY_LENGTH:
        found.append(
            f"technology {TECHNOLOGY!r} is {len(technology)} characters long; keep it to {MAX_TECHNOLOGY_LENGTH} "
            "(it prefixes every class, setting variable and package name of the driver)"
        )
    elif not TECHNOLOGY_PATTERN.fullmatch(TECHNOLOGY.lower()):
        found.append(
            f"technology {TECHNOLOGY!r} is not a valid driver name: use letters and digits, starting with a letter, "
            "words joined by single '-' or '_' (e.g. 'sqs', 'rabbit-mq', 'pg_queue')"
        )

    if not PACKAGE_NAME.isidentifier():
        found.append(
            f"package_name {PACKAGE_NAME!r} is not a Python identifier, so it cannot be imported: use letters, "
            "digits and '_' only, not starting with a digit (e.g. 'nestq_sqs')"
        )
    elif keyword.iskeyword(PACKAGE_NAME):
        found.append(f"package_name {PACKAGE_NAME!r} is a Python keyword; choose another name (e.g. 'nestq_sqs')")
    elif PACKAGE_NAME.lower() in RESERVED:
        found.append(
            f"package_name {PACKAGE_NAME!r} clashes with the package {PACKAGE_NAME.lower()!r} that nestq itself "
            f"installs ({', '.join(RESERVED)}); choose another technology or package name"
        )
    elif PACKAGE_NAME in sys.stdlib_module_names or PACKAGE_NAME.lower() in sys.stdlib_module_names:
        found.append(
            f"package_name {PACKAGE_NAME!r} clashes with the standard library module of the same name; "
            "choose another name (e.g. 'nestq_<technology>')"
        )
    elif not PACKAGE_NAME.islower():
        found.append(f"package_name {PACKAGE_NAME!r} should be lowercase (PEP 8), e.g. {PACKAGE_NAME.lower()!r}")

    if not DISTRIBUTION_PATTERN.fullmatch(DISTRIBUTION_NAME):
        found.append(
            f"distribution_name {DISTRIBUTION_NAME!r} is not a valid distribution name: letters, digits, '.', '_' "
            "and '-', starting and ending with a letter or digit (e.g. 'nestq-sqs')"
        )
    if not PROJECT_SLUG or PROJECT_SLUG.strip() != PROJECT_SLUG or any(c in PROJECT_SLUG for c in "/\\:"):
        found.append(f"project_slug {PROJECT_SLUG!r} is not a usable folder name (no '/', '\\', ':' or edge spaces)")
    if technology and not found and not CLASS_PREFIX.isidentifier():
        found.append(f"technology {TECHNOLOGY!r} gives the class name prefix {CLASS_PREFIX!r}, not an identifier")
    return found


def main() -> int:
    """Print every problem to stderr and return 1, or return 0 when the answers are fine."""
    found = problems()
    if not found:
        return 0
    print("nestq driver template: cannot generate the project:", file=sys.stderr)
    for problem in found:
        print(f"  - {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
