"""Property tests of the envelope: round trips for arbitrary JSON, schema agreement, schema-generated envelopes."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from nestq_spec import (
    decode_payload,
    dumps_envelope,
    envelope_schema,
    loads_envelope,
    to_json_value,
    unwrap,
    validate_envelope,
    wrap,
)

from ._hypothesis_compat import restore_more

restore_more()

BIG = 10**300  # far beyond 64 bits, well inside Python's 4300-digit int/str limit

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-BIG, max_value=BIG)
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)

modest = hsettings(max_examples=150, deadline=None)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types all the way down (``1 == True`` and ``0.0 == -0.0`` do not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


@modest
@given(json_values)
def test_unwrap_of_wrap_is_the_payload(payload: Any) -> None:
    assert unwrap(wrap(payload)) is payload


@modest
@given(json_values)
def test_round_trip_through_json_dumps_and_loads(payload: Any) -> None:
    text = json.dumps(wrap(payload))
    assert same(unwrap(json.loads(text)), payload)
    assert same(unwrap(text), payload)
    assert same(unwrap(text.encode()), payload)


@modest
@given(json_values)
def test_round_trip_through_dumps_envelope_and_loads_envelope(payload: Any) -> None:
    data = dumps_envelope(payload)
    assert data == json.dumps(wrap(payload), separators=(",", ":"), ensure_ascii=False).encode()
    assert same(unwrap(loads_envelope(data)), payload)
    assert same(unwrap(data), payload)


@modest
@given(json_values)
def test_every_wrap_output_validates_against_the_shipped_schema(payload: Any) -> None:
    envelope = wrap(payload)
    validate_envelope(envelope)
    jsonschema.Draft7Validator(envelope_schema()).validate(envelope)
    jsonschema.Draft7Validator(envelope_schema()).validate(json.loads(dumps_envelope(payload)))


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(from_schema(envelope_schema()))
def test_envelopes_generated_from_the_schema_unwrap_cleanly(envelope: Any) -> None:
    assert isinstance(envelope, dict)
    assert unwrap(envelope) is envelope["payload"]
    text = json.dumps(envelope)
    assert same(unwrap(text), envelope["payload"])
    assert same(unwrap(dumps_envelope(envelope["payload"])), envelope["payload"])


@dataclasses.dataclass
class Line:
    sku: str
    qty: int
    price: float


@dataclasses.dataclass
class Order:
    id: int
    customer: str | None
    lines: list[Line]
    tags: dict[str, bool]


finite = st.floats(allow_nan=False, allow_infinity=False)
orders = st.builds(
    Order,
    id=st.integers(min_value=-BIG, max_value=BIG),
    customer=st.none() | st.text(),
    lines=st.lists(st.builds(Line, sku=st.text(), qty=st.integers(), price=finite), max_size=4),
    tags=st.dictionaries(st.text(max_size=8), st.booleans(), max_size=4),
)


@modest
@given(orders)
def test_a_typed_job_survives_push_and_decode(order: Order) -> None:
    payload = to_json_value(order)
    assert decode_payload(unwrap(dumps_envelope(payload)), Order) == order
