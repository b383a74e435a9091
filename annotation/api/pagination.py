"""Limit/offset paging with a maximum page and strict parameters: a bad `limit` or `offset` is a 400 naming it."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 2**62  # far past any list; keeps the SQL OFFSET within a bigint


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def _whole(self, request, name: str, lowest: int, highest: int, default: int | None) -> int | None:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        if not (raw.isascii() and raw.isdigit()) or not lowest <= int(raw) <= highest:
            raise ValidationError({name: f"must be a whole number from {lowest} to {highest}"})
        return int(raw)

    def get_limit(self, request) -> int | None:
        return self._whole(request, self.limit_query_param, 1, self.max_limit, self.default_limit)

    def get_offset(self, request) -> int:
        return self._whole(request, self.offset_query_param, 0, MAX_OFFSET, 0)
