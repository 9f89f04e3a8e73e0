"""The container: singletons, injection by annotation, bindings, and boot errors that name their chain."""

from __future__ import annotations

import re
from typing import Any

import pytest

from nestq_spec import (
    BootError,
    Container,
    ContainerBuilder,
    JobProducer,
    JSONValue,
    MissingProviderError,
    ReachableProviders,
    TransportContribution,
    injectable,
    module,
)
from nestq_spec.modules import assemble


class Settings:
    def __init__(self) -> None:
        self.dsn = "sqlite://"


@injectable
class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


@injectable
class Repository:
    def __init__(self, db: Database, table: str = "users", page: int = 50) -> None:
        self.db = db
        self.table = table
        self.page = page


@injectable
class Service:
    def __init__(self, repo: Repository, db: Database) -> None:
        self.repo = repo
        self.db = db


class Smtp:
    pass


@injectable
class Mailer:
    def __init__(self, smtp: Smtp) -> None:
        self.smtp = smtp


@injectable
class Signups:
    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer


@injectable
class Enqueuer:
    def __init__(self, producer: JobProducer) -> None:
        self.producer = producer


@injectable
class Optionally:
    def __init__(self, smtp: Smtp | None = None, db: Database | None = None) -> None:
        self.smtp = smtp
        self.db = db


@injectable
class Chicken:
    def __init__(self, egg: Egg) -> None:
        self.egg = egg


@injectable
class Egg:
    def __init__(self, chicken: Chicken) -> None:
        self.chicken = chicken


@injectable
class Unannotated:
    def __init__(self, thing) -> None:  # type: ignore[no-untyped-def]
        self.thing = thing


class Producer(JobProducer):
    async def push_json(self, queue: str, payload: JSONValue) -> None: ...


def _build(*providers: type[Any]) -> Container:
    builder = ContainerBuilder()
    for provider in providers:
        builder.provide(provider)
    return builder.build()


def test_singletons_built_once_and_shared() -> None:
    container = _build(Settings, Database, Repository, Service)
    service = container.get(Service)
    assert service is container.get(Service)
    assert service.repo.db is service.db is container.get(Database)
    assert service.db.settings is container.get(Settings)


def test_injection_by_annotation_keeps_defaults_of_what_nobody_provides() -> None:
    repo = _build(Settings, Database, Repository).get(Repository)
    assert isinstance(repo.db, Database)
    assert (repo.table, repo.page) == ("users", 50)


def test_an_optional_parameter_gets_what_is_provided_and_none_otherwise() -> None:
    got = _build(Settings, Database, Optionally).get(Optionally)
    assert got.smtp is None
    assert isinstance(got.db, Database)


def test_built_lazily_on_first_get() -> None:
    built = []

    @injectable
    class Lazy:
        def __init__(self) -> None:
            built.append(self)

    container = _build(Lazy)
    assert built == []
    container.get(Lazy)
    container.get(Lazy)
    assert len(built) == 1


def test_missing_provider_names_the_chain() -> None:
    container = _build(Signups, Mailer)
    with pytest.raises(MissingProviderError) as info:
        container.get(Signups)
    assert str(info.value) == (
        "no provider for Smtp (needed by Signups -> Mailer -> Smtp); "
        "add Smtp to a module's providers or import a module that provides it"
    )
    assert info.value.wanted == "Smtp"
    assert info.value.chain == ("Signups", "Mailer")
    assert isinstance(info.value, BootError)
    assert isinstance(info.value, LookupError)


def test_missing_provider_asked_directly() -> None:
    with pytest.raises(MissingProviderError, match=r"^no provider for Smtp; add Smtp to a module's providers"):
        _build().get(Smtp)


def test_missing_job_producer_hints_at_a_driver_module() -> None:
    container = _build(Enqueuer)
    with pytest.raises(MissingProviderError) as info:
        container.get(Enqueuer)
    assert str(info.value) == (
        "no provider for JobProducer (needed by Enqueuer -> JobProducer); "
        "import a driver's producer module, for example MemoryQueueModule.for_root()"
    )
    with pytest.raises(MissingProviderError, match="import a driver's producer module"):
        container.get(JobProducer)


def test_dependency_cycle_is_a_boot_error_with_the_cycle() -> None:
    with pytest.raises(BootError) as info:
        _build(Chicken, Egg).get(Chicken)
    assert str(info.value) == "dependency cycle: Chicken -> Egg -> Chicken"


def test_a_parameter_without_annotation_or_default_cannot_be_injected() -> None:
    with pytest.raises(BootError, match=re.escape("Unannotated.__init__ parameter 'thing' has no type annotation")):
        _build(Unannotated).get(Unannotated)


def test_bind_an_interface_to_an_implementation_shares_the_singleton() -> None:
    builder = ContainerBuilder().provide(Producer).bind(JobProducer, Producer)
    container = builder.provide(Enqueuer).build()
    producer = container.get(JobProducer)
    assert isinstance(producer, Producer)
    assert producer is container.get(Producer) is container.get(Enqueuer).producer


def test_bind_refuses_an_implementation_that_is_not_a_subclass() -> None:
    expected = "bind(JobProducer, Settings): Settings is not a subclass of JobProducer"
    with pytest.raises(BootError, match=re.escape(expected)):
        ContainerBuilder().bind(JobProducer, Settings)


def test_bind_refuses_keys_that_are_not_classes() -> None:
    def factory() -> Producer:
        return Producer()

    with pytest.raises(BootError, match=r"both must be classes"):
        ContainerBuilder().bind(JobProducer, factory)


def test_provide_a_value_or_a_factory() -> None:
    calls = []

    def make(container: Container) -> Database:
        calls.append(container)
        return Database(container.get(Settings))

    settings = Settings()
    container = ContainerBuilder().provide(Settings, settings).provide(Database, factory=make).build()
    assert container.get(Settings) is settings
    assert calls == []
    db = container.get(Database)
    assert db is container.get(Database)
    assert db.settings is settings
    assert calls == [container]


def test_provide_value_and_factory_together_is_refused() -> None:
    with pytest.raises(BootError, match=re.escape("provide(Settings): give a value or a factory, not both")):
        ContainerBuilder().provide(Settings, Settings(), factory=lambda c: Settings())


def test_provide_a_non_class_without_value_is_refused() -> None:
    with pytest.raises(BootError, match="only a class can be built without a value or factory"):
        ContainerBuilder().provide("not a class")  # type: ignore[arg-type]


def test_same_type_provided_by_two_modules_is_a_boot_error() -> None:
    @module(providers=[Producer])
    class RedisQueue:
        @classmethod
        def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
            return builder.provide(Producer).bind(JobProducer, Producer)

    class Other(Producer):
        pass

    @module()
    class MemoryQueue:
        @classmethod
        def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
            return builder.provide(Other).bind(JobProducer, Other)

    @module(imports=[RedisQueue, MemoryQueue])
    class App:
        pass

    with pytest.raises(BootError) as info:
        assemble(App)
    assert re.fullmatch(
        r"JobProducer is provided twice: by \S*RedisQueue and by \S*MemoryQueue; import only one of them",
        str(info.value),
    )


def test_two_modules_providing_different_values_of_one_type_clash() -> None:
    @module()
    class First:
        @classmethod
        def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
            return builder.provide(Settings, Settings())

    @module()
    class Second:
        @classmethod
        def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
            return builder.provide(Settings, Settings())

    @module(imports=[First, Second])
    class App:
        pass

    with pytest.raises(BootError, match=r"Settings is provided twice: by \S*First and by \S*Second"):
        assemble(App)


def test_two_modules_listing_the_same_class_share_one_singleton() -> None:
    @module(providers=[Settings, Database])
    class Left:
        pass

    @module(providers=[Settings])
    class Right:
        pass

    @module(imports=[Left, Right])
    class App:
        pass

    container = assemble(App)
    assert container.get(Database).settings is container.get(Settings)


def test_container_and_reachable_providers_are_always_there() -> None:
    container = _build(Settings, Database)
    assert container.get(Container) is container
    reachable = container.get(ReachableProviders)
    assert reachable is container.reachable
    assert Settings in reachable
    assert Database in reachable
    assert Mailer not in reachable


def test_get_optional_provides_and_get_all() -> None:
    contribution = TransportContribution("T", lambda c: None)  # type: ignore[arg-type,return-value]
    container = ContainerBuilder().provide(Settings).provide_meta(contribution).provide_meta(contribution).build()
    assert container.get_optional(Smtp) is None
    assert isinstance(container.get_optional(Settings), Settings)
    assert container.provides(Settings)
    assert not container.provides(Smtp)
    assert container.get_all(TransportContribution) == (contribution,)  # the same contribution counts once
    assert container.get_all(Settings) == ()
