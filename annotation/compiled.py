"""Querysets of the annotator's hot path, built and compiled to SQL once per process.

Django builds and compiles a queryset's SQL on every call. For the few item queries that every `next`, item
reload and submit runs (a dozen joins and subqueries each), that Python work took longer than PostgreSQL took to
run them. A `CompiledQuery` builds its queryset once with stand-in values, compiles it once per database and
shape, finds where the stand-ins landed among the SQL's parameters, and from then on runs that SQL with each
call's values through Django's own iterables: rows become the same model instances (related rows of
`select_related`, annotations) or tuples (`values_list`) as the queryset itself gives.

The queryset is compiled twice, with two sets of stand-ins. The two SQL texts must be equal and every parameter
must either be the same in both (a constant of the query) or be the stand-in of one argument in both: a build
whose SQL depends on its arguments' values is refused, as is a call with a value the SQL was not compiled for
(None, which SQL would need as IS NULL). A `User` argument's shape (`is_superuser`: what it may see is built
differently) is part of the cache key.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.contrib.auth.models import User
from django.db import connection, connections
from django.db.models import Model, QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.db.transaction import TransactionManagementError

T = TypeVar("T")
# Two sets of stand-in ids, far outside any id PostgreSQL or SQLite hands out (strings: a control character first).
_STAND_INS = (-(2**62) + 1000, -(2**62) + 2000)


@dataclass(frozen=True)
class _Compiled:
    queryset: QuerySet
    compiler: SQLCompiler
    sql: str
    # Per SQL parameter: the argument it takes ("name"), or None and the constant in `constants`.
    slots: tuple[str | None, ...]
    constants: tuple[Any, ...]
    locks: bool  # SELECT … FOR UPDATE: only inside a transaction, as Django checks when it compiles


def _stand_in(name: str, value: Any, index: int, which: int) -> Any:
    number = _STAND_INS[which] + index
    if isinstance(value, User):
        return User(pk=number, is_superuser=value.is_superuser, is_active=value.is_active)
    if isinstance(value, Model):
        return type(value)(pk=number)
    if isinstance(value, int) and not isinstance(value, bool):
        return number
    if isinstance(value, str):
        return f"\x1fstand-in {number}"
    raise TypeError(f"compiled query argument {name!r}: an id, a string or a model instance, not {value!r}")


def _shape(value: Any) -> Hashable:
    if isinstance(value, User):
        return (User, value.is_superuser)
    return (type(value), None)


def _bound(value: Any) -> Any:
    return value.pk if isinstance(value, Model) else value


def statement(sql: str, params: Any) -> int:
    """Run one write or check of the hot path as SQL of its own and return the rows it touched.

    The text is the same on every call, so PostgreSQL prepares it once per connection (server-side binding,
    webapp.settings.base), and Django builds no UPDATE for it: every lease and label runs several.
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


class CompiledQuery(Generic[T]):
    """`build(**arguments) -> QuerySet` compiled once; `rows(**arguments)` runs it with the call's values.

    Arguments are ids (int), strings or model instances (their pk is bound); none may be None. They are meant for
    equality with ids and keys: an int beyond 64 bits matches no row.
    """

    def __init__(self, build: Callable[..., QuerySet]) -> None:
        self.build = build
        self.names = tuple(inspect.signature(build).parameters)
        self._compiled: dict[Hashable, _Compiled] = {}
        self._lock = threading.Lock()

    def rows(self, **arguments: Any) -> list[T]:
        """The queryset's rows for these arguments (model instances, or tuples for `values_list`)."""
        if set(arguments) != set(self.names):
            raise TypeError(f"{self.build.__qualname__} takes {', '.join(self.names)}; got {', '.join(arguments)}")
        for name, value in arguments.items():
            if value is None or (isinstance(value, Model) and value.pk is None):
                raise TypeError(f"compiled query argument {name!r} is None")
        if any(isinstance(value, int) and not -(2**63) <= value < 2**63 for value in arguments.values()):
            return []  # an id no row has (Django answers an out-of-range lookup the same way)
        key = tuple(_shape(arguments[name]) for name in self.names)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._compile(arguments)
                self._compiled[key] = compiled
        return self._run(compiled, arguments)

    def first(self, **arguments: Any) -> T | None:
        found = self.rows(**arguments)
        return found[0] if found else None

    def _compile(self, arguments: dict[str, Any]) -> _Compiled:
        versions = []
        for which in (0, 1):
            stand_ins = {name: _stand_in(name, arguments[name], i, which) for i, name in enumerate(self.names)}
            queryset = self.build(**stand_ins)
            compiler = queryset.query.get_compiler(using=queryset.db)
            sql, params = compiler.as_sql()
            numbers = {name: _bound(value) for name, value in stand_ins.items()}
            versions.append((queryset, compiler, sql, tuple(params), numbers))
        (queryset, compiler, sql, params, numbers), (_, _, other_sql, other_params, other_numbers) = versions
        where = f"compiled query {self.build.__qualname__}"
        if sql != other_sql or len(params) != len(other_params):
            raise ValueError(f"{where}: its SQL depends on the values of its arguments")
        by_number = {number: name for name, number in numbers.items()}
        slots: list[str | None] = []
        for value, other in zip(params, other_params, strict=True):
            name = by_number.get(value) if isinstance(value, int | str) else None
            if name is not None and other == other_numbers[name]:
                slots.append(name)
            elif value == other and name is None:
                slots.append(None)
            else:
                raise ValueError(f"{where}: a parameter is neither a constant nor one argument ({value!r})")
        constants = tuple(None if slot else value for slot, value in zip(slots, params, strict=True))
        locks = bool(queryset.query.select_for_update)
        return _Compiled(queryset, compiler, sql, tuple(slots), constants, locks)

    def _run(self, compiled: _Compiled, arguments: dict[str, Any]) -> list[T]:
        connection = connections[compiled.queryset.db]
        if compiled.locks and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = tuple(
            _bound(arguments[slot]) if slot else constant
            for slot, constant in zip(compiled.slots, compiled.constants, strict=True)
        )
        compiler = copy.copy(compiled.compiler)
        compiler.connection = connection
        compiler.as_sql = lambda *args, **kwargs: (compiled.sql, params)  # type: ignore[method-assign]
        queryset = compiled.queryset._chain()  # type: ignore[attr-defined]
        queryset.query.get_compiler = lambda *args, **kwargs: compiler
        return list(queryset)
