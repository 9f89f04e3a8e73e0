"""nestq_spec: the queue seam for Python job-queue drivers.

The producer wraps every job in ``{"v": 1, "payload": ...}`` and pushes it; a transport receives envelopes and
hands them to the ``@process`` handlers reachable from the app's modules; the consumer unwraps, failing closed.
"""

from nestq_spec.app import Application
from nestq_spec.config import describe_settings, env_var, load_settings, redact, setting, settings
from nestq_spec.container import Container, ContainerBuilder, ReachableProviders, injectable
from nestq_spec.context import JobContext, JobMeta, current_job
from nestq_spec.envelope import (
    WIRE_FORMAT_VERSION,
    dumps_envelope,
    envelope_schema,
    loads_envelope,
    unwrap,
    validate_envelope,
    wrap,
)
from nestq_spec.errors import (
    BootError,
    CircularImportError,
    ConfigError,
    DispatchError,
    EnvelopeError,
    MalformedEnvelopeError,
    MissingProviderError,
    NestqError,
    NoJobContextError,
    NonRetryableError,
    PayloadDecodeError,
    QueueNameError,
    RegistrationError,
    UnsupportedVersionError,
    is_retryable,
)
from nestq_spec.jsonvalue import JSONValue, decode_payload, to_json_value
from nestq_spec.modules import DynamicModule, Module, ModuleLike, TransportContribution, module
from nestq_spec.producer import MAX_QUEUE_NAME_LENGTH, JobProducer, encode_job, validate_queue_name
from nestq_spec.registry import ProcessMethod, dispatch, inventory, process, processor, routes
from nestq_spec.transport import CancellationToken, Transport

__version__ = "0.1.0"

__all__ = [
    "MAX_QUEUE_NAME_LENGTH",
    "WIRE_FORMAT_VERSION",
    "Application",
    "BootError",
    "CancellationToken",
    "CircularImportError",
    "ConfigError",
    "Container",
    "ContainerBuilder",
    "DispatchError",
    "DynamicModule",
    "EnvelopeError",
    "JSONValue",
    "JobContext",
    "JobMeta",
    "JobProducer",
    "MalformedEnvelopeError",
    "MissingProviderError",
    "Module",
    "ModuleLike",
    "NestqError",
    "NoJobContextError",
    "NonRetryableError",
    "PayloadDecodeError",
    "ProcessMethod",
    "QueueNameError",
    "ReachableProviders",
    "RegistrationError",
    "Transport",
    "TransportContribution",
    "UnsupportedVersionError",
    "current_job",
    "decode_payload",
    "describe_settings",
    "dispatch",
    "dumps_envelope",
    "encode_job",
    "env_var",
    "envelope_schema",
    "injectable",
    "inventory",
    "is_retryable",
    "load_settings",
    "loads_envelope",
    "module",
    "process",
    "processor",
    "redact",
    "routes",
    "setting",
    "settings",
    "to_json_value",
    "unwrap",
    "validate_envelope",
    "validate_queue_name",
    "wrap",
]
