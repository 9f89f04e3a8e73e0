{%- set P = cookiecutter.__class_prefix -%}
"""{{ cookiecutter.distribution_name }}: a nestq queue driver for {{ cookiecutter.__driver_name }}.

A producer-only app imports ``{{ P }}QueueModule.for_root()``; a worker app imports it and
``{{ P }}QueueWorkerModule``. Settings come from ``NESTQ_{{ cookiecutter.__namespace|upper }}__<KEY>`` or are
pinned in ``for_root(...)``.
"""

from .config import {{ P }}Config, load_config
from .connection import {{ P }}Connection
from .module import (
    {{ P }}QueueModule,
    {{ P }}QueueSetup,
    {{ P }}QueueWorkerModule,
)
from .worker import {{ P }}Worker

__version__ = "0.1.0"

__all__ = [
{%- for name in [P ~ "Config", P ~ "Connection", P ~ "QueueModule", P ~ "QueueSetup",
                 P ~ "QueueWorkerModule", P ~ "Worker"]|sort(case_sensitive=true) %}
    "{{ name }}",
{%- endfor %}
    "load_config",
]
