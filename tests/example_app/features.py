"""Application code: a sign-up feature. It asks the container for ``JobProducer`` and never names a driver."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from nestq_spec import JobProducer, current_job, injectable, module, process, processor

SIGNUPS = "example.signups"
"""The queue the sign-up feature pushes to and its processor drains."""


@dataclass(frozen=True)
class WelcomeEmail:
    """The job: whom to welcome, and how."""

    email: str
    name: str
    locale: str = "en"


@injectable
class SignupService:
    """Used by the API: records a sign-up and enqueues the welcome email (the worker sends it)."""

    def __init__(self, producer: JobProducer) -> None:
        self.producer = producer

    async def sign_up(self, email: str, name: str) -> None:
        """Enqueue the welcome email of a new user."""
        await self.producer.push(SIGNUPS, WelcomeEmail(email, name))


@dataclass
class Outbox:
    """Stands in for an SMTP client: remembers what was sent, and wakes whoever waits for a send."""

    sent: list[tuple[str, str, int]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, to: str, text: str, attempt: int) -> None:
        """Record one email."""
        self.sent.append((to, text, attempt))
        self.changed.set()


@processor
class WelcomeEmails:
    """The worker side of the feature: one ``@process`` method on the sign-ups queue."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    @process(queue=SIGNUPS)
    async def send_welcome(self, job: WelcomeEmail) -> None:
        """Send the welcome email; the job arrives decoded into the annotated dataclass."""
        greeting = {"en": "Welcome", "fr": "Bienvenue"}.get(job.locale, "Welcome")
        self.outbox.send(job.email, f"{greeting}, {job.name}!", current_job().attempt)


@module(providers=[SignupService])
class SignupsModule:
    """What the API needs of the feature: the service that enqueues."""


@module(imports=[SignupsModule], providers=[Outbox, WelcomeEmails])
class WelcomeEmailsModule:
    """What the worker needs of the feature: the processor and its dependencies."""
