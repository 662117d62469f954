"""Sans-IO pieces of the Django integration: route templates and the middleware self-time
arithmetic, on plain values with hand-picked clock readings."""

from __future__ import annotations

import pytest

from lagless._trace import Trace
from lagless.integrations.django._routes import django_route_template
from lagless.integrations.django.middleware import _Chain


@pytest.mark.parametrize(
    ("route", "template"),
    [
        ("", "/"),
        ("users/<int:pk>/", "/users/{pk}/"),
        ("users/<pk>/", "/users/{pk}/"),
        ("api/v1/items/<slug:slug>/", "/api/v1/items/{slug}/"),
        (r"^articles/(?P<year>[0-9]{4})/$", "/articles/{year}/"),
        (r"api/v1/legacy/(?P<year>[0-9]{4})/$", "/api/v1/legacy/{year}/"),
        (r"^a/(?P<slug>[\w-]+)/(\d+)/$", "/a/{slug}/{}/"),
        (r"^feed\.xml$", "/feed.xml"),
        (r"^p/(?:page-(?P<n>\d+)/)?$", "/p/page-{n}/?"),
        (r"^x/(?P<q>[)(]+)/users/<int:pk>/", "/x/{q}/users/{pk}/"),
        (r"^(?i)case/(?=y)$", "/case/"),
    ],
)
def test_django_route_template(route: str, template: str) -> None:
    assert django_route_template(route) == template


def chain(names: list[str], *, complete: bool) -> _Chain:
    c = _Chain.__new__(_Chain)
    c.names = names
    c.complete = complete
    c.n_slots = 2 * (len(names) + 1)
    return c


def test_self_time_is_layer_minus_inner() -> None:
    # ours calls A at 100..1000; A calls B at 150..900; B calls the handler at 200..700.
    c = chain(["a.A", "b.B"], complete=True)
    trace = Trace("GET", "/", start_ns=0)
    c.record(trace, [100, 1000, 150, 900, 200, 700], "views.v")
    spans = [(s.kind, s.name, s.start_ns, s.duration_ns) for s in trace.spans]
    assert spans == [
        ("middleware", "a.A", 100, 900 - 750),
        ("middleware", "b.B", 150, 750 - 500),
        ("handler", "views.v", 200, 500),
    ]


def test_short_circuit_and_inclusive_layers() -> None:
    # B answered itself: the handler slot is never written.
    c = chain(["a.A", "b.B"], complete=True)
    trace = Trace("GET", "/", start_ns=0)
    c.record(trace, [100, 1000, 150, 900, 0, 0], "views.v")
    assert [(s.name, s.duration_ns) for s in trace.spans] == [("a.A", 150), ("b.B", 750)]
    # A answered itself: B and the handler never ran.
    trace = Trace("GET", "/", start_ns=0)
    c.record(trace, [100, 1000, 0, 0, 0, 0], "views.v")
    assert [(s.name, s.duration_ns) for s in trace.spans] == [("a.A", 900)]
    # The walk stopped at an opaque B: it is timed with everything inside it.
    c = chain(["a.A", "b.B"], complete=False)
    trace = Trace("GET", "/", start_ns=0)
    c.record(trace, [100, 1000, 150, 900, 0, 0], "views.v")
    assert [(s.name, s.duration_ns, s.get("inclusive")) for s in trace.spans] == [
        ("a.A", 150, None),
        ("b.B", 750, True),
    ]


def test_layers_off_keeps_handler() -> None:
    c = chain(["a.A"], complete=True)
    trace = Trace("GET", "/", start_ns=0)
    c.record(trace, [100, 1000, 200, 700], "views.v", layers=False)
    assert [(s.kind, s.duration_ns) for s in trace.spans] == [("handler", 500)]
