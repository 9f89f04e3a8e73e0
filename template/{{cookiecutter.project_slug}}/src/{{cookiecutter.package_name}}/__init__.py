{%- set P = cookiecutter.__class_prefix -%}
"""{{ cookiecutter.distribution_name }}: a nestq queue driver for {{ cookiecutter.__driver_name }}.

Producer-only app::

    @module(imports=[{{ P }}QueueModule.for_root(), ...])
    class ApiModule: ...

Worker app (consumes too)::

    @module(imports=[
        {{ P }}QueueModule.for_root(),
        {{ P }}QueueWorkerModule,
        ...,
    ])
    class WorkerModule: ...

Settings come from ``NESTQ_{{ cookiecutter.__namespace|upper }}__<KEY>`` or are pinned in ``for_root(...)``.
"""

from .config import {{ P }}Config, load_config
from .connection import {{ P }}Connection
from .module import (
    {{ P }}QueueModule,
    {{ P }}QueueSetup,
    {{ P }}QueueWorkerModule,
)
from .worker import (
{%- for name in ["JobInterrupted", "Received", P ~ "Worker"]|sort %}
    {{ name }},
{%- endfor %}
    error_text,
)

__version__ = "0.1.0"

__all__ = [
{%- for name in ["JobInterrupted", "Received", P ~ "Config", P ~ "Connection", P ~ "QueueModule", P ~ "QueueSetup",
                 P ~ "QueueWorkerModule", P ~ "Worker"]|sort(case_sensitive=true) %}
    "{{ name }}",
{%- endfor %}
    "error_text",
    "load_config",
]
